//! Parsers for well-known log formats: syslog (RFC 5424 and 3164), nginx
//! (combined, error, custom `log_format`), Apache (common, combined, custom
//! `LogFormat`), CRI and docker json-file.

use super::access_format::AccessFormat;
use super::convert::parse_time;
use super::parse_structured::json_to_value;
use super::{apache_format, literal, nginx_format, ConstArgs};
use super::{arg_text, Prepared};
use crate::event::Map;
use crate::event::{Str, Value};
use crate::lang::ast::Lit;
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
    let text = arg_text(args, 0)?;
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
        return Ok(Value::Map(out));
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
        return Ok(Value::Map(out));
    }
    Err("not an RFC 5424 or RFC 3164 syslog line".into())
}

static NGINX_COMBINED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"^(?<client>\S+) - (?<user>\S+) \[(?<ts>[^\]]+)\] "(?<request>(?:[^"\\]|\\.)*)" (?<status>\d{3}) (?<size>\d+|-)(?: "(?<referer>(?:[^"\\]|\\.)*)" "(?<agent>(?:[^"\\]|\\.)*)")?$"#,
    )
});
static APACHE_COMMON: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"^(?<client>\S+) (?<ident>\S+) (?<user>\S+) \[(?<ts>[^\]]+)\] "(?<request>(?:[^"\\]|\\.)*)" (?<status>\d{3}) (?<size>\d+|-)(?: "(?<referer>(?:[^"\\]|\\.)*)" "(?<agent>(?:[^"\\]|\\.)*)")?$"#,
    )
});
static NGINX_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?<ts>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?<level>\w+)\] (?<pid>\d+)#(?<tid>\d+): (?:\*(?<cid>\d+) )?(?<msg>.*)$",
    )
});
static NGINX_ERROR_KV: LazyLock<Regex> = LazyLock::new(|| {
    re(r#", (?<k>client|server|request|upstream|host|referrer): (?<v>"[^"]*"|[^,]*)"#)
});

fn access_fields(c: &regex::Captures, out: &mut Map) -> Result<(), String> {
    out.insert("client".into(), s(&c["client"]));
    let user = &c["user"];
    out.insert(
        "user".into(),
        if user == "-" { Value::Null } else { s(user) },
    );
    out.insert(
        "timestamp".into(),
        Value::Timestamp(parse_time(&c["ts"], Some("%d/%b/%Y:%H:%M:%S %z"))?),
    );
    let request = &c["request"];
    out.insert("request".into(), s(request));
    let mut parts = request.splitn(3, ' ');
    if let (Some(method), Some(path)) = (parts.next(), parts.next()) {
        out.insert("method".into(), s(method));
        out.insert("path".into(), s(path));
        if let Some(proto) = parts.next() {
            out.insert("protocol".into(), s(proto));
        }
    }
    out.insert(
        "status".into(),
        Value::Int(c["status"].parse().map_err(|_| "bad status")?),
    );
    let size = &c["size"];
    out.insert(
        "size".into(),
        if size == "-" {
            Value::Int(0)
        } else {
            Value::Int(size.parse().map_err(|_| "bad size")?)
        },
    );
    if let Some(r) = c.name("referer") {
        out.insert(
            "referer".into(),
            if r.as_str() == "-" {
                Value::Null
            } else {
                s(r.as_str())
            },
        );
    }
    if let Some(a) = c.name("agent") {
        out.insert(
            "agent".into(),
            if a.as_str() == "-" {
                Value::Null
            } else {
                s(a.as_str())
            },
        );
    }
    Ok(())
}

fn format_arg(args: &[Value], default: &'static str) -> Result<String, String> {
    match args.get(1) {
        Some(Value::Null) | None => Ok(default.to_owned()),
        Some(_) => arg_text(args, 1).map(|f| f.into_owned()),
    }
}

/// A custom access-log format written as a literal is compiled once, at
/// load; the built-in names need nothing prepared.
fn prepare_access(
    args: &ConstArgs,
    builtin: &[&str],
    compile: fn(&str) -> Result<AccessFormat, String>,
) -> Result<Prepared, String> {
    match literal(args, 1) {
        Some(Lit::Str(f)) if builtin.contains(&f.as_str()) => Ok(Prepared::None),
        Some(Lit::Str(f)) => Ok(Prepared::AccessFormat(Box::new(compile(f)?))),
        _ => Ok(Prepared::None),
    }
}

pub fn prepare_nginx(args: &ConstArgs) -> Result<Prepared, String> {
    prepare_access(args, &["combined", "error"], |f| {
        match f {
        "main" => nginx_format::compile(nginx_format::MAIN),
        f if f.contains('$') => nginx_format::compile(f),
        other => Err(format!(
            "unknown nginx format `{other}` (combined, main, error, or a log_format string with $variables)"
        )),
    }
    })
}

pub fn prepare_apache(args: &ConstArgs) -> Result<Prepared, String> {
    prepare_access(args, &["common", "combined"], |f| {
        if f.contains('%') {
            apache_format::compile(f)
        } else {
            Err(format!(
                "unknown Apache format `{f}` (common, combined, or a LogFormat string with %directives)"
            ))
        }
    })
}

pub fn parse_nginx(args: &[Value], p: &Prepared) -> Result<Value, String> {
    let text = arg_text(args, 0)?;
    if let Prepared::AccessFormat(f) = p {
        return f.parse(&text).map(Value::Map);
    }
    let mut out = Map::new();
    match format_arg(args, "combined")?.as_str() {
        "combined" => {
            let c = NGINX_COMBINED
                .captures(&text)
                .ok_or("not an nginx combined log line")?;
            access_fields(&c, &mut out)?;
        }
        "error" => nginx_error(&text, &mut out)?,
        "main" => {
            return Ok(Value::Map(
                nginx_format::compile(nginx_format::MAIN)?.parse(&text)?,
            ))
        }
        // A format computed per event: compiled per call (a literal is compiled once at load).
        custom if custom.contains('$') => {
            return Ok(Value::Map(nginx_format::compile(custom)?.parse(&text)?))
        }
        other => {
            return Err(format!(
                "unknown nginx format `{other}` (combined, main, error, or a log_format string)"
            ))
        }
    }
    Ok(Value::Map(out))
}

fn nginx_error(text: &str, out: &mut Map) -> Result<(), String> {
    let c = NGINX_ERROR
        .captures(text)
        .ok_or("not an nginx error log line")?;
    let ts = chrono::NaiveDateTime::parse_from_str(&c["ts"], "%Y/%m/%d %H:%M:%S")
        .map_err(|e| e.to_string())?;
    out.insert(
        "timestamp".into(),
        Value::Timestamp(ts.and_utc().timestamp_nanos_opt().unwrap_or(0)),
    );
    out.insert("severity".into(), s(&c["level"]));
    out.insert(
        "pid".into(),
        Value::Int(c["pid"].parse().map_err(|_| "bad pid")?),
    );
    out.insert(
        "tid".into(),
        Value::Int(c["tid"].parse().map_err(|_| "bad tid")?),
    );
    if let Some(cid) = c.name("cid") {
        out.insert(
            "cid".into(),
            Value::Int(cid.as_str().parse().map_err(|_| "bad connection id")?),
        );
    }
    let msg = &c["msg"];
    let first_kv = NGINX_ERROR_KV
        .find(msg)
        .map(|m| m.start())
        .unwrap_or(msg.len());
    out.insert("message".into(), s(&msg[..first_kv]));
    for kv in NGINX_ERROR_KV.captures_iter(msg) {
        out.insert(kv["k"].to_owned().into(), s(kv["v"].trim_matches('"')));
    }
    Ok(())
}

pub fn parse_apache(args: &[Value], p: &Prepared) -> Result<Value, String> {
    let text = arg_text(args, 0)?;
    if let Prepared::AccessFormat(f) = p {
        return f.parse(&text).map(Value::Map);
    }
    let format = format_arg(args, "combined")?;
    if format != "common" && format != "combined" && format.contains('%') {
        return Ok(Value::Map(apache_format::compile(&format)?.parse(&text)?));
    }
    let c = APACHE_COMMON
        .captures(&text)
        .ok_or("not an Apache access log line")?;
    match format.as_str() {
        "common" => {}
        "combined" if c.name("agent").is_some() => {}
        "combined" => {
            return Err("not an Apache combined log line (no referer and user agent)".into())
        }
        other => {
            return Err(format!(
                "unknown Apache format `{other}` (common, combined, or a LogFormat string)"
            ))
        }
    }
    let mut out = Map::new();
    access_fields(&c, &mut out)?;
    if format == "common" {
        out.remove("referer");
        out.remove("agent");
    }
    Ok(Value::Map(out))
}

pub fn parse_cri(args: &[Value], _: &Prepared) -> Result<Value, String> {
    let text = arg_text(args, 0)?;
    let mut parts = text.splitn(4, ' ');
    let (Some(ts), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("not a CRI log line (TIMESTAMP STREAM P|F MESSAGE)".into());
    };
    if stream != "stdout" && stream != "stderr" {
        return Err(format!(
            "CRI stream must be stdout or stderr, got `{stream}`"
        ));
    }
    let partial = match tag.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return Err(format!("CRI tag must be P or F, got `{tag}`")),
    };
    let mut out = Map::new();
    out.insert("timestamp".into(), Value::Timestamp(parse_time(ts, None)?));
    out.insert("stream".into(), s(stream));
    out.insert("partial".into(), Value::Bool(partial));
    out.insert("message".into(), s(parts.next().unwrap_or("")));
    Ok(Value::Map(out))
}

pub fn parse_docker_json(args: &[Value], _: &Prepared) -> Result<Value, String> {
    let text = arg_text(args, 0)?;
    let Value::Map(mut m) =
        json_to_value(&text).map_err(|e| format!("invalid docker JSON: {e}"))?
    else {
        return Err("docker json-file line is not an object".into());
    };
    let log = match m.remove("log") {
        Some(Value::String(l)) => l,
        _ => return Err("docker json-file line has no `log` string".into()),
    };
    let mut out = Map::new();
    out.insert("partial".into(), Value::Bool(!log.ends_with('\n')));
    out.insert("message".into(), s(log.strip_suffix('\n').unwrap_or(&log)));
    if let Some(stream) = m.remove("stream") {
        out.insert("stream".into(), stream);
    }
    if let Some(Value::String(t)) = m.remove("time") {
        out.insert("timestamp".into(), Value::Timestamp(parse_time(&t, None)?));
    }
    Ok(Value::Map(out))
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

    #[test]
    fn nginx_combined_with_quoted_user_agent() {
        let line = r#"192.168.1.20 - alice [25/Nov/2026:10:00:00 +0100] "GET /api/items?id=3 HTTP/1.1" 502 157 "https://example.com/a \"b\"" "Mozilla/5.0 (X11; Linux aarch64) AppleWebKit/537.36 (KHTML, like Gecko)""#;
        let m = map(call(parse_nginx, &[line]));
        assert_eq!(m["client"], s("192.168.1.20"));
        assert_eq!(m["user"], s("alice"));
        assert_eq!(m["method"], s("GET"));
        assert_eq!(m["path"], s("/api/items?id=3"));
        assert_eq!(m["status"], Value::Int(502));
        assert_eq!(m["size"], Value::Int(157));
        assert_eq!(
            m["agent"],
            s("Mozilla/5.0 (X11; Linux aarch64) AppleWebKit/537.36 (KHTML, like Gecko)")
        );
        assert_eq!(m["timestamp"], Value::Timestamp(1_795_597_200_000_000_000));
        assert!(call(parse_nginx, &["garbage"]).is_err());
        assert!(call(parse_nginx, &[line, "weird"]).is_err());
    }

    #[test]
    fn nginx_error_lines() {
        let line = r#"2026/11/25 10:00:00 [error] 1234#0: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.7, server: web1, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8080/", host: "web1""#;
        let m = map(call(parse_nginx, &[line, "error"]));
        assert_eq!(m["severity"], s("error"));
        assert_eq!(m["pid"], Value::Int(1234));
        assert_eq!(m["cid"], Value::Int(5));
        assert_eq!(m["client"], s("10.0.0.7"));
        assert_eq!(m["request"], s("GET / HTTP/1.1"));
        assert_eq!(
            m["message"],
            s("connect() failed (111: Connection refused) while connecting to upstream")
        );
        assert!(call(parse_nginx, &["10.0.0.1 - - [x]", "error"]).is_err());
    }

    #[test]
    fn apache_common_and_combined() {
        let common = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;
        let m = map(call(parse_apache, &[common, "common"]));
        assert_eq!(m["user"], s("frank"));
        assert_eq!(m["size"], Value::Int(2326));
        assert!(
            call(parse_apache, &[common, "combined"]).is_err(),
            "common line is not combined"
        );
        let combined = format!(
            "{common} \"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\""
        );
        let m = map(call(parse_apache, &[&combined]));
        assert_eq!(m["referer"], s("http://www.example.com/start.html"));
        assert!(call(parse_apache, &["nope"]).is_err());
    }

    #[test]
    fn cri_and_docker_lines() {
        let m = map(call(
            parse_cri,
            &["2026-11-25T10:00:00.123456789Z stdout P partial text"],
        ));
        assert_eq!(m["partial"], Value::Bool(true));
        assert_eq!(m["message"], s("partial text"));
        assert_eq!(m["stream"], s("stdout"));
        assert!(call(parse_cri, &["2026-11-25T10:00:00Z stdlog F x"]).is_err());
        let m = map(call(
            parse_docker_json,
            &[r#"{"log":"hello\n","stream":"stderr","time":"2026-11-25T10:00:00.5Z"}"#],
        ));
        assert_eq!(m["message"], s("hello"));
        assert_eq!(m["partial"], Value::Bool(false));
        assert_eq!(m["timestamp"], Value::Timestamp(1_795_600_800_500_000_000));
        assert!(call(parse_docker_json, &[r#"{"stream":"x"}"#]).is_err());
    }
}
