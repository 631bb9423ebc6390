//! The control socket with the real binaries: `shipctl tail` (latency,
//! `--where`, two readers, a reader that never reads, following a restart),
//! `shipctl status --json` against the receiver's counts, and reloads (the
//! Reload RPC and SIGHUP: a valid change takes effect with nothing lost or
//! duplicated; an invalid one is refused and delivery continues).

mod common;

use common::*;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn shipctl(socket: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipctl"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHIPD_CONTROL_SOCKET", socket);
    cmd
}

/// A running `shipctl tail`: its stdout lines (with arrival time) and stderr.
struct Tail {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    stderr: Arc<Mutex<String>>,
}

impl Tail {
    fn start(socket: &Path, args: &[&str]) -> Tail {
        let mut child = shipctl(socket)
            .arg("tail")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("shipctl starts");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        spawn_stderr_reader(&mut child, &stderr);
        Tail {
            child,
            lines,
            stderr,
        }
    }

    /// A tail whose stdout is a pipe nobody reads.
    fn start_never_reading(socket: &Path) -> (Tail, std::process::ChildStdout) {
        let mut child = shipctl(socket)
            .args(["tail", "--format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("shipctl starts");
        let stdout = child.stdout.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        spawn_stderr_reader(&mut child, &stderr);
        let (_tx, lines) = mpsc::channel();
        (
            Tail {
                child,
                lines,
                stderr,
            },
            stdout,
        )
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle` (e.g. "tapping").
    fn wait_stderr(&self, needle: &str, after: usize) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.stderr().matches(needle).count() > after {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The next stdout line within `timeout`, as JSON.
    fn next(&self, timeout: Duration) -> Option<(Instant, serde_json::Value)> {
        let (at, line) = self.lines.recv_timeout(timeout).ok()?;
        Some((
            at,
            serde_json::from_str(&line).expect("tail prints JSON lines"),
        ))
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_stderr_reader(child: &mut Child, into: &Arc<Mutex<String>>) {
    let stderr = child.stderr.take().unwrap();
    let into = Arc::clone(into);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let mut text = into.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
}

fn append(path: &Path, lines: &[&str]) -> Instant {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    f.write_all(text.as_bytes()).unwrap();
    Instant::now()
}

/// shipd on the default pipeline, tailing an empty `app.log`, shipping to `receiver`.
fn start_agent(receiver: &Receiver, dir: &Path) -> (Shipd, PathBuf) {
    let file = dir.join("app.log");
    std::fs::write(&file, b"").unwrap();
    let env = ship_env(
        receiver,
        "http",
        &file.display().to_string(),
        &dir.join("data"),
    );
    let shipd = Shipd::start(&env, &dir.join("shipd.log"));
    assert!(
        shipd.wait_log("tailing file", WAIT),
        "shipd never tailed the file:\n{}",
        shipd.log()
    );
    (shipd, file)
}

#[test]
fn tail_sees_an_appended_line_within_a_second_and_where_selects() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_agent(&receiver, dir.path());
    let tail = Tail::start(
        &shipd.control_socket,
        &[
            "--format",
            "json",
            "--where",
            r#"contains(.message, "ERROR")"#,
        ],
    );
    assert!(tail.wait_stderr("tapping", 0), "{}", tail.stderr());

    let written = append(
        &file,
        &["INFO all good", "ERROR disk on fire", "INFO still fine"],
    );
    let (at, event) = tail
        .next(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("nothing tailed; stderr: {}", tail.stderr()));
    let latency = at.duration_since(written);
    assert_eq!(event["message"], "ERROR disk on fire");
    assert_eq!(event["component"], "openobserve");
    assert_eq!(event["point"], "sink");
    assert_eq!(event["source"], "files");
    assert!(latency < Duration::from_secs(1), "tailed after {latency:?}");
    assert!(
        tail.next(Duration::from_millis(800)).is_none(),
        "--where let an INFO line through"
    );
    eprintln!("tail latency: {latency:?}");
}

#[test]
fn two_concurrent_tails_each_see_every_line_at_their_point() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_agent(&receiver, dir.path());
    let at_sink = Tail::start(
        &shipd.control_socket,
        &["--format", "json", "--limit", "50"],
    );
    let at_source = Tail::start(
        &shipd.control_socket,
        &["files", "--format", "json", "--limit", "50"],
    );
    assert!(
        at_sink.wait_stderr("tapping openobserve", 0),
        "{}",
        at_sink.stderr()
    );
    assert!(
        at_source.wait_stderr("tapping files", 0),
        "{}",
        at_source.stderr()
    );

    let lines = nginx_lines("two", 50);
    append(&file, &lines.iter().map(String::as_str).collect::<Vec<_>>());
    for (tail, point) in [(&at_sink, "sink"), (&at_source, "source")] {
        let mut got = Vec::new();
        while let Some((_, event)) = tail.next(Duration::from_secs(10)) {
            assert_eq!(event["point"], point);
            got.push(event["message"].as_str().unwrap().to_owned());
        }
        assert_eq!(got, lines, "the {point} tail; stderr: {}", tail.stderr());
    }
    // --limit ends each tail cleanly.
    for tail in [at_sink, at_source] {
        let mut tail = tail;
        assert_eq!(tail.child.wait().unwrap().code(), Some(0));
    }
    assert_eq!(receiver.wait_for(50, WAIT), 50);
}

#[test]
fn a_tail_that_never_reads_does_not_stall_delivery_and_its_drops_are_counted() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_agent(&receiver, dir.path());
    let (stuck, _unread_stdout) = Tail::start_never_reading(&shipd.control_socket);
    assert!(stuck.wait_stderr("tapping", 0), "{}", stuck.stderr());

    let lines = nginx_lines("stuck", 20_000);
    append_lines(&file, &lines, 2_000, Duration::from_millis(20));
    let missing = receiver.wait_for_all(&lines, WAIT);
    assert_eq!(
        missing,
        0,
        "delivery stalled behind the tap:\n{}",
        shipd.log()
    );
    let dropped = shipd.metric("shipd_tap_events_dropped_total{component=\"tap\"}");
    assert!(
        dropped > 10_000,
        "the stuck reader's tap dropped only {dropped} of {}",
        lines.len()
    );
    // Delivery keeps going while the reader is still stuck: by now every
    // buffer between the tap and the reader is full, so most of a second
    // burst is dropped too.
    std::thread::sleep(Duration::from_secs(1));
    let dropped = shipd.metric("shipd_tap_events_dropped_total{component=\"tap\"}");
    let more = nginx_lines("after", 20_000);
    append_lines(&file, &more, 2_000, Duration::from_millis(20));
    assert_eq!(receiver.wait_for_all(&more, WAIT), 0);
    let dropped_later = shipd.metric("shipd_tap_events_dropped_total{component=\"tap\"}");
    assert!(
        dropped_later >= dropped + 10_000,
        "{dropped_later} < {dropped} + 10000; tail: {}",
        stuck.stderr()
    );
    eprintln!("tap drops for a reader that never reads: {dropped_later}");
}

#[test]
fn tail_follows_the_agent_across_a_restart() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_agent(&receiver, dir.path());
    let socket = shipd.control_socket.clone();
    let tail = Tail::start(&socket, &["--format", "json"]);
    assert!(tail.wait_stderr("tapping", 0), "{}", tail.stderr());
    assert_eq!(shipd.terminate(), Some(0));
    assert!(tail.wait_stderr("reconnecting", 0), "{}", tail.stderr());

    let mut env = ship_env(
        &receiver,
        "http",
        &file.display().to_string(),
        &dir.path().join("data"),
    );
    env.push(("SHIPD_CONTROL_SOCKET", socket.display().to_string()));
    let shipd = Shipd::start(&env, &dir.path().join("restarted.log"));
    assert!(shipd.wait_log("tailing file", WAIT), "{}", shipd.log());
    assert!(tail.wait_stderr("tapping", 1), "{}", tail.stderr());
    append(&file, &["after the restart"]);
    let (_, event) = tail
        .next(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("nothing after reconnecting: {}", tail.stderr()));
    assert_eq!(event["message"], "after the restart");
    assert!(tail.stderr().contains("reconnected"), "{}", tail.stderr());
}

fn status_json(socket: &Path) -> serde_json::Value {
    let out = shipctl(socket).args(["status", "--json"]).output().unwrap();
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

#[test]
fn status_json_numbers_match_what_the_receiver_got() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_agent(&receiver, dir.path());
    let lines = nginx_lines("status", 3_000);
    append_lines(&file, &lines, 500, Duration::from_millis(20));
    assert_eq!(receiver.wait_for(lines.len(), WAIT), lines.len());
    let received = receiver.count() as u64;
    let file_len = std::fs::metadata(&file).unwrap().len();

    // The sink counts a batch once the receiver's answer is read.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = status_json(&shipd.control_socket);
        let settled = component(&status, "openobserve")["events_out"] == received
            && status["checkpoints"][0]["offset"] == file_len;
        if settled || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let source = component(&status, "files");
    assert_eq!(source["kind"], "source");
    assert_eq!(source["events_in"], lines.len() as u64);
    assert_eq!(source["bytes_in"], file_len);
    assert_eq!(source["checkpoint_lag_bytes"], 0);
    let sink = component(&status, "openobserve");
    assert_eq!(sink["kind"], "sink");
    assert_eq!(sink["events_in"], received);
    assert_eq!(sink["events_out"], received);
    assert_eq!(sink["dropped"], 0);
    assert_eq!(sink["failing"], false);
    assert_eq!(status["healthy"], true);
    assert_eq!(status["checkpoints"][0]["offset"], file_len);
    assert_eq!(status["checkpoints"][0]["path"], file.display().to_string());
    assert!(status["disk_bytes_written"].as_u64().unwrap() > 0);
    assert!(status["fsyncs"].as_u64().unwrap() > 0);

    // The table names the same components.
    let table = shipctl(&shipd.control_socket)
        .arg("status")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("health: healthy"), "{table}");
    assert!(table.contains(&received.to_string()), "{table}");
    assert!(table.contains("wear: "), "{table}");
}

/// A pipeline file tailing `file` into `receiver`'s stream `stream`.
fn pipeline(file: &Path, data: &Path, receiver: &Receiver, stream: &str) -> String {
    format!(
        r#"settings {{ data_dir = "{data}", checkpoint_interval = 1s, drain_timeout = 10s }}
source app = files {{ include = ["{file}"], poll_interval = 50ms, glob_interval = 200ms }}
sink o2 = openobserve {{
  url = "{url}", org = "pis", user = "root@example.com", password = "pw",
  stream = "first", batch.timeout = 200ms, retry_max = 1s
}}
route {{
  else => o2 stream "{stream}"
}}
"#,
        data = data.display(),
        file = file.display(),
        url = receiver.url(),
    )
}

/// (stream, body) of every accepted record.
fn delivered(receiver: &Receiver) -> Vec<(String, String)> {
    receiver
        .captured()
        .iter()
        .flat_map(|c| {
            let stream = c.headers.get("stream-name").cloned().unwrap_or_default();
            records_of(&c.request)
                .into_iter()
                .map(move |r| (stream.clone(), r.body))
        })
        .collect()
}

fn assert_exactly_once(got: &[(String, String)], expected: &[String]) {
    let bodies: Vec<&String> = got.iter().map(|(_, b)| b).collect();
    let unique: HashSet<&String> = bodies.iter().copied().collect();
    assert_eq!(bodies.len(), unique.len(), "duplicates delivered");
    let want: HashSet<&String> = expected.iter().collect();
    assert_eq!(unique, want, "delivered set differs from written set");
}

struct ReloadAgent {
    _rt: tokio::runtime::Runtime,
    receiver: Receiver,
    dir: tempfile::TempDir,
    config: PathBuf,
    file: PathBuf,
    shipd: Shipd,
}

fn start_reloadable() -> ReloadAgent {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    std::fs::write(&file, b"").unwrap();
    let config = dir.path().join("pipeline.ship");
    let data = dir.path().join("data");
    std::fs::write(&config, pipeline(&file, &data, &receiver, "first")).unwrap();
    let shipd = Shipd::start_with_args(
        &["--config", config.to_str().unwrap()],
        &[],
        &dir.path().join("shipd.log"),
    );
    assert!(shipd.wait_log("tailing file", WAIT), "{}", shipd.log());
    ReloadAgent {
        _rt: rt,
        receiver,
        dir,
        config,
        file,
        shipd,
    }
}

#[test]
fn reload_applies_a_new_route_without_losing_or_duplicating_lines() {
    let a = start_reloadable();
    let before = nginx_lines("before", 1_000);
    append_lines(&a.file, &before, 250, Duration::from_millis(20));
    assert_eq!(a.receiver.wait_for_all(&before, WAIT), 0);

    // Lines keep arriving while the pipeline is swapped.
    let during = nginx_lines("during", 4_000);
    let writer = {
        let (file, during) = (a.file.clone(), during.clone());
        std::thread::spawn(move || append_lines(&file, &during, 200, Duration::from_millis(25)))
    };
    std::thread::sleep(Duration::from_millis(200));
    let data = a.dir.path().join("data");
    std::fs::write(&a.config, pipeline(&a.file, &data, &a.receiver, "second")).unwrap();
    let out = shipctl(&a.shipd.control_socket)
        .arg("reload")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("reloaded: sources: app"), "{stdout}");
    writer.join().unwrap();
    let after = nginx_lines("after", 1_000);
    append_lines(&a.file, &after, 250, Duration::from_millis(20));

    let all: Vec<String> = [before.clone(), during, after.clone()].concat();
    assert_eq!(a.receiver.wait_for_all(&all, WAIT), 0, "{}", a.shipd.log());
    std::thread::sleep(Duration::from_millis(500));
    let got = delivered(&a.receiver);
    assert_exactly_once(&got, &all);
    let stream_of: HashMap<&String, &String> = got.iter().map(|(s, b)| (b, s)).collect();
    assert!(before.iter().all(|l| stream_of[l] == "first"));
    assert!(after.iter().all(|l| stream_of[l] == "second"));
    let status = status_json(&a.shipd.control_socket);
    assert_eq!(status["reloads"], 1);
}

#[test]
fn an_invalid_reload_is_refused_with_diagnostics_and_delivery_continues() {
    let a = start_reloadable();
    let valid = std::fs::read_to_string(&a.config).unwrap();
    let broken = valid.replace("else => o2", "else => nowhere");
    std::fs::write(&a.config, &broken).unwrap();
    let out = shipctl(&a.shipd.control_socket)
        .arg("reload")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");
    assert!(
        stderr.contains("pipeline.ship:"),
        "diagnostics name the file: {stderr}"
    );
    assert!(stderr.contains("refused"), "{stderr}");

    let lines = nginx_lines("kept", 2_000);
    append_lines(&a.file, &lines, 500, Duration::from_millis(20));
    assert_eq!(
        a.receiver.wait_for_all(&lines, WAIT),
        0,
        "{}",
        a.shipd.log()
    );
    let got = delivered(&a.receiver);
    assert_exactly_once(&got, &lines);
    assert!(got.iter().all(|(s, _)| s == "first"));
    assert_eq!(status_json(&a.shipd.control_socket)["reloads"], 0);
}

#[test]
fn sighup_reloads_the_pipeline() {
    let a = start_reloadable();
    let before = nginx_lines("hup-before", 500);
    append_lines(&a.file, &before, 250, Duration::from_millis(20));
    assert_eq!(a.receiver.wait_for_all(&before, WAIT), 0);
    let data = a.dir.path().join("data");
    std::fs::write(&a.config, pipeline(&a.file, &data, &a.receiver, "second")).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &a.shipd.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        a.shipd.wait_log("pipeline reloaded", WAIT),
        "{}",
        a.shipd.log()
    );
    let after = nginx_lines("hup-after", 500);
    append_lines(&a.file, &after, 250, Duration::from_millis(20));
    let all = [before.clone(), after.clone()].concat();
    assert_eq!(a.receiver.wait_for_all(&all, WAIT), 0, "{}", a.shipd.log());
    let got = delivered(&a.receiver);
    assert_exactly_once(&got, &all);
    let stream_of: HashMap<&String, &String> = got.iter().map(|(s, b)| (b, s)).collect();
    assert!(before.iter().all(|l| stream_of[l] == "first"));
    assert!(after.iter().all(|l| stream_of[l] == "second"));
}
