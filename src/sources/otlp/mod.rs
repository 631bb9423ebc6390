//! The `otlp` source: a local OTLP receiver. Apps on the node push logs and
//! metrics over gRPC ([`grpc`], default 127.0.0.1:4317) and HTTP ([`http`],
//! default 127.0.0.1:4318, protobuf bodies, gzip or zstd); [`convert`] maps
//! each request onto one [`EventBatch`] and [`Intake`] hands it to the
//! pipeline.
//!
//! Received data is not replayable: batches carry no acknowledgement token.
//! A request is answered with success only once its batch is in the pipeline
//! channel; when the channel stays full for `accept_timeout` the request is
//! refused (gRPC RESOURCE_EXHAUSTED, HTTP 429 with `Retry-After`) so the app
//! retries, and nothing is held in memory beyond the channel's byte budget.
//! This module never blocks a request indefinitely and never answers success
//! for data it did not hand on.

pub mod convert;
pub mod grpc;
pub mod http;
pub mod tls_listener;

use crate::buffer::journal::{JournaledSender, NotSent};
use crate::event::EventBatch;
use crate::sinks::log_limit::LogLimit;
use crate::sources::file::SourceContext;
use crate::telemetry::{self, Metric};
use convert::{Converted, Origin};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tls_listener::Listening;
use tokio_util::sync::CancellationToken;

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
    /// How long a request waits for room in the pipeline before it is refused.
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
            max_message_bytes: 16 * 1024 * 1024,
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

/// Why a request's batch was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The pipeline stayed full for `accept_timeout`: retry later.
    Full,
    /// The agent is shutting down.
    Closed,
}

/// The counters of one receiver.
struct Counters {
    events: Metric,
    requests: Metric,
    refused_full: Metric,
    malformed: Metric,
    skipped_points: Metric,
}

/// Hands converted requests to the pipeline; shared by both servers.
pub struct Intake {
    out: JournaledSender,
    origin: Origin,
    accept_timeout: Duration,
    counters: Counters,
    log_limit: LogLimit,
}

impl Intake {
    fn new(cfg: &OtlpReceiverConfig, out: JournaledSender, host_name: String) -> Self {
        let c = |metric, extra: Option<(&str, &str)>| {
            let mut labels = vec![("component", cfg.name.as_str())];
            labels.extend(extra);
            telemetry::counter(metric, &labels)
        };
        Intake {
            out,
            origin: Origin {
                source: Arc::from(cfg.name.as_str()),
                host_name,
            },
            accept_timeout: cfg.accept_timeout,
            counters: Counters {
                events: c("shipd_events_in_total", None),
                requests: c("shipd_otlp_requests_total", None),
                refused_full: c("shipd_otlp_refused_total", Some(("reason", "backpressure"))),
                malformed: c("shipd_otlp_refused_total", Some(("reason", "malformed"))),
                skipped_points: c("shipd_otlp_unsupported_points_total", None),
            },
            log_limit: LogLimit::new(Duration::from_secs(10)),
        }
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Counts a request whose body could not be read or decoded.
    pub fn malformed(&self, transport: &str, reason: &str) {
        self.counters.requests.inc();
        self.counters.malformed.inc();
        if let Some(suppressed) = self.log_limit.allow() {
            tracing::warn!(source = %self.origin.source, transport, reason, suppressed, "malformed OTLP request refused");
        }
    }

    /// Puts a converted request into the pipeline, waiting at most `accept_timeout`.
    pub async fn accept(&self, converted: Converted) -> Result<(), Refusal> {
        self.counters.requests.inc();
        if converted.skipped_points > 0 {
            self.counters.skipped_points.add(converted.skipped_points);
            if let Some(suppressed) = self.log_limit.allow() {
                tracing::warn!(source = %self.origin.source, points = converted.skipped_points, suppressed, "metric points without a recorded value skipped");
            }
        }
        let batch: EventBatch = converted.batch;
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u64;
        match self.out.send_within(batch, self.accept_timeout).await {
            Ok(()) => {
                self.counters.events.add(n);
                Ok(())
            }
            Err(NotSent::Closed) => Err(Refusal::Closed),
            Err(NotSent::Full) => {
                self.counters.refused_full.inc();
                Err(Refusal::Full)
            }
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
            if let Some(addr) = listener.local_addr() {
                tracing::info!(source = %name, %addr, tls, "OTLP/gRPC receiver listening");
            }
            tokio::spawn(grpc::serve(
                listener,
                Arc::clone(&self.intake),
                self.cfg.max_message_bytes,
                self.cancel.clone(),
            ))
        });
        let http = self.http.map(|listener| {
            if let Some(addr) = listener.local_addr() {
                tracing::info!(source = %name, %addr, tls, "OTLP/HTTP receiver listening");
            }
            tokio::spawn(http::serve(
                listener,
                Arc::clone(&self.intake),
                http::Limits {
                    max_message_bytes: self.cfg.max_message_bytes,
                    retry_after: self.cfg.retry_after,
                },
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
