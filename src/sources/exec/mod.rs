//! The `exec` source: runs a command every `interval` (argv, no shell) and
//! ships what it prints, as log lines or, with `format = "prometheus"`, as
//! the metrics of a text exposition (so `vcgencmd` or `smartctl` scripts
//! need no textfile collector). [`run`] owns one run (process group,
//! timeout, capped output), [`output`] turns a run into events; this module
//! owns the schedule, the counters and the log lines.
//!
//! What a command prints cannot be read again, so every batch goes through
//! the source's RAM journal ([`crate::buffer::journal::JournaledSender`])
//! like host metrics and scrapes. Runs never overlap: a run that outlasts
//! `interval` delays the next. Every failure is counted and logged
//! (rate-limited) and never stops the source: a timeout (the process group
//! is killed), a non-zero exit or a signal, output on standard error,
//! output cut at `max_output_bytes`, a command that cannot be started.

pub mod output;
pub mod run;

use crate::control::health::ComponentHealth;
use crate::event::{Event, EventBatch, Resource, Value};
use crate::sinks::log_limit::LogLimit;
use crate::sources::file::SourceContext;
use crate::telemetry::{self, Metric};
use run::{Ending, Run};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How the command's standard output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecFormat {
    /// One log record per line.
    Lines,
    /// A Prometheus text exposition: metric points.
    Prometheus,
}

/// Configuration of one `exec` source.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub name: String,
    /// Program and arguments; never run through a shell.
    pub command: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub format: ExecFormat,
    /// Standard output past this is cut (the pipe closed), never held.
    pub max_output_bytes: usize,
}

/// Default `every`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `max_output_bytes`: 1 MiB.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Sample lines of one exposition at most (as `prometheus_scrape`'s default).
const MAX_SERIES: usize = crate::sources::prometheus::scrape::DEFAULT_MAX_SERIES;
/// Events per batch sent into the pipeline, at most.
const SEND_BATCH_EVENTS: usize = 1000;
/// Bytes per batch sent into the pipeline: a batch is closed once it holds
/// this much (so a long output is journaled and sent in pieces).
const SEND_BATCH_BYTES: usize = 1024 * 1024;

impl ExecConfig {
    pub fn new(name: impl Into<String>, command: Vec<String>) -> Self {
        ExecConfig {
            name: name.into(),
            command,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            format: ExecFormat::Lines,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
        }
    }

    /// The command as one line of text (for attributes and logs).
    pub fn command_line(&self) -> String {
        self.command.join(" ")
    }
}

/// The counters of one `exec` source, `{component="<name>"}`.
struct Counters {
    events: Metric,
    runs: Metric,
    failures: Metric,
    timeouts: Metric,
    spawn_errors: Metric,
    stderr_bytes: Metric,
    output_cut: Metric,
    malformed_lines: Metric,
}

impl Counters {
    fn of(name: &str) -> Self {
        let c = |metric| telemetry::counter(metric, &[("component", name)]);
        Counters {
            events: c("shipd_events_in_total"),
            runs: c("shipd_exec_runs_total"),
            failures: c("shipd_exec_failures_total"),
            timeouts: c("shipd_exec_timeouts_total"),
            spawn_errors: c("shipd_exec_spawn_errors_total"),
            stderr_bytes: c("shipd_exec_stderr_bytes_total"),
            output_cut: c("shipd_exec_output_cut_total"),
            malformed_lines: c("shipd_exec_malformed_lines_total"),
        }
    }
}

static FAILURE_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));
static STDERR_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));
static CUT_LOG: LogLimit = LogLimit::new(Duration::from_secs(300));
static MALFORMED_LOG: LogLimit = LogLimit::new(Duration::from_secs(300));

/// The running source.
pub struct ExecSource {
    cfg: ExecConfig,
    ctx: SourceContext,
}

impl ExecSource {
    pub fn new(cfg: ExecConfig, ctx: SourceContext) -> Self {
        ExecSource { cfg, ctx }
    }

    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let cfg = &self.cfg;
        let counters = Counters::of(&cfg.name);
        let health = ComponentHealth::register(&cfg.name);
        let source: Arc<str> = Arc::from(cfg.name.as_str());
        let resource = Arc::new(Resource {
            attributes: vec![
                ("host.name".into(), Value::from(self.ctx.host_name.as_str())),
                ("service.name".into(), Value::from(cfg.name.as_str())),
                ("shipd.source".into(), Value::from(cfg.name.as_str())),
            ],
        });
        let command_line = cfg.command_line();
        // Start of the cumulative series: the first run that printed metrics.
        let mut started: Option<u64> = None;
        let mut ticks = tokio::time::interval(cfg.interval.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(source = %cfg.name, command = %command_line, interval = ?cfg.interval, timeout = ?cfg.timeout, "running a command on an interval");
        loop {
            tokio::select! {
                _ = self.ctx.cancel.cancelled() => return,
                _ = ticks.tick() => {}
            }
            // Dropping the run at cancellation kills its process group.
            let outcome = tokio::select! {
                _ = self.ctx.cancel.cancelled() => return,
                r = run::run(&cfg.command, cfg.timeout, cfg.max_output_bytes) => r,
            };
            counters.runs.inc();
            let mut run = match outcome {
                Ok(run) => run,
                Err(e) => {
                    counters.spawn_errors.inc();
                    let reason = e.to_string();
                    if let Some(suppressed) = FAILURE_LOG.allow() {
                        tracing::warn!(source = %cfg.name, %reason, suppressed, "exec command failed to start");
                    }
                    health.failed(&reason);
                    continue;
                }
            };
            self.account(&run, &counters, &health, &command_line);
            let now = crate::event::unix_nanos(SystemTime::now());
            let events = match cfg.format {
                ExecFormat::Lines => {
                    let attrs = output::run_attributes(&command_line, run.ending);
                    output::line_records(&mut run, &attrs, &resource)
                }
                ExecFormat::Prometheus => {
                    let start = *started.get_or_insert(now);
                    self.metrics(&run, now, start, &resource, &counters, &health)
                }
            };
            counters.events.add(events.len() as u64);
            let mut events = events.into_iter().peekable();
            while events.peek().is_some() {
                let mut batch = EventBatch::from_source(&source, SEND_BATCH_EVENTS);
                while batch.len() < SEND_BATCH_EVENTS && batch.bytes < SEND_BATCH_BYTES {
                    match events.next() {
                        Some(event) => batch.push(event),
                        None => break,
                    }
                }
                if self.ctx.unreplayable.send(batch).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Counts and logs how a run went, and sets the source's health.
    fn account(&self, run: &Run, counters: &Counters, health: &ComponentHealth, command: &str) {
        let name = &self.cfg.name;
        let stderr = String::from_utf8_lossy(&run.stderr_excerpt);
        let stderr = stderr.trim();
        if run.stderr_bytes > 0 {
            counters.stderr_bytes.add(run.stderr_bytes);
        }
        if run.stdout_cut {
            counters.output_cut.inc();
            if let Some(suppressed) = CUT_LOG.allow() {
                tracing::warn!(source = %name, %command, max_output_bytes = self.cfg.max_output_bytes, suppressed,
                    "exec command printed more than max_output_bytes: output cut there and its pipe closed");
            }
        }
        let failure = match run.ending {
            Ending::Exited(0) => None,
            // The pipe closed at the cut ended it: counted above as a cut.
            Ending::Signaled(libc::SIGPIPE) if run.stdout_cut => None,
            Ending::Exited(code) => Some(format!("`{command}` exited with status {code}")),
            Ending::Signaled(signal) => Some(format!("`{command}` was killed by signal {signal}")),
            Ending::TimedOut => {
                counters.timeouts.inc();
                Some(format!(
                    "`{command}` ran longer than its timeout ({}); its process group was killed",
                    humantime::format_duration(self.cfg.timeout)
                ))
            }
        };
        match failure {
            Some(reason) => {
                counters.failures.inc();
                if let Some(suppressed) = FAILURE_LOG.allow() {
                    tracing::warn!(source = %name, %reason, stderr, suppressed, "exec command failed");
                }
                health.failed(&reason);
            }
            None => {
                if run.stderr_bytes > 0 {
                    if let Some(suppressed) = STDERR_LOG.allow() {
                        tracing::warn!(source = %name, %command, stderr, stderr_bytes = run.stderr_bytes, suppressed,
                            "exec command wrote to standard error");
                    }
                }
                health.delivered();
            }
        }
    }

    /// The metric points of a run's exposition; a refused exposition (too
    /// many series) sends nothing and fails the run.
    fn metrics(
        &self,
        run: &Run,
        now: u64,
        start: u64,
        resource: &Arc<Resource>,
        counters: &Counters,
        health: &ComponentHealth,
    ) -> Vec<Event> {
        let name = &self.cfg.name;
        match output::exposition_points(run, now, start, MAX_SERIES, resource) {
            Ok(m) => {
                if m.malformed > 0 {
                    counters.malformed_lines.add(m.malformed as u64);
                    if let Some(suppressed) = MALFORMED_LOG.allow() {
                        tracing::warn!(source = %name, malformed = m.malformed, examples = ?m.malformed_examples, suppressed,
                            "skipped malformed exposition lines of an exec command");
                    }
                }
                m.points.into_iter().map(Event::Metric).collect()
            }
            Err(e) => {
                counters.failures.inc();
                let reason = format!("`{}`: {e}", self.cfg.command_line());
                if let Some(suppressed) = FAILURE_LOG.allow() {
                    tracing::warn!(source = %name, %reason, suppressed, "exec command output refused");
                }
                health.failed(&reason);
                Vec::new()
            }
        }
    }
}
