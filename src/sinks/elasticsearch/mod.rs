//! The Elasticsearch sink: the shipping sink's delivery (batching, retries,
//! spill, acknowledgements: [`crate::sinks::otlp::OtlpSink`]) speaking the
//! `_bulk` NDJSON API of Elasticsearch, OpenSearch and OpenObserve
//! (`/api/{org}/_bulk`) instead of OTLP. What it adds: the documents
//! ([`encode`]), the request ([`transport`]), the per-item answer
//! ([`answer`]) and the per-item retry of one request's items
//! ([`deliver`]).

pub mod answer;
mod deliver;
pub mod encode;
mod transport;

pub use transport::BulkTransport;

use crate::sinks::openobserve::ingest_window::TooOld;
use crate::sinks::otlp::OtlpSinkConfig;

/// Configuration of one Elasticsearch sink: the shipping settings
/// (`url` is the base the `_bulk` path is appended to) and the index.
#[derive(Debug, Clone)]
pub struct ElasticsearchConfig {
    /// The index (or data stream) of every document; `None`: the route's
    /// stream name.
    pub index: Option<String>,
    pub sink: OtlpSinkConfig,
}

impl ElasticsearchConfig {
    /// Elasticsearch at `url`: gzip, no ingest window, index per stream.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        let mut sink = OtlpSinkConfig::new(name, url);
        sink.peer = "Elasticsearch";
        sink.too_old = TooOld::Keep;
        ElasticsearchConfig { index: None, sink }
    }
}

impl std::ops::Deref for ElasticsearchConfig {
    type Target = OtlpSinkConfig;
    fn deref(&self) -> &OtlpSinkConfig {
        &self.sink
    }
}

impl std::ops::DerefMut for ElasticsearchConfig {
    fn deref_mut(&mut self) -> &mut OtlpSinkConfig {
        &mut self.sink
    }
}
