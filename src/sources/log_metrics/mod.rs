//! The `log_metrics` source: metrics that steps derive from events.
//!
//! Steps record into the source's [`MetricStore`] with `count`, `observe`
//! and `set_gauge` (compiled by [`crate::lang::emit`]); every `interval`
//! [`LogMetricsSource`] takes every series as a cumulative point and sends
//! them into the pipeline like host metrics: through the RAM-journaled
//! way in, then the routes and sinks. This module owns the flushing task,
//! never the recording.

mod aggregate;

pub use aggregate::{
    DeclareError, Instrument, KeysId, MetricId, MetricStore, Recorded, Update, DEFAULT_BUCKETS,
};

use crate::event::{unix_nanos, Event, EventBatch, Resource, Value};
use crate::sources::file::SourceContext;
use crate::telemetry;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Configuration of one `log_metrics` source.
#[derive(Debug, Clone)]
pub struct LogMetricsConfig {
    pub name: String,
    pub interval: Duration,
    /// The series the steps record into (shared with them).
    pub store: Arc<MetricStore>,
}

impl LogMetricsConfig {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
    pub const DEFAULT_MAX_SERIES: usize = 1000;

    /// A source named `name` whose points carry the node's `host_name`.
    pub fn new(name: &str, host_name: &str, max_series: usize) -> Self {
        let resource = Arc::new(Resource {
            attributes: vec![
                ("host.name".into(), Value::from(host_name)),
                ("service.name".into(), Value::from(name)),
                ("shipd.source".into(), Value::from(name)),
            ],
        });
        LogMetricsConfig {
            name: name.to_owned(),
            interval: Self::DEFAULT_INTERVAL,
            store: Arc::new(MetricStore::new(name, max_series, resource)),
        }
    }
}

/// The running source: ships every series each interval, and once more
/// when stopped.
pub struct LogMetricsSource {
    cfg: LogMetricsConfig,
    ctx: SourceContext,
}

impl LogMetricsSource {
    pub fn new(cfg: LogMetricsConfig, ctx: SourceContext) -> Self {
        LogMetricsSource { cfg, ctx }
    }

    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let events = telemetry::counter("shipd_events_in_total", &[("component", &self.cfg.name)]);
        // Routes test `source == NAME`: every batch names its source.
        let source: Arc<str> = Arc::from(self.cfg.name.as_str());
        let mut ticks = tokio::time::interval_at(
            tokio::time::Instant::now() + self.cfg.interval,
            self.cfg.interval,
        );
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(source = %self.cfg.name, interval = ?self.cfg.interval, "shipping metrics of the steps");
        loop {
            let stopping = tokio::select! {
                _ = self.ctx.cancel.cancelled() => true,
                _ = ticks.tick() => false,
            };
            let points = self.cfg.store.points(unix_nanos(SystemTime::now()));
            if !points.is_empty() {
                events.add(points.len() as u64);
                let mut batch = EventBatch::from_source(&source, points.len());
                for point in points {
                    batch.push(Event::Metric(point));
                }
                if self.ctx.unreplayable.send(batch).await.is_err() {
                    return;
                }
            }
            if stopping {
                return;
            }
        }
    }
}
