//! Checkpoints: how far each replayable source has been delivered.
//!
//! The [`Checkpointer`] advances a source key (one tailed file, one journal)
//! to its highest *contiguously* acknowledged position and persists the state
//! (JSON in a [`SlotFile`], written in place) at most every interval and
//! only when something changed. The start position of a newly seen key is
//! persisted and synced at once, so a crash before the first interval
//! neither skips nor re-reads; so is the final state at shutdown.
//! It never writes event data.
//!
//! Two copies spare the flash: every interval (5 s) the state goes to a copy
//! in RAM (tmpfs, beside the RAM journal), which survives a crash or restart
//! of the process and costs no storage writes; the copy in the data
//! directory is rewritten at most every `disk_interval` (120 s), plus once,
//! synced, per newly seen source key: so few writes reach the storage
//! whatever the kernel's writeback does. Both carry a generation; the newest
//! intact one wins at start, the RAM copy only beside the disk copy it was
//! written with. After a reboot (RAM gone) the disk copy is up to `disk_interval`
//! older: the difference is read again (duplicates), never skipped. Without
//! a RAM directory every write goes to disk, at most every `disk_interval`.

use super::checkpoint_file::{SlotFile, SlotFileError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
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
struct StateFile {
    version: u32,
    /// Generation of the disk copy when this state was written: a RAM copy
    /// counts only beside that very disk copy, never beside one a later run
    /// (without the RAM copy) has rewritten since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disk_generation: Option<u64>,
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
    /// key, the interval task) would otherwise write an older snapshot
    /// over a newer one.
    files: Mutex<Copies>,
    /// The state file of earlier versions, removed after the first write.
    legacy: Mutex<Option<PathBuf>>,
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
    /// The RAM copy holds a newer state than the disk copy.
    disk_behind: bool,
    /// The last disk write was not forced to storage.
    disk_unsynced: bool,
    /// A forced write failed: the next write forces again.
    sync_owed: bool,
}

/// Where and how often checkpoints are persisted.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    /// How often changed positions are saved (to the RAM copy when there is one).
    pub interval: Duration,
    /// How often the disk copy takes the RAM copy's state.
    pub disk_interval: Duration,
    /// The RAM-backed directory of the RAM copy; with `None`, or a directory
    /// not on tmpfs/ramfs, checkpoints go to disk only, every `disk_interval`.
    pub ram_dir: Option<PathBuf>,
}

impl CheckpointSettings {
    /// Disk only: every flush writes (the interval task flushes every
    /// `interval`).
    pub fn disk_only(interval: Duration) -> Self {
        CheckpointSettings {
            interval,
            disk_interval: Duration::ZERO,
            ram_dir: None,
        }
    }
}

const FILE_NAME: &str = "checkpoints.state";
/// Whole-file JSON written by write-temp + rename (before 0.2).
const LEGACY_FILE_NAME: &str = "checkpoints.json";

fn parse(path: &Path, bytes: &[u8]) -> Result<StateFile, CheckpointError> {
    serde_json::from_slice::<StateFile>(bytes).map_err(|source| CheckpointError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// What happens without a RAM copy, said in every log line about losing it.
const DISK_ONLY: &str = "checkpoints go to disk only, every checkpoint_disk_interval";

/// Opens the RAM copy in `dir`, or `None` when `dir` is not RAM-backed or
/// unusable (logged). Its state comes back only when it is newer than the
/// disk copy (`disk`: generation of an existing disk copy) and was written
/// beside that very disk copy; otherwise (a first start, an emptied data
/// directory, a later run without the RAM copy) it is removed, not trusted.
fn open_ram_copy(dir: &Path, disk: Option<u64>) -> Option<(SlotFile, Option<StateFile>)> {
    let path = dir.join(FILE_NAME);
    match crate::buffer::journal::prepare_ram_dir(dir) {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(dir = %dir.display(),
                "runtime directory is not RAM-backed: {DISK_ONLY}");
            return None;
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e,
                "no RAM copy of checkpoints: {DISK_ONLY}");
            return None;
        }
    }
    let trusted = match SlotFile::open(&path, true) {
        Ok(loaded) => match (loaded.payload, disk) {
            (Some(payload), Some(disk)) if loaded.file.generation() > disk => {
                match parse(&path, &payload) {
                    Ok(state) if state.disk_generation == Some(disk) => {
                        return Some((loaded.file, Some(state)))
                    }
                    Ok(_) => "written beside another disk copy",
                    Err(_) => "unreadable",
                }
            }
            (None, _) => return Some((loaded.file, None)),
            (Some(_), None) => "no disk copy",
            (Some(_), Some(_)) => "older than the disk copy",
        },
        Err(_) => "damaged",
    };
    tracing::info!(path = %path.display(), reason = trusted, "RAM copy of checkpoints not used; removed");
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e,
            "cannot remove the RAM copy of checkpoints: {DISK_ONLY}");
        return None;
    }
    match SlotFile::open(&path, true) {
        Ok(loaded) => Some((loaded.file, None)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e,
                "no RAM copy of checkpoints: {DISK_ONLY}");
            None
        }
    }
}

impl Checkpointer {
    /// Loads `data_dir/checkpoints.state` or, when newer, its RAM copy
    /// (absent means empty; a `checkpoints.json` of an earlier version is
    /// taken over).
    pub fn open(
        data_dir: &Path,
        settings: &CheckpointSettings,
    ) -> Result<Arc<Self>, CheckpointError> {
        let path = data_dir.join(FILE_NAME);
        let loaded = SlotFile::open(&path, false)?;
        let disk_generation = loaded.file.generation();
        let ram = settings.ram_dir.as_deref().and_then(|dir| {
            open_ram_copy(dir, loaded.payload.is_some().then_some(disk_generation))
        });
        let (ram, newer) = match ram {
            Some((file, newer)) => (Some(file), newer),
            None => (None, None),
        };
        let generation = ram
            .as_ref()
            .map_or(disk_generation, |r| r.generation().max(disk_generation));
        let legacy_path = data_dir.join(LEGACY_FILE_NAME);
        let mut legacy = None;
        let entries = match (newer, loaded.payload) {
            (Some(state), _) => state.entries,
            (None, Some(payload)) => parse(&path, &payload)?.entries,
            (None, None) => match std::fs::read(&legacy_path) {
                Ok(bytes) => {
                    legacy = Some(legacy_path.clone());
                    parse(&legacy_path, &bytes)?.entries
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                Err(source) => {
                    return Err(CheckpointError::Read {
                        path: legacy_path,
                        source,
                    })
                }
            },
        };
        let dirty = legacy.is_some();
        // A newer RAM copy goes to disk at the first write: due at once, so
        // that a run restarting faster than the disk interval still moves
        // the disk copy on.
        let disk_behind = generation > disk_generation;
        let now = Instant::now();
        let disk_written_at = match disk_behind {
            true => now.checked_sub(settings.disk_interval).unwrap_or(now),
            false => now,
        };
        Ok(Arc::new(Checkpointer {
            path,
            interval: settings.interval,
            state: Mutex::new(State {
                entries,
                dirty,
                ..State::default()
            }),
            files: Mutex::new(Copies {
                disk: loaded.file,
                ram,
                generation,
                disk_interval: settings.disk_interval,
                disk_written_at,
                disk_behind,
                disk_unsynced: false,
                sync_owed: false,
            }),
            legacy: Mutex::new(legacy),
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

    /// Writes the state file if anything changed since the last write: into
    /// the page cache, which a process crash does not lose.
    pub fn flush(&self) -> Result<(), CheckpointError> {
        self.write(false)
    }

    /// Like [`flush`](Self::flush), and forces the state to storage.
    pub fn flush_synced(&self) -> Result<(), CheckpointError> {
        self.write(true)
    }

    fn write(&self, sync: bool) -> Result<(), CheckpointError> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let files = &mut *files;
        let mut legacy = self.legacy.lock().unwrap_or_else(|p| p.into_inner());
        let sync = sync || files.sync_owed || legacy.is_some();
        // Without a RAM copy the disk takes every write, but no more often
        // than its own interval: the wear bound holds either way.
        let to_disk = sync || files.disk_written_at.elapsed() >= files.disk_interval;
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
        if let Some(ram) = files.ram.as_mut().filter(|_| !to_disk) {
            match ram.write(generation, &bytes) {
                Ok(()) => {
                    files.disk_behind = true;
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = %e,
                        "cannot keep the checkpoint copy in RAM: {DISK_ONLY}");
                    files.ram = None;
                }
            }
        }
        let disk = &mut files.disk;
        let written = disk.write(generation, &bytes).and_then(|()| match sync {
            true => disk.sync(),
            false => Ok(()),
        });
        if let Err(e) = written {
            self.lock().dirty = true;
            files.sync_owed |= sync;
            // Keep the RAM copy current meanwhile: a crash then does not
            // roll back to the last good disk write.
            if let Some(ram) = files.ram.as_mut() {
                if ram.write(generation, &bytes).is_ok() {
                    files.disk_behind = true;
                }
            }
            return Err(e.into());
        }
        files.disk_behind = false;
        files.disk_unsynced = !sync;
        files.sync_owed = false;
        files.disk_written_at = Instant::now();
        if let Some(old) = legacy.take() {
            if let Err(e) = std::fs::remove_file(&old) {
                tracing::warn!(path = %old.display(), error = %e, "cannot remove the old checkpoint file");
            }
        }
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
        match self.flush_synced() {
            Ok(()) => self.retire_ram_copy(),
            Err(e) => tracing::error!(error = %e, "final checkpoint not persisted"),
        }
    }

    /// Removes the RAM copy (and its directory when empty) once the disk
    /// copy holds the final state: nothing is left behind in RAM.
    fn retire_ram_copy(&self) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
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
        assert!(!crate::buffer::journal::in_ram(not_ram.path()).unwrap());
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

    #[test]
    fn corrupt_state_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), vec![0u8; 4096]).unwrap();
        let err = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no intact slot"), "{err}");
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        std::fs::write(dir.path().join(LEGACY_FILE_NAME), b"{not json").unwrap();
        let err = Checkpointer::open(
            dir.path(),
            &CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");
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
