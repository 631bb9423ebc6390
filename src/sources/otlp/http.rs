//! OTLP/HTTP: `POST /v1/logs` and `POST /v1/metrics` with protobuf bodies
//! (`Content-Encoding` gzip, zstd or none). Answers 200 with the protobuf
//! export response once the batch is in the pipeline; 400 for a body that
//! does not decode, 408 for one that does not arrive in time, 413 for one
//! over the receiver's limits (its size, or the memory its records take
//! once decoded), 415 for other content types or encodings, 429 with
//! `Retry-After` while the pipeline is full or the receiver busy, 503 when
//! shutting down. Error bodies are a protobuf `google.rpc.Status`, as OTLP
//! asks. A body is read only once the request has a slot and the memory
//! for it (the [`Intake`] decides).

use super::body::{BodyReader, Encoding};
use super::listener::Listening;
use super::rpc;
use super::{Intake, Refusal, Signal};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PROTOBUF: &str = "application/x-protobuf";

struct HttpState {
    intake: Arc<Intake>,
    retry_after: Duration,
}

/// The answer to a refused request.
fn refused(refusal: &Refusal, retry_after: Duration) -> Response {
    let (status, code) = match refusal {
        Refusal::Full | Refusal::Busy => (StatusCode::TOO_MANY_REQUESTS, rpc::RESOURCE_EXHAUSTED),
        Refusal::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, rpc::RESOURCE_EXHAUSTED),
        Refusal::Malformed(_) => (StatusCode::BAD_REQUEST, rpc::INVALID_ARGUMENT),
        Refusal::Unsupported(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, rpc::INVALID_ARGUMENT),
        Refusal::Timeout => (StatusCode::REQUEST_TIMEOUT, rpc::DEADLINE_EXCEEDED),
        Refusal::Closed => (StatusCode::SERVICE_UNAVAILABLE, rpc::UNAVAILABLE),
    };
    let retry = matches!(refusal, Refusal::Full | Refusal::Busy);
    let body = rpc::status(code, refusal.message(), retry.then_some(retry_after));
    let mut response = (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))],
        body,
    )
        .into_response();
    if retry {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

/// Checks the headers, receives the body and hands the request on.
async fn take(
    state: &HttpState,
    signal: Signal,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(PROTOBUF);
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !(mime.eq_ignore_ascii_case(PROTOBUF) || mime.eq_ignore_ascii_case("application/protobuf")) {
        return Err(Refusal::Unsupported(format!(
            "content type `{mime}` is not supported; send {PROTOBUF} (OTLP/JSON is not accepted)"
        )));
    }
    let encoding = Encoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )?;
    let len = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| Refusal::Malformed("invalid Content-Length".into()))?,
        ),
    };
    let intake = &state.intake;
    if let Some(len) = len.filter(|&len| len > intake.max_message_bytes) {
        // Refused before it takes a slot or a byte.
        return Err(intake.body_too_large(len));
    }
    let mut request = intake.admit().await?;
    let mut reader = BodyReader::new(body);
    let wire = intake.receive(&mut request, &mut reader, len).await?;
    intake.take(request, signal, encoding, wire).await
}

async fn receive(state: &HttpState, signal: Signal, headers: HeaderMap, body: Body) -> Response {
    let outcome = take(state, signal, &headers, body).await;
    state.intake.answered("http", &outcome);
    match outcome {
        Ok(()) => {
            let success = match signal {
                Signal::Logs => ExportLogsServiceResponse::default().encode_to_vec(),
                Signal::Metrics => ExportMetricsServiceResponse::default().encode_to_vec(),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))],
                success,
            )
                .into_response()
        }
        Err(refusal) => refused(&refusal, state.retry_after),
    }
}

async fn logs(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    receive(&state, Signal::Logs, headers, body).await
}

async fn metrics(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    receive(&state, Signal::Metrics, headers, body).await
}

/// Serves OTLP/HTTP on `listener` until `cancel`.
pub async fn serve(
    listener: Listening,
    intake: Arc<Intake>,
    retry_after: Duration,
    cancel: CancellationToken,
) {
    let source = Arc::clone(&intake.origin().source);
    let state = Arc::new(HttpState {
        intake,
        retry_after,
    });
    let app = Router::new()
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(metrics))
        .with_state(state);
    let shutdown = async move { cancel.cancelled().await };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    if let Err(e) = served {
        tracing::error!(source = %source, error = %e, "OTLP/HTTP server stopped");
    }
}
