//! The agent's own state under hostile conditions, against the real binary:
//! a data directory remounted read-only after start (degraded in `/health`
//! and `shipctl status`, recovered once writable), a runtime directory that
//! is not RAM (a standing warning), a damaged `checkpoints.state` (moved
//! aside, shipping continues, from the intact RAM copy when there is one),
//! a second agent on the same data directory (refused), a regular file at
//! the control socket path (start refused, file intact), and two `kill -9`
//! during a 10,000 lines/s burst (nothing lost, few duplicates).
//!
//! The read-only case needs `mount` (root with CAP_SYS_ADMIN, as the tests
//! run here); without it that test says so and returns.

mod common;
#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// One test at a time: the duplicate bound of the burst test is about
/// timing, which parallel agents on two cores would skew.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A file system mounted on `target` for one test (a bind mount switched
/// read-only and back on demand, or a small tmpfs), unmounted when dropped.
struct Mount {
    target: PathBuf,
}

impl Mount {
    /// `None` when this machine cannot mount (not root, no CAP_SYS_ADMIN).
    fn with(args: &[&str], target: &Path) -> Option<Mount> {
        std::fs::create_dir_all(target).unwrap();
        let ok = Command::new("mount")
            .args(args)
            .arg(target)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount {
            target: target.to_owned(),
        })
    }

    fn bind(source: &Path, target: &Path) -> Option<Mount> {
        std::fs::create_dir_all(source).unwrap();
        Mount::with(&["--bind", &source.display().to_string()], target)
    }

    fn tmpfs(size: &str, target: &Path) -> Option<Mount> {
        Mount::with(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            target,
        )
    }

    fn remount(&self, mode: &str) -> Result<(), String> {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,bind,{mode}")])
            .arg(&self.target)
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.remount("rw");
        let _ = Command::new("umount").arg(&self.target).status();
    }
}

/// `GET /health`: status code and body.
fn health(shipd: &Shipd) -> (u16, String) {
    http_get(shipd.api, "/health")
}

/// Polls `/health` until `wanted` holds; the last answer either way.
fn wait_health(shipd: &Shipd, wanted: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = health(shipd);
        if wanted(code, &body) || Instant::now() > deadline {
            return (code, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `shipctl status` of the agent: its stdout.
fn shipctl_status(shipd: &Shipd) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .arg("status")
        .arg("--socket")
        .arg(&shipd.control_socket)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits for the agent to exit by itself; its exit code.
fn exit_code(shipd: &mut Shipd, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = shipd.child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A RAM directory (tmpfs) for the agent's runtime_dir.
fn ram_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").expect("/dev/shm (tmpfs) on this machine")
}

fn write_lines(path: &Path, lines: &[String]) {
    append_lines(path, lines, 500, Duration::ZERO);
}

#[test]
fn read_only_data_dir_turns_health_degraded_with_the_cause_and_recovers() {
    let _one = serial();
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(mount) = Mount::bind(&dir.path().join("backing"), &data) else {
        println!("SKIPPED: `mount --bind` is not possible here (needs root with CAP_SYS_ADMIN)");
        return;
    };
    let ram = ram_dir();
    let file = dir.path().join("app.log");
    let first = nginx_lines("ro-before", 200);
    write_lines(&file, &first);
    let mut env = ship_env(&receiver, "http", &file.display().to_string(), &data);
    env.push(("SHIPD_READ_FROM", "beginning".to_owned()));
    env.push(("SHIPD_RUNTIME_DIR", ram.path().display().to_string()));
    env.push(("SHIPD_CHECKPOINT_DISK_INTERVAL", "1s".to_owned()));
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert_eq!(receiver.wait_for_all(&first, WAIT), 0, "{}", shipd.log());
    let (code, body) = wait_health(&shipd, |c, _| c == 200);
    assert_eq!(code, 200, "{body}");

    // What a Pi does when its SD card fails: the kernel remounts it
    // read-only. The kernel refuses this while a file on it is open for
    // writing: shipd holds none between writes.
    mount.remount("ro").unwrap_or_else(|e| {
        panic!("remount read-only refused (a file held open for writing?): {e}")
    });
    let during = nginx_lines("ro-during", 200);
    write_lines(&file, &during);
    assert_eq!(
        receiver.wait_for_all(&during, WAIT),
        0,
        "shipping continues on a read-only data directory"
    );
    let (code, body) = wait_health(&shipd, |c, b| c == 503 && b.contains("Read-only"));
    println!("/health while read-only: {code} {body}");
    assert_eq!(code, 503, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "degraded", "{body}");
    let cause = &json["degraded"][0];
    assert_eq!(cause["component"], "checkpoints", "{body}");
    let cause = cause["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("checkpoints.state") && cause.contains("Read-only file system"),
        "the cause names the file and the error: {cause}"
    );
    let status = shipctl_status(&shipd);
    assert!(
        status.contains("health: DEGRADED (checkpoints: cannot write checkpoint file"),
        "{status}"
    );
    assert!(
        shipd.log().contains("/health reports degraded"),
        "logged once as an ERROR:\n{}",
        shipd.log()
    );

    mount.remount("rw").unwrap();
    let (code, body) = wait_health(&shipd, |c, _| c == 200);
    assert_eq!(code, 200, "recovered: {body}");
    assert!(shipctl_status(&shipd).contains("health: healthy"));
    assert!(shipd.wait_log("checkpoints are written to disk again", WAIT));
    let tally = tally(&receiver.bodies(), &[first, during].concat());
    assert_eq!((tally.missing, tally.duplicates), (0, 0));
    assert_eq!(shipd.terminate(), Some(0));
}

/// Fills the file system of `dir` until about `leave` bytes are free; the
/// filler file, to free the space again.
fn fill_leaving(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(leave)).unwrap();
    path
}

/// The `degraded` entries of a `/health` body: (component, cause).
fn degraded(body: &str) -> Vec<(String, String)> {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    json["degraded"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|d| {
                    let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
                    (text("component"), text("cause"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn full_disk_under_the_spill_shows_degraded_with_the_cause_and_recovers() {
    let _one = serial();
    let rt = runtime();
    let receiver = otlp_receiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(_mount) = Mount::tmpfs("512k", &data) else {
        println!("SKIPPED: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)");
        return;
    };
    let filler = fill_leaving(&data, 64 * 1024);
    let ram = ram_dir();
    let env: Vec<(&str, String)> = vec![
        ("OPENOBSERVE_URL", receiver.url()),
        ("OPENOBSERVE_ORG", "pis".to_owned()),
        ("SHIPD_DATA_DIR", data.display().to_string()),
        ("SHIPD_RUNTIME_DIR", ram.path().display().to_string()),
        ("SHIPD_METRICS_INTERVAL", "100ms".to_owned()),
        ("SHIPD_CHANNEL_BYTES", "64KiB".to_owned()),
        ("SHIPD_IN_FLIGHT", "1".to_owned()),
        ("SHIPD_BATCH_MAX_EVENTS", "500".to_owned()),
        ("SHIPD_BATCH_TIMEOUT", "100ms".to_owned()),
        ("SHIPD_RETRY_MAX", "300ms".to_owned()),
    ];
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert!(shipd.wait_log("shipd started", WAIT), "{}", shipd.log());
    receiver.set_down(true);
    let full = |_: u16, body: &str| {
        degraded(body)
            .iter()
            .any(|(c, cause)| c == "openobserve" && cause.contains("No space left on device"))
    };
    let (code, body) = wait_health(&shipd, full);
    println!("/health with the spill on a full disk: {code} {body}");
    assert!(full(code, &body), "{body}\n{}", shipd.log());
    assert_eq!(code, 503);
    assert!(
        shipctl_status(&shipd).contains("cannot write the spill buffer"),
        "{}",
        shipctl_status(&shipd)
    );

    // Space is freed while the sink is still down: the next spill write
    // succeeds, and the sink is no longer degraded (only failing).
    std::fs::remove_file(&filler).unwrap();
    let (_, body) = wait_health(&shipd, |_, b| degraded(b).is_empty());
    assert!(degraded(&body).is_empty(), "{body}");
    receiver.set_down(false);
    let (code, body) = wait_health(&shipd, |c, _| c == 200);
    assert_eq!(code, 200, "{body}");
    let produced = shipd.metric("shipd_events_in_total{component=\"host_metrics\"}");
    assert!(
        receiver.wait_distinct_points(produced, WAIT),
        "every metric point delivered"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn runtime_dir_on_disk_is_a_standing_warning_not_a_failure() {
    let _one = serial();
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    std::fs::write(&file, b"").unwrap();
    let not_ram = dir.path().join("not-ram");
    let mut env = ship_env(
        &receiver,
        "http",
        &file.display().to_string(),
        &dir.path().join("data"),
    );
    env.push(("SHIPD_RUNTIME_DIR", not_ram.display().to_string()));
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert!(shipd.wait_log("tailing file", WAIT), "{}", shipd.log());
    let (code, body) = wait_health(&shipd, |c, _| c != 0);
    println!("/health with runtime_dir on disk: {code} {body}");
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "ok");
    let warning = json["warnings"][0]["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains(&not_ram.display().to_string()) && warning.contains("not RAM-backed"),
        "{body}"
    );
    let status = shipctl_status(&shipd);
    assert!(
        status.contains("health: healthy") && status.contains("WARNING checkpoints: runtime_dir"),
        "{status}"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

/// The `*.damaged-*` files beside `path`.
fn set_aside(path: &Path) -> Vec<PathBuf> {
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    let mut found: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{name}.damaged-")))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn damaged_state_file_is_moved_aside_and_shipping_continues() {
    let _one = serial();
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ram = ram_dir();
    std::fs::create_dir_all(&data).unwrap();
    let state = data.join("checkpoints.state");
    let ram_state = ram.path().join("checkpoints.state");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&state, &garbage).unwrap();
    std::fs::write(&ram_state, &garbage[..1000]).unwrap();
    let file = dir.path().join("app.log");
    let old = nginx_lines("damaged-old", 100);
    write_lines(&file, &old);
    let mut env = ship_env(&receiver, "http", &file.display().to_string(), &data);
    env.push(("SHIPD_RUNTIME_DIR", ram.path().display().to_string()));
    let log = dir.path().join("shipd.log");
    let shipd = Shipd::start(&env, &log);
    assert!(shipd.wait_log("tailing file", WAIT), "{}", shipd.log());
    let error = shipd
        .log()
        .lines()
        .find(|l| l.contains("is damaged"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no ERROR about the damage:\n{}", shipd.log()));
    println!("{error}");
    assert!(error.contains("\"ERROR\""), "{error}");
    assert!(
        error.contains("reading resumes where each source starts without a checkpoint")
            && error.contains("read_from"),
        "says where reading resumes: {error}"
    );
    let aside = set_aside(&state);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        garbage,
        "kept for inspection"
    );
    assert_eq!(set_aside(&ram_state).len(), 1, "the RAM copy too");
    assert!(error.contains(&aside[0].display().to_string()), "{error}");

    let new = nginx_lines("damaged-new", 300);
    write_lines(&file, &new);
    assert_eq!(receiver.wait_for_all(&new, WAIT), 0, "{}", shipd.log());
    std::thread::sleep(Duration::from_millis(500));
    let t = tally(&receiver.bodies(), &new);
    // read_from = end (the default): the old lines are not read again.
    assert_eq!((t.missing, t.duplicates, t.unexpected), (0, 0, 0));
    assert_eq!(health(&shipd).0, 200);
    assert_eq!(shipd.terminate(), Some(0));

    // The new state file is whole: the next start finds nothing damaged.
    let again = Shipd::start(&env, &dir.path().join("again.log"));
    assert!(again.wait_log("tailing file", WAIT), "{}", again.log());
    assert!(!again.log().contains("is damaged"), "{}", again.log());
    assert_eq!(again.terminate(), Some(0));
    assert_eq!(set_aside(&state).len(), 1);
}

#[test]
fn damaged_disk_copy_resumes_from_the_intact_ram_copy_without_duplicates() {
    let _one = serial();
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ram = ram_dir();
    let file = dir.path().join("app.log");
    let before = nginx_lines("ramcopy-before", 2_000);
    write_lines(&file, &before);
    let mut env = ship_env(&receiver, "http", &file.display().to_string(), &data);
    env.push(("SHIPD_READ_FROM", "beginning".to_owned()));
    env.push(("SHIPD_RUNTIME_DIR", ram.path().display().to_string()));
    let log = dir.path().join("shipd.log");
    let first = Shipd::start(&env, &log);
    assert_eq!(receiver.wait_for_all(&before, WAIT), 0, "{}", first.log());
    // Delivered positions reach the RAM copy within 250 ms; the disk copy
    // (every 120 s) still holds the start position.
    std::thread::sleep(Duration::from_secs(1));
    first.kill9();
    std::fs::write(data.join("checkpoints.state"), b"\x00garbage\xff").unwrap();

    let after = nginx_lines("ramcopy-after", 500);
    let second = Shipd::start(&env, &log);
    assert!(second.wait_log("tailing file", WAIT), "{}", second.log());
    write_lines(&file, &after);
    let all = [before, after].concat();
    assert_eq!(receiver.wait_for_all(&all, WAIT), 0, "{}", second.log());
    std::thread::sleep(Duration::from_millis(500));
    let error = second
        .log()
        .lines()
        .find(|l| l.contains("is damaged"))
        .map(str::to_owned)
        .unwrap_or_default();
    println!("{error}");
    assert!(
        error.contains("from the intact RAM copy"),
        "{}",
        second.log()
    );
    let t = tally(&receiver.bodies(), &all);
    println!(
        "resumed from the RAM copy: {} missing, {} duplicates",
        t.missing, t.duplicates
    );
    assert_eq!((t.missing, t.duplicates, t.unexpected), (0, 0, 0));
    assert_eq!(second.terminate(), Some(0));
}

#[test]
fn second_agent_on_the_same_data_dir_is_refused_and_the_first_keeps_shipping() {
    let _one = serial();
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("app.log");
    std::fs::write(&file, b"").unwrap();
    let env = ship_env(&receiver, "http", &file.display().to_string(), &data);
    let first = Shipd::start(&env, &dir.path().join("first.log"));
    assert!(first.wait_log("tailing file", WAIT), "{}", first.log());

    let mut second = Shipd::start(&env, &dir.path().join("second.log"));
    let code = exit_code(&mut second, WAIT);
    let said = second.log();
    println!("second agent: exit {code:?}: {}", said.trim());
    assert_eq!(code, Some(1), "refused:\n{said}");
    assert!(
        said.contains(&format!("data directory {} is in use", data.display()))
            && said.contains(&format!("(pid {})", first.child.id())),
        "names the directory and the holder:\n{said}"
    );

    let lines = nginx_lines("locked", 500);
    write_lines(&file, &lines);
    assert_eq!(receiver.wait_for_all(&lines, WAIT), 0, "{}", first.log());
    std::thread::sleep(Duration::from_millis(300));
    let t = tally(&receiver.bodies(), &lines);
    assert_eq!(
        (t.missing, t.duplicates),
        (0, 0),
        "shipped once, by the first"
    );
    assert_eq!(health(&first).0, 200);
    assert_eq!(first.terminate(), Some(0));
}

#[test]
fn control_socket_path_holding_a_regular_file_refuses_start_and_keeps_the_file() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("notes.txt");
    std::fs::write(&precious, b"do not delete me\n").unwrap();
    let env = vec![
        (
            "SHIPD_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("SHIPD_CONTROL_SOCKET", precious.display().to_string()),
    ];
    let mut shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    let code = exit_code(&mut shipd, WAIT);
    let said = shipd.log();
    println!("exit {code:?}: {}", said.trim());
    assert_eq!(code, Some(1), "refused:\n{said}");
    assert!(
        said.contains(&format!(
            "control socket path {} is a regular file, not a socket",
            precious.display()
        )),
        "{said}"
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"do not delete me\n");
}

#[test]
fn two_kill_9_during_a_20000_line_burst_lose_nothing_and_duplicate_at_most_the_lines_in_flight() {
    const LINES: usize = 20_000;
    const PER_SECOND: usize = 10_000;
    /// checkpoint_interval: the longest a delivered position waits for the RAM copy.
    const COALESCE: f64 = 0.25;
    /// SHIPD_BATCH_TIMEOUT in ship_env: how long lines wait in a batch.
    const BATCH_TIMEOUT: f64 = 0.2;
    let _one = serial();
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let ram = ram_dir();
    let file = dir.path().join("burst.log");
    std::fs::write(&file, b"").unwrap();
    let mut env = ship_env(
        &receiver,
        "http",
        &file.display().to_string(),
        &dir.path().join("data"),
    );
    env.push(("SHIPD_RUNTIME_DIR", ram.path().display().to_string()));
    let log = dir.path().join("shipd.log");
    let mut shipd = Shipd::start(&env, &log);
    assert!(shipd.wait_log("tailing file", WAIT), "{}", shipd.log());

    let lines = nginx_lines("burst", LINES);
    let started = Instant::now();
    let writer = {
        let (file, lines) = (file.clone(), lines.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&file)
                .unwrap();
            // 100 lines every 10 ms, on a fixed schedule (no drift).
            for (i, part) in lines.chunks(PER_SECOND / 100).enumerate() {
                let due = started + Duration::from_millis(10 * i as u64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let mut text = part.join("\n");
                text.push('\n');
                f.write_all(text.as_bytes()).unwrap();
            }
        })
    };
    let mut delivered_at_kills = Vec::new();
    for at in [700, 1400] {
        let due = started + Duration::from_millis(at);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        delivered_at_kills.push(receiver.count());
        shipd.kill9();
        shipd = Shipd::start(&env, &log);
    }
    writer.join().unwrap();
    let written_in = started.elapsed();
    let missing = receiver.wait_for_all(&lines, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let t = tally(&receiver.bodies(), &lines);
    let bound = (2.0 * PER_SECOND as f64 * (COALESCE + BATCH_TIMEOUT)) as usize;
    println!(
        "two kill -9 during {LINES} lines written in {written_in:?} ({delivered_at_kills:?} delivered at the kills): \
         {} missing, {} duplicates (bound {bound} = 2 kills × {PER_SECOND} lines/s × ({COALESCE} s coalescing + {BATCH_TIMEOUT} s batch timeout))",
        t.missing, t.duplicates
    );
    assert_eq!(missing, 0, "{}", shipd.log());
    assert_eq!((t.missing, t.unexpected), (0, 0));
    // Per kill, what arrives twice is what the receiver accepted but the RAM
    // copy did not hold yet: acknowledged within the last coalescing
    // interval, or in a request whose answer the kill cut off (at most a
    // batch timeout's worth at this rate).
    assert!(
        t.duplicates <= bound,
        "{} duplicates over the bound {bound}",
        t.duplicates
    );
    assert_eq!(shipd.terminate(), Some(0));
}
