//! OTLP/gRPC transport (tonic): the LogsService and MetricsService over one
//! channel, metadata `organization`, `stream-name` and `authorization` on
//! every call, gzip or zstd message compression.

use super::transport::{Accepted, OtlpRequest, SendError};
use crate::sinks::compression::Compression;
use crate::tls::TlsOptions;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

/// OpenObserve's gRPC message size limit.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Sends log and metric requests over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcTransport {
    logs: LogsServiceClient<Channel>,
    metrics: MetricsServiceClient<Channel>,
    org: MetadataValue<tonic::metadata::Ascii>,
    auth: Option<MetadataValue<tonic::metadata::Ascii>>,
}

/// An HTTP/2 connector that speaks TLS per `opts` (ALPN h2), for `https://`
/// endpoints; tonic itself is built without TLS so that one rustls
/// configuration serves every connection.
fn tls_connector(
    opts: &TlsOptions,
) -> Result<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    GrpcConfigError,
> {
    let config = opts
        .client_config(&[])
        .map_err(|e| GrpcConfigError(e.to_string()))?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http2()
        .wrap_connector(http))
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
        tls: &TlsOptions,
    ) -> Result<Self, GrpcConfigError> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| GrpcConfigError(format!("url {url}: {e}")))?
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .tcp_nodelay(true);
        let channel = if crate::tls::is_https(url) {
            endpoint.connect_with_connector_lazy(tls_connector(tls)?)
        } else {
            endpoint.connect_lazy()
        };
        let mut logs = LogsServiceClient::new(channel.clone())
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let mut metrics = MetricsServiceClient::new(channel)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let encoding = match compression {
            Compression::Gzip => Some(CompressionEncoding::Gzip),
            Compression::Zstd => Some(CompressionEncoding::Zstd),
            Compression::None => None,
        };
        if let Some(encoding) = encoding {
            logs = logs.send_compressed(encoding).accept_compressed(encoding);
            metrics = metrics
                .send_compressed(encoding)
                .accept_compressed(encoding);
        }
        let ascii = |what: &str, v: &str| {
            v.parse::<MetadataValue<tonic::metadata::Ascii>>()
                .map_err(|_| GrpcConfigError(format!("{what} is not valid ASCII metadata")))
        };
        Ok(GrpcTransport {
            logs,
            metrics,
            org: ascii("organization", org)?,
            auth: auth.map(|a| ascii("authorization", a)).transpose()?,
        })
    }

    /// Why a call failed: the named TLS cause when the handshake failed.
    fn reason(status: &tonic::Status) -> String {
        let cause = crate::tls::name_failure(status).unwrap_or_else(|| status.message().to_owned());
        format!("gRPC {:?}: {cause}", status.code())
    }

    pub async fn send(&self, request: OtlpRequest, stream: &str) -> Result<Accepted, SendError> {
        let mut md = tonic::metadata::MetadataMap::new();
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
        let answer = match request {
            OtlpRequest::Logs(r) => {
                let req = tonic::Request::from_parts(md, Default::default(), r);
                self.logs.clone().export(req).await.map(|resp| {
                    resp.into_inner()
                        .partial_success
                        .map(|p| (p.rejected_log_records, p.error_message))
                })
            }
            OtlpRequest::Metrics(r) => {
                let req = tonic::Request::from_parts(md, Default::default(), r);
                self.metrics.clone().export(req).await.map(|resp| {
                    resp.into_inner()
                        .partial_success
                        .map(|p| (p.rejected_data_points, p.error_message))
                })
            }
        };
        match answer {
            Ok(partial) => Ok(partial
                .map(|(rejected, message)| Accepted { rejected, message })
                .unwrap_or_default()),
            Err(status) => {
                let reason = Self::reason(&status);
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
