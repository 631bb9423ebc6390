//! Multiline aggregation: joins the lines of one logical event (a stack
//! trace, a wrapped message) into one message.
//!
//! Either a *start* pattern marks the first line of every event (other lines
//! continue the previous one), or a *continuation* pattern marks the lines
//! that continue it. An event is emitted when the next one starts, when it
//! reaches `max_lines` or `max_bytes`, or when no line arrived for `timeout`.
//! The joined message spans from its first line's start to its last line's
//! end, so the checkpoint after it is the end of its last line, and while an
//! event is held [`Aggregator::held_from`] keeps the checkpoint before it.
//! This module never reads files.

use super::decode::Message;
use bytes::BytesMut;
use regex::bytes::Regex;
use std::time::{Duration, Instant};

/// Which lines belong to the previous event.
#[derive(Debug, Clone)]
pub enum MultilineMode {
    /// Lines matching the pattern start a new event; all others continue.
    Start(Regex),
    /// Lines matching the pattern continue the previous event.
    Continue(Regex),
}

/// Multiline settings of a file source.
#[derive(Debug, Clone)]
pub struct MultilineConfig {
    pub mode: MultilineMode,
    /// Emit a held event once no line arrived for this long.
    pub timeout: Duration,
    pub max_lines: usize,
    pub max_bytes: usize,
}

impl MultilineConfig {
    /// `mode` with a 1 s timeout, at most 500 lines and 256 KiB per event.
    pub fn new(mode: MultilineMode) -> Self {
        MultilineConfig {
            mode,
            timeout: Duration::from_secs(1),
            max_lines: 500,
            max_bytes: 256 * 1024,
        }
    }

    fn continues(&self, line: &[u8]) -> bool {
        match &self.mode {
            MultilineMode::Start(re) => !re.is_match(line),
            MultilineMode::Continue(re) => re.is_match(line),
        }
    }
}

struct Held {
    first: Message,
    body: BytesMut,
    lines: usize,
    end: u64,
    truncated: bool,
    last_line_at: Instant,
}

impl Held {
    fn into_message(self) -> Message {
        Message {
            bytes: if self.lines == 1 {
                self.first.bytes
            } else {
                self.body.freeze()
            },
            end: self.end,
            truncated: self.truncated,
            ..self.first
        }
    }
}

/// Joins the messages of one file into multiline events.
pub struct Aggregator {
    cfg: MultilineConfig,
    held: Option<Held>,
}

impl Aggregator {
    pub fn new(cfg: MultilineConfig) -> Self {
        Aggregator { cfg, held: None }
    }

    /// Adds the next message; finished events go to `out`.
    pub fn push(&mut self, msg: Message, now: Instant, out: &mut Vec<Message>) {
        if self.cfg.continues(&msg.bytes) {
            if let Some(held) = &mut self.held {
                let fits = held.lines < self.cfg.max_lines
                    && held.body.len() + 1 + msg.bytes.len() <= self.cfg.max_bytes;
                if fits {
                    if held.lines == 1 {
                        held.body.extend_from_slice(&held.first.bytes);
                    }
                    held.body.extend_from_slice(b"\n");
                    held.body.extend_from_slice(&msg.bytes);
                    held.lines += 1;
                    held.end = msg.end;
                    held.truncated |= msg.truncated;
                    held.last_line_at = now;
                    return;
                }
            }
        }
        out.extend(self.take());
        self.held = Some(Held {
            body: BytesMut::new(),
            lines: 1,
            end: msg.end,
            truncated: msg.truncated,
            last_line_at: now,
            first: msg,
        });
    }

    /// When the held event times out, if one is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.held
            .as_ref()
            .map(|h| h.last_line_at + self.cfg.timeout)
    }

    /// The held event, if it timed out by `now`.
    pub fn flush_due(&mut self, now: Instant) -> Option<Message> {
        if self.deadline().is_some_and(|d| d <= now) {
            self.take()
        } else {
            None
        }
    }

    /// Start offset of the held event: the checkpoint must stay before it.
    pub fn held_from(&self) -> Option<u64> {
        self.held.as_ref().map(|h| h.first.start)
    }

    /// The held event, whatever its age (the file is being released).
    pub fn take(&mut self) -> Option<Message> {
        self.held.take().map(Held::into_message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn body_text(bytes: &Bytes) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn msg(text: &str, start: u64) -> Message {
        Message::plain(
            Bytes::copy_from_slice(text.as_bytes()),
            start,
            start + text.len() as u64 + 1,
            false,
        )
    }

    fn run(cfg: MultilineConfig, lines: &[&str]) -> (Vec<Message>, Aggregator) {
        let mut agg = Aggregator::new(cfg);
        let mut out = Vec::new();
        let mut offset = 0;
        let now = Instant::now();
        for l in lines {
            agg.push(msg(l, offset), now, &mut out);
            offset += l.len() as u64 + 1;
        }
        (out, agg)
    }

    #[test]
    fn start_pattern_joins_a_java_stack_trace() {
        let cfg = MultilineConfig::new(MultilineMode::Start(Regex::new(r"^\S").unwrap()));
        let (out, mut agg) = run(
            cfg,
            &[
                "2026-01-01 ERROR boom",
                "java.lang.IllegalStateException: x",
                "\tat a.b(C.java:1)",
                "\tat d.e(F.java:2)",
                "2026-01-01 INFO next",
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(body_text(&out[0].bytes), "2026-01-01 ERROR boom");
        assert_eq!(
            body_text(&out[1].bytes),
            "java.lang.IllegalStateException: x\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)"
        );
        assert_eq!(out[1].start, 22);
        assert_eq!(out[1].end, 22 + 35 + 18 + 18, "ends after its last line");
        assert_eq!(agg.held_from(), Some(93), "the INFO line is held");
        assert_eq!(
            body_text(&agg.take().unwrap().bytes),
            "2026-01-01 INFO next"
        );
    }

    #[test]
    fn continuation_pattern_and_timeout_flush() {
        let cfg = MultilineConfig {
            timeout: Duration::from_millis(100),
            ..MultilineConfig::new(MultilineMode::Continue(Regex::new(r"^\s+at ").unwrap()))
        };
        let (out, mut agg) = run(cfg, &["Exception in main", "   at x", "   at y"]);
        assert!(out.is_empty(), "still waiting for more lines");
        let now = Instant::now();
        assert!(agg.flush_due(now).is_none());
        let flushed = agg.flush_due(now + Duration::from_millis(150)).unwrap();
        assert_eq!(
            body_text(&flushed.bytes),
            "Exception in main\n   at x\n   at y"
        );
        assert_eq!(agg.held_from(), None);
    }

    #[test]
    fn max_lines_cuts_a_runaway_event() {
        let cfg = MultilineConfig {
            max_lines: 3,
            ..MultilineConfig::new(MultilineMode::Start(Regex::new(r"^START").unwrap()))
        };
        let (out, agg) = run(cfg, &["START", "a", "b", "c", "d"]);
        assert_eq!(out.len(), 1);
        assert_eq!(body_text(&out[0].bytes), "START\na\nb");
        assert_eq!(agg.held_from(), Some(10), "`c` begins the next event");
    }
}
