//! The OpenObserve sink: the OTLP sink ([`crate::sinks::otlp`]) with
//! OpenObserve's defaults. Its organisation picks the paths
//! (`/api/{org}/v1/logs`, `/api/{org}/v1/metrics`) and the gRPC metadata
//! `organization`; every request names its stream in `stream-name`; log
//! records outside its ingest window are handled by `too_old`
//! ([`ingest_window`]); gRPC defaults to port 5081 of the HTTP host. Owns
//! no delivery code of its own.

pub mod base_url;
pub mod ingest_window;

// Where `shipctl query` and the scrape source have always found them.
pub use crate::sinks::otlp::{describe_failure, error_chain, ANSWER_PREFIX_BYTES};
pub use ingest_window::TooOld;

use crate::sinks::otlp::{OtlpSinkConfig, TransportKind};

/// The header OpenObserve reads a request's stream from.
pub const STREAM_HEADER: &str = "stream-name";

/// Configuration of one OpenObserve sink (and of `shipctl query`): the OTLP
/// sink's settings plus the organisation. Derefs to those settings.
#[derive(Debug, Clone)]
pub struct OpenObserveConfig {
    pub org: String,
    pub sink: OtlpSinkConfig,
}

impl OpenObserveConfig {
    /// OpenObserve at `url` (HTTP base), organisation `default`, gRPC on
    /// port 5081 of the same host, logs outside the ingest window dropped.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        let url = url.into();
        let mut sink = OtlpSinkConfig::new(name, url);
        sink.grpc_url = default_grpc_url(&sink.url);
        sink.stream_header = Some(STREAM_HEADER.into());
        sink.peer = "OpenObserve";
        sink.too_old = TooOld::default();
        OpenObserveConfig {
            org: "default".into(),
            sink,
        }
    }

    /// The OTLP sink that delivers to this OpenObserve: the organisation's
    /// paths, and its name as gRPC metadata `organization` (HTTP requests
    /// carry the organisation in the path alone).
    pub fn sink_config(&self) -> OtlpSinkConfig {
        let mut sink = self.sink.clone();
        let org = &self.org;
        sink.logs_path = format!("/api/{org}/v1/logs");
        sink.metrics_path = format!("/api/{org}/v1/metrics");
        if sink.transport == TransportKind::Grpc {
            sink.headers.push(("organization".into(), org.clone()));
        }
        sink
    }
}

impl std::ops::Deref for OpenObserveConfig {
    type Target = OtlpSinkConfig;
    fn deref(&self) -> &OtlpSinkConfig {
        &self.sink
    }
}

impl std::ops::DerefMut for OpenObserveConfig {
    fn deref_mut(&mut self) -> &mut OtlpSinkConfig {
        &mut self.sink
    }
}

/// Same scheme and host as the HTTP URL, port 5081.
pub fn default_grpc_url(http_url: &str) -> String {
    crate::sinks::otlp::grpc_url_on_port(http_url, 5081)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_url_defaults_to_port_5081_of_the_http_host() {
        assert_eq!(default_grpc_url("http://pi-obs:5080"), "http://pi-obs:5081");
        assert_eq!(
            default_grpc_url("https://o2.example/"),
            "https://o2.example:5081"
        );
    }

    #[test]
    fn the_organisation_picks_the_paths_and_the_grpc_metadata() {
        let mut cfg = OpenObserveConfig::new("o2", "http://pi-obs:5080");
        cfg.org = "pis".into();
        let http = cfg.sink_config();
        assert_eq!(http.logs_path, "/api/pis/v1/logs");
        assert_eq!(http.metrics_path, "/api/pis/v1/metrics");
        assert_eq!(http.stream_header.as_deref(), Some("stream-name"));
        assert!(http.headers.is_empty());
        cfg.transport = TransportKind::Grpc;
        assert_eq!(
            cfg.sink_config().headers,
            vec![("organization".to_owned(), "pis".to_owned())]
        );
    }
}
