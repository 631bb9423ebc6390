//! Writes an OTLP `ExportLogsServiceRequest` as protobuf bytes straight from
//! log events, without building the prost message tree first: no String copy
//! of bodies or keys, no per-record allocation (the uid is hex-formatted on
//! the stack). The bytes are exactly what [`super::otlp_encode::encode_logs`]
//! followed by prost's `encode_to_vec` produce (same grouping, field order
//! and defaults), which the tests check; the HTTP sink uses this, gRPC
//! (whose codec wants the prost message) uses `encode_logs`.
//! Pure: no I/O, no clocks.

use super::otlp_encode::UID_ATTRIBUTE;
use super::resource_groups::ResourceGroups;
use crate::event::{Event, LogRecord, Value};
use prost::encoding::{encode_varint, encoded_len_varint};

const LEN: u32 = 2;
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const SCOPE_NAME: &str = "shipd";
const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Appends the request encoding the log events of `events` (metric events
/// are skipped) to `out`.
pub fn write_logs_request(events: &[Event], out: &mut Vec<u8>) {
    let mut groups: ResourceGroups<'_, Vec<&LogRecord>> = ResourceGroups::default();
    for event in events {
        let Event::Log(log) = event else { continue };
        groups.group(&log.resource).push(log);
    }
    let groups = groups.into_groups();
    let scope_len = str_field_len(1, SCOPE_NAME) + str_field_len(2, SCOPE_VERSION);
    let mut record_lens = Vec::new();
    for (resource, records) in groups {
        record_lens.clear();
        record_lens.extend(records.iter().map(|r| record_len(r)));
        let resource_len: usize = kvs_len(1, &resource.attributes);
        let scope_logs_len =
            nested_len(1, scope_len) + record_lens.iter().map(|&l| nested_len(2, l)).sum::<usize>();
        let resource_logs_len = nested_len(1, resource_len) + nested_len(2, scope_logs_len);
        // ExportLogsServiceRequest.resource_logs = 1
        header(1, resource_logs_len, out);
        // ResourceLogs.resource = 1
        header(1, resource_len, out);
        for (k, v) in &resource.attributes {
            write_kv(1, k, v, out);
        }
        // ResourceLogs.scope_logs = 2
        header(2, scope_logs_len, out);
        // ScopeLogs.scope = 1
        header(1, scope_len, out);
        write_str(1, SCOPE_NAME, out);
        write_str(2, SCOPE_VERSION, out);
        // ScopeLogs.log_records = 2
        for (record, &len) in records.iter().zip(&record_lens) {
            header(2, len, out);
            write_record(record, out);
        }
    }
}

fn key(tag: u32, wire_type: u32, out: &mut Vec<u8>) {
    encode_varint(u64::from(tag << 3 | wire_type), out);
}

/// Key and length of a length-delimited field.
fn header(tag: u32, len: usize, out: &mut Vec<u8>) {
    key(tag, LEN, out);
    encode_varint(len as u64, out);
}

fn key_len(tag: u32) -> usize {
    encoded_len_varint(u64::from(tag << 3))
}

/// Encoded size of a length-delimited field whose payload is `len` bytes.
fn nested_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A non-empty string field (prost skips empty ones).
fn str_field_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        nested_len(tag, s.len())
    }
}

fn write_str(tag: u32, s: &str, out: &mut Vec<u8>) {
    if !s.is_empty() {
        write_bytes(tag, s.as_bytes(), out);
    }
}

fn write_bytes(tag: u32, b: &[u8], out: &mut Vec<u8>) {
    header(tag, b.len(), out);
    out.extend_from_slice(b);
}

fn write_fixed64(tag: u32, v: u64, out: &mut Vec<u8>) {
    key(tag, FIXED64, out);
    out.extend_from_slice(&v.to_le_bytes());
}

fn write_varint(tag: u32, v: u64, out: &mut Vec<u8>) {
    key(tag, VARINT, out);
    encode_varint(v, out);
}

/// The uid attribute value of a record, hex on the stack.
fn uid(log: &LogRecord) -> Option<[u8; 32]> {
    log.position.as_ref().map(|p| p.uid_hex())
}

fn record_len(log: &LogRecord) -> usize {
    let mut len = 0;
    if log.time_unix_nano != 0 {
        len += key_len(1) + 8;
    }
    if log.observed_unix_nano != 0 {
        len += key_len(11) + 8;
    }
    if log.severity_number != 0 {
        len += key_len(2) + encoded_len_varint(u64::from(log.severity_number));
    }
    len += str_field_len(3, log.severity_text.as_deref().unwrap_or_default());
    len += nested_len(5, value_len(&log.body));
    len += kvs_len(6, &log.attributes);
    if log.position.is_some() {
        len += nested_len(6, uid_kv_len());
    }
    len
}

fn write_record(log: &LogRecord, out: &mut Vec<u8>) {
    // prost writes fields in tag order: observed time (11) comes last.
    if log.time_unix_nano != 0 {
        write_fixed64(1, log.time_unix_nano, out);
    }
    if log.severity_number != 0 {
        write_varint(2, u64::from(log.severity_number), out);
    }
    write_str(3, log.severity_text.as_deref().unwrap_or_default(), out);
    header(5, value_len(&log.body), out);
    write_value(&log.body, out);
    for (k, v) in &log.attributes {
        write_kv(6, k, v, out);
    }
    if let Some(hex) = uid(log) {
        header(6, uid_kv_len(), out);
        write_str(1, UID_ATTRIBUTE, out);
        header(2, nested_len(1, hex.len()), out);
        write_bytes(1, &hex, out);
    }
    if log.observed_unix_nano != 0 {
        write_fixed64(11, log.observed_unix_nano, out);
    }
}

/// `KeyValue { key: "log.record.uid", value: AnyValue::StringValue(32 hex) }`.
fn uid_kv_len() -> usize {
    str_field_len(1, UID_ATTRIBUTE) + nested_len(2, nested_len(1, 32))
}

/// Encoded size of repeated `KeyValue` field `tag`.
fn kvs_len(tag: u32, kvs: &[(crate::event::Str, Value)]) -> usize {
    kvs.iter().map(|(k, v)| nested_len(tag, kv_len(k, v))).sum()
}

fn kv_len(k: &str, v: &Value) -> usize {
    str_field_len(1, k) + nested_len(2, value_len(v))
}

fn write_kv(tag: u32, k: &str, v: &Value, out: &mut Vec<u8>) {
    // A nested value's size walks all of it: measured once per level.
    let len = value_len(v);
    header(tag, str_field_len(1, k) + nested_len(2, len), out);
    write_str(1, k, out);
    header(2, len, out);
    write_value(v, out);
}

/// Payload size of the `AnyValue` message for `v` (see
/// [`super::otlp_encode::encode_value`] for the mapping).
fn value_len(v: &Value) -> usize {
    match v {
        Value::Null => 0,
        Value::Bool(_) => key_len(2) + 1,
        Value::Int(i) => key_len(3) + encoded_len_varint(*i as u64),
        Value::Float(_) => key_len(4) + 8,
        Value::String(s) => nested_len(1, s.len()),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(_) => nested_len(1, b.len()),
            Err(_) => nested_len(7, b.len()),
        },
        Value::Timestamp(_) => nested_len(1, crate::event::time::RFC3339_LEN),
        Value::Array(items) => nested_len(5, array_len(items)),
        Value::Map(map) => nested_len(
            6,
            map.iter().map(|(k, v)| nested_len(1, kv_len(k, v))).sum(),
        ),
    }
}

fn array_len(items: &[Value]) -> usize {
    items.iter().map(|v| nested_len(1, value_len(v))).sum()
}

fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => {}
        Value::Bool(b) => write_varint(2, u64::from(*b), out),
        Value::Int(i) => write_varint(3, *i as u64, out),
        Value::Float(f) => write_fixed64(4, f.to_bits(), out),
        // Oneof members are written even when empty.
        Value::String(s) => write_bytes(1, s.as_bytes(), out),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(_) => write_bytes(1, b, out),
            Err(_) => write_bytes(7, b, out),
        },
        Value::Timestamp(ns) => write_bytes(1, &crate::event::time::rfc3339(*ns), out),
        Value::Array(items) => {
            header(5, array_len(items), out);
            for item in items {
                header(1, value_len(item), out);
                write_value(item, out);
            }
        }
        Value::Map(map) => {
            header(
                6,
                map.iter().map(|(k, v)| nested_len(1, kv_len(k, v))).sum(),
                out,
            );
            for (k, v) in map {
                write_kv(1, k, v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Map;
    use crate::event::Position;
    use crate::event::Resource;
    use bytes::Bytes;
    use prost::Message;
    use std::sync::Arc;

    fn resource(service: &str) -> Arc<Resource> {
        Arc::new(Resource {
            attributes: vec![
                ("service.name".into(), Value::from(service)),
                ("host.name".into(), Value::from("pi-node-03")),
            ],
        })
    }

    fn assert_same_bytes(events: &[Event]) {
        let expected = super::super::otlp_encode::encode_logs(events).encode_to_vec();
        let mut written = Vec::new();
        write_logs_request(events, &mut written);
        assert_eq!(written, expected);
    }

    #[test]
    fn bytes_equal_prost_for_every_value_kind() {
        let (a, b) = (resource("a"), resource("b"));
        let mut nested = Map::new();
        nested.insert("inner".into(), Value::Float(-1.5));
        nested.insert("empty".into(), Value::from(""));
        nested.insert(
            "list".into(),
            Value::Array(vec![Value::Null, Value::Int(-7), Value::Bool(false)]),
        );
        let mut full = LogRecord::new(
            Value::Bytes(Bytes::from_static(b"GET / 200")),
            Arc::clone(&a),
        );
        full.severity_number = 17;
        full.severity_text = Some("ERROR".into());
        full.attributes = vec![
            ("count".into(), Value::Int(i64::MAX)),
            ("neg".into(), Value::Int(-1)),
            ("ok".into(), Value::Bool(true)),
            ("nothing".into(), Value::Null),
            ("at".into(), Value::Timestamp(1_764_000_000_123_456_789)),
            // Before 1970: humantime's formatter panicked on it.
            ("before_1970".into(), Value::Timestamp(-1)),
            ("nested".into(), Value::Map(nested)),
            ("".into(), Value::String("empty key".into())),
        ];
        full.position = Some(Position {
            origin: 9,
            offset: 100,
        });
        let mut bare = LogRecord::new(Value::Null, Arc::clone(&b));
        bare.time_unix_nano = 0;
        bare.observed_unix_nano = 0;
        let binary = LogRecord::new(
            Value::Bytes(Bytes::from_static(&[0xff, 0x00])),
            Arc::clone(&a),
        );
        let big = LogRecord::new(Value::String("x".repeat(70_000).into()), resource("a"));
        let events: Vec<Event> = [full, bare, binary, big]
            .into_iter()
            .map(Event::Log)
            .collect();
        assert_same_bytes(&events);
        assert_same_bytes(&[]);
    }

    #[test]
    fn metric_events_are_skipped_like_prost() {
        let r = resource("m");
        let events = vec![
            Event::Metric(crate::event::MetricPoint::new(
                "x",
                "",
                crate::event::MetricKind::Gauge,
                1.0,
                5,
                Arc::clone(&r),
            )),
            Event::Log(LogRecord::new(Value::from("line"), r)),
        ];
        assert_same_bytes(&events);
    }

    #[test]
    fn uid_hex_is_the_128_bit_hash_in_lowercase_hex() {
        let p = Position {
            origin: 0xdead_beef,
            offset: 42,
        };
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&p.origin.to_le_bytes());
        key[8..].copy_from_slice(&p.offset.to_le_bytes());
        let expected = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&key));
        assert_eq!(&p.uid_hex()[..], expected.as_bytes());
        assert_eq!(p.uid(), expected);
    }
}
