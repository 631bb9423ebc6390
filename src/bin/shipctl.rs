//! shipctl: the operator's command line for shipd. Thin: parses arguments
//! and calls `shipd::cli`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Validate, test and format pipelines; watch and steer shipd agents.
#[derive(Parser)]
#[command(name = "shipctl", version, about, arg_required_else_help = true)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check pipeline files and print every diagnostic (exit 1 when any).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the tests inside pipeline files.
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Format pipeline files in place (canonical, comments kept).
    Fmt {
        /// Only report files that are not formatted (exit 1).
        #[arg(long)]
        check: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the compiled topology: sources, steps, routes, sinks.
    Explain { file: PathBuf },
    /// Ask a running agent for GET /health: exit 0 when healthy, 1 otherwise
    /// (for container HEALTHCHECKs; needs no curl).
    Health {
        /// The agent's API address.
        #[arg(long, env = "SHIPD_API_ADDR", default_value = "127.0.0.1:9717")]
        addr: String,
        /// Give up after this long.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Measure a shipd binary end to end (throughput, CPU per GB, memory,
    /// disk writes, latency) and write a table and a JSON file.
    Bench(shipd::cli::bench::BenchArgs),
    /// Print the version of shipctl.
    Version,
}

fn main() {
    let args = Args::parse();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let code = match args.command {
        Command::Check { files } => shipd::cli::pipeline::check(&files, &mut out, &mut err),
        Command::Test { files } => shipd::cli::pipeline::test(&files, &mut out, &mut err),
        Command::Fmt { check, files } => {
            shipd::cli::pipeline::fmt(&files, check, &mut out, &mut err)
        }
        Command::Explain { file } => shipd::cli::pipeline::explain(&file, &mut out, &mut err),
        Command::Health { addr, timeout } => health(&addr, timeout),
        Command::Bench(args) => shipd::cli::bench::run(&args, &mut out, &mut err),
        Command::Version => {
            println!("shipctl {}", env!("CARGO_PKG_VERSION"));
            0
        }
    };
    std::process::exit(code);
}

fn health(addr: &str, timeout: Duration) -> i32 {
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(shipd::control::probe::probe_health(addr, timeout))
                .map_err(|e| e.to_string())
        });
    match answer {
        Ok(answer) => {
            println!("{} {}", answer.status, answer.body);
            i32::from(!answer.healthy())
        }
        Err(e) => {
            eprintln!("shipctl health: {e}");
            1
        }
    }
}
