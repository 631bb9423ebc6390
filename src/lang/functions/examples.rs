//! Worked examples of the standard functions, each a call and the value it
//! gives. They are the examples of the generated function reference
//! (docs/reference.md, rendered by [`crate::lang::reference`]) and they run as
//! tests: every call goes through the real compiler and evaluator in a
//! one-step pipeline and is compared with its stated result.

/// One example: `call` evaluates to `result` (both pipeline expressions).
#[derive(Debug)]
pub struct Example {
    pub function: &'static str,
    pub call: &'static str,
    pub result: &'static str,
}

const fn ex(function: &'static str, call: &'static str, result: &'static str) -> Example {
    Example {
        function,
        call,
        result,
    }
}

pub static EXAMPLES: &[Example] = &[
    ex("parse_json", r#"parse_json!("{\"a\":1}")"#, r#"{ "a": 1 }"#),
    ex(
        "parse_logfmt",
        r#"parse_logfmt!("level=info msg=\"hi there\"")"#,
        r#"{ "level": "info", "msg": "hi there" }"#,
    ),
    ex(
        "parse_nginx",
        r#"parse_nginx!("10.0.0.7 [25/Nov/2026:10:00:00 +0000] \"GET /a HTTP/1.1\" 200 0.012", "$remote_addr [$time_local] \"$request\" $status $request_time")"#,
        r#"{ "remote_addr": "10.0.0.7", "time_local": parse_timestamp!("2026-11-25T10:00:00Z"), "request": "GET /a HTTP/1.1", "method": "GET", "path": "/a", "protocol": "HTTP/1.1", "status": 200, "request_time": 0.012 }"#,
    ),
    ex(
        "parse_apache",
        r#"parse_apache!("10.0.0.7 - - [25/Nov/2026:10:00:00 +0000] \"GET /a HTTP/1.1\" 200 - 1520", "%h %l %u %t \"%r\" %>s %b %D")"#,
        r#"{ "client": "10.0.0.7", "ident": null, "user": null, "timestamp": parse_timestamp!("2026-11-25T10:00:00Z"), "request": "GET /a HTTP/1.1", "method": "GET", "path": "/a", "protocol": "HTTP/1.1", "status": 200, "size": 0, "duration_us": 1520 }"#,
    ),
    ex(
        "parse_regex",
        r#"parse_regex!("GET /a 200", /^(?<method>\S+) (?<path>\S+) %{INT:status:int}$/)"#,
        r#"{ "method": "GET", "path": "/a", "status": 200 }"#,
    ),
    ex(
        "parse_regex",
        r#"parse_regex!("took 2.5s", /took %{NUMBER:secs:float}s/)"#,
        r#"{ "secs": 2.5 }"#,
    ),
    ex(
        "parse_syslog",
        r#"parse_syslog!("<165>1 2026-11-25T10:00:00.000Z pi-1 app 42 ID7 - disk almost full")"#,
        r#"{ "appname": "app", "facility": "local4", "hostname": "pi-1", "message": "disk almost full", "msgid": "ID7", "procid": "42", "severity": "notice", "timestamp": parse_timestamp!("2026-11-25T10:00:00Z"), "version": 1 }"#,
    ),
    ex(
        "parse_cri",
        r#"parse_cri!("2026-11-25T10:00:00Z stdout F hello")"#,
        r#"{ "message": "hello", "partial": false, "stream": "stdout", "timestamp": parse_timestamp!("2026-11-25T10:00:00Z") }"#,
    ),
    ex(
        "parse_docker_json",
        r#"parse_docker_json!("{\"log\":\"hi\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-25T10:00:00Z\"}")"#,
        r#"{ "message": "hi", "partial": false, "stream": "stderr", "timestamp": parse_timestamp!("2026-11-25T10:00:00Z") }"#,
    ),
    ex(
        "parse_timestamp",
        r#"parse_timestamp!("25/Nov/2026:10:00:00 +0100", "%d/%b/%Y:%H:%M:%S %z")"#,
        r#"parse_timestamp!("2026-11-25T09:00:00Z")"#,
    ),
    ex("parse_csv", r#"parse_csv!("a,\"b,c\"")"#, r#"["a", "b,c"]"#),
    ex(
        "parse_key_value",
        r#"parse_key_value!("a=1 b=\"x y\"")"#,
        r#"{ "a": "1", "b": "x y" }"#,
    ),
    ex("to_int", r#"to_int!("42")"#, "42"),
    ex("to_string", "to_string(42)", r#""42""#),
    ex("to_float", r#"to_float!("2.5")"#, "2.5"),
    ex("to_bool", r#"to_bool!("yes")"#, "true"),
    ex("lowercase", r#"lowercase("ERROR")"#, r#""error""#),
    ex("uppercase", r#"uppercase("warn")"#, r#""WARN""#),
    ex("trim", r#"trim("  a b  ")"#, r#""a b""#),
    ex(
        "contains",
        r#"contains("connection timeout", "timeout")"#,
        "true",
    ),
    ex("starts_with", r#"starts_with("GET /a", "POST")"#, "false"),
    ex("ends_with", r#"ends_with("app.log", ".log")"#, "true"),
    ex("replace", r#"replace("a1b22", /\d+/, "N")"#, r#""aNbN""#),
    ex(
        "replace",
        r#"replace("user=bob id=7", /user=(?<name>\w+)/, "user:${name}")"#,
        r#""user:bob id=7""#,
    ),
    ex(
        "replace",
        r#"replace("10.1.2.3", /^(\d+)\.(\d+)\..*$/, "$1.$2.x.x")"#,
        r#""10.1.x.x""#,
    ),
    ex("replace", r#"replace("a.b.c", ".", "/")"#, r#""a/b/c""#),
    ex("split", r#"split("a,b", ",")"#, r#"["a", "b"]"#),
    ex(
        "split",
        r#"split("/var/log/app.log", "/")[-1]"#,
        r#""app.log""#,
    ),
    ex("join", r#"join(["a", 1], "-")"#, r#""a-1""#),
    ex("len", r#"len("abc")"#, "3"),
    ex(
        "merge",
        r#"merge({ "a": 1 }, { "b": 2 })"#,
        r#"{ "a": 1, "b": 2 }"#,
    ),
    ex("hash", r#"hash("bob")"#, "721104126995651698"),
    ex("sample", r#"sample(4, "alice")"#, "true"),
    ex("sample", r#"sample(4, "bob")"#, "false"),
    ex(
        "sample",
        r#"sample(7, "user-42") == (hash("user-42") % 7 == 0)"#,
        "true",
    ),
    ex(
        "normalize_severity",
        r#"normalize_severity!(30, "pino")"#,
        r#""INFO""#,
    ),
    ex("normalize_severity", "normalize_severity!(3)", r#""ERROR""#),
    ex(
        "from_unix",
        r#"from_unix!(1795600800123, "ms")"#,
        r#"parse_timestamp!("2026-11-25T10:00:00.123Z")"#,
    ),
    ex(
        "compact",
        r#"compact({ "a": null, "b": "", "c": { "d": [] }, "e": 0 })"#,
        r#"{ "e": 0 }"#,
    ),
    ex(
        "flatten",
        r#"flatten({ "http": { "status": 200 } })"#,
        r#"{ "http.status": 200 }"#,
    ),
    ex("keys", r#"keys({ "b": 2, "a": 1 })"#, r#"["a", "b"]"#),
    ex("values", r#"values({ "b": 2, "a": 1 })"#, "[1, 2]"),
    ex("is_int", "is_int(200)", "true"),
    ex("is_string", "is_string(200)", "false"),
    ex("is_null", "is_null(.missing)", "true"),
    ex("is_float", "is_float(2.5)", "true"),
    ex("is_bool", "is_bool(false)", "true"),
    ex("is_map", r#"is_map({ "a": 1 })"#, "true"),
    ex("is_array", "is_array([1])", "true"),
    ex(
        "is_timestamp",
        r#"is_timestamp(parse_timestamp!("2026-11-25T10:00:00Z"))"#,
        "true",
    ),
    ex("exists", "exists(.missing)", "false"),
    ex(
        "env",
        r#"env("SHIPD_EXAMPLE_UNSET") ?? "fallback""#,
        r#""fallback""#,
    ),
    ex(
        "ip_mask",
        r#"ip_mask!("192.168.17.201", 24)"#,
        r#""192.168.17.0""#,
    ),
    ex(
        "ip_mask",
        r#"ip_mask!("2001:db8:abcd:12::1", 48)"#,
        r#""2001:db8:abcd::""#,
    ),
    ex(
        "ip_in_cidr",
        r#"ip_in_cidr!("10.1.2.3", "10.0.0.0/8")"#,
        "true",
    ),
    ex(
        "sha256",
        r#"sha256("abc")"#,
        r#""ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad""#,
    ),
    ex(
        "hmac_sha256",
        r#"hmac_sha256("what do ya want for nothing?", "Jefe")"#,
        r#""5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843""#,
    ),
    ex(
        "redact",
        r#"redact({ "path": "/u?mail=a@b.org", "tags": ["c@d.com"] }, [email])"#,
        r#"{ "path": "/u?mail=[REDACTED]", "tags": ["[REDACTED]"] }"#,
    ),
    ex(
        "map_values",
        r#"map_values({ "path": "/u?mail=a@b.org", "status": 200 }, |v| if is_string(v) { redact(v, [email]) } else { v })"#,
        r#"{ "path": "/u?mail=[REDACTED]", "status": 200 }"#,
    ),
    ex(
        "map_values",
        "map_values([1, 2, null], |x| (x ?? 0) * 2)",
        "[2, 4, 0]",
    ),
    ex(
        "map_values",
        r#"map_values(["a", "b"], |i, x| to_string(i) + ":" + (x ?? ""))"#,
        r#"["0:a", "1:b"]"#,
    ),
    ex(
        "map_keys",
        r#"map_keys({ "Host": "pi-1", "Port": 80 }, |k| lowercase(k))"#,
        r#"{ "host": "pi-1", "port": 80 }"#,
    ),
    ex(
        "filter",
        r#"filter({ "a": 1, "b": null, "c": "" }, |k, v| v != null and v != "")"#,
        r#"{ "a": 1 }"#,
    ),
    ex(
        "filter",
        "filter([3, -1, null, 5], |x| x != null and x > 0)",
        "[3, 5]",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::{render, testing, Environment};

    fn pipeline(e: &Example) -> String {
        format!(
            "source app = files {{ include = [\"/nonexistent/*.log\"] }}\n\
             sink out = console {{}}\n\
             step example on app {{ .got = {call} }}\n\
             route {{ else => out }}\n\
             test \"example\" {{\n  input app {{ message = \"\" }}\n  expect {{ .got == {result} }}\n}}\n",
            call = e.call,
            result = e.result,
        )
    }

    #[test]
    fn every_function_example_gives_its_stated_result() {
        for e in EXAMPLES {
            assert!(
                super::super::names().any(|n| n == e.function),
                "{} is not a function",
                e.function
            );
            let src = pipeline(e);
            let reports = testing::run_source(&src, &Environment::Fixed(Default::default()))
                .unwrap_or_else(|d| panic!("{}", render("example", &src, &d)));
            for report in reports {
                assert!(
                    report.passed(),
                    "`{}` should give `{}`: {:?}",
                    e.call,
                    e.result,
                    report.failures
                );
            }
        }
    }

    /// parse_klog and now have none: klog writes no year, so its result
    /// depends on today's date, as now's does (their unit tests cover them).
    #[test]
    fn every_new_function_has_an_example() {
        for name in [
            "parse_csv",
            "parse_key_value",
            "from_unix",
            "compact",
            "flatten",
            "keys",
            "values",
            "ip_mask",
            "ip_in_cidr",
            "sha256",
            "hmac_sha256",
            "redact",
            "parse_nginx",
            "parse_apache",
            "normalize_severity",
            "parse_regex",
            "parse_syslog",
            "parse_cri",
            "parse_docker_json",
            "parse_timestamp",
            "to_float",
            "replace",
            "hash",
            "sample",
            "map_values",
            "map_keys",
            "filter",
        ] {
            assert!(
                EXAMPLES.iter().any(|e| e.function == name),
                "{name} has no example"
            );
        }
    }
}
