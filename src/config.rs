//! The agent's configuration as one typed value, and the embedded default
//! pipeline built from the environment (design §5). The pipeline language
//! will produce the same [`AgentConfig`].

use crate::sinks::batcher::BatchLimits;
use crate::sinks::openobserve::{default_grpc_url, OpenObserveConfig};
use crate::sources::containers;
use crate::sources::file::{FileSourceConfig, MultilineConfig, MultilineMode, ReadFrom};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A source of the running agent.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    File(FileSourceConfig),
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

/// `on`/`off` (also `true`/`false`, `1`/`0`).
fn switch(env: &dyn Env, var: &str, default: bool) -> Result<bool, ConfigError> {
    match env.get(var).as_deref().map(str::trim) {
        None => Ok(default),
        Some("on" | "true" | "1" | "yes") => Ok(true),
        Some("off" | "false" | "0" | "no") => Ok(false),
        Some(other) => Err(err(var, format!("`{other}`: expected on or off"))),
    }
}

/// Comma-separated globs, each checked.
fn globs_var(env: &dyn Env, var: &str) -> Result<Vec<String>, ConfigError> {
    let globs: Vec<String> = env
        .get(var)
        .unwrap_or_default()
        .split(',')
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .collect();
    for pattern in &globs {
        glob::Pattern::new(pattern).map_err(|e| err(var, format!("bad glob `{pattern}`: {e}")))?;
    }
    Ok(globs)
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
    /// The embedded default pipeline: files from `SHIPD_LOG_FILES` shipped
    /// to OpenObserve when `OPENOBSERVE_URL` is set, else to the console.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let mut sources = Vec::new();
        let read_from = match env.get("SHIPD_READ_FROM").as_deref() {
            None | Some("end") => ReadFrom::End,
            Some("beginning") => ReadFrom::Beginning,
            Some(other) => {
                return Err(err(
                    "SHIPD_READ_FROM",
                    format!("`{other}`: expected beginning or end"),
                ))
            }
        };
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
            file.exclude = globs_var(env, "SHIPD_LOG_EXCLUDE")?;
            file.read_compressed = switch(env, "SHIPD_READ_COMPRESSED", false)?;
            if let Some(pattern) = env.get("SHIPD_MULTILINE_START") {
                let re = regex::bytes::RegexBuilder::new(&pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| err("SHIPD_MULTILINE_START", e.to_string()))?;
                let mut multiline = MultilineConfig::new(MultilineMode::Start(re));
                multiline.timeout = duration(env, "SHIPD_MULTILINE_TIMEOUT", multiline.timeout)?;
                file.multiline = Some(multiline);
            }
            sources.push(SourceConfig::File(file));
        }
        if switch(env, "SHIPD_DOCKER_LOGS", false)? {
            let dir = env
                .get("SHIPD_DOCKER_DIR")
                .unwrap_or_else(|| "/var/lib/docker/containers".into());
            sources.push(SourceConfig::File(containers::docker_source(
                "docker",
                std::path::Path::new(&dir),
            )));
        }
        if switch(env, "SHIPD_CRI_LOGS", false)? {
            let dir = env
                .get("SHIPD_CRI_DIR")
                .unwrap_or_else(|| "/var/log/pods".into());
            sources.push(SourceConfig::File(containers::cri_source(
                "kubernetes",
                std::path::Path::new(&dir),
            )));
        }
        for source in &mut sources {
            let SourceConfig::File(file) = source;
            file.read_from = read_from;
            file.max_line_bytes = size(env, "SHIPD_MAX_LINE_BYTES", file.max_line_bytes)?;
            file.poll_interval = duration(env, "SHIPD_POLL_INTERVAL", file.poll_interval)?;
            file.glob_interval = duration(env, "SHIPD_GLOB_INTERVAL", file.glob_interval)?;
            file.rotate_wait = duration(env, "SHIPD_ROTATE_WAIT", file.rotate_wait)?;
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
        let SourceConfig::File(file) = &cfg.sources[0];
        assert_eq!(file.include, vec!["/var/log/*.log", "/tmp/a.log"]);
        assert_eq!(file.read_from, ReadFrom::End);
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/shipd"));
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
    fn docker_and_cri_logs_are_file_sources_with_their_format() {
        let cfg = AgentConfig::from_env(&[
            ("SHIPD_DOCKER_LOGS", "on"),
            ("SHIPD_CRI_LOGS", "on"),
            ("SHIPD_CRI_DIR", "/srv/pods"),
            ("SHIPD_READ_FROM", "beginning"),
        ])
        .unwrap();
        let files: Vec<&FileSourceConfig> = cfg
            .sources
            .iter()
            .map(|s| match s {
                SourceConfig::File(f) => f,
            })
            .collect();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].include,
            vec!["/var/lib/docker/containers/*/*-json.log"]
        );
        assert_eq!(files[0].format, crate::sources::file::LogFormat::Docker);
        assert_eq!(files[1].include, vec!["/srv/pods/*/*/*.log"]);
        assert_eq!(files[1].format, crate::sources::file::LogFormat::Cri);
        assert!(files.iter().all(|f| f.read_from == ReadFrom::Beginning));
    }

    #[test]
    fn file_options_come_from_the_environment() {
        let cfg = AgentConfig::from_env(&[
            ("SHIPD_LOG_FILES", "/var/log/app/*"),
            ("SHIPD_LOG_EXCLUDE", "*.gz, /var/log/app/debug*"),
            ("SHIPD_READ_COMPRESSED", "on"),
            ("SHIPD_MULTILINE_START", r"^\S"),
            ("SHIPD_ROTATE_WAIT", "5s"),
        ])
        .unwrap();
        let SourceConfig::File(file) = &cfg.sources[0];
        assert_eq!(file.exclude, vec!["*.gz", "/var/log/app/debug*"]);
        assert!(file.read_compressed);
        assert!(file.multiline.is_some());
        assert_eq!(file.rotate_wait, Duration::from_secs(5));
        let e = AgentConfig::from_env(&[("SHIPD_LOG_FILES", "/x"), ("SHIPD_MULTILINE_START", "(")])
            .unwrap_err();
        assert_eq!(e.var, "SHIPD_MULTILINE_START");
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
