//! Test harness: in-process OTLP receivers (HTTP and gRPC) that record what
//! they accept and answer as a test script says, and a handle on the real
//! `shipd` binary.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Accept,
    /// Accept, reporting `n` records rejected with a message.
    Partial(i64, String),
    /// HTTP status (mapped to a gRPC code for the gRPC receiver).
    Fail(u16),
    /// This HTTP status with `Retry-After: secs` (gRPC: RESOURCE_EXHAUSTED).
    Throttle(u16, u64),
    /// The reply, sent after a delay (a slow receiver). An accepted request
    /// is recorded when it arrives, as a server that ingests first and
    /// answers late: a client giving up and re-sending shows as a duplicate.
    After(Duration, Box<Reply>),
}

impl Reply {
    /// Accepts, answering after `delay`.
    pub fn slow_accept(delay: Duration) -> Reply {
        Reply::After(delay, Box::new(Reply::Accept))
    }

    /// The total delay and the reply it wraps (never `After`).
    pub fn delayed(self) -> (Duration, Reply) {
        match self {
            Reply::After(delay, inner) => {
                let (more, reply) = inner.delayed();
                (delay + more, reply)
            }
            reply => (Duration::ZERO, reply),
        }
    }
}

/// Decides the reply from the request's index (0-based) and time since the first request.
pub type Script = Arc<dyn Fn(usize, Duration) -> Reply + Send + Sync>;

pub fn always_accept() -> Script {
    Arc::new(|_, _| Reply::Accept)
}

/// One accepted request.
#[derive(Debug, Clone)]
pub struct Captured {
    pub headers: HashMap<String, String>,
    /// The body as received on the wire (compressed for HTTP).
    pub wire: Vec<u8>,
    pub request: ExportLogsServiceRequest,
}

#[derive(Default)]
pub struct Log {
    pub accepted: Mutex<Vec<Captured>>,
    pub attempts: AtomicUsize,
    pub first: Mutex<Option<Instant>>,
}

impl Log {
    fn next(&self) -> (usize, Duration) {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst);
        let mut first = self.first.lock().unwrap();
        let since = first.get_or_insert_with(Instant::now).elapsed();
        (n, since)
    }
}

/// A running receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    pub log: Arc<Log>,
}

impl Receiver {
    /// Bodies of every accepted record, in arrival order.
    pub fn bodies(&self) -> Vec<String> {
        self.records().into_iter().map(|r| r.body).collect()
    }

    pub fn records(&self) -> Vec<Record> {
        let accepted = self.log.accepted.lock().unwrap();
        accepted
            .iter()
            .flat_map(|c| records_of(&c.request))
            .collect()
    }

    pub fn count(&self) -> usize {
        let accepted = self.log.accepted.lock().unwrap();
        accepted
            .iter()
            .map(|c| {
                c.request
                    .resource_logs
                    .iter()
                    .flat_map(|r| &r.scope_logs)
                    .map(|s| s.log_records.len())
                    .sum::<usize>()
            })
            .sum()
    }

    pub fn captured(&self) -> Vec<Captured> {
        self.log.accepted.lock().unwrap().clone()
    }

    /// Waits until at least `n` records were accepted.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.count();
            if got >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every line of `expected` was accepted at least once
    /// (a count alone is reached early when a restart re-sends some);
    /// returns how many are still missing.
    pub fn wait_for_all(&self, expected: &[String], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let bodies: std::collections::HashSet<String> = self.bodies().into_iter().collect();
            let missing = expected.iter().filter(|l| !bodies.contains(*l)).count();
            if missing == 0 || Instant::now() > deadline {
                return missing;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A decoded log record, flattened for assertions.
#[derive(Debug, Clone)]
pub struct Record {
    pub body: String,
    pub time_unix_nano: u64,
    pub attributes: HashMap<String, any_value::Value>,
    pub resource: HashMap<String, any_value::Value>,
}

impl Record {
    pub fn attr_str(&self, key: &str) -> Option<String> {
        match self.attributes.get(key) {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

pub fn records_of(req: &ExportLogsServiceRequest) -> Vec<Record> {
    let kv = |attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
        attrs
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?.value?)))
            .collect::<HashMap<_, _>>()
    };
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        let resource = rl
            .resource
            .as_ref()
            .map(|r| kv(&r.attributes))
            .unwrap_or_default();
        for sl in &rl.scope_logs {
            for lr in &sl.log_records {
                let body = match lr.body.as_ref().and_then(|b| b.value.clone()) {
                    Some(any_value::Value::StringValue(s)) => s,
                    Some(any_value::Value::BytesValue(b)) => {
                        String::from_utf8_lossy(&b).into_owned()
                    }
                    other => format!("{other:?}"),
                };
                out.push(Record {
                    body,
                    time_unix_nano: lr.time_unix_nano,
                    attributes: kv(&lr.attributes),
                    resource: resource.clone(),
                });
            }
        }
    }
    out
}

fn decompress(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    match encoding {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("valid gzip body");
            out
        }
        Some("zstd") => zstd::decode_all(body).expect("valid zstd body"),
        _ => body.to_vec(),
    }
}

struct HttpState {
    log: Arc<Log>,
    script: Script,
}

async fn http_logs(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let (n, since) = state.log.next();
    let (delay, reply) = (state.script)(n, since).delayed();
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or("<binary>").to_owned(),
            )
        })
        .collect();
    let raw = decompress(headers.get("content-encoding").map(String::as_str), &body);
    let request = match ExportLogsServiceRequest::decode(&raw[..]) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("bad protobuf: {e}").into_bytes(),
            )
                .into_response()
        }
    };
    let answer = match reply {
        Reply::Fail(code) => (
            StatusCode::from_u16(code).unwrap(),
            b"scripted failure".to_vec(),
        )
            .into_response(),
        Reply::Throttle(code, secs) => (
            StatusCode::from_u16(code).unwrap(),
            [(axum::http::header::RETRY_AFTER, secs.to_string())],
            b"slow down".to_vec(),
        )
            .into_response(),
        Reply::After(..) => unreachable!("delayed() unwraps every After"),
        Reply::Accept | Reply::Partial(..) => {
            let partial = match reply {
                Reply::Partial(rejected, message) => Some(ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message: message,
                }),
                _ => None,
            };
            state.log.accepted.lock().unwrap().push(Captured {
                headers,
                wire: body.to_vec(),
                request,
            });
            let resp = ExportLogsServiceResponse {
                partial_success: partial,
            };
            (StatusCode::OK, resp.encode_to_vec()).into_response()
        }
    };
    tokio::time::sleep(delay).await;
    answer
}

/// Serves `app` on a free port of 127.0.0.1 for the rest of the test.
pub fn serve_http(rt: &tokio::runtime::Runtime, app: axum::Router) -> std::net::SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Starts an OTLP/HTTP receiver on 127.0.0.1 serving `/api/{org}/v1/logs`.
pub fn http_receiver(rt: &tokio::runtime::Runtime, script: Script) -> Receiver {
    http_receiver_at(rt, "/api/{org}/v1/logs", script)
}

/// Starts an OTLP/HTTP receiver on 127.0.0.1 serving logs at `path` (an
/// axum route: `{name}` matches one segment).
pub fn http_receiver_at(rt: &tokio::runtime::Runtime, path: &str, script: Script) -> Receiver {
    let log = Arc::new(Log::default());
    let state = Arc::new(HttpState {
        log: Arc::clone(&log),
        script,
    });
    let app = axum::Router::new()
        .route(path, axum::routing::post(http_logs))
        .with_state(state);
    let addr = serve_http(rt, app);
    Receiver { addr, log }
}

struct GrpcLogs {
    log: Arc<Log>,
    script: Script,
}

#[tonic::async_trait]
impl LogsService for GrpcLogs {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let (n, since) = self.log.next();
        let headers: HashMap<String, String> = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or("<binary>").to_owned(),
                )
            })
            .collect();
        let (delay, reply) = (self.script)(n, since).delayed();
        let answer = match reply {
            Reply::Fail(code) => Err(match code {
                400 => tonic::Status::invalid_argument("scripted failure"),
                401 => tonic::Status::unauthenticated("scripted failure"),
                429 => tonic::Status::resource_exhausted("scripted failure"),
                _ => tonic::Status::unavailable("scripted failure"),
            }),
            Reply::Throttle(..) => Err(tonic::Status::resource_exhausted("scripted throttle")),
            reply => {
                let request = request.into_inner();
                self.log.accepted.lock().unwrap().push(Captured {
                    headers,
                    wire: request.encode_to_vec(),
                    request,
                });
                let partial_success = match reply {
                    Reply::Partial(rejected, message) => Some(ExportLogsPartialSuccess {
                        rejected_log_records: rejected,
                        error_message: message,
                    }),
                    _ => None,
                };
                Ok(tonic::Response::new(ExportLogsServiceResponse {
                    partial_success,
                }))
            }
        };
        tokio::time::sleep(delay).await;
        answer
    }
}

/// Starts an OTLP/gRPC receiver on 127.0.0.1 accepting gzip and zstd.
pub fn grpc_receiver(rt: &tokio::runtime::Runtime, script: Script) -> Receiver {
    let log = Arc::new(Log::default());
    let svc = LogsServiceServer::new(GrpcLogs {
        log: Arc::clone(&log),
        script,
    })
    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
    .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
    .max_decoding_message_size(16 * 1024 * 1024);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap()
    });
    Receiver { addr, log }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real shipd binary, its stderr captured to a file.
/// A command that runs one of this crate's binaries: through
/// `SHIPD_TEST_EXEC_WRAPPER` when it is set (a cross-compiled run under
/// qemu-user, where binfmt_misc may be absent so the binary cannot be
/// executed directly), else directly.
pub fn program_command(program: &str) -> Command {
    let wrapper = std::env::var("SHIPD_TEST_EXEC_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    match words.next() {
        Some(runner) => {
            let mut cmd = Command::new(runner);
            cmd.args(words).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// What a shipd child is confined to (tests of exhausted resources).
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildLimits {
    /// RLIMIT_NOFILE of the child, soft and hard (`ulimit -n`).
    pub open_files: Option<u64>,
    /// Run as this uid and gid (a root test run where permissions must bite).
    pub user: Option<(u32, u32)>,
}

impl ChildLimits {
    fn apply(self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        if let Some(n) = self.open_files {
            let limit = rustix::process::Rlimit {
                current: Some(n),
                maximum: Some(n),
            };
            // SAFETY: setrlimit is one system call, async-signal-safe, and
            // touches no memory of the parent.
            unsafe {
                cmd.pre_exec(move || {
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                        .map_err(std::io::Error::from)
                });
            }
        }
    }
}

pub struct Shipd {
    pub child: Child,
    pub log_path: PathBuf,
    pub api: SocketAddr,
    /// The control socket (next to the log unless `env` names one).
    pub control_socket: PathBuf,
}

impl Shipd {
    /// Starts shipd with `env` on top of a minimal environment. The API listens
    /// on a free port; stderr goes to `log_path`.
    pub fn start(env: &[(&str, String)], log_path: &Path) -> Shipd {
        Shipd::start_with_args(&[], env, log_path)
    }

    /// Like [`Shipd::start`], with command-line arguments (`--config FILE`).
    pub fn start_with_args(args: &[&str], env: &[(&str, String)], log_path: &Path) -> Shipd {
        Shipd::start_confined(args, env, log_path, ChildLimits::default())
    }

    /// Like [`Shipd::start_with_args`], the child confined by `limits`.
    pub fn start_confined(
        args: &[&str],
        env: &[(&str, String)],
        log_path: &Path,
        limits: ChildLimits,
    ) -> Shipd {
        let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap();
        let mut cmd = program_command(env!("CARGO_BIN_EXE_shipd"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("SHIPD_API_ADDR", api.to_string())
            .env("SHIPD_HOSTNAME", "test-node")
            // The host journal must never leak into tests; tests of the
            // journald source name their journal directory explicitly.
            .env("SHIPD_JOURNALD", "off")
            // Tests that want host metrics turn them on; the others count
            // only their own log records.
            .env("SHIPD_METRICS_INTERVAL", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // Each test owns its control socket; none touches /run/shipd.
        let mut control_socket = log_path.with_extension("sock");
        cmd.env("SHIPD_CONTROL_SOCKET", &control_socket);
        for (k, v) in env {
            cmd.env(k, v);
            if *k == "SHIPD_CONTROL_SOCKET" {
                control_socket = PathBuf::from(v);
            }
        }
        limits.apply(&mut cmd);
        let child = cmd.spawn().expect("shipd starts");
        Shipd {
            child,
            log_path: log_path.to_path_buf(),
            api,
            control_socket,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Polls `GET /health` until it answers 200 or `timeout` passes; returns
    /// the last status. A receiver counts a batch before shipd has read the
    /// answer, so shipd's own view of the sink catches up a moment later.
    pub fn wait_healthy(&self, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        let mut status = http_get(self.api, "/health").0;
        while status != 200 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            status = http_get(self.api, "/health").0;
        }
        status
    }

    /// `GET /metrics` from the running agent.
    pub fn metrics(&self) -> String {
        http_get(self.api, "/metrics").1
    }

    /// The value of one metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, series: &str) -> u64 {
        self.metrics()
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Sends SIGTERM and waits for exit; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "shipd did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Shipd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET returning (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::Write;
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Appends `lines` to `path`, in chunks with short pauses (a live writer).
pub fn append_lines(path: &Path, lines: &[String], chunk: usize, pause: Duration) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for part in lines.chunks(chunk) {
        let mut text = String::new();
        for l in part {
            text.push_str(l);
            text.push('\n');
        }
        f.write_all(text.as_bytes()).unwrap();
        f.flush().unwrap();
        std::thread::sleep(pause);
    }
}

/// `n` distinct, realistic lines tagged with `tag`.
pub fn nginx_lines(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "10.0.{}.{} - - [25/Nov/2026:10:00:00 +0000] \"GET /api/{tag}/{i} HTTP/1.1\" 200 {} \"-\" \"curl/8.0\"",
                i % 256,
                (i / 256) % 256,
                100 + i % 900
            )
        })
        .collect()
}

/// Environment for shipd shipping one file to `receiver` over `transport`.
pub fn ship_env(
    receiver: &Receiver,
    transport: &str,
    files: &str,
    data_dir: &Path,
) -> Vec<(&'static str, String)> {
    let url = receiver.url();
    let mut env = vec![
        ("SHIPD_LOG_FILES", files.to_owned()),
        ("SHIPD_DATA_DIR", data_dir.display().to_string()),
        ("OPENOBSERVE_ORG", "pis".to_owned()),
        ("OPENOBSERVE_USER", "root@example.com".to_owned()),
        ("OPENOBSERVE_PASSWORD", "Complexpass#123".to_owned()),
        ("OPENOBSERVE_STREAM", "Node-Logs".to_owned()),
        ("OPENOBSERVE_TRANSPORT", transport.to_owned()),
        ("SHIPD_BATCH_TIMEOUT", "200ms".to_owned()),
        ("SHIPD_POLL_INTERVAL", "50ms".to_owned()),
        ("SHIPD_GLOB_INTERVAL", "200ms".to_owned()),
        ("SHIPD_RETRY_MAX", "1s".to_owned()),
    ];
    if transport == "grpc" {
        env.push(("OPENOBSERVE_URL", "http://127.0.0.1:9".to_owned()));
        env.push(("OPENOBSERVE_GRPC_URL", url));
    } else {
        env.push(("OPENOBSERVE_URL", url));
    }
    env
}

/// Lines written but not delivered, and deliveries beyond the first.
pub struct Tally {
    pub missing: usize,
    pub duplicates: usize,
    pub unexpected: usize,
}

pub fn tally(bodies: &[String], expected: &[String]) -> Tally {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for b in bodies {
        *seen.entry(b.as_str()).or_default() += 1;
    }
    let missing = expected
        .iter()
        .filter(|l| !seen.contains_key(l.as_str()))
        .count();
    let wanted: std::collections::HashSet<&str> = expected.iter().map(String::as_str).collect();
    let unexpected = seen.keys().filter(|b| !wanted.contains(*b)).count();
    Tally {
        missing,
        duplicates: bodies.len() - seen.len(),
        unexpected,
    }
}
