//! `parse_syslog`: one syslog line (RFC 5424 or RFC 3164, priority
//! optional) into facility, severity, timestamp, hostname, appname, procid,
//! msgid, structured data and message, read by the `syslog` source's own
//! parser ([`crate::sources::syslog::parse`]), so the function and the
//! source agree on every line.

use super::{arg_text, Prepared};
use crate::event::{Map, Str, Value};

fn s(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

/// Reads one syslog line with the `syslog` source's parser
/// ([`crate::sources::syslog::parse`]); BSD lines without `<PRI>` (as a
/// local daemon writes them to files) are read too. RFC 3164 times are
/// taken in the local time zone, in the year nearest now.
pub fn parse_syslog(args: &[Value], _: &Prepared) -> Result<Value, String> {
    use crate::sources::syslog::parse::{parse_file_line, Format, Malformed};
    let text = arg_text(args, 0)?;
    let m = parse_file_line(&text, &chrono::Local::now()).map_err(|e| match e {
        Malformed::NoPriority | Malformed::NoHeader => {
            "not an RFC 5424 or RFC 3164 syslog line".to_owned()
        }
        other => other.to_string(),
    })?;
    let mut out = Map::new();
    if let Some(p) = m.priority {
        out.insert("facility".into(), s(p.facility_name()));
        if let Some((_, keyword)) = crate::sources::journald::record::severity(&[b'0' + p.severity])
        {
            out.insert("severity".into(), s(keyword));
        }
    }
    let rfc5424 = m.format == Format::Rfc5424;
    if let Some(version) = m.version {
        out.insert("version".into(), Value::Int(i64::from(version)));
    }
    if let Some(ts) = m.timestamp {
        out.insert("timestamp".into(), Value::Timestamp(ts));
    }
    // RFC 5424 fields are always there (null for `-`); RFC 3164 ones only when present.
    for (key, value) in [
        ("hostname", m.hostname),
        ("appname", m.appname),
        ("procid", m.procid),
        ("msgid", m.msgid),
    ] {
        match value {
            Some(v) => {
                out.insert(key.into(), s(v));
            }
            None if rfc5424 => {
                out.insert(key.into(), Value::Null);
            }
            None => {}
        }
    }
    if !m.structured_data.is_empty() {
        let mut sd = Map::new();
        for element in &m.structured_data {
            let params = element
                .params
                .iter()
                .map(|(k, v)| (Str::from(*k), s(v)))
                .collect();
            sd.insert(element.id.into(), Value::Map(params));
        }
        out.insert("structured_data".into(), Value::Map(sd));
    }
    out.insert("message".into(), s(m.message));
    Ok(Value::Map(out))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{call, map};
    use super::*;

    #[test]
    fn syslog_5424_with_structured_data() {
        let line = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event log entry"#;
        let m = map(call(parse_syslog, &[line]));
        assert_eq!(m["facility"], s("local4"));
        assert_eq!(m["severity"], s("notice"));
        assert_eq!(m["hostname"], s("mymachine.example.com"));
        assert_eq!(m["procid"], Value::Null);
        assert_eq!(m["msgid"], s("ID47"));
        assert_eq!(m["message"], s("An application event log entry"));
        let Value::Map(sd) = &m["structured_data"] else {
            panic!()
        };
        let Value::Map(first) = &sd["exampleSDID@32473"] else {
            panic!()
        };
        assert_eq!(first["eventSource"], s("Application"));
        assert_eq!(m["timestamp"], Value::Timestamp(1_065_910_455_003_000_000));
    }

    #[test]
    fn syslog_3164_without_year() {
        let m = map(call(
            parse_syslog,
            &["<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8"],
        ));
        assert_eq!(m["facility"], s("auth"));
        assert_eq!(m["severity"], s("crit"));
        assert_eq!(m["appname"], s("su"));
        assert_eq!(m["procid"], s("123"));
        assert_eq!(
            m["message"],
            s("'su root' failed for lonvick on /dev/pts/8")
        );
        let m = map(call(
            parse_syslog,
            &["Nov  5 01:02:03 pi4 kernel: usb 1-1: new device"],
        ));
        assert_eq!(m["appname"], s("kernel"));
        assert!(call(parse_syslog, &["hello world"]).is_err());
    }
}
