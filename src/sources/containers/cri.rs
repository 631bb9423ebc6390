//! CRI logs (containerd, CRI-O; what K3s writes): one record per line,
//! `2026-03-01T10:00:00.123456789Z stdout F message`, where the tag `P`
//! marks a partial line continued by the next record of the same stream and
//! `F` the final part. Which container a file belongs to is in its path:
//! `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`, or the
//! link `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`.

use super::partial::Reassembly;
use super::timestamp::parse_rfc3339_nanos;
use crate::event::{Attributes, Value};
use crate::sources::file::{Line, Message};
use std::path::Path;

/// Decodes the records of one CRI log file.
#[derive(Debug)]
pub struct CriDecoder {
    parts: Reassembly,
    last_end: u64,
}

/// The fields of one record: time, stream, partial?, message start.
fn split_record(line: &[u8]) -> Option<(&[u8], &'static str, bool, usize)> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = fields.next()?;
    let stream = match fields.next()? {
        b"stdout" => "stdout",
        b"stderr" => "stderr",
        _ => return None,
    };
    let tags = fields.next()?;
    let partial = match tags.split(|b| *b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let message_start = (time.len() + stream.len() + tags.len() + 3).min(line.len());
    Some((time, stream, partial, message_start))
}

impl CriDecoder {
    pub fn new(max_bytes: usize) -> Self {
        CriDecoder {
            parts: Reassembly::new(max_bytes),
            last_end: 0,
        }
    }

    /// Decodes one record; `false` (and the raw line passed on) when it is
    /// not a CRI record.
    pub fn decode(&mut self, line: Line, out: &mut Vec<Message>) -> bool {
        let Some((time, stream, partial, message_start)) = split_record(&line.bytes) else {
            out.push(line.into());
            return false;
        };
        self.last_end = line.end;
        let time = parse_rfc3339_nanos(time);
        let message = line.bytes.slice(message_start..);
        if partial {
            self.parts.part(stream, &message, line.start, time);
        } else {
            out.push(self.parts.last(stream, message, line.start, line.end, time));
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

fn file_name(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()
}

/// `<pod>_<namespace>_<container>-<64 hex id>.log`
fn from_containers_link(path: &Path) -> Option<Attributes> {
    let stem = file_name(path)?.strip_suffix(".log")?;
    let mut parts = stem.splitn(3, '_');
    let (pod, namespace, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let (container, id) = rest.rsplit_once('-')?;
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || pod.is_empty() {
        return None;
    }
    Some(vec![
        ("k8s.namespace.name".into(), Value::from(namespace)),
        ("k8s.pod.name".into(), Value::from(pod)),
        ("k8s.container.name".into(), Value::from(container)),
        ("container.id".into(), Value::from(id)),
        ("service.name".into(), Value::from(container)),
    ])
}

/// `<namespace>_<pod>_<uid>/<container>/<restart>.log`
fn from_pods_dir(path: &Path) -> Option<Attributes> {
    let restart = file_name(path)?.strip_suffix(".log")?;
    let container_dir = path.parent()?;
    let container = file_name(container_dir)?;
    let pod_dir = file_name(container_dir.parent()?)?;
    let mut parts = pod_dir.splitn(3, '_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if namespace.is_empty() || pod.is_empty() || uid.is_empty() {
        return None;
    }
    let mut attrs: Attributes = vec![
        ("k8s.namespace.name".into(), Value::from(namespace)),
        ("k8s.pod.name".into(), Value::from(pod)),
        ("k8s.pod.uid".into(), Value::from(uid)),
        ("k8s.container.name".into(), Value::from(container)),
        ("service.name".into(), Value::from(container)),
    ];
    if let Ok(n) = restart.parse::<i64>() {
        attrs.push(("k8s.container.restart_count".into(), Value::from(n)));
    }
    Some(attrs)
}

/// Kubernetes attributes of the container whose log is at `path`, from
/// either layout; empty for paths in neither.
pub fn resource_attributes(path: &Path) -> Attributes {
    from_containers_link(path)
        .or_else(|| from_pods_dir(path))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn line(text: &str, start: u64) -> Line {
        Line {
            bytes: Bytes::copy_from_slice(text.as_bytes()),
            start,
            end: start + text.len() as u64 + 1,
            truncated: false,
        }
    }

    #[test]
    fn partial_records_are_joined_per_stream() {
        let mut d = CriDecoder::new(1024);
        let mut out = Vec::new();
        let records = [
            "2026-03-01T10:00:00.1Z stdout P hello ",
            "2026-03-01T10:00:00.2Z stderr F an error",
            "2026-03-01T10:00:00.3Z stdout F world",
            "2026-03-01T10:00:00.4Z stdout F",
        ];
        let mut offset = 0;
        for r in records {
            d.decode(line(r, offset), &mut out);
            offset += r.len() as u64 + 1;
        }
        let bodies: Vec<_> = out.iter().map(|m| (m.stream, m.bytes.clone())).collect();
        assert_eq!(
            bodies,
            vec![
                (Some("stderr"), Bytes::from("an error")),
                (Some("stdout"), Bytes::from("hello world")),
                (Some("stdout"), Bytes::from("")),
            ]
        );
        assert_eq!(out[1].start, 0, "the joined line starts at its first part");
        assert_eq!(
            out[1].time_unix_nano,
            parse_rfc3339_nanos(b"2026-03-01T10:00:00.1Z")
        );
    }

    #[test]
    fn a_line_that_is_not_cri_passes_through() {
        let mut d = CriDecoder::new(1024);
        let mut out = Vec::new();
        assert!(!d.decode(line("plain text here", 0), &mut out));
        assert_eq!(out[0].bytes, "plain text here");
    }

    #[test]
    fn both_path_layouts_name_namespace_pod_and_container() {
        let get = |attrs: &Attributes, k: &str| {
            attrs
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.as_str().map(str::to_owned))
        };
        let pods = resource_attributes(Path::new(
            "/var/log/pods/kube-system_coredns-7b98449c4-x2x9z_5d1f0a34-1b1c-4a3e-9f55-0c4f1a2b3c4d/coredns/0.log",
        ));
        assert_eq!(
            get(&pods, "k8s.namespace.name").as_deref(),
            Some("kube-system")
        );
        assert_eq!(
            get(&pods, "k8s.pod.name").as_deref(),
            Some("coredns-7b98449c4-x2x9z")
        );
        assert_eq!(get(&pods, "k8s.container.name").as_deref(), Some("coredns"));
        let id = "a".repeat(64);
        let link = resource_attributes(Path::new(&format!(
            "/var/log/containers/coredns-7b98449c4-x2x9z_kube-system_coredns-{id}.log"
        )));
        assert_eq!(
            get(&link, "k8s.namespace.name").as_deref(),
            Some("kube-system")
        );
        assert_eq!(
            get(&link, "k8s.pod.name").as_deref(),
            Some("coredns-7b98449c4-x2x9z")
        );
        assert_eq!(get(&link, "k8s.container.name").as_deref(), Some("coredns"));
        assert_eq!(get(&link, "container.id"), Some(id));
    }
}
