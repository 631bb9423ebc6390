//! The agent's configuration as one typed value: what the pipeline language
//! ([`crate::lang::program`]) produces and the topology runs.

use crate::pipeline::processor::Processor;
use crate::sinks::openobserve::OpenObserveConfig;
use crate::sources::exec::ExecConfig;
use crate::sources::file::FileSourceConfig;
use crate::sources::forward::ForwardSourceConfig;
use crate::sources::host_metrics::HostMetricsConfig;
use crate::sources::journald::JournaldSourceConfig;
use crate::sources::log_metrics::LogMetricsConfig;
use crate::sources::otlp::OtlpReceiverConfig;
use crate::sources::prometheus::PrometheusScrapeConfig;
use crate::sources::syslog::SyslogSourceConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A source of the running agent.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    File(FileSourceConfig),
    Journald(JournaldSourceConfig),
    HostMetrics(HostMetricsConfig),
    PrometheusScrape(PrometheusScrapeConfig),
    Otlp(OtlpReceiverConfig),
    Exec(ExecConfig),
    Forward(ForwardSourceConfig),
    Syslog(SyslogSourceConfig),
    LogMetrics(LogMetricsConfig),
}

impl SourceConfig {
    /// The source's name in the pipeline.
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::File(c) => &c.name,
            SourceConfig::Journald(c) => &c.name,
            SourceConfig::HostMetrics(c) => &c.name,
            SourceConfig::PrometheusScrape(c) => &c.name,
            SourceConfig::Otlp(c) => &c.name,
            SourceConfig::Exec(c) => &c.name,
            SourceConfig::Forward(c) => &c.name,
            SourceConfig::Syslog(c) => &c.name,
            SourceConfig::LogMetrics(c) => &c.name,
        }
    }
}

/// A sink of the running agent.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    OpenObserve(Box<OpenObserveConfig>),
    Otlp(Box<crate::sinks::otlp::OtlpSinkConfig>),
    Elasticsearch(Box<crate::sinks::elasticsearch::ElasticsearchConfig>),
    Console { name: String },
}

/// Everything needed to run the agent.
#[derive(Debug)]
pub struct AgentConfig {
    pub data_dir: PathBuf,
    /// RAM-backed directory journaling in-flight data no source can re-read
    /// (see [`crate::buffer::journal`]); `None` turns the journal off.
    pub runtime_dir: Option<PathBuf>,
    /// `None` disables the HTTP API.
    pub api_addr: Option<SocketAddr>,
    /// The control socket (tap, status, reload); `None` disables it.
    pub control_socket: Option<PathBuf>,
    /// The longest a delivered position waits before it is saved (to the
    /// RAM copy, see [`crate::pipeline::checkpoint`]): every acknowledgement
    /// wakes the writer, and writes coalesce to one per interval.
    pub checkpoint_interval: Duration,
    /// How often the checkpoint copy on disk is brought up to date.
    pub checkpoint_disk_interval: Duration,
    /// How long shutdown waits for in-flight batches.
    pub drain_timeout: Duration,
    /// Byte budget of each channel between stages.
    pub channel_bytes: usize,
    pub host_name: String,
    pub sources: Vec<SourceConfig>,
    /// Sinks by index; routes name them by index.
    pub sinks: Vec<SinkConfig>,
    /// Compiled steps and routes.
    pub processor: Processor,
}

/// Parses `1048576`, `512KiB`, `1MiB`, `1MB`, `2GiB`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 512KiB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1024,
        "KB" | "kB" => 1000,
        "MiB" | "M" => 1024 * 1024,
        "MB" => 1_000_000,
        "GiB" | "G" => 1024 * 1024 * 1024,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit `{other}` in `{text}`")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert!(parse_size("3 parsecs").is_err());
    }
}
