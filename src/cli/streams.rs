//! `shipctl streams`: the streams of one type in the organisation, from
//! `GET /api/{org}/streams?type=...` (`{list: [{name, stream_type, stats:
//! {doc_num, doc_time_min, doc_time_max, storage_size, compressed_size}}]}`),
//! as rows sorted by name. Fields the API leaves out stay empty.

use super::openobserve_search::{Hit, SearchClient, SearchError, StreamType};
use serde_json::{Map, Value};

/// One listed stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub name: String,
    pub stream_type: String,
    pub docs: Option<u64>,
    /// Oldest and newest record, µs since the epoch.
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
    /// Stored size, MB (as OpenObserve reports it).
    pub storage_mb: Option<f64>,
    pub compressed_mb: Option<f64>,
}

/// Lists the streams of `stream_type`.
pub async fn list(
    client: &SearchClient,
    stream_type: StreamType,
) -> Result<Vec<StreamInfo>, SearchError> {
    let text = client
        .get(
            "streams",
            &[("type", stream_type.as_str()), ("fetchSchema", "false")],
        )
        .await?;
    parse_list(&text)
}

/// Reads a stream list answer.
pub fn parse_list(text: &str) -> Result<Vec<StreamInfo>, SearchError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| SearchError::Answer(format!("not a stream list: {e}")))?;
    let list = v
        .get("list")
        .and_then(Value::as_array)
        .ok_or_else(|| SearchError::Answer("no `list` array in the stream list".into()))?;
    let mut streams: Vec<StreamInfo> = list
        .iter()
        .filter_map(|s| {
            let stats = s.get("stats");
            let stat = |k: &str| stats.and_then(|st| st.get(k));
            Some(StreamInfo {
                name: s.get("name")?.as_str()?.to_owned(),
                stream_type: s
                    .get("stream_type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                docs: stat("doc_num").and_then(Value::as_u64),
                first_us: stat("doc_time_min")
                    .and_then(Value::as_i64)
                    .filter(|t| *t > 0),
                last_us: stat("doc_time_max")
                    .and_then(Value::as_i64)
                    .filter(|t| *t > 0),
                storage_mb: stat("storage_size").and_then(Value::as_f64),
                compressed_mb: stat("compressed_size").and_then(Value::as_f64),
            })
        })
        .collect();
    streams.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(streams)
}

/// Column names of [`cells`], in order.
pub const COLUMNS: &[&str] = &[
    "name",
    "type",
    "records",
    "first",
    "last",
    "size_mb",
    "compressed_mb",
];

fn time(us: Option<i64>) -> String {
    us.and_then(|us| u64::try_from(us).ok())
        .map(|us| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(us),
            )
            .to_string()
        })
        .unwrap_or_default()
}

fn mb(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_default()
}

/// The table cells of a stream, in [`COLUMNS`] order.
pub fn cells(s: &StreamInfo) -> Vec<String> {
    vec![
        s.name.clone(),
        s.stream_type.clone(),
        s.docs.map(|d| d.to_string()).unwrap_or_default(),
        time(s.first_us),
        time(s.last_us),
        mb(s.storage_mb),
        mb(s.compressed_mb),
    ]
}

/// A stream as a JSON row (for `--format json` and `csv`).
pub fn row(s: &StreamInfo) -> Hit {
    let mut row = Map::new();
    for (k, v) in COLUMNS.iter().zip(cells(s)) {
        row.insert((*k).to_owned(), Value::String(v));
    }
    if let Some(d) = s.docs {
        row.insert("records".into(), Value::from(d));
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_sorted_by_name_with_their_stats_when_given() {
        let list = parse_list(
            r#"{"list":[
              {"name":"system_memory_usage","stream_type":"metrics","stats":{"doc_num":1200,"doc_time_min":1700000000000000,"doc_time_max":1700000600000000,"storage_size":1.5,"compressed_size":0.25}},
              {"name":"hw_temperature","stream_type":"metrics"}]}"#,
        )
        .unwrap();
        assert_eq!(list[0].name, "hw_temperature");
        assert_eq!(list[0].docs, None);
        assert_eq!(
            cells(&list[1]),
            [
                "system_memory_usage",
                "metrics",
                "1200",
                "2023-11-14T22:13:20Z",
                "2023-11-14T22:23:20Z",
                "1.50",
                "0.25"
            ]
        );
    }
}
