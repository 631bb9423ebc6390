//! Maps one journal entry onto a [`LogRecord`]: body, severity, timestamp,
//! attributes and the resource. The mapping is a contract (documented in the
//! module doc of [`super`] and the README); this module does no I/O.

use super::export::ExportEntry;
use crate::event::{LogRecord, Resource, Value};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

/// OTLP severity number and the syslog keyword of a `PRIORITY` value.
///
/// Follows the syslog row of the OpenTelemetry log data model's example
/// mappings: emerg → FATAL (21), alert → ERROR3 (19), crit → ERROR2 (18),
/// err → ERROR (17), warning → WARN (13), notice → INFO2 (10),
/// info → INFO (9), debug → DEBUG (5).
pub fn severity(priority: &[u8]) -> Option<(u8, &'static str)> {
    Some(match priority {
        b"0" => (21, "emerg"),
        b"1" => (19, "alert"),
        b"2" => (18, "crit"),
        b"3" => (17, "err"),
        b"4" => (13, "warning"),
        b"5" => (10, "notice"),
        b"6" => (9, "info"),
        b"7" => (5, "debug"),
        _ => return None,
    })
}

/// How one journal field becomes part of a record.
#[derive(Debug, PartialEq, Eq)]
pub enum FieldRole {
    /// Used for the body, severity or timestamp, or a journal address field
    /// (`__CURSOR`, `__SEQNUM`, ...): not repeated as an attribute.
    Consumed,
    /// An attribute with a string value.
    Text(String),
    /// An attribute with an integer value (kept as text when not a number).
    Int(String),
}

/// The attribute a journal field becomes.
pub fn field_role(name: &[u8]) -> FieldRole {
    let named = |n: &str| FieldRole::Text(n.to_owned());
    match name {
        b"MESSAGE" | b"PRIORITY" | b"_SOURCE_REALTIME_TIMESTAMP" => FieldRole::Consumed,
        n if n.starts_with(b"__") => FieldRole::Consumed,
        b"_SYSTEMD_UNIT" => named("systemd.unit"),
        b"_SYSTEMD_USER_UNIT" => named("systemd.user_unit"),
        b"_BOOT_ID" => named("systemd.boot_id"),
        b"SYSLOG_IDENTIFIER" => named("syslog.identifier"),
        b"SYSLOG_FACILITY" => FieldRole::Int("syslog.facility".into()),
        b"_PID" => FieldRole::Int("process.pid".into()),
        b"_COMM" => named("process.executable.name"),
        b"_EXE" => named("process.executable.path"),
        b"_CMDLINE" => named("process.command_line"),
        b"_HOSTNAME" => named("host.hostname"),
        other => {
            let mut key = String::with_capacity(9 + other.len());
            key.push_str("journald.");
            key.extend(other.iter().map(|b| b.to_ascii_lowercase() as char));
            FieldRole::Text(key)
        }
    }
}

/// A value as text: zero-copy when it is UTF-8, lossy otherwise.
fn text(value: &Bytes, invalid_utf8: &mut u64) -> Value {
    match std::str::from_utf8(value) {
        Ok(_) => Value::Bytes(value.clone()),
        Err(_) => {
            *invalid_utf8 += 1;
            Value::String(String::from_utf8_lossy(value).into_owned().into())
        }
    }
}

fn micros_to_nanos(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value)
        .ok()?
        .parse::<u64>()
        .ok()?
        .checked_mul(1000)
}

/// The `service.name` of an entry: its unit without `.service`, else its
/// syslog identifier.
pub fn service_name(entry: &ExportEntry) -> Option<&str> {
    if let Some(unit) = entry.get(b"_SYSTEMD_UNIT") {
        let unit = std::str::from_utf8(unit).ok()?;
        return Some(unit.strip_suffix(".service").unwrap_or(unit));
    }
    entry
        .get(b"SYSLOG_IDENTIFIER")
        .and_then(|id| std::str::from_utf8(id).ok())
}

/// At most this many distinct resources are cached (one per service).
const MAX_RESOURCES: usize = 1024;

/// Builds records, sharing one [`Resource`] per service.
#[derive(Debug)]
pub struct RecordMapper {
    source_name: String,
    host_name: String,
    resources: HashMap<String, Arc<Resource>>,
}

/// A mapped entry and how many of its values were not valid UTF-8.
#[derive(Debug)]
pub struct Mapped {
    pub record: LogRecord,
    pub invalid_utf8: u64,
}

impl RecordMapper {
    pub fn new(source_name: impl Into<String>, host_name: impl Into<String>) -> Self {
        RecordMapper {
            source_name: source_name.into(),
            host_name: host_name.into(),
            resources: HashMap::new(),
        }
    }

    fn resource(&mut self, service: Option<&str>) -> Arc<Resource> {
        let service = service.unwrap_or(&self.source_name);
        if let Some(r) = self.resources.get(service) {
            return Arc::clone(r);
        }
        if self.resources.len() >= MAX_RESOURCES {
            self.resources.clear();
        }
        let resource = Arc::new(Resource {
            attributes: vec![
                (
                    "host.name".into(),
                    Value::String(self.host_name.clone().into()),
                ),
                (
                    "service.name".into(),
                    Value::String(service.to_owned().into()),
                ),
                (
                    "shipd.source".into(),
                    Value::String(self.source_name.clone().into()),
                ),
            ],
        });
        self.resources
            .insert(service.to_owned(), Arc::clone(&resource));
        resource
    }

    /// The record of `entry`, observed at `observed_unix_nano`.
    pub fn map(&mut self, entry: &ExportEntry, observed_unix_nano: u64) -> Mapped {
        let mut invalid_utf8 = 0;
        let resource = self.resource(service_name(entry));
        let body = match entry.get(b"MESSAGE") {
            Some(message) => text(message, &mut invalid_utf8),
            None => Value::String(String::new().into()),
        };
        let mut record = LogRecord::new(body, resource);
        record.observed_unix_nano = observed_unix_nano;
        record.time_unix_nano = entry
            .get(b"_SOURCE_REALTIME_TIMESTAMP")
            .and_then(|v| micros_to_nanos(v))
            .or_else(|| {
                entry
                    .get(b"__REALTIME_TIMESTAMP")
                    .and_then(|v| micros_to_nanos(v))
            })
            .unwrap_or(observed_unix_nano);
        if let Some(p) = entry.get(b"PRIORITY") {
            match severity(p) {
                Some((number, name)) => {
                    record.severity_number = number;
                    record.severity_text = Some(name.to_owned());
                }
                None => record
                    .attributes
                    .push(("journald.priority".into(), text(p, &mut invalid_utf8))),
            }
        }
        record.attributes.reserve(entry.fields.len());
        for (name, value) in &entry.fields {
            let (key, value) = match field_role(name) {
                FieldRole::Consumed => continue,
                FieldRole::Text(key) => (key, text(value, &mut invalid_utf8)),
                FieldRole::Int(key) => {
                    let number = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<i64>().ok());
                    match number {
                        Some(n) => (key, Value::Int(n)),
                        None => (key, text(value, &mut invalid_utf8)),
                    }
                }
            };
            push_attribute(&mut record.attributes, key, value);
        }
        if entry.truncated {
            record
                .attributes
                .push(("shipd.truncated".into(), Value::Bool(true)));
        }
        Mapped {
            record,
            invalid_utf8,
        }
    }
}

/// Adds an attribute; a field that repeats in one entry becomes an array.
fn push_attribute(attributes: &mut crate::event::Attributes, key: String, value: Value) {
    let Some(i) = attributes.iter().position(|(k, _)| *k == key) else {
        attributes.push((key.into(), value));
        return;
    };
    match &mut attributes[i].1 {
        Value::Array(items) => items.push(value),
        slot => {
            let first = std::mem::replace(slot, Value::Null);
            *slot = Value::Array(vec![first, value]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::journald::export::{write_entry, ExportParser};

    fn entry(fields: &[(&str, &[u8])]) -> ExportEntry {
        let mut input = Vec::new();
        write_entry(&mut input, fields);
        let mut p = ExportParser::new(1 << 20);
        p.push(&input);
        p.next_entry().unwrap().unwrap()
    }

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a Value> {
        r.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    #[test]
    fn fields_map_to_body_severity_time_and_named_attributes() {
        let e = entry(&[
            ("__CURSOR", b"s=1"),
            ("__REALTIME_TIMESTAMP", b"1700000000000000"),
            ("_SOURCE_REALTIME_TIMESTAMP", b"1699999999123456"),
            ("MESSAGE", b"disk full"),
            ("PRIORITY", b"3"),
            ("_SYSTEMD_UNIT", b"nginx.service"),
            ("SYSLOG_IDENTIFIER", b"nginx"),
            ("_PID", b"4242"),
            ("_HOSTNAME", b"pi1"),
            ("_BOOT_ID", b"abc"),
            ("CODE_LINE", b"17"),
        ]);
        let mut mapper = RecordMapper::new("journald", "node-a");
        let Mapped {
            record,
            invalid_utf8,
        } = mapper.map(&e, 5);
        assert_eq!(invalid_utf8, 0);
        assert_eq!(record.body.as_str(), Some("disk full"));
        assert_eq!(record.time_unix_nano, 1_699_999_999_123_456_000);
        assert_eq!(record.observed_unix_nano, 5);
        assert_eq!(record.severity_number, 17);
        assert_eq!(record.severity_text.as_deref(), Some("err"));
        assert_eq!(
            attr(&record, "systemd.unit").and_then(Value::as_str),
            Some("nginx.service")
        );
        assert_eq!(attr(&record, "process.pid"), Some(&Value::Int(4242)));
        assert_eq!(
            attr(&record, "host.hostname").and_then(Value::as_str),
            Some("pi1")
        );
        assert_eq!(
            attr(&record, "journald.code_line").and_then(Value::as_str),
            Some("17")
        );
        assert!(attr(&record, "journald.__cursor").is_none());
        assert!(attr(&record, "journald.message").is_none());
        let service = record
            .resource
            .attributes
            .iter()
            .find(|(k, _)| k == "service.name");
        assert_eq!(service.and_then(|(_, v)| v.as_str()), Some("nginx"));
    }

    #[test]
    fn realtime_timestamp_is_the_fallback_and_identifier_names_the_service() {
        let e = entry(&[
            ("__REALTIME_TIMESTAMP", b"1700000000000001"),
            ("MESSAGE", b"m"),
            ("SYSLOG_IDENTIFIER", b"cron"),
        ]);
        let record = RecordMapper::new("journald", "n").map(&e, 5).record;
        assert_eq!(record.time_unix_nano, 1_700_000_000_000_001_000);
        assert_eq!(record.severity_number, 0);
        let service = record
            .resource
            .attributes
            .iter()
            .find(|(k, _)| k == "service.name");
        assert_eq!(service.and_then(|(_, v)| v.as_str()), Some("cron"));
    }

    #[test]
    fn binary_message_is_kept_lossily_and_counted() {
        let e = entry(&[("MESSAGE", b"bad \xff byte")]);
        let mapped = RecordMapper::new("journald", "n").map(&e, 5);
        assert_eq!(mapped.invalid_utf8, 1);
        assert_eq!(mapped.record.body.as_str(), Some("bad \u{fffd} byte"));
    }

    #[test]
    fn repeated_fields_become_arrays() {
        let e = entry(&[("MESSAGE", b"m"), ("TAG", b"a"), ("TAG", b"b")]);
        let record = RecordMapper::new("journald", "n").map(&e, 5).record;
        let tags = attr(&record, "journald.tag").unwrap();
        let Value::Array(items) = tags else {
            panic!("expected array, got {tags:?}")
        };
        let texts: Vec<_> = items.iter().filter_map(Value::as_str).collect();
        assert_eq!(texts, vec!["a", "b"]);
    }

    #[test]
    fn every_syslog_priority_has_an_otel_severity() {
        let numbers: Vec<u8> = (0..8)
            .map(|p| severity(p.to_string().as_bytes()).unwrap().0)
            .collect();
        assert_eq!(numbers, vec![21, 19, 18, 17, 13, 10, 9, 5]);
        assert_eq!(severity(b"9"), None);
    }
}
