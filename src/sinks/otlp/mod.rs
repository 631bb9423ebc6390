//! The OTLP sink: batches routed events per stream, encodes them as OTLP,
//! sends them over HTTP (default) or gRPC with bounded concurrency and
//! retries, and acknowledges events once the receiver accepted (or for good
//! refused) them. Any OTLP endpoint (OpenTelemetry Collector, Grafana Alloy,
//! Loki) is reached through [`OtlpSinkConfig`]; the OpenObserve sink is this
//! sink with OpenObserve's paths, headers and ingest window
//! ([`crate::sinks::openobserve`]). It never drops a batch on a retryable
//! failure; a batch too large for the receiver (413) is sent in halves down
//! to single records. Which answer leads where: `classify` in `http.rs` and
//! `grpc.rs`.

mod grpc;
mod headers;
mod http;
mod transport;

pub use grpc::GrpcTransport;
pub use headers::{check_headers, http_headers, HeaderError};
pub(crate) use http::{classify_status, location, retry_after};
pub use http::{
    describe_failure, error_chain, HttpClientError, HttpTransport, ANSWER_PREFIX_BYTES,
};
pub use transport::{Accepted, OtlpRequest, SendError, Signal};

use super::batcher::{BatchLimits, StreamBatch, StreamBatcher};
use super::compression::Compression;
use super::elasticsearch::BulkTransport;
use super::log_limit::LogLimit;
use super::openobserve::ingest_window::{self, TooOld};
use super::retry::{Backoff, RetryPolicy};
use super::RoutedBatch;
use crate::control::health::ComponentHealth;
use crate::event::Event;
use crate::pipeline::acks::ack_events;
use crate::pipeline::channel::BatchReceiver;
use crate::telemetry::{self, Metric};
use base64::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Http,
    Grpc,
}

impl std::str::FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http" => Ok(TransportKind::Http),
            "grpc" => Ok(TransportKind::Grpc),
            other => Err(format!(
                "unknown transport `{other}` (expected http or grpc)"
            )),
        }
    }
}

/// The OTLP/HTTP path of logs when none is given.
pub const DEFAULT_LOGS_PATH: &str = "/v1/logs";
/// The OTLP/HTTP path of metrics when none is given.
pub const DEFAULT_METRICS_PATH: &str = "/v1/metrics";

/// Configuration of one OTLP sink.
#[derive(Clone)]
pub struct OtlpSinkConfig {
    pub name: String,
    /// HTTP base URL, e.g. `http://collector:4318`; the paths are appended.
    pub url: String,
    /// gRPC URL, e.g. `http://collector:4317`.
    pub grpc_url: String,
    /// Appended to `url` for log requests (default `/v1/logs`).
    pub logs_path: String,
    /// Appended to `url` for metric requests (default `/v1/metrics`).
    pub metrics_path: String,
    /// Sent with every request: HTTP headers, or gRPC metadata (names
    /// lowercased). Checked by [`check_headers`]; values may be secrets.
    pub headers: Vec<(String, String)>,
    /// A header (metadata) naming each request's stream, e.g. OpenObserve's
    /// `stream-name`; `None` sends no stream.
    pub stream_header: Option<String>,
    /// Who answers, in log lines: "OpenObserve", "the OTLP receiver".
    pub peer: &'static str,
    pub user: Option<String>,
    pub password: Option<String>,
    pub transport: TransportKind,
    pub compression: Compression,
    pub batch: BatchLimits,
    pub in_flight: usize,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Spill buffer for data that cannot be read again from its source.
    pub buffer: crate::buffer::SpillOptions,
    /// Log records older than the receiver's ingest window (OpenObserve's);
    /// `Keep` for receivers without one.
    pub too_old: TooOld,
    /// TLS of `https://` URLs (both transports).
    pub tls: crate::tls::TlsOptions,
}

impl std::fmt::Debug for OtlpSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpSinkConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("grpc_url", &self.grpc_url)
            .field("logs_path", &self.logs_path)
            .field("metrics_path", &self.metrics_path)
            .field("headers", &header_names)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("transport", &self.transport)
            .field("compression", &self.compression)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl OtlpSinkConfig {
    /// A sink to any OTLP receiver at `url` (HTTP base) with the OTLP
    /// defaults: `/v1/logs` and `/v1/metrics`, gzip, no ingest window, and
    /// gRPC on port 4317 of the same host.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        let url = url.into();
        OtlpSinkConfig {
            name: name.into(),
            grpc_url: grpc_url_on_port(&url, 4317),
            url,
            logs_path: DEFAULT_LOGS_PATH.into(),
            metrics_path: DEFAULT_METRICS_PATH.into(),
            headers: Vec::new(),
            stream_header: None,
            peer: "the OTLP receiver",
            user: None,
            password: None,
            transport: TransportKind::Http,
            compression: Compression::Gzip,
            batch: BatchLimits::default(),
            in_flight: crate::memory::budgets().in_flight,
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            buffer: crate::buffer::SpillOptions::default(),
            too_old: TooOld::Keep,
            tls: crate::tls::TlsOptions::default(),
        }
    }

    /// The URL the configured transport connects to.
    pub fn transport_url(&self) -> &str {
        match self.transport {
            TransportKind::Http => &self.url,
            TransportKind::Grpc => &self.grpc_url,
        }
    }

    /// What an operator must know about how this sink connects: TLS
    /// verification switched off, or credentials crossing the network in
    /// cleartext. Empty when neither.
    pub fn security_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let url = self.transport_url();
        if self.tls.insecure_skip_verify && crate::tls::is_https(url) {
            warnings.push(format!(
                "TLS certificate verification is disabled (tls.insecure_skip_verify) for {url}"
            ));
        }
        let sends_authorization = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if self.user.is_some() || sends_authorization {
            warnings.extend(crate::credentials::cleartext_warning(url));
        }
        warnings
    }

    /// `Basic base64(user:password)`, when a user is set.
    pub fn authorization(&self) -> Option<String> {
        let user = self.user.as_ref()?;
        let password = self.password.as_deref().unwrap_or_default();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Some(format!("Basic {token}"))
    }
}

/// Same scheme and host as the HTTP URL, on `port`.
pub fn grpc_url_on_port(http_url: &str, port: u16) -> String {
    let (scheme, rest) = http_url.split_once("://").unwrap_or(("http", http_url));
    let host_port = rest.split('/').next().unwrap_or(rest);
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host_port,
    };
    format!("{scheme}://{host}:{port}")
}

/// The sink is misconfigured and cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OtlpSinkError {
    #[error("sink {sink}: {source}")]
    Http {
        sink: String,
        source: http::HttpClientError,
    },
    #[error("sink {sink}: {source}")]
    Grpc {
        sink: String,
        source: grpc::GrpcConfigError,
    },
    #[error("sink {sink}: credentials are not a valid header value")]
    Credentials { sink: String },
}

#[derive(Clone)]
enum Transport {
    Http(HttpTransport),
    Grpc(Box<GrpcTransport>),
    /// Elasticsearch's `_bulk` API ([`crate::sinks::elasticsearch`]).
    Bulk(Box<BulkTransport>),
}

pub(crate) struct Counters {
    pub(crate) events_out: Metric,
    pub(crate) bytes_out: Metric,
    pub(crate) rejected: Metric,
    partial_rejected: Metric,
    pub(crate) retries: Metric,
    /// Batches sent in halves after a 413.
    splits: Metric,
    pub(crate) requests: Metric,
    too_old: Metric,
    restamped: Metric,
}

/// Everything a request task needs, shared.
pub(crate) struct Shared {
    pub(crate) name: String,
    transport: Transport,
    pub(crate) retry: RetryPolicy,
    pub(crate) counters: Counters,
    pub(crate) health: Arc<ComponentHealth>,
    too_old: TooOld,
    pub(crate) peer: &'static str,
}

/// A ready-to-run sink.
pub struct OtlpSink {
    cfg: OtlpSinkConfig,
    shared: Arc<Shared>,
}

static REJECT_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));
static PARTIAL_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));
static RETRY_LOG: LogLimit = LogLimit::new(Duration::from_secs(10));
static SPLIT_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));
/// The longest `Retry-After` honoured; a longer one waits this long.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(300);

impl OtlpSink {
    pub fn new(cfg: OtlpSinkConfig) -> Result<Self, OtlpSinkError> {
        let auth = cfg.authorization();
        let transport = match cfg.transport {
            TransportKind::Http => {
                let header = basic_auth_header(&cfg)?;
                Transport::Http(HttpTransport::new(&cfg, header).map_err(|source| {
                    OtlpSinkError::Http {
                        sink: cfg.name.clone(),
                        source,
                    }
                })?)
            }
            TransportKind::Grpc => Transport::Grpc(Box::new(
                GrpcTransport::new(&cfg, auth.as_deref()).map_err(|source| {
                    OtlpSinkError::Grpc {
                        sink: cfg.name.clone(),
                        source,
                    }
                })?,
            )),
        };
        Ok(Self::assemble(cfg, transport))
    }

    /// The same delivery speaking Elasticsearch's `_bulk` API to `cfg.url`.
    pub fn elasticsearch(
        cfg: &crate::sinks::elasticsearch::ElasticsearchConfig,
    ) -> Result<Self, OtlpSinkError> {
        let header = basic_auth_header(cfg)?;
        let bulk = BulkTransport::new(cfg, header).map_err(|source| OtlpSinkError::Http {
            sink: cfg.name.clone(),
            source,
        })?;
        Ok(Self::assemble(
            cfg.sink.clone(),
            Transport::Bulk(Box::new(bulk)),
        ))
    }

    fn assemble(cfg: OtlpSinkConfig, transport: Transport) -> Self {
        let c = |metric| telemetry::counter(metric, &[("component", &cfg.name)]);
        let counters = Counters {
            events_out: c("shipd_events_out_total"),
            bytes_out: c("shipd_bytes_out_total"),
            rejected: telemetry::counter(
                "shipd_events_dropped_total",
                &[("component", &cfg.name), ("reason", "rejected")],
            ),
            partial_rejected: telemetry::counter(
                "shipd_events_dropped_total",
                &[("component", &cfg.name), ("reason", "partial_success")],
            ),
            retries: c("shipd_retries_total"),
            splits: c("shipd_batch_splits_total"),
            requests: c("shipd_requests_total"),
            too_old: telemetry::counter(
                "shipd_events_dropped_total",
                &[("component", &cfg.name), ("reason", "too_old")],
            ),
            restamped: c("shipd_events_restamped_total"),
        };
        let health = ComponentHealth::register(&cfg.name);
        let warnings = cfg.security_warnings();
        for warning in &warnings {
            tracing::warn!(sink = %cfg.name, "{warning}");
        }
        health.set_warnings(warnings);
        let shared = Arc::new(Shared {
            name: cfg.name.clone(),
            transport,
            retry: cfg.retry,
            counters,
            health,
            too_old: cfg.too_old,
            peer: cfg.peer,
        });
        OtlpSink { cfg, shared }
    }

    /// Runs until `input` closes, then flushes open batches and waits for
    /// in-flight requests (the caller bounds that wait). Logs and metrics
    /// are batched apart: each request carries one signal.
    pub async fn run(self, mut input: BatchReceiver<RoutedBatch>) {
        let mut logs = StreamBatcher::new(self.cfg.batch);
        let mut metrics = StreamBatcher::new(self.cfg.batch);
        let slots = Arc::new(Semaphore::new(self.cfg.in_flight.max(1)));
        let mut tasks = JoinSet::new();
        let mut ready_logs = Vec::new();
        let mut ready_metrics = Vec::new();
        loop {
            let deadline = match (logs.next_deadline(), metrics.next_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                msg = input.recv() => match msg {
                    Some(routed) => {
                        let RoutedBatch { stream, batch } = routed.item;
                        let (log_events, metric_events): (Vec<_>, Vec<_>) = batch
                            .events
                            .into_iter()
                            .partition(|e| Signal::of(e) == Signal::Logs);
                        logs.push(&stream, log_events, &mut ready_logs);
                        metrics.push(&stream, metric_events, &mut ready_metrics);
                    }
                    None => break,
                },
                _ = sleep_until_opt(deadline) => {
                    let now = tokio::time::Instant::now();
                    logs.expired(now, &mut ready_logs);
                    metrics.expired(now, &mut ready_metrics);
                }
            }
            self.dispatch_ready(&mut ready_logs, &mut ready_metrics, &slots, &mut tasks)
                .await;
            while tasks.try_join_next().is_some() {}
        }
        logs.drain(&mut ready_logs);
        metrics.drain(&mut ready_metrics);
        self.dispatch_ready(&mut ready_logs, &mut ready_metrics, &slots, &mut tasks)
            .await;
        while tasks.join_next().await.is_some() {}
    }

    async fn dispatch_ready(
        &self,
        logs: &mut Vec<StreamBatch>,
        metrics: &mut Vec<StreamBatch>,
        slots: &Arc<Semaphore>,
        tasks: &mut JoinSet<()>,
    ) {
        for batch in logs.drain(..) {
            self.dispatch(Signal::Logs, batch, slots, tasks).await;
        }
        for batch in metrics.drain(..) {
            self.dispatch(Signal::Metrics, batch, slots, tasks).await;
        }
    }

    async fn dispatch(
        &self,
        signal: Signal,
        batch: StreamBatch,
        slots: &Arc<Semaphore>,
        tasks: &mut JoinSet<()>,
    ) {
        let Ok(permit) = Arc::clone(slots).acquire_owned().await else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        tasks.spawn(async move {
            deliver(&shared, signal, batch).await;
            drop(permit);
        });
    }
}

/// `Authorization: Basic ...` when a user is set, marked sensitive.
fn basic_auth_header(
    cfg: &OtlpSinkConfig,
) -> Result<Option<reqwest::header::HeaderValue>, OtlpSinkError> {
    cfg.authorization()
        .map(|a| {
            let mut v = reqwest::header::HeaderValue::from_str(&a).map_err(|_| {
                OtlpSinkError::Credentials {
                    sink: cfg.name.clone(),
                }
            })?;
            v.set_sensitive(true);
            Ok(v)
        })
        .transpose()
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A request encoded once for its transport, re-sent as is on retries.
enum Prepared<'a> {
    Http(&'a HttpTransport, bytes::Bytes),
    Grpc(&'a GrpcTransport, OtlpRequest),
}

/// Sends one batch of `signal` events until every event is accepted or
/// refused for good, acknowledging each event exactly once. A batch the
/// receiver finds too large (413) is split in halves, sent one after the
/// other, and so on down to single records; a single record still too large
/// is refused for good (counted as rejected). Each part is acknowledged as
/// soon as it is settled, so nothing that fits is lost or sent twice.
async fn deliver(shared: &Shared, signal: Signal, mut batch: StreamBatch) {
    if signal == Signal::Logs {
        let now = crate::event::unix_nanos(std::time::SystemTime::now());
        ingest_window::apply(
            shared.too_old,
            &shared.name,
            &mut batch.events,
            now,
            &shared.counters.too_old,
            &shared.counters.restamped,
        );
        if batch.events.is_empty() {
            return;
        }
    }
    let total = batch.events.len();
    let bytes_per_event = batch.bytes / total;
    // Parts still to send, the next on top: a split pushes its second half
    // first so the first half goes next, keeping the order of the records.
    let mut parts: Vec<std::ops::Range<usize>> = Vec::with_capacity(1);
    parts.push(0..total);
    while let Some(range) = parts.pop() {
        let events = &batch.events[range.clone()];
        let size_hint = bytes_per_event.saturating_mul(events.len());
        match send_part(shared, signal, &batch.stream, events, size_hint).await {
            PartOutcome::Settled => {}
            PartOutcome::TooLarge(reason) if events.len() > 1 => {
                shared.counters.splits.inc();
                let middle = range.start + events.len() / 2;
                if let Some(suppressed) = SPLIT_LOG.allow() {
                    tracing::warn!(
                        sink = %shared.name, stream = %batch.stream, events = events.len(), %reason, suppressed,
                        "request too large for the receiver; sending the batch in halves"
                    );
                }
                parts.push(middle..range.end);
                parts.push(range.start..middle);
                continue;
            }
            PartOutcome::TooLarge(reason) => {
                shared.counters.rejected.inc();
                shared.health.failed(&reason);
                if let Some(suppressed) = REJECT_LOG.allow() {
                    tracing::error!(
                        sink = %shared.name, stream = %batch.stream, events = 1, %reason, suppressed,
                        "a single record is larger than the receiver takes; rejected"
                    );
                }
            }
        }
        ack_events(events);
    }
}

/// How sending one part of a batch ended.
pub(crate) enum PartOutcome {
    /// Accepted, or refused for good (counted): acknowledge it.
    Settled,
    /// The receiver refused the request's size: split it, or refuse it.
    TooLarge(String),
}

/// Sends `events` (one request) until the receiver accepts it, refuses it
/// for good, or finds it too large; retries everything else per the policy.
async fn send_part(
    shared: &Shared,
    signal: Signal,
    stream: &str,
    events: &[Event],
    size_hint: usize,
) -> PartOutcome {
    let n = events.len() as u64;
    let prepared = match &shared.transport {
        Transport::Bulk(bulk) => return bulk.send_part(shared, stream, events).await,
        Transport::Http(http) => match http.prepare(signal, events, size_hint) {
            Ok(body) => Prepared::Http(http, body),
            Err(e) => {
                // Compression into memory cannot fail short of allocation
                // failure; count the batch as dropped rather than loop.
                tracing::error!(sink = %shared.name, error = %e, "cannot compress batch; dropped");
                shared.counters.rejected.add(n);
                return PartOutcome::Settled;
            }
        },
        Transport::Grpc(grpc) => Prepared::Grpc(grpc, OtlpRequest::encode(signal, events)),
    };
    let wire_bytes = match &prepared {
        Prepared::Http(_, body) => body.len() as u64,
        Prepared::Grpc(..) => size_hint as u64,
    };
    let mut backoff = Backoff::new(shared.retry);
    loop {
        shared.counters.requests.inc();
        let result = match &prepared {
            Prepared::Http(t, body) => t.send(signal, body.clone(), stream).await,
            Prepared::Grpc(t, req) => t.send(req.clone(), stream).await,
        };
        match result {
            Ok(accepted) => {
                shared.health.delivered();
                shared.counters.events_out.add(n);
                shared.counters.bytes_out.add(wire_bytes);
                if accepted.rejected > 0 {
                    shared
                        .counters
                        .partial_rejected
                        .add(accepted.rejected as u64);
                    if let Some(suppressed) = PARTIAL_LOG.allow() {
                        tracing::warn!(
                            sink = %shared.name, %stream, signal = signal.path(),
                            rejected = accepted.rejected, reason = %accepted.message, suppressed,
                            "{} rejected records of an accepted batch (partial success)", shared.peer
                        );
                    }
                }
                return PartOutcome::Settled;
            }
            Err(SendError::TooLarge(reason)) => return PartOutcome::TooLarge(reason),
            Err(SendError::Rejected(reason)) => {
                shared.counters.rejected.add(n);
                shared.health.failed(&reason);
                if let Some(suppressed) = REJECT_LOG.allow() {
                    tracing::error!(
                        sink = %shared.name, %stream, events = n, %reason, suppressed,
                        "batch rejected by {}; not retried", shared.peer
                    );
                }
                return PartOutcome::Settled;
            }
            Err(retry) => wait_to_retry(shared, &mut backoff, retry).await,
        }
    }
}

/// Waits before re-sending after a failure the policy retries: slowly
/// after a refusal only configuration fixes, after `Retry-After` when the
/// receiver named a time (within reason, unless backoff says longer), else
/// per the backoff. Counts the retry and marks the sink failing.
pub(crate) async fn wait_to_retry(shared: &Shared, backoff: &mut Backoff, error: SendError) {
    shared.counters.retries.inc();
    let reason = error.to_string();
    shared.health.failed(&reason);
    match error {
        SendError::Configuration(_) => {
            let wait = backoff.auth_delay();
            tracing::error!(
                sink = %shared.name, %reason, retry_in = ?wait,
                "{} refused the request for a reason only configuration fixes (credentials, headers, url, paths); retrying slowly", shared.peer
            );
            tokio::time::sleep(wait).await;
        }
        SendError::Throttled { retry_after, .. } => {
            let wait = backoff.next_delay().max(retry_after.min(RETRY_AFTER_CAP));
            if let Some(suppressed) = RETRY_LOG.allow() {
                tracing::warn!(
                    sink = %shared.name, %reason, attempt = backoff.attempts(), retry_in = ?wait, suppressed,
                    "{} asked to retry later (Retry-After); waiting", shared.peer
                );
            }
            tokio::time::sleep(wait).await;
        }
        SendError::Retryable(_) | SendError::TooLarge(_) | SendError::Rejected(_) => {
            let wait = backoff.next_delay();
            if let Some(suppressed) = RETRY_LOG.allow() {
                tracing::warn!(
                    sink = %shared.name, %reason, attempt = backoff.attempts(), retry_in = ?wait, suppressed,
                    "delivery failed; retrying"
                );
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generic_otlp_sink_uses_the_otlp_paths_and_no_ingest_window() {
        let cfg = OtlpSinkConfig::new("otel", "http://collector:4318");
        assert_eq!(cfg.logs_path, "/v1/logs");
        assert_eq!(cfg.metrics_path, "/v1/metrics");
        assert_eq!(cfg.grpc_url, "http://collector:4317");
        assert_eq!(cfg.stream_header, None);
        assert_eq!(cfg.too_old, TooOld::Keep);
    }

    #[test]
    fn basic_auth_uses_capital_basic_and_base64() {
        let mut cfg = OtlpSinkConfig::new("o2", "http://x:5080");
        cfg.user = Some("root@example.com".into());
        cfg.password = Some("pw".into());
        assert_eq!(
            cfg.authorization().unwrap(),
            "Basic cm9vdEBleGFtcGxlLmNvbTpwdw=="
        );
        assert!(
            !format!("{cfg:?}").contains("pw\""),
            "password never printed"
        );
    }
}
