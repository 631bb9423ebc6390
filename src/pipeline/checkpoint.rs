//! Checkpoints: how far each replayable source has been delivered.
//!
//! The [`Checkpointer`] advances a source key (one tailed file, one journal)
//! to its highest *contiguously* acknowledged position and persists the state
//! file by write-temp + fsync + rename, at most every interval and only when
//! something changed. The start position of a newly seen key is persisted at
//! once, so a crash before the first interval neither skips nor re-reads.
//! It never writes event data.

use crate::telemetry;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Identifies one replayable stream of a source, e.g. `files|2049:1311`.
pub type SourceKey = Arc<str>;

/// Failure to read or write the checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write checkpoint file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One persisted position.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Human-readable origin (a file path, a journal directory).
    pub path: String,
    /// Byte offset (files) or ordinal position delivered so far.
    pub offset: u64,
    /// Source-specific resume token (a journal cursor), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Default)]
struct Progress {
    next_seq: u64,
    /// Completed batches ahead of `next_seq`: end position and cursor.
    completed: BTreeMap<u64, (u64, Option<String>)>,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    progress: HashMap<SourceKey, Progress>,
    dirty: bool,
}

/// Tracks acknowledged positions and persists them.
#[derive(Debug)]
pub struct Checkpointer {
    path: PathBuf,
    interval: Duration,
    state: Mutex<State>,
    /// Held across snapshot and write: two flushers (a source starting a
    /// key, the interval task) would otherwise race on the temp file or
    /// rename an older snapshot over a newer one.
    write_lock: Mutex<()>,
}

const FILE_NAME: &str = "checkpoints.json";

impl Checkpointer {
    /// Loads `data_dir/checkpoints.json` (absent means empty).
    pub fn open(data_dir: &Path, interval: Duration) -> Result<Arc<Self>, CheckpointError> {
        let path = data_dir.join(FILE_NAME);
        let entries = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<StateFile>(&bytes)
                    .map_err(|source| CheckpointError::Parse {
                        path: path.clone(),
                        source,
                    })?
                    .entries
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(CheckpointError::Read { path, source }),
        };
        Ok(Arc::new(Checkpointer {
            path,
            interval,
            state: Mutex::new(State {
                entries,
                ..State::default()
            }),
            write_lock: Mutex::new(()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in
        // a way that matters more than losing every checkpoint, so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last persisted or acknowledged entry of `key`.
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.lock().entries.get(key).cloned()
    }

    /// Every entry whose key starts with `prefix` (one source's keys).
    pub fn entries_with_prefix(&self, prefix: &str) -> Vec<(String, Entry)> {
        self.lock()
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// Starts tracking `key` from `entry` (its resume point in this run);
    /// batches are then numbered from 0. Persists at once when it is new or
    /// differs from what is stored.
    pub fn start(&self, key: &SourceKey, entry: Entry) -> Result<(), CheckpointError> {
        if self.start_unflushed(key, entry) {
            self.flush()?;
        }
        Ok(())
    }

    /// Like [`start`](Self::start) without writing, for a source starting
    /// many keys at once: it must [`flush`](Self::flush) once afterwards,
    /// before reading from them. Returns whether anything changed.
    pub fn start_unflushed(&self, key: &SourceKey, entry: Entry) -> bool {
        self.start_unflushed_at(key, entry, 0)
    }

    /// Like [`start_unflushed`](Self::start_unflushed), numbering the
    /// batches from `first_seq`: a key started again (a file truncated and
    /// written with the same first line) continues its numbering, so
    /// acknowledgements of batches read before the restart, still in flight,
    /// are told apart and ignored instead of moving the new position.
    pub fn start_unflushed_at(&self, key: &SourceKey, entry: Entry, first_seq: u64) -> bool {
        let mut state = self.lock();
        state.progress.insert(
            Arc::clone(key),
            Progress {
                next_seq: first_seq,
                completed: BTreeMap::new(),
            },
        );
        let changed = state.entries.get(&**key) != Some(&entry);
        if changed {
            state.entries.insert(key.to_string(), entry);
            state.dirty = true;
        }
        changed
    }

    /// Records that batch `seq` of `key` is delivered up to `end`.
    pub fn complete(&self, key: &SourceKey, seq: u64, end: u64) {
        self.complete_with_cursor(key, seq, end, None);
    }

    /// Like [`complete`](Self::complete), with a source-specific resume cursor.
    pub fn complete_with_cursor(
        &self,
        key: &SourceKey,
        seq: u64,
        end: u64,
        cursor: Option<String>,
    ) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(progress) = state.progress.get_mut(key) else {
            return;
        };
        if seq < progress.next_seq {
            // A batch of an earlier reading of this key.
            return;
        }
        progress.completed.insert(seq, (end, cursor));
        let mut advanced = None;
        let mut advanced_cursor = None;
        while let Some((end, cursor)) = progress.completed.remove(&progress.next_seq) {
            progress.next_seq += 1;
            advanced = Some(end);
            if cursor.is_some() {
                advanced_cursor = cursor;
            }
        }
        if let (Some(end), Some(entry)) = (advanced, state.entries.get_mut(&**key)) {
            let new_cursor = advanced_cursor.is_some() && entry.cursor != advanced_cursor;
            if entry.offset != end || new_cursor {
                entry.offset = end;
                if new_cursor {
                    entry.cursor = advanced_cursor;
                }
                state.dirty = true;
            }
        }
    }

    /// Stops tracking `key` and removes its entry (the file is gone for good).
    pub fn forget(&self, key: &str) {
        let mut state = self.lock();
        state.progress.remove(key);
        if state.entries.remove(key).is_some() {
            state.dirty = true;
        }
    }

    /// Writes the state file if anything changed since the last write.
    pub fn flush(&self) -> Result<(), CheckpointError> {
        let _writing = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = {
            let mut state = self.lock();
            if !state.dirty {
                return Ok(());
            }
            state.dirty = false;
            let file = StateFile {
                version: 1,
                entries: state.entries.clone(),
            };
            serde_json::to_vec_pretty(&file).map_err(|source| CheckpointError::Parse {
                path: self.path.clone(),
                source,
            })?
        };
        self.write_atomically(&bytes).inspect_err(|_| {
            self.lock().dirty = true;
        })
    }

    fn write_atomically(&self, bytes: &[u8]) -> Result<(), CheckpointError> {
        let tmp = self.path.with_extension("json.tmp");
        let err = |source| CheckpointError::Write {
            path: self.path.clone(),
            source,
        };
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        file.write_all(bytes).map_err(err)?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        telemetry::disk_written("checkpoint", bytes.len() as u64);
        telemetry::fsyncs(2);
        Ok(())
    }

    /// Flushes every interval until `cancel`, then once more.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = cancel.cancelled() => break,
            }
            if let Err(e) = self.flush() {
                tracing::error!(error = %e, "checkpoint not persisted; will retry");
            }
        }
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "final checkpoint not persisted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SourceKey {
        Arc::from(s)
    }

    fn entry(offset: u64) -> Entry {
        Entry {
            path: "/x".into(),
            offset,
            cursor: None,
        }
    }

    #[test]
    fn advances_only_past_contiguous_completions() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::open(dir.path(), Duration::from_secs(5)).unwrap();
        let k = key("files|1:2");
        cp.start(&k, entry(10)).unwrap();
        cp.complete(&k, 1, 30);
        assert_eq!(cp.entry(&k).unwrap().offset, 10, "batch 0 still in flight");
        cp.complete(&k, 0, 20);
        assert_eq!(cp.entry(&k).unwrap().offset, 30);
    }

    #[test]
    fn late_acks_of_an_earlier_reading_do_not_move_a_key_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::open(dir.path(), Duration::from_secs(5)).unwrap();
        let k = key("files|1:2:abc");
        cp.start(&k, entry(0)).unwrap();
        cp.complete(&k, 0, 1_000);
        // Truncated with batches 1..=4 in flight; reading starts again at 0
        // under the same key, numbering on from 5.
        cp.forget(&k);
        assert!(cp.start_unflushed_at(&k, entry(0), 5));
        for (seq, end) in [(1, 2_000), (2, 3_000), (3, 4_000), (4, 5_000)] {
            cp.complete(&k, seq, end);
        }
        assert_eq!(cp.entry(&k).unwrap().offset, 0, "old acks ignored");
        cp.complete(&k, 5, 100);
        cp.complete(&k, 6, 200);
        assert_eq!(cp.entry(&k).unwrap().offset, 200);
    }

    #[test]
    fn cursor_of_the_furthest_contiguous_batch_wins_when_completed_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::open(dir.path(), Duration::from_secs(5)).unwrap();
        let k = key("journald|system");
        cp.start(&k, entry(0)).unwrap();
        cp.complete_with_cursor(&k, 1, 20, Some("c20".into()));
        cp.complete_with_cursor(&k, 0, 10, Some("c10".into()));
        let e = cp.entry(&k).unwrap();
        assert_eq!((e.offset, e.cursor.as_deref()), (20, Some("c20")));
    }

    #[test]
    fn state_survives_reopen_and_new_keys_persist_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let k = key("files|1:2");
        {
            let cp = Checkpointer::open(dir.path(), Duration::from_secs(5)).unwrap();
            cp.start(&k, entry(7)).unwrap();
        }
        let cp = Checkpointer::open(dir.path(), Duration::from_secs(5)).unwrap();
        let resumed = cp.entry(&k).unwrap();
        assert_eq!(resumed.offset, 7);
        cp.start(&k, resumed).unwrap();
        cp.complete(&k, 0, 99);
        cp.flush().unwrap();
        let cp = Checkpointer::open(dir.path(), Duration::from_secs(5)).unwrap();
        assert_eq!(cp.entry(&k).unwrap().offset, 99);
    }

    #[test]
    fn unchanged_state_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::open(dir.path(), Duration::from_secs(5)).unwrap();
        let k = key("files|1:2");
        cp.start(&k, entry(7)).unwrap();
        let before = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        cp.flush().unwrap();
        cp.start(&k, entry(7)).unwrap();
        let after = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn corrupt_state_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let err = Checkpointer::open(dir.path(), Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");
    }
}
