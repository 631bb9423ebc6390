//! shipd: a small log and metrics shipper for Raspberry Pi clusters.
//!
//! Data flows one way and acknowledgements flow back:
//!
//! ```text
//! sources ──► pipeline stage ──► router ──► sink (per-stream batcher ──► OTLP encoder ──► HTTP / gRPC)
//!  files        (transforms)     by stream
//!    ▲                                                                         │
//!    └──── checkpoints advance only past acknowledged events ◄── acks ◄────────┘
//! ```
//!
//! - [`event`]: log records, metric points, values, resources.
//! - [`sources`]: where events come from ([`sources::file`],
//!   [`sources::host_metrics`], [`sources::prometheus`], [`sources::syslog`],
//!   and [`sources::log_metrics`]: metrics the steps record from events,
//!   shipped back into the pipeline every interval).
//! - [`pipeline`]: byte-bounded channels, acknowledgements, checkpoints,
//!   routing and the wiring ([`pipeline::topology`]).
//! - [`buffer`]: per-sink spill of non-replayable data to disk, only when
//!   the sink's memory queue is full.
//! - [`sinks`]: OTLP over HTTP or gRPC to any receiver (OpenObserve is
//!   this sink with its defaults), Elasticsearch `_bulk`, and the console.
//! - [`control`]: health, the HTTP API and the control socket (taps, status,
//!   reload); [`telemetry`]: internal counters.
//! - [`logging`]: shipd's own log lines (human on a TTY, JSON otherwise).
//! - [`response_body`]: every read of a peer's HTTP answer, capped.
//! - [`cli`]: `shipctl` subcommands.
//! - [`lang`]: the pipeline language (`.ship` files): lex, parse, compile, eval.
//! - [`config`]: the typed agent configuration and the default pipeline.

pub mod buffer;
pub mod cli;
pub mod config;
pub mod control;
pub mod credentials;
pub mod event;
pub mod fs_kind;
pub mod lang;
pub mod logging;
pub mod memory;
pub mod pipeline;
pub mod response_body;
pub mod sinks;
pub mod sources;
pub mod telemetry;
pub mod tls;
