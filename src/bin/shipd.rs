//! The shipd daemon: reads its configuration, runs the agent until SIGTERM
//! or SIGINT, then drains and exits 0.

use anyhow::Context;
use clap::Parser;
use shipd::config::AgentConfig;

/// Ships logs and metrics from this node to OpenObserve over OTLP.
///
/// Without options it runs the embedded default pipeline, configured by the
/// environment: SHIPD_LOG_FILES, OPENOBSERVE_URL, OPENOBSERVE_USER,
/// OPENOBSERVE_PASSWORD[_FILE], OPENOBSERVE_ORG, OPENOBSERVE_STREAM,
/// OPENOBSERVE_TRANSPORT, SHIPD_DATA_DIR, SHIPD_API_ADDR (see README).
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
    let cfg = match load(args.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(text) => {
            eprint!("{text}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(cfg) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("shipd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Compiles the pipeline; `Err` is the rendered diagnostics.
fn load(path: Option<&std::path::Path>) -> Result<AgentConfig, String> {
    let (name, src) = match path {
        Some(p) => {
            let src = std::fs::read_to_string(p)
                .map_err(|e| format!("shipd: cannot read {}: {e}\n", p.display()))?;
            (p.display().to_string(), src)
        }
        None => (
            "<embedded default.ship>".to_owned(),
            DEFAULT_PIPELINE.to_owned(),
        ),
    };
    shipd::lang::load(&src).map(|p| p.agent).map_err(|d| {
        format!(
            "{}shipd: {name}: {} error(s); not starting\n",
            shipd::lang::render(&name, &src, &d),
            d.len()
        )
    })
}

fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        tokio::spawn(log_reload_requests());
        shipd::pipeline::topology::run(cfg, shutdown_signal())
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
/// agent: answer it instead. Reloading arrives with the pipeline language.
async fn log_reload_requests() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            while hup.recv().await.is_some() {
                tracing::warn!("reload requested; not yet supported");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot install the SIGHUP handler"),
    }
}
