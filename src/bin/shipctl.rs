//! shipctl: the operator's command line for shipd. Thin: parses arguments
//! and calls `shipd::cli`.

use clap::{Parser, Subcommand};
use shipd::cli::tail::{Format, TailOptions};
use std::io::IsTerminal;
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
        /// An environment variable the tests see (`NAME=value`, repeatable).
        /// Tests see only these and their own `env { ... }` blocks, never
        /// the shell's environment.
        #[arg(long = "env", value_name = "NAME=value", value_parser = shipd::cli::pipeline::parse_env_var)]
        env: Vec<(String, String)>,
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
    /// Live events from a running agent: each sink's input by default, or
    /// the components named by glob (sources, steps, sinks).
    Tail {
        /// Component globs, e.g. `app` or `nginx*`.
        components: Vec<String>,
        /// Only events matching this pipeline-language condition,
        /// e.g. '.level == "error"'.
        #[arg(long = "where", value_name = "EXPR")]
        filter: Option<String>,
        /// pretty (default on a terminal), json (default otherwise), logfmt.
        #[arg(long, value_enum)]
        format: Option<TailFormat>,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
        /// At most this many events, e.g. 100/s or 600/m.
        #[arg(long, value_parser = shipd::cli::tail::parse_rate)]
        rate: Option<u32>,
        /// Follow OpenObserve instead of this agent (cluster-wide view);
        /// `--where` is then an SQL condition.
        #[arg(long)]
        openobserve: bool,
        /// With --openobserve: the stream to follow (default
        /// $OPENOBSERVE_STREAM, else `default`).
        #[arg(long, requires = "openobserve")]
        stream: Option<String>,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Components of a running agent with their counters, health, buffers
    /// and disk wear.
    Status {
        /// Refresh every 2 s (or every --interval) until Ctrl-C.
        #[arg(long)]
        watch: bool,
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// One JSON object, for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Make a running agent load its pipeline again (applied only if valid).
    Reload {
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Run SQL (or PromQL with --promql) against OpenObserve with the agent's
    /// credentials (OPENOBSERVE_URL, _ORG, _USER, _PASSWORD or _PASSWORD_FILE)
    /// and print the rows.
    Query(shipd::cli::query::QueryArgs),
    /// List OpenObserve's streams of one type (logs, metrics, traces) with
    /// their record counts, time span and size, with the agent's credentials.
    Streams(shipd::cli::query::StreamsArgs),
    /// Measure a shipd binary end to end (throughput, CPU per GB, memory,
    /// disk writes, latency) and write a table and a JSON file.
    Bench(shipd::cli::bench::BenchArgs),
    /// Print the version of shipctl and of the running agent.
    Version {
        #[command(flatten)]
        socket: SocketArg,
    },
}

/// Where the agent's control socket is.
#[derive(clap::Args)]
struct SocketArg {
    /// The agent's control socket.
    #[arg(
        long = "socket",
        env = "SHIPD_CONTROL_SOCKET",
        default_value = "/run/shipd/control.sock"
    )]
    path: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TailFormat {
    Pretty,
    Json,
    Logfmt,
}

fn main() {
    let args = Args::parse();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let code = match args.command {
        Command::Check { files } => shipd::cli::pipeline::check(&files, &mut out, &mut err),
        Command::Test { env, files } => {
            shipd::cli::pipeline::test(&files, &env, &mut out, &mut err)
        }
        Command::Fmt { check, files } => {
            shipd::cli::pipeline::fmt(&files, check, &mut out, &mut err)
        }
        Command::Explain { file } => shipd::cli::pipeline::explain(&file, &mut out, &mut err),
        Command::Health { addr, timeout } => health(&addr, timeout),
        Command::Tail {
            components,
            filter,
            format,
            limit,
            rate,
            openobserve,
            stream,
            socket,
        } => {
            if openobserve {
                let format = match format {
                    None | Some(TailFormat::Json) => shipd::cli::table::Format::Json,
                    Some(TailFormat::Pretty) => shipd::cli::table::Format::Table,
                    Some(TailFormat::Logfmt) => {
                        eprintln!("shipctl tail --openobserve: --format is json or pretty");
                        std::process::exit(2);
                    }
                };
                let args = shipd::cli::query::OpenObserveTailArgs {
                    stream,
                    condition: filter,
                    format,
                    since: Duration::from_secs(60),
                    every: Duration::from_secs(2),
                    overlap: Duration::from_secs(30),
                    limit,
                };
                shipd::cli::query::tail_openobserve_command(&args, &mut out, &mut err)
            } else {
                let tty = std::io::stdout().is_terminal();
                let format = match format {
                    Some(TailFormat::Pretty) => Format::Pretty,
                    Some(TailFormat::Json) => Format::Json,
                    Some(TailFormat::Logfmt) => Format::Logfmt,
                    None if tty => Format::Pretty,
                    None => Format::Json,
                };
                shipd::cli::tail::tail(&TailOptions {
                    socket: socket.path,
                    components,
                    filter,
                    format,
                    limit,
                    rate_per_second: rate.unwrap_or(0),
                    color: tty && std::env::var_os("NO_COLOR").is_none(),
                })
            }
        }
        Command::Query(args) => shipd::cli::query::query_command(&args, &mut out, &mut err),
        Command::Streams(args) => shipd::cli::query::streams_command(&args, &mut out, &mut err),
        Command::Bench(args) => shipd::cli::bench::run(&args, &mut out, &mut err),
        Command::Status {
            watch,
            interval,
            json,
            socket,
        } => shipd::cli::status::status(&socket.path, json, watch.then_some(interval)),
        Command::Reload { socket } => shipd::cli::agent::reload(&socket.path),
        Command::Version { socket } => shipd::cli::agent::version(&socket.path),
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
