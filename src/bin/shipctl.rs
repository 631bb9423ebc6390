//! shipctl: the operator's command line for shipd. Subcommands (tail,
//! status, check, test, query) arrive with the control API and the
//! pipeline language.

use clap::Parser;

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
}

fn main() {
    let args = Args::parse();
    match args.command {
        Some(Command::Version) | None => println!("shipctl {}", env!("CARGO_PKG_VERSION")),
    }
}
