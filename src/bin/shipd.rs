//! The shipd daemon: reads its configuration, runs the agent until SIGTERM
//! or SIGINT (reloading the pipeline on SIGHUP), then drains and exits 0.

use anyhow::Context;
use clap::Parser;
use shipd::config::AgentConfig;
use shipd::control::reload::PipelineOrigin;
use shipd::pipeline::topology::Reloading;

/// Ships logs and metrics from this node to OpenObserve over OTLP.
///
/// Without options it runs the embedded default pipeline, configured by the
/// environment: SHIPD_LOG_FILES, OPENOBSERVE_URL, OPENOBSERVE_USER,
/// OPENOBSERVE_PASSWORD[_FILE], OPENOBSERVE_ORG, OPENOBSERVE_STREAM,
/// OPENOBSERVE_TRANSPORT, SHIPD_DATA_DIR, SHIPD_API_ADDR,
/// SHIPD_CONTROL_SOCKET (see README). SIGHUP reloads the pipeline.
#[derive(Parser)]
#[command(name = "shipd", version, about, long_about)]
struct Args {
    /// Run this pipeline file instead of the embedded default.
    #[arg(long, short = 'c', value_name = "FILE.ship")]
    config: Option<std::path::PathBuf>,
}

/// The embedded default pipeline.
const DEFAULT_PIPELINE: &str = include_str!("../../pipelines/default.ship");

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    shipd::logging::init(shipd::logging::LogFormat::for_stderr());
    let origin = PipelineOrigin {
        path: args.config,
        embedded: DEFAULT_PIPELINE,
    };
    let loaded = origin
        .read()
        .and_then(|src| origin.compile(&src).map(|p| (p.agent, src)));
    let (cfg, src) = match loaded {
        Ok(loaded) => loaded,
        Err(text) => {
            eprintln!("{text}shipd: not starting");
            return std::process::ExitCode::from(2);
        }
    };
    match run(cfg, origin, src) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("shipd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cfg: AgentConfig, origin: PipelineOrigin, started_with: String) -> anyhow::Result<()> {
    if !shipd::memory::keep_freed_heap() {
        tracing::debug!("the C library keeps its own heap thresholds");
    }
    let memory = shipd::memory::budgets::machine_memory();
    let budgets = shipd::memory::budgets();
    let scaled = budgets != shipd::memory::Budgets::FULL;
    tracing::info!(
        memory_mib = memory.map(|m| m >> 20),
        scaled,
        channel_bytes = budgets.channel_bytes,
        batch_max_bytes = budgets.batch_max_bytes,
        in_flight = budgets.in_flight,
        "memory budgets{}",
        if scaled {
            " (scaled down to the memory limit)"
        } else {
            ""
        }
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.spawn(shipd::memory::release_periodically());
    runtime.block_on(async {
        let reloading = Reloading {
            origin,
            started_with,
            hangups: hangups(),
        };
        shipd::pipeline::topology::run_with(cfg, shutdown_signal(), Some(reloading))
            .await
            .context("shipd cannot start")
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; falling back to Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `systemctl reload` sends SIGHUP, whose default action would kill the
/// agent: each one becomes a reload request.
fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    // A reload already queued covers this one too.
                    let _ = tx.try_send(());
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot install the SIGHUP handler"),
    }
    rx
}
