//! The agent's configuration as one typed value, and the embedded default
//! pipeline built from the environment (design §5). The pipeline language
//! will produce the same [`AgentConfig`].

use crate::sinks::batcher::BatchLimits;
use crate::sinks::openobserve::{default_grpc_url, OpenObserveConfig};
use crate::sources::file::{FileSourceConfig, ReadFrom};
use crate::sources::host_metrics::HostMetricsConfig;
use crate::sources::prometheus::PrometheusScrapeConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A source of the running agent.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    File(FileSourceConfig),
    HostMetrics(HostMetricsConfig),
    PrometheusScrape(PrometheusScrapeConfig),
}

/// The sink of the running agent.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    OpenObserve(Box<OpenObserveConfig>),
    Console { name: String },
}

/// Everything needed to run the agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub data_dir: PathBuf,
    /// `None` disables the HTTP API.
    pub api_addr: Option<SocketAddr>,
    pub checkpoint_interval: Duration,
    /// How long shutdown waits for in-flight batches.
    pub drain_timeout: Duration,
    /// Byte budget of each channel between stages.
    pub channel_bytes: usize,
    pub host_name: String,
    pub sources: Vec<SourceConfig>,
    pub sink: SinkConfig,
    /// Stream of every log event (until routes arrive with the language).
    pub stream: String,
}

/// An environment variable has a value shipd cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub reason: String,
}

/// Reads variables; a seam so tests need not touch the process environment.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn err(var: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var: var.to_owned(),
        reason: reason.into(),
    }
}

fn parsed<T: std::str::FromStr>(env: &dyn Env, var: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env.get(var) {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| err(var, format!("`{v}`: {e}"))),
        None => Ok(default),
    }
}

fn duration(env: &dyn Env, var: &str, default: Duration) -> Result<Duration, ConfigError> {
    match env.get(var) {
        Some(v) => humantime::parse_duration(v.trim()).map_err(|e| {
            err(
                var,
                format!("`{v}` is not a duration like 5s or 500ms: {e}"),
            )
        }),
        None => Ok(default),
    }
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

fn size(env: &dyn Env, var: &str, default: usize) -> Result<usize, ConfigError> {
    match env.get(var) {
        Some(v) => parse_size(&v).map_err(|e| err(var, e)),
        None => Ok(default),
    }
}

/// This machine's name: `SHIPD_HOSTNAME`, else the kernel's.
fn host_name(env: &dyn Env) -> String {
    env.get("SHIPD_HOSTNAME")
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl AgentConfig {
    /// The embedded default pipeline: files from `SHIPD_LOG_FILES`, host
    /// metrics every `SHIPD_METRICS_INTERVAL` (default 15s, `off` disables;
    /// `SHIPD_HOST_ROOT` for a host's /proc and /sys mounted elsewhere), and
    /// the Prometheus targets in `SHIPD_SCRAPE_URLS` (comma-separated), shipped
    /// to OpenObserve when `OPENOBSERVE_URL` is set, else to the console.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let mut sources = Vec::new();
        if let Some(globs) = env.get("SHIPD_LOG_FILES") {
            let include: Vec<String> = globs
                .split(',')
                .map(|g| g.trim().to_owned())
                .filter(|g| !g.is_empty())
                .collect();
            for pattern in &include {
                glob::Pattern::new(pattern)
                    .map_err(|e| err("SHIPD_LOG_FILES", format!("bad glob `{pattern}`: {e}")))?;
            }
            let mut file = FileSourceConfig::new("files", include);
            file.read_from = match env.get("SHIPD_READ_FROM").as_deref() {
                None | Some("end") => ReadFrom::End,
                Some("beginning") => ReadFrom::Beginning,
                Some(other) => {
                    return Err(err(
                        "SHIPD_READ_FROM",
                        format!("`{other}`: expected beginning or end"),
                    ))
                }
            };
            file.max_line_bytes = size(env, "SHIPD_MAX_LINE_BYTES", file.max_line_bytes)?;
            file.poll_interval = duration(env, "SHIPD_POLL_INTERVAL", file.poll_interval)?;
            file.glob_interval = duration(env, "SHIPD_GLOB_INTERVAL", file.glob_interval)?;
            sources.push(SourceConfig::File(file));
        }

        match env.get("SHIPD_METRICS_INTERVAL").as_deref().map(str::trim) {
            Some("off") => {}
            Some(_) | None => {
                let mut host = HostMetricsConfig::new("host_metrics");
                host.interval = duration(env, "SHIPD_METRICS_INTERVAL", host.interval)?;
                if host.interval.is_zero() {
                    return Err(err(
                        "SHIPD_METRICS_INTERVAL",
                        "must be above zero, or `off`",
                    ));
                }
                if let Some(root) = env.get("SHIPD_HOST_ROOT") {
                    host.root = PathBuf::from(root);
                }
                sources.push(SourceConfig::HostMetrics(host));
            }
        }
        if let Some(urls) = env.get("SHIPD_SCRAPE_URLS") {
            let mut scrape = PrometheusScrapeConfig::new(
                "prometheus",
                urls.split(',')
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty())
                    .collect(),
            );
            scrape.interval = duration(env, "SHIPD_SCRAPE_INTERVAL", scrape.interval)?;
            scrape.timeout = duration(env, "SHIPD_SCRAPE_TIMEOUT", scrape.timeout)?;
            sources.push(SourceConfig::PrometheusScrape(scrape));
        }

        let sink = match env.get("OPENOBSERVE_URL") {
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(err(
                        "OPENOBSERVE_URL",
                        format!("`{url}` must start with http:// or https://"),
                    ));
                }
                let mut o2 = OpenObserveConfig::new("openobserve", url.trim_end_matches('/'));
                o2.grpc_url = env
                    .get("OPENOBSERVE_GRPC_URL")
                    .unwrap_or_else(|| default_grpc_url(&o2.url));
                o2.org = env
                    .get("OPENOBSERVE_ORG")
                    .unwrap_or_else(|| "default".into());
                o2.user = env.get("OPENOBSERVE_USER");
                o2.password = match (
                    env.get("OPENOBSERVE_PASSWORD"),
                    env.get("OPENOBSERVE_PASSWORD_FILE"),
                ) {
                    (Some(p), _) => Some(p),
                    (None, Some(path)) => Some(
                        std::fs::read_to_string(&path)
                            .map_err(|e| {
                                err(
                                    "OPENOBSERVE_PASSWORD_FILE",
                                    format!("cannot read {path}: {e}"),
                                )
                            })?
                            .trim_end_matches(['\n', '\r'])
                            .to_owned(),
                    ),
                    (None, None) => None,
                };
                o2.transport = parsed(env, "OPENOBSERVE_TRANSPORT", o2.transport)?;
                o2.compression = parsed(env, "SHIPD_COMPRESSION", o2.compression)?;
                o2.batch = BatchLimits {
                    max_events: parsed(env, "SHIPD_BATCH_MAX_EVENTS", o2.batch.max_events)?.max(1),
                    max_bytes: size(env, "SHIPD_BATCH_MAX_BYTES", o2.batch.max_bytes)?.max(1),
                    timeout: duration(env, "SHIPD_BATCH_TIMEOUT", o2.batch.timeout)?,
                };
                o2.in_flight = parsed(env, "SHIPD_IN_FLIGHT", o2.in_flight)?.max(1);
                o2.request_timeout = duration(env, "SHIPD_REQUEST_TIMEOUT", o2.request_timeout)?;
                o2.retry.max = duration(env, "SHIPD_RETRY_MAX", o2.retry.max)?;
                o2.retry.auth = duration(env, "SHIPD_RETRY_AUTH", o2.retry.auth)?;
                SinkConfig::OpenObserve(Box::new(o2))
            }
            None => SinkConfig::Console {
                name: "console".into(),
            },
        };

        let api_addr = match env.get("SHIPD_API_ADDR").as_deref() {
            Some("off") => None,
            Some(addr) => Some(
                addr.parse()
                    .map_err(|e| err("SHIPD_API_ADDR", format!("`{addr}`: {e}")))?,
            ),
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9717))),
        };

        Ok(AgentConfig {
            data_dir: env
                .get("SHIPD_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/var/lib/shipd".into()),
            api_addr,
            checkpoint_interval: duration(
                env,
                "SHIPD_CHECKPOINT_INTERVAL",
                Duration::from_secs(5),
            )?,
            drain_timeout: duration(env, "SHIPD_DRAIN_TIMEOUT", Duration::from_secs(10))?,
            channel_bytes: size(env, "SHIPD_CHANNEL_BYTES", 4 * 1024 * 1024)?,
            host_name: host_name(env),
            sources,
            sink,
            stream: env
                .get("OPENOBSERVE_STREAM")
                .unwrap_or_else(|| "default".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::openobserve::TransportKind;

    #[test]
    fn without_openobserve_url_events_go_to_the_console() {
        let cfg =
            AgentConfig::from_env(&[("SHIPD_LOG_FILES", "/var/log/*.log, /tmp/a.log")]).unwrap();
        assert!(matches!(cfg.sink, SinkConfig::Console { .. }));
        let SourceConfig::File(file) = &cfg.sources[0] else {
            panic!("expected the file source first")
        };
        assert_eq!(file.include, vec!["/var/log/*.log", "/tmp/a.log"]);
        assert_eq!(file.read_from, ReadFrom::End);
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/shipd"));
    }

    #[test]
    fn host_metrics_run_every_15s_by_default_and_can_be_turned_off() {
        let cfg = AgentConfig::from_env(&[("SHIPD_HOSTNAME", "pi1")]).unwrap();
        let [SourceConfig::HostMetrics(host)] = cfg.sources.as_slice() else {
            panic!("expected only host metrics, got {:?}", cfg.sources)
        };
        assert_eq!(host.interval, Duration::from_secs(15));
        assert_eq!(host.root, PathBuf::from("/"));
        let cfg = AgentConfig::from_env(&[("SHIPD_METRICS_INTERVAL", "2s")]).unwrap();
        let SourceConfig::HostMetrics(host) = &cfg.sources[0] else {
            panic!("expected host metrics")
        };
        assert_eq!(host.interval, Duration::from_secs(2));
        let cfg = AgentConfig::from_env(&[("SHIPD_METRICS_INTERVAL", "off")]).unwrap();
        assert!(cfg.sources.is_empty());
        let e = AgentConfig::from_env(&[("SHIPD_METRICS_INTERVAL", "0s")]).unwrap_err();
        assert_eq!(e.var, "SHIPD_METRICS_INTERVAL");
    }

    #[test]
    fn scrape_urls_add_a_prometheus_source() {
        let cfg = AgentConfig::from_env(&[
            ("SHIPD_METRICS_INTERVAL", "off"),
            (
                "SHIPD_SCRAPE_URLS",
                "http://127.0.0.1:10249/metrics, http://127.0.0.1:9100/metrics",
            ),
            ("SHIPD_SCRAPE_TIMEOUT", "3s"),
        ])
        .unwrap();
        let SourceConfig::PrometheusScrape(scrape) = &cfg.sources[0] else {
            panic!("expected a scrape source")
        };
        assert_eq!(scrape.urls.len(), 2);
        assert_eq!(scrape.timeout, Duration::from_secs(3));
        assert!(!scrape.honor_labels);
    }

    #[test]
    fn openobserve_settings_come_from_the_environment() {
        let cfg = AgentConfig::from_env(&[
            ("OPENOBSERVE_URL", "http://pi-obs:5080/"),
            ("OPENOBSERVE_ORG", "pis"),
            ("OPENOBSERVE_USER", "root@example.com"),
            ("OPENOBSERVE_PASSWORD", "secret"),
            ("OPENOBSERVE_TRANSPORT", "grpc"),
            ("SHIPD_BATCH_TIMEOUT", "200ms"),
        ])
        .unwrap();
        let SinkConfig::OpenObserve(o2) = cfg.sink else {
            panic!("expected OpenObserve sink")
        };
        assert_eq!(o2.url, "http://pi-obs:5080");
        assert_eq!(o2.grpc_url, "http://pi-obs:5081");
        assert_eq!(o2.org, "pis");
        assert_eq!(o2.transport, TransportKind::Grpc);
        assert_eq!(o2.batch.timeout, Duration::from_millis(200));
    }

    #[test]
    fn password_file_is_read_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let path = path.to_string_lossy().into_owned();
        let cfg = AgentConfig::from_env(&[
            ("OPENOBSERVE_URL", "http://x:5080"),
            ("OPENOBSERVE_PASSWORD_FILE", path.as_str()),
        ])
        .unwrap();
        let SinkConfig::OpenObserve(o2) = cfg.sink else {
            panic!("expected OpenObserve sink")
        };
        assert_eq!(o2.password.as_deref(), Some("s3cret"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = AgentConfig::from_env(&[
            ("OPENOBSERVE_URL", "http://x"),
            ("OPENOBSERVE_TRANSPORT", "udp"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "OPENOBSERVE_TRANSPORT");
        let e = AgentConfig::from_env(&[("SHIPD_CHECKPOINT_INTERVAL", "soon")]).unwrap_err();
        assert_eq!(e.var, "SHIPD_CHECKPOINT_INTERVAL");
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert!(parse_size("3 parsecs").is_err());
    }
}
