//! The `exec` source in the real `shipd` binary, shipping to in-process
//! OpenObserve stand-ins: a script's lines arrive with the run's fields, a
//! script printing Prometheus text arrives as metric points, a script that
//! sleeps past its timeout is killed with its children (counted, logged, and
//! the next runs go on), a failing script's exit status and standard error
//! are counted and logged, and a flood is cut at `max_output_bytes` without
//! growing the agent's memory; what a command printed survives a crash of
//! the agent while OpenObserve is down (the RAM journal).

mod common;
#[path = "support/otlp_receiver.rs"]
mod fault;

use common::{always_accept, http_receiver, runtime, Record, Shipd};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A pipeline of one `exec` source (its options inside the braces)
/// shipping to the OpenObserve at `o2` (its RAM journal in the default
/// runtime directory of its data directory, on /dev/shm).
fn pipeline(dir: &Path, o2: &str, exec_options: &str) -> PathBuf {
    let path = dir.join("pipeline.ship");
    std::fs::write(
        &path,
        format!(
            r#"settings {{ data_dir = "{data}" }}
source probe = exec {{ {exec_options} }}
sink o2 = openobserve {{
  url = "{o2}", org = "pis", user = "root@example.com", password = "pw",
  batch.timeout = 100ms, retry_max = 500ms
}}
route {{
  else => o2
}}
"#,
            data = dir.join("data").display(),
        ),
    )
    .unwrap();
    path
}

/// An executable shell script in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn start(config: &Path, dir: &Path) -> Shipd {
    Shipd::start_with_args(
        &["--config", config.to_str().unwrap()],
        &[],
        &dir.join("shipd.log"),
    )
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn attr_int(r: &Record, key: &str) -> Option<i64> {
    match r.attributes.get(key) {
        Some(Any::IntValue(i)) => Some(*i),
        _ => None,
    }
}

fn attr_bool(r: &Record, key: &str) -> Option<bool> {
    match r.attributes.get(key) {
        Some(Any::BoolValue(b)) => Some(*b),
        _ => None,
    }
}

/// True when no process `pid` runs any more (gone, or a zombie waiting
/// for a parent that does not reap).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn script_lines_arrive_as_records_with_the_command_and_exit_status() {
    let rt = runtime();
    let o2 = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    // No shell: the argument with a `;` reaches the script as one word.
    let probe = script(
        dir.path(),
        "probe.sh",
        "echo \"arg=$1\"\necho 'fan speed 4200 rpm'\necho\necho 'last line'",
    );
    let config = pipeline(
        dir.path(),
        &o2.url(),
        &format!(
            "command = [\"{}\", \"a b; echo injected\"], every = 200ms",
            probe.display()
        ),
    );
    let shipd = start(&config, dir.path());
    let expected = ["arg=a b; echo injected", "fan speed 4200 rpm", "last line"];
    // Two runs' worth: the source keeps running on its interval.
    let arrived = wait_until(Duration::from_secs(20), || {
        let bodies = o2.bodies();
        expected
            .iter()
            .all(|e| bodies.iter().filter(|b| b == e).count() >= 2)
    });
    assert!(arrived, "{:?}\n{}", o2.bodies(), shipd.log());
    let records = o2.records();
    assert!(
        !records
            .iter()
            .any(|r| r.body == "injected" || r.body.is_empty()),
        "{:?}",
        o2.bodies()
    );
    let first = records
        .iter()
        .find(|r| r.body == "fan speed 4200 rpm")
        .unwrap();
    assert_eq!(
        first.attr_str("exec.command").as_deref(),
        Some(format!("{} a b; echo injected", probe.display()).as_str())
    );
    assert_eq!(attr_int(first, "exec.exit_code"), Some(0));
    assert_eq!(attr_bool(first, "exec.timed_out"), None);
    let resource_source = match first.resource.get("shipd.source") {
        Some(Any::StringValue(s)) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(resource_source, "probe");
    assert!(shipd.metric("shipd_exec_runs_total{component=\"probe\"}") >= 2);
    assert_eq!(
        shipd.metric("shipd_exec_failures_total{component=\"probe\"}"),
        0
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn prometheus_output_arrives_as_metrics_with_their_values() {
    let rt = runtime();
    let o2 = fault::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let probe = script(
        dir.path(),
        "temp.sh",
        "cat <<'EOF'\n# HELP pi_soc_celsius SoC temperature.\n# TYPE pi_soc_celsius gauge\npi_soc_celsius{sensor=\"soc\"} 48.3\n# TYPE smart_reallocated_sectors_total counter\nsmart_reallocated_sectors_total{disk=\"sda\"} 12\nthis line is not a sample\nEOF",
    );
    let config = pipeline(
        dir.path(),
        &o2.url(),
        &format!(
            "command = [\"{}\"], every = 200ms, format = \"prometheus\"",
            probe.display()
        ),
    );
    let shipd = start(&config, dir.path());
    let arrived = o2.wait_points(Duration::from_secs(20), |points| {
        let has = |name: &str| points.iter().any(|p| p.name == name);
        has("pi_soc_celsius") && has("smart_reallocated_sectors_total")
    });
    assert!(arrived, "{:?}\n{}", o2.points(), shipd.log());
    let points = o2.points();
    let temp = points.iter().find(|p| p.name == "pi_soc_celsius").unwrap();
    assert_eq!((temp.value, temp.label("sensor")), (48.3, Some("soc")));
    let sectors = points
        .iter()
        .find(|p| p.name == "smart_reallocated_sectors_total")
        .unwrap();
    assert_eq!((sectors.value, sectors.label("disk")), (12.0, Some("sda")));
    assert!(o2.log_bodies().is_empty(), "{:?}", o2.log_bodies());
    assert!(wait_until(Duration::from_secs(10), || shipd.metric(
        "shipd_exec_malformed_lines_total{component=\"probe\"}"
    ) >= 1));
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn a_run_past_its_timeout_is_killed_with_its_children_and_the_next_runs_continue() {
    let rt = runtime();
    let o2 = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The child holds the output open, so only killing the group ends the run.
    let probe = script(
        dir.path(),
        "hang.sh",
        &format!(
            "sleep 300 &\necho $! >> '{}'\necho 'started a long job'\nwait",
            pids.display()
        ),
    );
    let config = pipeline(
        dir.path(),
        &o2.url(),
        &format!(
            "command = [\"{}\"], every = 100ms, timeout = 300ms",
            probe.display()
        ),
    );
    let shipd = start(&config, dir.path());
    let timeouts = "shipd_exec_timeouts_total{component=\"probe\"}";
    assert!(
        wait_until(Duration::from_secs(30), || shipd.metric(timeouts) >= 3),
        "{}",
        shipd.log()
    );
    assert!(wait_until(Duration::from_secs(10), || o2
        .bodies()
        .iter()
        .filter(|b| *b == "started a long job")
        .count()
        >= 2));
    let record = o2
        .records()
        .into_iter()
        .find(|r| r.body == "started a long job")
        .unwrap();
    assert_eq!(attr_bool(&record, "exec.timed_out"), Some(true));
    assert_eq!(attr_int(&record, "exec.exit_code"), None);
    assert!(
        shipd
            .log()
            .contains("ran longer than its timeout (300ms); its process group was killed"),
        "{}",
        shipd.log()
    );
    // Stopping the agent mid-run kills that run's group too.
    assert_eq!(shipd.terminate(), Some(0));
    let started: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(started.len() >= 3, "{started:?}");
    let all_gone = wait_until(Duration::from_secs(5), || {
        started.iter().all(|pid| process_gone(*pid))
    });
    let alive: Vec<&u32> = started.iter().filter(|p| !process_gone(**p)).collect();
    assert!(all_gone, "children still running: {alive:?}");
}

#[test]
fn a_failing_script_is_counted_logged_and_shown_in_health() {
    let rt = runtime();
    let o2 = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let probe = script(
        dir.path(),
        "smart.sh",
        "echo 'partial report'\necho 'smartctl: /dev/sda: read failed' >&2\nexit 4",
    );
    let config = pipeline(
        dir.path(),
        &o2.url(),
        &format!("command = [\"{}\"], every = 200ms", probe.display()),
    );
    let shipd = start(&config, dir.path());
    let failures = "shipd_exec_failures_total{component=\"probe\"}";
    assert!(
        wait_until(Duration::from_secs(20), || shipd.metric(failures) >= 2),
        "{}",
        shipd.log()
    );
    assert!(shipd.metric("shipd_exec_stderr_bytes_total{component=\"probe\"}") >= 64);
    assert!(wait_until(Duration::from_secs(10), || !o2
        .records()
        .is_empty()));
    let record = o2.records().remove(0);
    assert_eq!(record.body, "partial report");
    assert_eq!(attr_int(&record, "exec.exit_code"), Some(4));
    let log = shipd.log();
    assert!(log.contains("exited with status 4"), "{log}");
    assert!(log.contains("smartctl: /dev/sda: read failed"), "{log}");
    // Rate-limited: one WARN per minute however many runs failed.
    assert_eq!(log.matches("exec command failed").count(), 1, "{log}");
    let (status, health) = common::http_get(shipd.api, "/health");
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("exited with status 4"), "{health}");
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn a_flood_is_cut_at_max_output_bytes_without_growing_memory() {
    let rt = runtime();
    let o2 = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    // `yes` never stops by itself: only the cap and the closed pipe end it.
    let line = "x".repeat(1000);
    let config = pipeline(
        dir.path(),
        &o2.url(),
        &format!("command = [\"yes\", \"{line}\"], every = 200ms, timeout = 1m, max_output_bytes = 64KiB"),
    );
    let shipd = start(&config, dir.path());
    let cut = "shipd_exec_output_cut_total{component=\"probe\"}";
    assert!(
        wait_until(Duration::from_secs(30), || shipd.metric(cut) >= 3),
        "{}",
        shipd.log()
    );
    // 64 KiB hold 65 whole lines of 1001 bytes and the first 471 of the next.
    let first_run = wait_until(Duration::from_secs(10), || o2.count() >= 66);
    assert!(first_run, "{}", o2.count());
    let records = o2.records();
    let (whole, cut_lines): (Vec<&Record>, Vec<&Record>) = records[..66]
        .iter()
        .partition(|r| attr_bool(r, "exec.truncated").is_none());
    assert_eq!(whole.len(), 65);
    assert!(whole.iter().all(|r| r.body == line));
    assert_eq!(cut_lines.len(), 1);
    assert_eq!(cut_lines[0].body, "x".repeat(471));
    // Closing the pipe ended each run (SIGPIPE), long before its timeout;
    // the cut is counted as a cut, not as a failed command.
    assert_eq!(attr_int(cut_lines[0], "exec.signal"), Some(13));
    assert_eq!(
        shipd.metric("shipd_exec_timeouts_total{component=\"probe\"}"),
        0
    );
    assert_eq!(
        shipd.metric("shipd_exec_failures_total{component=\"probe\"}"),
        0
    );
    let hwm_kib = std::fs::read_to_string(format!("/proc/{}/status", shipd.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    assert!(hwm_kib < 64 * 1024, "VmHWM {hwm_kib} KiB");
    assert!(
        shipd.log().contains("printed more than max_output_bytes"),
        "{}",
        shipd.log()
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn printed_lines_survive_a_crash_while_openobserve_is_down() {
    let rt = runtime();
    let o2 = fault::start(&rt);
    o2.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let printed = dir.path().join("printed");
    // Each run prints one new line and keeps a copy of it.
    let probe = script(
        dir.path(),
        "tick.sh",
        &format!(
            "line=\"tick $(date +%s%N)\"\necho \"$line\" >> '{}'\necho \"$line\"",
            printed.display()
        ),
    );
    let config = pipeline(
        dir.path(),
        &o2.url(),
        &format!("command = [\"{}\"], every = 100ms", probe.display()),
    );
    let shipd = start(&config, dir.path());
    let events = "shipd_events_in_total{component=\"probe\"}";
    assert!(
        wait_until(Duration::from_secs(20), || shipd.metric(events) >= 3),
        "{}",
        shipd.log()
    );
    shipd.kill9();
    assert!(o2.log_bodies().is_empty(), "delivered while down");
    let before: Vec<String> = std::fs::read_to_string(&printed)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(before.len() >= 3, "{before:?}");

    // Restarted with a command that prints nothing: only the journal ships.
    o2.set_down(false);
    pipeline(dir.path(), &o2.url(), "command = [\"true\"], every = 1h");
    let shipd = start(&config, dir.path());
    // A run still going when the agent was killed was never journaled.
    let settled = &before[..before.len() - 1];
    let missing = o2.wait_for_lines(settled, Duration::from_secs(20));
    assert_eq!(missing, 0, "{:?}\n{}", o2.log_bodies(), shipd.log());
    assert_eq!(shipd.terminate(), Some(0));
}
