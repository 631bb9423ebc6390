//! Whole-path throughput: a file of nginx access-log lines → shipd (file
//! source, processing stage, router, OpenObserve OTLP/HTTP sink) → an
//! OTLP/HTTP receiver on loopback, once with gzip and once with zstd bodies.
//!
//! Each criterion iteration is one complete agent run, in process: a fresh
//! data directory, a fresh tokio runtime shaped like the daemon's (2 workers,
//! 16 blocking threads), `topology::run` from start-up until the receiver has
//! counted every record, then the orderly shutdown (drain, final checkpoint).
//! The measured time is that wall time (start-up and the ≤ 100 ms batch
//! timeout of the last partial batch included); throughput is raw log bytes.
//!
//! CPU: the receiver runs on its own single-threaded tokio runtime in its own
//! thread, so its cost (decompressing every body and walking the protobuf)
//! can be read from that thread's `/proc/self/task/<tid>/stat` and subtracted
//! from the whole process's `/proc/self/stat` (utime + stime, 100 ticks per
//! second assumed, 10 ms resolution). "agent CPU" is what remains: shipd's
//! own work plus the bench harness (negligible). The receiver still competes
//! for the same 2 cores, so wall-clock throughput is pessimistic on a 2-core
//! machine.
//!
//! Run with `cargo bench --bench pipeline`.

mod common;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header::CONTENT_ENCODING, HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use common::NginxLines;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use shipd::config::AgentConfig;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const LINES: u64 = 200_000;
/// Give up on a run that has not delivered everything by then.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Assumed `sysconf(_SC_CLK_TCK)`; 100 on every Linux platform shipd targets.
const TICKS_PER_SECOND: f64 = 100.0;

// ---------------------------------------------------------------- receiver

struct Receiver {
    addr: SocketAddr,
    /// Log records received so far (cumulative over all runs).
    count: watch::Receiver<u64>,
    /// Thread id of the receiver's only thread.
    tid: u32,
}

#[derive(Clone)]
struct Ingest {
    count: Arc<watch::Sender<u64>>,
    cross_checked: Arc<AtomicBool>,
}

/// Starts the receiver on its own thread and single-threaded runtime.
fn start_receiver() -> Receiver {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (count_tx, count_rx) = watch::channel(0u64);
    std::thread::Builder::new()
        .name("o2-receiver".into())
        .spawn(move || {
            let tid = current_tid();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind receiver");
                ready_tx
                    .send((listener.local_addr().expect("local addr"), tid))
                    .expect("bench alive");
                let state = Ingest {
                    count: Arc::new(count_tx),
                    cross_checked: Arc::new(AtomicBool::new(false)),
                };
                let app = axum::Router::new()
                    .route("/api/default/v1/logs", post(ingest))
                    .layer(DefaultBodyLimit::disable())
                    .with_state(state);
                axum::serve(listener, app).await.expect("receiver serves");
            });
        })
        .expect("spawn receiver thread");
    let (addr, tid) = ready_rx.recv().expect("receiver started");
    Receiver {
        addr,
        count: count_rx,
        tid,
    }
}

/// Answers 200 with an empty body (full success) after counting the records.
async fn ingest(State(state): State<Ingest>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let raw = match headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None => body.to_vec(),
        Some(b"gzip") => {
            let mut out = Vec::with_capacity(body.len() * 8);
            if flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .is_err()
            {
                return StatusCode::BAD_REQUEST;
            }
            out
        }
        Some(b"zstd") => match zstd::stream::decode_all(&body[..]) {
            Ok(out) => out,
            Err(_) => return StatusCode::BAD_REQUEST,
        },
        Some(_) => return StatusCode::UNSUPPORTED_MEDIA_TYPE,
    };
    let Some(n) = shipd::cli::bench::receiver::count_log_records(&raw) else {
        return StatusCode::BAD_REQUEST;
    };
    // Once, check the cheap count against a full decode.
    if !state.cross_checked.swap(true, Ordering::Relaxed) {
        let request = ExportLogsServiceRequest::decode(&raw[..]).expect("valid OTLP request");
        let decoded: usize = request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        assert_eq!(decoded as u64, n, "wire-level count disagrees with prost");
    }
    state.count.send_modify(|c| *c += n);
    StatusCode::OK
}

// ---------------------------------------------------------------- CPU time

/// The calling thread's id, from the `/proc/thread-self` link (`<pid>/task/<tid>`).
fn current_tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("thread id in /proc/thread-self")
}

/// utime + stime in seconds from a `/proc/.../stat` file.
fn cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).expect("read /proc stat");
    // Fields after the parenthesised command name start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let after_comm = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / TICKS_PER_SECOND
}

fn process_cpu() -> f64 {
    cpu_seconds("/proc/self/stat")
}

fn thread_cpu(tid: u32) -> f64 {
    cpu_seconds(&format!("/proc/self/task/{tid}/stat"))
}

// ---------------------------------------------------------------- runs

/// Measurements of one agent run.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: Duration,
    /// From start-up until the receiver had every record.
    delivered: Duration,
    /// Whole process minus the receiver thread.
    agent_cpu: f64,
    receiver_cpu: f64,
}

/// Writes `LINES` nginx lines to `path`; returns the file size.
fn write_log(path: &Path) -> u64 {
    let mut gen = NginxLines::new(0x5eed);
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).expect("create log file"),
    );
    let mut line = String::with_capacity(512);
    for _ in 0..LINES {
        line.clear();
        gen.next_line(&mut line);
        line.push('\n');
        out.write_all(line.as_bytes()).expect("write log file");
    }
    out.flush().expect("flush log file");
    std::fs::metadata(path).expect("log file size").len()
}

/// One full agent run over `log` with a fresh data directory under `work`.
fn run_agent(log: &Path, work: &Path, compression: &str, receiver: &Receiver) -> Run {
    let data_dir = tempfile::tempdir_in(work).expect("data dir");
    let log = log.to_str().expect("utf-8 path");
    let data = data_dir.path().to_str().expect("utf-8 path");
    let url = format!("http://{}", receiver.addr);
    let pipeline = format!(
        r#"settings {{ data_dir = "{data}", api_addr = "off", control_socket = "off", hostname = "pi-node-03" }}
source files = files {{ include = ["{log}"], read_from = "beginning" }}
sink o2 = openobserve {{ url = "{url}", compression = "{compression}", batch.timeout = 100ms }}
route {{ else => o2 }}
"#
    );
    let cfg: AgentConfig = shipd::lang::load(&pipeline)
        .map(|p| p.agent)
        .unwrap_or_else(|d| panic!("{}", shipd::lang::render("bench.ship", &pipeline, &d)));

    let mut count = receiver.count.clone();
    let target = *count.borrow() + LINES;
    let (process0, receiver0) = (process_cpu(), thread_cpu(receiver.tid));
    let delivered_at = std::cell::Cell::new(None);
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("shipd-agent")
        .enable_all()
        .build()
        .expect("agent runtime");
    runtime
        .block_on(shipd::pipeline::topology::run(cfg, async {
            let _ = tokio::time::timeout(RUN_TIMEOUT, count.wait_for(|c| *c >= target)).await;
            delivered_at.set(Some(Instant::now()));
        }))
        .expect("agent starts");
    let wall = started.elapsed();
    drop(runtime);
    let (process1, receiver1) = (process_cpu(), thread_cpu(receiver.tid));

    let got = *receiver.count.borrow() + LINES - target;
    assert_eq!(
        got, LINES,
        "receiver got {got} of {LINES} records (timeout, loss or duplicates)"
    );
    let receiver_cpu = receiver1 - receiver0;
    Run {
        wall,
        delivered: delivered_at.get().map_or(wall, |t| t - started),
        agent_cpu: (process1 - process0) - receiver_cpu,
        receiver_cpu,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn bench_pipeline(c: &mut Criterion) {
    let work = tempfile::tempdir().expect("work dir");
    let log: PathBuf = work.path().join("access.log");
    let size = write_log(&log);
    let receiver = start_receiver();
    eprintln!(
        "pipeline: {LINES} lines, {:.1} MB raw log at {}; receiver on {}",
        size as f64 / 1e6,
        log.display(),
        receiver.addr
    );

    let mut group = c.benchmark_group("file_to_otlp_http");
    group
        .throughput(Throughput::Bytes(size))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15));
    for compression in ["gzip", "zstd"] {
        let mut runs: Vec<Run> = Vec::new();
        group.bench_function(compression, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = run_agent(&log, work.path(), compression, &receiver);
                    total += run.wall;
                    runs.push(run);
                }
                total
            })
        });
        let gb = size as f64 / 1e9;
        let mbps = median(
            runs.iter()
                .map(|r| size as f64 / 1e6 / r.wall.as_secs_f64())
                .collect(),
        );
        let agent = median(runs.iter().map(|r| r.agent_cpu / gb).collect());
        let recv = median(runs.iter().map(|r| r.receiver_cpu / gb).collect());
        let delivery = median(
            runs.iter()
                .map(|r| size as f64 / 1e6 / r.delivered.as_secs_f64())
                .collect(),
        );
        let shutdown_ms = median(
            runs.iter()
                .map(|r| (r.wall - r.delivered).as_secs_f64() * 1e3)
                .collect(),
        );
        let cores = median(
            runs.iter()
                .map(|r| r.agent_cpu / r.wall.as_secs_f64())
                .collect(),
        );
        eprintln!(
            "pipeline {compression}: median over {} runs (warm-up included): {mbps:.1} MB/s raw log, \
             start to last record {delivery:.1} MB/s, shutdown {shutdown_ms:.0} ms; agent CPU {agent:.2} s/GB \
             ({cores:.2} cores busy), receiver CPU {recv:.2} s/GB (excluded)",
            runs.len()
        );
    }
    group.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
