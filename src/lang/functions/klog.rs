//! Kubernetes/K3s klog lines: `I1205 10:00:00.123456    1234 file.go:42] msg`
//! (severity letter, month and day, time, thread id, source, message). klog
//! writes no year: the current one is taken, as for RFC 3164 syslog.

use super::{arg_text, Prepared};
use crate::event::{Map, Value};
use chrono::{Datelike, NaiveDate, NaiveTime};

fn severity(letter: char) -> Option<&'static str> {
    Some(match letter {
        'I' => "INFO",
        'W' => "WARN",
        'E' => "ERROR",
        'F' => "FATAL",
        _ => return None,
    })
}

const SHAPE: &str = "not a klog line (Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg)";

pub fn parse_klog(a: &[Value], _: &Prepared) -> Result<Value, String> {
    let text = arg_text(a, 0)?;
    let line = text.trim_end_matches(['\n', '\r']);
    let (head, message) = line.split_once("] ").ok_or(SHAPE)?;
    let mut parts = head.split_ascii_whitespace();
    let (Some(date), Some(time), Some(thread), Some(source), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(SHAPE.into());
    };
    let mut chars = date.chars();
    let level = chars.next().and_then(severity).ok_or(SHAPE)?;
    let mmdd = chars.as_str();
    if mmdd.len() != 4 || !mmdd.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SHAPE.into());
    }
    let (month, day) = (
        mmdd[..2].parse().unwrap_or(0),
        mmdd[2..].parse().unwrap_or(0),
    );
    let year = chrono::Utc::now().year();
    let day = NaiveDate::from_ymd_opt(year, month, day)
        .ok_or_else(|| format!("klog: bad date `{mmdd}`"))?;
    let time = NaiveTime::parse_from_str(time, "%H:%M:%S%.f")
        .map_err(|e| format!("klog: bad time `{time}`: {e}"))?;
    let ns = day
        .and_time(time)
        .and_utc()
        .timestamp_nanos_opt()
        .ok_or("klog: time out of range")?;
    let (file, line_no) = source.rsplit_once(':').ok_or(SHAPE)?;
    let mut out = Map::new();
    out.insert("severity".into(), Value::from(level));
    out.insert("timestamp".into(), Value::Timestamp(ns));
    out.insert(
        "thread".into(),
        Value::Int(
            thread
                .parse()
                .map_err(|_| format!("klog: bad thread id `{thread}`"))?,
        ),
    );
    out.insert("file".into(), Value::from(file));
    out.insert(
        "line".into(),
        Value::Int(
            line_no
                .parse()
                .map_err(|_| format!("klog: bad line `{line_no}`"))?,
        ),
    );
    out.insert("message".into(), Value::from(message));
    Ok(Value::Map(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k3s_klog_line_is_split_into_typed_fields() {
        let line = r#"E1205 10:00:00.123456    1234 reflector.go:147] "Failed to watch" err="context canceled""#;
        let Ok(Value::Map(m)) = parse_klog(&[Value::from(line)], &Prepared::None) else {
            panic!()
        };
        assert_eq!(m.get("severity"), Some(&Value::from("ERROR")));
        assert_eq!(m.get("thread"), Some(&Value::Int(1234)));
        assert_eq!(m.get("file"), Some(&Value::from("reflector.go")));
        assert_eq!(m.get("line"), Some(&Value::Int(147)));
        assert_eq!(
            m.get("message"),
            Some(&Value::from(r#""Failed to watch" err="context canceled""#))
        );
        let year = chrono::Utc::now().year();
        let expected = NaiveDate::from_ymd_opt(year, 12, 5)
            .and_then(|d| d.and_hms_micro_opt(10, 0, 0, 123_456))
            .and_then(|t| t.and_utc().timestamp_nanos_opt());
        assert_eq!(m.get("timestamp"), expected.map(Value::Timestamp).as_ref());
    }

    #[test]
    fn lines_of_other_shapes_are_refused() {
        for bad in [
            "hello world",
            "X1205 10:00:00.1 1 a.go:1] m",
            "I1305 10:00:00.1 1 a.go:1] m",
            "I1205 10:00:00.1 x a.go:1] m",
            "I1205 10:00:00.1 1 a.go] m",
        ] {
            assert!(
                parse_klog(&[Value::from(bad)], &Prepared::None).is_err(),
                "{bad}"
            );
        }
    }
}
