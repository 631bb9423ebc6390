//! Docker `json-file` logs: one JSON record per line,
//! `{"log":"text\n","stream":"stdout","time":"2026-03-01T10:00:00.123456789Z"}`.
//! Docker cuts lines longer than 16 KiB into several records whose `log` has
//! no trailing newline; [`DockerDecoder`] joins them again. The container a
//! file belongs to is described by `config.v2.json` in the same directory
//! (name, image, compose labels), read once when the file is opened.

use super::partial::Reassembly;
use super::timestamp::parse_rfc3339_nanos;
use crate::event::{Attributes, Value};
use crate::sources::file::descriptors::OpenFailure;
use crate::sources::file::{Line, Message};
use bytes::Bytes;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

#[derive(Deserialize)]
struct JsonFileRecord<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow, default)]
    stream: Cow<'a, str>,
    #[serde(borrow, default)]
    time: Cow<'a, str>,
}

/// Decodes the records of one `*-json.log` file.
#[derive(Debug)]
pub struct DockerDecoder {
    parts: Reassembly,
    last_end: u64,
}

impl DockerDecoder {
    pub fn new(max_bytes: usize) -> Self {
        DockerDecoder {
            parts: Reassembly::new(max_bytes),
            last_end: 0,
        }
    }

    /// Decodes one record; `false` (and the raw line passed on) when it is
    /// not a json-file record.
    pub fn decode(&mut self, line: Line, out: &mut Vec<Message>) -> bool {
        let Ok(record) = serde_json::from_slice::<JsonFileRecord>(&line.bytes) else {
            out.push(line.into());
            return false;
        };
        self.last_end = line.end;
        let stream = if record.stream == "stderr" {
            "stderr"
        } else {
            "stdout"
        };
        let time = parse_rfc3339_nanos(record.time.as_bytes());
        match record.log.strip_suffix('\n') {
            Some(text) => {
                let text = text.strip_suffix('\r').unwrap_or(text);
                let text = Bytes::copy_from_slice(text.as_bytes());
                out.push(self.parts.last(stream, text, line.start, line.end, time));
            }
            None => self
                .parts
                .part(stream, record.log.as_bytes(), line.start, time),
        }
        true
    }

    pub fn held_from(&self) -> Option<u64> {
        self.parts.held_from()
    }

    pub fn take_held(&mut self, out: &mut Vec<Message>) {
        self.parts.take_held(self.last_end, out);
    }
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Config", default)]
    config: ContainerConfig,
}

#[derive(Deserialize, Default)]
struct ContainerConfig {
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

/// `registry:5000/team/app:1.2@sha256:…` → `registry:5000/team/app`.
fn image_name(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => &image[..last_slash + colon],
        None => image,
    }
}

/// Reads `path`, waiting out a short shortage of file descriptors
/// (EMFILE/ENFILE: the file source holds many open) rather than losing the
/// container's names for good.
fn read_config(path: &Path) -> std::io::Result<Vec<u8>> {
    const ATTEMPTS: u32 = 20;
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(25);
    let mut attempt = 1;
    loop {
        match std::fs::read(path) {
            Err(e) if OpenFailure::of(&e) == OpenFailure::Descriptors && attempt < ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(PAUSE);
            }
            read => return read,
        }
    }
}

/// `container.id`, `container.name`, `container.image.name`,
/// `compose.project` and `service.name` (the compose service, else the
/// container name) of the container whose log is at `log_path`.
pub fn resource_attributes(log_path: &Path) -> Attributes {
    let Some(dir) = log_path.parent() else {
        return Vec::new();
    };
    let dir_id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let config_path = dir.join("config.v2.json");
    let config = match read_config(&config_path) {
        Ok(bytes) => match serde_json::from_slice::<ConfigFile>(&bytes) {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!(path = %config_path.display(), error = %e, "container config not understood; shipping without container name");
                ConfigFile::default()
            }
        },
        Err(e) if OpenFailure::of(&e) == OpenFailure::Missing => {
            tracing::debug!(path = %config_path.display(), error = %e, "no container config");
            ConfigFile::default()
        }
        Err(e) => {
            tracing::warn!(path = %config_path.display(), error = %e, "container config unreadable; shipping without container name");
            ConfigFile::default()
        }
    };
    let id = if config.id.is_empty() {
        dir_id
    } else {
        config.id
    };
    let name = config.name.trim_start_matches('/').to_owned();
    let labels = config.config.labels.unwrap_or_default();
    let mut attrs: Attributes = vec![("container.id".into(), Value::from(id))];
    if !name.is_empty() {
        attrs.push(("container.name".into(), Value::from(name.clone())));
    }
    if !config.config.image.is_empty() {
        attrs.push((
            "container.image.name".into(),
            Value::from(image_name(&config.config.image)),
        ));
    }
    if let Some(project) = labels.get("com.docker.compose.project") {
        attrs.push(("compose.project".into(), Value::from(project.clone())));
    }
    let service = labels
        .get("com.docker.compose.service")
        .cloned()
        .or((!name.is_empty()).then_some(name));
    if let Some(service) = service {
        attrs.push(("service.name".into(), Value::from(service)));
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, start: u64) -> Line {
        Line {
            bytes: Bytes::copy_from_slice(text.as_bytes()),
            start,
            end: start + text.len() as u64 + 1,
            truncated: false,
        }
    }

    #[test]
    fn records_become_messages_with_stream_and_time() {
        let mut d = DockerDecoder::new(1024);
        let mut out = Vec::new();
        assert!(d.decode(
            line(
                r#"{"log":"hello \"world\"\n","stream":"stderr","time":"2026-03-01T10:00:00.000000001Z"}"#,
                0
            ),
            &mut out
        ));
        assert_eq!(out[0].bytes, "hello \"world\"");
        assert_eq!(out[0].stream, Some("stderr"));
        assert_eq!(out[0].time_unix_nano, Some(1_772_359_200_000_000_001));
    }

    #[test]
    fn split_records_are_joined_and_held_meanwhile() {
        let mut d = DockerDecoder::new(1024);
        let mut out = Vec::new();
        let a = r#"{"log":"abc","stream":"stdout","time":"2026-03-01T10:00:00Z"}"#;
        let b = r#"{"log":"def\n","stream":"stdout","time":"2026-03-01T10:00:01Z"}"#;
        d.decode(line(a, 100), &mut out);
        assert!(out.is_empty());
        assert_eq!(d.held_from(), Some(100));
        d.decode(line(b, 100 + a.len() as u64 + 1), &mut out);
        assert_eq!(out[0].bytes, "abcdef");
        assert_eq!(out[0].start, 100);
        assert_eq!(out[0].end, 100 + (a.len() + b.len()) as u64 + 2);
        assert_eq!(
            out[0].time_unix_nano,
            parse_rfc3339_nanos(b"2026-03-01T10:00:00Z")
        );
        assert_eq!(d.held_from(), None);
    }

    #[test]
    fn a_line_that_is_not_json_passes_through_and_is_reported() {
        let mut d = DockerDecoder::new(1024);
        let mut out = Vec::new();
        assert!(!d.decode(line("not json", 0), &mut out));
        assert_eq!(out[0].bytes, "not json");
    }

    #[test]
    fn image_names_lose_tag_and_digest_but_keep_registry_port() {
        assert_eq!(image_name("nginx:1.25"), "nginx");
        assert_eq!(
            image_name("registry:5000/team/app:1.2"),
            "registry:5000/team/app"
        );
        assert_eq!(
            image_name("registry:5000/team/app"),
            "registry:5000/team/app"
        );
        assert_eq!(image_name("redis@sha256:abcd"), "redis");
    }

    #[test]
    fn container_config_names_the_compose_service() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("0123abcd");
        std::fs::create_dir(&cdir).unwrap();
        std::fs::write(
            cdir.join("config.v2.json"),
            r#"{"ID":"0123abcd","Name":"/shop-web-1","Config":{"Image":"nginx:1.25","Labels":{"com.docker.compose.project":"shop","com.docker.compose.service":"web"}}}"#,
        )
        .unwrap();
        let attrs = resource_attributes(&cdir.join("0123abcd-json.log"));
        let get = |k: &str| {
            attrs
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.as_str().map(str::to_owned))
        };
        assert_eq!(get("container.id").as_deref(), Some("0123abcd"));
        assert_eq!(get("container.name").as_deref(), Some("shop-web-1"));
        assert_eq!(get("container.image.name").as_deref(), Some("nginx"));
        assert_eq!(get("compose.project").as_deref(), Some("shop"));
        assert_eq!(get("service.name").as_deref(), Some("web"));
    }
}
