//! Syslog over datagrams: UDP and unix datagram sockets, one message per
//! datagram. Datagrams that wait in the socket together are read into one
//! batch (up to [`MAX_BATCH_MESSAGES`] or [`MAX_BATCH_BYTES`]); the
//! receive buffer is one byte longer than `max_message_bytes`, so a longer
//! datagram (the kernel cuts it to the buffer) is known to be truncated. The unix socket's file
//! is made writable by every local user (like `/dev/log`), replaced when a
//! stale socket is in the way, never when it is some other file, and
//! removed when the source stops.

use super::record::Received;
use super::{Intake, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A datagram socket the listener reads from.
pub trait DatagramSocket: Send + Sync + 'static {
    /// Waits until a datagram may be read.
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send;
    /// Reads one waiting datagram without waiting: its length and sender.
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)>;
}

impl DatagramSocket for tokio::net::UdpSocket {
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        tokio::net::UdpSocket::readable(self)
    }
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)> {
        self.try_recv_from(buf)
            .map(|(n, peer)| (n, Some(peer.ip())))
    }
}

/// Binds a UDP socket.
pub fn bind_udp(addr: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket)
}

/// A bound unix datagram socket; its file goes when it is dropped.
pub struct UnixSocket {
    socket: tokio::net::UnixDatagram,
    path: PathBuf,
}

impl UnixSocket {
    /// Binds `path`, replacing a socket file left by an earlier run.
    pub fn bind(path: &Path) -> io::Result<UnixSocket> {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way",
                ))
            }
            Err(_) => {}
        }
        let socket = std::os::unix::net::UnixDatagram::bind(path)?;
        // Like /dev/log: every local process may send (the directory
        // around it decides who reaches it).
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        socket.set_nonblocking(true)?;
        Ok(UnixSocket {
            socket: tokio::net::UnixDatagram::from_std(socket)?,
            path: path.to_path_buf(),
        })
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl DatagramSocket for UnixSocket {
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        self.socket.readable()
    }
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)> {
        self.socket.try_recv(buf).map(|n| (n, None))
    }
}

/// Reads datagrams until the source is cancelled or the pipeline is gone.
pub async fn serve<S: DatagramSocket>(socket: S, intake: Arc<Intake>) {
    let mut buf = vec![0u8; intake.max_message_bytes + 1];
    let mut maker = intake.maker();
    loop {
        tokio::select! {
            ready = socket.readable() => {
                if let Err(e) = ready {
                    tracing::error!(source = %intake.source, error = %e, "syslog socket failed");
                    return;
                }
            }
            _ = intake.cancel.cancelled() => return,
        }
        let mut batch = intake.batch();
        let now = chrono::Local::now();
        while batch.len() < MAX_BATCH_MESSAGES && batch.bytes < MAX_BATCH_BYTES {
            match socket.try_recv(&mut buf) {
                Ok((n, peer)) => {
                    let truncated = n > intake.max_message_bytes;
                    let msg = Received {
                        bytes: &buf[..n.min(intake.max_message_bytes)],
                        truncated,
                        peer,
                    };
                    intake.add(&mut maker, &mut batch, msg, &now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors and the like: the socket still works.
                    if let Some(suppressed) = intake.log_limit.allow() {
                        tracing::warn!(source = %intake.source, error = %e, suppressed, "syslog receive error");
                    }
                    break;
                }
            }
        }
        if !intake.deliver(batch).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::journal::JournaledSender;
    use crate::pipeline::channel::batch_channel;
    use crate::sources::syslog::SyslogSourceConfig;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn datagrams_waiting_together_go_into_one_batch() {
        let socket = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = socket.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..50 {
            let msg = format!("<13>1 - h app - - - waiting-{i}");
            sender.send_to(msg.as_bytes(), addr).unwrap();
        }
        // One datagram over the limit: cut and marked.
        sender.send_to(&[b'x'; 2000], addr).unwrap();
        let (tx, mut rx) = batch_channel(1 << 20);
        let cancel = CancellationToken::new();
        let mut cfg = SyslogSourceConfig::new("datagram_batch_test", Vec::new());
        cfg.max_message_bytes = 1024;
        let intake = Arc::new(Intake::new(
            &cfg,
            JournaledSender::new(tx, None),
            "node".into(),
            cancel.clone(),
        ));
        let task = tokio::spawn(serve(socket, intake));
        let batch = rx.recv().await.unwrap().item;
        assert_eq!(batch.len(), 51, "every waiting datagram in one batch");
        let crate::event::Event::Log(last) = &batch.events[50] else {
            panic!("a log record")
        };
        assert_eq!(last.body.as_str().map(str::len), Some(1024));
        assert!(last
            .attributes
            .iter()
            .any(|(k, v)| k == "shipd.truncated" && *v == crate::event::Value::Bool(true)));
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(
            crate::telemetry::value(
                "shipd_syslog_truncated_total",
                "component=\"datagram_batch_test\""
            ),
            Some(1)
        );
    }
}
