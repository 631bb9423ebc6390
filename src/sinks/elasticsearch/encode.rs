//! Events as `_bulk` items: an action line `{"create":{"_index":...}}` and
//! the event as one JSON document, each line ending in `\n` (NDJSON). A log
//! record becomes `@timestamp`, `observed_timestamp`, `message` (the body,
//! structured bodies kept as objects), `severity`, `severity_number`,
//! `attributes` (with `log.record.uid` for replayable records) and
//! `resource`; a metric point `@timestamp`, `name`, `kind`, `unit`,
//! `value` (and `count`, `sum` of histograms and summaries), `labels` and
//! `resource`. Pure: no I/O.

use crate::event::{format_rfc3339, Attributes, Distribution, Event};
use crate::lang::functions::to_json;
use crate::sinks::otlp_encode::UID_ATTRIBUTE;
use serde_json::{json, Map, Value};

/// Appends the action line and the document of `event` to `out`.
pub fn write_item(index: &str, event: &Event, out: &mut Vec<u8>) {
    let action = json!({ "create": { "_index": index } });
    // Writing JSON values into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &action);
    out.push(b'\n');
    let _ = serde_json::to_writer(&mut *out, &document(event));
    out.push(b'\n');
}

/// The JSON document of one event.
pub fn document(event: &Event) -> Value {
    match event {
        Event::Log(log) => {
            let time = if log.time_unix_nano != 0 {
                log.time_unix_nano
            } else {
                log.observed_unix_nano
            };
            let mut doc = Map::new();
            doc.insert("@timestamp".into(), json!(format_rfc3339(time as i64)));
            if log.observed_unix_nano != 0 {
                doc.insert(
                    "observed_timestamp".into(),
                    json!(format_rfc3339(log.observed_unix_nano as i64)),
                );
            }
            doc.insert("message".into(), to_json(&log.body));
            if let Some(text) = &log.severity_text {
                doc.insert("severity".into(), json!(text));
            }
            if log.severity_number != 0 {
                doc.insert("severity_number".into(), json!(log.severity_number));
            }
            let mut attributes = object(&log.attributes);
            if let Some(position) = &log.position {
                let hex = position.uid_hex();
                attributes.insert(UID_ATTRIBUTE.into(), json!(String::from_utf8_lossy(&hex)));
            }
            doc.insert("attributes".into(), Value::Object(attributes));
            doc.insert(
                "resource".into(),
                Value::Object(object(&log.resource.attributes)),
            );
            Value::Object(doc)
        }
        Event::Metric(m) => {
            let mut doc = json!({
                "@timestamp": format_rfc3339(m.time_unix_nano as i64),
                "name": m.name,
                "kind": m.kind.name(),
                "unit": m.unit,
                "value": finite(m.value),
                "labels": Value::Object(object(&m.labels)),
                "resource": Value::Object(object(&m.resource.attributes)),
            });
            if let (Some(dist), Value::Object(doc)) = (&m.distribution, &mut doc) {
                let (count, sum) = match &**dist {
                    Distribution::Histogram { count, sum, .. }
                    | Distribution::Summary { count, sum, .. } => (*count, *sum),
                };
                doc.insert("count".into(), json!(count));
                doc.insert("sum".into(), finite(sum));
            }
            doc
        }
    }
}

/// JSON has no NaN or infinity: those become `null`.
fn finite(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn object(attributes: &Attributes) -> Map<String, Value> {
    attributes
        .iter()
        .map(|(k, v)| (k.to_string(), to_json(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LogRecord, MetricKind, Resource, Value as V};
    use std::sync::Arc;

    #[test]
    fn a_log_record_is_an_action_line_and_a_document_line() {
        let resource = Arc::new(Resource {
            attributes: vec![("host.name".into(), V::String("pi-1".into()))],
        });
        let mut log = LogRecord::new(V::String("GET / 200".into()), resource);
        log.time_unix_nano = 1_764_064_800_000_000_000;
        log.severity_text = Some("INFO".into());
        log.severity_number = 9;
        log.attributes.push(("http.status".into(), V::Int(200)));
        let mut out = Vec::new();
        write_item("web_logs", &Event::Log(log), &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], r#"{"create":{"_index":"web_logs"}}"#);
        let doc: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(doc["@timestamp"], "2025-11-25T10:00:00.000000000Z");
        assert_eq!(doc["message"], "GET / 200");
        assert_eq!(doc["severity"], "INFO");
        assert_eq!(doc["severity_number"], 9);
        assert_eq!(doc["attributes"]["http.status"], 200);
        assert_eq!(doc["resource"]["host.name"], "pi-1");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn a_metric_value_that_json_cannot_hold_is_null() {
        let m = crate::event::MetricPoint::new(
            "temp",
            "Cel",
            MetricKind::Gauge,
            f64::NAN,
            1,
            Arc::new(Resource::default()),
        );
        let doc = document(&Event::Metric(m));
        assert_eq!(doc["name"], "temp");
        assert_eq!(doc["kind"], "gauge");
        assert!(doc["value"].is_null());
    }
}
