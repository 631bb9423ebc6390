//! Sinks: where events go. Each sink is one task reading routed batches from
//! its byte-bounded channel, batching per stream, and acknowledging events
//! only once the receiver accepted them. One delivery ([`otlp::OtlpSink`])
//! serves every shipping sink: OTLP to any receiver, OpenObserve (its
//! defaults, [`openobserve`]) and Elasticsearch's `_bulk` API
//! ([`elasticsearch`]); the console only prints.

pub mod batcher;
pub mod compression;
pub mod console;
pub mod elasticsearch;
pub mod log_limit;
pub mod openobserve;
pub mod otlp;
pub mod otlp_encode;
pub mod otlp_encode_metrics;
pub mod otlp_wire;
pub mod resource_groups;
pub mod retry;

use crate::event::EventBatch;
use std::sync::Arc;

/// A batch bound for one stream of one sink.
#[derive(Debug)]
pub struct RoutedBatch {
    pub stream: Arc<str>,
    pub batch: EventBatch,
}
