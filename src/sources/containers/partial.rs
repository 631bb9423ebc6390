//! Reassembly of lines a container runtime split into partial records
//! (docker: a `log` without trailing newline; CRI: the `P` tag), one pending
//! line per stream so interleaved stdout and stderr do not mix. A reassembled
//! line is capped at `max_bytes` and then marked truncated.

use crate::sources::file::Message;
use bytes::{Bytes, BytesMut};

#[derive(Debug)]
struct Held {
    body: BytesMut,
    start: u64,
    time: Option<u64>,
    truncated: bool,
}

/// Pending partial lines of one file.
#[derive(Debug)]
pub struct Reassembly {
    max_bytes: usize,
    /// stdout, stderr.
    held: [Option<Held>; 2],
}

fn slot(stream: &str) -> usize {
    usize::from(stream == "stderr")
}

fn stream_name(slot: usize) -> &'static str {
    if slot == 1 {
        "stderr"
    } else {
        "stdout"
    }
}

impl Reassembly {
    pub fn new(max_bytes: usize) -> Self {
        Reassembly {
            max_bytes: max_bytes.max(1),
            held: [None, None],
        }
    }

    /// A partial record of `stream` spanning `start..` in the file.
    pub fn part(&mut self, stream: &'static str, text: &[u8], start: u64, time: Option<u64>) {
        let max = self.max_bytes;
        let held = self.held[slot(stream)].get_or_insert_with(|| Held {
            body: BytesMut::new(),
            start,
            time,
            truncated: false,
        });
        append_capped(held, text, max);
    }

    /// The final record of a line; returns the whole line.
    pub fn last(
        &mut self,
        stream: &'static str,
        text: Bytes,
        start: u64,
        end: u64,
        time: Option<u64>,
    ) -> Message {
        let max = self.max_bytes;
        match self.held[slot(stream)].take() {
            None => {
                let truncated = text.len() > max;
                let bytes = if truncated { text.slice(..max) } else { text };
                Message {
                    bytes,
                    start,
                    end,
                    truncated,
                    time_unix_nano: time,
                    stream: Some(stream),
                }
            }
            Some(mut held) => {
                append_capped(&mut held, &text, max);
                Message {
                    bytes: held.body.freeze(),
                    start: held.start,
                    end,
                    truncated: held.truncated,
                    time_unix_nano: held.time,
                    stream: Some(stream),
                }
            }
        }
    }

    /// Start offset of the earliest pending line.
    pub fn held_from(&self) -> Option<u64> {
        self.held.iter().flatten().map(|h| h.start).min()
    }

    /// Emits pending lines unfinished (`end` is where reading stopped).
    pub fn take_held(&mut self, end: u64, out: &mut Vec<Message>) {
        let mut taken: Vec<(usize, Held)> = self
            .held
            .iter_mut()
            .enumerate()
            .filter_map(|(i, h)| Some((i, h.take()?)))
            .collect();
        taken.sort_by_key(|(_, h)| h.start);
        for (i, held) in taken {
            out.push(Message {
                bytes: held.body.freeze(),
                start: held.start,
                end,
                truncated: held.truncated,
                time_unix_nano: held.time,
                stream: Some(stream_name(i)),
            });
        }
    }
}

fn append_capped(held: &mut Held, text: &[u8], max: usize) {
    let room = max.saturating_sub(held.body.len());
    if text.len() > room {
        held.truncated = true;
    }
    held.body.extend_from_slice(&text[..text.len().min(room)]);
}
