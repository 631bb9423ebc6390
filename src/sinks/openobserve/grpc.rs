//! OTLP/gRPC transport (tonic): metadata `organization`, `stream-name` and
//! `authorization` on every call, gzip or zstd message compression.

use super::transport::{Accepted, SendError};
use crate::sinks::compression::Compression;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

/// OpenObserve's gRPC message size limit.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Sends log requests over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcTransport {
    client: LogsServiceClient<Channel>,
    org: MetadataValue<tonic::metadata::Ascii>,
    auth: Option<MetadataValue<tonic::metadata::Ascii>>,
}

/// The gRPC endpoint or a metadata value is malformed.
#[derive(Debug, thiserror::Error)]
#[error("invalid gRPC setting: {0}")]
pub struct GrpcConfigError(String);

impl GrpcTransport {
    pub fn new(
        url: &str,
        org: &str,
        auth: Option<&str>,
        compression: Compression,
        timeout: Duration,
    ) -> Result<Self, GrpcConfigError> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| GrpcConfigError(format!("url {url}: {e}")))?
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .tcp_nodelay(true);
        let mut client = LogsServiceClient::new(endpoint.connect_lazy())
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let encoding = match compression {
            Compression::Gzip => Some(CompressionEncoding::Gzip),
            Compression::Zstd => Some(CompressionEncoding::Zstd),
            Compression::None => None,
        };
        if let Some(encoding) = encoding {
            client = client.send_compressed(encoding).accept_compressed(encoding);
        }
        let ascii = |what: &str, v: &str| {
            v.parse::<MetadataValue<tonic::metadata::Ascii>>()
                .map_err(|_| GrpcConfigError(format!("{what} is not valid ASCII metadata")))
        };
        Ok(GrpcTransport {
            client,
            org: ascii("organization", org)?,
            auth: auth.map(|a| ascii("authorization", a)).transpose()?,
        })
    }

    pub async fn send(
        &self,
        request: ExportLogsServiceRequest,
        stream: &str,
    ) -> Result<Accepted, SendError> {
        let mut req = tonic::Request::new(request);
        let md = req.metadata_mut();
        md.insert("organization", self.org.clone());
        md.insert(
            "stream-name",
            stream.parse().map_err(|_| {
                SendError::Rejected(format!("stream name {stream:?} is not valid metadata"))
            })?,
        );
        if let Some(auth) = &self.auth {
            md.insert("authorization", auth.clone());
        }
        let mut client = self.client.clone();
        match client.export(req).await {
            Ok(resp) => Ok(resp
                .into_inner()
                .partial_success
                .map(|p| Accepted {
                    rejected: p.rejected_log_records,
                    message: p.error_message,
                })
                .unwrap_or_default()),
            Err(status) => {
                let reason = format!("gRPC {:?}: {}", status.code(), status.message());
                Err(match status.code() {
                    Code::Unauthenticated | Code::PermissionDenied | Code::NotFound => {
                        SendError::Auth(reason)
                    }
                    Code::InvalidArgument
                    | Code::FailedPrecondition
                    | Code::OutOfRange
                    | Code::Unimplemented => SendError::Rejected(reason),
                    _ => SendError::Retryable(reason),
                })
            }
        }
    }
}
