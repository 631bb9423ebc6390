//! The `forward` source: the Fluentd Forward protocol v1 over TCP, as
//! Docker's `fluentd` log driver, fluent-logger libraries and Fluent Bit /
//! Fluentd `out_forward` speak it (default 127.0.0.1:24224).
//!
//! A [`ForwardSource`] accepts connections (at most `max_connections`,
//! [`ConnectionLimit`]); each is served by a [`connection`] task that runs
//! the optional shared-key [`handshake`], cuts the byte stream into msgpack
//! messages ([`frame`]), decodes their event modes ([`decode`]) and maps
//! each entry to a log record ([`record`]). A message's events are
//! journaled in RAM and put into the pipeline before its `chunk` is
//! acknowledged (`{"ack": chunk}`), so a client that asks for acks
//! resends whatever was not: at-least-once across a crash.
//!
//! Memory is bounded whatever clients send: one message is at most
//! `max_message_bytes` on the wire and inflated, its entries become events
//! in batches of about 1 MiB, and every connection's buffered bytes and
//! decoding share one [`ByteBudget`] of `max_memory`; a connection that
//! finds no room waits (its client is not read, TCP pushes back), and
//! messages over 128 KiB take turns so they never wait on each other.
//! A refused message (malformed, too large, wrong key) closes its
//! connection with the reason logged (rate-limited) and counted
//! (`shipd_forward_refused_total`); the events of the messages before it
//! are kept.
//!
//! Received data is not replayable: batches carry only their RAM journal
//! file's acknowledgement token, as with the OTLP receiver.

pub mod connection;
pub mod decode;
pub mod frame;
pub mod handshake;
pub mod record;

use crate::buffer::journal::JournaledSender;
use crate::memory::ByteBudget;
use crate::sinks::log_limit::LogLimit;
use crate::sources::connection_limit::{ConnectionLimit, DEFAULT_MAX_CONNECTIONS};
use crate::sources::file::SourceContext;
use crate::telemetry::{self, Metric};
use handshake::SharedKey;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The port Fluentd and Docker's log driver use.
pub const DEFAULT_PORT: u16 = 24224;

/// The longest a message may take to arrive once its first byte has, and
/// the longest a connection waits for memory or for room in the pipeline.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Configuration of one forward source.
#[derive(Debug, Clone)]
pub struct ForwardSourceConfig {
    pub name: String,
    pub address: SocketAddr,
    /// Largest message, on the wire and once inflated.
    pub max_message_bytes: usize,
    /// Memory shared by every connection's buffered and decoded messages.
    pub max_memory: usize,
    pub max_connections: usize,
    /// Require the shared-key handshake.
    pub shared_key: Option<String>,
    /// The server's name in the handshake (default: the node's host name).
    pub self_hostname: Option<String>,
}

impl ForwardSourceConfig {
    pub fn new(name: impl Into<String>) -> Self {
        ForwardSourceConfig {
            name: name.into(),
            address: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            max_message_bytes: crate::memory::budgets().forward_max_message_bytes,
            max_memory: crate::memory::budgets().forward_max_memory,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shared_key: None,
            self_hostname: None,
        }
    }

    /// The budget actually used: room for one message of
    /// `max_message_bytes` to arrive and be decoded at least.
    pub fn memory_budget(&self) -> usize {
        self.max_memory
            .max(connection::large_message_memory(self.max_message_bytes))
    }
}

/// The source could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwardSourceError {
    #[error("forward source {source_name}: cannot listen on {addr}: {error}")]
    Bind {
        source_name: String,
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// Why a connection was closed by the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not the forward protocol (or not a mode this source reads).
    Malformed(String),
    /// Beyond `max_message_bytes`, or more than the whole memory budget.
    TooLarge(String),
    /// The handshake failed (wrong shared key, no PING).
    Auth(String),
    /// No memory came free within [`MESSAGE_TIMEOUT`].
    Busy,
    /// The pipeline stayed full for [`MESSAGE_TIMEOUT`].
    Full,
    /// A message did not arrive whole within [`MESSAGE_TIMEOUT`].
    Timeout,
    /// The agent is shutting down.
    Closed,
}

impl Refusal {
    /// The label of `shipd_forward_refused_total`.
    fn reason(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::TooLarge(_) => "too_large",
            Refusal::Auth(_) => "auth",
            Refusal::Busy => "busy",
            Refusal::Full => "backpressure",
            Refusal::Timeout => "timeout",
            Refusal::Closed => "shutdown",
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::Malformed(m) | Refusal::TooLarge(m) | Refusal::Auth(m) => m.clone(),
            Refusal::Busy => "no memory came free for the next message".into(),
            Refusal::Full => "the pipeline stayed full".into(),
            Refusal::Timeout => format!(
                "a message did not arrive whole within {}s",
                MESSAGE_TIMEOUT.as_secs()
            ),
            Refusal::Closed => "shipd is shutting down".into(),
        }
    }
}

/// What every connection of one source shares.
pub struct Intake {
    pub(crate) out: JournaledSender,
    pub(crate) source: Arc<str>,
    pub(crate) host_name: String,
    pub(crate) max_message_bytes: usize,
    pub(crate) budget: ByteBudget,
    /// Held by the one connection receiving and decoding a message larger
    /// than [`connection::SMALL_MESSAGE`]: large messages take turns, so
    /// partly received ones never hold the budget while waiting for it.
    pub(crate) large: Arc<tokio::sync::Semaphore>,
    pub(crate) shared_key: Option<SharedKey>,
    events: Metric,
    messages: Metric,
    /// One per refusal reason, so a flood of one kind hides no other.
    log_limits: [LogLimit; REASONS.len()],
}

/// The reasons of `shipd_forward_refused_total`.
const REASONS: [&str; 6] = [
    "malformed",
    "too_large",
    "auth",
    "busy",
    "backpressure",
    "timeout",
];

impl Intake {
    fn new(cfg: &ForwardSourceConfig, out: JournaledSender, host_name: String) -> Self {
        let c = |metric| telemetry::counter(metric, &[("component", cfg.name.as_str())]);
        // Registered at start, so they show as 0 until something is refused.
        for reason in REASONS {
            refused_counter(&cfg.name, reason);
        }
        Intake {
            out,
            source: Arc::from(cfg.name.as_str()),
            shared_key: cfg.shared_key.clone().map(|key| SharedKey {
                key,
                hostname: cfg
                    .self_hostname
                    .clone()
                    .unwrap_or_else(|| host_name.clone()),
            }),
            host_name,
            max_message_bytes: cfg.max_message_bytes,
            budget: ByteBudget::new(cfg.memory_budget()),
            large: Arc::new(tokio::sync::Semaphore::new(1)),
            events: c("shipd_events_in_total"),
            messages: c("shipd_forward_messages_total"),
            log_limits: std::array::from_fn(|_| LogLimit::new(Duration::from_secs(10))),
        }
    }

    /// Counts messages decoded whole.
    pub(crate) fn messages_taken(&self, messages: u64) {
        self.messages.add(messages);
    }

    /// Counts events put into the pipeline.
    pub(crate) fn events_taken(&self, events: u64) {
        self.events.add(events);
    }

    /// Counts and logs (rate-limited) why the connection from `peer` was closed.
    pub(crate) fn refused(&self, peer: SocketAddr, refusal: &Refusal) {
        if *refusal == Refusal::Closed {
            return;
        }
        let reason = refusal.reason();
        refused_counter(&self.source, reason).inc();
        let limit = REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        if let Some(suppressed) = self.log_limits[limit].allow() {
            tracing::warn!(
                source = %self.source,
                %peer,
                reason,
                message = %refusal.message(),
                suppressed,
                "forward connection closed"
            );
        }
    }
}

fn refused_counter(source: &str, reason: &str) -> Metric {
    telemetry::counter(
        "shipd_forward_refused_total",
        &[("component", source), ("reason", reason)],
    )
}

/// A bound forward source, ready to serve.
pub struct ForwardSource {
    listener: tokio::net::TcpListener,
    limit: ConnectionLimit,
    intake: Arc<Intake>,
    cancel: CancellationToken,
}

impl ForwardSource {
    /// Binds the address (inside the runtime), so a port in use fails the
    /// start instead of a background task.
    pub fn bind(cfg: ForwardSourceConfig, ctx: SourceContext) -> Result<Self, ForwardSourceError> {
        let err = |error| ForwardSourceError::Bind {
            source_name: cfg.name.clone(),
            addr: cfg.address,
            error,
        };
        let listener = std::net::TcpListener::bind(cfg.address).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(err)?;
        Ok(ForwardSource {
            listener,
            limit: ConnectionLimit::new(&cfg.name, cfg.max_connections),
            intake: Arc::new(Intake::new(&cfg, ctx.unreplayable, ctx.host_name)),
            cancel: ctx.cancel,
        })
    }

    /// Serves until the source is cancelled.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let source = Arc::clone(&self.intake.source);
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(source = %source, %addr, shared_key = self.intake.shared_key.is_some(), "forward source listening");
        }
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                _ = self.cancel.cancelled() => break,
                accepted = self.listener.accept() => accepted,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(source = %source, error = %e, "accepting a forward connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(permit) = self.limit.admit(peer) else {
                drop(stream);
                continue;
            };
            let intake = Arc::clone(&self.intake);
            let cancel = self.cancel.clone();
            connections.spawn(async move {
                connection::serve(stream, peer, intake, cancel).await;
                drop(permit);
            });
        }
        while connections.join_next().await.is_some() {}
    }
}
