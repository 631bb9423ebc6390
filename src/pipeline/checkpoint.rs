//! Checkpoints: how far each replayable source has been delivered.
//!
//! The [`Checkpointer`] advances a source key (one tailed file, one journal)
//! to its highest *contiguously* acknowledged position and persists the state
//! (JSON in a [`SlotFile`], written in place) only when something changed.
//! The start position of a newly seen key is persisted and synced at once,
//! so a crash before the first write neither skips nor re-reads; so is the
//! final state at shutdown. It never writes event data.
//!
//! Two copies spare the flash. Every acknowledgement that moves a position
//! wakes the writer, which saves the state to a copy in RAM (tmpfs, beside
//! the RAM journal) at most once per `interval` (`checkpoint_interval`,
//! 250 ms): a crash or restart of the process re-sends at most what was
//! delivered in that window, and RAM writes cost no storage. The copy in
//! the data directory is rewritten at most every `disk_interval` (120 s),
//! plus once, synced, per newly seen source key: so few writes reach the
//! storage whatever the kernel's writeback does. Both carry a generation;
//! at start [`checkpoint_recovery`](super::checkpoint_recovery) picks the
//! newest intact one (the RAM copy only beside the disk copy it was written
//! with) and sets damaged copies aside. After a reboot (RAM gone) the disk
//! copy is up to `disk_interval` older: the difference is read again
//! (duplicates), never skipped. Without a RAM directory every write goes to
//! disk, at most every `disk_interval`.
//!
//! A disk copy that cannot be written (read-only remount, full disk,
//! permissions) marks the `checkpoints` component degraded in
//! [`health`](crate::control::health) with the cause, keeps the RAM copy
//! current, and is retried every [`DISK_RETRY`]; the first write that
//! succeeds clears it. A RAM directory that is not RAM is a standing warning.

use super::checkpoint_file::{SlotFile, SlotFileError};
use super::checkpoint_recovery::{self, DISK_ONLY};
use crate::control::health::ComponentHealth;
use crate::sinks::log_limit::LogLimit;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The component `/health` and `shipctl status` name for checkpoints.
pub const HEALTH_COMPONENT: &str = "checkpoints";

/// How often a disk copy that could not be written is tried again.
pub const DISK_RETRY: Duration = Duration::from_secs(1);

/// Repeated failures to write the disk copy, logged once a minute.
static DISK_ERROR_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));

/// The cause a failing disk copy is degraded for.
const DISK_CAUSE: &str = "disk copy";

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
    #[error(transparent)]
    File(#[from] SlotFileError),
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
pub(super) struct StateFile {
    version: u32,
    /// Generation of the disk copy when this state was written: a RAM copy
    /// counts only beside that very disk copy, never beside one a later run
    /// (without the RAM copy) has rewritten since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) disk_generation: Option<u64>,
    pub(super) entries: BTreeMap<String, Entry>,
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
    /// The shortest time between two writes: changes within it coalesce.
    interval: Duration,
    state: Mutex<State>,
    /// Held across snapshot and write: two flushers (a source starting a
    /// key, the writer task) would otherwise write an older snapshot
    /// over a newer one.
    files: Mutex<Copies>,
    /// The state file of earlier versions, removed after the first write.
    legacy: Mutex<Option<PathBuf>>,
    /// Wakes the writer task: a position moved.
    changed: Notify,
    health: Arc<ComponentHealth>,
}

/// Where checkpoints are written, and when the disk copy is next due.
#[derive(Debug)]
struct Copies {
    disk: SlotFile,
    ram: Option<SlotFile>,
    /// Generation of the newest state written to either copy.
    generation: u64,
    disk_interval: Duration,
    disk_written_at: Instant,
    /// The last disk write failed at this instant: tried again
    /// [`DISK_RETRY`] later.
    disk_failed_at: Option<Instant>,
    /// The RAM copy holds a newer state than the disk copy.
    disk_behind: bool,
    /// The last disk write was not forced to storage.
    disk_unsynced: bool,
    /// A forced write failed: the next write forces again.
    sync_owed: bool,
}

impl Copies {
    /// Whether an unforced write goes to disk now.
    fn disk_due(&self, now: Instant) -> bool {
        match self.disk_failed_at {
            Some(failed) => now.duration_since(failed) >= DISK_RETRY,
            None => now.duration_since(self.disk_written_at) >= self.disk_interval,
        }
    }

    /// When the disk copy is next due, if it owes anything (`dirty`: a
    /// change not written anywhere yet).
    fn disk_due_at(&self, dirty: bool) -> Option<Instant> {
        let owed = self.disk_behind
            || self.sync_owed
            || self.disk_failed_at.is_some()
            || (dirty && self.ram.is_none());
        owed.then(|| match self.disk_failed_at {
            Some(failed) => failed + DISK_RETRY,
            None => self.disk_written_at + self.disk_interval,
        })
    }
}

/// Where and how often checkpoints are persisted.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    /// The shortest time between two writes of changed positions (to the
    /// RAM copy when there is one): acknowledgements within it coalesce.
    pub interval: Duration,
    /// How often the disk copy takes the RAM copy's state.
    pub disk_interval: Duration,
    /// The RAM-backed directory of the RAM copy; with `None`, or a directory
    /// not on tmpfs/ramfs, checkpoints go to disk only, every `disk_interval`.
    pub ram_dir: Option<PathBuf>,
}

impl CheckpointSettings {
    /// Disk only: every flush writes (the writer task flushes at most every
    /// `interval`).
    pub fn disk_only(interval: Duration) -> Self {
        CheckpointSettings {
            interval,
            disk_interval: Duration::ZERO,
            ram_dir: None,
        }
    }
}

impl Checkpointer {
    /// Loads `data_dir/checkpoints.state` or, when newer, its RAM copy
    /// (absent means empty; a `checkpoints.json` of an earlier version is
    /// taken over; a damaged copy is set aside and logged, see
    /// [`checkpoint_recovery`]).
    pub fn open(
        data_dir: &Path,
        settings: &CheckpointSettings,
    ) -> Result<Arc<Self>, CheckpointError> {
        let found = checkpoint_recovery::recover(data_dir, settings.ram_dir.as_deref())?;
        let health = ComponentHealth::register(HEALTH_COMPONENT);
        health.set_warnings(found.ram_warning.into_iter().collect());
        let disk_generation = found.disk.generation();
        let generation = found.generation;
        let dirty = found.legacy.is_some();
        // A newer RAM copy goes to disk at the first write: due at once, so
        // that a run restarting faster than the disk interval still moves
        // the disk copy on.
        let disk_behind = generation > disk_generation;
        let now = Instant::now();
        let disk_written_at = match disk_behind {
            true => now.checked_sub(settings.disk_interval).unwrap_or(now),
            false => now,
        };
        let checkpointer = Arc::new(Checkpointer {
            path: found.disk.path().to_owned(),
            interval: settings.interval,
            state: Mutex::new(State {
                entries: found.entries,
                dirty,
                ..State::default()
            }),
            files: Mutex::new(Copies {
                disk: found.disk,
                ram: found.ram,
                generation,
                disk_interval: settings.disk_interval,
                disk_written_at,
                disk_failed_at: None,
                disk_behind,
                disk_unsynced: false,
                sync_owed: false,
            }),
            legacy: Mutex::new(found.legacy),
            changed: Notify::new(),
            health,
        });
        if disk_behind || dirty {
            checkpointer.changed.notify_one();
        }
        Ok(checkpointer)
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
            self.flush_synced()?;
        }
        Ok(())
    }

    /// Like [`start`](Self::start) without writing, for a source starting
    /// many keys at once: it must [`flush_synced`](Self::flush_synced) once afterwards,
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
            self.changed.notify_one();
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
                // The writer saves it within `interval` (coalesced).
                self.changed.notify_one();
            }
        }
    }

    /// Stops tracking `key` and removes its entry (the file is gone for good).
    pub fn forget(&self, key: &str) {
        let mut state = self.lock();
        state.progress.remove(key);
        if state.entries.remove(key).is_some() {
            state.dirty = true;
            self.changed.notify_one();
        }
    }

    /// Writes the state file if anything changed since the last write: into
    /// the page cache, which a process crash does not lose.
    pub fn flush(&self) -> Result<(), CheckpointError> {
        self.write(false)
    }

    /// Like [`flush`](Self::flush), and forces the state to storage.
    pub fn flush_synced(&self) -> Result<(), CheckpointError> {
        self.write(true)
    }

    fn files(&self) -> MutexGuard<'_, Copies> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, sync: bool) -> Result<(), CheckpointError> {
        let mut files = self.files();
        let files = &mut *files;
        let mut legacy = self.legacy.lock().unwrap_or_else(|p| p.into_inner());
        let sync = sync || files.sync_owed || legacy.is_some();
        let now = Instant::now();
        // Without a RAM copy the disk takes every write, but no more often
        // than its own interval: the wear bound holds either way.
        let to_disk = sync || files.disk_due(now);
        let bytes = {
            let mut state = self.lock();
            let wanted = match to_disk {
                true => state.dirty || files.disk_behind || (sync && files.disk_unsynced),
                false => state.dirty && files.ram.is_some(),
            };
            if !wanted {
                return Ok(());
            }
            state.dirty = false;
            let snapshot = StateFile {
                version: 1,
                disk_generation: Some(files.disk.generation()),
                entries: state.entries.clone(),
            };
            serde_json::to_vec(&snapshot).map_err(|source| CheckpointError::Parse {
                path: self.path.clone(),
                source,
            })?
        };
        files.generation += 1;
        let generation = files.generation;
        if !to_disk && self.write_ram(files, generation, &bytes) {
            return Ok(());
        }
        if let Err(e) = files.disk.write(generation, &bytes, sync) {
            files.sync_owed |= sync;
            files.disk_failed_at = Some(now);
            // Keep the RAM copy current meanwhile: a crash then does not
            // roll back to the last good disk write.
            if !self.write_ram(files, generation, &bytes) {
                self.lock().dirty = true;
            }
            self.disk_failed(&e, files.ram.is_some());
            return Err(e.into());
        }
        if files.disk_failed_at.take().is_some() && self.health.restore(DISK_CAUSE) {
            tracing::info!(path = %self.path.display(), "checkpoints are written to disk again");
        }
        files.disk_behind = false;
        files.disk_unsynced = !sync;
        files.sync_owed = false;
        files.disk_written_at = now;
        if let Some(old) = legacy.take() {
            if let Err(e) = std::fs::remove_file(&old) {
                tracing::warn!(path = %old.display(), error = %e, "cannot remove the old checkpoint file");
            }
        }
        Ok(())
    }

    /// Writes the RAM copy, if there is one; `false` when there is none
    /// (any more: a failed write gives it up, with a standing warning).
    fn write_ram(&self, files: &mut Copies, generation: u64, bytes: &[u8]) -> bool {
        let Some(ram) = files.ram.as_mut() else {
            return false;
        };
        match ram.write(generation, bytes, false) {
            Ok(()) => {
                files.disk_behind = true;
                true
            }
            Err(e) => {
                let why = format!("cannot keep the checkpoint copy in RAM: {e}: {DISK_ONLY}");
                tracing::warn!("{why}");
                self.health.set_warnings(vec![why]);
                files.ram = None;
                false
            }
        }
    }

    /// Marks checkpoints degraded with the cause of a failed disk write.
    fn disk_failed(&self, e: &SlotFileError, ram_copy: bool) {
        let kept = match ram_copy {
            true => "positions are kept in the RAM copy, which a reboot loses",
            false => "positions are kept in memory only, which a crash loses",
        };
        let reason = e.to_string();
        if self.health.degrade(DISK_CAUSE, reason.clone()) {
            tracing::error!(
                "{reason}: /health reports degraded; {kept}; retried every {}s",
                DISK_RETRY.as_secs()
            );
        } else if let Some(suppressed) = DISK_ERROR_LOG.allow() {
            tracing::error!(suppressed, "{reason}: still degraded; {kept}");
        }
    }

    /// Writes changed positions at most once per interval, as soon as an
    /// acknowledgement moves one (and the disk copy when it is due) until
    /// `cancel`, then once more, synced.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            let changed = self.changed.notified();
            let disk_due = {
                let files = self.files();
                let dirty = self.lock().dirty;
                files.disk_due_at(dirty)
            };
            let disk_due = async {
                match disk_due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changed => {}
                _ = disk_due => {}
                _ = cancel.cancelled() => break,
            }
            // Failures are logged (once) and shown in /health by write().
            let _ = self.flush();
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = cancel.cancelled() => break,
            }
        }
        match self.flush_synced() {
            Ok(()) => self.retire_ram_copy(),
            Err(e) => tracing::error!(error = %e, "final checkpoint not persisted"),
        }
    }

    /// Removes the RAM copy (and its directory when empty) once the disk
    /// copy holds the final state: nothing is left behind in RAM.
    fn retire_ram_copy(&self) {
        let mut files = self.files();
        if files.disk_behind {
            return;
        }
        if let Some(ram) = files.ram.take() {
            match std::fs::remove_file(ram.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // never written
                Err(e) => {
                    tracing::warn!(path = %ram.path().display(), error = %e, "cannot remove the RAM copy of checkpoints")
                }
            }
            if let Some(dir) = ram.path().parent() {
                let _ = std::fs::remove_dir(dir); // kept while the journal uses it
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::checkpoint_recovery::{FILE_NAME, LEGACY_FILE_NAME};

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

    /// A data directory on disk and a RAM directory on tmpfs.
    fn dirs() -> (tempfile::TempDir, tempfile::TempDir) {
        let ram = tempfile::tempdir_in("/dev/shm").expect("/dev/shm (tmpfs) on this machine");
        (tempfile::tempdir().unwrap(), ram)
    }

    fn with_ram(ram: &Path, disk_interval: Duration) -> CheckpointSettings {
        CheckpointSettings {
            interval: Duration::from_secs(5),
            disk_interval,
            ram_dir: Some(ram.to_owned()),
        }
    }

    /// The offset of `key` in the disk copy, read as the next start would
    /// after a reboot (RAM gone).
    fn on_disk(data: &Path, key: &str) -> u64 {
        let cp = Checkpointer::open(data, &CheckpointSettings::disk_only(Duration::from_secs(5)))
            .unwrap();
        cp.entry(key).unwrap().offset
    }

    /// A run that saved `offset` for `k` to the RAM copy only, then was
    /// killed (no final flush).
    fn killed_after_a_ram_write(
        data: &Path,
        settings: &CheckpointSettings,
        k: &SourceKey,
        offset: u64,
    ) {
        let cp = Checkpointer::open(data, settings).unwrap();
        cp.start(k, entry(0)).unwrap();
        cp.complete(k, 0, offset);
        cp.flush().unwrap();
    }

    #[test]
    fn interval_writes_go_to_the_ram_copy_which_a_restart_reads_first() {
        let (data, ram) = dirs();
        let settings = with_ram(ram.path(), Duration::from_secs(3600));
        let cp = Checkpointer::open(data.path(), &settings).unwrap();
        let k = key("files|1:2");
        cp.start(&k, entry(0)).unwrap();
        let disk_before = std::fs::read(data.path().join(FILE_NAME)).unwrap();
        cp.complete(&k, 0, 500);
        cp.flush().unwrap();
        assert_eq!(
            std::fs::read(data.path().join(FILE_NAME)).unwrap(),
            disk_before,
            "the disk copy is not due for an hour"
        );
        drop(cp); // a crash: no final flush
        let again = Checkpointer::open(data.path(), &settings).unwrap();
        assert_eq!(
            again.entry(&k).unwrap().offset,
            500,
            "the RAM copy is newer"
        );
        assert_eq!(
            on_disk(data.path(), &k),
            0,
            "a reboot falls back to the disk copy"
        );
    }

    #[test]
    fn the_disk_copy_catches_up_once_due_and_at_shutdown() {
        let (data, ram) = dirs();
        let settings = with_ram(ram.path(), Duration::from_millis(400));
        let cp = Checkpointer::open(data.path(), &settings).unwrap();
        let k = key("files|1:2");
        cp.start(&k, entry(0)).unwrap();
        cp.complete(&k, 0, 100);
        std::thread::sleep(Duration::from_millis(450));
        cp.flush().unwrap();
        assert_eq!(on_disk(data.path(), &k), 100, "due: written to disk");
        cp.complete(&k, 1, 200);
        cp.flush().unwrap();
        assert_eq!(on_disk(data.path(), &k), 100, "not due again yet");
        std::thread::sleep(Duration::from_millis(450));
        cp.flush().unwrap();
        assert_eq!(
            on_disk(data.path(), &k),
            200,
            "nothing changed since the RAM write, but the disk copy was behind"
        );
        cp.complete(&k, 2, 300);
        cp.flush_synced().unwrap();
        assert_eq!(
            on_disk(data.path(), &k),
            300,
            "a synced flush always reaches disk"
        );
    }

    #[test]
    fn a_ram_copy_without_a_disk_copy_is_not_trusted() {
        let (data, ram) = dirs();
        let settings = with_ram(ram.path(), Duration::from_secs(3600));
        let k = key("files|1:2");
        killed_after_a_ram_write(data.path(), &settings, &k, 700);
        std::fs::remove_file(data.path().join(FILE_NAME)).unwrap(); // data directory emptied
        let cp = Checkpointer::open(data.path(), &settings).unwrap();
        assert!(cp.entry(&k).is_none(), "starts afresh");
        cp.start(&k, entry(5)).unwrap();
        cp.complete(&k, 0, 9);
        cp.flush().unwrap();
        drop(cp);
        let cp = Checkpointer::open(data.path(), &settings).unwrap();
        assert_eq!(
            cp.entry(&k).unwrap().offset,
            9,
            "the old RAM state never comes back"
        );
    }

    #[test]
    fn a_runtime_dir_on_disk_is_not_used_and_disk_writes_keep_their_interval() {
        let data = tempfile::tempdir().unwrap();
        // A directory on disk (the build directory, never tmpfs here).
        let not_ram = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        assert!(!crate::fs_kind::in_ram(not_ram.path()).unwrap());
        let settings = with_ram(not_ram.path(), Duration::from_millis(400));
        let cp = Checkpointer::open(data.path(), &settings).unwrap();
        let k = key("files|1:2");
        cp.start(&k, entry(0)).unwrap();
        cp.complete(&k, 0, 42);
        cp.flush().unwrap();
        assert_eq!(
            on_disk(data.path(), &k),
            0,
            "no RAM copy, and the disk copy is not due"
        );
        std::thread::sleep(Duration::from_millis(450));
        cp.flush().unwrap();
        assert_eq!(on_disk(data.path(), &k), 42, "written once due");
        assert!(!not_ram.path().join(FILE_NAME).exists());
    }

    #[test]
    fn a_ram_copy_left_by_an_earlier_run_is_not_trusted_after_a_run_without_it() {
        let (data, ram) = dirs();
        let with = with_ram(ram.path(), Duration::from_secs(3600));
        let k = key("files|1:2");
        {
            let first = Checkpointer::open(data.path(), &with).unwrap();
            first.start(&k, entry(0)).unwrap();
            for n in 0..5 {
                first.complete(&k, n, 700 + n);
                first.flush().unwrap(); // RAM generations run ahead of the disk
            }
        } // killed
        {
            // A run without the RAM copy: the file was truncated and read again.
            let second =
                Checkpointer::open(data.path(), &CheckpointSettings::disk_only(Duration::ZERO))
                    .unwrap();
            assert_eq!(second.entry(&k).unwrap().offset, 0, "the disk copy");
            second.start(&k, entry(0)).unwrap();
            second.complete(&k, 0, 50);
            second.flush_synced().unwrap();
        }
        let third = Checkpointer::open(data.path(), &with).unwrap();
        assert_eq!(
            third.entry(&k).unwrap().offset,
            50,
            "the first run's RAM copy, of a higher generation, would skip lines"
        );
    }

    #[test]
    fn a_newer_ram_copy_reaches_disk_at_the_first_flush_after_a_restart() {
        let (data, ram) = dirs();
        let settings = with_ram(ram.path(), Duration::from_secs(3600));
        let k = key("files|1:2");
        killed_after_a_ram_write(data.path(), &settings, &k, 300); // disk copy not yet due
        assert_eq!(on_disk(data.path(), &k), 0);
        let cp = Checkpointer::open(data.path(), &settings).unwrap();
        assert_eq!(cp.entry(&k).unwrap().offset, 300);
        cp.flush().unwrap();
        assert_eq!(
            on_disk(data.path(), &k),
            300,
            "a run restarting faster than the disk interval still moves the disk copy on"
        );
    }

    #[test]
    fn advances_only_past_contiguous_completions() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
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
        let cp = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
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
        let cp = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
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
            let cp = Checkpointer::open(
                dir.path(),
                &CheckpointSettings::disk_only(Duration::from_secs(5)),
            )
            .unwrap();
            cp.start(&k, entry(7)).unwrap();
        }
        let cp = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
        let resumed = cp.entry(&k).unwrap();
        assert_eq!(resumed.offset, 7);
        cp.start(&k, resumed).unwrap();
        cp.complete(&k, 0, 99);
        cp.flush().unwrap();
        let cp = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
        assert_eq!(cp.entry(&k).unwrap().offset, 99);
    }

    #[test]
    fn unchanged_state_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
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

    /// The files in `dir` whose name starts with `prefix`.
    fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .collect()
    }

    #[test]
    fn a_damaged_state_file_is_moved_aside_and_tracking_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let settings = CheckpointSettings::disk_only(Duration::from_secs(5));
        std::fs::write(dir.path().join(FILE_NAME), vec![0xa5u8; 4096]).unwrap();
        let cp = Checkpointer::open(dir.path(), &settings).unwrap();
        assert!(cp.entries_with_prefix("").is_empty());
        let aside = named(dir.path(), "checkpoints.state.damaged-");
        assert_eq!(aside.len(), 1, "kept for inspection");
        assert_eq!(std::fs::read(&aside[0]).unwrap(), vec![0xa5u8; 4096]);
        let k = key("files|1:2");
        cp.start(&k, entry(5)).unwrap();
        drop(cp);
        let cp = Checkpointer::open(dir.path(), &settings).unwrap();
        assert_eq!(cp.entry(&k).unwrap().offset, 5, "a new, whole file");
        drop(cp);

        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        std::fs::write(dir.path().join(LEGACY_FILE_NAME), b"{not json").unwrap();
        let cp = Checkpointer::open(dir.path(), &settings).unwrap();
        assert!(cp.entry(&k).is_none());
        assert_eq!(named(dir.path(), "checkpoints.json.damaged-").len(), 1);
        assert!(!dir.path().join(LEGACY_FILE_NAME).exists());
    }

    #[test]
    fn a_damaged_disk_copy_resumes_from_an_intact_ram_copy() {
        let (data, ram) = dirs();
        let settings = with_ram(ram.path(), Duration::from_secs(3600));
        let k = key("files|1:2");
        killed_after_a_ram_write(data.path(), &settings, &k, 700);
        std::fs::write(data.path().join(FILE_NAME), b"garbage").unwrap();
        let cp = Checkpointer::open(data.path(), &settings).unwrap();
        assert_eq!(
            cp.entry(&k).unwrap().offset,
            700,
            "the positions of this boot"
        );
        assert_eq!(named(data.path(), "checkpoints.state.damaged-").len(), 1);
        cp.flush().unwrap();
        assert_eq!(
            on_disk(data.path(), &k),
            700,
            "the disk copy is written again at the first flush"
        );
    }

    #[test]
    fn a_damaged_ram_copy_is_moved_aside_and_the_disk_copy_used() {
        let (data, ram) = dirs();
        let settings = with_ram(ram.path(), Duration::from_secs(3600));
        let k = key("files|1:2");
        killed_after_a_ram_write(data.path(), &settings, &k, 700);
        std::fs::write(ram.path().join(FILE_NAME), vec![1u8; 100]).unwrap();
        let cp = Checkpointer::open(data.path(), &settings).unwrap();
        assert_eq!(
            cp.entry(&k).unwrap().offset,
            0,
            "the older disk copy: re-read, never skipped"
        );
        assert_eq!(named(ram.path(), "checkpoints.state.damaged-").len(), 1);
        cp.start(&k, entry(0)).unwrap();
        cp.complete(&k, 0, 10);
        cp.flush().unwrap();
        drop(cp);
        let cp = Checkpointer::open(data.path(), &settings).unwrap();
        assert_eq!(cp.entry(&k).unwrap().offset, 10, "a new RAM copy is kept");
    }

    #[tokio::test]
    async fn acknowledgements_reach_the_ram_copy_within_the_interval_coalesced() {
        let (data, ram) = dirs();
        let settings = CheckpointSettings {
            interval: Duration::from_millis(200),
            disk_interval: Duration::from_secs(3600),
            ram_dir: Some(ram.path().to_owned()),
        };
        let cp = Checkpointer::open(data.path(), &settings).unwrap();
        let k = key("files|1:2");
        cp.start(&k, entry(0)).unwrap();
        let cancel = CancellationToken::new();
        let writer = tokio::spawn(Arc::clone(&cp).run(cancel.clone()));
        let in_ram = || {
            let loaded = SlotFile::open(&ram.path().join(FILE_NAME), true).unwrap();
            let generation = loaded.file.generation();
            let state: StateFile = loaded
                .payload
                .map(|p| serde_json::from_slice(&p).unwrap())
                .unwrap_or_default();
            (state.entries.get(&*k).map_or(0, |e| e.offset), generation)
        };
        cp.complete(&k, 0, 10);
        for _ in 0..200 {
            if in_ram().0 == 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            in_ram().0,
            10,
            "the first acknowledgement reached the RAM copy"
        );
        let (_, before) = in_ram();
        let started = Instant::now();
        for seq in 1..1000 {
            cp.complete(&k, seq, (seq + 1) * 10);
            if seq % 100 == 99 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let acked_in = started.elapsed();
        while in_ram().0 != 10_000 {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "never reached the RAM copy"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let reached = started.elapsed();
        let (_, after) = in_ram();
        assert!(
            reached <= acked_in + Duration::from_millis(200 + 300),
            "within one interval of the last acknowledgement ({reached:?}, acked in {acked_in:?})"
        );
        let writes = after - before;
        assert!(
            (1..=2 + acked_in.as_millis() as u64 / 200).contains(&writes),
            "1000 acknowledgements coalesced into {writes} writes"
        );
        assert_eq!(
            on_disk(data.path(), &k),
            0,
            "the disk copy keeps its interval"
        );
        cancel.cancel();
        writer.await.unwrap();
        assert_eq!(
            on_disk(data.path(), &k),
            10_000,
            "the final write reaches disk"
        );
    }

    #[test]
    fn state_of_the_earlier_json_file_is_taken_over_and_the_old_file_removed() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join(LEGACY_FILE_NAME);
        std::fs::write(
            &legacy,
            br#"{"version":1,"entries":{"files|1:2":{"path":"/x","offset":42}}}"#,
        )
        .unwrap();
        let cp = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
        assert_eq!(cp.entry("files|1:2").unwrap().offset, 42);
        cp.flush().unwrap();
        assert!(
            !legacy.exists(),
            "the old file is gone once the new one is written"
        );
        let cp = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
        assert_eq!(cp.entry("files|1:2").unwrap().offset, 42);
    }

    #[test]
    fn periodic_writes_reuse_the_page_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
        let k = key("files|1:2");
        cp.start(&k, entry(0)).unwrap();
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().ino();
        for seq in 0..10 {
            cp.complete(&k, seq, (seq + 1) * 100);
            cp.flush().unwrap();
        }
        let meta = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(meta.ino(), inode, "no new file per write");
        assert_eq!(meta.len(), 4096, "two slots in one page");
        let cp = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
        assert_eq!(cp.entry(&k).unwrap().offset, 1000);
    }
}
