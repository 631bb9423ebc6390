//! Syslog over TCP: accepts connections under the source's
//! [`ConnectionLimit`] (one over it is closed at once, counted), and reads
//! each with a fixed buffer through a [`Framer`], handing the messages of
//! every read on as one batch before reading more, so a sender waits while
//! the pipeline is full. A connection holds its read buffer and at most one
//! partial message (`max_message_bytes`); one silent for [`IDLE_TIMEOUT`]
//! is closed, handing on what it had sent of a message.

use super::framing::{Frame, Framer};
use super::record::Received;
use super::Intake;
use crate::sources::connection_limit::{ConnectionLimit, ConnectionPermit};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// Bytes read from a connection at once.
const READ_BUFFER: usize = 16 * 1024;

/// A connection that sends nothing this long is closed (senders reconnect).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Binds a TCP listener.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Accepts connections until the source is cancelled.
pub async fn serve(listener: TcpListener, intake: Arc<Intake>, limit: ConnectionLimit) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = intake.cancel.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait a moment, keep serving.
                if let Some(suppressed) = intake.log_limit.allow() {
                    tracing::warn!(source = %intake.source, error = %e, suppressed, "syslog accept failed");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(permit) = limit.admit(peer) else {
            drop(stream);
            continue;
        };
        tokio::spawn(connection(stream, peer, Arc::clone(&intake), permit));
    }
}

/// Reads one connection to its end.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    intake: Arc<Intake>,
    _permit: ConnectionPermit,
) {
    let mut framer = Framer::new(intake.max_message_bytes);
    let mut maker = intake.maker();
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut buf)) => read,
            _ = intake.cancel.cancelled() => return,
        };
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                if let Some(suppressed) = intake.log_limit.allow() {
                    tracing::warn!(source = %intake.source, %peer, error = %e, suppressed, "syslog connection failed");
                }
                0
            }
            Err(_) => {
                tracing::debug!(source = %intake.source, %peer, "idle syslog connection closed");
                0
            }
        };
        let mut batch = intake.batch();
        let now = chrono::Local::now();
        let mut add = |frame: Frame<'_>| {
            let msg = Received {
                bytes: frame.bytes,
                truncated: frame.truncated,
                peer: Some(peer.ip()),
            };
            intake.add(&mut maker, &mut batch, msg, &now);
        };
        if n == 0 {
            framer.finish(&mut add);
        } else {
            framer.push(&buf[..n], &mut add);
        }
        if !intake.deliver(batch).await || n == 0 {
            return;
        }
    }
}
