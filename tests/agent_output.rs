//! shipd's own output: log lines are JSON when stderr is not a terminal and
//! human on one (a real pseudo-terminal from `script`), `RUST_LOG` sets the
//! level, and `GET /metrics` parses with Python's `prometheus_client` text
//! parser (./test.sh installs it).

mod common;

use common::{append_lines, free_port, http_get, Shipd};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn wait_healthy(shipd: &Shipd) {
    let deadline = Instant::now() + WAIT;
    while http_get(shipd.api, "/health").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "shipd never healthy: {}",
            shipd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn log_lines_are_json_objects_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "SHIPD_DATA_DIR",
        dir.path().join("data").display().to_string(),
    )];
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert!(shipd.wait_log("shipd started", WAIT), "{}", shipd.log());
    let log_path = shipd.log_path.clone();
    assert_eq!(shipd.terminate(), Some(0));
    let text = std::fs::read_to_string(log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    let started = lines
        .iter()
        .find(|l| l["message"] == "shipd started")
        .expect("a start line");
    assert_eq!(started["level"], "INFO");
    assert_eq!(
        started["sources"], 0,
        "fields are top-level keys: {started}"
    );
    assert!(lines.iter().any(|l| l["message"] == "shipd stopped"));
}

#[test]
fn rust_log_sets_the_level_and_a_bad_filter_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let env = [
        ("SHIPD_DATA_DIR", data.clone()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let shipd = Shipd::start(&env, &dir.path().join("warn.log"));
    wait_healthy(&shipd);
    let log = shipd.log();
    assert_eq!(shipd.terminate(), Some(0));
    assert!(
        log.contains("no sources configured"),
        "warnings pass: {log}"
    );
    assert!(!log.contains("\"INFO\""), "info is filtered out: {log}");

    let env = [
        ("SHIPD_DATA_DIR", data),
        ("RUST_LOG", "shipd=notalevel".to_owned()),
    ];
    let shipd = Shipd::start(&env, &dir.path().join("bad.log"));
    assert!(shipd.wait_log("shipd started", WAIT), "falls back to info");
    assert!(
        shipd.log().contains("RUST_LOG is not a valid filter"),
        "{}",
        shipd.log()
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn log_lines_are_human_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // `script` runs shipd on a pseudo-terminal; shipd stops itself after 3 s.
    let cmd = format!(
        "timeout -s TERM 3 env SHIPD_DATA_DIR={} SHIPD_API_ADDR=127.0.0.1:{} SHIPD_JOURNALD=off SHIPD_METRICS_INTERVAL=off RUST_LOG=info {}",
        dir.path().join("data").display(),
        free_port(),
        env!("CARGO_BIN_EXE_shipd")
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script (util-linux) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("shipd started"), "{text}");
    assert!(
        !text.contains("{\"timestamp\""),
        "not JSON on a terminal: {text}"
    );
    assert!(text.contains("\u{1b}["), "coloured on a terminal: {text}");
}

#[test]
fn metrics_parse_with_pythons_prometheus_client() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    let lines = common::nginx_lines("metrics", 250);
    append_lines(&file, &lines, 250, Duration::ZERO);
    let env = [
        (
            "SHIPD_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("SHIPD_LOG_FILES", file.display().to_string()),
        ("SHIPD_READ_FROM", "beginning".to_owned()),
        ("SHIPD_POLL_INTERVAL", "50ms".to_owned()),
    ];
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    let deadline = Instant::now() + WAIT;
    while shipd.metric("shipd_events_in_total{component=\"files\"}") < 250 {
        assert!(Instant::now() < deadline, "{}", shipd.metrics());
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = shipd.metrics();
    let exposition = dir.path().join("metrics.txt");
    std::fs::write(&exposition, &text).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(open(sys.argv[1]).read()))
print(json.dumps({
    "families": [[f.name, f.type] for f in families],
    "samples": [[s.name, s.labels, s.value] for f in families for s in f.samples],
}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&exposition)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "prometheus_client cannot parse /metrics (pip install prometheus_client): {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let families = parsed["families"].as_array().unwrap();
    let declared = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(families.len(), declared, "every family parsed");
    assert!(families.contains(&serde_json::json!(["shipd_events_in", "counter"])));
    let samples = parsed["samples"].as_array().unwrap();
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(samples.len(), series, "every series parsed");
    let events_in = samples
        .iter()
        .find(|s| s[0] == "shipd_events_in_total" && s[1]["component"] == "files")
        .expect("events in of the files source");
    assert_eq!(events_in[2], 250.0);
    assert_eq!(shipd.terminate(), Some(0));
}
