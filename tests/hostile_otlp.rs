//! The OTLP receiver under hostile input, against the real shipd binary:
//! a 15 MB request of empty log records (each a 2-byte field that decodes
//! to a full record), 40 concurrent 15 MB bodies sent slowly and never
//! finished, a request of 160,000 resources, and a kill -9 after an
//! accepted request near the memory budget, and 600 idle connections
//! against the cap of 256. Peak memory is the VmHWM of
//! the shipd child; `/health` is timed all along to prove the runtime never
//! stalls.

mod common;
#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use common::{free_port, runtime, Shipd};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bound the issue sets for default settings.
const PEAK_LIMIT: u64 = 64 << 20;
/// How long `/health` may take to answer while the receiver works.
const HEALTH_LIMIT: Duration = Duration::from_secs(1);
/// The hostile body size of the issue.
const HOSTILE_BYTES: usize = 15_000_000;

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kib * 1024
}

fn peak_of(shipd: &Shipd) -> u64 {
    proc_status_bytes(shipd.child.id(), "VmHWM")
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Wire bytes of a request holding `n` empty log records in one scope of
/// one resource. The envelope is prost's encoding (checked on a small
/// request); the records are repeated as the 2 bytes prost writes for each.
fn empty_records_request(n: usize) -> Vec<u8> {
    let one = ScopeLogs {
        log_records: vec![LogRecord::default()],
        ..Default::default()
    }
    .encode_to_vec();
    assert_eq!(one, [0x12, 0x00], "an empty record is field 2, length 0");
    let wrap = |field: u32, inner: &[u8]| {
        let mut out = Vec::with_capacity(inner.len() + 11);
        encode_key(field, WireType::LengthDelimited, &mut out);
        encode_varint(inner.len() as u64, &mut out);
        out.extend_from_slice(inner);
        out
    };
    let scope_logs = one.repeat(n);
    let resource_logs = wrap(2, &scope_logs);
    drop(scope_logs);
    wrap(1, &resource_logs)
}

/// An empty-records request of about `bytes` on the wire.
fn empty_records_request_of(bytes: usize) -> Vec<u8> {
    empty_records_request((bytes - 16) / 2)
}

#[test]
fn empty_records_request_is_what_prost_decodes() {
    let wire = empty_records_request(3);
    let decoded = ExportLogsServiceRequest::decode(&wire[..]).unwrap();
    assert_eq!(decoded.resource_logs[0].scope_logs[0].log_records.len(), 3);
}

fn string_kv(key: &str, v: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    }
}

fn text_record(body: String) -> LogRecord {
    LogRecord {
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body)),
        }),
        attributes: vec![string_kv("http.route", "/api/orders".into())],
        ..Default::default()
    }
}

/// Realistic records of one service: `bodies` as nginx-like lines.
fn records_request(bodies: &[String]) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", "web".into())],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: bodies.iter().cloned().map(text_record).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn lines(tag: &str, n: usize) -> Vec<String> {
    common::nginx_lines(tag, n)
}

/// shipd with the OTLP receiver on free ports, shipping to `o2`; the RAM
/// journal in `/dev/shm` (kept across a restart in `runtime_dir`).
struct Agent {
    shipd: Shipd,
    http: SocketAddr,
    grpc: SocketAddr,
}

fn start_agent(o2: &str, dir: &Path, runtime_dir: &Path, extra: &[(&str, &str)]) -> Agent {
    let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut env = vec![
        ("OPENOBSERVE_URL", o2.to_owned()),
        ("OPENOBSERVE_ORG", "pis".to_owned()),
        ("OPENOBSERVE_USER", "root@example.com".to_owned()),
        ("OPENOBSERVE_PASSWORD", "Complexpass#123".to_owned()),
        ("SHIPD_DATA_DIR", dir.join("data").display().to_string()),
        ("SHIPD_RUNTIME_DIR", runtime_dir.display().to_string()),
        ("SHIPD_OTLP_RECEIVER", "on".to_owned()),
        ("SHIPD_OTLP_GRPC_ADDRESS", grpc.to_string()),
        ("SHIPD_OTLP_HTTP_ADDRESS", http.to_string()),
        ("SHIPD_BATCH_TIMEOUT", "100ms".to_owned()),
        ("SHIPD_RETRY_MAX", "500ms".to_owned()),
    ];
    for (k, v) in extra {
        env.push((k, (*v).to_owned()));
    }
    // One log per start: a restart must not find the last run's lines.
    let shipd = Shipd::start(&env, &dir.join(format!("shipd-{}.log", http.port())));
    assert!(
        shipd.wait_log("OTLP/HTTP receiver listening", Duration::from_secs(20))
            && shipd.wait_log("OTLP/gRPC receiver listening", Duration::from_secs(5)),
        "receiver did not start: {}",
        shipd.log()
    );
    Agent { shipd, http, grpc }
}

/// A RAM directory for the journal (tmpfs), removed with the test.
fn ram_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").expect("/dev/shm is a tmpfs")
}

/// Times `GET /health` every 50 ms on its own thread until dropped.
struct HealthWatch {
    stop: Arc<AtomicBool>,
    slowest_ms: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HealthWatch {
    fn start(api: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let slowest_ms = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let (stop, slowest_ms) = (Arc::clone(&stop), Arc::clone(&slowest_ms));
            move || {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let answered = health(api);
                    let took = started.elapsed().as_millis() as u64;
                    let took = if answered { took } else { u64::MAX };
                    slowest_ms.fetch_max(took, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        HealthWatch {
            stop,
            slowest_ms,
            thread: Some(thread),
        }
    }

    /// The slowest answer so far.
    fn slowest(&self) -> Duration {
        Duration::from_millis(self.slowest_ms.load(Ordering::SeqCst))
    }

    fn finish(mut self) -> Duration {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.slowest()
    }
}

/// Whether `GET /health` answered (any status) within 10 s.
fn health(api: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&api, Duration::from_secs(10)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// An answer of the OTLP/HTTP receiver.
struct Answer {
    status: u16,
    body: Vec<u8>,
    took: Duration,
}

fn post_logs(addr: SocketAddr, body: Vec<u8>) -> Answer {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("http://{addr}/v1/logs"))
            .header("content-type", "application/x-protobuf")
            .timeout(Duration::from_secs(50))
            .body(body)
            .send()
            .await
            .expect("the receiver answers");
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default().to_vec();
        Answer {
            status,
            body,
            took: started.elapsed(),
        }
    })
}

/// The message of a `google.rpc.Status` error body.
fn status_message(body: &[u8]) -> String {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    Status::decode(body)
        .map(|s| format!("code {}: {}", s.code, s.message))
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned())
}

#[test]
fn a_15_mb_request_of_empty_records_is_refused_with_413_without_expanding_in_memory() {
    let rt = runtime();
    let o2 = otlp_receiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let journal = ram_dir();
    let agent = start_agent(&o2.url(), dir.path(), journal.path(), &[]);
    let watch = HealthWatch::start(agent.shipd.api);
    let body = empty_records_request_of(HOSTILE_BYTES);
    let answer = post_logs(agent.http, body);
    let peak = peak_of(&agent.shipd);
    let slowest_health = watch.finish();
    println!(
        "15 MB of empty records over HTTP: {} after {:.2?} ({}); VmHWM {:.1} MiB; slowest /health {:?}",
        answer.status,
        answer.took,
        status_message(&answer.body),
        mib(peak),
        slowest_health
    );
    assert_eq!(answer.status, 413, "refused as too large");
    assert!(
        status_message(&answer.body).contains("memory"),
        "the message says why"
    );
    assert!(peak <= PEAK_LIMIT, "VmHWM {:.1} MiB", mib(peak));
    assert!(
        slowest_health <= HEALTH_LIMIT,
        "/health took {slowest_health:?}"
    );
    assert_eq!(
        agent
            .shipd
            .metric("shipd_otlp_refused_total{component=\"otlp\",reason=\"too_large\"}"),
        1
    );
    let journaled = std::fs::read_dir(journal.path().join("otlp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(journaled, 0, "nothing refused is journaled");

    // The same over gRPC: RESOURCE_EXHAUSTED with the reason.
    let request = ExportLogsServiceRequest::decode(&empty_records_request(200_000)[..]).unwrap();
    let grpc = rt.block_on(async {
        let mut client = LogsServiceClient::connect(format!("http://{}", agent.grpc))
            .await
            .expect("gRPC connects");
        client.export(request).await
    });
    let status = grpc.expect_err("refused over gRPC");
    println!("200,000 empty records over gRPC: {status:?}");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("memory"), "{}", status.message());

    // A normal request still goes through.
    let normal = lines("after-bomb", 100);
    let answer = post_logs(agent.http, records_request(&normal).encode_to_vec());
    assert_eq!(answer.status, 200);
    assert_eq!(o2.wait_for_lines(&normal, Duration::from_secs(20)), 0);
    let peak = peak_of(&agent.shipd);
    println!("VmHWM at the end {:.1} MiB", mib(peak));
    assert!(peak <= PEAK_LIMIT, "VmHWM {:.1} MiB", mib(peak));
}

/// Writes the head of a 15 MB request and then its body in 64 KiB pieces
/// as fast as shipd takes them, never the last KiB; gives up writing
/// when shipd stops reading for 2 s. Returns the socket (kept open) and
/// the bytes written.
fn slow_unfinished_body(addr: SocketAddr, body: Arc<Vec<u8>>, stop: Arc<AtomicBool>) -> u64 {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let head = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let mut written = 0u64;
    for piece in body[..body.len() - 1024].chunks(64 * 1024) {
        if stop.load(Ordering::SeqCst) || s.write_all(piece).is_err() {
            break;
        }
        written += piece.len() as u64;
        std::thread::sleep(Duration::from_millis(2));
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    written
}

#[test]
fn forty_unfinished_15_mb_bodies_hold_no_more_than_the_receive_budget_and_health_answers() {
    let rt = runtime();
    let o2 = otlp_receiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let journal = ram_dir();
    let agent = start_agent(&o2.url(), dir.path(), journal.path(), &[]);
    let watch = HealthWatch::start(agent.shipd.api);
    let body = Arc::new(empty_records_request_of(HOSTILE_BYTES));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let writers: Vec<_> = (0..40)
        .map(|_| {
            let (body, stop, addr) = (Arc::clone(&body), Arc::clone(&stop), agent.http);
            std::thread::spawn(move || slow_unfinished_body(addr, body, stop))
        })
        .collect();
    // While they hold their connections, an app's normal request is
    // answered (accepted, or refused as busy) and /health keeps answering.
    std::thread::sleep(Duration::from_secs(6));
    let normal = lines("during-flood", 50);
    let during = post_logs(agent.http, records_request(&normal).encode_to_vec());
    std::thread::sleep(Duration::from_secs(2));
    let peak = peak_of(&agent.shipd);
    let slowest_health = watch.slowest();
    stop.store(true, Ordering::SeqCst);
    let written: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let slowest_health = slowest_health.max(watch.finish());
    println!(
        "40 unfinished 15 MB bodies: {:.1} MB written in {:.1?}; a normal request meanwhile: {} after {:.2?} ({}); \
         VmHWM {:.1} MiB; slowest /health {:?}; refused busy {}",
        written as f64 / 1e6,
        started.elapsed(),
        during.status,
        during.took,
        status_message(&during.body),
        mib(peak),
        slowest_health,
        agent
            .shipd
            .metric("shipd_otlp_refused_total{component=\"otlp\",reason=\"busy\"}"),
    );
    assert!(peak <= PEAK_LIMIT, "VmHWM {:.1} MiB", mib(peak));
    assert!(
        slowest_health <= HEALTH_LIMIT,
        "/health took {slowest_health:?}"
    );
    assert!(
        during.status == 200 || during.status == 429,
        "a normal request is accepted or refused as busy, not {}",
        during.status
    );
    // Once the flood is gone, requests go through again.
    let after = lines("after-flood", 50);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = post_logs(agent.http, records_request(&after).encode_to_vec());
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 429, "{}", status_message(&answer.body));
        assert!(Instant::now() < deadline, "never accepted after the flood");
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut want = after;
    if during.status == 200 {
        want.extend(normal);
    }
    assert_eq!(o2.wait_for_lines(&want, Duration::from_secs(20)), 0);
}

#[test]
fn a_request_of_160k_resources_is_converted_and_journaled_in_linear_time_off_the_runtime() {
    const RESOURCES: usize = 160_000;
    let rt = runtime();
    let o2 = otlp_receiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let journal = ram_dir();
    // A budget that takes the whole request: this test is about time.
    let agent = start_agent(
        &o2.url(),
        dir.path(),
        journal.path(),
        &[("SHIPD_OTLP_MAX_REQUEST_MEMORY", "256MiB")],
    );
    let bodies: Vec<String> = (0..RESOURCES).map(|i| format!("r{i}")).collect();
    let request = ExportLogsServiceRequest {
        resource_logs: bodies
            .iter()
            .enumerate()
            .map(|(i, body)| ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![string_kv("service.name", format!("svc-{i}"))],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(body.clone())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec();
    let wire = request.len();
    let watch = HealthWatch::start(agent.shipd.api);
    let answer = post_logs(agent.http, request);
    let slowest_during_request = watch.slowest();
    let delivered_missing = o2.wait_for_lines(&bodies, Duration::from_secs(40));
    let slowest_health = watch.finish();
    println!(
        "{RESOURCES} resources ({:.1} MB): {} after {:.2?} ({}); slowest /health {:?} during the request, {:?} until delivered; \
         {} missing; VmHWM {:.1} MiB",
        wire as f64 / 1e6,
        answer.status,
        answer.took,
        status_message(&answer.body),
        slowest_during_request,
        slowest_health,
        delivered_missing,
        mib(peak_of(&agent.shipd)),
    );
    assert_eq!(answer.status, 200);
    assert!(
        answer.took < Duration::from_secs(5),
        "took {:?}",
        answer.took
    );
    assert!(
        slowest_health <= HEALTH_LIMIT,
        "/health took {slowest_health:?}"
    );
    assert_eq!(delivered_missing, 0);
}

/// Records that fill most of the default request memory budget.
fn near_budget_lines(tag: &str) -> Vec<String> {
    lines(tag, NEAR_BUDGET_RECORDS)
}

/// About 85 % of the default 8 MiB request budget (each record about 480
/// bytes in memory).
const NEAR_BUDGET_RECORDS: usize = 14_000;

#[test]
fn an_accepted_request_near_the_budget_comes_back_after_kill_9_within_the_memory_bound() {
    let rt = runtime();
    let o2 = otlp_receiver::start(&rt);
    o2.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let journal = ram_dir();
    let agent = start_agent(&o2.url(), dir.path(), journal.path(), &[]);
    let records = near_budget_lines("near-budget");
    let answer = post_logs(agent.http, records_request(&records).encode_to_vec());
    assert_eq!(answer.status, 200, "{}", status_message(&answer.body));
    let first_peak = peak_of(&agent.shipd);
    let journaled = std::fs::read_dir(journal.path().join("otlp"))
        .unwrap()
        .count();
    assert!(journaled > 0, "the accepted request is journaled");
    agent.shipd.kill9();

    o2.set_down(false);
    let restarted = start_agent(&o2.url(), dir.path(), journal.path(), &[]);
    let missing = o2.wait_for_lines(&records, Duration::from_secs(30));
    let peak = peak_of(&restarted.shipd);
    println!(
        "{} records near the budget: answered in {:.2?}, VmHWM {:.1} MiB; after kill -9 the restart replays them: \
         {missing} missing, VmHWM {:.1} MiB",
        records.len(),
        answer.took,
        mib(first_peak),
        mib(peak)
    );
    assert_eq!(
        missing, 0,
        "the journaled request is delivered after the restart"
    );
    assert!(first_peak <= PEAK_LIMIT, "VmHWM {:.1} MiB", mib(first_peak));
    assert!(
        peak <= PEAK_LIMIT,
        "VmHWM after restart {:.1} MiB",
        mib(peak)
    );
}

#[test]
fn a_journaled_request_over_the_budget_at_restart_is_set_aside_and_counted_not_replayed() {
    let rt = runtime();
    let o2 = otlp_receiver::start(&rt);
    o2.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let journal = ram_dir();
    let agent = start_agent(&o2.url(), dir.path(), journal.path(), &[]);
    let records = near_budget_lines("set-aside");
    let answer = post_logs(agent.http, records_request(&records).encode_to_vec());
    assert_eq!(answer.status, 200, "{}", status_message(&answer.body));
    agent.shipd.kill9();

    // The next start has a smaller budget than the entry needs.
    o2.set_down(false);
    let restarted = start_agent(
        &o2.url(),
        dir.path(),
        journal.path(),
        &[("SHIPD_OTLP_MAX_REQUEST_MEMORY", "1MiB")],
    );
    let normal = lines("after-restart", 20);
    let answer = post_logs(restarted.http, records_request(&normal).encode_to_vec());
    assert_eq!(answer.status, 200);
    assert_eq!(o2.wait_for_lines(&normal, Duration::from_secs(20)), 0);
    let set_aside = restarted
        .shipd
        .metric("shipd_events_dropped_total{component=\"otlp\",reason=\"journal_over_budget\"}");
    let rejected = std::fs::read_dir(journal.path().join("otlp").join("rejected"))
        .map(|d| d.count())
        .unwrap_or(0);
    let peak = peak_of(&restarted.shipd);
    println!(
        "journal entry of {} records over a 1 MiB budget at restart: {set_aside} events set aside in {rejected} file(s); \
         VmHWM {:.1} MiB",
        records.len(),
        mib(peak)
    );
    assert_eq!(set_aside, records.len() as u64);
    assert_eq!(rejected, 1, "the entry is kept aside for inspection");
    assert!(restarted.shipd.log().contains("over the memory budget"));
    let bodies: std::collections::HashSet<String> = o2.log_bodies().into_iter().collect();
    assert!(
        records.iter().all(|r| !bodies.contains(r)),
        "nothing set aside is sent"
    );
    assert!(peak <= PEAK_LIMIT, "VmHWM {:.1} MiB", mib(peak));
}

/// The receiver's default cap on connections held open at once.
const MAX_CONNECTIONS: u64 = 256;

#[test]
fn six_hundred_idle_connections_are_capped_at_256_and_requests_go_through_once_they_close() {
    let rt = runtime();
    let o2 = otlp_receiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let journal = ram_dir();
    let agent = start_agent(&o2.url(), dir.path(), journal.path(), &[]);
    let refused = "shipd_connections_refused_total{component=\"otlp\"}";
    let open = "shipd_connections_open{component=\"otlp\"}";
    let idle: Vec<TcpStream> = (0..300)
        .flat_map(|_| [agent.http, agent.grpc])
        .map(|addr| TcpStream::connect(addr).expect("the receiver accepts the TCP handshake"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent.shipd.metric(refused) < idle.len() as u64 - MAX_CONNECTIONS
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (held, closed) = (agent.shipd.metric(open), agent.shipd.metric(refused));
    println!(
        "{} idle connections: {held} held, {closed} closed at once",
        idle.len()
    );
    assert_eq!(held, MAX_CONNECTIONS, "both protocols share one cap");
    assert_eq!(
        closed,
        idle.len() as u64 - MAX_CONNECTIONS,
        "every other one refused and counted"
    );
    assert!(
        agent.shipd.log().contains("too many open connections"),
        "the refusal is logged"
    );
    assert!(health(agent.shipd.api), "the API still answers");
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent.shipd.metric(open) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        agent.shipd.metric(open),
        0,
        "closed connections free their slots"
    );
    let after = lines("after-idle-flood", 20);
    let answer = post_logs(agent.http, records_request(&after).encode_to_vec());
    assert_eq!(answer.status, 200, "{}", status_message(&answer.body));
    assert_eq!(o2.wait_for_lines(&after, Duration::from_secs(20)), 0);
    assert_eq!(agent.shipd.terminate(), Some(0));
}
