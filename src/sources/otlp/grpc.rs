//! OTLP/gRPC: the LogsService and MetricsService of the receiver, gzip and
//! zstd accepted. A refused batch answers RESOURCE_EXHAUSTED (retryable by
//! OTLP clients); shutdown answers UNAVAILABLE. Never answers OK before
//! [`Intake::accept`] did.

use super::tls_listener::Listening;
use super::{convert, Intake, Refusal};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use std::sync::Arc;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

/// Both OTLP services over one [`Intake`].
#[derive(Clone)]
struct Receiver {
    intake: Arc<Intake>,
}

fn status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::Full => Status::resource_exhausted("shipd's pipeline is full; retry later"),
        Refusal::Closed => Status::unavailable("shipd is shutting down"),
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let converted = convert::logs(request.into_inner(), self.intake.origin());
        self.intake.accept(converted).await.map_err(status)?;
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let converted = convert::metrics(request.into_inner(), self.intake.origin());
        self.intake.accept(converted).await.map_err(status)?;
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Serves OTLP/gRPC on `listener` until `cancel`.
pub async fn serve(
    listener: Listening,
    intake: Arc<Intake>,
    max_message_bytes: usize,
    cancel: CancellationToken,
) {
    let receiver = Receiver {
        intake: Arc::clone(&intake),
    };
    let logs = LogsServiceServer::new(receiver.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(max_message_bytes);
    let metrics = MetricsServiceServer::new(receiver)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(max_message_bytes);
    let router = tonic::transport::Server::builder()
        .add_service(logs)
        .add_service(metrics);
    let shutdown = async move { cancel.cancelled().await };
    let served = match listener {
        Listening::Plain(l) => {
            router
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(l),
                    shutdown,
                )
                .await
        }
        Listening::Tls(l) => {
            let incoming = tokio_stream::wrappers::ReceiverStream::new(l.incoming)
                .map(Ok::<_, std::io::Error>);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    if let Err(e) = served {
        tracing::error!(source = %intake.origin().source, error = %e, "OTLP/gRPC server stopped");
    }
}
