//! `shipctl test` run as users run it: the tests see only the environment
//! they declare (never the shell's), raw lines go through the source's own
//! framing (multiline joining, CRI reassembly), dead-lettered events can be
//! expected and inspected, and a failing test shows the whole event.

use std::path::Path;
use std::process::{Command, Output};

fn shipctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipctl"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("shipctl runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_pipeline(dir: &Path, text: &str) -> String {
    let path = dir.join("t.ship");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn the_shells_environment_does_not_reach_the_tests() {
    let out = shipctl(
        &["test", "pipelines/nginx-lb.ship"],
        &[("OPENOBSERVE_URL", "http://pi-obs.example:5080")],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("6 passed, 0 failed"), "{text}");
}

#[test]
fn env_flags_reach_the_tests() {
    // With OpenObserve configured the console expectations of nginx-lb.ship
    // no longer hold: proof that --env is what the tests read.
    let out = shipctl(
        &[
            "test",
            "--env",
            "OPENOBSERVE_URL=http://pi-obs.example:5080",
            "pipelines/nginx-lb.ship",
        ],
        &[],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("2 passed, 4 failed"), "{text}");
    assert!(
        text.contains("got o2 stream \"nginx_errors\""),
        "the failure names the route taken: {text}"
    );
}

const PIPELINE: &str = r##"
source slow = files { include = ["/nonexistent/slow.log"], multiline.start = /^# Time:/ }
source pods = cri { directory = "/nonexistent/pods" }

step mariadb on slow {
  .m = parse_regex!(.message, /Query_time: (?<t>[0-9.]+)/)
  .query_time = to_float!(.m.t)
  del(.m)
}

sink out = console {}
sink o2 = openobserve {
  url = env("OPENOBSERVE_URL") ?? "http://unused.example:5080"
  enabled = (env("OPENOBSERVE_URL") ?? "") != ""
}

route {
  source == pods => o2 or out stream "pods"
  else => o2 or out stream "slow"
  dead_letter => out stream "dead"
}

test "a slow-log entry of three lines is one event" {
  input slow lines [
    "# Time: 2026-11-25T10:00:00Z",
    "# Query_time: 2.5  Lock_time: 0.0",
    "SELECT 1;",
  ]
  expect { .query_time == 2.5, starts_with(.message, "# Time: 2026"), ends_with(.message, "SELECT 1;") }
  expect route out stream "slow"
}

test "an entry without Query_time is dead-lettered with its error" {
  input slow lines ["# Time: x", "SELECT 1;"]
  expect failed "no match"
  expect { .message == "# Time: x\nSELECT 1;", contains(.["shipd.error"], "no match") }
  expect route out stream "dead"
}

test "CRI partial lines are reassembled into one event" {
  input pods lines [
    "2026-01-01T00:00:00.000000001Z stderr P hello ",
    "2026-01-01T00:00:00.000000002Z stderr F world",
  ]
  expect { .message == "hello world", .["log.iostream"] == "stderr" }
  expect route out stream "pods"
}

test "every input is checked" {
  input slow lines ["# Time: 1", "# Query_time: 1.0"]
  input slow { message = "# Query_time: 1.0" }
  expect { .query_time == 1.0 }
}

test "with OPENOBSERVE_URL declared the events go to OpenObserve" {
  env { OPENOBSERVE_URL = "http://o2.example:5080" }
  input slow lines ["# Time: 1", "# Query_time: 1.0"]
  expect route o2 stream "slow"
}
"##;

#[test]
fn lines_go_through_the_sources_framing_and_failures_can_be_expected() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(dir.path(), PIPELINE);
    // Set in the shell, it changes nothing: only the fourth test declares it.
    let out = shipctl(
        &["test", &file],
        &[("OPENOBSERVE_URL", "http://shell.example:5080")],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("5 passed, 0 failed"), "{text}");
}

#[test]
fn wrong_expectations_fail_with_the_whole_event_shown() {
    let dir = tempfile::tempdir().unwrap();
    let broken = PIPELINE
        .replace(
            "input slow { message = \"# Query_time: 1.0\" }",
            "input slow { message = \"# Query_time: 9.0\" }",
        )
        .replace("expect failed \"no match\"", "expect failed \"timeout\"")
        .replace(".query_time == 2.5,", ".query_time == 3.5,")
        .replace("expect route o2 stream \"slow\"", "expect failed");
    let file = write_pipeline(dir.path(), &broken);
    let out = shipctl(&["test", &file], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("1 passed, 4 failed"), "{text}");
    assert!(
        text.contains("expected `.query_time == 1.0`; event: timestamp=")
            && text.contains("message=\"# Query_time: 9.0\" query_time=9"),
        "the second input of a test is checked too: {text}"
    );
    // The dump shows time, body, typed attributes and destination.
    assert!(
        text.contains("expected `.query_time == 3.5`; event: timestamp=20"),
        "{text}"
    );
    assert!(
        text.contains(" message=\"# Time: 2026-11-25T10:00:00Z\\n# Query_time: 2.5  Lock_time: 0.0\\nSELECT 1;\" query_time=2.5 -> out stream \"slow\""),
        "{text}"
    );
    assert!(
        text.contains("expected a failure containing \"timeout\"; the step failed with:"),
        "{text}"
    );
    assert!(
        text.contains("expected a step to fail; event:") && text.contains("-> o2 stream \"slow\""),
        "{text}"
    );
}

#[test]
fn an_undeclared_failure_fails_the_test_with_the_error_and_event() {
    let dir = tempfile::tempdir().unwrap();
    let text = PIPELINE.replace("  expect failed \"no match\"\n", "");
    let file = write_pipeline(dir.path(), &text);
    let out = shipctl(&["test", &file], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("a step failed: "), "{text}");
    assert!(
        text.contains("dead-lettered to out stream \"dead\""),
        "{text}"
    );
}

#[test]
fn lines_need_a_source_that_reads_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(
        dir.path(),
        "source m = host_metrics {}\nsink out = console {}\nroute { else => out }\ntest \"t\" { input m lines [\"x\"] expect dropped }\n",
    );
    let out = shipctl(&["test", &file], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("source `m` reads no lines"), "{err}");
}

/// `from "PATH"` gives the lines the resource the source derives from a
/// file's path: for CRI logs, the pod's namespace, pod and container.
#[test]
fn lines_read_from_a_pod_log_path_carry_the_pods_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(
        dir.path(),
        r#"source pods = cri {}
sink out = console {}
route { else => out stream "k8s_" + (.resource["k8s.namespace.name"] ?? "unknown") }
test "from a pod's log" {
  input pods lines ["2026-11-25T10:00:00Z stdout F hello"] from "/var/log/pods/shop_api-7d9f_0b1c/api/3.log"
  expect { .resource["k8s.pod.name"] == "api-7d9f", .resource["k8s.container.name"] == "api", .resource["k8s.container.restart_count"] == 3 }
  expect { .resource["log.file.path"] == "/var/log/pods/shop_api-7d9f_0b1c/api/3.log", .resource["shipd.source"] == "pods" }
  expect route out stream "k8s_shop"
}
test "without a path" {
  input pods lines ["2026-11-25T10:00:00Z stdout F hello"]
  expect route out stream "k8s_shop"
}
"#,
    );
    let out = shipctl(&["test", &file], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("ok    "), "{text}");
    assert!(text.contains("from a pod's log"), "{text}");
    assert!(
        text.contains("FAIL  ") && text.contains("without a path"),
        "no path, no namespace:\n{text}"
    );
    assert!(text.contains("1 passed, 1 failed"), "{text}");
}

#[test]
fn a_path_that_is_not_a_string_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(
        dir.path(),
        "source app = files { include = [\"/x/*.log\"] }\nsink out = console {}\nroute { else => out }\ntest \"t\" { input app lines [\"x\"] from 42 expect dropped }\n",
    );
    let out = shipctl(&["test", &file], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`from` takes the path of the file as a string"),
        "{err}"
    );
}
