//! Wiring: builds the running agent from an [`AgentConfig`] — sources, the
//! processing stage, the router and sinks as tasks joined by byte-bounded
//! channels — and shuts it down in order: stop reading, drain, final checkpoint.
//! A reload swaps the running pipeline the same way (stop reading, drain)
//! and starts the new one from the checkpoints, keeping the
//! [`Checkpointer`], the API and the control socket.

use super::channel::{batch_channel, BatchReceiver, BatchSender};
use super::checkpoint::{CheckpointError, CheckpointSettings, Checkpointer};
use super::data_dir_lock::{DataDirLock, DataDirLockError};
use super::processor::Processor;
use crate::buffer::journal::{JournaledSender, RamJournal, SharedJournal};
use crate::buffer::SpillBuffer;
use crate::config::{AgentConfig, SinkConfig, SourceConfig};
use crate::control::reload::{Apply, PipelineOrigin, Reloader};
use crate::control::status::{AgentView, Layout};
use crate::control::tap::{self, Point};
use crate::sinks::otlp::{OtlpSink, OtlpSinkError};
use crate::sinks::{console, RoutedBatch};
use crate::sources::exec::ExecSource;
use crate::sources::file::{FileSource, SourceContext};
use crate::sources::forward::{ForwardSource, ForwardSourceError};
use crate::sources::host_metrics::HostMetricsSource;
use crate::sources::journald::JournaldSource;
use crate::sources::log_metrics::LogMetricsSource;
use crate::sources::otlp::{OtlpReceiverError, OtlpReceiverSource};
use crate::sources::prometheus::scrape::ScrapeConfigError;
use crate::sources::prometheus::PrometheusScrapeSource;
use crate::sources::syslog::{SyslogSource, SyslogSourceError};
use crate::telemetry;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Locked(#[from] DataDirLockError),
    #[error(transparent)]
    ControlSocket(#[from] crate::control::server::ControlSocketError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Sink(#[from] OtlpSinkError),
    #[error(transparent)]
    Spill(#[from] crate::buffer::queue::QueueError),
    #[error(transparent)]
    Scrape(#[from] ScrapeConfigError),
    #[error(transparent)]
    Otlp(#[from] OtlpReceiverError),
    #[error(transparent)]
    Forward(#[from] ForwardSourceError),
    #[error(transparent)]
    Syslog(#[from] SyslogSourceError),
    #[error("cannot bind the API on {addr}: {source}")]
    Api {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Reloading: where the pipeline comes from and how SIGHUP reaches the agent.
pub struct Reloading {
    pub origin: PipelineOrigin,
    /// The pipeline text the agent starts with.
    pub started_with: String,
    /// One message per SIGHUP.
    pub hangups: mpsc::Receiver<()>,
}

/// Runs the agent until `shutdown` resolves, then drains and returns.
pub async fn run(cfg: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    run_with(cfg, shutdown, None).await
}

/// Like [`run`]; with `reloading`, SIGHUP and the Reload RPC replace the
/// running pipeline with a checked new one.
pub async fn run_with(
    cfg: AgentConfig,
    shutdown: impl Future<Output = ()>,
    reloading: Option<Reloading>,
) -> Result<(), StartError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| StartError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    // Held until the agent stops: a second agent on this directory is refused.
    let _data_dir_lock = DataDirLock::acquire(&cfg.data_dir)?;
    // Before anything is opened: a path that is not a socket is never replaced.
    if let Some(path) = &cfg.control_socket {
        crate::control::server::check_path(path)?;
    }
    let checkpointer = Checkpointer::open(
        &cfg.data_dir,
        &CheckpointSettings {
            interval: cfg.checkpoint_interval,
            disk_interval: cfg.checkpoint_disk_interval,
            ram_dir: cfg.runtime_dir.clone(),
        },
    )?;
    let _ = telemetry::wear(); // the wear counters show in /metrics from the start
    let stop_background = CancellationToken::new();

    let api = match cfg.api_addr {
        Some(addr) => Some(
            crate::control::api::serve(addr, stop_background.clone())
                .await
                .map_err(|source| StartError::Api { addr, source })?,
        ),
        None => None,
    };

    let pipeline_name = reloading
        .as_ref()
        .map(|r| r.origin.name())
        .unwrap_or_default();
    let view = Arc::new(AgentView::new(Arc::clone(&checkpointer), pipeline_name));
    let (applies_tx, mut applies) = mpsc::channel::<Apply>(1);
    let (reloader, mut hangups) = match reloading {
        Some(r) => {
            let reloader = Arc::new(Reloader::new(r.origin, applies_tx));
            reloader.started_with(r.started_with).await;
            (Some(reloader), Some(r.hangups))
        }
        None => (None, None),
    };
    let control = match &cfg.control_socket {
        Some(path) => match crate::control::server::serve(
            path,
            Arc::clone(&view),
            reloader.clone(),
            stop_background.clone(),
        ) {
            Ok(task) => Some(task),
            Err(e @ crate::control::server::ControlSocketError::NotASocket { .. }) => {
                return Err(e.into())
            }
            Err(e) => {
                tracing::warn!(error = %e, "no control socket: shipctl tail, status and reload will not reach this agent");
                None
            }
        },
        None => None,
    };

    let fixed = FixedSettings::of(&cfg);
    let mut running = Some(RunningPipeline::start(cfg, &checkpointer, &view)?);
    let checkpoints = tokio::spawn(Arc::clone(&checkpointer).run(stop_background.clone()));
    crate::control::systemd::ready();
    // Loading and starting are done: their code need not stay resident
    // (the heap releaser sheds again once the first collections and
    // requests have run).
    tokio::task::spawn_blocking(|| {
        if let Err(e) = crate::memory::shed_program_text() {
            tracing::debug!(error = %e, "program text not shed");
        }
    });
    let _watchdog = crate::control::systemd::spawn_watchdog(stop_background.clone());

    tokio::pin!(shutdown);
    loop {
        let hangup = async {
            match hangups.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            got = hangup => match (got, &reloader) {
                (Some(()), Some(reloader)) => {
                    tracing::info!("SIGHUP: reload requested");
                    let reloader = Arc::clone(reloader);
                    tokio::spawn(async move { reloader.reload().await });
                }
                _ => hangups = None,
            },
            Some(apply) = applies.recv() => {
                fixed.warn_changes(&apply.cfg);
                if let Some(old) = running.take() {
                    old.stop().await;
                }
                match RunningPipeline::start(apply.cfg, &checkpointer, &view) {
                    Ok(new) => {
                        running = Some(new);
                        view.reloaded();
                        crate::memory::note_started();
                        let _ = apply.reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = apply.reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    }
    crate::control::systemd::stopping();
    if let Some(running) = running {
        running.stop().await;
    }
    stop_background.cancel();
    if let Err(e) = checkpoints.await {
        tracing::error!(error = %e, "checkpointer task failed");
    }
    if let Some(api) = api {
        let _ = api.await;
    }
    if let Some(control) = control {
        if tokio::time::timeout(Duration::from_secs(2), control)
            .await
            .is_err()
        {
            tracing::warn!("control socket did not close in time");
        }
    }
    let wear = telemetry::wear();
    tracing::info!(
        disk_bytes_written = wear.checkpoint_bytes + wear.spill_bytes,
        checkpoint_bytes = wear.checkpoint_bytes,
        spill_bytes = wear.spill_bytes,
        fsyncs = wear.fsyncs,
        "shipd stopped"
    );
    Ok(())
}

/// A shipping sink (OpenObserve, OTLP) with the spill buffer in front of it.
type ShippingSink = (OtlpSink, SpillBuffer);

/// Settings a reload cannot change (they need a restart).
struct FixedSettings {
    data_dir: std::path::PathBuf,
    runtime_dir: Option<std::path::PathBuf>,
    api_addr: Option<std::net::SocketAddr>,
    control_socket: Option<std::path::PathBuf>,
    checkpoint_interval: Duration,
    checkpoint_disk_interval: Duration,
}

impl FixedSettings {
    fn of(cfg: &AgentConfig) -> Self {
        FixedSettings {
            data_dir: cfg.data_dir.clone(),
            runtime_dir: cfg.runtime_dir.clone(),
            api_addr: cfg.api_addr,
            control_socket: cfg.control_socket.clone(),
            checkpoint_interval: cfg.checkpoint_interval,
            checkpoint_disk_interval: cfg.checkpoint_disk_interval,
        }
    }

    fn warn_changes(&self, new: &AgentConfig) {
        let changed = [
            ("data_dir", self.data_dir != new.data_dir),
            // The RAM journals move at once; the checkpoint copy at restart.
            ("runtime_dir", self.runtime_dir != new.runtime_dir),
            ("api_addr", self.api_addr != new.api_addr),
            ("control_socket", self.control_socket != new.control_socket),
            (
                "checkpoint_interval",
                self.checkpoint_interval != new.checkpoint_interval,
            ),
            (
                "checkpoint_disk_interval",
                self.checkpoint_disk_interval != new.checkpoint_disk_interval,
            ),
        ];
        for (setting, _) in changed.iter().filter(|(_, c)| *c) {
            tracing::warn!(
                setting,
                "changed in the pipeline; takes effect at the next restart"
            );
        }
    }
}

/// One running pipeline: sources, the processing stage and sinks.
struct RunningPipeline {
    stop_sources: CancellationToken,
    sources: Vec<tokio::task::JoinHandle<()>>,
    stage: tokio::task::JoinHandle<()>,
    sinks: Vec<tokio::task::JoinHandle<()>>,
    /// The RAM journals of the sources (removed at stop when empty).
    journals: Vec<SharedJournal>,
    drain_timeout: Duration,
}

/// The way into the pipeline for what `source` cannot read again: through
/// its RAM journal under `runtime_dir`, whose leftovers from a crashed run
/// are sent first (by a task pushed to `tasks`); the journal is pushed to
/// `journals`. Replayable sources (and an agent without a usable journal
/// directory) get a plain sender.
fn journaled_sender(
    source: &SourceConfig,
    runtime_dir: Option<&Path>,
    events_tx: &BatchSender,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    journals: &mut Vec<SharedJournal>,
) -> JournaledSender {
    let replayable = matches!(source, SourceConfig::File(_) | SourceConfig::Journald(_));
    let Some(dir) = runtime_dir.filter(|_| !replayable) else {
        return JournaledSender::new(events_tx.clone(), None);
    };
    let name = source.name();
    // Read back under the budget the source holds one batch to.
    let max_batch_memory = match source {
        SourceConfig::Otlp(otlp) => otlp.max_request_memory,
        SourceConfig::Forward(forward) => forward.memory_budget(),
        _ => crate::memory::MAX_BATCH_MEMORY,
    };
    match RamJournal::open(dir, name, max_batch_memory) {
        Ok((journal, recovered)) => {
            if !recovered.is_empty() {
                tasks.push(tokio::spawn(recovered.send_all(events_tx.clone())));
            }
            let journal = Arc::new(Mutex::new(journal));
            journals.push(Arc::clone(&journal));
            JournaledSender::new(events_tx.clone(), Some(journal))
        }
        Err(e) => {
            tracing::warn!(source = name, error = %e,
                "no RAM journal: a crash would lose what this source collected and not yet delivered");
            JournaledSender::new(events_tx.clone(), None)
        }
    }
}

impl RunningPipeline {
    /// Starts sinks, then the stage, then sources (which resume from the
    /// checkpoints), and shows the new layout to the control API.
    fn start(
        cfg: AgentConfig,
        checkpointer: &Arc<Checkpointer>,
        view: &AgentView,
    ) -> Result<Self, StartError> {
        let stop_sources = CancellationToken::new();
        let mut built: Vec<(Arc<str>, Option<ShippingSink>)> = Vec::new();
        for sink in &cfg.sinks {
            built.push(match sink {
                SinkConfig::OpenObserve(o2) => {
                    let sink = OtlpSink::new(o2.sink_config())?;
                    tracing::info!(sink = %o2.name, url = %o2.url, transport = ?o2.transport, compression = ?o2.compression, "shipping to OpenObserve");
                    let spill =
                        SpillBuffer::open(&o2.name, o2.buffer, &cfg.data_dir, checkpointer)?;
                    (Arc::from(o2.name.as_str()), Some((sink, spill)))
                }
                SinkConfig::Otlp(otlp) => {
                    let sink = OtlpSink::new((**otlp).clone())?;
                    tracing::info!(sink = %otlp.name, url = %otlp.transport_url(), transport = ?otlp.transport, compression = ?otlp.compression, "shipping OTLP");
                    let spill =
                        SpillBuffer::open(&otlp.name, otlp.buffer, &cfg.data_dir, checkpointer)?;
                    (Arc::from(otlp.name.as_str()), Some((sink, spill)))
                }
                SinkConfig::Elasticsearch(es) => {
                    let sink = OtlpSink::elasticsearch(es)?;
                    tracing::info!(sink = %es.name, url = %es.url, compression = ?es.compression, "shipping to the _bulk API");
                    let spill =
                        SpillBuffer::open(&es.name, es.buffer, &cfg.data_dir, checkpointer)?;
                    (Arc::from(es.name.as_str()), Some((sink, spill)))
                }
                SinkConfig::Console { name } => (Arc::from(name.as_str()), None),
            });
        }
        let mut layout = Layout {
            sources: cfg.sources.iter().map(|s| s.name().to_owned()).collect(),
            steps: cfg.processor.steps.iter().map(|s| s.name.clone()).collect(),
            sinks: Vec::new(),
            queues: Vec::new(),
        };
        let mut sink_txs = Vec::new();
        let mut sink_tasks = Vec::new();
        for (name, o2) in built {
            let (tx, rx) = batch_channel::<RoutedBatch>(cfg.channel_bytes);
            layout.sinks.push(name.to_string());
            layout.queues.push((name.to_string(), tx.meter()));
            match o2 {
                Some((sink, spill)) => {
                    // Processing stage → spill buffer → sink's memory queue → sink.
                    let (queue_tx, queue_rx) = batch_channel::<RoutedBatch>(cfg.channel_bytes);
                    sink_tasks.push(spill.spawn(rx, queue_tx));
                    sink_tasks.push(tokio::spawn(sink.run(queue_rx)));
                }
                None => sink_tasks.push(tokio::spawn(console::run(name.to_string(), rx))),
            }
            sink_txs.push(SinkInput::new(name, tx));
        }

        let (events_tx, events_rx) = batch_channel(cfg.channel_bytes);
        layout.queues.push(("pipeline".into(), events_tx.meter()));
        let stage = tokio::spawn(process(events_rx, cfg.processor, sink_txs));

        let mut sources = Vec::new();
        let mut journals = Vec::new();
        for source in &cfg.sources {
            let unreplayable = journaled_sender(
                source,
                cfg.runtime_dir.as_deref(),
                &events_tx,
                &mut sources,
                &mut journals,
            )
            .named(source.name());
            let ctx = SourceContext {
                unreplayable,
                out: events_tx.clone(),
                checkpointer: Arc::clone(checkpointer),
                cancel: stop_sources.clone(),
                host_name: cfg.host_name.clone(),
            };
            match source {
                SourceConfig::File(file) => {
                    sources.push(FileSource::new(file.clone(), ctx).spawn())
                }
                SourceConfig::Journald(journald) => {
                    sources.push(JournaldSource::new(journald.clone(), ctx).spawn())
                }
                SourceConfig::HostMetrics(host) => {
                    sources.push(HostMetricsSource::new(host.clone(), ctx).spawn())
                }
                SourceConfig::LogMetrics(metrics) => {
                    sources.push(LogMetricsSource::new(metrics.clone(), ctx).spawn())
                }
                SourceConfig::PrometheusScrape(scrape) => {
                    match PrometheusScrapeSource::new(scrape.clone(), ctx).spawn() {
                        Ok(task) => sources.push(task),
                        Err(e) => {
                            // Nothing was read yet: stop what started and refuse.
                            stop_sources.cancel();
                            for task in sources {
                                task.abort();
                            }
                            return Err(e.into());
                        }
                    }
                }
                SourceConfig::Exec(exec) => {
                    sources.push(ExecSource::new(exec.clone(), ctx).spawn())
                }
                SourceConfig::Otlp(otlp) => match OtlpReceiverSource::bind(otlp.clone(), ctx) {
                    Ok(receiver) => sources.push(receiver.spawn()),
                    Err(e) => {
                        stop_sources.cancel();
                        for task in sources {
                            task.abort();
                        }
                        return Err(e.into());
                    }
                },
                SourceConfig::Forward(forward) => match ForwardSource::bind(forward.clone(), ctx) {
                    Ok(source) => sources.push(source.spawn()),
                    Err(e) => {
                        stop_sources.cancel();
                        for task in sources {
                            task.abort();
                        }
                        return Err(e.into());
                    }
                },
                SourceConfig::Syslog(syslog) => match SyslogSource::bind(syslog.clone(), ctx) {
                    Ok(listening) => sources.push(listening.spawn()),
                    Err(e) => {
                        stop_sources.cancel();
                        for task in sources {
                            task.abort();
                        }
                        return Err(e.into());
                    }
                },
            }
        }
        drop(events_tx);
        if cfg.sources.is_empty() {
            tracing::warn!("no sources configured (set SHIPD_LOG_FILES); idling");
        }
        tracing::info!(sources = cfg.sources.len(), data_dir = %cfg.data_dir.display(), "shipd started");
        view.set_layout(layout);
        Ok(RunningPipeline {
            stop_sources,
            sources,
            stage,
            sinks: sink_tasks,
            journals,
            drain_timeout: cfg.drain_timeout,
        })
    }

    /// Stops reading, then waits for the stage and sinks to deliver what is
    /// in flight (bounded by the drain timeout; what is left is re-read from
    /// the checkpoints by the next start).
    async fn stop(self) {
        tracing::info!(drain_timeout = ?self.drain_timeout, "stopping the pipeline: stop reading, drain in-flight batches");
        self.stop_sources.cancel();
        for source in self.sources {
            if let Err(e) = source.await {
                tracing::error!(error = %e, "source task failed");
            }
        }
        let stage = self.stage;
        let sinks = self.sinks;
        let aborts: Vec<_> = std::iter::once(stage.abort_handle())
            .chain(sinks.iter().map(|s| s.abort_handle()))
            .collect();
        let drained = tokio::time::timeout(self.drain_timeout, async {
            let _ = stage.await;
            for task in sinks {
                let _ = task.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "drain timed out; undelivered events will be read again from the checkpoints or the RAM journal by the next start"
            );
            for abort in aborts {
                abort.abort();
            }
        }
        // What was not delivered stays journaled for the next start.
        for journal in &self.journals {
            journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove_dir_if_empty();
        }
    }
}

/// A sink's input as the stage sees it: its name (for taps and counters)
/// and its channel.
struct SinkInput {
    name: Arc<str>,
    tx: BatchSender<RoutedBatch>,
    events_in: telemetry::Metric,
    /// The router's count of events sent to this sink.
    routed: telemetry::Metric,
}

impl SinkInput {
    fn new(name: Arc<str>, tx: BatchSender<RoutedBatch>) -> Self {
        let events_in = telemetry::counter("shipd_events_in_total", &[("component", &name)]);
        let routed = telemetry::counter(
            "shipd_events_routed_total",
            &[("component", "router"), ("sink", &name)],
        );
        SinkInput {
            name,
            tx,
            events_in,
            routed,
        }
    }
}

/// The processing stage: the pipeline's steps, then routing.
async fn process(mut input: BatchReceiver, mut processor: Processor, sinks: Vec<SinkInput>) {
    while let Some(batch) = input.recv().await {
        let batch = batch.item;
        tap::observe(Point::Source, &batch.source, &batch.source, &batch.events);
        for (route, batch) in processor.process(batch) {
            let bytes = batch.bytes;
            let Some(sink) = sinks.get(route.sink) else {
                continue;
            };
            tap::observe(Point::Sink, &sink.name, &batch.source, &batch.events);
            sink.events_in.add(batch.len() as u64);
            sink.routed.add(batch.len() as u64);
            if sink
                .tx
                .send(
                    RoutedBatch {
                        stream: route.stream,
                        batch,
                    },
                    bytes,
                )
                .await
                .is_err()
            {
                tracing::error!(sink = %sink.name, "sink stopped; processing stage ends");
                return;
            }
        }
    }
}
