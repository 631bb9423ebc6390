//! End-to-end acknowledgements.
//!
//! A replayable source hands out one [`BatchAck`] per batch it reads (a file
//! chunk, a run of journal entries). Every event of that batch holds an
//! [`AckToken`] to it. A sink acknowledges events once the receiver accepted
//! them; when the last event of a batch is acknowledged the batch's completion
//! goes to the [`Checkpointer`](super::checkpoint::Checkpointer), which advances
//! the source only past contiguous completions. A batch journaled in RAM
//! (data no source can re-read) instead removes its journal file once
//! delivered. Dropping a token never acknowledges: an event lost in a crash
//! is simply read again.

use super::checkpoint::{Checkpointer, SourceKey};
use crate::event::Event;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One source batch awaiting delivery of all its events.
#[derive(Debug)]
pub struct BatchAck {
    remaining: AtomicUsize,
    on_complete: Completion,
}

/// What delivery of a whole batch does.
#[derive(Debug)]
enum Completion {
    /// Advance a source's checkpoint.
    Checkpoint {
        key: SourceKey,
        seq: u64,
        end: u64,
        /// Source-specific resume token at `end` (a journal cursor).
        cursor: Option<String>,
        checkpointer: Arc<Checkpointer>,
    },
    /// Remove the RAM journal file holding the batch.
    RemoveFile(PathBuf),
}

/// A shared handle to the [`BatchAck`] of the batch an event came from.
pub type AckToken = Arc<BatchAck>;

impl BatchAck {
    /// A batch of `events` events of source `key`, the `seq`-th batch handed
    /// out for that key, whose delivery moves the checkpoint to `end`.
    /// A batch without events is complete at once.
    pub fn new(
        checkpointer: &Arc<Checkpointer>,
        key: SourceKey,
        seq: u64,
        end: u64,
        events: usize,
    ) -> Option<AckToken> {
        Self::with_cursor(checkpointer, key, seq, end, events, None)
    }

    /// Like [`new`](Self::new), with the source's resume `cursor` at `end`,
    /// stored in the checkpoint once the batch is delivered.
    pub fn with_cursor(
        checkpointer: &Arc<Checkpointer>,
        key: SourceKey,
        seq: u64,
        end: u64,
        events: usize,
        cursor: Option<String>,
    ) -> Option<AckToken> {
        if events == 0 {
            checkpointer.complete_with_cursor(&key, seq, end, cursor);
            return None;
        }
        Some(Arc::new(BatchAck {
            remaining: AtomicUsize::new(events),
            on_complete: Completion::Checkpoint {
                key,
                seq,
                end,
                cursor,
                checkpointer: Arc::clone(checkpointer),
            },
        }))
    }

    /// A batch of `events` (at least one) journaled in the file `path`,
    /// removed once all are delivered.
    pub fn removing(path: PathBuf, events: usize) -> BatchAck {
        BatchAck {
            remaining: AtomicUsize::new(events),
            on_complete: Completion::RemoveFile(path),
        }
    }

    /// Whether the batch lives in the RAM journal (no source can read it
    /// again) rather than behind a source's checkpoint.
    pub fn is_journaled(&self) -> bool {
        matches!(self.on_complete, Completion::RemoveFile(_))
    }

    /// Acknowledges `n` events of this batch.
    pub fn ack(&self, n: usize) {
        let before = self.remaining.fetch_sub(n, Ordering::AcqRel);
        if before != n {
            return;
        }
        match &self.on_complete {
            Completion::Checkpoint {
                key,
                seq,
                end,
                cursor,
                checkpointer,
            } => checkpointer.complete_with_cursor(key, *seq, *end, cursor.clone()),
            Completion::RemoveFile(path) => {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), error = %e,
                        "cannot remove a delivered batch from the RAM journal");
                }
            }
        }
    }
}

/// Acknowledges every event in `events` that carries a token, grouping runs
/// of events from the same source batch into one atomic update.
pub fn ack_events<'a>(events: impl IntoIterator<Item = &'a Event>) {
    let mut run: Option<(&AckToken, usize)> = None;
    for token in events.into_iter().filter_map(Event::ack_token) {
        match run {
            Some((current, n)) if Arc::ptr_eq(current, token) => run = Some((current, n + 1)),
            Some((current, n)) => {
                current.ack(n);
                run = Some((token, 1));
            }
            None => run = Some((token, 1)),
        }
    }
    if let Some((current, n)) = run {
        current.ack(n);
    }
}
