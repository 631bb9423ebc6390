//! The spill buffer against the real binary: an outage spills metrics to
//! disk compressed and replays every point; damaged segments (flipped byte,
//! truncated tail, zero-filled tail) are cut or skipped without a panic and
//! the data around the damage is delivered; a full data directory never
//! loses data; a healthy run writes nothing but checkpoints.

mod common;
#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use common::{append_lines, nginx_lines, runtime, Shipd};
use otlp_receiver::FaultReceiver;
use shipd::buffer::queue::{DiskQueue, SpillOptions};
use shipd::buffer::{codec, segment};
use shipd::event::{Event, EventBatch, MetricKind, MetricPoint, Resource, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);
const SINK: &str = "openobserve";

fn shipd_env(receiver: &FaultReceiver, data_dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("OPENOBSERVE_URL", receiver.url()),
        ("OPENOBSERVE_ORG", "pis".to_owned()),
        ("SHIPD_DATA_DIR", data_dir.display().to_string()),
        ("SHIPD_BATCH_TIMEOUT", "100ms".to_owned()),
        ("SHIPD_RETRY_MAX", "300ms".to_owned()),
        ("SHIPD_POLL_INTERVAL", "50ms".to_owned()),
        ("SHIPD_GLOB_INTERVAL", "200ms".to_owned()),
        ("SHIPD_CHECKPOINT_INTERVAL", "1s".to_owned()),
    ]
}

/// Host metrics every `every`, a small memory queue so an outage spills soon.
fn metrics_env(
    receiver: &FaultReceiver,
    data_dir: &Path,
    every: &str,
) -> Vec<(&'static str, String)> {
    let mut env = shipd_env(receiver, data_dir);
    env.extend([
        ("SHIPD_METRICS_INTERVAL", every.to_owned()),
        ("SHIPD_CHANNEL_BYTES", "64KiB".to_owned()),
        ("SHIPD_IN_FLIGHT", "1".to_owned()),
        ("SHIPD_BATCH_MAX_EVENTS", "500".to_owned()),
    ]);
    env
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "seg"))
                .collect()
        })
        .unwrap_or_default();
    segs.sort();
    segs
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn spill_metric(shipd: &Shipd, name: &str) -> u64 {
    shipd.metric(&format!("{name}{{component=\"{SINK}\"}}"))
}

#[test]
fn outage_spills_metrics_compressed_and_replays_every_point_in_order_of_collection() {
    let rt = runtime();
    let receiver = otlp_receiver::start(&rt);
    receiver.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let shipd = Shipd::start(
        &metrics_env(&receiver, &data, "100ms"),
        &dir.path().join("shipd.log"),
    );

    let spilled = wait_until(WAIT, || {
        spill_metric(&shipd, "shipd_spilled_events_total") >= 20_000
    });
    assert!(spilled, "metrics never spilled:\n{}", shipd.log());
    assert!(
        !segments(&data.join("buffer").join(SINK)).is_empty(),
        "segments on disk"
    );
    receiver.set_down(false);

    let drained = wait_until(WAIT, || {
        spill_metric(&shipd, "shipd_spill_bytes") == 0
            && segments(&data.join("buffer").join(SINK)).is_empty()
    });
    assert!(drained, "spill never drained:\n{}", shipd.log());
    let produced = shipd.metric("shipd_events_in_total{component=\"host_metrics\"}");
    let delivered_all = receiver.wait_distinct_points(produced, WAIT);
    let points = receiver.points();
    let total = points.len();
    let distinct = points
        .iter()
        .map(|p| p.key())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let on_disk = shipd.metric("shipd_disk_bytes_written_total{kind=\"spill\"}");
    let uncompressed = spill_metric(&shipd, "shipd_spill_uncompressed_bytes_total");
    let events = spill_metric(&shipd, "shipd_spilled_events_total");
    let dropped = shipd.metric(&format!(
        "shipd_events_dropped_total{{component=\"{SINK}\",reason=\"spill_full\"}}"
    ));
    let ratio = on_disk as f64 / uncompressed as f64;
    println!(
        "outage: {events} points spilled as {on_disk} bytes on disk for {uncompressed} bytes encoded \
         (ratio {ratio:.3}); {produced} points produced, {distinct} distinct delivered ({} duplicates), {dropped} dropped",
        total - distinct
    );
    assert!(delivered_all, "{distinct} of {produced} points delivered");
    assert_eq!(dropped, 0, "nothing dropped under when_full = block");
    assert!(
        ratio <= 0.3,
        "spilled bytes {on_disk} > 0.3 x {uncompressed}"
    );
    assert!(
        shipd.metric("shipd_fsync_total") > 0,
        "spill segments are synced"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

/// Metric points waiting in memory (receiver down, memory queue far from
/// full, nothing spilled) when shipd is killed with -9 come back from the
/// source's RAM journal on the next start and are delivered.
#[test]
fn metric_points_in_memory_at_kill_9_are_taken_back_from_the_ram_journal() {
    let rt = runtime();
    let receiver = otlp_receiver::start(&rt);
    receiver.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let ram = tempfile::tempdir_in("/dev/shm").unwrap();
    let data = dir.path().join("data");
    let mut env = shipd_env(&receiver, &data);
    env.extend([
        ("SHIPD_METRICS_INTERVAL", "100ms".to_owned()),
        ("SHIPD_RUNTIME_DIR", ram.path().display().to_string()),
    ]);
    let log = dir.path().join("shipd.log");
    let first = Shipd::start(&env, &log);
    let in_memory = wait_until(WAIT, || {
        first.metric("shipd_events_in_total{component=\"host_metrics\"}") >= 500
    });
    assert!(in_memory, "metrics never collected:\n{}", first.log());
    let produced = first.metric("shipd_events_in_total{component=\"host_metrics\"}");
    let spilled = spill_metric(&first, "shipd_spilled_events_total");
    first.kill9();
    let journaled = std::fs::read_dir(ram.path().join("host_metrics"))
        .unwrap()
        .count();
    receiver.set_down(false);
    let second = Shipd::start(&env, &log);
    let delivered_all = receiver.wait_distinct_points(produced, WAIT);
    let recovered =
        second.metric("shipd_journal_recovered_events_total{component=\"host_metrics\"}");
    println!(
        "kill -9 with {produced} points collected, {spilled} spilled, {journaled} batches journaled in RAM: \
         {recovered} points taken back, {} distinct delivered",
        receiver.distinct_point_keys().len()
    );
    assert_eq!(spilled, 0, "the memory queue was not full: nothing on disk");
    assert!(journaled > 0, "batches waited in the RAM journal");
    // The count is read before the kill, and a collection is counted just
    // before it is journaled: one collection may sit between the two when
    // the kill lands (a sample being taken at a kill -9 is lost by any
    // agent). Everything journaled comes back.
    let one_collection = recovered.div_ceil(journaled as u64) * 3 / 2;
    assert!(
        recovered + one_collection >= produced,
        "{recovered} of {produced} taken back (one collection is ≈ {one_collection} points)"
    );
    assert!(
        delivered_all,
        "every point collected before the kill delivered"
    );
    assert!(
        !data.join("buffer").exists(),
        "no spill directory: the journal is in RAM"
    );
    let drained = wait_until(WAIT, || {
        std::fs::read_dir(ram.path().join("host_metrics")).map_or(true, |d| d.count() == 0)
    });
    assert!(drained, "delivered batches leave the journal");
    assert_eq!(second.terminate(), Some(0));
    let left: Vec<_> = std::fs::read_dir(ram.path().join("host_metrics"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        !ram.path().join("host_metrics").exists(),
        "a clean shutdown leaves no journal directory: {left:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// One spilled batch of `n` metric points labelled `record=<tag>-<i>`.
fn record(tag: &str, n: usize) -> (Vec<u8>, u32, u64) {
    let resource = Arc::new(Resource {
        attributes: vec![("host.name".into(), Value::from("test-node"))],
    });
    let source: Arc<str> = Arc::from("host_metrics");
    let mut batch = EventBatch::from_source(&source, n);
    let now = shipd::event::unix_nanos(std::time::SystemTime::now());
    for i in 0..n {
        let mut p = MetricPoint::new(
            "spilled.point",
            "1",
            MetricKind::Gauge,
            i as f64,
            now,
            Arc::clone(&resource),
        );
        p.labels = vec![("record".into(), Value::from(format!("{tag}-{i}")))];
        batch.push(Event::Metric(p));
    }
    let mut encoded = Vec::new();
    codec::encode_batch("spilled", &batch, &mut encoded);
    let framed = segment::frame(&encoded, n as u32).unwrap();
    (framed, n as u32, encoded.len() as u64)
}

/// Writes three segments (a, b, c) of three records each, as a previous run
/// would have left them; returns the segment paths.
fn spilled_segments(dir: &Path) -> Vec<PathBuf> {
    for seg in ["a", "b", "c"] {
        let mut q = DiskQueue::open(dir, SINK, SpillOptions::default(), 0).unwrap();
        for r in 0..3 {
            let (framed, events, raw) = record(&format!("{seg}{r}"), 50);
            q.append(&framed, events, raw).unwrap();
        }
        q.close_active().unwrap();
    }
    let segs = segments(dir);
    assert_eq!(segs.len(), 3);
    segs
}

/// The records (`a0`..`c2`) whose points all arrived, in arrival order.
fn delivered_records(receiver: &FaultReceiver) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for p in receiver
        .points()
        .iter()
        .filter(|p| p.name == "spilled.point")
    {
        let Some(rec) = p.label("record").and_then(|l| l.split('-').next()) else {
            continue;
        };
        let n = counts.entry(rec.to_owned()).or_default();
        *n += 1;
        if *n == 50 {
            order.push(rec.to_owned());
        }
    }
    order
}

/// Starts shipd on a data directory holding damaged segments and checks
/// that exactly `expected` records arrive, in order, and the damage is counted.
fn replay_damaged(damage: impl FnOnce(&[PathBuf]), expected: &[&str], kind: &str) {
    let rt = runtime();
    let receiver = otlp_receiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let buffer = data.join("buffer").join(SINK);
    let segs = spilled_segments(&buffer);
    damage(&segs);
    let mut env = shipd_env(&receiver, &data);
    env.push(("SHIPD_IN_FLIGHT", "1".to_owned()));
    // A source keeps the pipeline running (without any, it shuts down at once).
    let quiet = dir.path().join("quiet.log");
    std::fs::write(&quiet, b"").unwrap();
    env.push(("SHIPD_LOG_FILES", quiet.display().to_string()));
    let mut shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    let all_there = wait_until(WAIT, || {
        delivered_records(&receiver).len() >= expected.len()
    });
    assert!(
        all_there,
        "got {:?}:\n{}",
        delivered_records(&receiver),
        shipd.log()
    );
    let emptied = wait_until(WAIT, || segments(&buffer).is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        delivered_records(&receiver),
        expected,
        "records around the damage, in order"
    );
    assert!(
        emptied,
        "delivered segments deleted: {:?}",
        segments(&buffer)
    );
    assert_eq!(
        shipd.metric(&format!(
            "shipd_spill_damaged_total{{component=\"{SINK}\",kind=\"{kind}\"}}"
        )),
        1,
        "damage counted:\n{}",
        shipd.log()
    );
    assert!(
        shipd.child.try_wait().unwrap().is_none(),
        "no panic, still running"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

fn record_offsets(path: &Path) -> Vec<u64> {
    let len = std::fs::metadata(path).unwrap().len();
    let mut file = std::fs::File::open(path).unwrap();
    let mut at = 0;
    let mut offsets = Vec::new();
    while let segment::ReadOutcome::Record(r) = segment::read_record(&mut file, at, len).unwrap() {
        offsets.push(at);
        at = r.next;
    }
    offsets
}

#[test]
fn flipped_byte_in_a_middle_segment_skips_its_rest_and_keeps_the_segments_around_it() {
    replay_damaged(
        |segs| {
            let second = record_offsets(&segs[1])[1];
            let mut bytes = std::fs::read(&segs[1]).unwrap();
            let at = second as usize + 40;
            bytes[at] ^= 0x01;
            std::fs::write(&segs[1], bytes).unwrap();
        },
        &["a0", "a1", "a2", "b0", "c0", "c1", "c2"],
        "corrupt_segment",
    );
}

#[test]
fn truncated_tail_is_cut_and_everything_before_it_delivered() {
    replay_damaged(
        |segs| {
            let len = std::fs::metadata(&segs[2]).unwrap().len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&segs[2])
                .unwrap();
            f.set_len(len - 17).unwrap();
        },
        &["a0", "a1", "a2", "b0", "b1", "b2", "c0", "c1"],
        "torn_tail",
    );
}

#[test]
fn zero_filled_tail_is_cut_and_every_record_delivered() {
    replay_damaged(
        |segs| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&segs[2])
                .unwrap();
            f.write_all(&[0u8; 4096]).unwrap();
        },
        &["a0", "a1", "a2", "b0", "b1", "b2", "c0", "c1", "c2"],
        "torn_tail",
    );
}

/// Unmounts (lazily) on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Mounts a `size` tmpfs on `dir`; `None` when this machine cannot (not root).
fn small_tmpfs(dir: &Path, size: &str) -> Option<Mounted> {
    std::fs::create_dir_all(dir).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mounted(dir.to_path_buf()))
}

/// Fills the file system of `dir` until only about `leave` bytes are free.
fn fill_leaving(dir: &Path, leave: u64) {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(leave)).unwrap();
}

#[test]
fn full_data_directory_keeps_batches_in_memory_and_loses_nothing() {
    let rt = runtime();
    let receiver = otlp_receiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A 512 KiB tmpfs as the data directory, filled to ~128 KiB free.
    let Some(_mount) = small_tmpfs(&data, "512k") else {
        println!("SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run");
        return;
    };
    fill_leaving(&data, 128 * 1024);
    let logs = dir.path().join("app.log");
    std::fs::write(&logs, b"").unwrap();
    let mut env = metrics_env(&receiver, &data, "100ms");
    env.push(("SHIPD_LOG_FILES", logs.display().to_string()));
    let mut shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert!(shipd.wait_log("tailing file", WAIT), "{}", shipd.log());
    receiver.set_down(true);

    let full = wait_until(WAIT, || {
        spill_metric(&shipd, "shipd_spill_write_errors_total") > 0
    });
    assert!(full, "the spill never hit the full disk:\n{}", shipd.log());
    let lines = nginx_lines("diskfull", 2_000);
    append_lines(&logs, &lines, 200, Duration::from_millis(20));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        shipd.child.try_wait().unwrap().is_none(),
        "shipd survives a full disk"
    );
    let errors = spill_metric(&shipd, "shipd_spill_write_errors_total");
    let spilled = spill_metric(&shipd, "shipd_spilled_events_total");
    receiver.set_down(false);

    assert_eq!(
        receiver.wait_for_lines(&lines, WAIT),
        0,
        "log lines lost:\n{}",
        shipd.log()
    );
    let buffer = data.join("buffer").join(SINK);
    let drained = wait_until(WAIT, || segments(&buffer).is_empty());
    assert!(drained, "spill drained once delivery resumed");
    let produced = shipd.metric("shipd_events_in_total{component=\"host_metrics\"}");
    let all = receiver.wait_distinct_points(produced, WAIT);
    println!(
        "disk full: {spilled} points spilled before the disk filled, {errors} spill writes refused (held in memory), \
         {produced} points produced, {} distinct delivered",
        receiver.distinct_point_keys().len()
    );
    assert!(all, "every metric point delivered");
    assert!(
        shipd.log().contains("cannot write to the spill buffer"),
        "the refusal is logged"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

fn proc_io(pid: u32) -> std::collections::HashMap<String, u64> {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `SHIPD_WEAR_TEST_SECS` (default 30) of 1,000 lines/s to a healthy
/// receiver: the only bytes shipd writes to storage are checkpoints.
#[test]
fn healthy_run_at_1000_lines_per_second_writes_only_checkpoints() {
    let secs: u64 = std::env::var("SHIPD_WEAR_TEST_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let rt = runtime();
    let receiver = otlp_receiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let logs = dir.path().join("app.log");
    std::fs::write(&logs, b"").unwrap();
    let ram = tempfile::tempdir_in("/dev/shm").unwrap();
    let mut env = shipd_env(&receiver, &data);
    env.retain(|(k, _)| *k != "SHIPD_CHECKPOINT_INTERVAL");
    env.extend([
        ("SHIPD_LOG_FILES", logs.display().to_string()),
        ("SHIPD_METRICS_INTERVAL", "1s".to_owned()),
        ("SHIPD_RUNTIME_DIR", ram.path().display().to_string()),
        ("RUST_LOG", "warn".to_owned()),
    ]);
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert!(
        wait_until(WAIT, || shipd
            .metric("shipd_files_open{component=\"files\"}")
            > 0),
        "started: {}",
        shipd.log()
    );
    let lines = nginx_lines("wear", (secs * 1000) as usize);
    let started = Instant::now();
    for (i, chunk) in lines.chunks(100).enumerate() {
        append_lines(&logs, chunk, 100, Duration::ZERO);
        let due = started + Duration::from_millis(100 * (i as u64 + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    assert_eq!(
        receiver.wait_for_lines(&lines, WAIT),
        0,
        "every line delivered"
    );
    std::thread::sleep(Duration::from_secs(6)); // the last checkpoint interval
    let io = proc_io(shipd.child.id());
    let (status, health) = common::http_get(shipd.api, "/health");
    let wear: serde_json::Value = serde_json::from_str(&health).unwrap();
    let write_bytes = io.get("write_bytes").copied().unwrap_or(0);
    let wchar = io.get("wchar").copied().unwrap_or(0);
    let sent = shipd.metric("shipd_bytes_out_total{component=\"openobserve\"}");
    println!(
        "healthy {secs} s at 1000 lines/s: /proc io write_bytes={write_bytes} wchar={wchar} \
         (wchar counts socket and tmpfs writes too: {sent} request body bytes sent to \
         OpenObserve); shipd's own count: {}",
        wear["wear"]
    );
    assert_eq!(status, 200);
    assert_eq!(wear["wear"]["spill_bytes"], 0, "no event data on disk");
    assert!(
        !data.join("buffer").exists(),
        "no spill directory while healthy"
    );
    let checkpoint_bytes = wear["wear"]["checkpoint_bytes"].as_u64().unwrap();
    assert!(checkpoint_bytes > 0 && checkpoint_bytes <= 100 * 1024);
    // The kernel charges whole 4 KiB pages. Positions go to the RAM copy
    // (tmpfs: not storage) every 5 s and to the disk copy every 2 minutes,
    // each write there charged one or two pages (data, inode mtime).
    let listing: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    println!(
        "checkpoints: {checkpoint_bytes} bytes written, {} fsyncs; data directory: {listing:?}; \
         100 KiB goal by write_bytes {}",
        wear["wear"]["fsyncs"],
        if write_bytes <= 100 * 1024 {
            "met"
        } else {
            "NOT met"
        }
    );
    assert_eq!(listing, ["checkpoints.state"], "only the checkpoint file");
    // Positions of every 5 s live in the RAM copy (a crash of shipd keeps
    // it); the disk copy follows every 2 minutes.
    let end = format!("\"offset\":{}", std::fs::metadata(&logs).unwrap().len());
    let in_ram =
        String::from_utf8_lossy(&std::fs::read(ram.path().join("checkpoints.state")).unwrap())
            .into_owned();
    assert!(
        in_ram.contains(&end),
        "the RAM copy holds the end of the log: {in_ram}"
    );
    assert!(
        write_bytes <= 100 * 1024,
        "{write_bytes} bytes reached storage in {secs} s, more than 100 KiB"
    );
    assert_eq!(shipd.terminate(), Some(0));
}
