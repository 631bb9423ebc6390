//! End to end: the real shipd binary, with the default pipeline's
//! `SHIPD_OTLP_RECEIVER=on`, receives OTLP logs and metrics from local apps
//! over gRPC (tonic client) and HTTP (protobuf, gzip; and Python's official
//! `opentelemetry-proto` classes) and ships them to an in-process
//! OpenObserve-shaped receiver with bodies, attributes and resources intact.
//! Malformed bodies are refused alone; a full pipeline refuses with 429 /
//! RESOURCE_EXHAUSTED and recovers without losing anything it accepted.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{free_port, records_of, runtime, Shipd};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::codec::CompressionEncoding;

/// The OpenObserve side: records what shipd delivers; answers 503 while `down`.
#[derive(Default)]
struct Delivered {
    logs: Mutex<Vec<ExportLogsServiceRequest>>,
    metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
    down: AtomicBool,
    refused: AtomicUsize,
}

impl Delivered {
    fn bodies(&self) -> Vec<String> {
        let logs = self.logs.lock().unwrap();
        logs.iter().flat_map(records_of).map(|r| r.body).collect()
    }

    fn metrics(&self) -> Vec<(Metric, HashMap<String, any_value::Value>)> {
        let reqs = self.metrics.lock().unwrap();
        let mut out = Vec::new();
        for req in reqs.iter() {
            for rm in &req.resource_metrics {
                let resource = kv_map(&rm.resource.clone().unwrap_or_default().attributes);
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        out.push((m.clone(), resource.clone()));
                    }
                }
            }
        }
        out
    }

    /// Waits until every body of `want` was delivered; returns the missing ones.
    fn wait_for_bodies(&self, want: &[String], timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let got: BTreeSet<String> = self.bodies().into_iter().collect();
            let missing: Vec<String> = want.iter().filter(|b| !got.contains(*b)).cloned().collect();
            if missing.is_empty() || Instant::now() > deadline {
                return missing;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn kv_map(attrs: &[KeyValue]) -> HashMap<String, any_value::Value> {
    attrs
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?.value?)))
        .collect()
}

fn decompress(headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    match headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
    {
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

async fn o2_logs(
    State(d): State<Arc<Delivered>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    if d.down.load(Ordering::SeqCst) {
        d.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, b"memtable full".to_vec());
    }
    match ExportLogsServiceRequest::decode(&decompress(&headers, &body)[..]) {
        Ok(req) => {
            d.logs.lock().unwrap().push(req);
            (
                StatusCode::OK,
                ExportLogsServiceResponse::default().encode_to_vec(),
            )
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string().into_bytes()),
    }
}

async fn o2_metrics(
    State(d): State<Arc<Delivered>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    if d.down.load(Ordering::SeqCst) {
        d.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, b"memtable full".to_vec());
    }
    match ExportMetricsServiceRequest::decode(&decompress(&headers, &body)[..]) {
        Ok(req) => {
            d.metrics.lock().unwrap().push(req);
            (
                StatusCode::OK,
                ExportMetricsServiceResponse::default().encode_to_vec(),
            )
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string().into_bytes()),
    }
}

/// Starts the OpenObserve-shaped receiver on 127.0.0.1.
fn openobserve(rt: &tokio::runtime::Runtime) -> (SocketAddr, Arc<Delivered>) {
    let delivered = Arc::new(Delivered::default());
    let app = axum::Router::new()
        .route("/api/{org}/v1/logs", axum::routing::post(o2_logs))
        .route("/api/{org}/v1/metrics", axum::routing::post(o2_metrics))
        .with_state(Arc::clone(&delivered));
    let addr = common::serve_http(rt, app);
    (addr, delivered)
}

/// shipd running the default pipeline with the OTLP receiver on free ports.
struct Agent {
    shipd: Shipd,
    grpc: SocketAddr,
    http: SocketAddr,
    _dir: tempfile::TempDir,
}

fn start_agent(o2: SocketAddr, extra: &[(&str, &str)]) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut env = vec![
        ("OPENOBSERVE_URL", format!("http://{o2}")),
        ("OPENOBSERVE_ORG", "pis".to_owned()),
        ("OPENOBSERVE_USER", "root@example.com".to_owned()),
        ("OPENOBSERVE_PASSWORD", "Complexpass#123".to_owned()),
        (
            "SHIPD_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("SHIPD_OTLP_RECEIVER", "on".to_owned()),
        ("SHIPD_OTLP_GRPC_ADDRESS", grpc.to_string()),
        ("SHIPD_OTLP_HTTP_ADDRESS", http.to_string()),
        ("SHIPD_BATCH_TIMEOUT", "100ms".to_owned()),
        ("SHIPD_RETRY_MAX", "500ms".to_owned()),
    ];
    for (k, v) in extra {
        env.push((k, (*v).to_owned()));
    }
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert!(
        shipd.wait_log("OTLP/HTTP receiver listening", Duration::from_secs(20))
            && shipd.wait_log("OTLP/gRPC receiver listening", Duration::from_secs(5)),
        "receiver did not start: {}",
        shipd.log()
    );
    Agent {
        shipd,
        grpc,
        http,
        _dir: dir,
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn s(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn i(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

/// `bodies` as log records of service `service`, severity ERROR, with an
/// int attribute, a nested map attribute and a trace id.
fn log_request(service: &str, bodies: &[String]) -> ExportLogsServiceRequest {
    let now = now_ns();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![s("service.name", service), s("service.version", "1.4.2")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "checkout-lib".into(),
                    version: "0.9".into(),
                    ..Default::default()
                }),
                log_records: bodies
                    .iter()
                    .enumerate()
                    .map(|(n, body)| LogRecord {
                        time_unix_nano: now + n as u64,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(body.clone())),
                        }),
                        attributes: vec![
                            i("order.items", n as i64),
                            KeyValue {
                                key: "http".into(),
                                value: Some(AnyValue {
                                    value: Some(any_value::Value::KvlistValue(KeyValueList {
                                        values: vec![i("status", 502)],
                                    })),
                                }),
                                ..Default::default()
                            },
                        ],
                        trace_id: vec![0xab; 16],
                        span_id: vec![0xcd; 8],
                        ..Default::default()
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn bodies(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|k| format!("{tag} order {k} failed: upstream 502"))
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// An answer of the OTLP/HTTP receiver.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Vec<u8>,
}

fn post(rt: &tokio::runtime::Runtime, url: &str, body: Vec<u8>, encoding: Option<&str>) -> Answer {
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let resp = req.send().await.expect("receiver answers");
        Answer {
            status: resp.status().as_u16(),
            retry_after: resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: resp.bytes().await.unwrap().to_vec(),
        }
    })
}

fn grpc_logs(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    req: ExportLogsServiceRequest,
) -> Result<(), tonic::Status> {
    rt.block_on(async {
        let mut client = LogsServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("gRPC connects")
            .send_compressed(CompressionEncoding::Gzip);
        client.export(req).await.map(|_| ())
    })
}

fn string_of(v: Option<&any_value::Value>) -> Option<String> {
    match v {
        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

#[test]
fn logs_over_grpc_and_http_gzip_arrive_with_body_attributes_and_resource_intact() {
    let rt = runtime();
    let (o2, delivered) = openobserve(&rt);
    let agent = start_agent(o2, &[]);

    let over_grpc = bodies("grpc", 5);
    grpc_logs(&rt, agent.grpc, log_request("checkout", &over_grpc)).expect("gRPC export is OK");
    let over_http = bodies("http", 5);
    let wire = gzip(&log_request("checkout", &over_http).encode_to_vec());
    let answer = post(
        &rt,
        &format!("http://{}/v1/logs", agent.http),
        wire,
        Some("gzip"),
    );
    assert_eq!(answer.status, 200);
    assert!(ExportLogsServiceResponse::decode(&answer.body[..]).is_ok());

    let want: Vec<String> = over_grpc.iter().chain(&over_http).cloned().collect();
    let missing = delivered.wait_for_bodies(&want, Duration::from_secs(20));
    assert!(missing.is_empty(), "missing {missing:?}");
    let requests = delivered.logs.lock().unwrap().clone();
    let mut seen = 0;
    for req in &requests {
        for rl in &req.resource_logs {
            let resource = kv_map(&rl.resource.clone().unwrap().attributes);
            assert_eq!(
                string_of(resource.get("service.name")).as_deref(),
                Some("checkout")
            );
            assert_eq!(
                string_of(resource.get("service.version")).as_deref(),
                Some("1.4.2")
            );
            assert_eq!(
                string_of(resource.get("shipd.source")).as_deref(),
                Some("otlp")
            );
            assert_eq!(
                string_of(resource.get("host.name")).as_deref(),
                Some("test-node")
            );
            for sl in &rl.scope_logs {
                for lr in &sl.log_records {
                    seen += 1;
                    assert_eq!(lr.severity_number, 17);
                    assert_eq!(lr.severity_text, "ERROR");
                    let attrs = kv_map(&lr.attributes);
                    assert!(matches!(
                        attrs.get("order.items"),
                        Some(any_value::Value::IntValue(_))
                    ));
                    let Some(any_value::Value::KvlistValue(http)) = attrs.get("http") else {
                        panic!("nested map lost: {attrs:?}");
                    };
                    assert_eq!(
                        http.values[0].value.clone().unwrap().value,
                        Some(any_value::Value::IntValue(502))
                    );
                    assert_eq!(string_of(attrs.get("trace_id")), Some("ab".repeat(16)));
                    assert_eq!(string_of(attrs.get("span_id")), Some("cd".repeat(8)));
                    assert_eq!(
                        string_of(attrs.get("otel.scope.name")).as_deref(),
                        Some("checkout-lib")
                    );
                    // Received data is not replayable: no deterministic uid.
                    assert!(!attrs.contains_key("log.record.uid"));
                    assert!(lr.time_unix_nano > 0);
                }
            }
        }
    }
    assert_eq!(seen, want.len(), "each record delivered once");
    assert_eq!(
        agent
            .shipd
            .metric("shipd_events_in_total{component=\"otlp\"}"),
        want.len() as u64
    );
    assert_eq!(agent.shipd.terminate(), Some(0));
}

fn metrics_request(prefix: &str) -> ExportMetricsServiceRequest {
    let now = now_ns();
    let start = now - 60_000_000_000;
    let number = |v: f64, attrs: Vec<KeyValue>| NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![s("service.name", "checkout")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics: vec![
                    Metric {
                        name: format!("{prefix}.queue.depth"),
                        unit: "{item}".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![number(7.0, vec![s("queue", "orders")])],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: format!("{prefix}.orders"),
                        unit: "{order}".into(),
                        data: Some(Data::Sum(Sum {
                            data_points: vec![number(1234.0, vec![s("status", "ok")])],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: format!("{prefix}.latency"),
                        unit: "ms".into(),
                        data: Some(Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                attributes: vec![s("route", "/pay")],
                                start_time_unix_nano: start,
                                time_unix_nano: now,
                                count: 10,
                                sum: Some(420.0),
                                bucket_counts: vec![2, 5, 3],
                                explicit_bounds: vec![10.0, 50.0],
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        })),
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Checks the three metrics of [`metrics_request`] with `prefix` were delivered intact.
fn check_metrics(delivered: &Delivered, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mine = loop {
        let mine: Vec<_> = delivered
            .metrics()
            .into_iter()
            .filter(|(m, _)| m.name.starts_with(prefix))
            .collect();
        if mine.len() >= 3 || Instant::now() > deadline {
            break mine;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(mine.len(), 3, "{mine:?}");
    for (m, resource) in &mine {
        assert_eq!(
            string_of(resource.get("service.name")).as_deref(),
            Some("checkout")
        );
        assert_eq!(
            string_of(resource.get("shipd.source")).as_deref(),
            Some("otlp")
        );
        match &m.data {
            Some(Data::Gauge(g)) => {
                assert_eq!(m.unit, "{item}");
                let p = &g.data_points[0];
                assert_eq!(p.value, Some(number_data_point::Value::AsDouble(7.0)));
                assert_eq!(
                    string_of(kv_map(&p.attributes).get("queue")).as_deref(),
                    Some("orders")
                );
            }
            Some(Data::Sum(sum)) => {
                assert!(sum.is_monotonic);
                assert_eq!(
                    sum.aggregation_temporality,
                    AggregationTemporality::Cumulative as i32
                );
                assert_eq!(
                    sum.data_points[0].value,
                    Some(number_data_point::Value::AsDouble(1234.0))
                );
                assert!(sum.data_points[0].start_time_unix_nano > 0);
            }
            Some(Data::Histogram(h)) => {
                let p = &h.data_points[0];
                assert_eq!((p.count, p.sum), (10, Some(420.0)));
                assert_eq!(p.bucket_counts, vec![2, 5, 3]);
                assert_eq!(p.explicit_bounds, vec![10.0, 50.0]);
                assert_eq!(
                    string_of(kv_map(&p.attributes).get("route")).as_deref(),
                    Some("/pay")
                );
            }
            other => panic!("unexpected metric data {other:?}"),
        }
    }
}

#[test]
fn metrics_over_grpc_and_http_arrive_with_histogram_buckets_and_labels_intact() {
    let rt = runtime();
    let (o2, delivered) = openobserve(&rt);
    let agent = start_agent(o2, &[]);

    rt.block_on(async {
        let mut client = MetricsServiceClient::connect(format!("http://{}", agent.grpc))
            .await
            .unwrap()
            .send_compressed(CompressionEncoding::Zstd);
        client
            .export(metrics_request("grpcapp"))
            .await
            .expect("gRPC export is OK");
    });
    let wire = zstd::encode_all(&metrics_request("httpapp").encode_to_vec()[..], 1).unwrap();
    let answer = post(
        &rt,
        &format!("http://{}/v1/metrics", agent.http),
        wire,
        Some("zstd"),
    );
    assert_eq!(answer.status, 200);

    check_metrics(&delivered, "grpcapp");
    check_metrics(&delivered, "httpapp");
    assert_eq!(agent.shipd.terminate(), Some(0));
}

#[test]
fn python_opentelemetry_proto_client_posts_logs_and_metrics_over_http() {
    let rt = runtime();
    let (o2, delivered) = openobserve(&rt);
    let agent = start_agent(o2, &[]);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/otlp_post.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", agent.http))
        .arg("pyclient")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python client failed (pip install opentelemetry-proto): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["logs"], serde_json::json!([200, true]));
    assert_eq!(report["metrics"], serde_json::json!([200, true]));

    let want = bodies_of_python("pyclient");
    let missing = delivered.wait_for_bodies(&want, Duration::from_secs(20));
    assert!(missing.is_empty(), "missing {missing:?}");
    let records: Vec<_> = delivered
        .logs
        .lock()
        .unwrap()
        .iter()
        .flat_map(records_of)
        .collect();
    for r in &records {
        assert_eq!(
            string_of(r.resource.get("service.name")).as_deref(),
            Some("py-pyclient")
        );
        assert_eq!(
            string_of(r.resource.get("deployment.environment")).as_deref(),
            Some("test")
        );
        assert_eq!(r.attr_str("client").as_deref(), Some("python"));
        assert_eq!(
            r.attr_str("otel.scope.name").as_deref(),
            Some("python-client")
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let gauge = loop {
        let found = delivered
            .metrics()
            .into_iter()
            .find(|(m, _)| m.name == "pyclient.temperature");
        if found.is_some() || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (metric, _) = gauge.expect("the python gauge arrives");
    let Some(Data::Gauge(g)) = metric.data else {
        panic!("not a gauge: {metric:?}");
    };
    assert_eq!(
        g.data_points[0].value,
        Some(number_data_point::Value::AsDouble(21.5))
    );
    assert_eq!(agent.shipd.terminate(), Some(0));
}

fn bodies_of_python(tag: &str) -> Vec<String> {
    (0..3).map(|k| format!("{tag}-{k}")).collect()
}

#[test]
fn malformed_bodies_are_refused_with_400_and_nothing_else_is_lost() {
    let rt = runtime();
    let (o2, delivered) = openobserve(&rt);
    let agent = start_agent(o2, &[]);
    let url = format!("http://{}/v1/logs", agent.http);

    let before = bodies("before", 3);
    assert_eq!(
        post(&rt, &url, log_request("app", &before).encode_to_vec(), None).status,
        200
    );

    // Not protobuf at all.
    let garbage = post(
        &rt,
        &url,
        b"\xff\xff\xff\xff this is not protobuf".to_vec(),
        None,
    );
    assert_eq!(garbage.status, 400);
    // Claims gzip, is not.
    let bad_gzip = post(
        &rt,
        &url,
        log_request("app", &bodies("lost", 2)).encode_to_vec(),
        Some("gzip"),
    );
    assert_eq!(bad_gzip.status, 400);
    // A truncated protobuf message.
    let mut truncated = log_request("app", &bodies("cut", 2)).encode_to_vec();
    truncated.truncate(truncated.len() - 7);
    assert_eq!(post(&rt, &url, gzip(&truncated), Some("gzip")).status, 400);
    // The 400 body is a google.rpc.Status: code 3 (INVALID_ARGUMENT) and a message.
    let status = decode_rpc_status(&garbage.body);
    assert_eq!(status.0, 3);
    assert!(
        status.1.contains("not an OTLP export request"),
        "{}",
        status.1
    );

    let after = bodies("after", 3);
    assert_eq!(
        post(&rt, &url, log_request("app", &after).encode_to_vec(), None).status,
        200
    );

    let want: Vec<String> = before.iter().chain(&after).cloned().collect();
    let missing = delivered.wait_for_bodies(&want, Duration::from_secs(20));
    assert!(missing.is_empty(), "missing {missing:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        delivered.bodies().len(),
        want.len(),
        "only the good records arrive"
    );
    assert_eq!(
        agent
            .shipd
            .metric("shipd_otlp_refused_total{component=\"otlp\",reason=\"malformed\"}"),
        3
    );
    assert_eq!(agent.shipd.terminate(), Some(0));
}

/// `google.rpc.Status` fields 1 (code) and 2 (message), read by hand.
fn decode_rpc_status(body: &[u8]) -> (i32, String) {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let s = Status::decode(body).expect("error body is a google.rpc.Status");
    (s.code, s.message)
}

/// Records that compress poorly (a pseudo-random hex tail), so a small
/// spill buffer fills after a few dozen requests.
fn bulky_bodies(tag: &str, n: usize) -> Vec<String> {
    let mut x = tag.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (0..n)
        .map(|k| {
            let noise: String = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{x:016x}")
                })
                .collect();
            format!("{tag} order {k} failed: {noise}")
        })
        .collect()
}

#[test]
fn received_data_spills_while_openobserve_is_down_then_a_full_spill_answers_429_and_resource_exhausted_and_nothing_is_lost(
) {
    let rt = runtime();
    let (o2, delivered) = openobserve(&rt);
    delivered.down.store(true, Ordering::SeqCst);
    let agent = start_agent(
        o2,
        &[
            ("SHIPD_CHANNEL_BYTES", "32KiB"),
            ("SHIPD_IN_FLIGHT", "1"),
            ("SHIPD_BATCH_MAX_BYTES", "64KiB"),
            ("SHIPD_BATCH_MAX_EVENTS", "50"),
            ("SHIPD_BUFFER_MAX_SIZE", "1MiB"),
            ("SHIPD_BUFFER_SEGMENT_SIZE", "256KiB"),
            ("SHIPD_BUFFER_WHEN_FULL", "block"),
        ],
    );
    let url = format!("http://{}/v1/logs", agent.http);
    let request_bodies = |n: usize| bulky_bodies(&format!("bp{n:03}"), 50);

    // While OpenObserve refuses, received data goes to the spill buffer
    // (it cannot be read again); once that is full, the receiver pushes back.
    let mut accepted: Vec<String> = Vec::new();
    let mut refused: Option<usize> = None;
    for n in 0..400 {
        let answer = post(
            &rt,
            &url,
            log_request("app", &request_bodies(n)).encode_to_vec(),
            None,
        );
        match answer.status {
            200 => accepted.extend(request_bodies(n)),
            429 => {
                assert_eq!(answer.retry_after.as_deref(), Some("1"));
                assert_eq!(decode_rpc_status(&answer.body).0, 8);
                refused = Some(n);
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let refused = refused.expect("a full spill buffer answers 429 within 400 requests");
    assert!(
        agent
            .shipd
            .metric("shipd_spilled_events_total{component=\"openobserve\"}")
            > 0,
        "received data spilled to disk while OpenObserve was down"
    );
    assert!(
        !accepted.is_empty(),
        "some requests fit before the pipeline filled"
    );
    let grpc_bodies = bodies("bp-grpc", 50);
    let grpc = grpc_logs(&rt, agent.grpc, log_request("app", &grpc_bodies));
    assert_eq!(
        grpc.expect_err("gRPC is refused while full").code(),
        tonic::Code::ResourceExhausted
    );
    assert!(
        delivered.refused.load(Ordering::SeqCst) > 0,
        "OpenObserve was down"
    );
    assert!(delivered.bodies().is_empty());

    // OpenObserve recovers: the app retries what was refused, as OTLP clients do.
    delivered.down.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = post(
            &rt,
            &url,
            log_request("app", &request_bodies(refused)).encode_to_vec(),
            None,
        );
        if answer.status == 200 {
            accepted.extend(request_bodies(refused));
            break;
        }
        assert_eq!(answer.status, 429);
        assert!(Instant::now() < deadline, "never accepted after recovery");
        std::thread::sleep(Duration::from_secs(1));
    }
    loop {
        match grpc_logs(&rt, agent.grpc, log_request("app", &grpc_bodies)) {
            Ok(()) => break,
            Err(s) => assert_eq!(s.code(), tonic::Code::ResourceExhausted),
        }
        assert!(
            Instant::now() < deadline,
            "gRPC never accepted after recovery"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    accepted.extend(grpc_bodies);

    let missing = delivered.wait_for_bodies(&accepted, Duration::from_secs(30));
    assert!(
        missing.is_empty(),
        "{} accepted records lost",
        missing.len()
    );
    let delivered_set: BTreeSet<String> = delivered.bodies().into_iter().collect();
    assert_eq!(
        delivered_set.len(),
        accepted.len(),
        "nothing refused slipped through"
    );
    assert!(
        agent
            .shipd
            .metric("shipd_otlp_refused_total{component=\"otlp\",reason=\"backpressure\"}")
            >= 2
    );
    eprintln!(
        "accepted {} requests before the first 429; {} records in all",
        refused,
        accepted.len()
    );
    assert_eq!(agent.shipd.terminate(), Some(0));
}

#[test]
fn a_receiver_port_in_use_fails_the_start_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "SHIPD_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("SHIPD_OTLP_RECEIVER", "on".to_owned()),
        ("SHIPD_OTLP_GRPC_ADDRESS", "off".to_owned()),
        ("SHIPD_OTLP_HTTP_ADDRESS", format!("127.0.0.1:{port}")),
    ];
    let log = dir.path().join("shipd.log");
    let mut shipd = Shipd::start(&env, &log);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = shipd.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "shipd kept running on a taken port"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let text = std::fs::read_to_string(Path::new(&log)).unwrap();
    assert!(
        text.contains(&format!("cannot listen for OTLP/HTTP on 127.0.0.1:{port}")),
        "{text}"
    );
}

// --- TLS terminated by the receiver itself -------------------------------

/// A private CA named `ca_name` and the server certificate it signs for
/// `localhost` and 127.0.0.1, as PEM files in a temporary directory.
struct ReceiverCerts {
    /// The CA certificate (PEM): what a client must trust.
    ca_pem: String,
    /// The server's chain (its certificate, then the CA's).
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn receiver_certs(ca_name: &str) -> ReceiverCerts {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let leaf = params.signed_by(&key, &issuer).unwrap();

    let cert = dir.path().join("otlp.pem");
    let key_file = dir.path().join("otlp-key.pem");
    std::fs::write(&cert, format!("{}{}", leaf.pem(), ca_pem)).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    ReceiverCerts {
        ca_pem,
        cert,
        key: key_file,
        _dir: dir,
    }
}

/// The agent's extra environment for a TLS receiver with `certs`.
fn tls_env(certs: &ReceiverCerts) -> [(&'static str, &str); 2] {
    [
        ("SHIPD_OTLP_TLS_CERT_FILE", certs.cert.to_str().unwrap()),
        ("SHIPD_OTLP_TLS_KEY_FILE", certs.key.to_str().unwrap()),
    ]
}

/// An HTTPS client trusting only the CA `ca_pem`.
fn https_client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// POSTs an OTLP/HTTP protobuf body with `client`; the status, or the
/// error when no HTTP answer came.
fn post_with(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<u16, String> {
    rt.block_on(async {
        let resp = client
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| format!("{e:?}"))?;
        if status == 200 {
            assert!(ExportLogsServiceResponse::decode(&body[..]).is_ok());
        }
        Ok(status)
    })
}

/// Exports `req` over OTLP/gRPC with TLS to `https://{host}:{port}`,
/// trusting only the CA `ca_pem`; the connection is built as shipd's own
/// gRPC sink builds it (tonic here has no TLS of its own).
fn grpc_tls_logs(
    rt: &tokio::runtime::Runtime,
    ca_pem: &str,
    host: &str,
    port: u16,
    req: ExportLogsServiceRequest,
) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http2()
        .wrap_connector(http);
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{host}:{port}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(15))
            .connect_with_connector(connector)
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        LogsServiceClient::new(channel)
            .send_compressed(CompressionEncoding::Gzip)
            .export(req)
            .await
            .map(|_| ())
            .map_err(|e| format!("export: {e:?}"))
    })
}

/// Exports `req` over plaintext OTLP/gRPC; an error when anything fails.
fn grpc_plaintext_logs(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    req: ExportLogsServiceRequest,
) -> Result<(), String> {
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(15))
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        LogsServiceClient::new(channel)
            .export(req)
            .await
            .map(|_| ())
            .map_err(|e| format!("export: {e:?}"))
    })
}

const TLS_FAILURES: &str = "shipd_tls_handshake_failures_total{component=\"otlp\"}";

/// Waits until the agent counted at least `want` failed handshakes;
/// returns the count.
fn failures_reach(shipd: &Shipd, want: u64, what: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = shipd.metric(TLS_FAILURES);
        if got >= want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not counted: {got} < {want}\n{}",
            shipd.metrics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Like [`failures_reach`], and the count stays at exactly `want`: one
/// failed handshake is one count.
fn failures_become(shipd: &Shipd, want: u64, what: &str) {
    failures_reach(shipd, want, what);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(shipd.metric(TLS_FAILURES), want, "{what} counted once");
}

/// Posts `bodies` over HTTPS and over gRPC with TLS; both must succeed.
fn send_over_tls(
    rt: &tokio::runtime::Runtime,
    agent: &Agent,
    certs: &ReceiverCerts,
    tag: &str,
) -> Vec<String> {
    let over_https = bodies(&format!("{tag}-https"), 3);
    assert_eq!(
        post_with(
            rt,
            &https_client(&certs.ca_pem),
            &format!("https://localhost:{}/v1/logs", agent.http.port()),
            log_request("app", &over_https).encode_to_vec()
        ),
        Ok(200),
        "{tag}: OTLP/HTTP over TLS"
    );
    let over_grpc = bodies(&format!("{tag}-grpc"), 3);
    grpc_tls_logs(
        rt,
        &certs.ca_pem,
        "127.0.0.1",
        agent.grpc.port(),
        log_request("app", &over_grpc),
    )
    .unwrap_or_else(|e| panic!("{tag}: OTLP/gRPC over TLS: {e}"));
    over_https.into_iter().chain(over_grpc).collect()
}

#[test]
fn otlp_receiver_with_tls_accepts_logs_over_https_and_grpc_with_tls_and_delivers_them() {
    let rt = runtime();
    let certs = receiver_certs("shipd OTLP receiver test CA");
    let (o2, delivered) = openobserve(&rt);
    let agent = start_agent(o2, &tls_env(&certs));
    let client = https_client(&certs.ca_pem);

    // OTLP/HTTP over TLS, by IP address (the certificate's IP SAN), plain
    // protobuf and gzip.
    let over_https = bodies("https", 5);
    let url = format!("https://127.0.0.1:{}/v1/logs", agent.http.port());
    assert_eq!(
        post_with(
            &rt,
            &client,
            &url,
            log_request("checkout", &over_https[..2]).encode_to_vec()
        ),
        Ok(200)
    );
    let answer = rt.block_on(async {
        let resp = client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "gzip")
            .body(gzip(
                &log_request("checkout", &over_https[2..]).encode_to_vec(),
            ))
            .send()
            .await
            .expect("the TLS receiver answers");
        assert_eq!(resp.version(), reqwest::Version::HTTP_11, "ALPN http/1.1");
        resp.status().as_u16()
    });
    assert_eq!(answer, 200);

    // OTLP/gRPC over TLS (ALPN h2), by host name (the certificate's DNS SAN).
    let over_grpc = bodies("grpcs", 5);
    grpc_tls_logs(
        &rt,
        &certs.ca_pem,
        "localhost",
        agent.grpc.port(),
        log_request("checkout", &over_grpc),
    )
    .expect("gRPC over TLS export is OK");

    let mut want: Vec<String> = over_https.iter().chain(&over_grpc).cloned().collect();
    let missing = delivered.wait_for_bodies(&want, Duration::from_secs(20));
    assert!(missing.is_empty(), "missing {missing:?}");
    std::thread::sleep(Duration::from_millis(300));
    let mut got = delivered.bodies();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every record exactly once, nothing else");
    for r in delivered.logs.lock().unwrap().iter().flat_map(records_of) {
        assert_eq!(
            string_of(r.resource.get("service.name")).as_deref(),
            Some("checkout")
        );
        assert_eq!(
            string_of(r.resource.get("shipd.source")).as_deref(),
            Some("otlp")
        );
    }
    assert_eq!(agent.shipd.metric(TLS_FAILURES), 0, "no failed handshake");
    assert_eq!(agent.shipd.terminate(), Some(0));
}

#[test]
fn a_plaintext_client_of_a_tls_receiver_is_refused_and_counted_and_tls_clients_still_work() {
    let rt = runtime();
    let certs = receiver_certs("shipd OTLP receiver test CA");
    let (o2, delivered) = openobserve(&rt);
    let agent = start_agent(o2, &tls_env(&certs));

    let mut want = send_over_tls(&rt, &agent, &certs, "before");
    assert_eq!(agent.shipd.metric(TLS_FAILURES), 0);

    // Silent clients (TCP, never a ClientHello) on both ports: they hold
    // no one up while they stay connected.
    let silent: Vec<std::net::TcpStream> = [agent.http, agent.grpc]
        .iter()
        .map(|a| std::net::TcpStream::connect(a).unwrap())
        .collect();

    // Plaintext OTLP/HTTP to the TLS port: no HTTP answer, a failed handshake.
    let answer = post_with(
        &rt,
        &reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap(),
        &format!("http://{}/v1/logs", agent.http),
        log_request("app", &bodies("plain-http", 3)).encode_to_vec(),
    );
    assert_ne!(answer, Ok(200), "plaintext HTTP was accepted");
    eprintln!("plaintext OTLP/HTTP: {answer:?}");
    failures_become(&agent.shipd, 1, "plaintext HTTP");

    // A TLS client that does not trust the receiver's CA.
    let stranger = receiver_certs("some other CA");
    let answer = post_with(
        &rt,
        &https_client(&stranger.ca_pem),
        &format!("https://localhost:{}/v1/logs", agent.http.port()),
        log_request("app", &bodies("untrusted", 2)).encode_to_vec(),
    );
    let error = answer.expect_err("a client of another CA cannot connect");
    assert!(error.contains("UnknownIssuer"), "{error}");
    failures_become(&agent.shipd, 2, "an untrusting client");

    // TLS clients work on both ports while the silent clients are connected.
    want.extend(send_over_tls(&rt, &agent, &certs, "meanwhile"));

    // The silent clients hang up: their handshakes failed too.
    drop(silent);
    failures_become(&agent.shipd, 4, "the silent clients");

    // Plaintext OTLP/gRPC (h2c) to the TLS port. tonic may reconnect once
    // in the background, so this counts at least one.
    let answer = grpc_plaintext_logs(
        &rt,
        agent.grpc,
        log_request("app", &bodies("plain-grpc", 3)),
    );
    assert!(answer.is_err(), "plaintext gRPC was accepted");
    eprintln!("plaintext OTLP/gRPC: {answer:?}");
    failures_reach(&agent.shipd, 5, "plaintext gRPC");

    // TLS clients still work after all of that.
    want.extend(send_over_tls(&rt, &agent, &certs, "after"));

    let missing = delivered.wait_for_bodies(&want, Duration::from_secs(20));
    assert!(missing.is_empty(), "missing {missing:?}");
    std::thread::sleep(Duration::from_millis(300));
    let mut got = delivered.bodies();
    got.sort();
    want.sort();
    assert_eq!(got, want, "only what TLS clients sent arrives, once");

    let log = agent.shipd.log();
    assert!(
        log.contains("TLS handshake with an OTLP client failed"),
        "{log}"
    );
    eprintln!(
        "handshake failures counted: {}",
        agent.shipd.metric(TLS_FAILURES)
    );
    assert_eq!(agent.shipd.terminate(), Some(0));
}

#[test]
fn an_otlp_source_with_tls_in_a_ship_file_serves_tls_only_and_counts_failures_under_its_name() {
    let rt = runtime();
    let certs = receiver_certs("shipd OTLP receiver test CA");
    let (o2, delivered) = openobserve(&rt);
    let dir = tempfile::tempdir().unwrap();
    let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = dir.path().join("pipeline.ship");
    std::fs::write(
        &config,
        format!(
            r#"settings {{ data_dir = "{data}" }}
source apps = otlp {{
  grpc_address = "{grpc}"
  http_address = "{http}"
  tls = {{ cert_file: "{cert}", key_file: "{key}" }}
}}
sink o2 = openobserve {{
  url = "http://{o2}", org = "pis", user = "root@example.com", password = "pw",
  batch.timeout = 100ms, retry_max = 500ms
}}
route {{
  else => o2
}}
"#,
            data = dir.path().join("data").display(),
            cert = certs.cert.display(),
            key = certs.key.display(),
        ),
    )
    .unwrap();
    let shipd = Shipd::start_with_args(
        &["--config", config.to_str().unwrap()],
        &[],
        &dir.path().join("shipd.log"),
    );
    assert!(
        shipd.wait_log("OTLP/HTTP receiver listening", Duration::from_secs(20))
            && shipd.wait_log("OTLP/gRPC receiver listening", Duration::from_secs(5)),
        "receiver did not start: {}",
        shipd.log()
    );
    let failures = "shipd_tls_handshake_failures_total{component=\"apps\"}";

    let over_https = bodies("ship-https", 3);
    assert_eq!(
        post_with(
            &rt,
            &https_client(&certs.ca_pem),
            &format!("https://localhost:{}/v1/logs", http.port()),
            log_request("app", &over_https).encode_to_vec()
        ),
        Ok(200)
    );
    let over_grpc = bodies("ship-grpc", 3);
    grpc_tls_logs(
        &rt,
        &certs.ca_pem,
        "localhost",
        grpc.port(),
        log_request("app", &over_grpc),
    )
    .expect("gRPC over TLS export is OK");
    assert_eq!(shipd.metric(failures), 0);

    let answer = post_with(
        &rt,
        &reqwest::Client::new(),
        &format!("http://{http}/v1/logs"),
        log_request("app", &bodies("ship-plain", 3)).encode_to_vec(),
    );
    assert_ne!(answer, Ok(200), "plaintext HTTP was accepted");
    let deadline = Instant::now() + Duration::from_secs(15);
    while shipd.metric(failures) == 0 {
        assert!(Instant::now() < deadline, "{}", shipd.metrics());
        std::thread::sleep(Duration::from_millis(50));
    }

    let want: Vec<String> = over_https.iter().chain(&over_grpc).cloned().collect();
    let missing = delivered.wait_for_bodies(&want, Duration::from_secs(20));
    assert!(missing.is_empty(), "missing {missing:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(delivered.bodies().len(), want.len(), "nothing else arrives");
    for r in delivered.logs.lock().unwrap().iter().flat_map(records_of) {
        assert_eq!(
            string_of(r.resource.get("shipd.source")).as_deref(),
            Some("apps")
        );
    }
    assert_eq!(shipd.terminate(), Some(0));
}
