//! Wiring: builds the running agent from an [`AgentConfig`] — sources, the
//! processing stage, the router and sinks as tasks joined by byte-bounded
//! channels — and shuts it down in order: stop reading, drain, final checkpoint.

use super::channel::{batch_channel, BatchReceiver, BatchSender};
use super::checkpoint::{CheckpointError, Checkpointer};
use super::processor::Processor;
use crate::config::{AgentConfig, SinkConfig, SourceConfig};
use crate::sinks::openobserve::{OpenObserveError, OpenObserveSink};
use crate::sinks::{console, RoutedBatch};
use crate::sources::file::{FileSource, SourceContext};
use crate::sources::host_metrics::HostMetricsSource;
use crate::sources::journald::JournaldSource;
use crate::sources::otlp::{OtlpReceiverError, OtlpReceiverSource};
use crate::sources::prometheus::scrape::ScrapeConfigError;
use crate::sources::prometheus::PrometheusScrapeSource;
use crate::telemetry;
use std::future::Future;
use std::sync::Arc;
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
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Sink(#[from] OpenObserveError),
    #[error(transparent)]
    Scrape(#[from] ScrapeConfigError),
    #[error(transparent)]
    Otlp(#[from] OtlpReceiverError),
    #[error("cannot bind the API on {addr}: {source}")]
    Api {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs the agent until `shutdown` resolves, then drains and returns.
pub async fn run(cfg: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| StartError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let checkpointer = Checkpointer::open(&cfg.data_dir, cfg.checkpoint_interval)?;
    let cfg = cfg;
    let stop_sources = CancellationToken::new();
    let stop_background = CancellationToken::new();

    let api = match cfg.api_addr {
        Some(addr) => Some(
            crate::control::api::serve(addr, stop_background.clone())
                .await
                .map_err(|source| StartError::Api { addr, source })?,
        ),
        None => None,
    };

    let mut sink_txs = Vec::new();
    let mut sink_tasks = Vec::new();
    for sink in &cfg.sinks {
        let (tx, rx) = batch_channel::<RoutedBatch>(cfg.channel_bytes);
        sink_txs.push(tx);
        sink_tasks.push(match sink {
            SinkConfig::OpenObserve(o2) => {
                let sink = OpenObserveSink::new((**o2).clone())?;
                tracing::info!(sink = %o2.name, url = %o2.url, transport = ?o2.transport, compression = ?o2.compression, "shipping to OpenObserve");
                tokio::spawn(sink.run(rx))
            }
            SinkConfig::Console { name } => tokio::spawn(console::run(name.clone(), rx)),
        });
    }

    let (events_tx, events_rx) = batch_channel(cfg.channel_bytes);
    let stage = tokio::spawn(process(events_rx, cfg.processor, sink_txs));

    let mut sources = Vec::new();
    for source in &cfg.sources {
        let ctx = SourceContext {
            out: events_tx.clone(),
            checkpointer: Arc::clone(&checkpointer),
            cancel: stop_sources.clone(),
            host_name: cfg.host_name.clone(),
        };
        match source {
            SourceConfig::File(file) => sources.push(FileSource::new(file.clone(), ctx).spawn()),
            SourceConfig::Journald(journald) => {
                sources.push(JournaldSource::new(journald.clone(), ctx).spawn())
            }
            SourceConfig::HostMetrics(host) => {
                sources.push(HostMetricsSource::new(host.clone(), ctx).spawn())
            }
            SourceConfig::PrometheusScrape(scrape) => {
                sources.push(PrometheusScrapeSource::new(scrape.clone(), ctx).spawn()?)
            }
            SourceConfig::Otlp(otlp) => {
                sources.push(OtlpReceiverSource::bind(otlp.clone(), ctx)?.spawn())
            }
        }
    }
    drop(events_tx);
    if cfg.sources.is_empty() {
        tracing::warn!("no sources configured (set SHIPD_LOG_FILES); idling");
    }
    let checkpoints = tokio::spawn(Arc::clone(&checkpointer).run(stop_background.clone()));
    tracing::info!(sources = cfg.sources.len(), data_dir = %cfg.data_dir.display(), "shipd started");
    crate::control::systemd::ready();
    let _watchdog = crate::control::systemd::spawn_watchdog(stop_background.clone());

    shutdown.await;
    crate::control::systemd::stopping();
    tracing::info!(drain_timeout = ?cfg.drain_timeout, "shutting down: stop reading, drain in-flight batches");
    stop_sources.cancel();
    for source in sources {
        if let Err(e) = source.await {
            tracing::error!(error = %e, "source task failed");
        }
    }
    let drained = tokio::time::timeout(cfg.drain_timeout, async {
        let _ = stage.await;
        for task in sink_tasks {
            let _ = task.await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("drain timed out; undelivered events will be re-read on the next start");
    }
    stop_background.cancel();
    if let Err(e) = checkpoints.await {
        tracing::error!(error = %e, "checkpointer task failed");
    }
    if let Some(api) = api {
        let _ = api.await;
    }
    tracing::info!(
        disk_bytes_written =
            telemetry::value("shipd_disk_bytes_written_total", "kind=\"checkpoint\"").unwrap_or(0),
        "shipd stopped"
    );
    Ok(())
}

/// The processing stage: the pipeline's steps, then routing.
async fn process(
    mut input: BatchReceiver,
    mut processor: Processor,
    sinks: Vec<BatchSender<RoutedBatch>>,
) {
    while let Some(batch) = input.recv().await {
        for (route, batch) in processor.process(batch.item) {
            let bytes = batch.bytes;
            let Some(sink) = sinks.get(route.sink) else {
                continue;
            };
            if sink
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
                tracing::error!(sink = route.sink, "sink stopped; processing stage ends");
                return;
            }
        }
    }
}
