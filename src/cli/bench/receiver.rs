//! The bench's OTLP/HTTP receiver: accepts `POST /api/{org}/v1/logs` and
//! `/v1/metrics` on loopback, decompresses each body, counts log records by
//! walking the protobuf wire format (no decoding into structs), finds the
//! latency probes embedded in record bodies and answers 200. It can be
//! throttled to a fixed capacity in records per second (the burst scenario).
//! It runs on its own thread and single-threaded runtime, so its cost stays
//! out of the measured agent's process. It never stores what it receives.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header::CONTENT_ENCODING, HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The marker a latency probe line carries, followed by its write time in
/// ns since the epoch.
pub const PROBE_MARKER: &str = "shipd-bench-probe t=";

/// What the receiver counted so far.
#[derive(Debug, Default)]
pub struct ReceiverCounts {
    pub log_records: AtomicU64,
    pub probe_records: AtomicU64,
    pub log_requests: AtomicU64,
    pub metric_requests: AtomicU64,
    /// Compressed request body bytes.
    pub wire_bytes: AtomicU64,
    /// Decompressed request body bytes.
    pub raw_bytes: AtomicU64,
    /// Bodies that could not be decompressed or walked.
    pub malformed: AtomicU64,
    /// Probe latencies in ns, write time to receipt.
    latencies: Mutex<Vec<u64>>,
}

impl ReceiverCounts {
    pub fn log_records(&self) -> u64 {
        self.log_records.load(Ordering::Relaxed)
    }

    /// Log records that were not latency probes.
    pub fn payload_records(&self) -> u64 {
        self.log_records() - self.probe_records.load(Ordering::Relaxed)
    }

    /// Takes the probe latencies collected so far.
    pub fn take_latencies(&self) -> Vec<u64> {
        match self.latencies.lock() {
            Ok(mut l) => std::mem::take(&mut *l),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    pub counts: Arc<ReceiverCounts>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Starts a receiver; `capacity` (records per second) throttles it.
    pub fn start(capacity: Option<f64>) -> std::io::Result<Receiver> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(ReceiverCounts::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let state = Ingest {
            counts: Arc::clone(&counts),
            throttle: capacity.map(|c| Arc::new(Throttle::new(c))),
        };
        let thread = std::thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let app = axum::Router::new()
                        .route("/api/{org}/v1/logs", post(logs))
                        .route("/api/{org}/v1/metrics", post(metrics))
                        .layer(DefaultBodyLimit::disable())
                        .with_state(state);
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("bench receiver: {e}");
                            return;
                        }
                    };
                    let shutdown = async {
                        let _ = stop_rx.await;
                    };
                    if let Err(e) = axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                    {
                        eprintln!("bench receiver: {e}");
                    }
                });
            })?;
        Ok(Receiver {
            addr,
            counts,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The base URL to give the agent as its OpenObserve URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Clone)]
struct Ingest {
    counts: Arc<ReceiverCounts>,
    throttle: Option<Arc<Throttle>>,
}

/// Serialises requests so that at most `capacity` records per second are
/// accepted: each request holds the line for `records / capacity` seconds.
struct Throttle {
    capacity: f64,
    next_free: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Throttle {
    fn new(capacity: f64) -> Self {
        Throttle {
            capacity: capacity.max(1.0),
            next_free: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    async fn admit(&self, records: u64) {
        let done = {
            let mut next_free = self.next_free.lock().await;
            let start = (*next_free).max(tokio::time::Instant::now());
            *next_free = start + Duration::from_secs_f64(records as f64 / self.capacity);
            *next_free
        };
        tokio::time::sleep_until(done).await;
    }
}

async fn logs(State(state): State<Ingest>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let counts = &state.counts;
    let Some(raw) = decompress(&headers, &body) else {
        counts.malformed.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    };
    let Some(records) = count_log_records(&raw) else {
        counts.malformed.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    };
    let probes = probe_times(&raw);
    if let Some(throttle) = &state.throttle {
        throttle.admit(records).await;
    }
    let received_at = crate::event::unix_nanos(std::time::SystemTime::now());
    if !probes.is_empty() {
        let mut latencies = match counts.latencies.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        latencies.extend(probes.iter().map(|t| received_at.saturating_sub(*t)));
    }
    counts
        .probe_records
        .fetch_add(probes.len() as u64, Ordering::Relaxed);
    counts.log_requests.fetch_add(1, Ordering::Relaxed);
    counts
        .wire_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    counts
        .raw_bytes
        .fetch_add(raw.len() as u64, Ordering::Relaxed);
    counts.log_records.fetch_add(records, Ordering::Relaxed);
    StatusCode::OK
}

async fn metrics(State(state): State<Ingest>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if decompress(&headers, &body).is_none() {
        state.counts.malformed.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    }
    state.counts.metric_requests.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

fn decompress(headers: &HeaderMap, body: &Bytes) -> Option<Vec<u8>> {
    match headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None => Some(body.to_vec()),
        Some(b"gzip") => {
            let mut out = Vec::with_capacity(body.len() * 8);
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .ok()?;
            Some(out)
        }
        Some(b"zstd") => zstd::stream::decode_all(&body[..]).ok(),
        Some(_) => None,
    }
}

/// The write times embedded in the probe lines of a request body.
pub fn probe_times(raw: &[u8]) -> Vec<u64> {
    memchr::memmem::find_iter(raw, PROBE_MARKER.as_bytes())
        .filter_map(|at| {
            let digits = &raw[at + PROBE_MARKER.len()..];
            let end = digits
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(digits.len());
            std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
        })
        .collect()
}

/// Counts `ExportLogsServiceRequest.resource_logs[].scope_logs[].log_records[]`
/// by walking the protobuf wire format (field 1 of the request, field 2 of
/// `ResourceLogs`, field 2 of `ScopeLogs`); `None` on malformed input.
pub fn count_log_records(request: &[u8]) -> Option<u64> {
    let mut n = 0;
    for_each_len_field(request, 1, |resource_logs| {
        for_each_len_field(resource_logs, 2, |scope_logs| {
            for_each_len_field(scope_logs, 2, |_| {
                n += 1;
                Some(())
            })
        })
    })?;
    Some(n)
}

/// Calls `f` with the payload of every length-delimited field `wanted` of
/// `msg`, skipping all other fields.
fn for_each_len_field(
    mut msg: &[u8],
    wanted: u64,
    mut f: impl FnMut(&[u8]) -> Option<()>,
) -> Option<()> {
    while !msg.is_empty() {
        let key = varint(&mut msg)?;
        match key & 7 {
            0 => {
                varint(&mut msg)?;
            }
            1 => msg = msg.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut msg)?).ok()?;
                let payload = msg.get(..len)?;
                msg = &msg[len..];
                if key >> 3 == wanted {
                    f(payload)?;
                }
            }
            5 => msg = msg.get(4..)?,
            _ => return None,
        }
    }
    Some(())
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, LogRecord, Resource, Value};
    use prost::Message;

    #[test]
    fn wire_count_and_probes_match_an_encoded_request() {
        let r = Arc::new(Resource::default());
        let mut events: Vec<Event> = (0..5)
            .map(|i| {
                Event::Log(LogRecord::new(
                    Value::from(format!("line {i}")),
                    Arc::clone(&r),
                ))
            })
            .collect();
        events.push(Event::Log(LogRecord::new(
            Value::from(format!("{PROBE_MARKER}1234 rest")),
            Arc::new(Resource::default()),
        )));
        let raw = crate::sinks::otlp_encode::encode_logs(&events).encode_to_vec();
        assert_eq!(count_log_records(&raw), Some(6));
        assert_eq!(probe_times(&raw), vec![1234]);
        assert_eq!(count_log_records(&raw[..raw.len() - 1]), None);
    }
}
