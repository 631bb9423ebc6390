//! The status of the running agent, for `shipctl status`: one row per
//! component of the current pipeline built from the internal counters
//! ([`crate::telemetry`]), component health ([`super::health`]), the byte
//! queues in front of the stage and each sink, and checkpoint lag. It only
//! reads; it must never change the agent.

use super::health;
use super::proto;
use crate::pipeline::channel::QueueMeter;
use crate::pipeline::checkpoint::Checkpointer;
use crate::telemetry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// The components of the pipeline that runs now.
#[derive(Debug, Default, Clone)]
pub struct Layout {
    pub sources: Vec<String>,
    pub steps: Vec<String>,
    pub sinks: Vec<String>,
    /// Byte queues by component: `pipeline` (the stage's input) and each sink.
    pub queues: Vec<(String, QueueMeter)>,
}

impl Layout {
    /// Every component name with its kind, in pipeline order: sources,
    /// steps, the pipeline's totals, the router, sinks.
    pub fn components(&self) -> Vec<(String, &'static str)> {
        let kinds = [
            (&self.sources, "source"),
            (&self.steps, "step"),
            (&self.sinks, "sink"),
        ];
        let mut all: Vec<(String, &'static str)> = Vec::new();
        for (names, kind) in kinds {
            all.extend(names.iter().map(|n| (n.clone(), kind)));
            if kind == "step" {
                all.push(("pipeline".into(), "pipeline"));
                all.push(("router".into(), "router"));
            }
        }
        all
    }
}

/// What the control API reads about the running agent.
#[derive(Debug)]
pub struct AgentView {
    started: Instant,
    checkpointer: Arc<Checkpointer>,
    layout: RwLock<Layout>,
    pipeline: String,
    reloads: AtomicU64,
}

impl AgentView {
    pub fn new(checkpointer: Arc<Checkpointer>, pipeline: String) -> Self {
        AgentView {
            started: Instant::now(),
            checkpointer,
            layout: RwLock::default(),
            pipeline,
            reloads: AtomicU64::new(0),
        }
    }

    /// The pipeline file running (empty for the embedded default).
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// Installs the layout of a newly started pipeline.
    pub fn set_layout(&self, layout: Layout) {
        *self.layout.write().unwrap_or_else(|p| p.into_inner()) = layout;
    }

    pub fn layout(&self) -> Layout {
        self.layout
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn reloaded(&self) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// Everything `shipctl status` shows.
    pub fn status(&self) -> proto::StatusReply {
        let layout = self.layout();
        let metrics = telemetry::snapshot();
        let health = health::all();
        let checkpoints: Vec<proto::Checkpoint> = self
            .checkpointer
            .entries_with_prefix("")
            .into_iter()
            .map(|(key, entry)| {
                let lag_bytes = std::fs::metadata(&entry.path)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len().saturating_sub(entry.offset))
                    .unwrap_or(0);
                proto::Checkpoint {
                    key,
                    path: entry.path,
                    offset: entry.offset,
                    lag_bytes,
                }
            })
            .collect();
        let components = layout
            .components()
            .into_iter()
            .map(|(name, kind)| {
                let mut row = component_row(&name, kind, &metrics);
                row.queue_bytes += layout
                    .queues
                    .iter()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, m)| m.queued_bytes() as u64)
                    .sum::<u64>();
                if let Some(h) = health.get(&name) {
                    row.failing = h.failing;
                    row.last_error = h.last_error.clone().unwrap_or_default();
                    row.warnings = h.warnings.clone();
                }
                let prefix = format!("{name}|");
                row.checkpoint_lag_bytes = checkpoints
                    .iter()
                    .filter(|c| c.key.starts_with(&prefix))
                    .map(|c| c.lag_bytes)
                    .sum();
                row
            })
            .collect();
        let sum_of = |metric: &str| {
            metrics
                .iter()
                .filter(|(n, _, _)| *n == metric)
                .map(|(_, _, v)| *v)
                .sum::<u64>()
        };
        let concerns = |pick: fn(&health::HealthView) -> &Vec<String>| {
            health
                .iter()
                .flat_map(|(name, h)| {
                    pick(h).iter().map(|text| proto::Concern {
                        component: name.clone(),
                        text: text.clone(),
                    })
                })
                .collect::<Vec<_>>()
        };
        proto::StatusReply {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            healthy: health.values().all(|h| !h.failing && h.degraded.is_empty()),
            degraded: concerns(|h| &h.degraded),
            warnings: concerns(|h| &h.warnings),
            components,
            checkpoints,
            disk_bytes_written: sum_of("shipd_disk_bytes_written_total"),
            fsyncs: sum_of("shipd_fsync_total"),
            metrics: metrics
                .iter()
                .map(|(name, labels, value)| proto::MetricValue {
                    name: (*name).to_owned(),
                    labels: labels.clone(),
                    value: *value,
                })
                .collect(),
            pipeline: self.pipeline.clone(),
            reloads: self.reloads.load(Ordering::Relaxed),
        }
    }
}

/// The `component="..."` label of a rendered label set.
fn component_of(labels: &str) -> Option<&str> {
    label_of(labels, "component")
}

/// The value of label `key` in a rendered label set.
fn label_of<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let rest = labels
        .split(',')
        .find_map(|l| l.strip_prefix(key).and_then(|l| l.strip_prefix("=\"")))?;
    rest.strip_suffix('"')
}

/// Sums the counters of one component into a row; the columns are found by
/// metric name, so counters other modules add later show up by pattern
/// (`*_errors_total`, `*_failures_total`, `*queue_bytes*`, `*spill_bytes*`).
fn component_row(
    name: &str,
    kind: &str,
    metrics: &[(&'static str, String, u64)],
) -> proto::ComponentStatus {
    let mut row = proto::ComponentStatus {
        name: name.to_owned(),
        kind: kind.to_owned(),
        ..Default::default()
    };
    for (metric, labels, value) in metrics {
        if component_of(labels) != Some(name) {
            continue;
        }
        let v = *value;
        match *metric {
            "shipd_events_in_total" => row.events_in += v,
            "shipd_events_out_total" => row.events_out += v,
            "shipd_bytes_in_total" => row.bytes_in += v,
            "shipd_bytes_out_total" => row.bytes_out += v,
            "shipd_events_dropped_total" => row.dropped += v,
            "shipd_events_failed_total" => row.failed += v,
            "shipd_events_routed_total" => {
                if let Some(sink) = label_of(labels, "sink") {
                    *row.routed.entry(sink.to_owned()).or_default() += v;
                }
            }
            "shipd_retries_total" => row.retries += v,
            m if m.ends_with("_errors_total") || m.ends_with("_failures_total") => row.errors += v,
            m if m.contains("queue_bytes") => row.queue_bytes += v,
            m if m.contains("spill") && m.contains("bytes") && !m.ends_with("_total") => {
                row.queue_bytes += v
            }
            _ => {}
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_counters_by_component_and_name_pattern() {
        let metrics = vec![
            ("shipd_events_in_total", "component=\"app\"".to_owned(), 10),
            (
                "shipd_events_dropped_total",
                "component=\"app\",reason=\"a\"".to_owned(),
                2,
            ),
            (
                "shipd_events_dropped_total",
                "component=\"app\",reason=\"b\"".to_owned(),
                3,
            ),
            ("shipd_read_errors_total", "component=\"app\"".to_owned(), 1),
            ("shipd_spill_bytes", "component=\"app\"".to_owned(), 7),
            (
                "shipd_events_in_total",
                "component=\"application\"".to_owned(),
                99,
            ),
        ];
        let row = component_row("app", "source", &metrics);
        assert_eq!(
            (row.events_in, row.dropped, row.errors, row.queue_bytes),
            (10, 5, 1, 7)
        );
    }

    #[test]
    fn failed_events_and_what_the_router_sent_each_sink_have_their_columns() {
        let metrics = vec![
            (
                "shipd_events_failed_total",
                "component=\"parse\"".to_owned(),
                4,
            ),
            (
                "shipd_events_routed_total",
                "component=\"router\",sink=\"o2\"".to_owned(),
                115,
            ),
            (
                "shipd_events_routed_total",
                "component=\"router\",sink=\"console\"".to_owned(),
                3,
            ),
        ];
        assert_eq!(component_row("parse", "step", &metrics).failed, 4);
        let router = component_row("router", "router", &metrics);
        assert_eq!(router.routed.get("o2"), Some(&115));
        assert_eq!(router.routed.get("console"), Some(&3));
        assert_eq!(router.failed, 0);
    }

    #[test]
    fn rows_come_in_pipeline_order() {
        let layout = Layout {
            sources: vec!["src".into()],
            steps: vec!["a".into(), "b".into()],
            sinks: vec!["out".into()],
            queues: Vec::new(),
        };
        let names: Vec<String> = layout.components().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["src", "a", "b", "pipeline", "router", "out"]);
    }
}
