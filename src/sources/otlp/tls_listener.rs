//! TLS for the OTLP receiver: one accept task per listener hands out
//! connections whose handshake finished ([`accept_tls`]); each handshake
//! runs in its own task under a timeout, so a slow or silent client never
//! holds up the others. The same connections feed the HTTP server (as an
//! axum [`Listener`](axum::serve::Listener)) and the gRPC server (as a
//! stream of [`TlsConn`]). Failed handshakes are counted and logged
//! (rate-limited); they never stop the listener.

use crate::sinks::log_limit::LogLimit;
use crate::telemetry;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; further connections wait in the backlog.
const MAX_HANDSHAKES: usize = 64;

static HANDSHAKE_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));

/// A TLS connection whose handshake is done.
pub struct TlsConn {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
}

/// Accepts on `listener` until `cancel`, handing out connections whose TLS
/// handshake succeeded.
pub fn accept_tls(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    source: Arc<str>,
    cancel: CancellationToken,
) -> mpsc::Receiver<TlsConn> {
    let (tx, rx) = mpsc::channel(MAX_HANDSHAKES);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let failures = telemetry::counter(
        "shipd_tls_handshake_failures_total",
        &[("component", &source)],
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (tcp, peer) = tokio::select! {
                _ = cancel.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Out of descriptors and the like: wait, don't spin.
                        tracing::warn!(source = %source, %error, "OTLP receiver cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let (acceptor, tx, failures, source) = (
                acceptor.clone(),
                tx.clone(),
                failures.clone(),
                Arc::clone(&source),
            );
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                drop(permit);
                match handshake {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(TlsConn { stream, peer }).await;
                    }
                    Ok(Err(error)) => {
                        failures.inc();
                        if let Some(suppressed) = HANDSHAKE_LOG.allow() {
                            tracing::warn!(source = %source, %peer, %error, suppressed, "TLS handshake with an OTLP client failed");
                        }
                    }
                    Err(_) => {
                        failures.inc();
                        if let Some(suppressed) = HANDSHAKE_LOG.allow() {
                            tracing::warn!(source = %source, %peer, suppressed, "TLS handshake with an OTLP client timed out");
                        }
                    }
                }
            });
        }
    });
    rx
}

/// The HTTP server's view of the accepted connections.
pub struct TlsListener {
    pub incoming: mpsc::Receiver<TlsConn>,
    pub local_addr: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsConn, SocketAddr) {
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

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = Option<SocketAddr>;

    fn connect_info(&self) -> Self::ConnectInfo {
        Some(self.peer)
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A receiver's listening socket: plain TCP, or TLS terminated here.
pub enum Listening {
    Plain(tokio::net::TcpListener),
    Tls(TlsListener),
}

impl Listening {
    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listening::Plain(l) => l.local_addr().ok(),
            Listening::Tls(l) => Some(l.local_addr),
        }
    }

    /// Wraps `listener` in TLS when `config` is given.
    pub fn new(
        listener: tokio::net::TcpListener,
        config: Option<Arc<rustls::ServerConfig>>,
        source: Arc<str>,
        cancel: CancellationToken,
    ) -> std::io::Result<Self> {
        Ok(match config {
            None => Listening::Plain(listener),
            Some(config) => {
                let local_addr = listener.local_addr()?;
                Listening::Tls(TlsListener {
                    incoming: accept_tls(listener, config, source, cancel),
                    local_addr,
                })
            }
        })
    }
}
