//! Syslog lines, RFC 5424 and RFC 3164 (priority optional, no year: the
//! current one), into facility, severity, timestamp, hostname, appname,
//! procid, msgid, structured data and message. [`parse_line`] is the parser
//! itself, for the `parse_syslog` function and for any source that receives
//! syslog.

use super::convert::parse_time;
use super::{arg_text, Prepared};
use crate::event::{Map, Str, Value};
use chrono::Datelike;
use regex::Regex;
use std::sync::LazyLock;

fn re(pattern: &str) -> Regex {
    // The patterns below are constants checked by this module's tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern is invalid: {e}"))
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

static SYSLOG_5424: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^<(?<pri>\d{1,3})>(?<version>\d{1,2}) (?<ts>\S+) (?<host>\S+) (?<app>\S+) (?<procid>\S+) (?<msgid>\S+) (?<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?<msg>.*))?$",
    )
});
static SYSLOG_3164: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:<(?<pri>\d{1,3})>)?(?<ts>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}) (?<host>\S+) (?<tag>[^:\[\s]+)(?:\[(?<pid>\d+)\])?: ?(?<msg>.*)$",
    )
});
static SD_ELEMENT: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\[(?<id>[^\s\]]+)(?<params>(?:\s+[^=\s]+="(?:[^"\\]|\\.)*")*)\]"#));
static SD_PARAM: LazyLock<Regex> = LazyLock::new(|| re(r#"(?<k>[^=\s]+)="(?<v>(?:[^"\\]|\\.)*)""#));

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

fn put_pri(out: &mut Map, pri: &str) -> Result<(), String> {
    let pri: usize = pri.parse().map_err(|_| "bad priority")?;
    let (fac, sev) = (pri / 8, pri % 8);
    let facility = FACILITIES
        .get(fac)
        .ok_or_else(|| format!("priority {pri} out of range"))?;
    out.insert("facility".into(), s(facility));
    out.insert("severity".into(), s(SEVERITIES[sev]));
    Ok(())
}

fn unescape_sd(v: &str) -> String {
    v.replace("\\\"", "\"")
        .replace("\\]", "]")
        .replace("\\\\", "\\")
}

pub fn parse_syslog(args: &[Value], _: &Prepared) -> Result<Value, String> {
    parse_line(&arg_text(args, 0)?).map(Value::Map)
}

/// The fields of one syslog line; an error for anything else.
pub fn parse_line(text: &str) -> Result<Map, String> {
    let line = text.trim_end_matches(['\n', '\r']);
    let mut out = Map::new();
    let nil = |v: &str| if v == "-" { Value::Null } else { s(v) };
    if let Some(c) = SYSLOG_5424.captures(line) {
        put_pri(&mut out, &c["pri"])?;
        out.insert(
            "version".into(),
            Value::Int(c["version"].parse().unwrap_or(1)),
        );
        if &c["ts"] != "-" {
            out.insert(
                "timestamp".into(),
                Value::Timestamp(parse_time(&c["ts"], None)?),
            );
        }
        out.insert("hostname".into(), nil(&c["host"]));
        out.insert("appname".into(), nil(&c["app"]));
        out.insert("procid".into(), nil(&c["procid"]));
        out.insert("msgid".into(), nil(&c["msgid"]));
        let mut sd = Map::new();
        for el in SD_ELEMENT.captures_iter(&c["sd"]) {
            let params = SD_PARAM
                .captures_iter(&el["params"])
                .map(|p| (Str::from(&p["k"]), s(&unescape_sd(&p["v"]))))
                .collect();
            sd.insert(el["id"].to_owned().into(), Value::Map(params));
        }
        if !sd.is_empty() {
            out.insert("structured_data".into(), Value::Map(sd));
        }
        let msg = c
            .name("msg")
            .map(|m| m.as_str().trim_start_matches('\u{feff}'))
            .unwrap_or("");
        out.insert("message".into(), s(msg));
        return Ok(out);
    }
    if let Some(c) = SYSLOG_3164.captures(line) {
        if let Some(pri) = c.name("pri") {
            put_pri(&mut out, pri.as_str())?;
        }
        let year = chrono::Utc::now().year();
        let stamp = format!("{year} {}", c["ts"].replace("  ", " "));
        let naive = chrono::NaiveDateTime::parse_from_str(&stamp, "%Y %b %d %H:%M:%S")
            .map_err(|e| format!("bad syslog timestamp `{}`: {e}", &c["ts"]))?;
        out.insert(
            "timestamp".into(),
            Value::Timestamp(naive.and_utc().timestamp_nanos_opt().unwrap_or(0)),
        );
        out.insert("hostname".into(), s(&c["host"]));
        out.insert("appname".into(), s(&c["tag"]));
        if let Some(pid) = c.name("pid") {
            out.insert("procid".into(), s(pid.as_str()));
        }
        out.insert("message".into(), s(&c["msg"]));
        return Ok(out);
    }
    Err("not an RFC 5424 or RFC 3164 syslog line".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Result<Value, String>) -> Map {
        match v {
            Ok(Value::Map(m)) => m,
            other => panic!("expected a map, got {other:?}"),
        }
    }

    fn call(f: super::super::CallFn, args: &[&str]) -> Result<Value, String> {
        let args: Vec<Value> = args.iter().map(|a| Value::from(*a)).collect();
        f(&args, &Prepared::None)
    }

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
