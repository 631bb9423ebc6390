//! Sources: where events come from. Each source runs as its own task (or
//! thread, for blocking file I/O) and sends [`EventBatch`](crate::event::EventBatch)es
//! into the pipeline channel, waiting when it is full.

pub mod connection_limit;
pub mod containers;
pub mod exec;
pub mod file;
pub mod forward;
pub mod host_metrics;
pub mod journald;
pub mod log_metrics;
pub mod otlp;
pub mod prometheus;
pub mod syslog;
