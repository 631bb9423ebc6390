//! OTLP/HTTP: `POST /v1/logs` and `POST /v1/metrics` with protobuf bodies
//! (`Content-Encoding` gzip, zstd or none). Answers 200 with the protobuf
//! export response once the batch is in the pipeline; 400 for a body that
//! does not decode, 413 for one over the limit, 415 for other content types
//! or encodings, 429 with `Retry-After` while the pipeline is full, 503 when
//! shutting down. Error bodies are a protobuf `google.rpc.Status`, as OTLP asks.

use super::convert::{self, Converted};
use super::tls_listener::Listening;
use super::{Intake, Refusal};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PROTOBUF: &str = "application/x-protobuf";

/// Size and retry advice of the HTTP receiver.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub retry_after: Duration,
}

struct HttpState {
    intake: Arc<Intake>,
    limits: Limits,
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An answer other than success.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        // gRPC codes: INVALID_ARGUMENT 3, RESOURCE_EXHAUSTED 8, UNAVAILABLE 14.
        let code = match self.status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::PAYLOAD_TOO_LARGE => 8,
            StatusCode::SERVICE_UNAVAILABLE => 14,
            _ => 3,
        };
        let body = RpcStatus {
            code,
            message: self.message,
        }
        .encode_to_vec();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))],
            body,
        )
            .into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// The decompressed protobuf body, or why it is refused.
fn body_of(headers: &HeaderMap, body: &[u8], max: usize) -> Result<Vec<u8>, Failure> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(PROTOBUF);
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !(mime.eq_ignore_ascii_case(PROTOBUF) || mime.eq_ignore_ascii_case("application/protobuf")) {
        return Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type `{mime}` is not supported; send {PROTOBUF} (OTLP/JSON is not accepted)"),
        ));
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let mut out = Vec::new();
    let read = match encoding.as_str() {
        "identity" | "" => return Ok(body.to_vec()),
        "gzip" | "x-gzip" => flate2::read::GzDecoder::new(body)
            .take(max as u64 + 1)
            .read_to_end(&mut out),
        "zstd" => zstd::stream::read::Decoder::new(body)
            .and_then(|d| d.take(max as u64 + 1).read_to_end(&mut out)),
        other => {
            return Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content encoding `{other}` is not supported; use gzip, zstd or none"),
            ))
        }
    };
    match read {
        Ok(_) if out.len() > max => Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("decompressed body exceeds {max} bytes"),
        )),
        Ok(_) => Ok(out),
        Err(e) => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("body is not valid {encoding}: {e}"),
        )),
    }
}

/// Decodes, converts and hands on one request; the success body on success.
async fn receive<R: Message + Default>(
    state: &HttpState,
    headers: &HeaderMap,
    body: &[u8],
    convert: impl FnOnce(R, &convert::Origin) -> Converted,
    success: Vec<u8>,
) -> Response {
    let decoded = body_of(headers, body, state.limits.max_message_bytes).and_then(|raw| {
        R::decode(&raw[..]).map_err(|e| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("body is not an OTLP export request: {e}"),
            )
        })
    });
    let request = match decoded {
        Ok(r) => r,
        Err(failure) => {
            state.intake.malformed("http", &failure.message);
            return failure.into_response();
        }
    };
    match state
        .intake
        .accept(convert(request, state.intake.origin()))
        .await
    {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))],
            success,
        )
            .into_response(),
        Err(Refusal::Full) => Failure {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "shipd's pipeline is full; retry later".into(),
            retry_after: Some(state.limits.retry_after),
        }
        .into_response(),
        Err(Refusal::Closed) => {
            Failure::new(StatusCode::SERVICE_UNAVAILABLE, "shipd is shutting down").into_response()
        }
    }
}

async fn logs(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let success = ExportLogsServiceResponse::default().encode_to_vec();
    receive::<ExportLogsServiceRequest>(&state, &headers, &body, convert::logs, success).await
}

async fn metrics(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let success = ExportMetricsServiceResponse::default().encode_to_vec();
    receive::<ExportMetricsServiceRequest>(&state, &headers, &body, convert::metrics, success).await
}

/// Serves OTLP/HTTP on `listener` until `cancel`.
pub async fn serve(
    listener: Listening,
    intake: Arc<Intake>,
    limits: Limits,
    cancel: CancellationToken,
) {
    let source = Arc::clone(&intake.origin().source);
    let state = Arc::new(HttpState { intake, limits });
    let app = Router::new()
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(metrics))
        .layer(DefaultBodyLimit::max(limits.max_message_bytes))
        .with_state(state);
    let shutdown = async move { cancel.cancelled().await };
    let served = match listener {
        Listening::Plain(l) => axum::serve(l, app).with_graceful_shutdown(shutdown).await,
        Listening::Tls(l) => axum::serve(l, app).with_graceful_shutdown(shutdown).await,
    };
    if let Err(e) = served {
        tracing::error!(source = %source, error = %e, "OTLP/HTTP server stopped");
    }
}
