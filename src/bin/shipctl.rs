//! shipctl: the operator's command line for shipd. Subcommands (tail,
//! status, check, test, query) arrive with the control API and the
//! pipeline language.

use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

/// Watch and steer shipd agents, validate pipelines, query OpenObserve.
#[derive(Parser)]
#[command(name = "shipctl", version, about, arg_required_else_help = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print the version of shipctl.
    Version,
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Some(Command::Health { addr, timeout }) => health(&addr, timeout),
        Some(Command::Version) | None => {
            println!("shipctl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

fn health(addr: &str, timeout: Duration) -> ExitCode {
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
            if answer.healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("shipctl health: {e}");
            ExitCode::FAILURE
        }
    }
}
