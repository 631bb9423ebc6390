//! `shipctl query --promql`: PromQL against OpenObserve's Prometheus-
//! compatible API, `GET /api/{org}/prometheus/api/v1/query` (an instant
//! query) or `.../query_range` (with a step), through the search client's
//! credentials and errors ([`super::openobserve_search`]). The answer
//! (`{status, data: {resultType, result}}`) becomes rows of series, time and
//! value; nothing here prints.

use super::openobserve_search::{Hit, SearchClient, SearchError};
use serde_json::{Map, Value};
use std::time::Duration;

/// One PromQL request.
#[derive(Debug, Clone, PartialEq)]
pub enum PromQuery {
    /// The expression at one time (µs since the epoch).
    Instant { expr: String, time_us: i64 },
    /// The expression every `step` from `start_us` to `end_us`.
    Range {
        expr: String,
        start_us: i64,
        end_us: i64,
        step: Duration,
    },
}

/// Seconds since the epoch, as the Prometheus API takes them.
fn seconds(us: i64) -> String {
    let (s, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    if frac == 0 {
        s.to_string()
    } else {
        format!("{s}.{frac:06}")
    }
}

impl PromQuery {
    /// The endpoint under `/api/{org}/` and its query parameters.
    pub fn request(&self) -> (&'static str, Vec<(&'static str, String)>) {
        match self {
            PromQuery::Instant { expr, time_us } => (
                "prometheus/api/v1/query",
                vec![("query", expr.clone()), ("time", seconds(*time_us))],
            ),
            PromQuery::Range {
                expr,
                start_us,
                end_us,
                step,
            } => (
                "prometheus/api/v1/query_range",
                vec![
                    ("query", expr.clone()),
                    ("start", seconds(*start_us)),
                    ("end", seconds(*end_us)),
                    // Seconds, the form every Prometheus-compatible API reads.
                    ("step", seconds(step.as_micros() as i64)),
                ],
            ),
        }
    }
}

/// A successful PromQL answer: its `data` object.
#[derive(Debug, Clone, PartialEq)]
pub struct PromAnswer {
    pub result_type: String,
    pub data: Value,
    pub warnings: Vec<String>,
}

/// Runs `q`; an answer with `status: error` is a refused query.
pub async fn query(client: &SearchClient, q: &PromQuery) -> Result<PromAnswer, SearchError> {
    let (endpoint, params) = q.request();
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let text = client.get(endpoint, &params).await?;
    parse_answer(&text)
}

/// Reads a Prometheus API answer.
pub fn parse_answer(text: &str) -> Result<PromAnswer, SearchError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| SearchError::Answer(format!("not a Prometheus API answer: {e}")))?;
    if v.get("status").and_then(Value::as_str) == Some("error") {
        let kind = v
            .get("errorType")
            .and_then(Value::as_str)
            .unwrap_or("error");
        let message = v.get("error").and_then(Value::as_str).unwrap_or("");
        return Err(SearchError::BadQuery {
            message: format!("{kind}: {message}"),
        });
    }
    let data = v
        .get("data")
        .cloned()
        .ok_or_else(|| SearchError::Answer("no `data` in the Prometheus API answer".into()))?;
    let result_type = data
        .get("resultType")
        .and_then(Value::as_str)
        .ok_or_else(|| SearchError::Answer("no `data.resultType`".into()))?
        .to_owned();
    let warnings = v
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(PromAnswer {
        result_type,
        data,
        warnings,
    })
}

/// `name{label="value",...}` of a series' `metric` object (`{}` when it has
/// neither name nor labels).
pub fn series_name(metric: Option<&Value>) -> String {
    let Some(labels) = metric.and_then(Value::as_object) else {
        return "{}".into();
    };
    let name = labels.get("__name__").and_then(Value::as_str).unwrap_or("");
    let pairs: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={}", Value::String(v.as_str().unwrap_or("").to_owned())))
        .collect();
    if pairs.is_empty() && !name.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{}}}", pairs.join(","))
    }
}

/// One row per sample: `series`, `time` (RFC 3339) and `value` (as the API
/// gives it, a string, so `NaN` and `+Inf` survive).
pub fn rows(answer: &PromAnswer) -> Vec<Hit> {
    let result = answer.data.get("result");
    let mut rows = Vec::new();
    let mut push = |series: String, sample: &Value| {
        let Some([t, v]) = sample.as_array().map(Vec::as_slice) else {
            return;
        };
        let time = t
            .as_f64()
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(|t| {
                humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_secs_f64(t))
                    .to_string()
            })
            .unwrap_or_else(|| t.to_string());
        let mut row = Map::new();
        row.insert("series".into(), Value::String(series));
        row.insert("time".into(), Value::String(time));
        row.insert(
            "value".into(),
            Value::String(v.as_str().map_or_else(|| v.to_string(), str::to_owned)),
        );
        rows.push(row);
    };
    match answer.result_type.as_str() {
        "vector" | "matrix" => {
            for series in result.and_then(Value::as_array).into_iter().flatten() {
                let name = series_name(series.get("metric"));
                if let Some(value) = series.get("value") {
                    push(name.clone(), value);
                }
                for value in series
                    .get("values")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    push(name.clone(), value);
                }
            }
        }
        // A scalar or string result is one [time, value] pair.
        _ => {
            if let Some(sample) = result {
                push(answer.result_type.clone(), sample);
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_queries_send_seconds_and_the_step_in_seconds() {
        let q = PromQuery::Range {
            expr: "rate(x[5m])".into(),
            start_us: 1_700_000_000_000_000,
            end_us: 1_700_000_360_500_000,
            step: Duration::from_secs(60),
        };
        let (endpoint, params) = q.request();
        assert_eq!(endpoint, "prometheus/api/v1/query_range");
        assert_eq!(
            params,
            [
                ("query", "rate(x[5m])".to_owned()),
                ("start", "1700000000".to_owned()),
                ("end", "1700000360.500000".to_owned()),
                ("step", "60".to_owned()),
            ]
        );
    }

    #[test]
    fn a_matrix_becomes_one_row_per_sample_with_the_series_labels() {
        let answer = parse_answer(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"__name__":"system_cpu_time","host_name":"pi-1"},"values":[[1700000000,"1.5"],[1700000060,"NaN"]]}]}}"#,
        )
        .unwrap();
        let rows = rows(&answer);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["series"], "system_cpu_time{host_name=\"pi-1\"}");
        assert_eq!(rows[0]["time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(rows[1]["value"], "NaN");
    }

    #[test]
    fn an_error_status_is_a_refused_query_with_its_type() {
        match parse_answer(
            r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#,
        ) {
            Err(SearchError::BadQuery { message }) => {
                assert_eq!(message, "bad_data: parse error at char 5")
            }
            other => panic!("{other:?}"),
        }
    }
}
