//! The `otlp` source: a local OTLP receiver. Apps on the node push logs and
//! metrics over gRPC ([`grpc`], default 127.0.0.1:4317) and HTTP ([`http`],
//! default 127.0.0.1:4318, protobuf bodies, gzip or zstd); both hand each
//! request to one [`Intake`], which receives its body ([`body`]), converts
//! it into one [`EventBatch`] ([`convert`], walking the encoding with
//! [`wire`] and [`expansion`]), journals it and hands it to the pipeline.
//!
//! Whatever arrives, the receiver holds a bounded amount of memory: at most
//! `max_connections` connections ([`listener`]) and
//! `max_concurrent_requests` requests at once, whose bodies and decoded
//! records share one [`ByteBudget`] (`max_message_bytes` plus
//! `max_request_memory`, see [`crate::memory`]). A request whose body or
//! decoded records exceed the per-request limits is refused whole (HTTP
//! 413, gRPC RESOURCE_EXHAUSTED, with the reason), before it is journaled;
//! one that finds no slot, no memory or no room in the pipeline within
//! `accept_timeout` is refused as busy (HTTP 429 with `Retry-After`, gRPC
//! RESOURCE_EXHAUSTED with a retry delay) so the app retries. Decoding,
//! converting and journaling run off the async runtime (`spawn_blocking`),
//! in time linear in the request's size.
//!
//! Received data is not replayable: batches carry no acknowledgement token
//! of a source, only their RAM journal file's. A request is answered with
//! success only once its batch is in the pipeline channel. This module never
//! blocks a request indefinitely and never answers success for data it did
//! not hand on.

pub mod body;
pub mod convert;
pub mod expansion;
pub mod grpc;
pub mod http;
pub mod listener;
pub mod rpc;
pub mod wire;

use crate::buffer::journal::{JournaledSender, NotSent};
use crate::cli::status::human_bytes;
use crate::event::EventBatch;
use crate::memory::{self, ByteBudget, NoRoom, Reservation};
use crate::pipeline::acks::AckToken;
use crate::sinks::log_limit::LogLimit;
use crate::sources::connection_limit::ConnectionLimit;
use crate::sources::file::SourceContext;
use crate::telemetry::{self, Metric};
use body::{BodyReader, Encoding};
use convert::{ConvertError, Converted, Origin};
use listener::Listening;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// The longest a client may take to send a whole request body.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Configuration of one OTLP receiver.
#[derive(Debug, Clone)]
pub struct OtlpReceiverConfig {
    pub name: String,
    /// OTLP/gRPC listen address; `None` disables gRPC.
    pub grpc_address: Option<SocketAddr>,
    /// OTLP/HTTP listen address; `None` disables HTTP.
    pub http_address: Option<SocketAddr>,
    /// Largest request body, compressed and decompressed.
    pub max_message_bytes: usize,
    /// The most the records of one request may take in memory once decoded.
    pub max_request_memory: usize,
    /// Requests received and decoded at once.
    pub max_concurrent_requests: usize,
    /// Connections held open at once, both protocols together.
    pub max_connections: usize,
    /// How long a request waits for a slot, memory or room in the pipeline
    /// before it is refused.
    pub accept_timeout: Duration,
    /// The `Retry-After` advice of a refused HTTP request.
    pub retry_after: Duration,
    /// Serve both protocols over TLS with this certificate chain and key.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl OtlpReceiverConfig {
    pub fn new(name: impl Into<String>) -> Self {
        OtlpReceiverConfig {
            name: name.into(),
            grpc_address: Some(SocketAddr::from(([127, 0, 0, 1], 4317))),
            http_address: Some(SocketAddr::from(([127, 0, 0, 1], 4318))),
            max_message_bytes: memory::budgets().otlp_max_message_bytes,
            max_request_memory: memory::budgets().otlp_max_request_memory,
            max_concurrent_requests: memory::OTLP_MAX_CONCURRENT_REQUESTS,
            max_connections: crate::sources::connection_limit::DEFAULT_MAX_CONNECTIONS,
            accept_timeout: Duration::from_secs(1),
            retry_after: Duration::from_secs(1),
            tls: None,
        }
    }
}

/// The receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum OtlpReceiverError {
    #[error("otlp source {source_name}: {error}")]
    Tls {
        source_name: String,
        error: Box<crate::tls::TlsConfigError>,
    },
    #[error("otlp source {source_name}: cannot listen for OTLP/{protocol} on {addr}: {error}")]
    Bind {
        source_name: String,
        protocol: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// Why a request was not accepted; each protocol answers it its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The pipeline stayed full for `accept_timeout`: retry later.
    Full,
    /// The receiver's request slots or memory stayed in use for
    /// `accept_timeout`: retry later.
    Busy,
    /// Beyond the per-request limits (body size, memory once decoded):
    /// refused as it is, whenever it is sent.
    TooLarge(String),
    /// Not an OTLP export request (or not one this receiver reads).
    Malformed(String),
    /// A content type or encoding this receiver does not read.
    Unsupported(String),
    /// The body did not arrive within [`RECEIVE_TIMEOUT`].
    Timeout,
    /// The agent is shutting down.
    Closed,
}

impl Refusal {
    /// The label of `shipd_otlp_refused_total`.
    fn reason(&self) -> &'static str {
        match self {
            Refusal::Full => "backpressure",
            Refusal::Busy => "busy",
            Refusal::TooLarge(_) => "too_large",
            Refusal::Malformed(_) | Refusal::Unsupported(_) => "malformed",
            Refusal::Timeout => "timeout",
            Refusal::Closed => "shutdown",
        }
    }

    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            Refusal::Full => "shipd's pipeline is full; retry later".into(),
            Refusal::Busy => {
                "shipd's OTLP receiver is busy with other requests; retry later".into()
            }
            Refusal::TooLarge(m) | Refusal::Malformed(m) | Refusal::Unsupported(m) => m.clone(),
            Refusal::Timeout => format!(
                "the request body did not arrive within {}s",
                RECEIVE_TIMEOUT.as_secs()
            ),
            Refusal::Closed => "shipd is shutting down".into(),
        }
    }
}

/// What the receiver signals: logs or metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Logs,
    Metrics,
}

/// The counters of one receiver.
struct Counters {
    events: Metric,
    requests: Metric,
    skipped_points: Metric,
    component: String,
}

impl Counters {
    fn refused(&self, reason: &str) -> Metric {
        telemetry::counter(
            "shipd_otlp_refused_total",
            &[("component", &self.component), ("reason", reason)],
        )
    }
}

/// A request that holds one of the receiver's slots and the memory it
/// takes; both are given back when it is dropped.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    memory: Reservation,
}

/// Takes requests into the pipeline; shared by both servers.
pub struct Intake {
    out: JournaledSender,
    origin: Origin,
    accept_timeout: Duration,
    max_message_bytes: usize,
    max_request_memory: usize,
    slots: Arc<Semaphore>,
    budget: ByteBudget,
    counters: Counters,
    log_limit: LogLimit,
}

impl Intake {
    fn new(cfg: &OtlpReceiverConfig, out: JournaledSender, host_name: String) -> Self {
        let c = |metric| telemetry::counter(metric, &[("component", cfg.name.as_str())]);
        let counters = Counters {
            events: c("shipd_events_in_total"),
            requests: c("shipd_otlp_requests_total"),
            skipped_points: c("shipd_otlp_unsupported_points_total"),
            component: cfg.name.clone(),
        };
        // Registered at start, so they show as 0 until something is refused.
        for reason in ["backpressure", "malformed", "busy", "too_large"] {
            counters.refused(reason);
        }
        Intake {
            out,
            origin: Origin {
                source: Arc::from(cfg.name.as_str()),
                host_name,
            },
            accept_timeout: cfg.accept_timeout,
            max_message_bytes: cfg.max_message_bytes,
            max_request_memory: cfg.max_request_memory,
            slots: Arc::new(Semaphore::new(cfg.max_concurrent_requests.max(1))),
            budget: ByteBudget::new(memory::otlp_intake_budget(
                cfg.max_message_bytes,
                cfg.max_request_memory,
            )),
            counters,
            log_limit: LogLimit::new(Duration::from_secs(10)),
        }
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Waits at most `accept_timeout` for one of the request slots.
    pub async fn admit(&self) -> Result<Admitted, Refusal> {
        let slot = Arc::clone(&self.slots).acquire_owned();
        match tokio::time::timeout(self.accept_timeout, slot).await {
            Ok(Ok(slot)) => Ok(Admitted {
                _slot: slot,
                memory: self.budget.reserve(),
            }),
            Ok(Err(_)) => Err(Refusal::Closed),
            Err(_) => Err(Refusal::Busy),
        }
    }

    fn too_large_for_budget(&self, bytes: usize) -> Refusal {
        Refusal::TooLarge(format!(
            "the request needs {} at once, more than this receiver's whole memory budget of {} \
             (max_message_bytes and max_request_memory); send smaller batches",
            human_bytes(bytes as u64),
            human_bytes(self.budget.total() as u64)
        ))
    }

    fn no_room(&self, e: NoRoom, bytes: usize) -> Refusal {
        match e {
            NoRoom::Never => self.too_large_for_budget(bytes),
            NoRoom::NotNow => Refusal::Busy,
        }
    }

    /// Makes `request` hold `bytes` of the budget, waiting at most
    /// `accept_timeout` for others to give back what is missing.
    async fn hold(&self, request: &mut Admitted, bytes: usize) -> Result<(), Refusal> {
        let deadline = Instant::now() + self.accept_timeout;
        request
            .memory
            .grow_to(bytes, deadline)
            .await
            .map_err(|e| self.no_room(e, bytes))
    }

    fn body_too_large(&self, bytes: usize) -> Refusal {
        Refusal::TooLarge(format!(
            "the body of {} exceeds this receiver's max_message_bytes ({})",
            human_bytes(bytes as u64),
            human_bytes(self.max_message_bytes as u64)
        ))
    }

    /// Reads a body of `len` bytes (announced by the client), or the rest of
    /// `body` when no length was announced, within [`RECEIVE_TIMEOUT`] and
    /// the limits, holding its memory as it arrives.
    pub async fn receive(
        &self,
        request: &mut Admitted,
        body: &mut BodyReader,
        len: Option<usize>,
    ) -> Result<Vec<u8>, Refusal> {
        let read = async {
            match len {
                Some(len) => {
                    if len > self.max_message_bytes {
                        return Err(self.body_too_large(len));
                    }
                    self.hold(request, len).await?;
                    let mut out = Vec::with_capacity(len);
                    if !body.read_exact(len, &mut out).await? {
                        return Err(Refusal::Malformed("the body ended early".into()));
                    }
                    Ok(out)
                }
                None => {
                    let mut out = Vec::new();
                    while let Some(chunk) = body.next_chunk().await? {
                        let need = out.len() + chunk.len();
                        if need > self.max_message_bytes {
                            return Err(self.body_too_large(need));
                        }
                        if need > out.capacity() {
                            let grown = need.max(2 * out.capacity()).min(self.max_message_bytes);
                            self.hold(request, grown).await?;
                            out.reserve_exact(grown - out.len());
                        }
                        out.extend_from_slice(&chunk);
                    }
                    Ok(out)
                }
            }
        };
        tokio::time::timeout(RECEIVE_TIMEOUT, read)
            .await
            .unwrap_or(Err(Refusal::Timeout))
    }

    /// Decompresses, converts and journals `body` off the runtime, then
    /// puts the batch into the pipeline, waiting at most `accept_timeout`.
    pub async fn take(
        self: &Arc<Self>,
        request: Admitted,
        signal: Signal,
        encoding: Encoding,
        body: Vec<u8>,
    ) -> Result<(), Refusal> {
        // Decoding takes memory whether the request is then taken or refused.
        crate::memory::note_work(body.len());
        let runtime = tokio::runtime::Handle::current();
        let intake = Arc::clone(self);
        let decoded = tokio::task::spawn_blocking(move || {
            intake.decode_and_journal(&runtime, request, signal, encoding, body)
        })
        .await;
        let (request, batch, token) = match decoded {
            Ok(decoded) => decoded?,
            Err(e) => {
                tracing::error!(source = %self.origin.source, error = %e, "decoding an OTLP request failed");
                return Err(Refusal::Closed);
            }
        };
        let n = batch.len() as u64;
        if n == 0 {
            return Ok(());
        }
        let sent = self
            .out
            .send_journaled_within(batch, token, self.accept_timeout)
            .await;
        // The batch's memory now counts against the pipeline's channels.
        drop(request);
        match sent {
            Ok(()) => {
                self.counters.events.add(n);
                Ok(())
            }
            Err(NotSent::Closed) => Err(Refusal::Closed),
            Err(NotSent::Full) => Err(Refusal::Full),
        }
    }

    /// The blocking part of [`take`](Self::take).
    fn decode_and_journal(
        &self,
        runtime: &tokio::runtime::Handle,
        mut request: Admitted,
        signal: Signal,
        encoding: Encoding,
        body: Vec<u8>,
    ) -> Result<(Admitted, EventBatch, Option<AckToken>), Refusal> {
        let deadline = Instant::now() + self.accept_timeout;
        let raw = body::decompress(encoding, body, self.max_message_bytes, |held| {
            request
                .memory
                .grow_to_blocking(runtime, held, deadline)
                .map_err(|e| self.no_room(e, held))
        })?;
        request.memory.shrink_to(raw.len());
        let mut refused = None;
        let hold = |memory: usize| {
            let held = raw.len().saturating_add(memory);
            match request.memory.grow_to_blocking(runtime, held, deadline) {
                Ok(()) => true,
                Err(e) => {
                    refused = Some(self.no_room(e, held));
                    false
                }
            }
        };
        let converted = match signal {
            Signal::Logs => convert::logs(&raw, &self.origin, self.max_request_memory, hold),
            Signal::Metrics => convert::metrics(&raw, &self.origin, self.max_request_memory, hold),
        };
        let Converted {
            mut batch,
            skipped_points,
            memory,
        } = converted.map_err(|e| match e {
            ConvertError::Malformed(_) => Refusal::Malformed(e.to_string()),
            ConvertError::TooLarge { .. } => Refusal::TooLarge(e.to_string()),
            ConvertError::NoRoom => refused.take().unwrap_or(Refusal::Busy),
        })?;
        drop(raw);
        if skipped_points > 0 {
            self.counters.skipped_points.add(skipped_points);
            if let Some(suppressed) = self.log_limit.allow() {
                tracing::warn!(source = %self.origin.source, points = skipped_points, suppressed, "metric points without a recorded value skipped");
            }
        }
        if batch.is_empty() {
            return Ok((request, batch, None));
        }
        // The events, and their journal encoding beside them for a moment.
        let journaling = memory.saturating_mul(2);
        request.memory.shrink_to(journaling);
        request
            .memory
            .grow_to_blocking(runtime, journaling, deadline)
            .map_err(|e| self.no_room(e, journaling))?;
        let token = self.out.journal(&mut batch);
        request.memory.shrink_to(memory);
        Ok((request, batch, token))
    }

    /// Counts a request's outcome, and logs a refusal (rate-limited).
    pub fn answered(&self, transport: &str, outcome: &Result<(), Refusal>) {
        self.counters.requests.inc();
        let Err(refusal) = outcome else { return };
        self.counters.refused(refusal.reason()).inc();
        if matches!(refusal, Refusal::Closed | Refusal::Full) {
            return;
        }
        if let Some(suppressed) = self.log_limit.allow() {
            tracing::warn!(
                source = %self.origin.source,
                transport,
                reason = refusal.reason(),
                message = %refusal.message(),
                suppressed,
                "OTLP request refused"
            );
        }
    }
}

/// A bound receiver, ready to serve.
pub struct OtlpReceiverSource {
    grpc: Option<Listening>,
    http: Option<Listening>,
    cfg: OtlpReceiverConfig,
    intake: Arc<Intake>,
    cancel: CancellationToken,
}

fn bind(
    name: &str,
    protocol: &'static str,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, OtlpReceiverError> {
    let err = |error| OtlpReceiverError::Bind {
        source_name: name.to_owned(),
        protocol,
        addr,
        error,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    tokio::net::TcpListener::from_std(listener).map_err(err)
}

impl OtlpReceiverSource {
    /// Binds the configured addresses (inside the runtime), so a port in use
    /// fails the start instead of a background task.
    pub fn bind(cfg: OtlpReceiverConfig, ctx: SourceContext) -> Result<Self, OtlpReceiverError> {
        let intake = Arc::new(Intake::new(&cfg, ctx.unreplayable, ctx.host_name));
        let limit = ConnectionLimit::new(&cfg.name, cfg.max_connections);
        let listen = |protocol: &'static str, addr: SocketAddr, alpn: &[u8]| {
            let tls = cfg
                .tls
                .as_ref()
                .map(|(cert, key)| crate::tls::server_config(cert, key, &[alpn]))
                .transpose()
                .map_err(|error| OtlpReceiverError::Tls {
                    source_name: cfg.name.clone(),
                    error: Box::new(error),
                })?;
            let listener = bind(&cfg.name, protocol, addr)?;
            Listening::new(
                listener,
                tls,
                limit.clone(),
                Arc::clone(&intake.origin().source),
                ctx.cancel.clone(),
            )
            .map_err(|error| OtlpReceiverError::Bind {
                source_name: cfg.name.clone(),
                protocol,
                addr,
                error,
            })
        };
        let grpc = cfg
            .grpc_address
            .map(|a| listen("gRPC", a, b"h2"))
            .transpose()?;
        let http = cfg
            .http_address
            .map(|a| listen("HTTP", a, b"http/1.1"))
            .transpose()?;
        Ok(OtlpReceiverSource {
            grpc,
            http,
            cfg,
            intake,
            cancel: ctx.cancel,
        })
    }

    /// Serves until the source is cancelled; in-flight requests finish first.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let name = self.cfg.name.clone();
        let tls = self.cfg.tls.is_some();
        let grpc = self.grpc.map(|listener| {
            let addr = listener.local_addr();
            tracing::info!(source = %name, %addr, tls, "OTLP/gRPC receiver listening");
            tokio::spawn(grpc::serve(
                listener,
                Arc::clone(&self.intake),
                self.cfg.retry_after,
                self.cancel.clone(),
            ))
        });
        let http = self.http.map(|listener| {
            let addr = listener.local_addr();
            tracing::info!(source = %name, %addr, tls, "OTLP/HTTP receiver listening");
            tokio::spawn(http::serve(
                listener,
                Arc::clone(&self.intake),
                self.cfg.retry_after,
                self.cancel.clone(),
            ))
        });
        drop(self.intake);
        for task in [grpc, http].into_iter().flatten() {
            if let Err(e) = task.await {
                tracing::error!(source = %name, error = %e, "OTLP server task failed");
            }
        }
    }
}
