//! HTTP API: `GET /health` (200, or 503 with the failing components as JSON;
//! both carry the disk `wear` figures)
//! and `GET /metrics` (Prometheus text). Read-only; binds where configured.

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
    let body = serde_json::json!({
        "status": if failing.is_empty() { "ok" } else { "failing" },
        "failing": failing.iter().map(|(c, e)| serde_json::json!({"component": c, "reason": e})).collect::<Vec<_>>(),
        "warnings": health::warnings().iter().map(|(c, w)| serde_json::json!({"component": c, "warning": w})).collect::<Vec<_>>(),
        "wear": telemetry::wear(),
    });
    let status = if failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
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
