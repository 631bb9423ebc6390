//! The `syslog` source: receives syslog from routers, switches and older
//! nodes over UDP, TCP ([`tcp`], octet counting or newline framing per
//! message, [`framing`]) and unix datagram sockets ([`datagram`]). Each
//! message is parsed ([`parse`], RFC 5424 and RFC 3164) into a log record
//! ([`record`]); one that does not parse is kept whole as its body, marked
//! `syslog.malformed` and counted (`shipd_syslog_malformed_total`), never
//! dropped.
//!
//! Memory stays bounded whatever senders do: a message is cut at
//! `max_message_bytes` (marked `shipd.truncated`, counted in
//! `shipd_syslog_truncated_total`) and the rest skipped as it arrives; at
//! most `max_connections` TCP connections are served at once
//! ([`ConnectionLimit`]), each holding at most one partial message. The
//! messages of one read (TCP) or of the datagrams waiting together (UDP,
//! unix) go into the pipeline as one batch.
//!
//! Received data is not replayable: each batch is journaled in RAM
//! ([`JournaledSender`]) before it is handed on, and while the pipeline is
//! full the listeners stop reading (TCP senders wait; the kernel drops
//! datagrams beyond its socket buffer). A batch still waiting when the
//! source stops stays in the RAM journal and is sent by the next start.

pub mod datagram;
pub mod framing;
pub mod parse;
pub mod record;
pub mod tcp;

use crate::buffer::journal::{JournaledSender, NotSent};
use crate::event::EventBatch;
use crate::sinks::log_limit::LogLimit;
use crate::sources::connection_limit::{ConnectionLimit, DEFAULT_MAX_CONNECTIONS};
use crate::sources::file::SourceContext;
use crate::telemetry::{self, Metric};
use record::{Received, RecordMaker};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Default largest message; longer ones are truncated.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A batch is handed on once it holds this many messages or bytes, even
/// while more wait to be read.
pub const MAX_BATCH_MESSAGES: usize = 1000;
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// Where the source listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Listen {
    /// Reads `udp://IP:PORT`, `tcp://IP:PORT` or `unix:///path`.
    pub fn parse(text: &str) -> Result<Listen, String> {
        let text = text.trim();
        let addr = |rest: &str| {
            rest.parse::<SocketAddr>()
                .map_err(|_| format!("`{text}` does not name an IP:port like 0.0.0.0:514"))
        };
        if let Some(rest) = text.strip_prefix("udp://") {
            addr(rest).map(Listen::Udp)
        } else if let Some(rest) = text.strip_prefix("tcp://") {
            addr(rest).map(Listen::Tcp)
        } else if let Some(rest) = text.strip_prefix("unix://") {
            if rest.starts_with('/') {
                Ok(Listen::Unix(PathBuf::from(rest)))
            } else {
                Err(format!(
                    "`{text}` needs an absolute path, like unix:///run/shipd/syslog.sock"
                ))
            }
        } else {
            Err(format!(
                "`{text}` is not udp://IP:PORT, tcp://IP:PORT or unix:///path"
            ))
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Udp(a) => write!(f, "udp://{a}"),
            Listen::Tcp(a) => write!(f, "tcp://{a}"),
            Listen::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// Configuration of one syslog source.
#[derive(Debug, Clone)]
pub struct SyslogSourceConfig {
    pub name: String,
    pub listen: Vec<Listen>,
    pub max_message_bytes: usize,
    /// TCP connections served at once (over every TCP address).
    pub max_connections: usize,
}

impl SyslogSourceConfig {
    pub fn new(name: impl Into<String>, listen: Vec<Listen>) -> Self {
        SyslogSourceConfig {
            name: name.into(),
            listen,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyslogSourceError {
    #[error("syslog source {source_name}: cannot listen on {listen}: {error}")]
    Bind {
        source_name: String,
        listen: String,
        error: std::io::Error,
    },
}

/// The counters of one source.
struct Counters {
    events: Metric,
    malformed: Metric,
    truncated: Metric,
}

/// What every listener of one source shares: the way into the pipeline,
/// counters and limits.
pub struct Intake {
    out: JournaledSender,
    source: Arc<str>,
    host_name: String,
    max_message_bytes: usize,
    counters: Counters,
    log_limit: LogLimit,
    cancel: CancellationToken,
}

impl Intake {
    /// The intake of the source `cfg` names, handing batches to `out`,
    /// naming records without a host name after `host_name`, stopping
    /// when `cancel` fires.
    pub fn new(
        cfg: &SyslogSourceConfig,
        out: JournaledSender,
        host_name: String,
        cancel: CancellationToken,
    ) -> Self {
        let c = |metric| telemetry::counter(metric, &[("component", cfg.name.as_str())]);
        Intake {
            out,
            source: Arc::from(cfg.name.as_str()),
            host_name,
            max_message_bytes: cfg.max_message_bytes,
            counters: Counters {
                events: c("shipd_events_in_total"),
                malformed: c("shipd_syslog_malformed_total"),
                truncated: c("shipd_syslog_truncated_total"),
            },
            log_limit: LogLimit::new(Duration::from_secs(10)),
            cancel,
        }
    }

    /// A record maker for one listener or connection.
    fn maker(&self) -> RecordMaker {
        RecordMaker::new(Arc::clone(&self.source), self.host_name.clone())
    }

    fn batch(&self) -> EventBatch {
        EventBatch::from_source(&self.source, 16)
    }

    /// Adds the record of `msg`, received at `now`, to `batch`, counting
    /// (and logging, rate limited) what was malformed or truncated.
    fn add(
        &self,
        maker: &mut RecordMaker,
        batch: &mut EventBatch,
        msg: Received<'_>,
        now: &chrono::DateTime<chrono::Local>,
    ) {
        let (record, malformed) = maker.make(msg, now);
        if msg.truncated {
            self.counters.truncated.inc();
        }
        if let Some(why) = malformed {
            self.counters.malformed.inc();
            if let Some(suppressed) = self.log_limit.allow() {
                tracing::warn!(
                    source = %self.source,
                    peer = ?msg.peer,
                    reason = %why,
                    suppressed,
                    "syslog message not in RFC 5424 or RFC 3164 form; kept whole as the body"
                );
            }
        } else if msg.truncated {
            if let Some(suppressed) = self.log_limit.allow() {
                tracing::warn!(
                    source = %self.source,
                    peer = ?msg.peer,
                    max_message_bytes = self.max_message_bytes,
                    suppressed,
                    "syslog message longer than max_message_bytes; truncated"
                );
            }
        }
        batch.push(crate::event::Event::Log(record));
    }

    /// Journals `batch` and hands it to the pipeline, waiting for room.
    /// `false` when the source is stopping or the pipeline gone: a batch
    /// still waiting then stays journaled for the next start.
    async fn deliver(&self, batch: EventBatch) -> bool {
        if batch.is_empty() {
            return true;
        }
        let n = batch.len() as u64;
        let out = self.out.clone();
        let journaled = tokio::task::spawn_blocking(move || {
            let mut batch = batch;
            let token = out.journal(&mut batch);
            (batch, token)
        })
        .await;
        let (batch, token) = match journaled {
            Ok(journaled) => journaled,
            Err(e) => {
                tracing::error!(source = %self.source, error = %e, "journaling a syslog batch failed");
                return false;
            }
        };
        tokio::select! {
            sent = self.out.send_journaled_within(batch, token, Duration::MAX) => match sent {
                Ok(()) => {
                    self.counters.events.add(n);
                    true
                }
                Err(NotSent::Closed | NotSent::Full) => false,
            },
            _ = self.cancel.cancelled() => false,
        }
    }
}

/// A bound listener.
enum Bound {
    Udp(tokio::net::UdpSocket),
    Tcp(tokio::net::TcpListener),
    Unix(datagram::UnixSocket),
}

/// A bound source, ready to serve.
pub struct SyslogSource {
    bound: Vec<(Listen, Bound)>,
    intake: Arc<Intake>,
    limit: ConnectionLimit,
}

impl SyslogSource {
    /// Binds every address (inside the runtime), so an address in use
    /// fails the start instead of a background task.
    pub fn bind(cfg: SyslogSourceConfig, ctx: SourceContext) -> Result<Self, SyslogSourceError> {
        let intake = Arc::new(Intake::new(
            &cfg,
            ctx.unreplayable,
            ctx.host_name,
            ctx.cancel,
        ));
        let mut bound = Vec::new();
        for listen in &cfg.listen {
            let err = |error| SyslogSourceError::Bind {
                source_name: cfg.name.clone(),
                listen: listen.to_string(),
                error,
            };
            let b = match listen {
                Listen::Udp(addr) => Bound::Udp(datagram::bind_udp(*addr).map_err(err)?),
                Listen::Tcp(addr) => Bound::Tcp(tcp::bind(*addr).map_err(err)?),
                Listen::Unix(path) => Bound::Unix(datagram::UnixSocket::bind(path).map_err(err)?),
            };
            bound.push((listen.clone(), b));
        }
        Ok(SyslogSource {
            bound,
            limit: ConnectionLimit::new(&cfg.name, cfg.max_connections),
            intake,
        })
    }

    /// Serves until the source is cancelled.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let mut tasks = Vec::new();
        for (listen, bound) in self.bound {
            let local = match &bound {
                Bound::Udp(s) => s.local_addr().map(|a| format!("udp://{a}")),
                Bound::Tcp(l) => l.local_addr().map(|a| format!("tcp://{a}")),
                Bound::Unix(_) => Ok(listen.to_string()),
            };
            tracing::info!(source = %self.intake.source, listen = %local.unwrap_or_else(|_| listen.to_string()), "syslog listening");
            let intake = Arc::clone(&self.intake);
            tasks.push(match bound {
                Bound::Udp(socket) => tokio::spawn(datagram::serve(socket, intake)),
                Bound::Unix(socket) => tokio::spawn(datagram::serve(socket, intake)),
                Bound::Tcp(listener) => {
                    tokio::spawn(tcp::serve(listener, intake, self.limit.clone()))
                }
            });
        }
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(source = %self.intake.source, error = %e, "syslog listener failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_by_scheme_and_refuse_the_rest() {
        assert_eq!(
            Listen::parse(" udp://0.0.0.0:514 "),
            Ok(Listen::Udp(SocketAddr::from(([0, 0, 0, 0], 514))))
        );
        assert_eq!(
            Listen::parse("tcp://[::1]:6514"),
            Ok(Listen::Tcp("[::1]:6514".parse().unwrap()))
        );
        assert_eq!(
            Listen::parse("unix:///run/shipd/syslog.sock"),
            Ok(Listen::Unix(PathBuf::from("/run/shipd/syslog.sock")))
        );
        for bad in [
            "udp://pi-1:514",
            "tcp://0.0.0.0",
            "unix://relative.sock",
            "514",
            "http://x:1",
        ] {
            assert!(Listen::parse(bad).is_err(), "{bad}");
        }
        let l = Listen::parse("unix:///a.sock").unwrap();
        assert_eq!(Listen::parse(&l.to_string()), Ok(l));
    }
}
