//! The OTLP receiver's listening sockets. One accept task per listener
//! admits each connection through the source's [`ConnectionLimit`] (one
//! over the cap is closed at once, counted and logged), terminates TLS when
//! configured (each handshake in its own task under a timeout, so a slow or
//! silent client never holds up the others; failures counted and logged
//! once a minute) and hands out [`Conn`]s that keep their slot while they
//! are served. The same connections feed the HTTP server (as an axum
//! [`Listener`](axum::serve::Listener)) and the gRPC server (as a stream).
//! Accept errors (out of descriptors and the like) wait and are logged once
//! a minute; they never stop the listener.

use crate::sinks::log_limit::LogLimit;
use crate::sources::connection_limit::{ConnectionLimit, ConnectionPermit};
use crate::telemetry::{self, Metric};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes under way at once; further connections wait in the backlog.
const MAX_HANDSHAKES: usize = 64;
/// How long the accept loop pauses after an accept error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

static HANDSHAKE_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));
static ACCEPT_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An admitted connection (its TLS handshake done, if any); holds its slot
/// of the connection limit until dropped.
pub struct Conn {
    stream: Stream,
    peer: SocketAddr,
    _permit: ConnectionPermit,
}

/// A receiver's listening socket: the connections it admitted.
pub struct Listening {
    incoming: mpsc::Receiver<Conn>,
    local_addr: SocketAddr,
}

impl Listening {
    /// Starts accepting on `listener` until `cancel`, terminating TLS with
    /// `tls` when given, admitting at most what `limit` allows.
    pub fn new(
        listener: tokio::net::TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        limit: ConnectionLimit,
        source: Arc<str>,
        cancel: CancellationToken,
    ) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, incoming) = mpsc::channel(MAX_HANDSHAKES);
        let accepting = Accepting {
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            failures: telemetry::counter(
                "shipd_tls_handshake_failures_total",
                &[("component", &source)],
            ),
            handshakes: Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES)),
            limit,
            source,
            tx,
        };
        tokio::spawn(accepting.run(listener, cancel));
        Ok(Listening {
            incoming,
            local_addr,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admitted connections as a stream (for the gRPC server).
    pub fn into_stream(self) -> tokio_stream::wrappers::ReceiverStream<Conn> {
        tokio_stream::wrappers::ReceiverStream::new(self.incoming)
    }
}

struct Accepting {
    tls: Option<tokio_rustls::TlsAcceptor>,
    failures: Metric,
    handshakes: Arc<tokio::sync::Semaphore>,
    limit: ConnectionLimit,
    source: Arc<str>,
    tx: mpsc::Sender<Conn>,
}

impl Accepting {
    async fn run(self, listener: tokio::net::TcpListener, cancel: CancellationToken) {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = cancel.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        if let Some(suppressed) = ACCEPT_LOG.allow() {
                            tracing::warn!(source = %self.source, %error, suppressed, "OTLP receiver cannot accept a connection; retrying");
                        }
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            // Over the cap: dropping `tcp` closes it (counted and logged).
            let Some(permit) = self.limit.admit(peer) else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let Some(acceptor) = &self.tls else {
                let conn = Conn {
                    stream: Stream::Plain(tcp),
                    peer,
                    _permit: permit,
                };
                if self.tx.send(conn).await.is_err() {
                    return;
                }
                continue;
            };
            let Ok(handshake_slot) = Arc::clone(&self.handshakes).acquire_owned().await else {
                return;
            };
            let (acceptor, tx, failures, source) = (
                acceptor.clone(),
                self.tx.clone(),
                self.failures.clone(),
                Arc::clone(&self.source),
            );
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                drop(handshake_slot);
                let cause = match handshake {
                    Ok(Ok(stream)) => {
                        let conn = Conn {
                            stream: Stream::Tls(Box::new(stream)),
                            peer,
                            _permit: permit,
                        };
                        let _ = tx.send(conn).await;
                        return;
                    }
                    Ok(Err(error)) => error.to_string(),
                    Err(_) => "timed out".to_string(),
                };
                failures.inc();
                if let Some(suppressed) = HANDSHAKE_LOG.allow() {
                    tracing::warn!(source = %source, %peer, error = %cause, suppressed, "TLS handshake with an OTLP client failed");
                }
            });
        }
    }
}

impl axum::serve::Listener for Listening {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.incoming.recv().await {
            Some(conn) => {
                let peer = conn.peer;
                (conn, peer)
            }
            // The accept task ended (shutdown): graceful shutdown ends the server.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Option<SocketAddr>;

    fn connect_info(&self) -> Self::ConnectInfo {
        Some(self.peer)
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}
