//! One forward entry `(tag, time, record)` as a [`LogRecord`].
//!
//! - The tag becomes the attribute `fluent.tag`; the time the event time.
//! - Docker's `fluentd` log driver (records with `container_id`) is mapped
//!   the way the docker file source maps `json-file` logs: the resource gets
//!   `container.id`, `container.name` (without docker's leading `/`) and
//!   `service.name` (the compose service when the driver was told to send
//!   the `com.docker.compose.service` label, else the container name, and
//!   `compose.project` from `com.docker.compose.project`); `source`
//!   (`stdout`/`stderr`) becomes `log.iostream`; `log` the body.
//! - Any record: the body is `log` (one trailing newline cut), else
//!   `message`, else empty; every other field becomes an attribute of the
//!   same name, nested maps and arrays kept as they are.
//!
//! The resource of the last container seen is kept, so a connection that
//! carries one container's logs shares one resource among its records.

use super::decode::Record;
use crate::event::{LogRecord, Map, Resource, Str, Value};
use rmpv::ValueRef;
use std::sync::Arc;

/// The attribute that carries an event's fluentd tag.
pub const TAG_ATTRIBUTE: &str = "fluent.tag";

/// Builds records for one source (one per connection, for its resource cache).
#[derive(Debug)]
pub struct RecordMapper {
    host_name: Str,
    source: Str,
    plain: Arc<Resource>,
    container: Option<(ContainerKey, Arc<Resource>)>,
}

#[derive(Debug, Default, PartialEq)]
struct ContainerKey {
    id: Str,
    name: Str,
    project: Option<Str>,
    service: Option<Str>,
}

impl RecordMapper {
    pub fn new(source: &str, host_name: &str) -> Self {
        let plain = Resource {
            attributes: vec![
                ("host.name".into(), Value::from(host_name)),
                ("shipd.source".into(), Value::from(source)),
                ("service.name".into(), Value::from(source)),
            ],
        };
        RecordMapper {
            host_name: host_name.into(),
            source: source.into(),
            plain: Arc::new(plain),
            container: None,
        }
    }

    /// The log record of one entry.
    pub fn log(&mut self, tag: &str, time_unix_nano: u64, record: Record<'_>) -> LogRecord {
        let mut body = None;
        let mut message = None;
        let mut container = ContainerKey::default();
        let mut is_container = false;
        let mut attributes = Vec::with_capacity(record.len() + 1);
        attributes.push((Str::from(TAG_ATTRIBUTE), Value::from(tag)));
        for (key, value) in record {
            let key = key_of(key);
            match (key.as_str(), &value) {
                ("log", ValueRef::String(_) | ValueRef::Binary(_)) if body.is_none() => {
                    body = Some(text_of(value));
                    continue;
                }
                ("message", ValueRef::String(_)) if message.is_none() => {
                    message = Some(text_of(value));
                    continue;
                }
                ("container_id", ValueRef::String(_)) => {
                    container.id = text_of(value);
                    is_container = true;
                    continue;
                }
                ("container_name", ValueRef::String(_)) => {
                    let name = text_of(value);
                    container.name = name.strip_prefix('/').unwrap_or(&name).into();
                    continue;
                }
                ("com.docker.compose.project", ValueRef::String(_)) => {
                    container.project = Some(text_of(value));
                    continue;
                }
                ("com.docker.compose.service", ValueRef::String(_)) => {
                    container.service = Some(text_of(value));
                    continue;
                }
                ("source", ValueRef::String(s))
                    if matches!(s.as_str(), Some("stdout" | "stderr")) =>
                {
                    attributes.push(("log.iostream".into(), Value::from(text_of(value))));
                    continue;
                }
                _ => {}
            }
            attributes.push((key, value_of(value)));
        }
        let body = match (body, message) {
            (Some(log), message) => {
                if let Some(message) = message {
                    attributes.push(("message".into(), Value::String(message)));
                }
                let text = log.strip_suffix('\n').unwrap_or(&log);
                let text = text.strip_suffix('\r').unwrap_or(text);
                Value::String(text.into())
            }
            (None, Some(message)) => Value::String(message),
            (None, None) => Value::String(Str::default()),
        };
        let resource = if is_container {
            self.container_resource(container)
        } else {
            self.keep_fields_of_a_non_container(&mut attributes, container);
            Arc::clone(&self.plain)
        };
        let mut log = LogRecord::new(body, resource);
        if time_unix_nano > 0 {
            log.time_unix_nano = time_unix_nano;
        }
        log.attributes = attributes;
        log
    }

    /// Docker-looking fields of a record without `container_id` stay
    /// attributes under their own names.
    fn keep_fields_of_a_non_container(&self, attributes: &mut Vec<(Str, Value)>, c: ContainerKey) {
        if !c.name.is_empty() {
            attributes.push(("container_name".into(), Value::String(c.name)));
        }
        if let Some(p) = c.project {
            attributes.push(("com.docker.compose.project".into(), Value::String(p)));
        }
        if let Some(s) = c.service {
            attributes.push(("com.docker.compose.service".into(), Value::String(s)));
        }
    }

    fn container_resource(&mut self, key: ContainerKey) -> Arc<Resource> {
        if let Some((last, resource)) = &self.container {
            if *last == key {
                return Arc::clone(resource);
            }
        }
        let mut attributes = vec![
            ("host.name".into(), Value::String(self.host_name.clone())),
            ("shipd.source".into(), Value::String(self.source.clone())),
            ("container.id".into(), Value::String(key.id.clone())),
        ];
        if !key.name.is_empty() {
            attributes.push(("container.name".into(), Value::String(key.name.clone())));
        }
        if let Some(project) = &key.project {
            attributes.push(("compose.project".into(), Value::String(project.clone())));
        }
        let service = key
            .service
            .clone()
            .or_else(|| (!key.name.is_empty()).then(|| key.name.clone()))
            .unwrap_or_else(|| self.source.clone());
        attributes.push(("service.name".into(), Value::String(service)));
        let resource = Arc::new(Resource { attributes });
        self.container = Some((key, Arc::clone(&resource)));
        resource
    }
}

fn text_of(v: ValueRef<'_>) -> Str {
    match v {
        ValueRef::String(s) => match s.as_str() {
            Some(s) => s.into(),
            None => String::from_utf8_lossy(&s.into_bytes()).as_ref().into(),
        },
        ValueRef::Binary(b) => String::from_utf8_lossy(b).as_ref().into(),
        other => Str::from(format!("{other}")),
    }
}

fn key_of(v: ValueRef<'_>) -> Str {
    text_of(v)
}

/// A msgpack value as an event value: EventTime becomes a timestamp, bin
/// stays bytes, integers past `i64` become floats.
pub fn value_of(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Nil => Value::Null,
        ValueRef::Boolean(b) => Value::Bool(b),
        ValueRef::Integer(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        ValueRef::F32(f) => Value::Float(f64::from(f)),
        ValueRef::F64(f) => Value::Float(f),
        ValueRef::String(_) => Value::String(text_of(v)),
        ValueRef::Binary(b) => Value::Bytes(bytes::Bytes::copy_from_slice(b)),
        ValueRef::Array(items) => Value::Array(items.into_iter().map(value_of).collect()),
        ValueRef::Map(entries) => Value::Map(Map::from_entries(
            entries
                .into_iter()
                .map(|(k, v)| (key_of(k), value_of(v)))
                .collect(),
        )),
        ValueRef::Ext(0, b) if b.len() == 8 => match super::decode::time_of(&v) {
            Ok(ns) => Value::Timestamp(ns as i64),
            Err(_) => Value::Bytes(bytes::Bytes::copy_from_slice(b)),
        },
        ValueRef::Ext(_, b) => Value::Bytes(bytes::Bytes::copy_from_slice(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> ValueRef<'_> {
        ValueRef::from(text)
    }

    fn attr<'a>(log: &'a LogRecord, key: &str) -> Option<&'a Value> {
        log.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    fn res<'a>(log: &'a LogRecord, key: &str) -> Option<&'a Value> {
        log.resource
            .attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn docker_log_driver_fields_map_like_the_docker_file_source() {
        let mut mapper = RecordMapper::new("fluent", "pi-1");
        let record = vec![
            (s("container_id"), s("0123abcd")),
            (s("container_name"), s("/shop-api-1")),
            (s("source"), s("stderr")),
            (s("log"), s("boom\n")),
        ];
        let log = mapper.log("docker.api", 5, record.clone());
        assert_eq!(log.body, Value::from("boom"));
        assert_eq!(log.time_unix_nano, 5);
        assert_eq!(attr(&log, "fluent.tag"), Some(&Value::from("docker.api")));
        assert_eq!(attr(&log, "log.iostream"), Some(&Value::from("stderr")));
        assert_eq!(res(&log, "container.id"), Some(&Value::from("0123abcd")));
        assert_eq!(
            res(&log, "container.name"),
            Some(&Value::from("shop-api-1"))
        );
        assert_eq!(res(&log, "service.name"), Some(&Value::from("shop-api-1")));
        assert_eq!(log.attributes.len(), 2, "{:?}", log.attributes);
        let again = mapper.log("docker.api", 6, record);
        assert!(
            Arc::ptr_eq(&log.resource, &again.resource),
            "one resource per container"
        );
    }

    #[test]
    fn compose_labels_sent_by_the_driver_name_the_service() {
        let mut mapper = RecordMapper::new("fluent", "pi-1");
        let log = mapper.log(
            "t",
            1,
            vec![
                (s("container_id"), s("c")),
                (s("container_name"), s("/shop-api-1")),
                (s("com.docker.compose.project"), s("shop")),
                (s("com.docker.compose.service"), s("api")),
                (s("log"), s("x")),
            ],
        );
        assert_eq!(res(&log, "service.name"), Some(&Value::from("api")));
        assert_eq!(res(&log, "compose.project"), Some(&Value::from("shop")));
    }

    #[test]
    fn an_app_record_keeps_its_fields_as_attributes_and_message_as_body() {
        let mut mapper = RecordMapper::new("fluent", "pi-1");
        let nested = ValueRef::Map(vec![(s("ms"), ValueRef::from(812))]);
        let log = mapper.log(
            "app.orders",
            1,
            vec![
                (s("message"), s("slow")),
                (s("level"), s("warn")),
                (s("timing"), nested),
                (s("source"), s("db")),
            ],
        );
        assert_eq!(log.body, Value::from("slow"));
        assert_eq!(attr(&log, "level"), Some(&Value::from("warn")));
        assert_eq!(attr(&log, "source"), Some(&Value::from("db")));
        let Some(Value::Map(timing)) = attr(&log, "timing") else {
            panic!("timing is a map: {:?}", log.attributes)
        };
        assert_eq!(timing.get("ms"), Some(&Value::Int(812)));
        assert_eq!(res(&log, "service.name"), Some(&Value::from("fluent")));
        assert_eq!(res(&log, "container.id"), None);
    }

    #[test]
    fn log_wins_the_body_and_message_stays_an_attribute() {
        let mut mapper = RecordMapper::new("fluent", "pi-1");
        let log = mapper.log("t", 1, vec![(s("message"), s("m")), (s("log"), s("l\r\n"))]);
        assert_eq!(log.body, Value::from("l"));
        assert_eq!(attr(&log, "message"), Some(&Value::from("m")));
    }

    #[test]
    fn a_record_without_log_or_message_has_an_empty_body() {
        let mut mapper = RecordMapper::new("fluent", "pi-1");
        let log = mapper.log("t", 1, vec![(s("from"), s("userA"))]);
        assert_eq!(log.body, Value::from(""));
        assert_eq!(attr(&log, "from"), Some(&Value::from("userA")));
    }
}
