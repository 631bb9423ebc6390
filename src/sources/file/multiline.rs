//! Multiline aggregation: joins the lines of one logical event (a stack
//! trace, a wrapped message, a slow-query entry) into one message.
//!
//! How lines group is a [`MultilineMode`]: either [`Boundaries`] (start,
//! continue and end patterns, any of them together) or [`StateRules`] (named
//! states, each with patterns and a next state, see `multiline_rules`). An
//! event is emitted when the next one starts, when its end is recognised,
//! when it reaches `max_lines` or `max_bytes`, or when no line arrived for
//! `timeout`. The joined message spans from its first line's start to its
//! last line's end, so the checkpoint after it is the end of its last line,
//! and while an event is held [`Aggregator::held_from`] keeps the checkpoint
//! before it. The grouping depends on the lines only, never on when they
//! arrived (short of the timeout), so a backlog and a live tail group alike.
//! This module never reads files.

use super::decode::Message;
use super::multiline_rules::StateRules;
use bytes::BytesMut;
use regex::bytes::Regex;
use std::time::{Duration, Instant};

/// Start, continue and end patterns; any may be absent.
///
/// While an event is held, a line matching `start` begins the next event;
/// otherwise, when `continues` is set, a line matching it joins the held
/// event and any other line begins the next one; when `continues` is unset,
/// every line joins. A line matching `end` completes its event at once.
#[derive(Debug, Clone, Default)]
pub struct Boundaries {
    pub start: Option<Regex>,
    pub continues: Option<Regex>,
    pub end: Option<Regex>,
}

impl Boundaries {
    /// Lines matching `re` start a new event; all others continue.
    pub fn start(re: Regex) -> Self {
        Boundaries {
            start: Some(re),
            ..Boundaries::default()
        }
    }

    /// Lines matching `re` continue the previous event.
    pub fn continues(re: Regex) -> Self {
        Boundaries {
            continues: Some(re),
            ..Boundaries::default()
        }
    }

    fn place(&self, line: &[u8], holding: bool) -> Placement {
        let joins = holding
            && !self.start.as_ref().is_some_and(|re| re.is_match(line))
            && self.continues.as_ref().is_none_or(|re| re.is_match(line));
        Placement {
            joins,
            ends: self.end.as_ref().is_some_and(|re| re.is_match(line)),
        }
    }
}

/// Which lines belong to the previous event.
#[derive(Debug, Clone)]
pub enum MultilineMode {
    Patterns(Boundaries),
    States(StateRules),
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
}

/// Where one line goes.
struct Placement {
    /// It joins the held event (else it begins a new one).
    joins: bool,
    /// Its event is complete with it.
    ends: bool,
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
    /// The state the held event reached ([`StateRules::START`] when nothing
    /// can continue it); state rules only.
    state: usize,
}

impl Aggregator {
    pub fn new(cfg: MultilineConfig) -> Self {
        Aggregator {
            cfg,
            held: None,
            state: StateRules::START,
        }
    }

    fn place(&mut self, line: &[u8]) -> Placement {
        let holding = self.held.is_some();
        match &self.cfg.mode {
            MultilineMode::Patterns(b) => b.place(line, holding),
            MultilineMode::States(rules) => {
                if holding && self.state != StateRules::START {
                    if let Some(next) = rules.next_state(self.state, line) {
                        self.state = next;
                        return Placement {
                            joins: true,
                            ends: next == StateRules::START,
                        };
                    }
                }
                // A line no start rule takes is an event of its own.
                self.state = rules
                    .next_state(StateRules::START, line)
                    .unwrap_or(StateRules::START);
                Placement {
                    joins: false,
                    ends: self.state == StateRules::START,
                }
            }
        }
    }

    /// Adds the next message; finished events go to `out`.
    pub fn push(&mut self, msg: Message, now: Instant, out: &mut Vec<Message>) {
        let placement = self.place(&msg.bytes);
        if placement.joins {
            if let Some(held) = &mut self.held {
                let fits = held.lines < self.cfg.max_lines
                    && held.body.len().max(held.first.bytes.len()) + 1 + msg.bytes.len()
                        <= self.cfg.max_bytes;
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
                    if placement.ends {
                        out.extend(self.held.take().map(Held::into_message));
                    }
                    return;
                }
            }
        }
        out.extend(self.held.take().map(Held::into_message));
        let held = Held {
            body: BytesMut::new(),
            lines: 1,
            end: msg.end,
            truncated: msg.truncated,
            last_line_at: now,
            first: msg,
        };
        if placement.ends {
            out.push(held.into_message());
        } else {
            self.held = Some(held);
        }
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

    /// The held event, whatever its age (the file is being released); the
    /// next line starts afresh.
    pub fn take(&mut self) -> Option<Message> {
        self.state = StateRules::START;
        self.held.take().map(Held::into_message)
    }
}

/// The events `lines` make when read in one go, the last (held) one
/// included (for tests of multiline settings; `shipctl test` frames raw
/// lines with [`super::framing::frame_text`]).
#[cfg(test)]
pub(crate) fn join_lines<'a>(
    cfg: MultilineConfig,
    lines: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut agg = Aggregator::new(cfg);
    let mut out = Vec::new();
    let mut offset = 0;
    let now = Instant::now();
    for line in lines {
        let end = offset + line.len() as u64 + 1;
        let msg = Message::plain(
            bytes::Bytes::copy_from_slice(line.as_bytes()),
            offset,
            end,
            false,
        );
        agg.push(msg, now, &mut out);
        offset = end;
    }
    out.extend(agg.take());
    out.iter()
        .map(|m| String::from_utf8_lossy(&m.bytes).into_owned())
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::multiline_rules::RuleSpec;
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

    /// The events the lines of `text` group into.
    pub(in crate::sources::file) fn events(mode: MultilineMode, text: &str) -> Vec<String> {
        join_lines(MultilineConfig::new(mode), text.lines())
    }

    fn re(p: &str) -> Option<Regex> {
        Some(Regex::new(p).unwrap())
    }

    #[test]
    fn start_pattern_joins_a_java_stack_trace() {
        let cfg = MultilineConfig::new(MultilineMode::Patterns(Boundaries::start(
            Regex::new(r"^\S").unwrap(),
        )));
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
            ..MultilineConfig::new(MultilineMode::Patterns(Boundaries::continues(
                Regex::new(r"^\s+at ").unwrap(),
            )))
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
            ..MultilineConfig::new(MultilineMode::Patterns(Boundaries::start(
                Regex::new(r"^START").unwrap(),
            )))
        };
        let (out, agg) = run(cfg, &["START", "a", "b", "c", "d"]);
        assert_eq!(out.len(), 1);
        assert_eq!(body_text(&out[0].bytes), "START\na\nb");
        assert_eq!(agg.held_from(), Some(10), "`c` begins the next event");
    }

    #[test]
    fn max_bytes_cuts_an_event_before_the_line_that_would_overflow_it() {
        let cfg = MultilineConfig {
            max_bytes: 8,
            ..MultilineConfig::new(MultilineMode::Patterns(Boundaries::start(
                Regex::new(r"^S").unwrap(),
            )))
        };
        let (out, mut agg) = run(cfg, &["S1234", "ab", "cd"]);
        assert_eq!(out.len(), 1);
        assert_eq!(body_text(&out[0].bytes), "S1234\nab");
        assert_eq!(body_text(&agg.take().unwrap().bytes), "cd");
    }

    #[test]
    fn end_pattern_emits_its_event_without_waiting_for_the_next() {
        let cfg = MultilineConfig::new(MultilineMode::Patterns(Boundaries {
            end: re(r";\s*$"),
            ..Boundaries::default()
        }));
        let (out, agg) = run(cfg, &["SELECT *", "FROM t", "WHERE x = 1;", "SELECT 1;"]);
        let bodies: Vec<String> = out.iter().map(|m| body_text(&m.bytes)).collect();
        assert_eq!(bodies, ["SELECT *\nFROM t\nWHERE x = 1;", "SELECT 1;"]);
        assert_eq!(agg.held_from(), None, "nothing waits for a timeout");
    }

    #[test]
    fn start_continue_and_end_together() {
        let mode = MultilineMode::Patterns(Boundaries {
            start: re(r"^BEGIN"),
            continues: re(r"^\s"),
            end: re(r"^\s+END$"),
        });
        let text = "BEGIN a\n  one\n  END\n  stray\nplain\nBEGIN b\n  two\nBEGIN c\n";
        assert_eq!(
            events(mode, text),
            [
                "BEGIN a\n  one\n  END",
                "  stray",
                "plain",
                "BEGIN b\n  two",
                "BEGIN c"
            ],
            "end closes `a`; a line matching no continue pattern stands alone"
        );
    }

    #[test]
    fn state_rules_follow_their_states_and_reset_after_a_timeout() {
        let rules = StateRules::build(vec![
            (
                "start_state".into(),
                vec![RuleSpec::pattern(r"^HEAD", "body")],
            ),
            (
                "body".into(),
                vec![
                    RuleSpec::pattern(r"^DONE$", "start_state"),
                    RuleSpec::unless(r"^HEAD", "body"),
                ],
            ),
        ])
        .unwrap();
        let cfg = MultilineConfig {
            timeout: Duration::from_millis(100),
            ..MultilineConfig::new(MultilineMode::States(rules))
        };
        let (out, mut agg) = run(
            cfg,
            &["noise", "HEAD 1", "x", "DONE", "y", "HEAD 2", "z", "HEAD 3"],
        );
        let bodies: Vec<String> = out.iter().map(|m| body_text(&m.bytes)).collect();
        assert_eq!(bodies, ["noise", "HEAD 1\nx\nDONE", "y", "HEAD 2\nz"]);
        let flushed = agg
            .flush_due(Instant::now() + Duration::from_secs(1))
            .unwrap();
        assert_eq!(body_text(&flushed.bytes), "HEAD 3");
        let mut out = Vec::new();
        agg.push(msg("late", 100), Instant::now(), &mut out);
        assert_eq!(
            out.iter().map(|m| body_text(&m.bytes)).collect::<Vec<_>>(),
            ["late"],
            "after a timeout nothing continues the flushed event"
        );
    }
}
