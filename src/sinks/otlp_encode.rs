//! Encodes log events into OTLP `ExportLogsServiceRequest`s.
//!
//! Records are grouped by resource (consecutive events sharing one
//! `Arc<Resource>` form one group; equal resources are merged), each record
//! gets `log.record.uid` from its source position. Pure: no I/O, no clocks.

use super::resource_groups::ResourceGroups;
use crate::event::{Event, LogRecord, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1 as otlp_logs;
use opentelemetry_proto::tonic::resource::v1 as otlp_resource;

/// Attribute carrying the deterministic record id.
pub const UID_ATTRIBUTE: &str = "log.record.uid";

/// Builds one request from the log events of `events` (metric events are skipped).
pub fn encode_logs<'a>(events: impl IntoIterator<Item = &'a Event>) -> ExportLogsServiceRequest {
    let mut groups: ResourceGroups<'_, Vec<otlp_logs::LogRecord>> = ResourceGroups::default();
    for event in events {
        let Event::Log(log) = event else { continue };
        groups.group(&log.resource).push(encode_record(log));
    }
    ExportLogsServiceRequest {
        resource_logs: groups
            .into_groups()
            .into_iter()
            .map(|(resource, log_records)| otlp_logs::ResourceLogs {
                resource: Some(otlp_resource::Resource {
                    attributes: encode_attributes(&resource.attributes),
                    ..Default::default()
                }),
                scope_logs: vec![otlp_logs::ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "shipd".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    log_records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

fn encode_record(log: &LogRecord) -> otlp_logs::LogRecord {
    let mut attributes = encode_attributes(&log.attributes);
    if let Some(position) = &log.position {
        attributes.push(key_value(
            UID_ATTRIBUTE,
            any(any_value::Value::StringValue(position.uid())),
        ));
    }
    otlp_logs::LogRecord {
        time_unix_nano: log.time_unix_nano,
        observed_time_unix_nano: log.observed_unix_nano,
        severity_number: i32::from(log.severity_number),
        severity_text: log.severity_text.clone().unwrap_or_default(),
        body: Some(encode_value(&log.body)),
        attributes,
        ..Default::default()
    }
}

fn key_value(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value),
        ..Default::default()
    }
}

fn any(value: any_value::Value) -> AnyValue {
    AnyValue { value: Some(value) }
}

/// Encodes attributes, keeping their order.
pub fn encode_attributes(attributes: &[(crate::event::Str, Value)]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|(k, v)| key_value(k, encode_value(v)))
        .collect()
}

/// Maps a [`Value`] to an OTLP `AnyValue`. Bytes that are UTF-8 become
/// strings; timestamps become RFC 3339 strings (OTLP has no timestamp type).
pub fn encode_value(value: &Value) -> AnyValue {
    use any_value::Value as V;
    match value {
        Value::Null => AnyValue { value: None },
        Value::Bool(b) => any(V::BoolValue(*b)),
        Value::Int(i) => any(V::IntValue(*i)),
        Value::Float(f) => any(V::DoubleValue(*f)),
        Value::String(s) => any(V::StringValue(s.to_string())),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => any(V::StringValue(s.to_owned())),
            Err(_) => any(V::BytesValue(b.to_vec())),
        },
        Value::Timestamp(ns) => any(V::StringValue(crate::event::format_rfc3339(*ns))),
        Value::Array(items) => any(V::ArrayValue(ArrayValue {
            values: items.iter().map(encode_value).collect(),
        })),
        Value::Map(map) => any(V::KvlistValue(KeyValueList {
            values: map
                .iter()
                .map(|(k, v)| key_value(k, encode_value(v)))
                .collect(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Map;
    use crate::event::Position;
    use crate::event::Resource;
    use bytes::Bytes;
    use std::sync::Arc;

    fn resource(service: &str) -> Arc<Resource> {
        Arc::new(Resource {
            attributes: vec![("service.name".into(), Value::from(service))],
        })
    }

    #[test]
    fn records_are_grouped_by_resource() {
        let (a, b) = (resource("a"), resource("b"));
        let events: Vec<Event> = [&a, &b, &a]
            .iter()
            .map(|r| Event::Log(LogRecord::new(Value::from("x"), Arc::clone(r))))
            .collect();
        let req = encode_logs(&events);
        assert_eq!(req.resource_logs.len(), 2);
        assert_eq!(req.resource_logs[0].scope_logs[0].log_records.len(), 2);
        assert_eq!(req.resource_logs[1].scope_logs[0].log_records.len(), 1);
    }

    #[test]
    fn attributes_keep_their_types_and_uid_is_deterministic() {
        let mut log = LogRecord::new(Value::Bytes(Bytes::from_static(b"hello")), resource("a"));
        let mut nested = Map::new();
        nested.insert("inner".to_string().into(), Value::Float(1.5));
        log.attributes = vec![
            ("count".into(), Value::Int(3)),
            ("ok".into(), Value::Bool(true)),
            ("nested".into(), Value::Map(nested)),
        ];
        log.position = Some(Position {
            origin: 9,
            offset: 100,
        });
        let req = encode_logs(&[Event::Log(log.clone())]);
        let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
        use any_value::Value as V;
        assert_eq!(
            rec.body.as_ref().unwrap().value,
            Some(V::StringValue("hello".into()))
        );
        assert_eq!(
            rec.attributes[0].value.as_ref().unwrap().value,
            Some(V::IntValue(3))
        );
        assert_eq!(
            rec.attributes[1].value.as_ref().unwrap().value,
            Some(V::BoolValue(true))
        );
        assert!(matches!(
            rec.attributes[2].value.as_ref().unwrap().value,
            Some(V::KvlistValue(_))
        ));
        let uid = &rec.attributes[3];
        assert_eq!(uid.key, UID_ATTRIBUTE);
        let again = encode_logs(&[Event::Log(log)]);
        assert_eq!(
            again.resource_logs[0].scope_logs[0].log_records[0].attributes[3],
            *uid
        );
    }

    #[test]
    fn non_utf8_bytes_become_bytes_values() {
        let log = LogRecord::new(
            Value::Bytes(Bytes::from_static(&[0xff, 0xfe])),
            resource("a"),
        );
        let req = encode_logs(&[Event::Log(log)]);
        let body = req.resource_logs[0].scope_logs[0].log_records[0]
            .body
            .clone()
            .unwrap();
        assert_eq!(
            body.value,
            Some(any_value::Value::BytesValue(vec![0xff, 0xfe]))
        );
    }
}
