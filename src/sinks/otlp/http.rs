//! OTLP/HTTP protobuf transport: `POST {url}{logs_path}` (or
//! `{metrics_path}`) with `Content-Type: application/x-protobuf` exactly, a
//! compressed body, the sink's custom headers, the stream header when the
//! receiver wants one (OpenObserve's `stream-name`) and Basic auth. Parses
//! partial success (rejected log records or data points) from the answer,
//! of which it reads at most [`ANSWER_PREFIX_BYTES`], and sorts every status
//! into the retry policy's [`SendError`] kinds (see [`classify_status`]). Redirects
//! are not followed: a redirected POST would lose its body.

use super::transport::{Accepted, OtlpRequest, SendError, Signal};
use super::OtlpSinkConfig;
use crate::event::Event;
use crate::response_body::read_prefix;
use crate::sinks::compression::Compression;
use crate::sinks::log_limit::LogLimit;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE,
};
use std::time::Duration;

/// The most of an answer the sink reads: plenty for `partial_success` or an
/// error message. The rest is never read; the connection is closed instead.
pub const ANSWER_PREFIX_BYTES: usize = 64 * 1024;

static TRUNCATED_LOG: LogLimit = LogLimit::new(Duration::from_secs(600));

/// The HTTP client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsConfigError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Header(#[from] super::headers::HeaderError),
}

/// Sends encoded log and metric requests over HTTP.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    logs_url: String,
    metrics_url: String,
    /// Custom headers and Basic auth, sent with every request.
    headers: HeaderMap,
    stream_header: Option<HeaderName>,
    compression: Compression,
}

impl HttpTransport {
    pub fn new(cfg: &OtlpSinkConfig, auth: Option<HeaderValue>) -> Result<Self, HttpClientError> {
        let timeout = cfg.request_timeout;
        let client = crate::tls::http_client_builder(&cfg.url, &cfg.tls)?
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let base = cfg.url.trim_end_matches('/');
        let mut headers = super::headers::http_headers(&cfg.headers)?;
        if let Some(auth) = auth {
            headers.entry(AUTHORIZATION).or_insert(auth);
        }
        let stream_header = cfg
            .stream_header
            .as_deref()
            .map(|name| {
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| super::headers::HeaderError::Name(name.to_owned()))
            })
            .transpose()?;
        Ok(HttpTransport {
            client,
            logs_url: format!("{base}{}", cfg.logs_path),
            metrics_url: format!("{base}{}", cfg.metrics_path),
            headers,
            stream_header,
            compression: cfg.compression,
        })
    }

    /// Encodes the `signal` events of `events` and compresses them once; the
    /// body is reused across retries. Logs are written straight to protobuf
    /// bytes ([`crate::sinks::otlp_wire`]), metrics through prost.
    pub fn prepare(
        &self,
        signal: Signal,
        events: &[Event],
        size_hint: usize,
    ) -> std::io::Result<Bytes> {
        let raw = match signal {
            Signal::Logs => {
                let mut raw = Vec::with_capacity(size_hint);
                crate::sinks::otlp_wire::write_logs_request(events, &mut raw);
                raw
            }
            Signal::Metrics => OtlpRequest::encode(signal, events).encode_to_vec(),
        };
        self.compression.compress(&raw).map(Bytes::from)
    }

    pub async fn send(
        &self,
        signal: Signal,
        body: Bytes,
        stream: &str,
    ) -> Result<Accepted, SendError> {
        let url = match signal {
            Signal::Logs => &self.logs_url,
            Signal::Metrics => &self.metrics_url,
        };
        let mut req = self
            .client
            .post(url)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )
            .headers(self.headers.clone())
            .body(body);
        if let Some(name) = &self.stream_header {
            req = req.header(name.clone(), stream);
        }
        if let Some(enc) = self.compression.content_encoding() {
            req = req.header(CONTENT_ENCODING, enc);
        }
        let resp = req.send().await.map_err(|e| {
            SendError::Retryable(format!("request to {url} failed: {}", describe_failure(&e)))
        })?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let location = location(resp.headers());
        let is_json = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let body = read_prefix(resp, ANSWER_PREFIX_BYTES).await.map_err(|e| {
            SendError::Retryable(format!("reading the answer failed: {}", error_chain(&e)))
        })?;
        if body.truncated {
            if let Some(suppressed) = TRUNCATED_LOG.allow() {
                tracing::warn!(
                    %url, %status, read = ANSWER_PREFIX_BYTES, suppressed,
                    "the answer is longer than the sink reads; the rest was discarded"
                );
            }
        }
        if status.is_success() {
            return Ok(parse_accepted(signal, &body.bytes, is_json));
        }
        let shown = &body.bytes[..body.bytes.len().min(512)];
        let text = String::from_utf8_lossy(shown).into_owned();
        Err(classify_status(
            status.as_u16(),
            text.trim(),
            retry_after,
            location,
        ))
    }
}

/// Sorts a non-2xx answer into the retry policy (README, "Delivery
/// semantics"): 413 splits the batch; 400 and 422 refuse the data for
/// good; 408, 421, 425, 429 and 5xx are retried with backoff (429 and 503
/// after `Retry-After` when given); everything else (401, 403, 404, 3xx,
/// other 4xx) needs a change of configuration and is retried slowly.
pub(crate) fn classify_status(
    status: u16,
    text: &str,
    retry_after: Option<Duration>,
    location: Option<String>,
) -> SendError {
    let reason = format!("HTTP {status}: {text}");
    if let Some(named) = crate::tls::name_answer(text) {
        // A TLS terminator's word on the client certificate: fixable by
        // configuration, so retried slowly like refused credentials.
        return SendError::Configuration(format!("{named} ({reason})"));
    }
    match (status, retry_after) {
        (413, _) => SendError::TooLarge(reason),
        (400 | 422, _) => SendError::Rejected(reason),
        (429 | 503, Some(retry_after)) => SendError::Throttled {
            reason,
            retry_after,
        },
        (408 | 421 | 425 | 429, _) | (500.., _) => SendError::Retryable(reason),
        (300..=399, _) => SendError::Configuration(format!(
            "HTTP {status}: redirected to {}; set `url` to the address the receiver answers on \
             (a redirected POST would lose its body, so redirects are not followed)",
            location.as_deref().unwrap_or("(no Location)")
        )),
        _ => SendError::Configuration(reason),
    }
}

/// `Retry-After` as delay-seconds (an HTTP date is ignored: backoff applies).
/// The `Location` of an answer (redirects are not followed: it is reported).
pub(crate) fn location(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// Reads `partial_success` from a protobuf or JSON answer; an empty or
/// unreadable answer to a 2xx counts as full success.
fn parse_accepted(signal: Signal, body: &[u8], is_json: bool) -> Accepted {
    if body.is_empty() {
        return Accepted::default();
    }
    if is_json {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Accepted::default();
        };
        let partial = v.get("partialSuccess").or_else(|| v.get("partial_success"));
        let (camel, snake) = match signal {
            Signal::Logs => ("rejectedLogRecords", "rejected_log_records"),
            Signal::Metrics => ("rejectedDataPoints", "rejected_data_points"),
        };
        let rejected = partial
            .and_then(|p| p.get(camel).or_else(|| p.get(snake)))
            .and_then(|r| {
                r.as_i64()
                    .or_else(|| r.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(0);
        let message = partial
            .and_then(|p| p.get("errorMessage").or_else(|| p.get("error_message")))
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_owned();
        return Accepted { rejected, message };
    }
    let partial = match signal {
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
    };
    partial
        .map(|(rejected, message)| Accepted { rejected, message })
        .unwrap_or_default()
}

/// Why a connection or request failed: the named TLS cause when the
/// handshake failed, else the error and its causes on one line.
pub fn describe_failure(e: &(dyn std::error::Error + 'static)) -> String {
    crate::tls::name_failure(e).unwrap_or_else(|| error_chain(e))
}

/// The error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;

    #[test]
    fn partial_success_is_read_from_protobuf_and_json() {
        let resp = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "too old".into(),
            }),
        };
        let got = parse_accepted(Signal::Logs, &resp.encode_to_vec(), false);
        assert_eq!(
            got,
            Accepted {
                rejected: 3,
                message: "too old".into()
            }
        );
        let json = br#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"x"}}"#;
        assert_eq!(
            parse_accepted(Signal::Logs, json, true),
            Accepted {
                rejected: 2,
                message: "x".into()
            }
        );
        assert_eq!(
            parse_accepted(Signal::Logs, b"", false),
            Accepted::default()
        );
    }

    #[test]
    fn every_status_has_its_place_in_the_retry_policy() {
        let kind = |status, retry_after, location: Option<&str>| match classify_status(
            status,
            "x",
            retry_after,
            location.map(str::to_owned),
        ) {
            SendError::TooLarge(_) => "split",
            SendError::Rejected(_) => "rejected",
            SendError::Configuration(_) => "configuration",
            SendError::Throttled { .. } => "throttled",
            SendError::Retryable(_) => "retry",
        };
        let secs = Some(Duration::from_secs(3));
        for (status, retry_after, expected) in [
            (413, None, "split"),
            (400, None, "rejected"),
            (422, None, "rejected"),
            (401, None, "configuration"),
            (403, None, "configuration"),
            (404, None, "configuration"),
            (405, None, "configuration"),
            (415, None, "configuration"),
            (408, None, "retry"),
            (429, None, "retry"),
            (429, secs, "throttled"),
            (503, secs, "throttled"),
            (500, None, "retry"),
            (502, secs, "retry"),
        ] {
            assert_eq!(kind(status, retry_after, None), expected, "HTTP {status}");
        }
        let SendError::Configuration(reason) =
            classify_status(301, "", None, Some("https://o2/".into()))
        else {
            panic!("a redirect is configuration")
        };
        assert!(reason.contains("https://o2/"), "{reason}");
    }

    #[test]
    fn paths_follow_the_base_url_and_its_prefix() {
        let mut cfg = OtlpSinkConfig::new("otel", "http://loki:3100/otlp/");
        cfg.metrics_path = "/custom/metrics".into();
        let t = HttpTransport::new(&cfg, None).unwrap();
        assert_eq!(t.logs_url, "http://loki:3100/otlp/v1/logs");
        assert_eq!(t.metrics_url, "http://loki:3100/otlp/custom/metrics");
        assert!(t.stream_header.is_none());
        let o2 = crate::sinks::openobserve::OpenObserveConfig::new("o2", "http://pi-obs:5080");
        let t = HttpTransport::new(&o2.sink_config(), None).unwrap();
        assert_eq!(t.logs_url, "http://pi-obs:5080/api/default/v1/logs");
        assert_eq!(t.metrics_url, "http://pi-obs:5080/api/default/v1/metrics");
        assert_eq!(
            t.stream_header.as_ref().map(|h| h.as_str()),
            Some("stream-name")
        );
    }

    #[test]
    fn metrics_partial_success_counts_rejected_data_points() {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;
        let resp = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 7,
                error_message: "bad label".into(),
            }),
        };
        assert_eq!(
            parse_accepted(Signal::Metrics, &resp.encode_to_vec(), false),
            Accepted {
                rejected: 7,
                message: "bad label".into()
            }
        );
        let json = br#"{"partialSuccess":{"rejectedDataPoints":"4","errorMessage":"y"}}"#;
        assert_eq!(parse_accepted(Signal::Metrics, json, true).rejected, 4);
        let logs_json = br#"{"partialSuccess":{"rejectedLogRecords":"4"}}"#;
        assert_eq!(
            parse_accepted(Signal::Metrics, logs_json, true).rejected,
            0,
            "a log field does not count for metrics"
        );
    }
}
