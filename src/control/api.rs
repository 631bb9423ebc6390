//! HTTP API: `GET /health` and `GET /metrics` (Prometheus text). Read-only;
//! binds where configured.
//!
//! `/health` answers JSON with a `status`: `ok` (200), `failing` (503: a
//! sink cannot deliver) or `degraded` (503: the agent ships, but what it
//! delivered may not survive a crash, e.g. checkpoints cannot be written);
//! `failing`, `degraded` and `warnings` list the components with the cause,
//! and `wear` carries the disk figures. Warnings never change the status.

use crate::control::health;
use crate::telemetry;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

async fn health_handler() -> impl IntoResponse {
    let failing = health::failing();
    let degraded = health::degraded();
    let status = match (failing.is_empty(), degraded.is_empty()) {
        (true, true) => "ok",
        (false, _) => "failing",
        (true, false) => "degraded",
    };
    let body = serde_json::json!({
        "status": status,
        "failing": failing.iter().map(|(c, e)| serde_json::json!({"component": c, "reason": e})).collect::<Vec<_>>(),
        "degraded": degraded.iter().map(|(c, e)| serde_json::json!({"component": c, "cause": e})).collect::<Vec<_>>(),
        "warnings": health::warnings().iter().map(|(c, w)| serde_json::json!({"component": c, "warning": w})).collect::<Vec<_>>(),
        "wear": telemetry::wear(),
    });
    let status = match status {
        "ok" => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn metrics_handler() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::render(),
    )
}

/// Binds `addr` and serves until `cancel`.
pub async fn serve(
    addr: SocketAddr,
    cancel: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "API listening (/health, /metrics)");
    let app = Router::new()
        .route("/health", get(health_handler))
        .route("/metrics", get(metrics_handler));
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "API server stopped");
        }
    }))
}
