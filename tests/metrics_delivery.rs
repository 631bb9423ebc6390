//! End to end: the real shipd binary collects host metrics on a short
//! interval and ships them to an in-process receiver, over OTLP/HTTP
//! (`/api/{org}/v1/metrics`) and OTLP/gRPC (MetricsService); the decoded
//! requests are checked for names, temporality, uniform label keys and the
//! resource. Retries and partial success follow the same rules as logs.

mod common;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use common::{Reply, Script, Shipd};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, AggregationTemporality, Metric};
use prost::Message;
use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Accepted = (String, HashMap<String, String>, ExportMetricsServiceRequest);

#[derive(Default)]
struct Received {
    /// (org, headers, request) of every accepted request.
    requests: Mutex<Vec<Accepted>>,
    attempts: Mutex<usize>,
    /// Bodies of log records posted to `/v1/logs` (health changes).
    log_bodies: Mutex<Vec<String>>,
}

struct MetricsState {
    received: Arc<Received>,
    script: Script,
}

fn headers_of(h: &HeaderMap) -> HashMap<String, String> {
    h.iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect()
}

fn decompress(headers: &HashMap<String, String>, body: &[u8]) -> Vec<u8> {
    match headers.get("content-encoding").map(String::as_str) {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Some("zstd") => zstd::decode_all(body).unwrap(),
        _ => body.to_vec(),
    }
}

fn reply_for(received: &Received, script: &Script) -> Reply {
    let mut attempts = received.attempts.lock().unwrap();
    let n = *attempts;
    *attempts += 1;
    script(n, Duration::ZERO)
}

async fn http_metrics(
    State(state): State<Arc<MetricsState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    let (delay, reply) = reply_for(&state.received, &state.script).delayed();
    tokio::time::sleep(delay).await;
    let headers = headers_of(&headers);
    let raw = decompress(&headers, &body);
    let Ok(request) = ExportMetricsServiceRequest::decode(&raw[..]) else {
        return (StatusCode::BAD_REQUEST, b"bad protobuf".to_vec());
    };
    let partial = match reply {
        Reply::Fail(code) | Reply::Throttle(code, _) => {
            return (StatusCode::from_u16(code).unwrap(), b"scripted".to_vec())
        }
        Reply::Partial(n, message) => Some(ExportMetricsPartialSuccess {
            rejected_data_points: n,
            error_message: message,
        }),
        Reply::Accept => None,
        Reply::After(..) => unreachable!("delayed() unwraps every After"),
    };
    state
        .received
        .requests
        .lock()
        .unwrap()
        .push((org, headers, request));
    let resp = ExportMetricsServiceResponse {
        partial_success: partial,
    };
    (StatusCode::OK, resp.encode_to_vec())
}

/// Serves `/api/{org}/v1/metrics` (scripted) and `/api/{org}/v1/logs` (200, counted).
fn http_receiver(rt: &tokio::runtime::Runtime, script: Script) -> (SocketAddr, Arc<Received>) {
    let received = Arc::new(Received::default());
    let state = Arc::new(MetricsState {
        received: Arc::clone(&received),
        script,
    });
    let logs = Arc::clone(&received);
    let app = axum::Router::new()
        .route("/api/{org}/v1/metrics", axum::routing::post(http_metrics))
        .with_state(state)
        .route(
            "/api/{org}/v1/logs",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let logs = Arc::clone(&logs);
                async move {
                    let raw = decompress(&headers_of(&headers), &body);
                    let Ok(req) = ExportLogsServiceRequest::decode(&raw[..]) else {
                        return StatusCode::BAD_REQUEST;
                    };
                    let bodies = req
                        .resource_logs
                        .iter()
                        .flat_map(|r| &r.scope_logs)
                        .flat_map(|s| &s.log_records)
                        .map(|l| match l.body.as_ref().and_then(|b| b.value.clone()) {
                            Some(any_value::Value::StringValue(s)) => s,
                            other => format!("{other:?}"),
                        });
                    logs.log_bodies.lock().unwrap().extend(bodies);
                    StatusCode::OK
                }
            }),
        );
    let addr = common::serve_http(rt, app);
    (addr, received)
}

struct GrpcMetrics {
    received: Arc<Received>,
}

#[tonic::async_trait]
impl MetricsService for GrpcMetrics {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = headers_of(&request.metadata().clone().into_headers());
        let org = headers.get("organization").cloned().unwrap_or_default();
        self.received
            .requests
            .lock()
            .unwrap()
            .push((org, headers, request.into_inner()));
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

fn grpc_receiver(rt: &tokio::runtime::Runtime) -> (SocketAddr, Arc<Received>) {
    let received = Arc::new(Received::default());
    let svc = MetricsServiceServer::new(GrpcMetrics {
        received: Arc::clone(&received),
    })
    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
    .accept_compressed(tonic::codec::CompressionEncoding::Zstd);
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
    (addr, received)
}

fn shipd_env(
    url: &str,
    transport: &str,
    data_dir: &std::path::Path,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("SHIPD_DATA_DIR", data_dir.display().to_string()),
        ("SHIPD_METRICS_INTERVAL", "300ms".to_owned()),
        ("OPENOBSERVE_ORG", "pis".to_owned()),
        ("OPENOBSERVE_USER", "root@example.com".to_owned()),
        ("OPENOBSERVE_PASSWORD", "Complexpass#123".to_owned()),
        ("OPENOBSERVE_TRANSPORT", transport.to_owned()),
        ("SHIPD_BATCH_TIMEOUT", "100ms".to_owned()),
        ("SHIPD_RETRY_MAX", "500ms".to_owned()),
    ];
    if transport == "grpc" {
        env.push(("OPENOBSERVE_URL", "http://127.0.0.1:9".to_owned()));
        env.push(("OPENOBSERVE_GRPC_URL", url.to_owned()));
    } else {
        env.push(("OPENOBSERVE_URL", url.to_owned()));
    }
    env
}

/// Waits until `n` requests carrying `system.cpu.time` arrived.
fn wait_for_collections(
    received: &Received,
    n: usize,
    timeout: Duration,
) -> Vec<ExportMetricsServiceRequest> {
    let deadline = Instant::now() + timeout;
    loop {
        let got: Vec<ExportMetricsServiceRequest> = received
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, r)| r.clone())
            .filter(|r| metrics_of(r).iter().any(|m| m.name == "system.cpu.time"))
            .collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metrics_of(req: &ExportMetricsServiceRequest) -> Vec<&Metric> {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .collect()
}

/// The attribute key lists of every data point of a metric.
fn key_lists(m: &Metric) -> Vec<Vec<String>> {
    let keys = |attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
        attrs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>()
    };
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.iter().map(|p| keys(&p.attributes)).collect(),
        Some(Data::Sum(s)) => s.data_points.iter().map(|p| keys(&p.attributes)).collect(),
        Some(Data::Histogram(h)) => h.data_points.iter().map(|p| keys(&p.attributes)).collect(),
        Some(Data::Summary(s)) => s.data_points.iter().map(|p| keys(&p.attributes)).collect(),
        _ => Vec::new(),
    }
}

/// What every host metrics request must look like.
fn check_host_request(req: &ExportMetricsServiceRequest) {
    assert_eq!(req.resource_metrics.len(), 1);
    let resource = req.resource_metrics[0].resource.as_ref().unwrap();
    let host = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "host.name")
        .and_then(|kv| kv.value.clone()?.value);
    assert_eq!(
        host,
        Some(any_value::Value::StringValue("test-node".into()))
    );
    let metrics = metrics_of(req);
    let mut names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    for expected in [
        "system.cpu.time",
        "system.cpu.load_average.1m",
        "system.memory.usage",
        "system.memory.utilization",
        "system.filesystem.usage",
        "system.network.io",
        "system.uptime",
        "shipd.node.health",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let before = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), before, "each metric once per request");
    for m in &metrics {
        let lists = key_lists(m);
        assert!(!lists.is_empty(), "{} has points", m.name);
        assert!(
            lists.iter().all(|l| *l == lists[0]),
            "{}: label keys differ: {lists:?}",
            m.name
        );
    }
    let cpu = metrics
        .iter()
        .find(|m| m.name == "system.cpu.time")
        .unwrap();
    assert_eq!(cpu.unit, "s");
    let Some(Data::Sum(sum)) = &cpu.data else {
        panic!("system.cpu.time is a sum")
    };
    assert!(sum.is_monotonic);
    assert_eq!(
        sum.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    assert!(sum
        .data_points
        .iter()
        .all(|p| p.start_time_unix_nano > 0 && p.start_time_unix_nano < p.time_unix_nano));
    assert_eq!(key_lists(cpu)[0], ["cpu", "state"]);
}

#[test]
fn host_metrics_reach_the_http_metrics_endpoint_with_uniform_labels() {
    let rt = common::runtime();
    let (addr, received) = http_receiver(&rt, common::always_accept());
    let dir = tempfile::tempdir().unwrap();
    let shipd = Shipd::start(
        &shipd_env(&format!("http://{addr}"), "http", &dir.path().join("data")),
        &dir.path().join("shipd.log"),
    );
    let got = wait_for_collections(&received, 2, Duration::from_secs(20));
    assert!(
        got.len() >= 2,
        "two collections shipped; log:\n{}",
        shipd.log()
    );
    for req in &got {
        check_host_request(req);
    }
    {
        let requests = received.requests.lock().unwrap();
        let (org, headers, _) = &requests[0];
        assert_eq!(org, "pis");
        assert_eq!(
            headers.get("content-type").map(String::as_str),
            Some("application/x-protobuf")
        );
        assert!(headers
            .get("authorization")
            .is_some_and(|a| a.starts_with("Basic ")));
    }
    // Only health level changes (this machine may be busy) go to /v1/logs.
    let bodies = received.log_bodies.lock().unwrap().clone();
    assert!(
        bodies.iter().all(|b| b.starts_with("node health changed")),
        "{bodies:?}"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn host_metrics_reach_the_grpc_metrics_service() {
    let rt = common::runtime();
    let (addr, received) = grpc_receiver(&rt);
    let dir = tempfile::tempdir().unwrap();
    let shipd = Shipd::start(
        &shipd_env(&format!("http://{addr}"), "grpc", &dir.path().join("data")),
        &dir.path().join("shipd.log"),
    );
    let got = wait_for_collections(&received, 1, Duration::from_secs(20));
    assert!(
        !got.is_empty(),
        "a collection shipped; log:\n{}",
        shipd.log()
    );
    check_host_request(&got[0]);
    let requests = received.requests.lock().unwrap();
    assert_eq!(requests[0].0, "pis", "organization metadata");
    drop(requests);
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn metrics_are_retried_after_503_and_partial_success_counts_rejected_data_points() {
    let rt = common::runtime();
    let script: Script = Arc::new(|n, _| match n {
        0 => Reply::Fail(503),
        1 => Reply::Partial(3, "label too long".into()),
        _ => Reply::Accept,
    });
    let (addr, received) = http_receiver(&rt, script);
    let dir = tempfile::tempdir().unwrap();
    let shipd = Shipd::start(
        &shipd_env(&format!("http://{addr}"), "http", &dir.path().join("data")),
        &dir.path().join("shipd.log"),
    );
    let got = wait_for_collections(&received, 2, Duration::from_secs(20));
    assert!(got.len() >= 2, "log:\n{}", shipd.log());
    let series = "shipd_events_dropped_total{component=\"openobserve\",reason=\"partial_success\"}";
    assert_eq!(shipd.metric(series), 3);
    assert!(shipd.metric("shipd_retries_total{component=\"openobserve\"}") >= 1);
    assert!(shipd.wait_log("partial success", Duration::from_secs(5)));
    assert_eq!(shipd.terminate(), Some(0));
}
