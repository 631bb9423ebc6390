//! OTLP/gRPC transport (tonic): the LogsService and MetricsService over one
//! channel, the sink's custom headers as metadata (OpenObserve's
//! `organization`), the stream header (OpenObserve's `stream-name`) and
//! `authorization` on every call, gzip or zstd message compression. An answer larger than
//! [`ANSWER_PREFIX_BYTES`] is refused by its length prefix, never buffered.

use super::http::ANSWER_PREFIX_BYTES;
use super::transport::{Accepted, OtlpRequest, SendError};
use super::OtlpSinkConfig;
use crate::sinks::compression::Compression;
use crate::tls::TlsOptions;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

/// OpenObserve's gRPC message size limit (what the sink sends at most).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Sends log and metric requests over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcTransport {
    logs: LogsServiceClient<Channel>,
    metrics: MetricsServiceClient<Channel>,
    /// Custom headers and `authorization`, sent with every call.
    metadata: tonic::metadata::MetadataMap,
    stream_header: Option<tonic::metadata::AsciiMetadataKey>,
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
    pub fn new(cfg: &OtlpSinkConfig, auth: Option<&str>) -> Result<Self, GrpcConfigError> {
        let (url, compression, timeout, tls) = (
            &cfg.grpc_url,
            cfg.compression,
            cfg.request_timeout,
            &cfg.tls,
        );
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
            .max_decoding_message_size(ANSWER_PREFIX_BYTES);
        let mut metrics = MetricsServiceClient::new(channel)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .max_decoding_message_size(ANSWER_PREFIX_BYTES);
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
        let mut metadata = super::headers::grpc_metadata(&cfg.headers)
            .map_err(|e| GrpcConfigError(e.to_string()))?;
        if let Some(auth) = auth {
            if !metadata.contains_key("authorization") {
                metadata.insert("authorization", ascii("authorization", auth)?);
            }
        }
        let stream_header = cfg
            .stream_header
            .as_deref()
            .map(|name| {
                name.to_ascii_lowercase()
                    .parse()
                    .map_err(|_| GrpcConfigError(format!("{name} is not a valid metadata key")))
            })
            .transpose()?;
        Ok(GrpcTransport {
            logs,
            metrics,
            metadata,
            stream_header,
        })
    }

    /// Why a call failed: the named TLS cause when the handshake failed.
    fn reason(status: &tonic::Status) -> String {
        let cause = crate::tls::name_failure(status).unwrap_or_else(|| status.message().to_owned());
        format!("gRPC {:?}: {cause}", status.code())
    }

    pub async fn send(&self, request: OtlpRequest, stream: &str) -> Result<Accepted, SendError> {
        let mut md = self.metadata.clone();
        if let Some(key) = &self.stream_header {
            md.insert(
                key.clone(),
                stream.parse().map_err(|_| {
                    SendError::Rejected(format!("stream name {stream:?} is not valid metadata"))
                })?,
            );
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
            Err(status) => Err(classify(status.code(), Self::reason(&status))),
        }
    }
}

/// Sorts a failed call into the retry policy, as the HTTP transport sorts
/// statuses: a message too large (tonic says OUT_OF_RANGE, grpc-go
/// RESOURCE_EXHAUSTED) splits the batch like a 413; INVALID_ARGUMENT and
/// FAILED_PRECONDITION refuse the data for good; UNAUTHENTICATED,
/// PERMISSION_DENIED, NOT_FOUND and UNIMPLEMENTED (a wrong endpoint) need a
/// change of configuration; everything else is retried with backoff.
fn classify(code: Code, reason: String) -> SendError {
    match code {
        Code::OutOfRange | Code::ResourceExhausted if names_too_large(&reason) => {
            SendError::TooLarge(reason)
        }
        Code::Unauthenticated | Code::PermissionDenied | Code::NotFound | Code::Unimplemented => {
            SendError::Configuration(reason)
        }
        Code::InvalidArgument | Code::FailedPrecondition => SendError::Rejected(reason),
        _ => SendError::Retryable(reason),
    }
}

/// Whether a status message says the message exceeded a size limit (tonic:
/// "message length too large"; grpc-go: "larger than max"; others:
/// "message too large").
fn names_too_large(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "too large",
        "larger than max",
        "exceeds maximum",
        "message size",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_too_large_splits_and_a_throttle_retries() {
        let too_large = [
            (Code::OutOfRange, "Error, decoded message length too large: found 17000000 bytes, the limit is: 16777216 bytes"),
            (Code::OutOfRange, "Error, encoded message length too large: found 17000000 bytes, the limit is: 16777216 bytes"),
            (Code::ResourceExhausted, "grpc: received message larger than max (17000000 vs. 16777216)"),
        ];
        for (code, message) in too_large {
            assert!(
                matches!(classify(code, message.into()), SendError::TooLarge(_)),
                "{code:?} {message}"
            );
        }
        assert!(matches!(
            classify(Code::ResourceExhausted, "memtable full".into()),
            SendError::Retryable(_)
        ));
        assert!(matches!(
            classify(Code::OutOfRange, "seek past end".into()),
            SendError::Retryable(_)
        ));
        assert!(matches!(
            classify(Code::Unimplemented, "unknown service".into()),
            SendError::Configuration(_)
        ));
        assert!(matches!(
            classify(Code::InvalidArgument, "bad record".into()),
            SendError::Rejected(_)
        ));
    }
}
