//! Iteration end to end: `map_values`, `map_keys` and `filter` in whole
//! pipelines run by their own `test` blocks (the e-mail leak of a parsed
//! map closed), and the check-time diagnostics of closures with file:line:
//! column, caret and hint.

use shipd::lang::{load_named, render, testing, Environment};

/// The reports of the tests in `src` (panics when it does not load).
fn run(src: &str) -> Vec<testing::TestReport> {
    testing::run_source(src, &Environment::empty())
        .unwrap_or_else(|d| panic!("{}", render("pipeline.ship", src, &d)))
}

const ACCESS: &str = r#"
source access = files { include = ["/var/log/nginx/access.log"] }
step parse on access { .http = parse_nginx!(.message) }
PRIVACY
sink out = console {}
route { else => out }
test "no e-mail address is left in any string of the parsed map" {
  input access { message = "192.168.17.201 - bob [25/Nov/2026:10:00:00 +0000] \"GET /reset?mail=bob@example.com HTTP/1.1\" 200 12 \"https://example.com/?u=bob@example.com\" \"curl/8.5.0\"" }
  expect { .http.path == "/reset?mail=[REDACTED]", .http.referer == "https://example.com/?u=[REDACTED]", .http.request == "GET /reset?mail=[REDACTED] HTTP/1.1", .http.status == 200, .http.size == 12 }
  expect { len(filter(values(.http), |v| is_string(v) and contains(v, "@"))) == 0 }
}
"#;

#[test]
fn map_values_with_redact_closes_the_leak_of_a_parsed_map() {
    let src = ACCESS.replace(
        "PRIVACY",
        "step privacy on access where exists(.http) {\n  .http = map_values(.http, |v| if is_string(v) { redact(v, [email]) } else { v })\n}",
    );
    for report in run(&src) {
        assert!(report.passed(), "{}: {:?}", report.name, report.failures);
    }
}

#[test]
fn redact_on_the_whole_map_closes_it_too() {
    let src = ACCESS.replace(
        "PRIVACY",
        "step privacy on access where exists(.http) { .http = redact(.http, [email]) }",
    );
    for report in run(&src) {
        assert!(report.passed(), "{}: {:?}", report.name, report.failures);
    }
}

#[test]
fn without_the_privacy_step_the_same_test_sees_the_leak() {
    let reports = run(&ACCESS.replace("PRIVACY", ""));
    assert_eq!(reports.len(), 1);
    assert!(!reports[0].passed());
    assert!(
        reports[0]
            .failures
            .iter()
            .any(|f| f.contains("bob@example.com")),
        "{:?}",
        reports[0].failures
    );
}

#[test]
fn keys_are_renamed_empty_values_filtered_and_a_failing_closure_fails_its_step() {
    let src = r#"
source app = files { include = ["/var/log/app.log"] }
step tidy on app {
  let fields = parse_json(.message) ?? {}
  .fields = filter(map_keys(fields, |k| lowercase(k)), |k, v| v != null and v != "")
  .codes = map_values(fields.Codes ?? [], |i, c| to_string(i) + ":" + to_string(c))
}
step numbers on app on_error keep {
  .numbers = map_values(.fields, |v| to_int!(v))
}
sink out = console {}
route { else => out }
test "keys lowercased, empty values gone, array elements with their index" {
  input app { message = "{\"Host\":\"pi-1\",\"Empty\":\"\",\"Gone\":null,\"Codes\":[7,9]}" }
  expect { .fields == { "codes": [7, 9], "host": "pi-1" }, .codes == ["0:7", "1:9"] }
  expect { not exists(.numbers) }
}
"#;
    for report in run(src) {
        assert!(report.passed(), "{}: {:?}", report.name, report.failures);
    }
}

#[test]
fn closure_mistakes_are_reported_with_line_column_and_hint() {
    let src = r#"source web = files { include = ["/var/log/nginx/*.log"] }
sink out = console {}
step s on web {
  .a = filter(.items ?? [], |x| "yes")
  .b = map_values(.http ?? {}, |k, v, extra| v)
  .c = len(|x| x)
  .d = map_values(.http ?? {}, |value| valeu)
  .e = map_values(.http ?? {}, |v| if v == null { drop } else { v })
  .f = map_values(.items ?? [], |x| x * 2)
}
route { else => out }
"#;
    let Err(diagnostics) = load_named("closures.ship", src, Environment::empty()) else {
        panic!("accepted");
    };
    let text = render("closures.ship", src, &diagnostics);
    for at in [
        "closures.ship:4:33:",
        "closures.ship:5:32:",
        "closures.ship:6:12:",
        "closures.ship:7:40:",
        "closures.ship:8:51:",
        "closures.ship:9:37:",
    ] {
        assert!(text.contains(at), "missing {at} in\n{text}");
    }
    insta::assert_snapshot!(text);
}
