//! The answer to a `_bulk` request, item by item: `{"took":..,"errors":..,
//! "items":[{"create":{"status":201}}, {"create":{"status":429,"error":
//! {"type":..,"reason":..}}}, ...]}`, one item per document in request
//! order. 2xx is accepted; 429 and 5xx are retried (that item alone); any
//! other status refuses the document for good. The answer is read up to a
//! cap that grows with the items sent ([`answer_cap`]); a longer one is
//! understood only when its start already says `"errors":false`.

use serde::Deserialize;

/// What became of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Accepted,
    /// 429 or 5xx: send it again in a later request.
    Retry {
        status: u16,
        error: String,
    },
    /// Any other status: refused for good.
    Rejected {
        status: u16,
        error: String,
    },
}

/// The most of an answer read for `items` documents: room for a long error
/// reason on every item, so a healthy answer is never cut.
pub fn answer_cap(items: usize) -> usize {
    const BASE: usize = 64 * 1024;
    const PER_ITEM: usize = 1024;
    BASE.saturating_add(items.saturating_mul(PER_ITEM))
}

/// Why an answer cannot be read item by item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the bulk answer is not JSON of the bulk API: {0}")]
    Malformed(String),
    #[error("the bulk answer has {got} items for {sent} documents")]
    Count { got: usize, sent: usize },
    #[error("the bulk answer is longer than {cap} bytes and reports errors")]
    TooLong { cap: usize },
}

#[derive(Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, Item>>,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Reads the outcome of each of `sent` documents from a 2xx answer.
/// `truncated`: the answer went on past what was read.
pub fn outcomes(
    body: &[u8],
    truncated: bool,
    sent: usize,
    cap: usize,
) -> Result<Vec<ItemOutcome>, AnswerError> {
    if truncated {
        // "took" and "errors" come before the items: a cut answer that
        // says no item failed is a full success.
        let head = &body[..body.len().min(256)];
        let compact: Vec<u8> = head
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if memchr::memmem::find(&compact, b"\"errors\":false").is_some() {
            return Ok(vec![ItemOutcome::Accepted; sent]);
        }
        return Err(AnswerError::TooLong { cap });
    }
    let answer: BulkAnswer =
        serde_json::from_slice(body).map_err(|e| AnswerError::Malformed(e.to_string()))?;
    if !answer.errors && answer.items.len() != sent {
        // Some receivers leave the items out when nothing failed.
        return Ok(vec![ItemOutcome::Accepted; sent]);
    }
    if answer.items.len() != sent {
        return Err(AnswerError::Count {
            got: answer.items.len(),
            sent,
        });
    }
    Ok(answer
        .items
        .into_iter()
        .map(|item| match item.into_values().next() {
            Some(item) => outcome(item),
            None => ItemOutcome::Retry {
                status: 0,
                error: "an empty item".into(),
            },
        })
        .collect())
}

fn outcome(item: Item) -> ItemOutcome {
    let error = || match &item.error {
        Some(serde_json::Value::Object(e)) => {
            let kind = e.get("type").and_then(|t| t.as_str()).unwrap_or("error");
            let reason = e.get("reason").and_then(|r| r.as_str()).unwrap_or("");
            let reason: String = reason.chars().take(300).collect();
            format!("{kind}: {reason}")
        }
        Some(serde_json::Value::String(s)) => s.chars().take(300).collect(),
        Some(other) => other.to_string().chars().take(300).collect(),
        None => format!("status {}", item.status),
    };
    match item.status {
        200..=299 => ItemOutcome::Accepted,
        429 | 500.. => ItemOutcome::Retry {
            status: item.status,
            error: error(),
        },
        status => ItemOutcome::Rejected {
            status,
            error: error(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &str = r#"{"took":30,"errors":true,"items":[
        {"create":{"_index":"logs","_id":"1","status":201,"result":"created"}},
        {"create":{"_index":"logs","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
        {"create":{"_index":"logs","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [x]"}}},
        {"index":{"_index":"logs","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}
    ]}"#;

    #[test]
    fn each_item_is_accepted_retried_or_rejected_by_its_status() {
        let got = outcomes(MIXED.as_bytes(), false, 4, answer_cap(4)).unwrap();
        assert_eq!(got[0], ItemOutcome::Accepted);
        assert!(
            matches!(&got[1], ItemOutcome::Retry { status: 429, error } if error.starts_with("es_rejected_execution_exception"))
        );
        assert!(
            matches!(&got[2], ItemOutcome::Rejected { status: 400, error } if error == "mapper_parsing_exception: failed to parse field [x]")
        );
        assert!(matches!(&got[3], ItemOutcome::Retry { status: 503, .. }));
    }

    #[test]
    fn an_answer_without_errors_accepts_everything_even_without_items() {
        assert_eq!(
            outcomes(br#"{"took":1,"errors":false}"#, false, 3, 1024).unwrap(),
            vec![ItemOutcome::Accepted; 3]
        );
        assert_eq!(
            outcomes(
                br#"{"took":1, "errors": false, "items":[{"create""#,
                true,
                2,
                40
            )
            .unwrap(),
            vec![ItemOutcome::Accepted; 2],
            "a cut answer saying no errors"
        );
    }

    #[test]
    fn an_unreadable_or_miscounted_answer_is_an_error() {
        assert!(matches!(
            outcomes(b"<html>", false, 1, 1024),
            Err(AnswerError::Malformed(_))
        ));
        assert_eq!(
            outcomes(MIXED.as_bytes(), false, 5, 1024),
            Err(AnswerError::Count { got: 4, sent: 5 })
        );
        assert_eq!(
            outcomes(br#"{"took":1,"errors":true,"items":["#, true, 9, 33),
            Err(AnswerError::TooLong { cap: 33 })
        );
    }
}
