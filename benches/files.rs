//! The file source's own costs.
//!
//! - `split/*`: line splitting of a 256 MiB file of nginx access-log lines
//!   generated in a temp dir: `in_memory` is `LineSplitter` alone over 256 KiB
//!   chunks already in memory; `read_and_split` adds the `read(2)` calls (file
//!   in the page cache) — the raw tail throughput.
//! - `source/to_channel`: the whole file source (read, split, a `LogRecord`
//!   per line, batches with acks) tailing 64 MiB into a channel drained by a
//!   consumer, from start-up until every line is out.
//! - idle CPU: after the criterion groups, a file source watches 2,000 small
//!   files (all read) for 10 s with default intervals; the process's
//!   utime + stime from `/proc/self/stat` over that window is printed as a
//!   share of one core (10 ms resolution, 100 ticks per second assumed).
//!
//! Run with `cargo bench --bench files`.

mod common;

use bytes::{Bytes, BytesMut};
use common::NginxLines;
use criterion::{criterion_group, Criterion, Throughput};
use shipd::pipeline::channel::batch_channel;
use shipd::pipeline::checkpoint::Checkpointer;
use shipd::sources::file::{FileSource, FileSourceConfig, LineSplitter, ReadFrom, SourceContext};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const SPLIT_FILE_BYTES: usize = 256 * 1024 * 1024;
const SOURCE_FILE_BYTES: usize = 64 * 1024 * 1024;
const CHUNK: usize = 256 * 1024;
const IDLE_FILES: usize = 2000;
const IDLE_WINDOW: Duration = Duration::from_secs(10);
const TICKS_PER_SECOND: f64 = 100.0;

/// Writes about `bytes` of nginx lines to `path`; returns (bytes, lines).
fn generate(path: &Path, bytes: usize) -> (usize, u64) {
    let mut gen = NginxLines::new(0xf11e);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let (mut written, mut lines) = (0, 0u64);
    let mut line = String::with_capacity(256);
    while written < bytes {
        line.clear();
        gen.next_line(&mut line);
        line.push('\n');
        out.write_all(line.as_bytes()).unwrap();
        written += line.len();
        lines += 1;
    }
    out.flush().unwrap();
    (written, lines)
}

fn split_all(chunks: &[Bytes]) -> u64 {
    let mut splitter = LineSplitter::new(256 * 1024, 0);
    let mut out = Vec::with_capacity(4096);
    let mut n = 0;
    for c in chunks {
        splitter.push(c.clone(), &mut out);
        n += out.len() as u64;
        out.clear();
    }
    n
}

fn read_and_split(path: &Path) -> u64 {
    let mut file = std::fs::File::open(path).unwrap();
    let mut splitter = LineSplitter::new(256 * 1024, 0);
    let mut buf = BytesMut::new();
    let mut out = Vec::with_capacity(4096);
    let mut n = 0;
    loop {
        buf.resize(CHUNK, 0);
        let got = file.read(&mut buf[..]).unwrap();
        if got == 0 {
            return n;
        }
        buf.truncate(got);
        splitter.push(buf.split().freeze(), &mut out);
        n += out.len() as u64;
        out.clear();
    }
}

fn bench_split(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.log");
    let (bytes, lines) = generate(&path, SPLIT_FILE_BYTES);
    let data = std::fs::read(&path).unwrap();
    let data = Bytes::from(data);
    let chunks: Vec<Bytes> = (0..data.len())
        .step_by(CHUNK)
        .map(|i| data.slice(i..(i + CHUNK).min(data.len())))
        .collect();
    let mut g = c.benchmark_group("split");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("in_memory", |b| {
        b.iter(|| assert_eq!(split_all(&chunks), lines))
    });
    g.bench_function("read_and_split", |b| {
        b.iter(|| assert_eq!(read_and_split(&path), lines))
    });
    g.finish();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs a file source over `include` until `lines` events came out (or
/// forever, if `lines` is None, until `stop`); returns the source's handles.
struct Running {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    consumer: tokio::task::JoinHandle<u64>,
    _data: tempfile::TempDir,
}

fn start_source(rt: &tokio::runtime::Runtime, include: Vec<String>, until: Option<u64>) -> Running {
    let data = tempfile::tempdir().unwrap();
    let checkpointer = Checkpointer::open(
        data.path(),
        &shipd::pipeline::checkpoint::CheckpointSettings::disk_only(Duration::from_secs(5)),
    )
    .unwrap();
    let (tx, mut rx) = batch_channel(4 * 1024 * 1024);
    let cancel = CancellationToken::new();
    let mut cfg = FileSourceConfig::new("bench", include);
    cfg.read_from = ReadFrom::Beginning;
    let ctx = SourceContext {
        unreplayable: shipd::buffer::journal::JournaledSender::new(tx.clone(), None),
        out: tx,
        checkpointer,
        cancel: cancel.clone(),
        host_name: "bench".into(),
    };
    let _guard = rt.enter();
    let task = FileSource::new(cfg, ctx).spawn();
    let consumer = rt.spawn(async move {
        let mut n = 0u64;
        while let Some(batch) = rx.recv().await {
            n += batch.item.len() as u64;
            if until.is_some_and(|u| n >= u) {
                break;
            }
        }
        n
    });
    Running {
        cancel,
        task,
        consumer,
        _data: data,
    }
}

fn bench_source(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tail.log");
    let (bytes, lines) = generate(&path, SOURCE_FILE_BYTES);
    let rt = runtime();
    let mut g = c.benchmark_group("source");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("to_channel", |b| {
        b.iter(|| {
            let run = start_source(&rt, vec![path.display().to_string()], Some(lines));
            let got = rt.block_on(run.consumer).unwrap();
            assert_eq!(got, lines);
            run.cancel.cancel();
            rt.block_on(run.task).unwrap();
        })
    });
    g.finish();
}

fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / TICKS_PER_SECOND
}

/// CPU of a file source watching 2,000 idle files, as a share of one core.
fn idle_cpu_report() {
    let dir = tempfile::tempdir().unwrap();
    let files: PathBuf = dir.path().join("idle");
    std::fs::create_dir(&files).unwrap();
    for i in 0..IDLE_FILES {
        std::fs::write(
            files.join(format!("svc-{i:04}.log")),
            format!("service {i} started and is now idle\n"),
        )
        .unwrap();
    }
    let rt = runtime();
    let run = start_source(
        &rt,
        vec![format!("{}/*.log", files.display())],
        Some(IDLE_FILES as u64),
    );
    let got = rt.block_on(run.consumer).unwrap();
    assert_eq!(got, IDLE_FILES as u64, "every file read once");
    // Let start-up work settle, then measure the idle window.
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, t0) = (process_cpu_seconds(), Instant::now());
    std::thread::sleep(IDLE_WINDOW);
    let (cpu1, wall) = (process_cpu_seconds(), t0.elapsed());
    run.cancel.cancel();
    rt.block_on(run.task).unwrap();
    let share = (cpu1 - cpu0) / wall.as_secs_f64() * 100.0;
    println!(
        "idle/2000_files: {:.2} s CPU in {:.1} s = {share:.2} % of one core (default poll 1 s, glob 10 s, inotify on)",
        cpu1 - cpu0,
        wall.as_secs_f64()
    );
}

criterion_group!(benches, bench_split, bench_source);

fn main() {
    benches();
    idle_cpu_report();
    Criterion::default().configure_from_args().final_summary();
}
