//! The client side of the control socket, for shipctl: a gRPC channel over
//! the agent's unix socket. It only connects; what to ask is the caller's.

use super::proto::control_client::ControlClient;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint};

/// The agent could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach shipd on {path}: {reason} (is shipd running? set --socket or SHIPD_CONTROL_SOCKET)")]
pub struct ConnectError {
    pub path: PathBuf,
    pub reason: String,
}

/// Connects to the control socket at `path`.
pub async fn connect(path: &Path) -> Result<ControlClient<Channel>, ConnectError> {
    let failed = |reason: String| ConnectError {
        path: path.to_owned(),
        reason,
    };
    // The URI is required by the API but unused: the connector dials the socket.
    let endpoint = Endpoint::try_from("http://shipd.control").map_err(|e| failed(e.to_string()))?;
    let socket = path.to_owned();
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| {
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = format!("{reason}: {s}");
                source = s.source();
            }
            failed(reason)
        })?;
    Ok(ControlClient::new(channel))
}
