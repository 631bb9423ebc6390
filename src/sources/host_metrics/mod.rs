//! The host metrics source: reads /proc and /sys every `interval` and emits
//! metric points named after the OpenTelemetry host-metrics semantic
//! conventions, plus Raspberry Pi health (temperature, frequency, throttling,
//! SD/eMMC wear) and a node health level.
//!
//! [`HostMetrics`] owns the collection state (previous CPU ticks, cumulative
//! counter series, the health level) and one [`collect`](HostMetrics::collect)
//! call reads every file once. Each concern lives in its own module (`cpu`,
//! `memory`, `disk`, `filesystem`, `network`, `system`, `pi`, `health`); all
//! read below a `root` directory (default `/`) so tests run on fixture trees.
//! This module never writes to disk and never blocks the async runtime: a
//! collection runs on the blocking pool.

mod counters;
mod cpu;
mod disk;
mod filesystem;
mod health;
mod memory;
mod network;
mod pi;
mod system;

pub use counters::CounterTracker;
pub use filesystem::{FsStats, StatFs};
pub use health::{HealthLevel, HealthThresholds, Levels};

use crate::event::{Event, EventBatch, LogRecord, MetricKind, MetricPoint, Resource, Value};
use crate::sinks::log_limit::LogLimit;
use crate::sources::file::SourceContext;
use crate::telemetry::{self, Metric};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Configuration of one host metrics source.
#[derive(Debug, Clone)]
pub struct HostMetricsConfig {
    pub name: String,
    pub interval: Duration,
    /// Where /proc and /sys are found (`/`, or a fixture tree, or `/host`).
    pub root: PathBuf,
    /// Filesystem types never reported (pseudo filesystems).
    pub exclude_fs_types: Vec<String>,
    /// Mount points (and everything below them) never reported.
    pub exclude_mount_points: Vec<String>,
    /// Block devices whose name starts with one of these are not reported.
    pub exclude_disk_prefixes: Vec<String>,
    /// Network interfaces never reported.
    pub exclude_interfaces: Vec<String>,
    pub thresholds: HealthThresholds,
}

impl HostMetricsConfig {
    pub fn new(name: impl Into<String>) -> Self {
        HostMetricsConfig {
            name: name.into(),
            interval: Duration::from_secs(15),
            root: PathBuf::from("/"),
            exclude_fs_types: filesystem::PSEUDO_FS_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            exclude_mount_points: ["/proc", "/sys", "/dev", "/run/credentials"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            exclude_disk_prefixes: vec!["loop".into(), "ram".into()],
            exclude_interfaces: Vec::new(),
            thresholds: HealthThresholds::default(),
        }
    }
}

/// What one collection produced.
#[derive(Debug, Default)]
pub struct Collection {
    pub points: Vec<MetricPoint>,
    /// Health level changes.
    pub logs: Vec<LogRecord>,
}

/// Counters of one source.
struct SourceCounters {
    events: Metric,
    read_errors: Metric,
}

/// The state of a host metrics source between collections.
pub struct HostMetrics {
    cfg: HostMetricsConfig,
    resource: Arc<Resource>,
    statfs: Box<dyn StatFs>,
    counters: CounterTracker,
    cpu: cpu::CpuState,
    pi: pi::PiPaths,
    health: health::HealthState,
    metrics: SourceCounters,
    /// Collections so far.
    rounds: u64,
}

static READ_ERROR_LOG: LogLimit = LogLimit::new(Duration::from_secs(300));

/// Inputs of the health evaluation gathered while collecting.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HealthInputs {
    /// Busy share of all CPUs since the previous collection, in percent.
    pub cpu_percent: Option<f64>,
    /// Memory not available to new work, in percent.
    pub memory_percent: Option<f64>,
    /// The fullest filesystem: (percent used, mount point).
    pub disk_percent: Option<(f64, String)>,
    pub load_1m: Option<f64>,
    /// The hottest thermal zone, in °C.
    pub temperature_celsius: Option<f64>,
}

/// Builds the points of one collection: one time, one resource, and the
/// cumulative series tracker.
pub struct Emit<'a> {
    time: u64,
    /// Start time of series seen for the first time.
    first_seen_start: u64,
    resource: &'a Arc<Resource>,
    counters: &'a mut CounterTracker,
    points: Vec<MetricPoint>,
}

impl Emit<'_> {
    fn point(
        &mut self,
        name: &str,
        unit: &str,
        kind: MetricKind,
        value: f64,
        labels: &[(&str, &str)],
    ) -> &mut MetricPoint {
        let mut p = MetricPoint::new(
            name,
            unit,
            kind,
            value,
            self.time,
            Arc::clone(self.resource),
        );
        p.labels = labels
            .iter()
            .map(|(k, v)| ((*k).into(), Value::from(*v)))
            .collect();
        self.points.push(p);
        let last = self.points.len() - 1;
        &mut self.points[last]
    }

    /// A gauge (utilization, temperature, load).
    pub fn gauge(&mut self, name: &str, unit: &str, value: f64, labels: &[(&str, &str)]) {
        self.point(name, unit, MetricKind::Gauge, value, labels);
    }

    /// A non-monotonic cumulative sum (a usage that can go down).
    pub fn updown(&mut self, name: &str, unit: &str, value: f64, labels: &[(&str, &str)]) {
        self.point(
            name,
            unit,
            MetricKind::Sum { monotonic: false },
            value,
            labels,
        );
    }

    /// A monotonic counter read from the kernel as `raw`, reported as
    /// `raw * scale` with wraps and resets handled by the [`CounterTracker`].
    pub fn counter(
        &mut self,
        name: &str,
        unit: &str,
        raw: u64,
        scale: f64,
        labels: &[(&str, &str)],
    ) {
        let mut key = String::with_capacity(64);
        key.push_str(name);
        for (k, v) in labels {
            key.push('\u{1f}');
            key.push_str(k);
            key.push('=');
            key.push_str(v);
        }
        let (total, start) = self
            .counters
            .observe(key, raw, self.time, self.first_seen_start);
        let p = self.point(
            name,
            unit,
            MetricKind::Sum { monotonic: true },
            total as f64 * scale,
            labels,
        );
        p.start_time_unix_nano = start;
    }
}

impl HostMetrics {
    /// A collector reading below `cfg.root`, using the real `statvfs`.
    pub fn new(cfg: HostMetricsConfig, host_name: &str) -> Self {
        Self::with_statfs(cfg, host_name, Box::new(filesystem::Statvfs))
    }

    /// A collector with a custom filesystem statistics source (tests).
    pub fn with_statfs(cfg: HostMetricsConfig, host_name: &str, statfs: Box<dyn StatFs>) -> Self {
        let resource = Arc::new(Resource {
            attributes: vec![
                ("host.name".into(), Value::from(host_name)),
                ("service.name".into(), Value::from("shipd")),
                ("shipd.source".into(), Value::from(cfg.name.as_str())),
            ],
        });
        let c = |metric| telemetry::counter(metric, &[("component", &cfg.name)]);
        let metrics = SourceCounters {
            events: c("shipd_events_in_total"),
            read_errors: c("shipd_read_errors_total"),
        };
        let pi = pi::PiPaths::discover(&cfg.root);
        HostMetrics {
            health: health::HealthState::new(cfg.thresholds.clone()),
            cfg,
            resource,
            statfs,
            counters: CounterTracker::default(),
            cpu: cpu::CpuState::default(),
            pi,
            metrics,
            rounds: 0,
        }
    }

    pub fn resource(&self) -> &Arc<Resource> {
        &self.resource
    }

    /// Reads every source once and returns the points (and health logs).
    /// A file that cannot be read is counted and logged (rate-limited); the
    /// other collectors still run.
    pub fn collect(&mut self, now: SystemTime) -> Collection {
        let time = crate::event::unix_nanos(now);
        let root = self.cfg.root.clone();
        let mut inputs = HealthInputs::default();
        let mut errors: Vec<(&'static str, std::io::Error)> = Vec::new();
        let stat = match read(&root, "proc/stat") {
            Ok(text) => Some(cpu::ProcStat::parse(&text)),
            Err(e) => {
                errors.push(("proc/stat", e));
                None
            }
        };
        // Counters since boot start at boot; series that appear later start
        // at the previous collection (they appeared in between).
        let boot = stat
            .as_ref()
            .and_then(|s| s.boot_time)
            .map(|secs| secs.saturating_mul(1_000_000_000))
            .unwrap_or(0);
        let first_seen_start = if self.rounds == 0 {
            boot
        } else {
            self.counters.last_time()
        };
        self.counters.begin_round(time);
        let mut emit = Emit {
            time,
            first_seen_start,
            resource: &self.resource,
            counters: &mut self.counters,
            points: Vec::with_capacity(256),
        };
        if let Some(stat) = &stat {
            inputs.cpu_percent = self.cpu.emit(stat, &mut emit);
            system::emit_processes(stat, &mut emit);
        }
        let mut run = |what: &'static str, result: std::io::Result<()>| {
            if let Err(e) = result {
                errors.push((what, e));
            }
        };
        run(
            "proc/loadavg",
            system::emit_load(&root, &mut emit, &mut inputs),
        );
        run("proc/uptime", system::emit_uptime(&root, &mut emit));
        run("proc/meminfo", memory::emit(&root, &mut emit, &mut inputs));
        run(
            "proc/diskstats",
            disk::emit(&root, &self.cfg.exclude_disk_prefixes, &mut emit),
        );
        run(
            "proc/mounts",
            filesystem::emit(
                &root,
                &self.cfg,
                self.statfs.as_ref(),
                &mut emit,
                &mut inputs,
            ),
        );
        run(
            "proc/net/dev",
            network::emit(&root, &self.cfg.exclude_interfaces, &mut emit),
        );
        self.pi.emit(&mut emit, &mut inputs);
        let (level_logs, health_points) = self.health.evaluate(&inputs);
        for (check, level) in health_points {
            emit.gauge(
                health::METRIC,
                "1",
                f64::from(level as u8),
                &[("check", check)],
            );
        }
        let points = emit.points;
        self.counters.end_round();
        self.rounds += 1;
        for (what, e) in errors {
            self.metrics.read_errors.inc();
            if let Some(suppressed) = READ_ERROR_LOG.allow() {
                tracing::warn!(source = %self.cfg.name, file = what, error = %e, suppressed, "cannot read host metrics file");
            }
        }
        let logs = level_logs
            .into_iter()
            .map(|change| change.into_log(time, Arc::clone(&self.resource)))
            .collect();
        self.metrics.events.add(points.len() as u64);
        Collection { points, logs }
    }
}

/// Reads `rel` below `root` as text.
pub(crate) fn read(root: &Path, rel: &str) -> std::io::Result<String> {
    std::fs::read_to_string(root.join(rel))
}

/// The running source: collects every `interval` until cancelled.
pub struct HostMetricsSource {
    cfg: HostMetricsConfig,
    ctx: SourceContext,
}

impl HostMetricsSource {
    pub fn new(cfg: HostMetricsConfig, ctx: SourceContext) -> Self {
        HostMetricsSource { cfg, ctx }
    }

    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let mut state = Some(HostMetrics::new(self.cfg.clone(), &self.ctx.host_name));
        let mut ticks = tokio::time::interval(self.cfg.interval.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(source = %self.cfg.name, interval = ?self.cfg.interval, root = %self.cfg.root.display(), "collecting host metrics");
        loop {
            tokio::select! {
                _ = self.ctx.cancel.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let Some(mut metrics) = state.take() else {
                return;
            };
            let joined = tokio::task::spawn_blocking(move || {
                let collection = metrics.collect(SystemTime::now());
                (metrics, collection)
            })
            .await;
            let collection = match joined {
                Ok((metrics, collection)) => {
                    state = Some(metrics);
                    collection
                }
                Err(e) => {
                    tracing::error!(source = %self.cfg.name, error = %e, "host metrics collection failed; source stops");
                    return;
                }
            };
            let mut batch =
                EventBatch::with_capacity(collection.points.len() + collection.logs.len());
            for log in collection.logs {
                batch.push(Event::Log(log));
            }
            for point in collection.points {
                batch.push(Event::Metric(point));
            }
            if self.ctx.unreplayable.send(batch).await.is_err() {
                return;
            }
        }
    }
}
