//! The file source when descriptors run out or directories misbehave,
//! against the real binary: 2,000 files under `ulimit -n 1024` read in turns
//! (each line once), the API port flooded with held connections while files
//! are tailed (nothing re-sent), a directory moved away and back (resumes,
//! no re-send), a closed file rotating, and unreadable glob paths (counted
//! and logged). Every test counts lines written and delivered.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(40);
/// The `ulimit -n` of the issue: Debian's default soft limit.
const ULIMIT: u64 = 1024;

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

    fn start(&self, glob: &str, extra: &[(&'static str, &str)], limits: ChildLimits) -> Shipd {
        let mut env = ship_env(&self.receiver, "http", glob, &self.path("data"));
        env.push(("SHIPD_CHECKPOINT_INTERVAL", "1s".to_owned()));
        for (k, v) in extra {
            env.push((k, (*v).to_owned()));
        }
        let shipd = Shipd::start_confined(&[], &env, &self.path("shipd.log"), limits);
        assert!(
            shipd.wait_log("file source started", WAIT),
            "shipd did not start:\n{}",
            shipd.log()
        );
        shipd
    }
}

fn nofile(n: u64) -> ChildLimits {
    ChildLimits {
        open_files: Some(n),
        user: None,
    }
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    f.write_all(text.as_bytes()).unwrap();
}

/// Waits for every expected line, then a little longer for late duplicates.
fn assert_each_line_once(receiver: &Receiver, expected: &[String], shipd: &Shipd) {
    let missing = receiver.wait_for_all(expected, WAIT);
    std::thread::sleep(Duration::from_millis(1500));
    let t = tally(&receiver.bodies(), expected);
    assert!(
        missing == 0 && t.missing == 0 && t.duplicates == 0 && t.unexpected == 0,
        "{} written, {} received: {} missing, {} duplicates, {} unexpected\nlog tail:\n{}",
        expected.len(),
        receiver.count(),
        t.missing,
        t.duplicates,
        t.unexpected,
        log_tail(shipd, 60)
    );
}

fn log_tail(shipd: &Shipd, n: usize) -> String {
    let log = shipd.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Log lines at WARN or above that mention `word`.
fn warnings_about(shipd: &Shipd, word: &str) -> usize {
    shipd
        .log()
        .lines()
        .filter(|l| {
            (l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
                && l.contains(word)
        })
        .count()
}

fn lines_containing(shipd: &Shipd, needle: &str) -> usize {
    shipd.log().lines().filter(|l| l.contains(needle)).count()
}

fn fds_of(shipd: &Shipd) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", shipd.child.id()))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn vm_hwm_kib(shipd: &Shipd) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", shipd.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn many_files(dir: &Path, n: usize, lines_each: usize, tag: &str) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut expected = Vec::new();
    for i in 0..n {
        let lines = nginx_lines(&format!("{tag}{i}"), lines_each);
        write_lines(&dir.join(format!("app-{i:04}.log")), &lines);
        expected.extend(lines);
    }
    expected
}

#[test]
fn two_thousand_files_under_ulimit_1024_are_read_in_turns_each_line_once() {
    let s = setup();
    let logs = s.path("many");
    let mut expected = many_files(&logs, 2000, 3, "f");
    let started = Instant::now();
    let shipd = s.start(
        &format!("{}/*.log", logs.display()),
        &[
            ("SHIPD_READ_FROM", "beginning"),
            ("SHIPD_POLL_INTERVAL", "1s"),
        ],
        nofile(ULIMIT),
    );
    let mut peak_fds = 0;
    let deadline = Instant::now() + WAIT;
    while s.receiver.count() < expected.len() && Instant::now() < deadline {
        peak_fds = peak_fds.max(fds_of(&shipd));
        std::thread::sleep(Duration::from_millis(100));
    }
    let delivered_after = started.elapsed();
    let first_lines = expected.len();
    assert_each_line_once(&s.receiver, &expected, &shipd);
    assert_eq!(shipd.metric("shipd_files_open{component=\"files\"}"), 2000);
    let held = shipd.metric("shipd_file_descriptors_open{component=\"files\"}");
    assert!(
        held <= 256,
        "{held} descriptors held, max_open_files is 256"
    );

    // Closed files are watched and opened again when they grow.
    let log_lines_before = shipd.log().lines().count();
    let mut more = Vec::new();
    for i in (0..2000).step_by(20) {
        let lines = nginx_lines(&format!("later{i}"), 2);
        write_lines(&logs.join(format!("app-{i:04}.log")), &lines);
        more.extend(lines);
    }
    expected.extend(more);
    assert_each_line_once(&s.receiver, &expected, &shipd);
    peak_fds = peak_fds.max(fds_of(&shipd));
    std::thread::sleep(Duration::from_secs(2));
    let log_growth = shipd.log().lines().count() - log_lines_before;
    let descriptor_warnings = warnings_about(&shipd, "descriptor");
    let removals = lines_containing(&shipd, "rotated away or removed");
    println!(
        "2,000 files under ulimit -n {ULIMIT}: {first_lines} lines delivered in {delivered_after:?}, then {} more, 0 duplicates; peak {peak_fds} descriptors in shipd, {held} held by the source; {descriptor_warnings} descriptor warnings, {removals} removals, log +{log_growth} lines while idle and tailing 100 more lines; VmHWM {} KiB",
        expected.len() - first_lines,
        vm_hwm_kib(&shipd)
    );
    assert!(
        peak_fds < ULIMIT as usize / 2,
        "peak {peak_fds} descriptors"
    );
    assert!(descriptor_warnings < 10, "{descriptor_warnings} warnings");
    assert_eq!(removals, 0, "no file is taken for removed");
    assert!(
        log_growth < 100,
        "the log is not flooded: +{log_growth} lines\n{}",
        log_tail(&shipd, 40)
    );
    assert_eq!(
        shipd.metric("shipd_file_open_errors_total{component=\"files\",reason=\"descriptors\"}"),
        0
    );
    assert_eq!(shipd.terminate(), Some(0));
}

/// `ulimit -n 32`: the budget (16, half the limit) plus shipd's own
/// descriptors leave the sink none for its connection. Running out, the
/// source gives back half of what it holds and reads in turns within that.
#[test]
fn a_descriptor_limit_tighter_than_the_budget_still_reads_every_file_in_turns() {
    let s = setup();
    let logs = s.path("many");
    let ulimit = 32;
    let expected = many_files(&logs, 150, 3, "tight");
    let shipd = s.start(
        &format!("{}/*.log", logs.display()),
        &[("SHIPD_READ_FROM", "beginning")],
        nofile(ulimit),
    );
    assert_each_line_once(&s.receiver, &expected, &shipd);
    let deferred =
        shipd.metric("shipd_file_open_errors_total{component=\"files\",reason=\"descriptors\"}");
    let warnings = warnings_about(&shipd, "out of file descriptors");
    println!(
        "150 files under ulimit -n {ulimit} (budget {}): all delivered once; {deferred} opens deferred, {warnings} warnings, held {} at the end",
        ulimit / 2,
        shipd.metric("shipd_file_descriptors_open{component=\"files\"}")
    );
    assert!((1..10).contains(&warnings), "{warnings}");
    assert_eq!(lines_containing(&shipd, "rotated away or removed"), 0);
    assert_eq!(shipd.terminate(), Some(0));
}

/// Makes `n` connection attempts to `addr` and holds those that succeed;
/// once shipd accepts no more and its listen queue is full, an attempt is
/// given up after a short timeout.
fn hold_connections(addr: std::net::SocketAddr, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .filter_map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(20)).ok())
        .collect()
}

/// Lets the test process hold more descriptors than the flood needs.
fn raise_own_descriptor_limit(wanted: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|c| c < wanted) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum.map(|m| m.min(wanted)).or(Some(wanted)),
                maximum: limit.maximum,
            },
        );
    }
}

#[test]
fn api_flood_of_held_connections_under_ulimit_1024_re_sends_nothing() {
    raise_own_descriptor_limit(4096);
    let s = setup();
    let logs = s.path("tailed");
    // More files than the source holds open: some are closed when the
    // flood takes every descriptor left.
    let mut expected = many_files(&logs, 400, 5, "before");
    let shipd = s.start(
        &format!("{}/*.log", logs.display()),
        &[
            ("SHIPD_READ_FROM", "beginning"),
            ("SHIPD_POLL_INTERVAL", "250ms"),
            // Opens of closed files meet the exhaustion, not only re-globs.
            ("SHIPD_GLOB_INTERVAL", "10s"),
        ],
        nofile(ULIMIT),
    );
    assert_each_line_once(&s.receiver, &expected, &shipd);

    let log_before_flood = shipd.log().lines().count();
    let flood = hold_connections(shipd.api, 1100);
    let flooded_fds = fds_of(&shipd);
    // Written while no descriptor is left: the files keep their offsets.
    let mut during = Vec::new();
    for i in 0..400 {
        let lines = nginx_lines(&format!("during{i}"), 2);
        write_lines(&logs.join(format!("app-{i:04}.log")), &lines);
        during.extend(lines);
    }
    std::thread::sleep(Duration::from_secs(6));
    let delivered_during = s.receiver.count() - expected.len();
    let removals_during = lines_containing(&shipd, "rotated away or removed");
    let held_connections = flood.len();
    let log_during_flood = shipd.log().lines().count() - log_before_flood;
    let file_source_log_during_flood = shipd
        .log()
        .lines()
        .skip(log_before_flood)
        .filter(|l| l.contains("\"source\":\"files\""))
        .count();
    drop(flood);
    expected.extend(during);
    let mut after = Vec::new();
    for i in (0..400).step_by(4) {
        let lines = nginx_lines(&format!("after{i}"), 1);
        write_lines(&logs.join(format!("app-{i:04}.log")), &lines);
        after.extend(lines);
    }
    expected.extend(after);
    assert_each_line_once(&s.receiver, &expected, &shipd);
    let warnings = warnings_about(&shipd, "out of file descriptors");
    let open_errors =
        shipd.metric("shipd_file_open_errors_total{component=\"files\",reason=\"descriptors\"}");
    let glob_errors =
        shipd.metric("shipd_file_glob_errors_total{component=\"files\",reason=\"descriptors\"}");
    println!(
        "API flood: 1,100 connections attempted, {held_connections} established and held, shipd at {flooded_fds} descriptors (limit {ULIMIT}); {delivered_during} lines delivered during the flood; afterwards all {} delivered, 0 duplicates; {warnings} exhaustion warnings, {open_errors} deferred opens, {glob_errors} glob listings failed, {removals_during} files taken for removed; shipd logged {log_during_flood} lines during the flood, {file_source_log_during_flood} of them from the file source; VmHWM {} KiB",
        expected.len(),
        vm_hwm_kib(&shipd)
    );
    assert!(
        flooded_fds >= ULIMIT as usize - 2,
        "the flood took every descriptor: {flooded_fds}"
    );
    assert_eq!(removals_during, 0, "no file is taken for removed");
    assert!(
        file_source_log_during_flood < 10,
        "the file source does not flood the log: {file_source_log_during_flood} lines"
    );
    assert_eq!(lines_containing(&shipd, "rotated away or removed"), 0);
    assert!(
        (1..10).contains(&warnings),
        "one warning per episode, rate-limited: {warnings}\n{}",
        log_tail(&shipd, 40)
    );
    assert!(open_errors + glob_errors > 0, "the exhaustion is counted");
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn directory_moved_away_and_back_resumes_its_files_without_re_sending() {
    let s = setup();
    let app = s.path("logs/app");
    let away = s.path("logs/away");
    let names: Vec<String> = (0..6).map(|i| format!("svc-{i}.log")).collect();
    std::fs::create_dir_all(&app).unwrap();
    let mut expected = Vec::new();
    for name in &names {
        let lines = nginx_lines(&format!("first-{name}"), 200);
        write_lines(&app.join(name), &lines);
        expected.extend(lines);
    }
    // Two descriptors for six files: some are closed when the directory moves.
    let shipd = s.start(
        &format!("{}/*.log", app.display()),
        &[
            ("SHIPD_READ_FROM", "beginning"),
            ("SHIPD_MAX_OPEN_FILES", "2"),
        ],
        ChildLimits::default(),
    );
    assert_each_line_once(&s.receiver, &expected, &shipd);

    std::fs::rename(&app, &away).unwrap();
    let deadline = Instant::now() + WAIT;
    while lines_containing(&shipd, "released") < names.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        lines_containing(&shipd, "released"),
        names.len(),
        "every file released once its directory left the glob:\n{}",
        log_tail(&shipd, 40)
    );
    for name in &names {
        let lines = nginx_lines(&format!("while-away-{name}"), 50);
        write_lines(&away.join(name), &lines);
        expected.extend(lines);
    }
    // Let the released files' last acknowledgements settle.
    std::thread::sleep(Duration::from_secs(1));
    std::fs::rename(&away, &app).unwrap();
    for name in &names {
        let lines = nginx_lines(&format!("back-{name}"), 50);
        write_lines(&app.join(name), &lines);
        expected.extend(lines);
    }
    assert_each_line_once(&s.receiver, &expected, &shipd);
    let back = lines_containing(&shipd, "file released earlier is back");
    println!(
        "directory moved away and back: {} lines delivered once each; {back} of {} files resumed where they were delivered to",
        expected.len(),
        names.len()
    );
    assert_eq!(back, names.len(), "{}", log_tail(&shipd, 40));
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn closed_files_that_rotate_are_drained_and_their_successors_read() {
    let s = setup();
    let logs = s.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let names = ["a", "b", "c", "d"];
    let shipd = s.start(
        &format!("{}/*.log", logs.display()),
        &[("SHIPD_MAX_OPEN_FILES", "1")],
        ChildLimits::default(),
    );
    let mut expected = Vec::new();
    let mut writers: Vec<std::fs::File> = names
        .iter()
        .map(|n| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(logs.join(format!("{n}.log")))
                .unwrap()
        })
        .collect();
    let write = |f: &mut std::fs::File, lines: &[String]| {
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        f.write_all(text.as_bytes()).unwrap();
    };
    for round in 0..6 {
        for (n, w) in names.iter().zip(writers.iter_mut()) {
            let lines = nginx_lines(&format!("{n}-gen0-round{round}"), 40);
            write(w, &lines);
            expected.extend(lines);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Rename rotation of every file; the writers append to the renamed
    // files for a moment before they reopen.
    for (n, w) in names.iter().zip(writers.iter_mut()) {
        std::fs::rename(
            logs.join(format!("{n}.log")),
            logs.join(format!("{n}.log.1")),
        )
        .unwrap();
        let lines = nginx_lines(&format!("{n}-gen0-late"), 30);
        write(w, &lines);
        expected.extend(lines);
    }
    for (n, w) in names.iter().zip(writers.iter_mut()) {
        *w = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("{n}.log")))
            .unwrap();
        let lines = nginx_lines(&format!("{n}-gen1"), 100);
        write(w, &lines);
        expected.extend(lines);
    }
    assert_each_line_once(&s.receiver, &expected, &shipd);
    println!(
        "4 files, 1 descriptor, all rotated: {} lines delivered once each, {} rotations",
        expected.len(),
        shipd.metric("shipd_file_rotations_total{component=\"files\"}")
    );
    assert!(shipd.metric("shipd_file_rotations_total{component=\"files\"}") >= 4);
    assert!(
        shipd.metric("shipd_file_descriptors_open{component=\"files\"}") <= 1,
        "one descriptor at most"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn closed_files_deleted_and_recreated_are_read_again_from_their_start() {
    let s = setup();
    let logs = s.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let names = ["a", "b", "c"];
    let shipd = s.start(
        &format!("{}/*.log", logs.display()),
        &[("SHIPD_MAX_OPEN_FILES", "1")],
        ChildLimits::default(),
    );
    let mut expected = Vec::new();
    for n in names {
        let lines = nginx_lines(&format!("{n}-first-incarnation"), 300);
        write_lines(&logs.join(format!("{n}.log")), &lines);
        expected.extend(lines);
    }
    assert_each_line_once(&s.receiver, &expected, &shipd);
    // Deleted while (mostly) closed; the same inode number often comes back
    // for the new file, with another first line.
    for n in names {
        std::fs::remove_file(logs.join(format!("{n}.log"))).unwrap();
        let lines = nginx_lines(&format!("{n}-second-incarnation"), 400);
        write_lines(&logs.join(format!("{n}.log")), &lines);
        expected.extend(lines);
    }
    assert_each_line_once(&s.receiver, &expected, &shipd);
    println!(
        "3 files, 1 descriptor, deleted and recreated: {} lines delivered once each",
        expected.len()
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn symlink_loop_matched_by_a_glob_is_counted_and_logged_and_the_rest_tailed() {
    let s = setup();
    let logs = s.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::os::unix::fs::symlink(logs.join("loop.log"), logs.join("loop.log")).unwrap();
    let lines = nginx_lines("beside-the-loop", 100);
    write_lines(&logs.join("app.log"), &lines);
    let shipd = s.start(
        &format!("{}/*.log", logs.display()),
        &[("SHIPD_READ_FROM", "beginning")],
        ChildLimits::default(),
    );
    assert_each_line_once(&s.receiver, &lines, &shipd);
    // Several glob intervals (200 ms): counted every time, logged once.
    std::thread::sleep(Duration::from_secs(2));
    let counted =
        shipd.metric("shipd_file_glob_errors_total{component=\"files\",reason=\"symlink_loop\"}");
    let logged = warnings_about(&shipd, "loop.log");
    println!("symlink loop: counted {counted} times, logged {logged} times");
    assert!(counted >= 5, "counted at every glob: {counted}");
    assert_eq!(logged, 1, "logged once (rate-limited)\n{}", shipd.log());
    assert_eq!(shipd.terminate(), Some(0));
}

/// `nobody`: chmod 000 keeps a directory from any user but root.
const NOBODY: (u32, u32) = (65534, 65534);

fn chown_tree(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), (uid, gid));
        }
    }
}

#[test]
fn unreadable_directory_in_a_glob_is_counted_and_logged_and_the_rest_tailed() {
    let s = setup();
    let logs = s.path("logs");
    let readable = logs.join("open");
    let locked = logs.join("locked");
    std::fs::create_dir_all(&readable).unwrap();
    std::fs::create_dir_all(&locked).unwrap();
    let lines = nginx_lines("readable-dir", 100);
    write_lines(&readable.join("app.log"), &lines);
    write_lines(&locked.join("secret.log"), &nginx_lines("locked-dir", 10));
    // Root reads any directory whatever its mode: as root, shipd runs as
    // nobody here, as it would under a dedicated user.
    let as_root = rustix::process::geteuid().is_root();
    let limits = ChildLimits {
        open_files: None,
        user: as_root.then_some(NOBODY),
    };
    if as_root {
        chown_tree(s.dir.path(), NOBODY);
    }
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let shipd = s.start(
        &format!("{}/*/*.log", logs.display()),
        &[("SHIPD_READ_FROM", "beginning")],
        limits,
    );
    assert_each_line_once(&s.receiver, &lines, &shipd);
    std::thread::sleep(Duration::from_secs(2));
    let counted =
        shipd.metric("shipd_file_glob_errors_total{component=\"files\",reason=\"permission\"}");
    let logged = warnings_about(&shipd, "cannot read a directory");
    println!(
        "unreadable directory: counted {counted} times, logged {logged} times (shipd as uid {})",
        if as_root {
            NOBODY.0
        } else {
            rustix::process::geteuid().as_raw()
        }
    );
    assert!(counted >= 5, "counted at every glob: {counted}");
    assert_eq!(logged, 1, "logged once (rate-limited)\n{}", shipd.log());
    assert!(
        shipd.log().contains(&locked.display().to_string()),
        "the log names the directory"
    );
    assert_eq!(shipd.terminate(), Some(0));
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}
