//! The event model: what flows from sources through the pipeline to sinks.
//!
//! An [`Event`] is either a [`LogRecord`] or a [`MetricPoint`]. Events travel in
//! [`EventBatch`]es, never one by one. Raw lines stay [`bytes::Bytes`] (as
//! [`Value::Bytes`]) until something parses them. Events from replayable
//! sources carry an [`AckToken`] and a [`Position`]; this module never does I/O.

mod map;
pub mod time;
mod value;

pub use map::{KeyOrder, Map};
pub use value::{Str, Value};

use crate::pipeline::acks::AckToken;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Ordered key/value pairs (attributes, labels). Small, so lookups are linear.
pub type Attributes = Vec<(Str, Value)>;

/// What produced an event, shared by every event of that origin
/// (OTLP resource attributes such as `host.name`, `service.name`, `shipd.source`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    pub attributes: Attributes,
}

impl Resource {
    /// Rough in-memory size of one shared resource (its `Arc` block and
    /// attributes); events that share it do not count it, so whoever makes
    /// resources counts them once.
    pub fn size_hint(&self) -> usize {
        // The Arc's two counters, the resource, and the allocator's bookkeeping.
        16 + std::mem::size_of::<Resource>()
            + 16
            + self
                .attributes
                .iter()
                .map(|(k, v)| value::entry_size_hint(k, v))
                .sum::<usize>()
    }
}

/// Where an event sits in its replayable source: an origin (a hash of the
/// source name and the file or journal identity) and a byte offset. Stable
/// across restarts, so a re-sent record gets the same `log.record.uid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub origin: u64,
    pub offset: u64,
}

impl Position {
    /// The deterministic record id exported as `log.record.uid`.
    pub fn uid(&self) -> String {
        self.uid_hex().iter().map(|&b| char::from(b)).collect()
    }

    /// The same id as [`Position::uid`], as 32 lowercase hex digits on the
    /// stack (the sink writes it without allocating).
    pub fn uid_hex(&self) -> [u8; 32] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&self.origin.to_le_bytes());
        key[8..].copy_from_slice(&self.offset.to_le_bytes());
        let id = xxhash_rust::xxh3::xxh3_128(&key).to_be_bytes();
        let mut hex = [0u8; 32];
        for (i, byte) in id.iter().enumerate() {
            hex[2 * i] = HEX[usize::from(byte >> 4)];
            hex[2 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
        hex
    }
}

/// One log record, shaped after the OTLP data model.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Event time in ns since the epoch; 0 when unknown.
    pub time_unix_nano: u64,
    /// When shipd read the event, in ns since the epoch.
    pub observed_unix_nano: u64,
    /// OTLP severity number (0 unspecified, 1..=24).
    pub severity_number: u8,
    pub severity_text: Option<String>,
    pub body: Value,
    pub attributes: Attributes,
    pub resource: Arc<Resource>,
    pub position: Option<Position>,
    pub ack: Option<AckToken>,
}

impl LogRecord {
    /// A record with `body`, observed now, belonging to `resource`.
    pub fn new(body: Value, resource: Arc<Resource>) -> Self {
        let now = unix_nanos(SystemTime::now());
        LogRecord {
            time_unix_nano: now,
            observed_unix_nano: now,
            severity_number: 0,
            severity_text: None,
            body,
            attributes: Vec::new(),
            resource,
            position: None,
            ack: None,
        }
    }

    /// Rough in-memory size, used to bound channels and batches by bytes.
    pub fn size_hint(&self) -> usize {
        std::mem::size_of::<Event>()
            + self.body.size_hint()
            + self
                .attributes
                .iter()
                .map(|(k, v)| value::entry_size_hint(k, v))
                .sum::<usize>()
            + self.severity_text.as_ref().map_or(0, |t| t.len() + 16)
    }
}

/// How a metric point aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Gauge,
    /// A cumulative sum; `monotonic` for counters.
    Sum {
        monotonic: bool,
    },
    /// A cumulative histogram: [`MetricPoint::distribution`] holds the buckets,
    /// `value` the sum of observations.
    Histogram,
    /// A summary: [`MetricPoint::distribution`] holds the quantiles, `value`
    /// the sum of observations.
    Summary,
}

impl MetricKind {
    /// The kind's name in JSON output (`shipctl tail`, the elasticsearch sink).
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Sum { monotonic: true } => "counter",
            MetricKind::Sum { monotonic: false } => "sum",
            MetricKind::Histogram => "histogram",
            MetricKind::Summary => "summary",
        }
    }
}

/// The shape of a histogram or summary point.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// Explicit buckets: `bucket_counts[i]` observations fell in
    /// `(bounds[i-1], bounds[i]]`; the last count is above the last bound,
    /// so there is one more count than bounds (the OTLP layout).
    Histogram {
        count: u64,
        sum: f64,
        bounds: Vec<f64>,
        bucket_counts: Vec<u64>,
    },
    /// `(quantile, value)` pairs, quantile in `0..=1`.
    Summary {
        count: u64,
        sum: f64,
        quantiles: Vec<(f64, f64)>,
    },
}

/// One metric data point.
#[derive(Debug, Clone)]
pub struct MetricPoint {
    pub name: String,
    pub unit: String,
    pub kind: MetricKind,
    pub labels: Attributes,
    pub value: f64,
    pub time_unix_nano: u64,
    pub resource: Arc<Resource>,
    /// When the cumulative series started (sums, histograms, summaries);
    /// 0 when unknown. A counter reset starts a new series.
    pub start_time_unix_nano: u64,
    /// Buckets or quantiles of [`MetricKind::Histogram`] and [`MetricKind::Summary`] points.
    pub distribution: Option<Box<Distribution>>,
    /// Set only on points replayed from a spill buffer, whose segment is
    /// deleted once every point in it is acknowledged.
    pub ack: Option<AckToken>,
}

impl MetricPoint {
    /// A point of `kind` without start time or distribution.
    pub fn new(
        name: impl Into<String>,
        unit: impl Into<String>,
        kind: MetricKind,
        value: f64,
        time_unix_nano: u64,
        resource: Arc<Resource>,
    ) -> Self {
        MetricPoint {
            name: name.into(),
            unit: unit.into(),
            kind,
            labels: Vec::new(),
            value,
            time_unix_nano,
            resource,
            start_time_unix_nano: 0,
            distribution: None,
            ack: None,
        }
    }

    /// The value of label `key`, when it is text.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_str())
    }

    /// Rough in-memory size, used to bound channels and batches by bytes.
    pub fn size_hint(&self) -> usize {
        let labels: usize = self
            .labels
            .iter()
            .map(|(k, v)| value::entry_size_hint(k, v))
            .sum();
        let dist = match self.distribution.as_deref() {
            Some(Distribution::Histogram { bounds, .. }) => 16 * bounds.len() + 16,
            Some(Distribution::Summary { quantiles, .. }) => 16 * quantiles.len(),
            None => 0,
        };
        std::mem::size_of::<Event>() + self.name.len() + self.unit.len() + labels + dist
    }
}

/// A log record or a metric point.
#[derive(Debug, Clone)]
pub enum Event {
    Log(LogRecord),
    Metric(MetricPoint),
}

impl Event {
    pub fn size_hint(&self) -> usize {
        match self {
            Event::Log(log) => log.size_hint(),
            Event::Metric(m) => m.size_hint(),
        }
    }

    pub fn ack_token(&self) -> Option<&AckToken> {
        match self {
            Event::Log(log) => log.ack.as_ref(),
            Event::Metric(m) => m.ack.as_ref(),
        }
    }

    /// Makes `token` the one whose batch this event belongs to.
    pub fn set_ack(&mut self, token: AckToken) {
        match self {
            Event::Log(log) => log.ack = Some(token),
            Event::Metric(m) => m.ack = Some(token),
        }
    }
}

/// The unit that moves through channels: events of one source plus their
/// approximate byte size.
#[derive(Debug, Default)]
pub struct EventBatch {
    pub events: Vec<Event>,
    pub bytes: usize,
    /// Name of the source every event of the batch came from.
    pub source: Arc<str>,
}

impl EventBatch {
    pub fn with_capacity(n: usize) -> Self {
        EventBatch {
            events: Vec::with_capacity(n),
            bytes: 0,
            source: Arc::from(""),
        }
    }

    /// An empty batch of events from `source`.
    pub fn from_source(source: &Arc<str>, n: usize) -> Self {
        EventBatch {
            events: Vec::with_capacity(n),
            bytes: 0,
            source: Arc::clone(source),
        }
    }

    pub fn push(&mut self, event: Event) {
        self.bytes += event.size_hint();
        self.events.push(event);
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Nanoseconds since the Unix epoch (0 for times before it).
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// RFC 3339 text (UTC, nanoseconds) of a time in ns since the epoch.
pub fn format_rfc3339(ns: i64) -> String {
    time::rfc3339(ns).iter().map(|&b| char::from(b)).collect()
}
