//! `shipctl bench`: the end-to-end harness. It generates realistic workloads
//! ([`workload`]), runs a real `shipd` binary ([`process`]) against an
//! in-process OTLP/HTTP receiver that counts and discards ([`receiver`]),
//! drives each scenario ([`scenarios`]) and reports rates, CPU per GB,
//! memory, disk writes and latency as a table and JSON ([`report`]).
//! It measures only; it never changes the agent's configuration defaults.

pub mod process;
pub mod receiver;
pub mod report;
pub mod scenarios;
pub mod workload;

use report::Report;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `shipctl bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The shipd binary to measure (default: the shipd next to shipctl).
    #[arg(long)]
    pub shipd: Option<PathBuf>,
    /// Run only these scenarios (repeatable): raw, nginx, json, files2000,
    /// journald, idle, burst.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Length of the timed scenarios (files2000 60s, idle 60s, burst 30s by default).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Size of the raw and nginx backlogs in MB (the journal gets a quarter).
    #[arg(long, default_value_t = 200)]
    pub mb: u64,
    /// Body compression of the sink (gzip, zstd or none).
    #[arg(long, default_value = "gzip")]
    pub compression: String,
    /// An option added to the sink of the generated pipelines, as written
    /// in a `.ship` file (repeatable), e.g. `in_flight = 2` or
    /// `batch = { max_bytes: 512KiB }`: to weigh a budget against speed.
    #[arg(long = "sink-option", value_name = "OPTION")]
    pub sink_options: Vec<String>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench-e2e.json")]
    pub json: PathBuf,
    /// A previous JSON result to compare with.
    #[arg(long, value_name = "OLD.json")]
    pub compare: Option<PathBuf>,
    /// Keep the work directory (workloads, pipelines, agent logs).
    #[arg(long)]
    pub keep: bool,
}

/// What every scenario needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    pub shipd: PathBuf,
    pub duration: Option<Duration>,
    pub mb: u64,
    pub compression: String,
    /// Extra options of the generated pipelines' sink.
    pub sink_options: Vec<String>,
}

/// Why a scenario or the whole run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("unknown scenario `{0}` (expected one of {all})", all = scenarios::ALL.join(", "))]
    UnknownScenario(String),
    #[error("{0} is not installed")]
    Missing(&'static str),
    #[error("a workload writer panicked")]
    Writer,
    #[error("{0}")]
    Failed(String),
    #[error("cannot read the comparison file: {0}")]
    Compare(String),
}

/// Runs the bench; returns the process exit code.
pub fn run(args: &BenchArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match run_inner(args, out, err) {
        Ok(failed) => i32::from(failed),
        Err(e) => {
            let _ = writeln!(err, "shipctl bench: {e}");
            2
        }
    }
}

/// `Ok(true)` when some scenario failed.
fn run_inner(
    args: &BenchArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool, BenchError> {
    let shipd = match &args.shipd {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("shipd"),
    };
    if !shipd.exists() {
        return Err(BenchError::Failed(format!(
            "no shipd at {} (build it: cargo build --profile bench --bins, or pass --shipd)",
            shipd.display()
        )));
    }
    if !["gzip", "zstd", "none"].contains(&args.compression.as_str()) {
        return Err(BenchError::Failed(format!(
            "unknown compression `{}`",
            args.compression
        )));
    }
    let names: Vec<String> = if args.scenarios.is_empty() {
        scenarios::ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.scenarios.clone()
    };
    if let Some(bad) = names.iter().find(|n| !scenarios::ALL.contains(&n.as_str())) {
        return Err(BenchError::UnknownScenario(bad.clone()));
    }
    let old = args.compare.as_deref().map(read_report).transpose()?;
    let settings = Settings {
        shipd: shipd.clone(),
        duration: args.duration,
        mb: args.mb,
        compression: args.compression.clone(),
        sink_options: args.sink_options.clone(),
    };
    let work = std::env::temp_dir().join(format!("shipd-bench-{}", std::process::id()));
    let mut report = Report {
        shipd: shipd.display().to_string(),
        cpu_model: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_before: load_average(),
        started_unix: crate::event::unix_nanos(std::time::SystemTime::now()) / 1_000_000_000,
        scenarios: Vec::new(),
    };
    let mut failed = false;
    for name in &names {
        let dir = work.join(name);
        let _ = writeln!(err, "bench: running {name} …");
        match scenarios::run(name, &settings, &dir) {
            Ok(result) => report.scenarios.push(result),
            Err(e) => {
                failed = true;
                let _ = writeln!(
                    err,
                    "bench: scenario {name} failed: {e} (agent log: {})",
                    dir.join("shipd.log").display()
                );
            }
        }
        if !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    report.write_table(out)?;
    if let Some(old) = &old {
        report.write_comparison(old, out)?;
    }
    if let Some(parent) = args.json.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| BenchError::Failed(e.to_string()))?;
    std::fs::write(&args.json, json)?;
    writeln!(out, "results written to {}", args.json.display())?;
    Ok(failed)
}

fn read_report(path: &Path) -> Result<Report, BenchError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BenchError::Compare(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| BenchError::Compare(format!("{}: {e}", path.display())))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
