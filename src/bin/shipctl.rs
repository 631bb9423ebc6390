//! shipctl: the operator's command line for shipd. Thin: parses arguments
//! and calls `shipd::cli`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    };
    std::process::exit(code);
}
