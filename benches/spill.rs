//! The spill buffer: write throughput (encode + zstd + CRC32C + one write
//! per batch) and replay throughput (read + check + decompress + decode) of
//! host-metric batches, in MB/s of encoded batch bytes; then the peak memory
//! growth while replaying a 256 MiB buffer (`SHIPD_BENCH_REPLAY_MIB` to
//! change), reported on stdout: it must stay a few batches, never the buffer.
//!
//! Also the RAM journal every metric batch goes through while healthy:
//! encode + zstd + one file written on tmpfs, removed on acknowledgement.
//!
//! Run with `cargo bench --bench spill`.

use criterion::{criterion_group, Criterion, SamplingMode, Throughput};
use shipd::buffer::journal::RamJournal;
use shipd::buffer::queue::{DiskQueue, SpillOptions};
use shipd::buffer::{codec, segment};
use shipd::event::{Event, EventBatch, MetricKind, MetricPoint, Resource, Value};
use shipd::pipeline::acks::ack_events;
use shipd::sinks::RoutedBatch;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCHES: usize = 200;
const POINTS: usize = 500;

/// A batch of host-metric-like points (per-cpu, per-device labels).
fn batch(seed: u64) -> RoutedBatch {
    let resource = Arc::new(Resource {
        attributes: vec![
            ("host.name".into(), Value::from("pi-node-3")),
            ("service.name".into(), Value::from("shipd")),
        ],
    });
    let source: Arc<str> = Arc::from("host_metrics");
    let mut b = EventBatch::from_source(&source, POINTS);
    let mut x = seed | 1;
    for i in 0..POINTS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut p = MetricPoint::new(
            [
                "system.cpu.time",
                "system.memory.usage",
                "system.disk.io",
                "system.network.io",
            ][i % 4],
            "By",
            MetricKind::Sum { monotonic: true },
            (x % 10_000_000) as f64 / 7.0,
            1_764_000_000_000_000_000 + seed * 15_000_000_000,
            Arc::clone(&resource),
        );
        p.labels = vec![
            ("device".into(), Value::from(format!("dev{}", i % 16))),
            (
                "state".into(),
                Value::from(["user", "system", "idle", "iowait"][i % 4]),
            ),
        ];
        b.push(Event::Metric(p));
    }
    RoutedBatch {
        stream: Arc::from("node_metrics"),
        batch: b,
    }
}

fn encoded_batches(n: usize) -> (Vec<RoutedBatch>, u64) {
    let batches: Vec<RoutedBatch> = (0..n as u64).map(batch).collect();
    let bytes = batches
        .iter()
        .map(|b| {
            let mut out = Vec::new();
            codec::encode_batch(&b.stream, &b.batch, &mut out);
            out.len() as u64
        })
        .sum();
    (batches, bytes)
}

fn spill_all(dir: &Path, batches: &[RoutedBatch]) {
    let mut q = DiskQueue::open(dir, "bench", SpillOptions::default(), 0).unwrap();
    let mut encoded = Vec::new();
    for b in batches {
        encoded.clear();
        codec::encode_batch(&b.stream, &b.batch, &mut encoded);
        let record = segment::frame(&encoded, b.batch.len() as u32).unwrap();
        q.append(&record, b.batch.len() as u32, encoded.len() as u64)
            .unwrap();
    }
    q.close_active().unwrap();
}

fn replay_all(dir: &Path) -> usize {
    let mut q = DiskQueue::open(dir, "bench", SpillOptions::default(), 0).unwrap();
    let mut events = 0;
    while let Some(r) = q.next_record().unwrap() {
        events += codec::decode_batch(&r.encoded).unwrap().batch.len();
    }
    events
}

fn bench_spill(c: &mut Criterion) {
    let (batches, bytes) = encoded_batches(BATCHES);
    let mut g = c.benchmark_group("spill");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(bytes));
    g.bench_function("write_100k_points", |b| {
        b.iter_with_large_drop(|| {
            let dir = tempfile::tempdir().unwrap();
            spill_all(dir.path(), black_box(&batches));
            dir
        })
    });
    let dir = tempfile::tempdir().unwrap();
    spill_all(dir.path(), &batches);
    g.bench_function("replay_100k_points", |b| {
        b.iter(|| black_box(replay_all(dir.path())))
    });
    if let Ok(shm) = tempfile::tempdir_in("/dev/shm") {
        let (mut journal, _) =
            RamJournal::open(shm.path(), "host_metrics", shipd::memory::MAX_BATCH_MEMORY).unwrap();
        g.bench_function("ram_journal_then_ack_100k_points", |b| {
            b.iter_batched(
                || {
                    batches
                        .iter()
                        .map(|r| EventBatch {
                            events: r.batch.events.clone(),
                            bytes: r.batch.bytes,
                            source: Arc::clone(&r.batch.source),
                        })
                        .collect::<Vec<_>>()
                },
                |mut copies| {
                    for batch in &mut copies {
                        journal.add(batch);
                        ack_events(&batch.events);
                    }
                    copies
                },
                criterion::BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Fills a spill directory to the target size, then replays it while the
/// kernel tracks peak RSS (reset through /proc/self/clear_refs).
fn report_replay_memory() {
    let mib: u64 = std::env::var("SHIPD_BENCH_REPLAY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().unwrap();
    let opts = SpillOptions {
        max_bytes: (mib + 16) * 1024 * 1024,
        ..SpillOptions::default()
    };
    let mut q = DiskQueue::open(dir.path(), "bench", opts, 0).unwrap();
    let mut seed = 0u64;
    let mut encoded = Vec::new();
    let started = Instant::now();
    while q.bytes() < mib * 1024 * 1024 {
        let b = batch(seed);
        seed += 1;
        encoded.clear();
        codec::encode_batch(&b.stream, &b.batch, &mut encoded);
        let record = segment::frame(&encoded, POINTS as u32).unwrap();
        q.append(&record, POINTS as u32, encoded.len() as u64)
            .unwrap();
    }
    q.close_active().unwrap();
    let on_disk = q.bytes();
    drop(q);
    let wrote = started.elapsed();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let baseline = status_kib("VmRSS:");
    let started = Instant::now();
    let events = replay_all(dir.path());
    let replayed = started.elapsed();
    let peak = status_kib("VmHWM:");
    println!(
        "replay memory: {} MiB on disk ({seed} batches, {events} points, written in {:.1?}, replayed in {:.1?} = {:.0} MB/s on disk); \
         RSS before {} KiB, peak during replay {} KiB: growth {} KiB (one batch encoded ≈ {} KiB)",
        on_disk / (1024 * 1024),
        wrote,
        replayed,
        on_disk as f64 / replayed.as_secs_f64() / 1e6,
        baseline,
        peak,
        peak.saturating_sub(baseline),
        encoded.len() / 1024
    );
}

criterion_group!(benches, bench_spill);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|a| a == "--bench") {
        report_replay_memory();
    }
}
