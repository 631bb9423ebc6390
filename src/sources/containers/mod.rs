//! Container logs, riding on the file tailer: each runtime's on-disk format
//! is a [`LogFormat`](crate::sources::file::LogFormat) of the file source,
//! and each runtime's file layout tells which container a file belongs to.
//!
//! - [`docker`]: `json-file` logs under `/var/lib/docker/containers/*/`,
//!   enriched from the container's `config.v2.json`.
//! - [`cri`]: containerd / CRI-O logs under `/var/log/pods` and
//!   `/var/log/containers` (K3s, Kubernetes), described by their path.
//!
//! Both reassemble lines the runtime split into partial records
//! ([`partial`]) and take event times from the records ([`timestamp`]).
//! Nothing here tails files; the file source does.

pub mod cri;
pub mod docker;
mod partial;
pub mod timestamp;

use crate::event::Attributes;
use crate::sources::file::{FileSourceConfig, LogFormat};
use std::path::Path;

/// Resource attributes that describe the container a log file belongs to
/// (empty for plain files or unrecognised layouts).
pub fn resource_attributes(format: LogFormat, path: &Path) -> Attributes {
    match format {
        LogFormat::Plain => Vec::new(),
        LogFormat::Docker => docker::resource_attributes(path),
        LogFormat::Cri => cri::resource_attributes(path),
    }
}

/// A file source reading docker `json-file` logs under `containers_dir`
/// (normally `/var/lib/docker/containers`).
pub fn docker_source(name: &str, containers_dir: &Path) -> FileSourceConfig {
    let glob = containers_dir.join("*").join("*-json.log");
    let mut cfg = FileSourceConfig::new(name, vec![glob.display().to_string()]);
    cfg.format = LogFormat::Docker;
    cfg
}

/// A file source reading CRI logs under `pods_dir` (normally `/var/log/pods`,
/// the files `/var/log/containers/*.log` link to).
pub fn cri_source(name: &str, pods_dir: &Path) -> FileSourceConfig {
    let glob = pods_dir.join("*").join("*").join("*.log");
    let mut cfg = FileSourceConfig::new(name, vec![glob.display().to_string()]);
    cfg.format = LogFormat::Cri;
    cfg
}
