//! The language's former silent traps, now reported by `shipctl check`
//! (file:line:column, caret, hint) or, where types are only known at run
//! time, failing the step with a reason instead of doing something else;
//! and the flow-typing cases that must stay quiet. Also `let` locals end to
//! end through `shipctl test`.

use std::process::{Command, Output};

fn shipctl(args: &[&str], name: &str, src: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), src).unwrap();
    Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .args(args)
        .arg(name)
        .current_dir(dir.path())
        .env_remove("OPENOBSERVE_URL")
        .env_remove("SHIPD_TRAPS_UNSET")
        .output()
        .unwrap()
}

const HEADER: &str =
    "source web = files { include = [\"/var/log/nginx/*.log\"] }\nsink out = console {}\n";

/// `shipctl check` of HEADER + body: exit code and stderr.
fn check(name: &str, body: &str) -> (i32, String) {
    let out = shipctl(
        &["check"],
        &format!("{name}.ship"),
        &format!("{HEADER}{body}"),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refused(name: &str, body: &str) -> String {
    let (code, text) = check(name, body);
    assert_eq!(code, 1, "accepted:\n{body}");
    text
}

fn accepted(name: &str, body: &str) {
    let (code, text) = check(name, body);
    assert_eq!(code, 0, "refused:\n{body}\n{text}");
}

#[test]
fn a_second_statement_on_the_same_line_is_an_error() {
    let text = refused(
        "same_line",
        "step s on web {\n  .a = 1 .b = 2\n}\nroute { else => out }\n",
    );
    assert!(text.contains("same_line.ship:4:10:"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn a_field_after_a_space_is_not_read_from_the_call() {
    insta::assert_snapshot!(refused(
        "spaced_field",
        "step s on web {\n  .n = parse_json!(.message) .n\n}\nroute { else => out }\n",
    ));
}

#[test]
fn field_and_index_access_apply_to_any_expression() {
    accepted(
        "postfix",
        "step s on web {\n  .ts = parse_regex!(.message, /(?<ts>\\d+)/).ts ?? null\n  .x = (.a ?? .b).x\n  .first = split(.message, \" \")[0]\n  .n = parse_json(.message).n ?? null; .m = 1\n}\nroute { else => out }\n",
    );
}

#[test]
fn a_condition_of_another_type_is_refused() {
    insta::assert_snapshot!(refused(
        "condition_type",
        "step s on web {\n  .status = 500\n  drop where .status\n  .level = if \"yes\" { 1 } else { 2 }\n}\nroute { else => out }\n",
    ));
}

#[test]
fn adding_a_number_and_a_string_is_refused() {
    insta::assert_snapshot!(refused(
        "string_number",
        "step s on web {\n  .y = to_int!(.x) + \"a\"\n}\nroute { else => out }\n",
    ));
}

#[test]
fn a_field_that_may_be_missing_is_refused_in_arithmetic_and_comparisons() {
    insta::assert_snapshot!(refused(
        "nullable",
        "step s on web {\n  .ns = .pino.time * 1000000\n  .level = if .status >= 500 { \"error\" } else { \"info\" }\n}\nroute { else => out }\n",
    ));
}

#[test]
fn an_undefined_local_suggests_the_closest_name() {
    insta::assert_snapshot!(refused(
        "undefined_local",
        "step s on web {\n  let status = .status ?? 0\n  .x = staus + 1\n}\nroute { else => out }\n",
    ));
}

#[test]
fn a_local_is_scoped_to_its_block() {
    let text = refused(
        "local_scope",
        "step s on web {\n  if exists(.a) {\n    let inner = 1\n  }\n  .x = inner\n}\nroute { else => out }\n",
    );
    assert!(
        text.contains("local_scope.ship:7:8: error: unknown name `inner`"),
        "{text}"
    );
}

#[test]
fn a_let_may_not_hide_a_source_and_must_evaluate_at_load() {
    insta::assert_snapshot!(refused(
        "let_at_load",
        "let web = 1\nlet dir = env(\"SHIPD_TRAPS_UNSET\")\nroute { else => out }\n",
    ));
}

#[test]
fn tested_fields_are_not_nagged() {
    accepted(
        "flow_quiet",
        r#"step s on web {
  .ns = if exists(.pino.time) { .pino.time * 1000000 } else { 0 }
  .level = if .status != null and .status >= 500 { "error" } else { "info" }
  .slow = if .ms == null { false } else { .ms > 1000 }
  .big = not exists(.size) or .size > 1000000
  drop where .code == null
  .code_plus = .code + 1
  .n = 5
  .n2 = .n * 2
  let d = .duration ?? 0
  .double = d * 2
  let t = .t
  .t2 = if t != null { t - 1 } else { 0 }
  .safe = (.bytes ?? 0) / 1024
}
step w on web where exists(.latency) {
  .latency_ms = .latency / 1000
}
route {
  exists(.level) and .level > "a" => out
  else => out
}
"#,
    );
}

#[test]
fn facts_end_where_they_stop_being_true() {
    insta::assert_snapshot!(refused(
        "flow_sound",
        r#"step s on web {
  if exists(.x) { del(.x)
    .y = .x + 1 }
  if exists(.a) { .b = 1 }
  .c = .a + 1
  .d = if .e > 5 and exists(.e) { 1 } else { 0 }
  .f = 1
  .f.g = 2
  .h = .f + 1
  .i = if exists(.j) and del(.j) != null { .j + 1 } else { 0 }
}
route { else => out }
"#,
    ));
}

/// `shipctl test` of a pipeline: (exit code, stdout).
fn run_tests(name: &str, src: &str) -> (i32, String) {
    let out = shipctl(&["test"], name, src);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn lets_work_in_steps_conditions_routes_and_options() {
    let src = r#"let log_dir = "/var/log/app"
let errors_stream = "app_" + "errors"
let threshold = 500
source app = files { include = [log_dir + "/*.log"] }
sink out = console {}
step parse on app where .message != "skip" {
  let http = parse_json!(.message)
  let status = to_int(http.status ?? 0) ?? 0
  .status = status
  .kind = if status >= threshold { let k = "server"; k + "_error" } else { "ok" }
}
route {
  (.status ?? 0) >= threshold => out stream errors_stream
  else => out
}
test "a local computed once is used by later statements" {
  input app { message = "{\"status\": \"502\"}" }
  expect { .status == 502, .kind == "server_error", not exists(.http) }
  expect route out stream "app_errors"
}
test "a skipped event is untouched" {
  input app { message = "skip" }
  expect { not exists(.status) }
}
"#;
    let (code, text) = run_tests("lets.ship", src);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 passed, 0 failed"), "{text}");
}

#[test]
fn a_non_boolean_condition_fails_the_step_instead_of_being_false() {
    let src = r#"source app = files { include = ["/x"] }
sink out = console {}
step parse on app on_error tag {
  .fields = parse_json!(.message)
  drop where .fields.flag
}
route { else => out }
test "a string where a boolean belongs is an error" {
  input app { message = "{\"flag\": \"yes\"}" }
  expect { contains(."shipd.error", "a condition must be a boolean, got string"), not exists(.fields) }
}
test "a boolean still decides" {
  input app { message = "{\"flag\": true}" }
  expect dropped
}
"#;
    let (code, text) = run_tests("cond.ship", src);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 passed, 0 failed"), "{text}");
}

#[test]
fn adding_a_string_to_a_number_fails_at_run_time_when_types_are_unknown() {
    let src = r#"source app = files { include = ["/x"] }
sink out = console {}
step parse on app on_error tag {
  .n = (parse_json!(.message).n ?? 0) + "a"
}
route { else => out }
test "7 + \"a\" is an error, not \"7a\"" {
  input app { message = "{\"n\": 7}" }
  expect { not exists(.n), contains(."shipd.error", "cannot add integer and string") }
}
test "strings still join" {
  input app { message = "{\"n\": \"7\"}" }
  expect { .n == "7a" }
}
"#;
    let (code, text) = run_tests("add.ship", src);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 passed, 0 failed"), "{text}");
}

#[test]
fn a_route_condition_must_be_known_to_be_boolean() {
    let text = refused(
        "route_condition",
        "route {\n  .is_error => out\n  .level == \"error\" or exists(.panic) => out\n  else => out\n}\n",
    );
    assert!(
        text.contains(
            "route_condition.ship:4:3: error: a route condition must be known to be a boolean"
        ),
        "{text}"
    );
    assert!(text.contains("1 error(s)"), "{text}");
}
