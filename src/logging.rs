//! shipd's own log output through `tracing`: human-readable (with colour) when
//! stderr is a terminal, one JSON object per line otherwise (journald, files,
//! containers), levels from `RUST_LOG` (EnvFilter syntax, default `info`).
//! Owns the subscriber set-up only; never logs event data.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

impl LogFormat {
    /// Human on a terminal, JSON otherwise.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() {
            LogFormat::Human
        } else {
            LogFormat::Json
        }
    }
}

/// Installs the global subscriber writing to stderr. An unparsable
/// `RUST_LOG` falls back to `info` and says so.
pub fn init(format: LogFormat) {
    let (filter, invalid) = match EnvFilter::try_from_default_env() {
        Ok(f) => (f, None),
        Err(e) => {
            let set = std::env::var("RUST_LOG").is_ok_and(|v| !v.trim().is_empty());
            (EnvFilter::new("info"), set.then(|| e.to_string()))
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_ansi(true).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    if let Some(error) = invalid {
        tracing::warn!(%error, "RUST_LOG is not a valid filter; logging at info");
    }
}
