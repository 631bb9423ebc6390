//! Faults: kill -9 mid-stream and restart, hostile input files, a receiver
//! answering after 5 s, 500 and 429/500 storms, a file truncated mid-read,
//! and the seeded chaos run (kill -9 ten times, receiver down three times,
//! logs and metrics at once).

mod common;
#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use common::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const WAIT: Duration = Duration::from_secs(90);

#[test]
fn kill_9_mid_stream_then_restart_loses_no_line() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stream.log");
    std::fs::write(&file, b"").unwrap();
    let mut env = ship_env(
        &receiver,
        "http",
        &file.display().to_string(),
        &dir.path().join("data"),
    );
    env.push(("SHIPD_CHECKPOINT_INTERVAL", "1s".to_owned()));
    let log = dir.path().join("shipd.log");
    let first = Shipd::start(&env, &log);
    assert!(first.wait_log("tailing file", WAIT));

    let lines = nginx_lines("kill9", 50_000);
    let writer = {
        let (file, lines) = (file.clone(), lines.clone());
        std::thread::spawn(move || append_lines(&file, &lines, 250, Duration::from_millis(20)))
    };
    let deadline = Instant::now() + WAIT;
    while receiver.count() < 20_000 {
        assert!(
            Instant::now() < deadline,
            "stream never got going:\n{}",
            first.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill9();
    let before_kill = receiver.count();
    writer.join().unwrap();

    let second = Shipd::start(&env, &log);
    receiver.wait_for_all(&lines, WAIT);
    let got = receiver.count();
    std::thread::sleep(Duration::from_secs(1));
    let bodies = receiver.bodies();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for b in &bodies {
        *seen.entry(b.as_str()).or_default() += 1;
    }
    let missing = lines
        .iter()
        .filter(|l| !seen.contains_key(l.as_str()))
        .count();
    let duplicates = bodies.len() - seen.len();
    println!(
        "kill -9 after {before_kill} of {} lines delivered: {missing} missing, {duplicates} duplicates (re-sent after restart)",
        lines.len()
    );
    assert!(got >= lines.len(), "only {got} records arrived");
    assert_eq!(missing, 0, "lines lost across kill -9");
    assert_eq!(seen.len(), lines.len(), "nothing unexpected arrived");
    assert!(
        duplicates < before_kill,
        "restart resumed from the checkpoint, not from the start ({duplicates} duplicates)"
    );
    assert_eq!(second.terminate(), Some(0));
}

/// `lines` written to `dir/backlog.log` before shipd starts, and the
/// environment that ships that file from its beginning to `receiver` over
/// HTTP with small channels.
fn backlog(
    receiver: &Receiver,
    dir: &std::path::Path,
    lines: &[String],
) -> (std::path::PathBuf, Vec<(&'static str, String)>) {
    let file = dir.join("backlog.log");
    append_lines(&file, lines, 10_000, Duration::ZERO);
    let mut env = ship_env(
        receiver,
        "http",
        &file.display().to_string(),
        &dir.join("data"),
    );
    env.extend([
        ("SHIPD_READ_FROM", "beginning".to_owned()),
        ("SHIPD_CHANNEL_BYTES", "256KiB".to_owned()),
    ]);
    (file, env)
}

/// A deterministic pseudo-random byte generator (xorshift64*).
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn huge_line_random_bytes_and_empty_file_are_counted_and_everything_else_delivered() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();

    let mut big = b"before the giant\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    big.extend_from_slice(b"\nafter the giant\n");
    std::fs::write(logs.join("big.log"), &big).unwrap();
    let garbage = random_bytes(1024 * 1024, 0x5eed);
    std::fs::write(logs.join("garbage.log"), &garbage).unwrap();
    std::fs::write(logs.join("empty.log"), b"").unwrap();
    let normal = nginx_lines("normal", 200);
    append_lines(&logs.join("normal.log"), &normal, 200, Duration::ZERO);

    let segments: Vec<&[u8]> = garbage.split(|b| *b == b'\n').collect();
    let garbage_records = segments[..segments.len() - 1]
        .iter()
        .filter(|s| !s.is_empty())
        .count();
    let expected = normal.len() + 3 + garbage_records;

    let mut env = ship_env(
        &receiver,
        "http",
        &format!("{}/*.log", logs.display()),
        &dir.path().join("data"),
    );
    env.push(("SHIPD_READ_FROM", "beginning".to_owned()));
    let mut shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert_eq!(
        receiver.wait_for(expected, WAIT),
        expected,
        "log:\n{}",
        shipd.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.count(), expected, "nothing extra");
    assert!(
        shipd.child.try_wait().unwrap().is_none(),
        "shipd still running"
    );

    let records = receiver.records();
    let bodies: Vec<&str> = records.iter().map(|r| r.body.as_str()).collect();
    for line in &normal {
        assert!(bodies.contains(&line.as_str()), "normal line lost");
    }
    assert!(bodies.contains(&"before the giant") && bodies.contains(&"after the giant"));
    let giant: Vec<_> = records
        .iter()
        .filter(|r| r.body.starts_with("xxxx"))
        .collect();
    assert_eq!(giant.len(), 1, "the 10 MiB line is one record");
    assert_eq!(
        giant[0].body.len(),
        256 * 1024,
        "truncated to max_line_bytes"
    );
    assert_eq!(
        giant[0].attributes.get("shipd.truncated"),
        Some(&opentelemetry_proto::tonic::common::v1::any_value::Value::BoolValue(true))
    );
    assert_eq!(
        shipd.metric("shipd_lines_truncated_total{component=\"files\"}"),
        1
    );
    assert!(
        shipd.metric("shipd_invalid_utf8_total{component=\"files\"}") > 0,
        "invalid UTF-8 counted"
    );
    assert!(
        shipd.metric("shipd_events_dropped_total{component=\"files\",reason=\"empty_line\"}") > 0
    );
    assert_eq!(shipd.terminate(), Some(0));
}

/// xorshift64: the chaos schedule is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// 200,000 log lines and host metrics every 100 ms while shipd is killed
/// with -9 ten times at seeded random moments and the receiver is down for
/// three periods, two of them spanning a kill (spilled metrics must survive
/// the crash). Every log line arrives; duplicates are reported and bounded;
/// every metric point collected by any run arrives or is counted as dropped
/// by policy: points in memory at a kill come back from the RAM journal,
/// spilled ones from disk, and the spill directory is empty at the end.
#[test]
fn chaos_ten_kill_9_and_three_outages_lose_no_log_line_and_replay_spilled_metrics() {
    let seed = std::env::var("SHIPD_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c4a0_u64);
    let mut rng = Rng(seed | 1);
    let rt = runtime();
    let receiver = otlp_receiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chaos.log");
    std::fs::write(&file, b"").unwrap();
    let data = dir.path().join("data");
    let ram = tempfile::tempdir_in("/dev/shm").unwrap();
    let env: Vec<(&str, String)> = vec![
        ("SHIPD_RUNTIME_DIR", ram.path().display().to_string()),
        ("OPENOBSERVE_URL", receiver.url()),
        ("OPENOBSERVE_ORG", "pis".to_owned()),
        ("SHIPD_DATA_DIR", data.display().to_string()),
        ("SHIPD_LOG_FILES", file.display().to_string()),
        ("SHIPD_READ_FROM", "beginning".to_owned()),
        ("SHIPD_CHECKPOINT_INTERVAL", "1s".to_owned()),
        ("SHIPD_METRICS_INTERVAL", "100ms".to_owned()),
        ("SHIPD_CHANNEL_BYTES", "256KiB".to_owned()),
        ("SHIPD_BATCH_TIMEOUT", "100ms".to_owned()),
        ("SHIPD_RETRY_MAX", "300ms".to_owned()),
        ("SHIPD_POLL_INTERVAL", "50ms".to_owned()),
        ("SHIPD_GLOB_INTERVAL", "200ms".to_owned()),
    ];
    let log = dir.path().join("shipd.log");
    let lines = nginx_lines("chaos", 200_000);
    let writer = {
        let (file, lines) = (file.clone(), lines.clone());
        std::thread::spawn(move || append_lines(&file, &lines, 1000, Duration::from_millis(150)))
    };

    let mut shipd = Shipd::start(&env, &log);
    let mut final_start = now_nanos();
    let (mut produced_before_kills, mut spilled_before_kills, mut segments_at_kills) = (0, 0, 0);
    for kill in 0..10 {
        if [1, 4, 7].contains(&kill) {
            receiver.set_down(true);
        }
        std::thread::sleep(Duration::from_millis(1000 + rng.below(2000)));
        produced_before_kills += shipd.metric("shipd_events_in_total{component=\"host_metrics\"}");
        spilled_before_kills +=
            shipd.metric("shipd_spilled_events_total{component=\"openobserve\"}");
        segments_at_kills += std::fs::read_dir(data.join("buffer/openobserve"))
            .map(|d| d.count())
            .unwrap_or(0);
        // Whatever was counted as collected has reached the journal by now.
        std::thread::sleep(Duration::from_millis(50));
        shipd.kill9();
        if [2, 5, 8].contains(&kill) {
            receiver.set_down(false);
        }
        final_start = now_nanos();
        shipd = Shipd::start(&env, &log);
    }
    writer.join().unwrap();

    let missing = receiver.wait_for_lines(&lines, Duration::from_secs(180));
    let emptied = (0..1800).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_dir(data.join("buffer/openobserve")).map_or(true, |d| d.count() == 0)
    });
    // The last run is the only one without a kill: its production is known.
    let produced_last = shipd.metric("shipd_events_in_total{component=\"host_metrics\"}");
    let dropped =
        shipd.metric("shipd_events_dropped_total{component=\"openobserve\",reason=\"spill_full\"}");
    let last_run_delivered = receiver.wait_points(Duration::from_secs(60), |points| {
        let last_run: HashSet<String> = points
            .iter()
            .filter(|p| p.time_unix_nano >= final_start)
            .map(|p| p.key())
            .collect();
        last_run.len() as u64 >= produced_last
    });
    let bodies = receiver.log_bodies();
    let distinct: HashSet<&str> = bodies.iter().map(String::as_str).collect();
    let duplicates = bodies.len() - distinct.len();
    let points = receiver.points();
    let distinct_points: HashSet<String> = points.iter().map(|p| p.key()).collect();
    let produced = produced_before_kills + produced_last;
    let lost = produced.saturating_sub(distinct_points.len() as u64 + dropped);
    let recovered =
        shipd.metric("shipd_journal_recovered_events_total{component=\"host_metrics\"}");
    println!(
        "chaos (seed {seed:#x}): {} lines, {missing} missing, {duplicates} duplicate lines after 10 kill -9; \
         metrics: {produced} points produced, {} distinct delivered ({} duplicates), {dropped} dropped by policy, \
         {spilled_before_kills} spilled by killed runs ({segments_at_kills} segment files seen at kills), \
         {recovered} taken back from the RAM journal by the last start, {lost} lost",
        lines.len(),
        distinct_points.len(),
        points.len() - distinct_points.len()
    );
    assert_eq!(missing, 0, "log lines lost:\n{}", shipd.log());
    // Other log records (node health changes) arrive too; no other line does.
    assert!(
        distinct
            .iter()
            .filter(|b| b.starts_with("10.0."))
            .all(|b| b.contains("/api/chaos/")),
        "nothing unexpected arrived"
    );
    // Per kill: what was read since the last persisted checkpoint (1 s at
    // ~7,000 lines/s) plus the batches in flight and queued.
    assert!(duplicates <= 10 * 25_000, "{duplicates} duplicates");
    assert!(
        spilled_before_kills > 0,
        "outages spanning kills spilled metrics"
    );
    assert!(
        segments_at_kills > 0,
        "segments were on disk when a process was killed"
    );
    assert!(emptied, "every spilled segment was replayed and deleted");
    assert!(
        last_run_delivered,
        "every metric point of the last run delivered"
    );
    assert_eq!(
        lost, 0,
        "every metric point collected before a kill delivered or counted as dropped"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kib * 1024
}

fn assert_each_delivered_once(bodies: &[String], expected: &[String]) {
    let t = tally(bodies, expected);
    assert_eq!(t.missing, 0, "lines lost");
    assert_eq!(t.duplicates, 0, "lines delivered more than once");
    assert_eq!(t.unexpected, 0, "nothing unexpected arrived");
}

/// Every request is answered 200 after 5 s (well under the 30 s default
/// request timeout, so nothing is re-sent). A 100,000-line backlog at 4
/// requests of 5,000 lines in flight takes five rounds: every line arrives
/// once, the file source stops reading while the sink is saturated (what it
/// read but shipd has not yet seen acknowledged stays bounded by the batches
/// in flight and the byte-bounded channels), and resident memory stays small.
#[test]
fn receiver_answering_after_5_s_gets_every_line_once_while_reading_waits_and_memory_stays_bounded()
{
    const DELAY: Duration = Duration::from_secs(5);
    let rt = runtime();
    let receiver = http_receiver(&rt, Arc::new(|_, _| Reply::slow_accept(DELAY)));
    let dir = tempfile::tempdir().unwrap();
    let lines = nginx_lines("slow", 100_000);
    let (file, mut env) = backlog(&receiver, dir.path(), &lines);
    let file_bytes = std::fs::metadata(&file).unwrap().len();
    env.extend([
        ("SHIPD_BATCH_MAX_EVENTS", "5000".to_owned()),
        ("SHIPD_BATCH_MAX_BYTES", "4MiB".to_owned()),
        ("SHIPD_IN_FLIGHT", "4".to_owned()),
    ]);
    let started = Instant::now();
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    let read = || shipd.metric("shipd_events_in_total{component=\"files\"}");

    let delivered = || shipd.metric("shipd_events_out_total{component=\"openobserve\"}");

    // Until the first answer, 5 s after the first request, the sink has four
    // requests in flight and asks for no more; the source fills the
    // pipeline, then waits.
    while receiver.log.attempts.load(Ordering::SeqCst) < 4 {
        assert!(started.elapsed() < WAIT, "no request:\n{}", shipd.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    let read_at_2s = read();
    std::thread::sleep(Duration::from_secs(2));
    let read_at_4s = read();
    let requests_at_4s = receiver.log.attempts.load(Ordering::SeqCst);
    assert_eq!(delivered(), 0, "answers take 5 s");

    let mut most_outstanding = 0;
    let deadline = Instant::now() + WAIT;
    loop {
        let (read, delivered) = (read(), delivered());
        most_outstanding = most_outstanding.max(read.saturating_sub(delivered));
        if delivered >= lines.len() as u64 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let pid = shipd.child.id();
    let (rss, peak) = (
        proc_status_bytes(pid, "VmRSS"),
        proc_status_bytes(pid, "VmHWM"),
    );
    let requests = shipd.metric("shipd_requests_total{component=\"openobserve\"}");
    let retries = shipd.metric("shipd_retries_total{component=\"openobserve\"}");
    println!(
        "5 s answers: {} lines ({file_bytes} bytes) in {took:.1?} over {requests} requests, {retries} retries; \
         before the first answer: {requests_at_4s} requests, {read_at_2s} lines read at 2 s, {read_at_4s} at 4 s; \
         at most {most_outstanding} lines read but not yet acknowledged; VmRSS {} KiB (peak {} KiB)",
        lines.len(),
        rss / 1024,
        peak / 1024
    );
    assert_each_delivered_once(&receiver.bodies(), &lines);
    assert_eq!(retries, 0, "no request timed out");
    assert_eq!(
        requests as usize,
        receiver.log.attempts.load(Ordering::SeqCst),
        "one request per batch"
    );
    assert_eq!(requests_at_4s, 4, "no more requests than in_flight");
    assert_eq!(
        read_at_2s, read_at_4s,
        "reading stopped while the sink was full"
    );
    assert!(
        read_at_4s < lines.len() as u64 / 2,
        "the source did not read the backlog ahead ({read_at_4s} lines)"
    );
    // In flight 4 × 5,000, one batch of 5,000 being filled, and about five
    // 256 KiB reads (~2,700 lines each) held by the source, the processor,
    // the sink and the two 256 KiB channels: ~38,000 lines (37,253 measured).
    assert!(
        most_outstanding < 45_000,
        "{most_outstanding} lines buffered ahead of the receiver"
    );
    assert!(peak < 200 * 1024 * 1024, "peak RSS {} KiB", peak / 1024);
    assert_eq!(shipd.wait_healthy(Duration::from_secs(10)), 200);
    assert_eq!(shipd.terminate(), Some(0));
}

/// The first 40 requests fail with `status(n)`, the rest are accepted:
/// every line arrives once, each failure is counted as a retry and nothing
/// is counted as rejected.
fn storm_of_40_then_recovery_delivers_every_line(tag: &str, status: fn(usize) -> u16) {
    const STORM: usize = 40;
    let rt = runtime();
    let receiver = http_receiver(
        &rt,
        Arc::new(move |n, _| {
            if n < STORM {
                Reply::Fail(status(n))
            } else {
                Reply::Accept
            }
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    std::fs::write(&file, b"").unwrap();
    let env = ship_env(
        &receiver,
        "http",
        &file.display().to_string(),
        &dir.path().join("data"),
    );
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert!(shipd.wait_log("tailing file", WAIT), "{}", shipd.log());
    let started = Instant::now();
    let lines = nginx_lines(tag, 3_000);
    append_lines(&file, &lines, 300, Duration::from_millis(100));
    assert_eq!(
        receiver.wait_for(lines.len(), WAIT),
        lines.len(),
        "log:\n{}",
        shipd.log()
    );
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    assert_each_delivered_once(&receiver.bodies(), &lines);
    let attempts = receiver.log.attempts.load(Ordering::SeqCst);
    let retries = shipd.metric("shipd_retries_total{component=\"openobserve\"}");
    let requests = shipd.metric("shipd_requests_total{component=\"openobserve\"}");
    let rejected =
        shipd.metric("shipd_events_dropped_total{component=\"openobserve\",reason=\"rejected\"}");
    println!(
        "{tag}: {STORM} failed answers, {} lines delivered {took:.1?} after the first was written; \
         {requests} requests ({retries} retries), {rejected} rejected",
        lines.len()
    );
    assert_eq!(retries, STORM as u64, "every failed answer is one retry");
    assert_eq!(requests as usize, attempts, "every request counted");
    assert_eq!(rejected, 0, "nothing refused for good");
    assert_eq!(
        shipd.wait_healthy(Duration::from_secs(10)),
        200,
        "healthy again"
    );
    assert!(
        shipd.log().contains("delivery failed; retrying"),
        "retries logged"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn storm_of_40_http_500_answers_is_retried_until_every_line_is_delivered_once() {
    storm_of_40_then_recovery_delivers_every_line("storm500", |_| 500);
}

#[test]
fn alternating_429_and_500_storm_is_retried_until_every_line_is_delivered_once() {
    storm_of_40_then_recovery_delivers_every_line("storm429x500", |n| {
        if n % 2 == 0 {
            429
        } else {
            500
        }
    });
}

/// A 200,000-line file is being shipped to a receiver answering after
/// 500 ms when it is truncated to 0 and written again. What was read before
/// the truncation arrives once (a prefix of the old lines, its last line
/// maybe cut where the read stopped), the rest of the old content is gone
/// (the truncation is counted and logged), every line written afterwards
/// arrives once, and shipd stays up and healthy.
#[test]
fn file_truncated_mid_read_restarts_at_zero_and_delivers_every_line_written_after() {
    let rt = runtime();
    let receiver = http_receiver(
        &rt,
        Arc::new(|_, _| Reply::slow_accept(Duration::from_millis(500))),
    );
    let dir = tempfile::tempdir().unwrap();
    let old = nginx_lines("before", 200_000);
    let (file, mut env) = backlog(&receiver, dir.path(), &old);
    let old_bytes = std::fs::metadata(&file).unwrap().len();
    env.push(("SHIPD_BATCH_MAX_EVENTS", "1000".to_owned()));
    let mut shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    let got = receiver.wait_for(8_000, WAIT);
    assert!(got >= 8_000, "shipping never got going:\n{}", shipd.log());
    let read_before = shipd.metric("shipd_bytes_in_total{component=\"files\"}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(0)
        .unwrap();
    let delivered_at_truncation = receiver.count();
    let new = nginx_lines("after", 5_000);
    append_lines(&file, &new, 500, Duration::from_millis(50));
    let missing = receiver.wait_for_all(&new, WAIT);
    assert_eq!(
        missing,
        0,
        "lines written after the truncation lost:\n{}",
        shipd.log()
    );
    std::thread::sleep(Duration::from_secs(1));

    let bodies = receiver.bodies();
    let new_set: HashSet<&str> = new.iter().map(String::as_str).collect();
    let (after, before): (Vec<String>, Vec<String>) = bodies
        .into_iter()
        .partition(|b| new_set.contains(b.as_str()));
    assert_each_delivered_once(&after, &new);
    // What was read of the old content: its first `whole` lines, each
    // once, maybe followed by the line the read stopped in, cut there.
    let old_set: HashSet<&str> = old.iter().map(String::as_str).collect();
    let (whole_lines, cut): (Vec<String>, Vec<String>) = before
        .into_iter()
        .partition(|b| old_set.contains(b.as_str()));
    let whole = whole_lines.len();
    assert_each_delivered_once(&whole_lines, &old[..whole]);
    assert!(
        cut.is_empty() || (cut.len() == 1 && old[whole].starts_with(cut[0].as_str())),
        "besides the first {whole} old lines only one cut line may arrive: {:?}",
        &cut[..cut.len().min(3)]
    );
    let truncations = shipd.metric("shipd_file_truncations_total{component=\"files\"}");
    println!(
        "truncated after {read_before} of {old_bytes} bytes read ({delivered_at_truncation} lines delivered): \
         {whole} whole old lines and {} cut line delivered, {} old lines never read; \
         all {} lines written after arrived once; {truncations} truncation counted",
        cut.len(),
        old.len() - whole - cut.len(),
        new.len()
    );
    assert!(
        whole >= delivered_at_truncation && whole < old.len() / 2,
        "{whole} old lines delivered"
    );
    assert_eq!(truncations, 1, "the truncation is counted once");
    assert!(
        shipd
            .log()
            .contains("file truncated; reading it again from the start"),
        "the truncation is logged:\n{}",
        shipd.log()
    );
    assert!(
        shipd.child.try_wait().unwrap().is_none(),
        "shipd still running"
    );
    assert_eq!(shipd.wait_healthy(Duration::from_secs(10)), 200);
    assert!(!shipd.log().contains("panicked"), "{}", shipd.log());
    assert_eq!(shipd.terminate(), Some(0));
}

/// A service restarted with `> app.log` truncates its log and writes the
/// same banner first: the file keeps its identity (inode and first line).
/// Batches of the old content still in flight when reading restarts at 0
/// must not move the new content's checkpoint: after a restart of shipd,
/// nothing is read twice.
#[test]
fn truncated_file_starting_with_the_same_line_keeps_its_checkpoint_through_late_acks() {
    let rt = runtime();
    let receiver = http_receiver(
        &rt,
        Arc::new(|_, _| Reply::slow_accept(Duration::from_millis(500))),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    let banner = vec!["app 1.0 starting, listening on :8080 with 4 workers".to_owned()];
    append_lines(&file, &banner, 1, Duration::ZERO);
    append_lines(
        &file,
        &nginx_lines("before", 200_000),
        10_000,
        Duration::ZERO,
    );
    let data = dir.path().join("data");
    let mut env = ship_env(&receiver, "http", &file.display().to_string(), &data);
    env.extend([
        ("SHIPD_READ_FROM", "beginning".to_owned()),
        ("SHIPD_BATCH_MAX_EVENTS", "1000".to_owned()),
        ("SHIPD_CHANNEL_BYTES", "256KiB".to_owned()),
    ]);
    let log = dir.path().join("shipd.log");
    let shipd = Shipd::start(&env, &log);
    assert!(receiver.wait_for(8_000, WAIT) >= 8_000, "{}", shipd.log());
    std::fs::write(&file, b"").unwrap();
    append_lines(&file, &banner, 1, Duration::ZERO);
    let new = nginx_lines("after", 2_000);
    append_lines(&file, &new, 500, Duration::from_millis(50));
    assert_eq!(receiver.wait_for_all(&new, WAIT), 0, "{}", shipd.log());
    let old_in_flight = shipd.metric("shipd_events_out_total{component=\"openobserve\"}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(shipd.terminate(), Some(0));
    let size = std::fs::metadata(&file).unwrap().len();
    let state = String::from_utf8_lossy(&std::fs::read(data.join("checkpoints.state")).unwrap())
        .into_owned();
    println!(
        "after truncation ({old_in_flight} delivered), file size {size}, checkpoints: {state}"
    );

    let delivered = receiver.count();
    let again = Shipd::start(&env, &log);
    assert!(again.wait_log("reading file", WAIT));
    std::thread::sleep(Duration::from_secs(3));
    let repeated = receiver.count() - delivered;
    println!("after restarting shipd: {repeated} records delivered again");
    assert!(
        state.contains(&format!("\"offset\":{size}")),
        "the checkpoint is the end of the new content ({size}): {state}"
    );
    assert_eq!(repeated, 0, "nothing read twice after a restart");
    assert_eq!(again.terminate(), Some(0));
}
