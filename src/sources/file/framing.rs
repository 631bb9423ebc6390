//! The framing of one file's lines into events: decoder (plain, docker,
//! CRI) → multiline [`Aggregator`] → one [`LogRecord`] per message. The
//! tailed file runs it on what it reads; [`frame_text`] runs it on a whole
//! text at once, flushing what is held at the end, which is how
//! `shipctl test` feeds a test's `input SOURCE lines [...]` through the very
//! framing the source uses. It never reads files and counts nothing itself:
//! callers count what it reports.

use super::decode::{Decoder, Message};
use super::lines::{Line, LineSplitter};
use super::multiline::Aggregator;
use super::FileSourceConfig;
use crate::event::{LogRecord, Resource, Value};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// Decodes `lines` and joins multiline events; with `at_end`, everything
/// held (partial container lines, the last multiline event) is emitted too.
/// Returns the messages and how many lines were not in the source's format
/// (those are passed on as they are).
pub fn frame_lines(
    decoder: &mut Decoder,
    multiline: Option<&mut Aggregator>,
    lines: Vec<Line>,
    at_end: bool,
) -> (Vec<Message>, u64) {
    let mut messages = Vec::with_capacity(lines.len());
    let mut undecodable = 0;
    for line in lines {
        if !decoder.decode(line, &mut messages) {
            undecodable += 1;
        }
    }
    if at_end {
        decoder.take_held(&mut messages);
    }
    let Some(agg) = multiline else {
        return (messages, undecodable);
    };
    let now = Instant::now();
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        agg.push(m, now, &mut out);
    }
    if at_end {
        out.extend(agg.take());
    }
    (out, undecodable)
}

/// The events a file source configured as `cfg` makes of `text` (a whole
/// file's content): split into lines, decoded, joined, held lines flushed.
/// Empty messages are left out, as the source leaves them out.
pub fn frame_text(cfg: &FileSourceConfig, text: Bytes) -> (Vec<LogRecord>, u64) {
    let mut splitter = LineSplitter::new(cfg.max_line_bytes, 0);
    let mut decoder = Decoder::new(cfg.format, cfg.max_line_bytes);
    let mut multiline = cfg.multiline.clone().map(Aggregator::new);
    let mut lines = Vec::new();
    splitter.push(text, &mut lines);
    lines.extend(splitter.finish());
    let (messages, undecodable) = frame_lines(&mut decoder, multiline.as_mut(), lines, true);
    let resource = Arc::new(Resource::default());
    let records = messages
        .into_iter()
        .filter(|m| !m.bytes.is_empty() || m.truncated)
        .map(|m| record(m, Arc::clone(&resource)).0)
        .collect();
    (records, undecodable)
}

/// The log record of one message; `true` when its bytes were not UTF-8
/// (they were replaced lossily).
pub fn record(m: Message, resource: Arc<Resource>) -> (LogRecord, bool) {
    let (body, lossy) = match std::str::from_utf8(&m.bytes) {
        Ok(_) => (Value::Bytes(m.bytes), false),
        Err(_) => (
            Value::Bytes(Bytes::from(String::from_utf8_lossy(&m.bytes).into_owned())),
            true,
        ),
    };
    let mut record = LogRecord::new(body, resource);
    if let Some(t) = m.time_unix_nano {
        record.time_unix_nano = t;
    }
    if let Some(stream) = m.stream {
        record
            .attributes
            .push(("log.iostream".into(), Value::from(stream)));
    }
    if m.truncated {
        record
            .attributes
            .push(("shipd.truncated".into(), Value::Bool(true)));
    }
    (record, lossy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::file::{Boundaries, LogFormat, MultilineConfig, MultilineMode};

    fn body(r: &LogRecord) -> String {
        match &r.body {
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn multiline_lines_are_joined_and_the_last_event_is_flushed() {
        let mut cfg = FileSourceConfig::new("app", vec![]);
        let start = regex::bytes::Regex::new(r"^# Time:").unwrap();
        cfg.multiline = Some(MultilineConfig::new(MultilineMode::Patterns(
            Boundaries::start(start),
        )));
        let text = "# Time: 1\nselect 1;\n# Time: 2\nselect 2;";
        let (records, undecodable) = frame_text(&cfg, Bytes::from(text));
        assert_eq!(undecodable, 0);
        let bodies: Vec<String> = records.iter().map(body).collect();
        assert_eq!(bodies, ["# Time: 1\nselect 1;", "# Time: 2\nselect 2;"]);
    }

    #[test]
    fn cri_partial_lines_are_reassembled_with_stream_and_time() {
        let mut cfg = FileSourceConfig::new("pods", vec![]);
        cfg.format = LogFormat::Cri;
        let text = "2026-01-01T00:00:00.000000001Z stderr P part one, \n\
                    2026-01-01T00:00:00.000000002Z stderr F part two\n";
        let (records, _) = frame_text(&cfg, Bytes::from(text));
        assert_eq!(records.len(), 1);
        assert_eq!(body(&records[0]), "part one, part two");
        assert_eq!(records[0].time_unix_nano, 1_767_225_600_000_000_001);
        assert!(records[0]
            .attributes
            .iter()
            .any(|(k, v)| k.as_str() == "log.iostream" && *v == Value::from("stderr")));
    }

    #[test]
    fn docker_json_lines_are_unwrapped_into_message_stream_and_time() {
        let mut cfg = FileSourceConfig::new("docker", vec![]);
        cfg.format = LogFormat::Docker;
        let text = r#"{"log":"started\n","stream":"stdout","time":"2026-01-01T00:00:01Z"}"#;
        let (records, undecodable) = frame_text(&cfg, Bytes::from(text));
        assert_eq!(undecodable, 0);
        assert_eq!(records.len(), 1);
        assert_eq!(body(&records[0]), "started");
        assert_eq!(records[0].time_unix_nano, 1_767_225_601_000_000_000);
        assert!(records[0]
            .attributes
            .iter()
            .any(|(k, v)| k.as_str() == "log.iostream" && *v == Value::from("stdout")));
    }

    #[test]
    fn a_line_not_in_the_format_is_counted_and_passed_on() {
        let mut cfg = FileSourceConfig::new("docker", vec![]);
        cfg.format = LogFormat::Docker;
        let (records, undecodable) = frame_text(&cfg, Bytes::from("not json\n"));
        assert_eq!(undecodable, 1);
        assert_eq!(records.len(), 1);
        assert_eq!(body(&records[0]), "not json");
    }
}
