//! What a transport reports back: accepted (maybe partially) or one of the
//! failure kinds that decide the retry policy.

use std::time::Duration;

/// The receiver accepted the request.
#[derive(Debug, Default, PartialEq)]
pub struct Accepted {
    /// Records the receiver refused inside an accepted request (partial success).
    pub rejected: i64,
    pub message: String,
}

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying soon: connection errors, timeouts, 429, 5xx, UNAVAILABLE.
    #[error("{0}")]
    Retryable(String),
    /// A 429 or 503 naming when to come back (`Retry-After` in seconds).
    #[error("{reason}")]
    Throttled {
        reason: String,
        retry_after: Duration,
    },
    /// Refused for a reason only configuration fixes (credentials,
    /// organisation, a wrong URL or port, a redirect): retried slowly,
    /// logged loudly, since a reload may fix it and the data is still good.
    #[error("{0}")]
    Configuration(String),
    /// The request is larger than the receiver (or a proxy before it)
    /// takes: 413, or gRPC's "message too large". The batch is split.
    #[error("{0}")]
    TooLarge(String),
    /// The receiver refused this data for good (400, 422, INVALID_ARGUMENT).
    #[error("{0}")]
    Rejected(String),
}

/// The OTLP signal a request carries; it picks the endpoint and how partial
/// success is counted (log records or data points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Logs,
    Metrics,
}

impl Signal {
    /// The signal of an event.
    pub fn of(event: &crate::event::Event) -> Signal {
        match event {
            crate::event::Event::Log(_) => Signal::Logs,
            crate::event::Event::Metric(_) => Signal::Metrics,
        }
    }

    /// The OTLP/HTTP path segment: `logs` or `metrics`.
    pub fn path(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }
}

/// One encoded OTLP export request of either signal.
#[derive(Debug, Clone)]
pub enum OtlpRequest {
    Logs(opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest),
    Metrics(opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest),
}

impl OtlpRequest {
    /// Encodes the `signal` events of `events` (others are skipped).
    pub fn encode<'a>(
        signal: Signal,
        events: impl IntoIterator<Item = &'a crate::event::Event>,
    ) -> OtlpRequest {
        match signal {
            Signal::Logs => OtlpRequest::Logs(crate::sinks::otlp_encode::encode_logs(events)),
            Signal::Metrics => {
                OtlpRequest::Metrics(crate::sinks::otlp_encode_metrics::encode_metrics(events))
            }
        }
    }

    pub fn signal(&self) -> Signal {
        match self {
            OtlpRequest::Logs(_) => Signal::Logs,
            OtlpRequest::Metrics(_) => Signal::Metrics,
        }
    }

    /// The protobuf encoding.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        use prost::Message;
        match self {
            OtlpRequest::Logs(r) => r.encode_to_vec(),
            OtlpRequest::Metrics(r) => r.encode_to_vec(),
        }
    }
}
