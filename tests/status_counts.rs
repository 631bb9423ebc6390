//! `shipctl status --json` counts per component for real, with the real
//! `shipd` running pipelines/nginx-lb.ship over nginx lines some of which a
//! step drops and some of which fail: source OUT = first step IN, each
//! step IN = OUT + DROPPED + FAILED, steps chain, the router sends each sink
//! what the sink takes in, and every number equals the known input. And a
//! failing step's error names file, line, column and expression, in the
//! dead-lettered event's `shipd.error` and in shipd's WARN line.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn status_json(socket: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHIPD_CONTROL_SOCKET", socket)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
}

fn component<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name} in {status}"))
}

/// `(in, out, dropped, failed)` of a component row.
fn counts(status: &serde_json::Value, name: &str) -> (u64, u64, u64, u64) {
    let c = component(status, name);
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{name}.{k} in {c}"));
    (n("events_in"), n("events_out"), n("dropped"), n("failed"))
}

fn metric(status: &serde_json::Value, name: &str, labels: &str) -> Option<u64> {
    status["metrics"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name && m["labels"] == labels)
        .and_then(|m| m["value"].as_u64())
}

/// pipelines/nginx-lb.ship reading `access` and `error` from `dir` from
/// their beginning, plus one step after `parse_access` (applied to 5xx
/// only) so consecutive steps can be seen to chain. Line numbers of the
/// original are kept.
fn nginx_lb_pipeline(dir: &Path) -> PathBuf {
    let original = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/nginx-lb.ship"),
    )
    .unwrap();
    let fast = r#"service = "nginx", read_from = "beginning", poll_interval = 50ms, glob_interval = 200ms }"#;
    let text = original
        .replace(
            "/var/log/nginx/access.log",
            &dir.join("access.log").display().to_string(),
        )
        .replace(
            "/var/log/nginx/error.log",
            &dir.join("error.log").display().to_string(),
        )
        .replace(r#"service = "nginx" }"#, fast)
        + "\nstep mark_slow on access where (.http.status ?? 0) >= 500 {\n  .slow = true\n}\n";
    let path = dir.join("nginx-lb.ship");
    std::fs::write(&path, text).unwrap();
    path
}

/// An access log line of now (older ones fall outside OpenObserve's ingest
/// window and are dropped by the sink).
fn access_line(path: &str, status: u16, agent: &str) -> String {
    let now = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000");
    format!("10.0.0.1 - - [{now}] \"GET {path} HTTP/1.1\" {status} 12 \"-\" \"{agent}\"")
}

#[test]
fn status_counts_add_up_per_step_router_and_sink_on_the_nginx_example() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    // Known input: 100 OK lines, 10 upstream errors (502), 7 health checks
    // (dropped), 4 lines parse_nginx! refuses (failed, lost: the file has no
    // dead_letter route); 3 error-log lines and 2 unparsable ones (the step
    // tags them: out, with an error counted).
    let mut access: Vec<String> = (0..100)
        .map(|i| access_line(&format!("/ok/{i}"), 200, "curl/8.0"))
        .collect();
    access.extend((0..10).map(|i| access_line(&format!("/api/{i}"), 502, "curl/8.0")));
    access.extend((0..7).map(|_| access_line("/healthz", 200, "kube-probe/1.29")));
    access.extend((0..4).map(|i| format!("not an access line {i}")));
    let now = chrono::Utc::now().format("%Y/%m/%d %H:%M:%S");
    let mut errors: Vec<String> = (0..3)
        .map(|i| format!("{now} [error] 1234#0: *{i} upstream timed out from 10.0.0.7, client: 10.0.0.7, server: lb"))
        .collect();
    errors.extend((0..2).map(|i| format!("garbage {i}")));
    std::fs::write(dir.path().join("access.log"), access.join("\n") + "\n").unwrap();
    std::fs::write(dir.path().join("error.log"), errors.join("\n") + "\n").unwrap();
    let config = nginx_lb_pipeline(dir.path());
    let env = [
        ("OPENOBSERVE_URL", receiver.url()),
        (
            "SHIPD_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
    ];
    let shipd = Shipd::start_with_args(
        &["--config", &config.display().to_string()],
        &env,
        &dir.path().join("shipd.log"),
    );
    // The 4 lines that are not access lines fail `parse_access` and go to
    // the example's dead_letter route.
    let delivered = 100 + 10 + 3 + 2 + 4;
    assert_eq!(
        receiver.wait_for(delivered, WAIT),
        delivered,
        "{}",
        shipd.log()
    );

    // The sink counts a batch once the receiver's answer is read.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = status_json(&shipd.control_socket);
        if component(&status, "o2")["events_out"] == delivered as u64 || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(receiver.count(), delivered, "nothing more arrived");

    let (_, access_out, _, _) = counts(&status, "access");
    let (_, errors_out, _, _) = counts(&status, "errors");
    assert_eq!(access_out, access.len() as u64, "access source OUT");
    assert_eq!(errors_out, errors.len() as u64, "errors source OUT");

    let parse_access = counts(&status, "parse_access");
    let mark_slow = counts(&status, "mark_slow");
    let parse_errors = counts(&status, "parse_errors");
    for (name, (i, o, d, f)) in [
        ("parse_access", parse_access),
        ("mark_slow", mark_slow),
        ("parse_errors", parse_errors),
    ] {
        assert_eq!(i, o + d + f, "{name}: IN = OUT + DROPPED + FAILED");
    }
    assert_eq!(parse_access.0, access_out, "source OUT = first step IN");
    assert_eq!(parse_errors.0, errors_out, "source OUT = first step IN");
    assert_eq!(mark_slow.0, parse_access.1, "consecutive steps chain");
    assert_eq!(parse_access, (121, 110, 7, 4));
    assert_eq!(
        mark_slow,
        (110, 110, 0, 0),
        "a `where` that is false passes the event on"
    );
    assert_eq!(parse_errors, (5, 5, 0, 0), "on_error tag keeps the event");
    assert_eq!(component(&status, "parse_errors")["errors"], 2);
    assert_eq!(
        metric(
            &status,
            "shipd_events_lost_total",
            "component=\"parse_access\""
        )
        .unwrap_or(0),
        0,
        "failed events went to the dead_letter route, none lost"
    );

    assert_eq!(counts(&status, "pipeline"), (126, 115, 7, 4));
    let (router_in, router_out, router_dropped, _) = counts(&status, "router");
    assert_eq!((router_in, router_out, router_dropped), (119, 119, 0));
    let routed = &component(&status, "router")["routed"];
    assert_eq!(routed["o2"], 119, "{routed}");
    let o2 = component(&status, "o2");
    assert_eq!(
        o2["events_in"], routed["o2"],
        "sink IN = what the router sent it"
    );
    assert_eq!(o2["events_out"], delivered as u64);

    // The table shows the same numbers.
    let table = Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .env_clear()
        .env("SHIPD_CONTROL_SOCKET", &shipd.control_socket)
        .arg("status")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("FAILED"), "{table}");
    assert!(table.contains("routed: console 0, o2 119"), "{table}");

    // The failed events are in shipd's log, located.
    let at = format!("{}:9:11: ", config.display());
    assert!(
        shipd.wait_log(&at, WAIT),
        "no located WARN at {at}:\n{}",
        shipd.log()
    );
    let log = shipd.log();
    let warn = log.lines().find(|l| l.contains(&at)).unwrap_or_default();
    assert!(warn.contains("WARN"), "{warn}");
    assert!(warn.contains("in `parse_nginx!(.message)`"), "{warn}");
    assert!(warn.contains("sent to the dead_letter route"), "{warn}");
    shipd.terminate();
}

/// `shipctl tail COMPONENT --format json`: its stdout lines as they come.
struct Tail {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl Tail {
    fn start(socket: &Path, component: &str, stderr: PathBuf) -> Tail {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shipctl"))
            .env_clear()
            .env("SHIPD_CONTROL_SOCKET", socket)
            .args(["tail", component, "--format", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("shipctl starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Tail {
            child,
            lines,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_tapping(&self) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.stderr().contains("tapping") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_dead_lettered_event_the_warn_line_and_a_tail_of_the_step_say_where_it_failed() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("app.log");
    std::fs::write(&log_file, b"").unwrap();
    let config = dir.path().join("pino.ship");
    std::fs::write(
        &config,
        format!(
            r#"source app = files {{ include = ["{}"], read_from = "beginning", poll_interval = 50ms }}
sink o2 = openobserve {{ url = env("OPENOBSERVE_URL"), batch = {{ timeout = 200ms }} }}
step pino on app {{
  .j = parse_json!(.message)
  .ns = (.j.pino.time ?? "missing") * 1000000
}}
route {{
  else => o2 stream "app"
  dead_letter => o2 stream "failed"
}}
"#,
            log_file.display()
        ),
    )
    .unwrap();
    let shipd = Shipd::start_with_args(
        &["--config", &config.display().to_string()],
        &[
            ("OPENOBSERVE_URL", receiver.url()),
            (
                "SHIPD_DATA_DIR",
                dir.path().join("data").display().to_string(),
            ),
        ],
        &dir.path().join("shipd.log"),
    );
    assert!(shipd.wait_log("tailing file", WAIT), "{}", shipd.log());
    let tail = Tail::start(&shipd.control_socket, "pino", dir.path().join("tail.err"));
    assert!(tail.wait_tapping(), "{}", tail.stderr());

    let lines = [
        r#"{"pino":{"time":1700000000000}}"#,
        r#"{"pino":{}}"#,
        r#"{"pino":{}}"#,
    ];
    std::fs::write(&log_file, lines.join("\n") + "\n").unwrap();
    assert_eq!(receiver.wait_for(3, WAIT), 3, "{}", shipd.log());
    let expected = format!(
        "{}:5:9: arithmetic needs numbers, got string and integer in `(.j.pino.time ?? \"missing\") * 1000000`",
        config.display()
    );
    let failed: Vec<String> = receiver
        .records()
        .iter()
        .filter_map(|r| r.attr_str("shipd.error"))
        .collect();
    assert_eq!(failed, [expected.clone(), expected.clone()]);
    // shipd logs JSON lines: the expression's quotes come escaped.
    let logged = expected.replace('"', "\\\"");
    assert!(shipd.wait_log(&logged, WAIT), "{}", shipd.log());
    let log = shipd.log();
    let warns: Vec<&str> = log.lines().filter(|l| l.contains(&logged)).collect();
    assert_eq!(warns.len(), 1, "one line per step per minute: {warns:?}");
    assert!(warns[0].contains("WARN"), "{}", warns[0]);
    assert!(
        warns[0].contains("sent to the dead_letter route"),
        "{}",
        warns[0]
    );

    // The tail of the step shows the passing event and both failures, located.
    let tailed: Vec<String> = (0..3)
        .filter_map(|_| tail.lines.recv_timeout(Duration::from_secs(10)).ok())
        .collect();
    assert_eq!(tailed.len(), 3, "{tailed:?}; {}", tail.stderr());
    let located = tailed.iter().filter(|l| l.contains(&logged)).count();
    assert_eq!(located, 2, "{tailed:?}");
    shipd.terminate();
}
