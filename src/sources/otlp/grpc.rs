//! OTLP/gRPC: the `Export` methods of LogsService and MetricsService,
//! served by tonic's HTTP/2 server. The one message of a unary call is
//! read from the request body here, not by a generated decoder: its
//! 5-byte prefix announces its length, so the [`Intake`] holds that much
//! memory (or refuses) before reading it, and the message is converted
//! record by record rather than decoded whole. gzip and zstd messages are
//! accepted. A request over the receiver's limits answers
//! RESOURCE_EXHAUSTED; a busy receiver or a full pipeline answers
//! RESOURCE_EXHAUSTED with a RetryInfo delay (OTLP clients retry it);
//! shutdown answers UNAVAILABLE. Never answers OK before the batch is in
//! the pipeline.

use super::body::{BodyReader, Encoding};
use super::listener::Listening;
use super::{rpc, Intake, Refusal, Signal, RECEIVE_TIMEOUT};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::codec::{Codec, EncodeBody, SingleMessageCompressionOverride};
use tonic::server::NamedService;
use tonic::{Code, Status};

/// One of the two services.
trait Endpoint: Send + Sync + 'static {
    const NAME: &'static str;
    const SIGNAL: Signal;
    type Response: prost::Message + Default + Send + 'static;
}

struct LogsEndpoint;
struct MetricsEndpoint;

impl Endpoint for LogsEndpoint {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const SIGNAL: Signal = Signal::Logs;
    type Response = ExportLogsServiceResponse;
}

impl Endpoint for MetricsEndpoint {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const SIGNAL: Signal = Signal::Metrics;
    type Response = ExportMetricsServiceResponse;
}

/// The `Export` method of endpoint `E`, as a tower service for tonic's router.
struct Export<E> {
    intake: Arc<Intake>,
    retry_after: Duration,
    endpoint: PhantomData<E>,
}

impl<E> Clone for Export<E> {
    fn clone(&self) -> Self {
        Export {
            intake: Arc::clone(&self.intake),
            retry_after: self.retry_after,
            endpoint: PhantomData,
        }
    }
}

impl<E: Endpoint> NamedService for Export<E> {
    const NAME: &'static str = E::NAME;
}

impl<E: Endpoint> tower::Service<axum::http::Request<tonic::body::Body>> for Export<E> {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<tonic::body::Body>) -> Self::Future {
        let export = self.clone();
        Box::pin(async move { Ok(export.answer(request).await) })
    }
}

impl<E: Endpoint> Export<E> {
    async fn answer(&self, request: axum::http::Request<tonic::body::Body>) -> Response {
        if !request.uri().path().ends_with("/Export") {
            let status = Status::unimplemented(format!("{} has only Export", E::NAME));
            return status.into_http::<axum::body::Body>();
        }
        let outcome = self.take(request).await;
        self.intake.answered("grpc", &outcome);
        match outcome {
            Ok(()) => success::<E::Response>(),
            Err(refusal) => status(&refusal, self.retry_after).into_http::<axum::body::Body>(),
        }
    }

    async fn take(&self, request: axum::http::Request<tonic::body::Body>) -> Result<(), Refusal> {
        let headers = request.headers();
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/grpc") {
            return Err(Refusal::Unsupported(format!(
                "content type `{content_type}` is not gRPC"
            )));
        }
        let encoding =
            Encoding::from_header(headers.get("grpc-encoding").and_then(|v| v.to_str().ok()))?;
        let intake = &self.intake;
        let mut admitted = intake.admit().await?;
        let mut body = BodyReader::new(axum::body::Body::new(request.into_body()));
        // The length-prefixed message: compressed flag, length (big-endian).
        let mut prefix = Vec::with_capacity(5);
        match tokio::time::timeout(RECEIVE_TIMEOUT, body.read_exact(5, &mut prefix)).await {
            Err(_) => return Err(Refusal::Timeout),
            Ok(read) => {
                if !read? {
                    return Err(Refusal::Malformed("the call carries no message".into()));
                }
            }
        }
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        let encoding = match (prefix[0], encoding) {
            (0, _) => Encoding::Identity,
            (1, Encoding::Identity) => {
                return Err(Refusal::Malformed(
                    "a compressed message without grpc-encoding".into(),
                ))
            }
            (1, encoding) => encoding,
            (flag, _) => {
                return Err(Refusal::Malformed(format!(
                    "invalid compressed flag {flag}"
                )))
            }
        };
        let wire = intake.receive(&mut admitted, &mut body, Some(len)).await?;
        match tokio::time::timeout(RECEIVE_TIMEOUT, body.next_chunk()).await {
            Err(_) => return Err(Refusal::Timeout),
            Ok(rest) => {
                if rest?.is_some() {
                    return Err(Refusal::Malformed(
                        "a unary call carries exactly one message".into(),
                    ));
                }
            }
        }
        intake.take(admitted, E::SIGNAL, encoding, wire).await
    }
}

/// The gRPC status of a refusal.
fn status(refusal: &Refusal, retry_after: Duration) -> Status {
    let (code, retry) = match refusal {
        Refusal::Full | Refusal::Busy => (Code::ResourceExhausted, Some(retry_after)),
        Refusal::TooLarge(_) => (Code::ResourceExhausted, None),
        Refusal::Malformed(_) => (Code::InvalidArgument, None),
        Refusal::Unsupported(_) => (Code::Unimplemented, None),
        Refusal::Timeout => (Code::DeadlineExceeded, None),
        Refusal::Closed => (Code::Unavailable, None),
    };
    let message = refusal.message();
    let details = rpc::status(code as i32, message.clone(), retry);
    Status::with_details(code, message, details.into())
}

/// A successful answer: the empty export response, then status OK.
fn success<M: prost::Message + Default + Send + 'static>() -> Response {
    let mut codec = tonic_prost::ProstCodec::<M, ()>::default();
    let body = EncodeBody::new_server(
        codec.encoder(),
        tokio_stream::once(Ok(M::default())),
        None,
        SingleMessageCompressionOverride::default(),
        None,
    );
    (
        [(axum::http::header::CONTENT_TYPE, "application/grpc")],
        axum::body::Body::new(body),
    )
        .into_response()
}

/// Serves OTLP/gRPC on `listener` until `cancel`.
pub async fn serve(
    listener: Listening,
    intake: Arc<Intake>,
    retry_after: Duration,
    cancel: CancellationToken,
) {
    let source = Arc::clone(&intake.origin().source);
    let logs = Export::<LogsEndpoint> {
        intake: Arc::clone(&intake),
        retry_after,
        endpoint: PhantomData,
    };
    let metrics = Export::<MetricsEndpoint> {
        intake,
        retry_after,
        endpoint: PhantomData,
    };
    let router = tonic::transport::Server::builder()
        .add_service(logs)
        .add_service(metrics);
    let shutdown = async move { cancel.cancelled().await };
    let incoming = listener.into_stream().map(Ok::<_, std::io::Error>);
    let served = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    if let Err(e) = served {
        tracing::error!(source = %source, error = %e, "OTLP/gRPC server stopped");
    }
}
