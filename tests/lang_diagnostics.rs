//! `shipctl check` diagnostics: every kind of mistake is reported with
//! file:line:column, the source line, a caret and a hint, all at once.

use std::process::Command;

fn check(name: &str, src: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, src).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .arg("check")
        .arg(name)
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HEADER: &str =
    "source web = files { include = [\"/var/log/nginx/*.log\"] }\nsink out = console {}\n";

fn one(kind: &str, body: &str) -> String {
    let (code, text) = check(&format!("{kind}.ship"), &format!("{HEADER}{body}"));
    assert_eq!(code, 1, "{text}");
    text
}

#[test]
fn five_different_mistakes_are_all_reported_with_line_and_column() {
    let src = r#"source web = files { include = ["/var/log/*.log"], red_from = "end" }
sink out = console {}
step parse on web {
  .fields = parse_json(.message)
  .level = lowercse(.level)
}
step parse on wbe { .x = 1 }
route {
  .level == "error" => errors
  else => out
}
"#;
    let (code, text) = check("five.ship", src);
    assert_eq!(code, 1);
    insta::assert_snapshot!(text);
    for at in [
        "five.ship:1:52:",
        "five.ship:4:13:",
        "five.ship:5:12:",
        "five.ship:7:6:",
        "five.ship:7:15:",
        "five.ship:9:24:",
    ] {
        assert!(text.contains(at), "missing {at} in\n{text}");
    }
}

#[test]
fn unknown_function_suggests_the_closest_name() {
    insta::assert_snapshot!(one(
        "unknown_function",
        "step s on web { .x = parse_jsn!(.message) }\nroute { else => out }\n"
    ));
}

#[test]
fn unhandled_fallible_call_is_refused() {
    insta::assert_snapshot!(one(
        "unhandled",
        "step s on web { .x = to_int(.status) }\nroute { else => out }\n"
    ));
}

#[test]
fn wrong_argument_type_is_refused() {
    insta::assert_snapshot!(one(
        "argument_type",
        "step s on web { .x = lowercase([1, 2]) }\nroute { else => out }\n"
    ));
}

#[test]
fn route_to_undeclared_sink_is_refused() {
    insta::assert_snapshot!(one("undeclared_sink", "route { else => ot }\n"));
}

#[test]
fn unreachable_route_is_refused() {
    insta::assert_snapshot!(one(
        "unreachable",
        "route {\n  else => out\n  .level == \"error\" => out\n}\n"
    ));
}

#[test]
fn duplicate_name_is_refused() {
    insta::assert_snapshot!(one(
        "duplicate",
        "sink web = console {}\nroute { else => out }\n"
    ));
}

#[test]
fn regex_that_does_not_compile_is_refused() {
    insta::assert_snapshot!(one(
        "regex",
        "step s on web { .x = parse_regex!(.message, /(?<a>[/) }\nroute { else => out }\n"
    ));
}

#[test]
fn unknown_component_option_is_refused() {
    insta::assert_snapshot!(one(
        "unknown_option",
        "sink o2 = openobserve { url = \"http://x:5080\", orgg = \"a\" }\nroute { else => out }\n"
    ));
}

#[test]
fn missing_else_route_is_refused() {
    insta::assert_snapshot!(one("missing_else", "route { .level == \"x\" => out }\n"));
}

#[test]
fn syntax_errors_point_at_the_token() {
    insta::assert_snapshot!(one(
        "syntax",
        "step s on web { .x = }\nroute { else => out }\n"
    ));
}

#[test]
fn values_from_env_and_files_are_never_echoed_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "hunter2-very-secret\n").unwrap();
    let path = dir.path().join("secret.ship");
    std::fs::write(
        &path,
        "sink o2 = openobserve { url = \"http://x:5080\", password = file(\"pw\"), user = env(\"SHIPD_TEST_USER\"), transport = env(\"SHIPD_TEST_TRANSPORT\") }\nroute { else => o2 }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .args(["check", "secret.ship"])
        .current_dir(dir.path())
        .env("SHIPD_TEST_USER", "root@example.com")
        .env("SHIPD_TEST_TRANSPORT", "carrier-pigeon-secret")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("option `transport` must be one of http, grpc"),
        "{text}"
    );
    for secret in ["hunter2", "carrier-pigeon", "root@example.com"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
}

#[test]
fn a_valid_file_checks_clean_and_shipd_refuses_an_invalid_config_before_starting() {
    let (code, text) = check("ok.ship", &format!("{HEADER}route {{ else => out }}\n"));
    assert_eq!(code, 0, "{text}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ship");
    std::fs::write(&bad, "route { else => nowhere }\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shipd"))
        .arg("--config")
        .arg(&bad)
        .env("SHIPD_DATA_DIR", dir.path().join("data"))
        .env("SHIPD_API_ADDR", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.ship:1:17: error: route to undeclared sink `nowhere`"),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing started, nothing written"
    );
}

#[test]
fn metric_emission_mistakes_are_all_reported_at_load() {
    let src = r#"source web = files { include = ["/var/log/nginx/*.log"] }
source requests = log_metrics { every = 15s }
sink out = console {}
step m on web {
  count(request, "http_requests_total")
  count(web, "http_requests_total")
  count(requests, "hits", { status: 200 })
  set_gauge(requests, "hits", 1.0)
  observe(requests, "latency", 0.1, buckets: [1, 0.5])
  count(requests, "bad name")
  observe(requests, "size", .message)
}
route { else => out }
test "t" {
  input web { message = "x" }
  expect metric "hitz" == 1
}
"#;
    let (code, text) = check("emit.ship", src);
    assert_eq!(code, 1, "{text}");
    for (at, message) in [
        (
            "emit.ship:5:9:",
            "`request` is not a declared `log_metrics` source",
        ),
        ("emit.ship:6:9:", "`web` is not a `log_metrics` source"),
        (
            "emit.ship:7:37:",
            "label values are strings, this is integer",
        ),
        (
            "emit.ship:8:23:",
            "`hits` is already a counter; a metric has one kind",
        ),
        (
            "emit.ship:9:50:",
            "bucket bounds must be finite and strictly increasing",
        ),
        ("emit.ship:10:19:", "a metric name is letters, digits"),
        ("emit.ship:11:3:", "unhandled error: `observe` can fail"),
        ("emit.ship:16:17:", "no step records a metric `hitz`"),
    ] {
        assert!(
            text.contains(&format!("{at} error: {message}")),
            "missing {at} {message} in\n{text}"
        );
    }
    assert!(text.contains("did you mean `requests`?"), "{text}");
    assert!(text.contains("did you mean `hits`?"), "{text}");
    assert!(
        !text.contains("emit.ship:7:3:"),
        "a label refused for its type is not also an unhandled error:\n{text}"
    );
}
