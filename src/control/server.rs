//! The control socket: the gRPC [`Control`](super::proto::control_server::Control)
//! service (tap, status, reload, version) on a unix socket, mode 0660, never
//! on TCP. A stale socket left by a crash is replaced; a live one (another
//! agent answers on it) is left alone; anything else at the path (a regular
//! file, a directory, a symlink) is never removed: the agent refuses to
//! start ([`check_path`]). It serves requests; it never decides anything
//! about the pipeline itself.

use super::proto::control_server::{Control, ControlServer};
use super::proto::{self, tap_message};
use super::reload::Reloader;
use super::status::AgentView;
use super::tap::{self, TapRequest};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// Events a tap holds for a slow reader before it drops.
const TAP_QUEUE: usize = 1024;

/// The control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlSocketError {
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another agent answers on {0}")]
    InUse(PathBuf),
    #[error(
        "control socket path {path} is {kind}, not a socket: refusing to replace it; \
         point SHIPD_CONTROL_SOCKET (control_socket) elsewhere or remove it"
    )]
    NotASocket { path: PathBuf, kind: &'static str },
    #[error("cannot bind {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

struct ControlService {
    view: Arc<AgentView>,
    reloader: Option<Arc<Reloader>>,
    /// Ends tap streams at shutdown, so the server can stop.
    cancel: CancellationToken,
}

type TapStream = Pin<Box<dyn Stream<Item = Result<proto::TapMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Control for ControlService {
    type TapStream = TapStream;

    async fn tap(
        &self,
        request: Request<proto::TapRequest>,
    ) -> Result<Response<TapStream>, Status> {
        let request = request.into_inner();
        let layout = self.view.layout();
        let components =
            tap::globs(&request.components).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let names = layout.components();
        let matched: Vec<String> = if components.is_empty() {
            layout.sinks.clone()
        } else {
            names
                .iter()
                .filter(|(n, kind)| {
                    matches!(*kind, "source" | "step" | "sink")
                        && components.iter().any(|p| p.matches(n))
                })
                .map(|(n, _)| n.clone())
                .collect()
        };
        if matched.is_empty() {
            let known: Vec<&str> = names
                .iter()
                .filter(|(_, k)| matches!(*k, "source" | "step" | "sink"))
                .map(|(n, _)| n.as_str())
                .collect();
            return Err(Status::not_found(format!(
                "no component matches {}; components: {}",
                request.components.join(" "),
                known.join(", ")
            )));
        }
        let filter = match request.r#where.trim() {
            "" => None,
            text => Some(
                tap::compile_filter(text, &layout.sources)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?,
            ),
        };
        let mut subscription = tap::subscribe(TapRequest {
            components,
            filter,
            rate_per_second: request.rate_per_second,
            queue: TAP_QUEUE,
        });
        let hello = proto::TapMessage {
            kind: Some(tap_message::Kind::Notice(proto::TapNotice {
                matched,
                message: String::new(),
            })),
            dropped: 0,
            rate_limited: 0,
        };
        let cancel = self.cancel.clone();
        let stream = async_stream(hello, move |yield_| async move {
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => return,
                    event = subscription.events.recv() => match event {
                        Some(event) => event,
                        None => return,
                    },
                };
                let counts = &subscription.counts;
                let message = proto::TapMessage {
                    kind: Some(tap_message::Kind::Event(proto::TapEvent {
                        component: event.component.to_string(),
                        point: event.point.as_str().to_owned(),
                        source: event.source.to_string(),
                        json: event.json,
                    })),
                    dropped: counts.dropped.load(Ordering::Relaxed),
                    rate_limited: counts.rate_limited.load(Ordering::Relaxed),
                };
                if yield_.send(Ok(message)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn status(
        &self,
        _: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusReply>, Status> {
        let mut reply = self.view.status();
        reply.reloads = self.reloader.as_ref().map_or(0, |r| r.applied());
        Ok(Response::new(reply))
    }

    async fn reload(
        &self,
        _: Request<proto::ReloadRequest>,
    ) -> Result<Response<proto::ReloadReply>, Status> {
        let Some(reloader) = &self.reloader else {
            return Err(Status::unimplemented(
                "this agent was started without a reloadable pipeline",
            ));
        };
        let outcome = reloader.reload().await;
        Ok(Response::new(proto::ReloadReply {
            applied: outcome.applied,
            diagnostics: outcome.diagnostics,
            summary: outcome.summary,
        }))
    }

    async fn version(
        &self,
        _: Request<proto::VersionRequest>,
    ) -> Result<Response<proto::VersionReply>, Status> {
        Ok(Response::new(proto::VersionReply {
            version: env!("CARGO_PKG_VERSION").into(),
            pipeline: self.view.pipeline().to_owned(),
            pid: u64::from(std::process::id()),
        }))
    }
}

/// A stream fed by a task: `first`, then whatever `feed` sends. The task
/// ends when the reader goes away (its sends fail), which drops the tap.
fn async_stream<F, Fut>(first: proto::TapMessage, feed: F) -> TapStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<proto::TapMessage, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // One slot: the tap's own queue is where a slow reader's backlog lives
    // (and is dropped from), not here.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let task = feed(tx.clone());
    tokio::spawn(async move {
        if tx.send(Ok(first)).await.is_ok() {
            task.await;
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Whether `path` may become the control socket: nothing there, or a
/// socket (replaced when nobody answers on it). Anything else is refused,
/// never removed. Checked at start, before anything is opened.
pub fn check_path(path: &Path) -> Result<(), ControlSocketError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let file_type = meta.file_type();
    let kind = if file_type.is_socket() {
        return Ok(());
    } else if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    };
    Err(ControlSocketError::NotASocket {
        path: path.to_owned(),
        kind,
    })
}

/// Whether `path` is a socket (what this agent may remove).
fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Removes a socket file nobody answers on; refuses one that is live, and
/// anything that is not a socket.
fn clear_stale(path: &Path) -> Result<(), ControlSocketError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    check_path(path)?;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ControlSocketError::InUse(path.to_owned()));
    }
    std::fs::remove_file(path).map_err(|source| ControlSocketError::Bind {
        path: path.to_owned(),
        source,
    })
}

/// Binds `path` (creating its directory) and serves until `cancel`.
pub fn serve(
    path: &Path,
    view: Arc<AgentView>,
    reloader: Option<Arc<Reloader>>,
    cancel: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ControlSocketError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ControlSocketError::Dir {
            path: dir.to_owned(),
            source,
        })?;
    }
    clear_stale(path)?;
    let bind_err = |source| ControlSocketError::Bind {
        path: path.to_owned(),
        source,
    };
    let listener = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    tracing::info!(socket = %path.display(), "control socket listening (tap, status, reload)");
    let service = ControlServer::new(ControlService {
        view,
        reloader,
        cancel: cancel.clone(),
    });
    let owned = path.to_owned();
    Ok(tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                cancel.cancelled(),
            )
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "control socket stopped");
        }
        // Only a socket: whatever replaced it meanwhile is not ours.
        if is_socket(&owned) {
            let _ = std::fs::remove_file(&owned);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_socket_or_nothing_may_be_at_the_control_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent.sock");
        assert!(check_path(&absent).is_ok());
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, b"keep me").unwrap();
        let err = clear_stale(&file).unwrap_err();
        assert!(
            err.to_string().contains("a regular file, not a socket"),
            "{err}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"keep me", "never removed");
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(check_path(&link).is_err(), "a symlink is not followed");
        assert!(check_path(dir.path()).is_err());
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(clear_stale(&stale).is_ok());
        assert!(!stale.exists(), "a stale socket is replaced");
    }
}
