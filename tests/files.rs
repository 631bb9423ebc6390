//! The file source against real file operations: rename rotation,
//! copytruncate, delete-and-recreate, symlinks, 2,000 files, multiline,
//! exclude, gzip archives and kill -9 during rotation. Every test counts the
//! lines written and delivered.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn assert_exactly_once(receiver: &Receiver, expected: &[String], shipd: &Shipd) {
    let got = receiver.wait_for(expected.len(), WAIT);
    std::thread::sleep(Duration::from_millis(700));
    let t = tally(&receiver.bodies(), expected);
    assert!(
        got >= expected.len() && t.missing == 0 && t.duplicates == 0 && t.unexpected == 0,
        "{} written, {} received: {} missing, {} duplicates, {} unexpected\nlog:\n{}",
        expected.len(),
        receiver.count(),
        t.missing,
        t.duplicates,
        t.unexpected,
        shipd.log()
    );
}

struct Setup {
    _rt: tokio::runtime::Runtime,
    receiver: Receiver,
    dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    Setup {
        _rt: rt,
        receiver,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&self, glob: &str, extra: &[(&'static str, &str)]) -> Shipd {
        let mut env = ship_env(&self.receiver, "http", glob, &self.path("data"));
        env.push(("SHIPD_CHECKPOINT_INTERVAL", "1s".to_owned()));
        for (k, v) in extra {
            env.push((k, (*v).to_owned()));
        }
        let shipd = Shipd::start(&env, &self.path("shipd.log"));
        assert!(
            shipd.wait_log("file source started", WAIT),
            "shipd did not start:\n{}",
            shipd.log()
        );
        shipd
    }
}

fn write_lines(file: &mut std::fs::File, lines: &[String]) {
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    file.write_all(text.as_bytes()).unwrap();
    file.flush().unwrap();
}

fn append_to(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

#[test]
fn rename_rotation_with_appends_to_the_old_file_delivers_every_line_once() {
    let s = setup();
    let log = s.path("app.log");
    std::fs::write(&log, b"").unwrap();
    let shipd = s.start(&log.display().to_string(), &[]);
    assert!(shipd.wait_log("tailing file", WAIT));
    let before = nginx_lines("before-rotation", 1000);
    let during = nginx_lines("after-rename-old-fd", 200);
    let after = nginx_lines("new-file", 1000);
    let mut old = append_to(&log);
    for part in before.chunks(100) {
        write_lines(&mut old, part);
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::rename(&log, s.path("app.log.1")).unwrap();
    // The writer has not reopened yet: these land in the renamed file.
    write_lines(&mut old, &during);
    let mut new = append_to(&log);
    for part in after.chunks(100) {
        write_lines(&mut new, part);
        std::thread::sleep(Duration::from_millis(10));
    }
    let expected: Vec<String> = [before, during, after].concat();
    assert_exactly_once(&s.receiver, &expected, &shipd);
    assert!(
        shipd.wait_log("rotated file read to its end; released", WAIT),
        "the renamed file is released once drained:\n{}",
        shipd.log()
    );
    assert!(shipd.metric("shipd_file_rotations_total{component=\"files\"}") >= 1);
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn copytruncate_restarts_at_zero_and_the_copy_is_not_read_twice() {
    let s = setup();
    let log = s.path("app.log");
    std::fs::write(&log, b"").unwrap();
    // The glob also matches the copy: it must be recognised as already read.
    let shipd = s.start(&format!("{}*", log.display()), &[]);
    let first = nginx_lines("before-copytruncate", 1000);
    let second = nginx_lines("after-truncate", 1000);
    write_lines(&mut append_to(&log), &first);
    assert_eq!(s.receiver.wait_for(first.len(), WAIT), first.len());
    std::fs::copy(&log, s.path("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert!(
        shipd.wait_log("file truncated", WAIT),
        "truncation logged:\n{}",
        shipd.log()
    );
    write_lines(&mut append_to(&log), &second);
    let expected: Vec<String> = [first, second].concat();
    assert_exactly_once(&s.receiver, &expected, &shipd);
    assert_eq!(
        shipd.metric("shipd_file_truncations_total{component=\"files\"}"),
        1
    );
    assert!(shipd.log().contains("file is a copy of one already read"));
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn deleted_and_recreated_file_is_read_from_its_start() {
    let s = setup();
    let log = s.path("app.log");
    std::fs::write(&log, b"").unwrap();
    let shipd = s.start(&log.display().to_string(), &[]);
    let first = nginx_lines("first-incarnation", 500);
    let second = nginx_lines("second-incarnation", 500);
    write_lines(&mut append_to(&log), &first);
    assert_eq!(s.receiver.wait_for(first.len(), WAIT), first.len());
    std::fs::remove_file(&log).unwrap();
    // Often the same inode number comes back; the fingerprint tells them apart.
    write_lines(&mut append_to(&log), &second);
    let expected: Vec<String> = [first, second].concat();
    assert_exactly_once(&s.receiver, &expected, &shipd);
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn symlinked_path_is_followed_and_a_retargeted_link_is_a_rotation() {
    let s = setup();
    let real = s.path("real");
    let links = s.path("links");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&links).unwrap();
    let target1 = real.join("app-1.log");
    let target2 = real.join("app-2.log");
    std::fs::write(&target1, b"").unwrap();
    let link = links.join("app.log");
    std::os::unix::fs::symlink(&target1, &link).unwrap();
    let shipd = s.start(&format!("{}/*.log", links.display()), &[]);
    assert!(shipd.wait_log("tailing file", WAIT));
    let first = nginx_lines("through-link-1", 300);
    let second = nginx_lines("through-link-2", 300);
    write_lines(&mut append_to(&target1), &first);
    assert_eq!(s.receiver.wait_for(first.len(), WAIT), first.len());
    let records = s.receiver.records();
    assert_eq!(
        records[0].resource.get("log.file.path"),
        Some(
            &opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                link.display().to_string()
            )
        ),
        "records name the configured path"
    );
    write_lines(&mut append_to(&target2), &second);
    let tmp_link = links.join(".app.log.tmp");
    std::os::unix::fs::symlink(&target2, &tmp_link).unwrap();
    std::fs::rename(&tmp_link, &link).unwrap();
    let expected: Vec<String> = [first, second].concat();
    assert_exactly_once(&s.receiver, &expected, &shipd);
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn two_thousand_files_in_one_glob_are_all_read_and_followed() {
    let s = setup();
    let logs = s.path("many");
    std::fs::create_dir(&logs).unwrap();
    let mut expected = Vec::new();
    for i in 0..2000 {
        let lines = nginx_lines(&format!("f{i}"), 3);
        write_lines(
            &mut append_to(&logs.join(format!("app-{i:04}.log"))),
            &lines,
        );
        expected.extend(lines);
    }
    let shipd = s.start(
        &format!("{}/*.log", logs.display()),
        &[
            ("SHIPD_READ_FROM", "beginning"),
            ("SHIPD_POLL_INTERVAL", "1s"),
        ],
    );
    assert_exactly_once(&s.receiver, &expected, &shipd);
    assert_eq!(shipd.metric("shipd_files_open{component=\"files\"}"), 2000);
    let mut more = Vec::new();
    for i in (0..2000).step_by(20) {
        let lines = nginx_lines(&format!("later{i}"), 1);
        write_lines(
            &mut append_to(&logs.join(format!("app-{i:04}.log"))),
            &lines,
        );
        more.extend(lines);
    }
    expected.extend(more);
    assert_exactly_once(&s.receiver, &expected, &shipd);
    assert_eq!(shipd.terminate(), Some(0));
}

/// Segment A is written and rotated away while shipd runs, segment B is
/// half written when shipd is killed with -9; while it is down B is finished
/// and rotated away too (no glob matches it any more) and segment C starts
/// in a new file. After the restart: every line delivered, duplicates only
/// from what was in flight at the kill.
#[test]
fn kill_9_during_rotations_loses_no_line() {
    let s = setup();
    let log = s.path("app.log");
    std::fs::write(&log, b"").unwrap();
    let glob = log.display().to_string();
    let shipd = s.start(&glob, &[]);
    assert!(shipd.wait_log("tailing file", WAIT));
    let a = nginx_lines("segment-a", 4000);
    let b = nginx_lines("segment-b", 8000);
    let c = nginx_lines("segment-c", 4000);
    let (killed_tx, killed_rx) = std::sync::mpsc::channel::<()>();
    let writer = {
        let (log, dir) = (log.clone(), s.dir.path().to_path_buf());
        let (a, b, c) = (a.clone(), b.clone(), c.clone());
        std::thread::spawn(move || {
            let paced = |out: &mut std::fs::File, lines: &[String]| {
                for chunk in lines.chunks(200) {
                    write_lines(out, chunk);
                    std::thread::sleep(Duration::from_millis(20));
                }
            };
            let mut out = append_to(&log);
            paced(&mut out, &a);
            std::fs::rename(&log, dir.join("app.log.0")).unwrap();
            let mut out = append_to(&log);
            paced(&mut out, &b[..4000]);
            killed_rx.recv().unwrap();
            paced(&mut out, &b[4000..]);
            std::fs::rename(&log, dir.join("app.log.1")).unwrap();
            paced(&mut append_to(&log), &c);
        })
    };
    let deadline = Instant::now() + WAIT;
    while s.receiver.count() < 6000 {
        assert!(
            Instant::now() < deadline,
            "stream never got going:\n{}",
            shipd.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    shipd.kill9();
    let before_kill = s.receiver.count();
    killed_tx.send(()).unwrap();
    writer.join().unwrap();
    let second = s.start(&glob, &[]);
    let lines: Vec<String> = [a, b, c].concat();
    s.receiver.wait_for_all(&lines, WAIT);
    let got = s.receiver.count();
    std::thread::sleep(Duration::from_secs(1));
    let t = tally(&s.receiver.bodies(), &lines);
    println!(
        "kill -9 after {before_kill} of {} lines delivered, rotations before and during the outage: {} missing, {} duplicates (in flight at the kill, re-sent)",
        lines.len(),
        t.missing,
        t.duplicates
    );
    assert!(
        got >= lines.len(),
        "only {got} records arrived:\n{}",
        second.log()
    );
    assert_eq!(t.missing, 0, "lines lost:\n{}", second.log());
    assert_eq!(t.unexpected, 0);
    assert!(
        t.duplicates < before_kill,
        "restart resumed from checkpoints ({} duplicates):\n{}",
        t.duplicates,
        second.log()
    );
    assert!(
        second.log().contains("file rotated while shipd was down"),
        "the file rotated while shipd was down is found again:\n{}",
        second.log()
    );
    assert_eq!(second.terminate(), Some(0));
}

#[test]
fn multiline_stack_traces_become_one_record_each() {
    let s = setup();
    let log = s.path("java.log");
    std::fs::write(&log, b"").unwrap();
    let shipd = s.start(
        &log.display().to_string(),
        &[
            ("SHIPD_MULTILINE_START", r"^\d{4}-\d{2}-\d{2} "),
            ("SHIPD_MULTILINE_TIMEOUT", "300ms"),
        ],
    );
    assert!(shipd.wait_log("tailing file", WAIT));
    let mut expected = Vec::new();
    let mut text = String::new();
    for i in 0..50 {
        let event = if i % 5 == 0 {
            format!(
                "2026-03-01 10:00:{:02} ERROR request {i} failed\njava.lang.IllegalStateException: bad {i}\n\tat shop.Cart.add(Cart.java:{i})\n\tat shop.Api.handle(Api.java:42)",
                i % 60
            )
        } else {
            format!("2026-03-01 10:00:{:02} INFO request {i} ok", i % 60)
        };
        text.push_str(&event);
        text.push('\n');
        expected.push(event);
    }
    append_to(&log).write_all(text.as_bytes()).unwrap();
    // The last event has no successor: the timeout emits it.
    assert_exactly_once(&s.receiver, &expected, &shipd);
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn excluded_files_are_never_read() {
    let s = setup();
    let logs = s.path("logs");
    std::fs::create_dir(&logs).unwrap();
    let shipd = s.start(
        &format!("{}/*.log", logs.display()),
        &[("SHIPD_LOG_EXCLUDE", &format!("{}/debug*", logs.display()))],
    );
    let wanted = nginx_lines("wanted", 200);
    write_lines(
        &mut append_to(&logs.join("debug.log")),
        &nginx_lines("debug", 200),
    );
    write_lines(&mut append_to(&logs.join("app.log")), &wanted);
    assert_exactly_once(&s.receiver, &wanted, &shipd);
    assert!(!shipd.log().contains("debug.log"), "never even opened");
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn gzip_archives_are_read_when_enabled_and_each_line_once() {
    let s = setup();
    let logs = s.path("logs");
    std::fs::create_dir(&logs).unwrap();
    let oldest = nginx_lines("archived", 1000);
    let older = nginx_lines("rotated", 1000);
    let current = nginx_lines("current", 1000);
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(logs.join("app.log.2.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    write_lines_to(&mut gz, &oldest);
    gz.finish().unwrap();
    write_lines(&mut append_to(&logs.join("app.log.1")), &older);
    write_lines(&mut append_to(&logs.join("app.log")), &current);
    let glob = format!("{}/app.log*", logs.display());
    let shipd = s.start(
        &glob,
        &[
            ("SHIPD_READ_COMPRESSED", "on"),
            ("SHIPD_READ_FROM", "beginning"),
        ],
    );
    let expected: Vec<String> = [oldest, older, current].concat();
    assert_exactly_once(&s.receiver, &expected, &shipd);
    assert!(shipd.log().contains("archive read to its end"));
    assert_eq!(shipd.terminate(), Some(0));
    // A restart finds every file at its checkpoint, the archive included.
    let again = s.start(
        &glob,
        &[
            ("SHIPD_READ_COMPRESSED", "on"),
            ("SHIPD_READ_FROM", "beginning"),
        ],
    );
    assert!(again.wait_log("reading file", WAIT));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.receiver.count(), expected.len(), "nothing read twice");
    assert_eq!(again.terminate(), Some(0));
}

fn write_lines_to(out: &mut impl Write, lines: &[String]) {
    for l in lines {
        out.write_all(l.as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
    }
}
