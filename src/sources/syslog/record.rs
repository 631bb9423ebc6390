//! Turns one received syslog message into a [`LogRecord`]: the parsed
//! parts ([`super::parse`]) become severity, time, body and attributes, the
//! sender's host name and app name the shared [`Resource`]. A message that
//! does not parse is kept whole as the body and marked; nothing is dropped
//! here. No I/O.

use super::parse::{self, Malformed, Message};
use crate::event::{LogRecord, Resource, Str, Value};
use crate::sources::journald::record::severity;
use chrono::{DateTime, TimeZone};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Resources kept for reuse before the cache starts over (a sender
/// making up host or app names cannot grow it without bound).
const MAX_RESOURCES: usize = 1024;

/// One message as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub bytes: &'a [u8],
    /// Cut at `max_message_bytes`.
    pub truncated: bool,
    /// The sending address (none for a unix socket).
    pub peer: Option<IpAddr>,
}

/// Builds records of one listener, sharing one resource per sender host
/// and app.
#[derive(Debug)]
pub struct RecordMaker {
    source: Arc<str>,
    node_host: String,
    /// By host name, then by service: a hit allocates nothing.
    resources: HashMap<String, HashMap<String, Arc<Resource>>>,
    cached: usize,
}

impl RecordMaker {
    pub fn new(source: Arc<str>, node_host: String) -> Self {
        RecordMaker {
            source,
            node_host,
            resources: HashMap::new(),
            cached: 0,
        }
    }

    fn resource(&mut self, host: &str, service: Option<&str>) -> Arc<Resource> {
        let service = service.unwrap_or(&self.source);
        if let Some(r) = self.resources.get(host).and_then(|s| s.get(service)) {
            return Arc::clone(r);
        }
        if self.cached >= MAX_RESOURCES {
            self.resources.clear();
            self.cached = 0;
        }
        let resource = Arc::new(Resource {
            attributes: vec![
                ("host.name".into(), Value::from(host)),
                ("service.name".into(), Value::from(service)),
                ("shipd.source".into(), Value::from(&*self.source)),
            ],
        });
        self.resources
            .entry(host.to_owned())
            .or_default()
            .insert(service.to_owned(), Arc::clone(&resource));
        self.cached += 1;
        resource
    }

    /// The record of `msg`, observed at `observed` (whose time zone RFC
    /// 3164 times are read in), and why it did not parse, if it did not.
    pub fn make<Tz: TimeZone>(
        &mut self,
        msg: Received<'_>,
        observed: &DateTime<Tz>,
    ) -> (LogRecord, Option<Malformed>) {
        let text = String::from_utf8_lossy(msg.bytes);
        let observed_ns = observed.timestamp_nanos_opt().unwrap_or(0).max(0) as u64;
        let peer = msg.peer.map(|ip| ip.to_string());
        let fallback_host = peer.as_deref().unwrap_or(&self.node_host).to_owned();
        let (mut record, malformed) = match parse::parse(&text, observed) {
            Ok(m) => (self.parsed(&m, &fallback_host), None),
            Err(why) => {
                let body = text.trim_end_matches(['\n', '\r', '\0']);
                let resource = self.resource(&fallback_host, None);
                let mut record = LogRecord::new(Value::from(body), resource);
                record
                    .attributes
                    .push(("syslog.malformed".into(), Value::from(why.to_string())));
                (record, Some(why))
            }
        };
        record.observed_unix_nano = observed_ns;
        if record.time_unix_nano == 0 {
            record.time_unix_nano = observed_ns;
        }
        if let Some(peer) = peer {
            record
                .attributes
                .push(("network.peer.address".into(), Value::from(peer)));
        }
        if msg.truncated {
            record
                .attributes
                .push(("shipd.truncated".into(), Value::Bool(true)));
        }
        (record, malformed)
    }

    fn parsed(&mut self, m: &Message<'_>, fallback_host: &str) -> LogRecord {
        let resource = self.resource(m.hostname.unwrap_or(fallback_host), m.appname);
        let mut record = LogRecord::new(Value::from(m.message), resource);
        record.time_unix_nano = m.timestamp.map_or(0, |t| t.max(0) as u64);
        if let Some(priority) = m.priority {
            if let Some((number, text)) = severity(&[b'0' + priority.severity]) {
                record.severity_number = number;
                record.severity_text = Some(text.to_owned());
            }
            record.attributes.push((
                "syslog.facility".into(),
                Value::from(priority.facility_name()),
            ));
        }
        let attrs = &mut record.attributes;
        for (key, value) in [
            ("syslog.appname", m.appname),
            ("syslog.procid", m.procid),
            ("syslog.msgid", m.msgid),
        ] {
            if let Some(v) = value {
                attrs.push((key.into(), Value::from(v)));
            }
        }
        if let Some(v) = m.version {
            attrs.push(("syslog.version".into(), Value::Int(i64::from(v))));
        }
        for element in &m.structured_data {
            for (param, value) in &element.params {
                let key: Str = format!("syslog.sd.{}.{param}", element.id).into();
                attrs.push((key, Value::from(value.as_ref())));
            }
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a Value> {
        r.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn res<'a>(r: &'a LogRecord, key: &str) -> Option<&'a Value> {
        r.resource
            .attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    fn make(bytes: &[u8], peer: Option<IpAddr>) -> (LogRecord, Option<Malformed>) {
        let mut maker = RecordMaker::new(Arc::from("syslog"), "node-1".into());
        maker.make(
            Received {
                bytes,
                truncated: false,
                peer,
            },
            &Utc::now(),
        )
    }

    #[test]
    fn rfc5424_fields_become_severity_attributes_and_resource() {
        let (r, why) = make(
            br#"<165>1 2003-10-11T22:14:15.003Z mymachine evntslog 77 ID47 [origin@1 ip="10.0.0.9"] An event"#,
            Some("10.1.2.3".parse().unwrap()),
        );
        assert!(why.is_none());
        assert_eq!(r.body, Value::from("An event"));
        assert_eq!(
            (r.severity_number, r.severity_text.as_deref()),
            (10, Some("notice"))
        );
        assert_eq!(r.time_unix_nano, 1_065_910_455_003_000_000);
        assert_eq!(attr(&r, "syslog.facility"), Some(&Value::from("local4")));
        assert_eq!(attr(&r, "syslog.appname"), Some(&Value::from("evntslog")));
        assert_eq!(attr(&r, "syslog.procid"), Some(&Value::from("77")));
        assert_eq!(attr(&r, "syslog.msgid"), Some(&Value::from("ID47")));
        assert_eq!(
            attr(&r, "syslog.sd.origin@1.ip"),
            Some(&Value::from("10.0.0.9"))
        );
        assert_eq!(
            attr(&r, "network.peer.address"),
            Some(&Value::from("10.1.2.3"))
        );
        assert_eq!(res(&r, "host.name"), Some(&Value::from("mymachine")));
        assert_eq!(res(&r, "service.name"), Some(&Value::from("evntslog")));
        assert_eq!(res(&r, "shipd.source"), Some(&Value::from("syslog")));
    }

    #[test]
    fn without_a_host_name_the_peer_then_the_node_names_the_host() {
        let (r, _) = make(
            b"<13>Dec  5 02:59:58 cron: job",
            Some("10.0.0.7".parse().unwrap()),
        );
        assert_eq!(res(&r, "host.name"), Some(&Value::from("10.0.0.7")));
        let (r, _) = make(b"<13>Dec  5 02:59:58 cron: job", None);
        assert_eq!(res(&r, "host.name"), Some(&Value::from("node-1")));
        assert_eq!(res(&r, "service.name"), Some(&Value::from("cron")));
    }

    #[test]
    fn malformed_message_is_kept_whole_and_marked() {
        let (r, why) = make(b"not syslog at all\n", None);
        assert_eq!(why, Some(Malformed::NoPriority));
        assert_eq!(r.body, Value::from("not syslog at all"));
        assert!(attr(&r, "syslog.malformed").is_some());
        assert_eq!(r.severity_number, 0);
        assert_eq!(res(&r, "service.name"), Some(&Value::from("syslog")));
    }

    #[test]
    fn truncated_message_is_marked_and_invalid_utf8_kept_lossily() {
        let mut maker = RecordMaker::new(Arc::from("s"), "n".into());
        let (r, why) = maker.make(
            Received {
                bytes: b"<13>1 - h a - - - caf\xe9",
                truncated: true,
                peer: None,
            },
            &Utc::now(),
        );
        assert!(why.is_none());
        assert_eq!(r.body, Value::from("caf\u{fffd}"));
        assert_eq!(attr(&r, "shipd.truncated"), Some(&Value::Bool(true)));
    }

    #[test]
    fn resources_are_shared_per_host_and_app() {
        let mut maker = RecordMaker::new(Arc::from("s"), "n".into());
        let now = Utc::now();
        let mut one = |bytes: &'static [u8]| {
            maker
                .make(
                    Received {
                        bytes,
                        truncated: false,
                        peer: None,
                    },
                    &now,
                )
                .0
                .resource
        };
        let a = one(b"<13>1 - h1 app - - - x");
        let b = one(b"<13>1 - h1 app - - - y");
        let c = one(b"<13>1 - h2 app - - - z");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
