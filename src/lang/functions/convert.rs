//! Conversions: to_int/to_float/to_string/to_bool, timestamps (text and
//! Unix epochs), severities (words, syslog and pino/bunyan numbers).

use super::{arg_text, text_of, Prepared};
use crate::event::Value;

pub fn to_int(args: &[Value], _: &Prepared) -> Result<Value, String> {
    match &args[0] {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Float(f) if f.is_finite() && f.abs() < 9.2e18 => Ok(Value::Int(*f as i64)),
        Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
        Value::Timestamp(ns) => Ok(Value::Int(*ns)),
        v => match text_of(v) {
            Some(t) => t
                .trim()
                .parse()
                .map(Value::Int)
                .map_err(|_| format!("`{t}` is not an integer")),
            None => Err(format!(
                "cannot convert {} to an integer",
                super::Ty::of(v).describe()
            )),
        },
    }
}

pub fn to_float(args: &[Value], _: &Prepared) -> Result<Value, String> {
    match &args[0] {
        Value::Int(i) => Ok(Value::Float(*i as f64)),
        Value::Float(f) => Ok(Value::Float(*f)),
        Value::Bool(b) => Ok(Value::Float(f64::from(u8::from(*b)))),
        v => match text_of(v) {
            Some(t) => t
                .trim()
                .parse()
                .map(Value::Float)
                .map_err(|_| format!("`{t}` is not a number")),
            None => Err(format!(
                "cannot convert {} to a float",
                super::Ty::of(v).describe()
            )),
        },
    }
}

/// The text form of any value (JSON for arrays and maps).
pub fn stringify(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::String(s) => s.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Timestamp(ns) => crate::event::format_rfc3339(*ns),
        Value::Array(_) | Value::Map(_) => super::parse_structured::to_json(v).to_string(),
    }
}

pub fn to_string(args: &[Value], _: &Prepared) -> Result<Value, String> {
    use compact_str::ToCompactString;
    // Strings and integers (label values, per event) without a heap
    // allocation when short; the rest as `stringify` writes them.
    Ok(Value::String(match &args[0] {
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_compact_string(),
        v => stringify(v).into(),
    }))
}

pub fn to_bool(args: &[Value], _: &Prepared) -> Result<Value, String> {
    match &args[0] {
        Value::Bool(b) => Ok(Value::Bool(*b)),
        Value::Int(i) => Ok(Value::Bool(*i != 0)),
        v => match text_of(v)
            .as_deref()
            .map(str::trim)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("true" | "yes" | "on" | "1" | "y") => Ok(Value::Bool(true)),
            Some("false" | "no" | "off" | "0" | "n" | "") => Ok(Value::Bool(false)),
            _ => Err(format!("cannot convert {} to a boolean", stringify(v))),
        },
    }
}

/// Parses `text` as RFC 3339 (no format) or with a strftime format; ns since the epoch.
/// The time of access-log lines (`25/Nov/2026:10:00:00 +0100`: nginx
/// `$time_local`, Apache `%t`) as a chrono format.
pub const ACCESS_LOG_TIME: &str = "%d/%b/%Y:%H:%M:%S %z";

pub fn parse_time(text: &str, format: Option<&str>) -> Result<i64, String> {
    // Access logs' layout, on every parsed line: by hand when it fits
    // exactly (chrono's result at a fraction of the cost), else chrono.
    if format == Some(ACCESS_LOG_TIME) {
        if let Some(ns) = crate::event::time::parse_common_log(text.trim()) {
            return Ok(ns);
        }
    }
    let parsed = match format {
        None | Some("rfc3339") => {
            chrono::DateTime::parse_from_rfc3339(text.trim()).map(|t| t.timestamp_nanos_opt())
        }
        Some(fmt) => match chrono::DateTime::parse_from_str(text.trim(), fmt) {
            Ok(t) => Ok(t.timestamp_nanos_opt()),
            Err(_) => chrono::NaiveDateTime::parse_from_str(text.trim(), fmt)
                .map(|t| t.and_utc().timestamp_nanos_opt()),
        },
    };
    match parsed {
        Ok(Some(ns)) => Ok(ns),
        Ok(None) => Err(format!("timestamp `{text}` is out of range")),
        Err(e) => Err(format!("cannot parse timestamp `{text}`: {e}")),
    }
}

pub fn parse_timestamp(args: &[Value], _: &Prepared) -> Result<Value, String> {
    if let Value::Timestamp(t) = args[0] {
        return Ok(Value::Timestamp(t));
    }
    let text = arg_text(args, 0)?;
    let format = match args.get(1) {
        Some(Value::Null) | None => None,
        Some(_) => Some(arg_text(args, 1)?),
    };
    parse_time(&text, format.as_deref()).map(Value::Timestamp)
}

pub fn now(_: &[Value], _: &Prepared) -> Result<Value, String> {
    Ok(Value::Timestamp(
        crate::event::unix_nanos(std::time::SystemTime::now()) as i64,
    ))
}

/// OpenTelemetry severity text and number for a syslog priority or level word.
pub fn severity_of(v: &Value) -> Option<(&'static str, u8)> {
    let level = match v {
        Value::Int(p) => match p {
            0..=2 => "FATAL",
            3 => "ERROR",
            4 => "WARN",
            5 | 6 => "INFO",
            7 => "DEBUG",
            _ => return None,
        },
        other => {
            let t = text_of(other)?.trim().to_ascii_lowercase();
            match t.as_str() {
                "trace" | "trc" => "TRACE",
                "debug" | "dbg" | "d" | "7" => "DEBUG",
                "info" | "information" | "informational" | "notice" | "i" | "5" | "6" => "INFO",
                "warn" | "warning" | "wrn" | "w" | "4" => "WARN",
                "error" | "err" | "e" | "3" => "ERROR",
                "fatal" | "crit" | "critical" | "alert" | "emerg" | "emergency" | "panic" | "f"
                | "0" | "1" | "2" => "FATAL",
                _ => return None,
            }
        }
    };
    let number = match level {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" => 13,
        "ERROR" => 17,
        _ => 21,
    };
    Some((level, number))
}

/// Which table maps a numeric severity.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scheme {
    /// 0-7 by syslog, 10-60 by pino/bunyan; anything else is refused.
    Auto,
    Syslog,
    Pino,
}

/// pino/bunyan levels: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60
/// fatal; custom levels between fall to the level at or above them.
fn pino_level(n: i64) -> Option<&'static str> {
    Some(match n {
        i64::MIN..=0 => return None,
        1..=10 => "TRACE",
        11..=20 => "DEBUG",
        21..=30 => "INFO",
        31..=40 => "WARN",
        41..=50 => "ERROR",
        _ => "FATAL",
    })
}

fn numeric_severity(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
        other => text_of(other)?.trim().parse().ok(),
    }
}

pub fn normalize_severity(args: &[Value], _: &Prepared) -> Result<Value, String> {
    let scheme = match args.get(1) {
        None | Some(Value::Null) => Scheme::Auto,
        Some(_) => match arg_text(args, 1)?.as_ref() {
            "auto" => Scheme::Auto,
            "syslog" => Scheme::Syslog,
            "pino" | "bunyan" => Scheme::Pino,
            other => {
                return Err(format!(
                    "unknown severity scheme `{other}` (auto, syslog, pino, bunyan)"
                ))
            }
        },
    };
    let v = &args[0];
    let unknown = || format!("`{}` is not a known severity", stringify(v));
    let level = match (scheme, numeric_severity(v)) {
        (Scheme::Pino, Some(n)) => pino_level(n),
        (Scheme::Auto, Some(n @ 10..=60)) => pino_level(n),
        (Scheme::Pino, None) | (_, None) | (Scheme::Auto | Scheme::Syslog, Some(0..=7)) => {
            severity_of(v).map(|(text, _)| text)
        }
        (Scheme::Auto | Scheme::Syslog, Some(_)) => None,
    };
    level.map(Value::from).ok_or_else(unknown)
}

/// Whole units and the fraction apart: the product alone would round a
/// current time in seconds to 256 ns steps.
fn float_nanos(f: f64, per_unit: i64) -> Option<i64> {
    if !f.is_finite() || f.abs() >= 9.2e18 {
        return None;
    }
    let whole = (f.trunc() as i64).checked_mul(per_unit)?;
    whole.checked_add((f.fract() * per_unit as f64).round() as i64)
}

/// A Unix time in seconds, milliseconds, microseconds or nanoseconds
/// (integer or float) as a timestamp.
pub fn from_unix(args: &[Value], _: &Prepared) -> Result<Value, String> {
    let unit = match args.get(1) {
        None | Some(Value::Null) => "s".into(),
        Some(_) => arg_text(args, 1)?,
    };
    let per_unit: i64 = match unit.as_ref() {
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" => 1_000,
        "ns" => 1,
        other => return Err(format!("unknown unit `{other}` (s, ms, us, ns)")),
    };
    let ns = match &args[0] {
        Value::Int(n) => n.checked_mul(per_unit),
        Value::Float(f) => float_nanos(*f, per_unit),
        other => match text_of(other).as_deref().map(str::trim) {
            Some(t) => match t.parse::<i64>() {
                Ok(n) => n.checked_mul(per_unit),
                Err(_) => float_nanos(
                    t.parse().map_err(|_| format!("`{t}` is not a number"))?,
                    per_unit,
                ),
            },
            None => {
                return Err(format!(
                    "from_unix expects a number, got {}",
                    super::Ty::of(other).describe()
                ))
            }
        },
    };
    ns.map(Value::Timestamp).ok_or_else(|| {
        format!(
            "{} {unit} is out of the timestamp range",
            stringify(&args[0])
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(f: super::super::CallFn, v: Value) -> Result<Value, String> {
        f(&[v], &Prepared::None)
    }

    #[test]
    fn conversions_succeed_and_fail_clearly() {
        assert_eq!(one(to_int, Value::from(" 42 ")), Ok(Value::Int(42)));
        assert!(one(to_int, Value::from("4x"))
            .unwrap_err()
            .contains("not an integer"));
        assert!(one(to_int, Value::Array(vec![])).is_err());
        assert_eq!(one(to_float, Value::from("2.5")), Ok(Value::Float(2.5)));
        assert!(one(to_float, Value::from("x")).is_err());
        assert_eq!(one(to_bool, Value::from("Yes")), Ok(Value::Bool(true)));
        assert!(one(to_bool, Value::from("maybe")).is_err());
        assert_eq!(one(to_string, Value::Int(7)), Ok(Value::from("7")));
        for i in [i64::MIN, -1, 0, 200, i64::MAX] {
            assert_eq!(
                one(to_string, Value::Int(i)),
                Ok(Value::from(i.to_string().as_str()))
            );
        }
        assert_eq!(one(to_string, Value::from("GET")), Ok(Value::from("GET")));
    }

    #[test]
    fn timestamps_rfc3339_and_strftime() {
        assert_eq!(
            parse_time("1970-01-01T00:00:01.5Z", None),
            Ok(1_500_000_000)
        );
        assert_eq!(
            parse_time("2000-01-01 00:00:00", Some("%Y-%m-%d %H:%M:%S")),
            Ok(946_684_800_000_000_000)
        );
        assert!(parse_time("yesterday", None).is_err());
        let v = parse_timestamp(
            &[
                Value::from("01/Jan/2026:00:00:00 +0000"),
                Value::from("%d/%b/%Y:%H:%M:%S %z"),
            ],
            &Prepared::None,
        );
        assert_eq!(v, Ok(Value::Timestamp(1_767_225_600_000_000_000)));
    }

    #[test]
    fn severities_from_priorities_and_words() {
        assert_eq!(severity_of(&Value::Int(3)), Some(("ERROR", 17)));
        assert_eq!(severity_of(&Value::from("warning")), Some(("WARN", 13)));
        assert_eq!(severity_of(&Value::from("notice")), Some(("INFO", 9)));
        assert!(one(normalize_severity, Value::from("loud")).is_err());
    }

    fn severity(v: Value, scheme: Option<&str>) -> Result<Value, String> {
        let mut args = vec![v];
        args.extend(scheme.map(Value::from));
        normalize_severity(&args, &Prepared::None)
    }

    #[test]
    fn numeric_severities_by_syslog_and_pino_tables() {
        assert_eq!(severity(Value::Int(3), None), Ok(Value::from("ERROR")));
        assert_eq!(severity(Value::Int(30), None), Ok(Value::from("INFO")));
        assert_eq!(severity(Value::Int(50), None), Ok(Value::from("ERROR")));
        assert_eq!(severity(Value::from("60"), None), Ok(Value::from("FATAL")));
        assert!(
            severity(Value::Int(99), None).is_err(),
            "auto knows 0-7 and 10-60"
        );
        assert_eq!(
            severity(Value::Int(5), Some("pino")),
            Ok(Value::from("TRACE"))
        );
        assert_eq!(
            severity(Value::Int(99), Some("bunyan")),
            Ok(Value::from("FATAL"))
        );
        assert!(severity(Value::Int(30), Some("syslog")).is_err());
        assert_eq!(
            severity(Value::from("warn"), Some("pino")),
            Ok(Value::from("WARN"))
        );
        assert!(severity(Value::Int(3), Some("klingon")).is_err());
    }

    #[test]
    fn unix_times_in_every_unit() {
        let at = |v: Value, unit: &str| from_unix(&[v, Value::from(unit)], &Prepared::None);
        let t = Value::Timestamp(1_795_600_800_123_000_000);
        assert_eq!(at(Value::Int(1_795_600_800_123), "ms"), Ok(t.clone()));
        assert_eq!(
            at(Value::Float(1_795_600_800.25), "s"),
            Ok(Value::Timestamp(1_795_600_800_250_000_000))
        );
        assert_eq!(at(Value::Int(1_795_600_800_123_000), "us"), Ok(t.clone()));
        assert_eq!(at(Value::from("1795600800123000000"), "ns"), Ok(t));
        assert!(at(Value::Int(i64::MAX), "s")
            .unwrap_err()
            .contains("out of"));
        assert!(at(Value::Int(1), "days").is_err());
        assert!(at(Value::Bool(true), "s").is_err());
    }
}
