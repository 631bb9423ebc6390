//! Peers that answer too much, against the real `shipd` and `shipctl`: a
//! sink answering 200 with a 1 GiB body, a scrape target serving 500 MB, one
//! serving 500,000 series, an nginx in front of the receiver refusing bodies
//! over 16 KiB (413), a search answer of 1 GiB, and OpenObserve URLs that
//! would make wrong request paths.
//! Huge bodies are generated lazily, chunk by chunk, as shipd reads them:
//! nothing here allocates them. Peak memory is the shipd child's VmHWM.

mod common;

#[path = "support/nginx_tls.rs"]
mod nginx_tls;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{nginx_lines, records_of, runtime, serve_http, tally, Shipd};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// The bound on shipd's peak resident memory with default settings.
const PEAK_BOUND: u64 = 64 * MIB;
/// How long any wait below may take.
const WAIT: Duration = Duration::from_secs(30);

/// A `kB` line of `/proc/PID/status`, in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kib * 1024
}

fn peak_rss(shipd: &Shipd) -> u64 {
    proc_status_bytes(shipd.child.id(), "VmHWM")
}

/// A body of `total` bytes made of `chunk` repeated (the last one cut),
/// produced only as the client reads it; `served` counts what was handed
/// to the connection.
fn lazy_body(chunk: Bytes, total: u64, served: Arc<AtomicU64>) -> Body {
    let size = chunk.len() as u64;
    let chunks = total.div_ceil(size);
    let stream = tokio_stream::iter((0..chunks).map(move |i| {
        let len = size.min(total - i * size) as usize;
        served.fetch_add(len as u64, Ordering::Relaxed);
        Ok::<_, Infallible>(chunk.slice(..len))
    }));
    Body::from_stream(stream)
}

/// What the stand-in OpenObserve received, and how it answers log requests.
#[derive(Default)]
struct Received {
    /// Log record bodies, in arrival order.
    logs: Mutex<Vec<String>>,
    log_requests: AtomicU64,
    /// `up` gauge values of metric requests.
    up: Mutex<Vec<f64>>,
    /// Bytes of answer bodies handed to shipd's connections.
    answered: Arc<AtomicU64>,
    /// Each log request is answered 200 with this many bytes of body.
    answer_bytes: u64,
}

async fn logs(State(rx): State<Arc<Received>>, body: Bytes) -> Response {
    // SHIPD_COMPRESSION=none: the body is the protobuf itself.
    let Ok(request) = ExportLogsServiceRequest::decode(&body[..]) else {
        return (StatusCode::BAD_REQUEST, "bad protobuf").into_response();
    };
    rx.log_requests.fetch_add(1, Ordering::SeqCst);
    rx.logs
        .lock()
        .unwrap()
        .extend(records_of(&request).into_iter().map(|r| r.body));
    if rx.answer_bytes == 0 {
        return StatusCode::OK.into_response();
    }
    // A protobuf answer whose body never ends: whatever shipd reads of it
    // decodes as nothing useful, which a 2xx treats as full success.
    let chunk = Bytes::from(vec![0xffu8; 64 * 1024]);
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        lazy_body(chunk, rx.answer_bytes, Arc::clone(&rx.answered)),
    )
        .into_response()
}

async fn metrics(State(rx): State<Arc<Received>>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportMetricsServiceRequest::decode(&body[..]) else {
        return StatusCode::BAD_REQUEST;
    };
    let metrics = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics);
    for m in metrics.filter(|m| m.name == "up") {
        if let Some(metric::Data::Gauge(g)) = &m.data {
            for p in &g.data_points {
                if let Some(number_data_point::Value::AsDouble(v)) = p.value {
                    rx.up.lock().unwrap().push(v);
                }
            }
        }
    }
    StatusCode::OK
}

/// A scrape target serving `lines` exposition lines, made lazily.
async fn exposition(served: Arc<AtomicU64>, total: u64, line: &'static str) -> Response {
    let chunk = Bytes::from(line.repeat(64 * 1024 / line.len()));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        lazy_body(chunk, total, served),
    )
        .into_response()
}

/// 500,000 distinct series in about 11 MB: under `max_body_bytes`, over `max_series`.
async fn many_series(served: Arc<AtomicU64>) -> Response {
    const SERIES: usize = 500_000;
    const PER_CHUNK: usize = 5_000;
    let stream = tokio_stream::iter((0..SERIES / PER_CHUNK).map(move |c| {
        let mut text = String::with_capacity(PER_CHUNK * 24);
        for i in c * PER_CHUNK..(c + 1) * PER_CHUNK {
            text.push_str(&format!("s{{i=\"{i}\"}} 1\n"));
        }
        served.fetch_add(text.len() as u64, Ordering::Relaxed);
        Ok::<_, Infallible>(Bytes::from(text))
    }));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The stand-in OpenObserve (`/api/{org}/v1/logs` and `/v1/metrics`) and
/// two hostile scrape targets (`/huge`: 500 MB, `/many`: 500,000 series).
struct World {
    _rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    received: Arc<Received>,
    /// Bytes the scrape targets handed to shipd's connections.
    scraped: Arc<AtomicU64>,
    dir: tempfile::TempDir,
}

impl World {
    fn start(answer_bytes: u64) -> World {
        let rt = runtime();
        let received = Arc::new(Received {
            answer_bytes,
            ..Received::default()
        });
        let scraped = Arc::new(AtomicU64::new(0));
        let (huge, many) = (Arc::clone(&scraped), Arc::clone(&scraped));
        let app = axum::Router::new()
            .route("/api/{org}/v1/logs", axum::routing::post(logs))
            .route("/api/{org}/v1/metrics", axum::routing::post(metrics))
            .with_state(Arc::clone(&received))
            .route(
                "/huge",
                axum::routing::get(move || {
                    exposition(
                        Arc::clone(&huge),
                        500 * 1000 * 1000,
                        "filler_metric{shard=\"0123456789\"} 1\n",
                    )
                }),
            )
            .route(
                "/many",
                axum::routing::get(move || many_series(Arc::clone(&many))),
            );
        let addr = serve_http(&rt, app);
        World {
            _rt: rt,
            addr,
            received,
            scraped,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The default pipeline shipping `file` (from its beginning) here.
    fn env(&self, file: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("OPENOBSERVE_URL", format!("http://{}", self.addr)),
            ("OPENOBSERVE_ORG", "pis".to_owned()),
            ("SHIPD_COMPRESSION", "none".to_owned()),
            ("SHIPD_LOG_FILES", file.display().to_string()),
            ("SHIPD_READ_FROM", "beginning".to_owned()),
            (
                "SHIPD_DATA_DIR",
                self.dir.path().join("data").display().to_string(),
            ),
            (
                "SHIPD_RUNTIME_DIR",
                self.dir.path().join("ram").display().to_string(),
            ),
            ("SHIPD_BATCH_TIMEOUT", "200ms".to_owned()),
            ("SHIPD_POLL_INTERVAL", "100ms".to_owned()),
            ("SHIPD_RETRY_MAX", "1s".to_owned()),
        ]
    }

    fn logs(&self) -> Vec<String> {
        self.received.logs.lock().unwrap().clone()
    }

    /// Waits until every line of `expected` arrived; how many are missing.
    fn wait_for_lines(&self, expected: &[String]) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let missing = tally(&self.logs(), expected).missing;
            if missing == 0 || Instant::now() > deadline {
                return missing;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// Polls `what` until it holds, failing with shipd's log after `WAIT`.
fn wait_until(shipd: &Shipd, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}\n--- shipd log\n{}",
            shipd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every request is answered 200 with a 1 GiB body. shipd reads 64 KiB of
/// it, hangs up, and counts the batch as delivered: each line arrives once,
/// the checkpoint moves past it (a restart sends nothing again), and peak
/// memory stays under 64 MiB. Before the fix this reached 2.1 GB.
#[test]
fn a_1_gib_answer_is_read_in_part_and_the_batch_acknowledged_within_64_mib() {
    const ANSWER: u64 = 1024 * MIB;
    let w = World::start(ANSWER);
    let file = w.dir.path().join("app.log");
    let lines = nginx_lines("huge-answer", 3_000);
    write_lines(&file, &lines);
    let mut env = w.env(&file);
    // Six requests, six huge answers.
    env.push(("SHIPD_BATCH_MAX_EVENTS", "500".to_owned()));
    let started = Instant::now();
    let shipd = Shipd::start(&env, &w.dir.path().join("shipd.log"));
    assert_eq!(w.wait_for_lines(&lines), 0, "lines lost:\n{}", shipd.log());
    let delivered = || shipd.metric("shipd_events_out_total{component=\"openobserve\"}");
    wait_until(&shipd, "every line is counted as delivered", || {
        delivered() >= lines.len() as u64
    });
    let took = started.elapsed();
    let peak = peak_rss(&shipd);
    let requests = w.received.log_requests.load(Ordering::SeqCst);
    let answered = w.received.answered.load(Ordering::Relaxed);
    let retries = shipd.metric("shipd_retries_total{component=\"openobserve\"}");
    println!(
        "1 GiB answers: {} lines in {requests} requests in {took:.1?}, {retries} retries; \
         {} KiB of answers handed to shipd's connections ({} KiB per request); VmHWM {} KiB",
        lines.len(),
        answered / 1024,
        answered / 1024 / requests.max(1),
        peak / 1024
    );
    let t = tally(&w.logs(), &lines);
    assert_eq!((t.missing, t.duplicates), (0, 0), "each line once");
    assert_eq!(retries, 0, "a huge 200 answer is a success, not a failure");
    assert!(
        answered < requests * 64 * MIB,
        "shipd stopped reading each answer early"
    );
    assert!(peak <= PEAK_BOUND, "VmHWM {} KiB over 64 MiB", peak / 1024);
    assert_eq!(shipd.terminate(), Some(0));

    // Acknowledged means checkpointed: a restart sends nothing again.
    let again = Shipd::start(&env, &w.dir.path().join("shipd-again.log"));
    wait_until(&again, "the restarted agent answers", || {
        common::http_get(again.api, "/health").0 != 0
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        w.received.log_requests.load(Ordering::SeqCst),
        requests,
        "nothing re-sent after a restart:\n{}",
        again.log()
    );
    assert_eq!(again.terminate(), Some(0));
}

/// One hostile target scraped every second by the default pipeline while
/// a file is shipped too: the scrape fails with `reason` (in the log, in
/// `/health`, `up` 0, `shipd_scrape_failures_total`), shipd keeps running,
/// delivers every line of the file once, and stays under 64 MiB.
fn hostile_target_fails_its_scrapes(path: &str, reason: &str) {
    let w = World::start(0);
    let file = w.dir.path().join("app.log");
    let before = nginx_lines(&format!("before-{}", &path[1..]), 500);
    write_lines(&file, &before);
    let mut env = w.env(&file);
    env.extend([
        ("SHIPD_SCRAPE_URLS", format!("http://{}{path}", w.addr)),
        ("SHIPD_SCRAPE_INTERVAL", "1s".to_owned()),
    ]);
    let started = Instant::now();
    let shipd = Shipd::start(&env, &w.dir.path().join("shipd.log"));
    let failures = || shipd.metric("shipd_scrape_failures_total{component=\"prometheus\"}");
    wait_until(&shipd, "three scrapes failed", || failures() >= 3);
    wait_until(&shipd, "`up` 0 arrived", || {
        w.received.up.lock().unwrap().contains(&0.0)
    });
    let after = nginx_lines(&format!("after-{}", &path[1..]), 500);
    write_lines(&file, &after);
    let expected: Vec<String> = before.iter().chain(&after).cloned().collect();
    assert_eq!(
        w.wait_for_lines(&expected),
        0,
        "lines lost:\n{}",
        shipd.log()
    );
    let (code, health) = common::http_get(shipd.api, "/health");
    let scrapes = failures();
    let served = w.scraped.load(Ordering::Relaxed);
    let peak = peak_rss(&shipd);
    println!(
        "{path}: {scrapes} failed scrapes in {:.1?}, {} KiB served by the target ({} KiB per scrape); \
         /health {code} {health}; VmHWM {} KiB",
        started.elapsed(),
        served / 1024,
        served / 1024 / scrapes.max(1),
        peak / 1024
    );
    assert!(
        shipd.log().contains("scrape failed") && shipd.log().contains(reason),
        "the WARN names {reason}:\n{}",
        shipd.log()
    );
    assert!(
        health.contains(reason),
        "/health names the reason: {code} {health}"
    );
    assert!(
        !w.received.up.lock().unwrap().contains(&1.0),
        "no scrape succeeded"
    );
    let t = tally(&w.logs(), &expected);
    assert_eq!((t.missing, t.duplicates), (0, 0), "each line once");
    assert_eq!(
        common::http_get(shipd.api, "/metrics").0,
        200,
        "shipd still runs"
    );
    assert!(peak <= PEAK_BOUND, "VmHWM {} KiB over 64 MiB", peak / 1024);
    assert_eq!(shipd.terminate(), Some(0));
}

/// Before the fix: 1.49 GB peak.
#[test]
fn a_target_serving_500_mb_fails_at_max_body_bytes_within_64_mib() {
    hostile_target_fails_its_scrapes("/huge", "max_body_bytes");
}

/// Before the fix: 355 MB peak.
#[test]
fn a_target_exposing_500k_series_fails_at_max_series_within_64_mib() {
    hostile_target_fails_its_scrapes("/many", "max_series");
}

/// nginx in the foreground with one plain-HTTP server: `/o2/` proxied to
/// `upstream`, request bodies over 16 KiB refused with 413.
struct BodyLimitedNginx {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl BodyLimitedNginx {
    fn start(dir: &Path, upstream: SocketAddr) -> BodyLimitedNginx {
        std::fs::create_dir_all(dir).unwrap();
        let port = common::free_port();
        let d = dir.display();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;\n"
        } else {
            ""
        };
        let conf = format!(
            "{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    client_max_body_size 16k;
    proxy_http_version 1.1;
    server {{
        listen 127.0.0.1:{port};
        location /o2/ {{ proxy_pass http://{upstream}/; }}
    }}
}}
"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(nginx_tls::nginx_binary())
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let nginx = BodyLimitedNginx {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx never listened:\n{}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for BodyLimitedNginx {
    fn drop(&mut self) {
        // Its own process group: the worker goes with the master.
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: signalling the process group this test started.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// nginx in front of the receiver refuses bodies over 16 KiB. shipd sends
/// the batch in halves, and halves of those, until each request fits: every
/// normal line arrives exactly once, and the four lines that alone are over
/// the limit are counted as rejected. The URL carries a reverse-proxy prefix
/// (`/o2`), kept as the base of every request.
#[test]
fn a_413_splits_the_batch_until_every_line_that_fits_is_delivered_once() {
    let rt = runtime();
    let receiver = common::http_receiver(&rt, common::always_accept());
    let dir = tempfile::tempdir().unwrap();
    let nginx = BodyLimitedNginx::start(&dir.path().join("nginx"), receiver.addr);
    let normal = nginx_lines("fits", 2_000);
    let oversized: Vec<String> = (0..4)
        .map(|i| format!("oversized {i} {}", "x".repeat(30 * 1024)))
        .collect();
    let mut lines = normal.clone();
    for (i, big) in oversized.iter().enumerate() {
        lines.insert(300 + i * 400, big.clone());
    }
    let file = dir.path().join("app.log");
    write_lines(&file, &lines);
    let env = vec![
        (
            "OPENOBSERVE_URL",
            format!("http://127.0.0.1:{}/o2", nginx.port),
        ),
        ("OPENOBSERVE_ORG", "pis".to_owned()),
        ("SHIPD_COMPRESSION", "none".to_owned()),
        ("SHIPD_LOG_FILES", file.display().to_string()),
        ("SHIPD_READ_FROM", "beginning".to_owned()),
        (
            "SHIPD_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("SHIPD_BATCH_TIMEOUT", "200ms".to_owned()),
        ("SHIPD_RETRY_MAX", "1s".to_owned()),
    ];
    let started = Instant::now();
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    let rejected = || {
        shipd.metric("shipd_events_dropped_total{component=\"openobserve\",reason=\"rejected\"}")
    };
    let missing = receiver.wait_for_all(&normal, WAIT);
    wait_until(&shipd, "the four oversized lines are rejected", || {
        rejected() >= 4
    });
    let took = started.elapsed();
    let splits = shipd.metric("shipd_batch_splits_total{component=\"openobserve\"}");
    let requests = shipd.metric("shipd_requests_total{component=\"openobserve\"}");
    let retries = shipd.metric("shipd_retries_total{component=\"openobserve\"}");
    let refused = nginx
        .access_log()
        .lines()
        .filter(|l| l.contains("\" 413 "))
        .count();
    println!(
        "413 at 16 KiB: {} lines ({} oversized) in {took:.1?}: {requests} requests, {refused} answered 413, \
         {splits} splits, {} rejected, {retries} retries",
        lines.len(),
        oversized.len(),
        rejected()
    );
    assert_eq!(missing, 0, "lines that fit were lost:\n{}", shipd.log());
    let t = tally(&receiver.bodies(), &normal);
    assert_eq!(
        (t.missing, t.duplicates, t.unexpected),
        (0, 0, 0),
        "every line that fits exactly once, no oversized one"
    );
    assert_eq!(rejected(), 4, "exactly the oversized lines are rejected");
    assert!(splits > 0 && refused > 0, "nginx refused and shipd split");
    assert!(
        shipd.log().contains("larger than the receiver takes"),
        "the rejection is logged with its reason:\n{}",
        shipd.log()
    );
    assert!(
        nginx.access_log().contains("POST /o2/api/pis/v1/logs"),
        "requests keep the /o2 prefix:\n{}",
        nginx.access_log()
    );
    assert_eq!(shipd.terminate(), Some(0));
}

/// `shipctl check FILE` under `env` only: exit code and stderr.
fn shipctl_check(file: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .arg("check")
        .arg(file)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHIPD_JOURNALD", "off")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A URL that names the API (`/api/default`) or carries a query string is
/// refused by `shipctl check`, naming the option (and the variable it came
/// from) with what to write instead; a proxy prefix (`/o2`) is accepted.
#[test]
fn an_api_path_or_query_string_in_the_url_is_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = |name: &str, url: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "source web = files {{ include = [\"/var/log/nginx/*.log\"] }}\n\
                 sink o2 = openobserve {{ url = \"{url}\" }}\nroute {{ else => o2 }}\n"
            ),
        )
        .unwrap();
        path
    };
    let (code, err) = shipctl_check(&pipeline("api.ship", "http://o2:5080/api/default"), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("option `url` ends in the API path `/api/default`")
            && err.contains("the org goes in `org`"),
        "{err}"
    );
    assert_eq!(
        err.matches("error:").count(),
        1,
        "one error, at the URL: {err}"
    );
    let (code, err) = shipctl_check(&pipeline("query.ship", "https://o2:5080?x=1"), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("option `url` has a query string"), "{err}");
    let (code, err) = shipctl_check(&pipeline("prefix.ship", "https://host/o2/"), &[]);
    assert_eq!(code, 0, "a proxy prefix is a base URL: {err}");

    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/default.ship");
    for (url, says) in [
        ("http://o2:5080/api/default", "ends in the API path"),
        ("https://me:s3cret@o2:5080/?token=abc", "has a query string"),
    ] {
        let (code, err) = shipctl_check(&default, &[("OPENOBSERVE_URL", url)]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!("option `url` (from OPENOBSERVE_URL) {says}")),
            "{err}"
        );
        assert!(
            !err.contains("s3cret") && !err.contains("abc"),
            "no secret in the diagnostic: {err}"
        );
    }

    // shipctl query reads the same variable and refuses the same way.
    let out = Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .env_clear()
        .env("OPENOBSERVE_URL", "http://o2:5080/api/default")
        .args(["query", "SELECT 1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("OPENOBSERVE_URL ends in the API path `/api/default`")
            && err.contains("the org goes in `org`"),
        "{err}"
    );
}

/// Runs `cmd` to its end: exit code, stderr, and its peak resident memory
/// (`ru_maxrss` from `wait4`, exact even for a short-lived process).
#[allow(clippy::zombie_processes)] // reaped by wait4, which std does not see
fn run_measured(mut cmd: Command) -> (Option<i32>, String, u64) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value to be filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child this test spawned (and has not reaped).
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 reaped the child");
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, stderr, usage.ru_maxrss as u64 * 1024)
}

/// OpenObserve answering a search with 1 GiB of JSON: `shipctl query` reads
/// at most 64 MiB of it, stops and says the answer is too large (and how to
/// ask for less), instead of holding a gigabyte.
#[test]
fn a_1_gib_search_answer_is_refused_past_64_mib_with_a_clear_error() {
    let rt = runtime();
    let served = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&served);
    let app = axum::Router::new().route(
        "/api/{org}/_search",
        axum::routing::post(move || {
            let chunk = Bytes::from("{\"body\":\"x\",\"host\":\"pi\"},".repeat(2_600));
            let answer = lazy_body(chunk, 1024 * MIB, Arc::clone(&counted));
            async move { ([(header::CONTENT_TYPE, "application/json")], answer) }
        }),
    );
    let addr = serve_http(&rt, app);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipctl"));
    cmd.env_clear()
        .env("OPENOBSERVE_URL", format!("http://{addr}"))
        .env("OPENOBSERVE_USER", "root@example.com")
        .env("OPENOBSERVE_PASSWORD", "pw")
        .args(["query", "SELECT * FROM \"default\""]);
    let started = Instant::now();
    let (code, err, peak) = run_measured(cmd);
    println!(
        "shipctl query on a 1 GiB answer: exit {code:?} after {:.1?}, {} MiB handed to its connection, \
         peak RSS {} MiB: {}",
        started.elapsed(),
        served.load(Ordering::Relaxed) / MIB,
        peak / MIB,
        err.trim()
    );
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("larger than 64 MiB") && err.contains("--limit"),
        "{err}"
    );
    assert!(peak <= 200 * MIB, "peak RSS {} MiB", peak / MIB);
}
