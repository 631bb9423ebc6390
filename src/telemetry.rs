//! Every internal counter and gauge in one place, rendered as Prometheus text
//! for `GET /metrics`. Components take a handle once (at construction) and
//! bump it lock-free; this module never blocks the data path.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// Counter (monotonic) or gauge (can go down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Counter,
    Gauge,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Id {
    name: &'static str,
    labels: String,
}

#[derive(Default)]
struct Registry {
    metrics: BTreeMap<Id, (Kind, Arc<AtomicU64>)>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

/// A handle to one registered metric.
#[derive(Debug, Clone)]
pub struct Metric(Arc<AtomicU64>);

impl Metric {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn register(kind: Kind, name: &'static str, labels: &[(&str, &str)]) -> Metric {
    let mut rendered = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(rendered, "{sep}{k}=\"{v}\"");
    }
    let id = Id {
        name,
        labels: rendered,
    };
    let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let entry = reg
        .metrics
        .entry(id)
        .or_insert_with(|| (kind, Arc::new(AtomicU64::new(0))));
    Metric(Arc::clone(&entry.1))
}

/// A monotonic counter `name{labels}` (created on first use, shared after).
pub fn counter(name: &'static str, labels: &[(&str, &str)]) -> Metric {
    register(Kind::Counter, name, labels)
}

/// A gauge `name{labels}`.
pub fn gauge(name: &'static str, labels: &[(&str, &str)]) -> Metric {
    register(Kind::Gauge, name, labels)
}

/// Counts bytes the agent wrote to disk, by kind (checkpoint, spill).
pub fn disk_written(kind: &str, bytes: u64) {
    counter("shipd_disk_bytes_written_total", &[("kind", kind)]).add(bytes);
}

/// Counts fsync calls.
pub fn fsyncs(n: u64) {
    counter("shipd_fsync_total", &[]).add(n);
}

/// What the agent has written to its disk since it started: the wear it
/// causes on an SD card, for `/health` and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Wear {
    /// Bytes of checkpoint state files written.
    pub checkpoint_bytes: u64,
    /// Bytes of spill segments written (only while a sink could not keep up).
    pub spill_bytes: u64,
    /// fsync calls (checkpoints, spill segments, their directories).
    pub fsyncs: u64,
}

/// The wear figures (registering the counters at zero on first call, so
/// `/metrics` shows them before anything was written).
pub fn wear() -> Wear {
    let written = |kind| counter("shipd_disk_bytes_written_total", &[("kind", kind)]).get();
    Wear {
        checkpoint_bytes: written("checkpoint"),
        spill_bytes: written("spill"),
        fsyncs: counter("shipd_fsync_total", &[]).get(),
    }
}

/// The value of `name{labels}` if registered (for status and tests).
pub fn value(name: &str, labels: &str) -> Option<u64> {
    let reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    reg.metrics
        .iter()
        .find(|(id, _)| id.name == name && id.labels == labels)
        .map(|(_, (_, v))| v.load(Ordering::Relaxed))
}

/// Every metric as `(name, rendered labels, value)`, sorted by name
/// (for `shipctl status`).
pub fn snapshot() -> Vec<(&'static str, String, u64)> {
    let reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    reg.metrics
        .iter()
        .map(|(id, (_, v))| (id.name, id.labels.clone(), v.load(Ordering::Relaxed)))
        .collect()
}

/// Prometheus text exposition (0.0.4) of every metric.
pub fn render() -> String {
    let reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = String::new();
    let mut last = "";
    for (id, (kind, v)) in &reg.metrics {
        if id.name != last {
            let kind = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# TYPE {} {kind}", id.name);
            last = id.name;
        }
        let v = v.load(Ordering::Relaxed);
        if id.labels.is_empty() {
            let _ = writeln!(out, "{} {v}", id.name);
        } else {
            let _ = writeln!(out, "{}{{{}}} {v}", id.name, id.labels);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wear_sums_what_was_written_by_kind() {
        let before = wear();
        disk_written("spill", 100);
        disk_written("checkpoint", 7);
        fsyncs(2);
        let after = wear();
        assert!(after.spill_bytes >= before.spill_bytes + 100);
        assert!(after.checkpoint_bytes >= before.checkpoint_bytes + 7);
        assert!(after.fsyncs >= before.fsyncs + 2);
    }

    #[test]
    fn counters_with_labels_render_as_prometheus_text() {
        counter("shipd_test_events_total", &[("component", "a\"b")]).add(3);
        counter("shipd_test_events_total", &[("component", "a\"b")]).inc();
        let text = render();
        assert!(text.contains("# TYPE shipd_test_events_total counter"));
        assert!(
            text.contains("shipd_test_events_total{component=\"a\\\"b\"} 4"),
            "{text}"
        );
    }
}
