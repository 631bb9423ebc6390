//! Parsers for well-known log formats: nginx (combined, error, custom
//! `log_format`), Apache (common, combined, custom
//! `LogFormat`), CRI and docker json-file.

use super::access_format::{push_request_parts, AccessFormat};
use super::access_line::{self, AccessLine, Head};
use super::convert::{parse_time, ACCESS_LOG_TIME};
use super::parse_structured::json_to_value;
use super::{apache_format, literal, nginx_format, ConstArgs};
use super::{arg_text, Prepared};
use crate::event::{Map, Str, Value};
use crate::lang::ast::Lit;
use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

fn re(pattern: &str) -> Regex {
    // The patterns below are constants checked by this module's tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern is invalid: {e}"))
}

fn s(v: &str) -> Value {
    Value::String(Str::from(v))
}

static NGINX_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?<ts>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?<level>\w+)\] (?<pid>\d+)#(?<tid>\d+): (?:\*(?<cid>\d+) )?(?<msg>.*)$",
    )
});
static NGINX_ERROR_KV: LazyLock<Regex> = LazyLock::new(|| {
    re(r#", (?<k>client|server|request|upstream|host|referrer): (?<v>"[^"]*"|[^,]*)"#)
});

/// The map of a built-in access line: the fields typed, `-` null (a size of
/// `-` is 0), the request also split into method, path and protocol;
/// referer and agent only when `referer_agent` (the combined form).
fn access_map(line: &AccessLine, referer_agent: bool) -> Result<Map, String> {
    let timestamp = parse_time(line.time, Some(ACCESS_LOG_TIME))?;
    let status = line.status.parse().map_err(|_| "bad status")?;
    let size = match line.size {
        "-" => 0,
        digits => digits.parse().map_err(|_| "bad size")?,
    };
    let dash_null = |v: &str| if v == "-" { Value::Null } else { s(v) };
    let referer_agent = line.referer_agent.filter(|_| referer_agent);
    // Pushed in key order, so the map takes them as they are.
    let mut out: Vec<(Str, Value)> = Vec::with_capacity(11);
    if let Some((_, agent)) = referer_agent {
        out.push(("agent".into(), dash_null(agent)));
    }
    out.push(("client".into(), s(line.client)));
    push_request_parts(&mut out, line.request);
    if let Some((referer, _)) = referer_agent {
        out.push(("referer".into(), dash_null(referer)));
    }
    out.push(("request".into(), s(line.request)));
    out.push(("size".into(), Value::Int(size)));
    out.push(("status".into(), Value::Int(status)));
    out.push(("timestamp".into(), Value::Timestamp(timestamp)));
    out.push(("user".into(), dash_null(line.user)));
    Ok(Map::from_ordered_entries(out))
}

fn format_arg<'a>(args: &'a [Value], default: &'static str) -> Result<Cow<'a, str>, String> {
    match args.get(1) {
        Some(Value::Null) | None => Ok(Cow::Borrowed(default)),
        Some(_) => arg_text(args, 1),
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
    match format_arg(args, "combined")?.as_ref() {
        "combined" => {
            let line =
                access_line::scan(&text, Head::Nginx).ok_or("not an nginx combined log line")?;
            return access_map(&line, true).map(Value::Map);
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
    let line = access_line::scan(&text, Head::Apache).ok_or("not an Apache access log line")?;
    match format.as_ref() {
        "common" => {}
        "combined" if line.referer_agent.is_some() => {}
        "combined" => {
            return Err("not an Apache combined log line (no referer and user agent)".into())
        }
        other => {
            return Err(format!(
                "unknown Apache format `{other}` (common, combined, or a LogFormat string)"
            ))
        }
    }
    access_map(&line, format == "combined").map(Value::Map)
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
    use super::super::test_support::{call, map};
    use super::*;

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

    fn literal_format(f: &str) -> Result<Prepared, String> {
        use crate::lang::ast::{Expr, ExprKind};
        let e = |kind| Expr {
            kind,
            span: Default::default(),
        };
        prepare_nginx(&[
            &e(ExprKind::Lit(Lit::Null)),
            &e(ExprKind::Lit(Lit::Str(f.into()))),
        ])
    }

    #[test]
    fn literal_nginx_formats_are_compiled_at_load_and_bad_ones_refused() {
        assert!(matches!(
            literal_format("$remote_addr $status"),
            Ok(Prepared::AccessFormat(_))
        ));
        assert!(matches!(
            literal_format("main"),
            Ok(Prepared::AccessFormat(_))
        ));
        assert!(matches!(literal_format("combined"), Ok(Prepared::None)));
        assert!(literal_format("$remote_addr$status").is_err());
        assert!(literal_format("weird")
            .unwrap_err()
            .contains("unknown nginx format"));
    }

    #[test]
    fn combined_line_with_trailing_fields_is_an_error_not_shortened() {
        let line = r#"10.0.0.1 - - [25/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 12 "-" "curl" 0.120 0.118"#;
        assert!(call(parse_nginx, &[line]).is_err());
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

    /// The built-in access parsers as they were, on the regexes the scanner
    /// replaced: the oracle of the property tests below.
    mod before {
        use super::super::super::access_line::oracle::{APACHE_COMMON, NGINX_COMBINED};
        use super::*;

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
            for name in ["referer", "agent"] {
                if let Some(v) = c.name(name) {
                    let v = v.as_str();
                    out.insert(name.into(), if v == "-" { Value::Null } else { s(v) });
                }
            }
            Ok(())
        }

        pub fn nginx_combined(text: &str) -> Result<Value, String> {
            let c = NGINX_COMBINED
                .captures(text)
                .ok_or("not an nginx combined log line")?;
            let mut out = Map::new();
            access_fields(&c, &mut out)?;
            Ok(Value::Map(out))
        }

        /// `format` is `common` or `combined`.
        pub fn apache(text: &str, format: &str) -> Result<Value, String> {
            let c = APACHE_COMMON
                .captures(text)
                .ok_or("not an Apache access log line")?;
            if format == "combined" && c.name("agent").is_none() {
                return Err("not an Apache combined log line (no referer and user agent)".into());
            }
            let mut out = Map::new();
            access_fields(&c, &mut out)?;
            if format == "common" {
                out.remove("referer");
                out.remove("agent");
            }
            Ok(Value::Map(out))
        }
    }

    fn same_as_before(line: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::prop_assert_eq;
        prop_assert_eq!(call(parse_nginx, &[line]), before::nginx_combined(line));
        prop_assert_eq!(
            call(parse_nginx, &[line, "combined"]),
            before::nginx_combined(line)
        );
        prop_assert_eq!(
            call(parse_apache, &[line]),
            before::apache(line, "combined")
        );
        for format in ["common", "combined"] {
            prop_assert_eq!(
                call(parse_apache, &[line, format]),
                before::apache(line, format)
            );
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 2_000, ..Default::default() })]

        #[test]
        fn builtin_access_parsers_return_what_the_regex_parsers_returned(
            line in super::super::access_line::oracle::access_line()
        ) {
            same_as_before(&line)?;
        }

        #[test]
        fn builtin_access_parsers_fail_as_the_regex_parsers_failed_on_edited_lines(
            line in super::super::access_line::oracle::access_line(),
            edits in super::super::access_line::oracle::edits(),
        ) {
            same_as_before(&super::super::access_line::oracle::apply(&line, &edits))?;
        }
    }

    #[test]
    fn generated_access_lines_often_parse() {
        // Comparing errors alone would prove little about the maps.
        use proptest::strategy::{Strategy, ValueTree};
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = super::super::access_line::oracle::access_line();
        let (mut nginx, mut apache) = (0, 0);
        for _ in 0..1_000 {
            let line = strategy
                .new_tree(&mut runner)
                .map(|t| t.current())
                .unwrap_or_default();
            nginx += usize::from(call(parse_nginx, &[&line]).is_ok());
            apache += usize::from(call(parse_apache, &[&line, "common"]).is_ok());
        }
        assert!(nginx > 200 && apache > 350, "{nginx} {apache}");
    }

    #[test]
    fn each_error_of_the_builtin_access_parsers_is_the_one_it_was() {
        // Each reached by some line, so the property tests compare them.
        let cases = [
            ("garbage", "not an nginx combined log line"),
            (
                r#"h - - [32/Nov/2026:10:00:00 +0000] "r" 200 1"#,
                "cannot parse timestamp",
            ),
            (
                "h - - [25/Nov/2026:10:00:00 +0000] \"r\" 2\u{663}0 1",
                "bad status",
            ),
            (
                r#"h - - [25/Nov/2026:10:00:00 +0000] "r" 200 99999999999999999999"#,
                "bad size",
            ),
        ];
        for (line, error) in cases {
            let got = call(parse_nginx, &[line]).unwrap_err();
            assert!(got.starts_with(error), "{line}: {got}");
            assert_eq!(Err(got), before::nginx_combined(line));
        }
        let common = r#"h - - [25/Nov/2026:10:00:00 +0000] "r" 200 1"#;
        assert_eq!(
            call(parse_apache, &[common, "combined"]),
            Err("not an Apache combined log line (no referer and user agent)".into())
        );
        assert_eq!(
            call(parse_apache, &["nope", "weird"]),
            Err("not an Apache access log line".into())
        );
        assert!(call(parse_apache, &[common, "weird"])
            .unwrap_err()
            .starts_with("unknown Apache format `weird`"));
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
