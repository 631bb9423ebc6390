//! A fault-test receiver: OTLP/HTTP logs and metrics on 127.0.0.1 that can
//! be switched "down" (every request answers 503, retried by shipd) and
//! records every accepted log body and metric data point (duplicates
//! included) so tests can count lost and duplicated data.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use std::collections::HashSet;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One accepted metric data point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    /// `k=v` pairs, sorted.
    pub labels: Vec<String>,
    pub time_unix_nano: u64,
    pub start_time_unix_nano: u64,
    pub value: f64,
    /// A histogram's count, bounds and per-bucket counts.
    pub histogram: Option<(u64, Vec<f64>, Vec<u64>)>,
}

impl Point {
    /// Identity of the point: name, labels and time.
    pub fn key(&self) -> String {
        format!(
            "{}{{{}}}@{}",
            self.name,
            self.labels.join(","),
            self.time_unix_nano
        )
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}

#[derive(Default)]
pub struct Received {
    pub down: AtomicBool,
    pub refused: AtomicUsize,
    pub log_bodies: Mutex<Vec<String>>,
    pub points: Mutex<Vec<Point>>,
}

/// A running receiver.
pub struct FaultReceiver {
    pub addr: SocketAddr,
    pub received: Arc<Received>,
}

impl FaultReceiver {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request answers 503 while down.
    pub fn set_down(&self, down: bool) {
        self.received.down.store(down, Ordering::SeqCst);
    }

    pub fn log_bodies(&self) -> Vec<String> {
        self.received.log_bodies.lock().unwrap().clone()
    }

    pub fn points(&self) -> Vec<Point> {
        self.received.points.lock().unwrap().clone()
    }

    pub fn distinct_point_keys(&self) -> HashSet<String> {
        self.points().iter().map(Point::key).collect()
    }

    /// Waits until every line of `expected` arrived; returns how many are missing.
    pub fn wait_for_lines(&self, expected: &[String], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let missing = {
                let bodies = self.received.log_bodies.lock().unwrap();
                let seen: HashSet<&str> = bodies.iter().map(String::as_str).collect();
                expected
                    .iter()
                    .filter(|l| !seen.contains(l.as_str()))
                    .count()
            };
            if missing == 0 || Instant::now() > deadline {
                return missing;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until at least `n` distinct points (name, labels, time) arrived.
    pub fn wait_distinct_points(&self, n: u64, timeout: Duration) -> bool {
        self.wait_points(timeout, |points| {
            points.iter().map(Point::key).collect::<HashSet<_>>().len() as u64 >= n
        })
    }

    /// Waits until `done` holds for the accepted points.
    pub fn wait_points(&self, timeout: Duration, done: impl Fn(&[Point]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.received.points.lock().unwrap()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn decompress(headers: &HeaderMap, body: &[u8]) -> Option<Vec<u8>> {
    match headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
    {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .ok()?;
            Some(out)
        }
        Some("zstd") => zstd::decode_all(body).ok(),
        _ => Some(body.to_vec()),
    }
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.clone()) {
        Some(any_value::Value::StringValue(s)) => s,
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn labels(attrs: &[KeyValue]) -> Vec<String> {
    let mut l: Vec<String> = attrs
        .iter()
        .map(|kv| format!("{}={}", kv.key, text(&kv.value)))
        .collect();
    l.sort();
    l
}

async fn logs(
    State(r): State<Arc<Received>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    if r.down.load(Ordering::SeqCst) {
        r.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, b"down".to_vec());
    }
    let Some(req) =
        decompress(&headers, &body).and_then(|raw| ExportLogsServiceRequest::decode(&raw[..]).ok())
    else {
        return (StatusCode::BAD_REQUEST, b"bad body".to_vec());
    };
    let bodies = req
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|l| text(&l.body));
    r.log_bodies.lock().unwrap().extend(bodies);
    (
        StatusCode::OK,
        ExportLogsServiceResponse::default().encode_to_vec(),
    )
}

async fn metrics(
    State(r): State<Arc<Received>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    if r.down.load(Ordering::SeqCst) {
        r.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, b"down".to_vec());
    }
    let Some(req) = decompress(&headers, &body)
        .and_then(|raw| ExportMetricsServiceRequest::decode(&raw[..]).ok())
    else {
        return (StatusCode::BAD_REQUEST, b"bad body".to_vec());
    };
    let mut points = Vec::new();
    for m in req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        let mut push = |attrs: &[KeyValue], (time, start): (u64, u64), value: f64, histogram| {
            points.push(Point {
                name: m.name.clone(),
                labels: labels(attrs),
                time_unix_nano: time,
                start_time_unix_nano: start,
                value,
                histogram,
            })
        };
        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as N;
        let number = |v: &Option<N>| match v {
            Some(N::AsDouble(d)) => *d,
            Some(N::AsInt(i)) => *i as f64,
            None => f64::NAN,
        };
        match &m.data {
            Some(Data::Gauge(g)) => g.data_points.iter().for_each(|p| {
                let times = (p.time_unix_nano, p.start_time_unix_nano);
                push(&p.attributes, times, number(&p.value), None)
            }),
            Some(Data::Sum(s)) => s.data_points.iter().for_each(|p| {
                let times = (p.time_unix_nano, p.start_time_unix_nano);
                push(&p.attributes, times, number(&p.value), None)
            }),
            Some(Data::Histogram(h)) => h.data_points.iter().for_each(|p| {
                let times = (p.time_unix_nano, p.start_time_unix_nano);
                let shape = (p.count, p.explicit_bounds.clone(), p.bucket_counts.clone());
                push(&p.attributes, times, p.sum.unwrap_or(0.0), Some(shape))
            }),
            Some(Data::Summary(s)) => s.data_points.iter().for_each(|p| {
                let times = (p.time_unix_nano, p.start_time_unix_nano);
                push(&p.attributes, times, p.sum, None)
            }),
            _ => {}
        }
    }
    r.points.lock().unwrap().extend(points);
    (
        StatusCode::OK,
        ExportMetricsServiceResponse::default().encode_to_vec(),
    )
}

/// Starts the receiver on 127.0.0.1 (up).
pub fn start(rt: &tokio::runtime::Runtime) -> FaultReceiver {
    let received = Arc::new(Received::default());
    let app = axum::Router::new()
        .route("/api/{org}/v1/logs", axum::routing::post(logs))
        .route("/api/{org}/v1/metrics", axum::routing::post(metrics))
        .with_state(Arc::clone(&received));
    let addr = crate::common::serve_http(rt, app);
    FaultReceiver { addr, received }
}
