//! The file source: tails the files matching a set of globs, through
//! rotation, truncation and restarts, and container logs riding on it.
//!
//! One blocking thread per source serves all its files round-robin, reading
//! at most `read_budget` bytes of one file before moving to the next, so no
//! file starves the others and thousands of files need no task each. Per
//! file, bytes flow [`Reader`] → [`LineSplitter`] → [`Decoder`] (plain,
//! docker, CRI) → multiline [`Aggregator`] → one batch per read with one
//! [`BatchAck`]. The [`Checkpointer`] holds the delivered offset per file
//! identity ([`FileIdentity`]: device, inode and a fingerprint of the first
//! line); the acknowledged end never passes a line still held by the decoder
//! or the aggregator.
//!
//! Files are found by globbing at start, on inotify events ([`watch`]) and
//! every `glob_interval`; each is re-checked (one `fstat`) at once when
//! inotify reports it changed, and every `poll_interval` — or only with
//! each re-glob when inotify watches every directory on a local file system
//! (it then sees every write; the re-check is a safety net). A file no
//! glob matches any more (renamed away, deleted) is read to its end through
//! its open descriptor and released once idle, or after `rotate_wait`. A
//! file that shrank below the read position was truncated (copytruncate):
//! reading restarts at 0, counted and logged.
//!
//! At most `max_open_files` descriptors are held ([`descriptors`]): beyond
//! that, files are read in turns. A file waiting for a descriptor takes the
//! one of the longest-idle open file (or of one that had its turn); a
//! closed file is watched with one `stat` by name and opened again by
//! identity ([`TailedFile::reopen`]). A closed file that rotates away is
//! found again by inode beside its old name and drained as usual; one that
//! left its directory (or was deleted) while closed is released at once,
//! losing only what was written to it after it was closed. Only a missing
//! name (ENOENT) counts as a file going away: running out of descriptors,
//! an unreadable directory or any other failed open or stat keeps every
//! file at its identity and offset, counted and logged (rate-limited).
//! Released files are remembered by identity ([`released`]), so a directory
//! moved away and back resumes where its files were delivered to.

mod decode;
pub(crate) mod descriptors;
pub mod framing;
mod identity;
mod lines;
mod multiline;
mod multiline_presets;
mod multiline_rules;
mod reader;
mod released;
mod tailed;
mod turns;
mod watch;

pub use decode::{Decoder, LogFormat, Message};
pub use identity::{FileIdentity, Fingerprint};
pub use lines::{Line, LineSplitter};
#[cfg(test)]
pub(crate) use multiline::join_lines;
pub use multiline::{Aggregator, Boundaries, MultilineConfig, MultilineMode};
pub use multiline_presets::{preset as multiline_preset, PRESET_NAMES as MULTILINE_PRESETS};
pub use multiline_rules::{RuleSpec, RulesError, StateRules};

use crate::buffer::journal::JournaledSender;
use crate::event::{Attributes, EventBatch, Resource, Value};
use crate::pipeline::channel::BatchSender;
use crate::pipeline::checkpoint::{Checkpointer, Entry, SourceKey};
use crate::sinks::log_limit::LogLimit;
use crate::telemetry::{self, Metric};
use bytes::BytesMut;
use descriptors::{DescriptorPressure, FailureCounters, OpenFailure};
use identity::parse_key;
use released::ReleasedFiles;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tailed::{Progress, TailedFile};
use tokio_util::sync::CancellationToken;
use watch::{ChangeWatcher, Changes, Wake};

/// Descriptors a file source holds at most by default: well under a default
/// `ulimit -n` of 1024 and the unit's LimitNOFILE, leaving room for
/// sockets, checkpoints and the other sources.
pub const DEFAULT_MAX_OPEN_FILES: usize = 256;

/// Where to start in a file that has no checkpoint and existed at start-up.
/// Files that appear later are always read from their beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    Beginning,
    End,
}

/// Configuration of one file source.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    pub name: String,
    pub include: Vec<String>,
    /// Globs of paths never tailed, even when an include glob matches.
    pub exclude: Vec<String>,
    pub read_from: ReadFrom,
    pub max_line_bytes: usize,
    /// Every file is re-checked this often even without an inotify event.
    pub poll_interval: Duration,
    /// The globs are re-evaluated this often even without an inotify event.
    pub glob_interval: Duration,
    /// Bytes read from one file before serving the next.
    pub read_budget: usize,
    /// `service.name` of the records (default: the source name).
    pub service_name: Option<String>,
    /// How long a file that rotated away (or was deleted) is still read.
    pub rotate_wait: Duration,
    /// Read `*.gz` files the globs match (otherwise they are skipped).
    pub read_compressed: bool,
    pub multiline: Option<MultilineConfig>,
    pub format: LogFormat,
    /// Use inotify as a wake-up; polling alone when false.
    pub inotify: bool,
    /// Descriptors held open at most (also at most half the process's
    /// RLIMIT_NOFILE); further files are read in turns.
    pub max_open_files: usize,
}

impl FileSourceConfig {
    pub fn new(name: impl Into<String>, include: Vec<String>) -> Self {
        FileSourceConfig {
            name: name.into(),
            include,
            exclude: Vec::new(),
            read_from: ReadFrom::End,
            max_line_bytes: 256 * 1024,
            poll_interval: Duration::from_secs(1),
            glob_interval: Duration::from_secs(10),
            read_budget: 256 * 1024,
            service_name: None,
            rotate_wait: Duration::from_secs(30),
            read_compressed: false,
            multiline: None,
            format: LogFormat::Plain,
            inotify: true,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
        }
    }
}

/// What a source needs from the agent.
#[derive(Debug, Clone)]
pub struct SourceContext {
    pub out: BatchSender,
    /// The same way in, journaled in RAM: for data that cannot be read again.
    pub unreplayable: JournaledSender,
    pub checkpointer: Arc<Checkpointer>,
    pub cancel: CancellationToken,
    pub host_name: String,
}

/// The counters of one file source.
pub(crate) struct Counters {
    pub events: Metric,
    pub bytes: Metric,
    pub truncated: Metric,
    pub invalid_utf8: Metric,
    pub empty: Metric,
    pub read_errors: Metric,
    pub decode_errors: Metric,
    pub truncations: Metric,
    pub rotations: Metric,
    pub files: Metric,
    /// Descriptors held open.
    pub descriptors: Metric,
    /// Failed opens of files, by reason.
    pub open_errors: FailureCounters,
    /// Directories and paths of the globs that could not be read, by reason.
    pub glob_errors: FailureCounters,
}

impl Counters {
    fn new(name: &str) -> Self {
        let c = |metric| telemetry::counter(metric, &[("component", name)]);
        Counters {
            events: c("shipd_events_in_total"),
            bytes: c("shipd_bytes_in_total"),
            truncated: c("shipd_lines_truncated_total"),
            invalid_utf8: c("shipd_invalid_utf8_total"),
            empty: telemetry::counter(
                "shipd_events_dropped_total",
                &[("component", name), ("reason", "empty_line")],
            ),
            read_errors: c("shipd_read_errors_total"),
            decode_errors: c("shipd_decode_errors_total"),
            truncations: c("shipd_file_truncations_total"),
            rotations: c("shipd_file_rotations_total"),
            files: telemetry::gauge("shipd_files_open", &[("component", name)]),
            descriptors: telemetry::gauge("shipd_file_descriptors_open", &[("component", name)]),
            open_errors: FailureCounters::new("shipd_file_open_errors_total", name),
            glob_errors: FailureCounters::new("shipd_file_glob_errors_total", name),
        }
    }
}

/// Shortest pause between two re-globs triggered by inotify.
const RESCAN_DEBOUNCE: Duration = Duration::from_millis(100);
/// A rotated file at its end is released after this long without growth
/// (a writer may still append through its old descriptor for a moment).
const ROTATED_IDLE: Duration = Duration::from_secs(1);
/// A file that could not be opened (other than for want of descriptors) is
/// tried again after this long.
const OPEN_RETRY: Duration = Duration::from_secs(5);
/// At most one log line per this period for each kind of repeated failure.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(60);

/// A running file source.
pub struct FileSource {
    cfg: FileSourceConfig,
    ctx: SourceContext,
    files: Vec<TailedFile>,
    /// (device, inode) → index in `files`.
    by_inode: HashMap<(u64, u64), usize>,
    /// Path (as globbed, and its symlink target) → index in `files`.
    by_path: HashMap<PathBuf, usize>,
    exclude: Vec<glob::Pattern>,
    counters: Counters,
    buf: BytesMut,
    source_name: Arc<str>,
    watcher: ChangeWatcher,
    /// Keys of released files, forgotten once their last batch is delivered.
    retired: Vec<(SourceKey, u64)>,
    /// Checkpoints of this source found at start-up: fingerprint → offset.
    known_fingerprints: HashMap<u64, u64>,
    /// Released files by identity, for when they come back.
    released: ReleasedFiles,
    /// Descriptors held at most, and what running out of them does.
    pressure: DescriptorPressure,
    /// Rate limits of repeated failure logs.
    glob_error_log: LogLimit,
    open_error_log: LogLimit,
    checkpoint_error_log: LogLimit,
}

impl FileSource {
    pub fn new(cfg: FileSourceConfig, ctx: SourceContext) -> Self {
        let counters = Counters::new(&cfg.name);
        let exclude = cfg
            .exclude
            .iter()
            .filter_map(|p| match glob::Pattern::new(p) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!(source = %cfg.name, pattern = %p, error = %e, "invalid exclude glob ignored");
                    None
                }
            })
            .collect();
        let watcher = ChangeWatcher::new(cfg.inotify);
        let source_name: Arc<str> = Arc::from(cfg.name.as_str());
        let (soft_limit, _) = descriptors::descriptor_limit();
        let max_open = descriptors::open_file_budget(cfg.max_open_files, soft_limit);
        if max_open < cfg.max_open_files {
            tracing::info!(source = %cfg.name, max_open_files = cfg.max_open_files, limit_nofile = soft_limit, holding_at_most = max_open, "max_open_files lowered to half the descriptor limit");
        }
        let pressure = DescriptorPressure::new(&cfg.name, max_open);
        FileSource {
            cfg,
            ctx,
            files: Vec::new(),
            by_inode: HashMap::new(),
            by_path: HashMap::new(),
            exclude,
            counters,
            buf: BytesMut::new(),
            source_name,
            watcher,
            retired: Vec::new(),
            known_fingerprints: HashMap::new(),
            released: ReleasedFiles::default(),
            pressure,
            glob_error_log: LogLimit::new(FAILURE_LOG_PERIOD),
            open_error_log: LogLimit::new(FAILURE_LOG_PERIOD),
            checkpoint_error_log: LogLimit::new(FAILURE_LOG_PERIOD),
        }
    }

    /// Runs on the blocking pool until cancelled.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        let waker = self.watcher.waker();
        let cancel = self.ctx.cancel.clone();
        tokio::spawn(async move {
            cancel.cancelled().await;
            let _ = waker.send(Wake::Stop);
        });
        tokio::task::spawn_blocking(move || self.run())
    }

    fn run(mut self) {
        let handle = tokio::runtime::Handle::current();
        self.watch_roots();
        self.load_known_fingerprints();
        // `read_from = end` is for the first start only: files unknown to a
        // source that ran before appeared while it was down, so they are read
        // from the beginning.
        let first_start = self.known_fingerprints.is_empty();
        self.scan(first_start);
        self.resume_rotated_while_down();
        // Said after the first scan: a file created from now on is new to the
        // source and read from its beginning, whatever `read_from` says.
        tracing::info!(source = %self.cfg.name, inotify = self.watcher.is_active(), poll_interval = ?self.poll_interval(), max_open_files = self.pressure.budget(), "file source started");
        let mut last_scan = Instant::now();
        let mut rescan = false;
        let mut last_poll = Instant::now();
        while !self.ctx.cancel.is_cancelled() {
            let now = Instant::now();
            if (rescan && now.duration_since(last_scan) >= RESCAN_DEBOUNCE)
                || now.duration_since(last_scan) >= self.cfg.glob_interval
            {
                self.watch_roots();
                self.scan(false);
                last_scan = now;
                rescan = false;
            }
            if now.duration_since(last_poll) >= self.poll_interval() {
                for f in &mut self.files {
                    f.due = true;
                }
                last_poll = now;
            }
            if !self.open_due(&handle) {
                return;
            }
            self.activate_due();
            let mut progressed = false;
            for i in 0..self.files.len() {
                if !self.files[i].due || !self.files[i].is_open() {
                    continue;
                }
                self.files[i].turns_since_open = self.files[i].turns_since_open.saturating_add(1);
                match self.turn(i) {
                    Progress::Batch(batch) => {
                        progressed = true;
                        if !batch.is_empty() && !self.send(&handle, batch) {
                            return;
                        }
                    }
                    Progress::Busy => progressed = true,
                    Progress::Idle => self.files[i].due = false,
                }
                if self.files[i].finished {
                    // An archive read to its end is never read again.
                    self.files[i].close();
                }
            }
            if !self.flush_timed_out(&handle) || !self.release_rotated(&handle) {
                return;
            }
            self.forget_delivered_retired();
            self.counters.files.set(self.files.len() as u64);
            self.counters
                .descriptors
                .set(self.files.iter().filter(|f| f.is_open()).count() as u64);
            // While busy, only collect the wake-ups queued meanwhile (so they
            // never pile up); when idle, sleep until the next thing is due.
            let timeout = if progressed {
                Duration::ZERO
            } else {
                self.next_wake(last_poll, last_scan, rescan)
            };
            let changes = self.watcher.wait(timeout);
            if changes.stop {
                return;
            }
            rescan |= changes.layout;
            self.mark_changed(&changes);
        }
    }

    /// One turn at file `i`.
    fn turn(&mut self, i: usize) -> Progress {
        self.files[i].read(&self.cfg, &self.ctx, &self.counters, &mut self.buf)
    }

    /// Settles the start of every due file whose identity is still open,
    /// then persists all their start positions in one checkpoint write
    /// before anything is read from them.
    fn activate_due(&mut self) {
        let mut started = false;
        for i in 0..self.files.len() {
            let f = &self.files[i];
            if f.due && f.is_open() && !f.is_active() && !f.finished {
                started |= self.activate(i);
            }
        }
        if started {
            if let Err(e) = self.ctx.checkpointer.flush_synced() {
                if let Some(suppressed) = self.checkpoint_error_log.allow() {
                    tracing::error!(source = %self.cfg.name, error = %e, suppressed, "start positions not persisted; will retry");
                }
            }
        }
    }

    /// Fingerprints file `i` and starts it where it should start: its
    /// checkpoint, else where it was when it was released (it came back:
    /// a directory moved away and back), else where a file it is a copy of
    /// was, else its end (unknown at start-up, `read_from = end`), else its
    /// beginning. `false` while its first line is incomplete, and while
    /// batches of its earlier reading (released) are still in flight.
    fn activate(&mut self, i: usize) -> bool {
        let f = &self.files[i];
        let fingerprint = match f.fingerprint() {
            Ok(Some(fp)) => fp,
            Ok(None) => return false,
            Err(e) => {
                self.counters.read_errors.inc();
                let path = f.path.clone();
                self.open_failed(i, &path, &e);
                return false;
            }
        };
        let identity = FileIdentity {
            dev: f.inode.0,
            ino: f.inode.1,
            fingerprint,
        };
        let size = f.len().ok().flatten();
        let key = identity.key(&self.cfg.name);
        if self.retired.iter().any(|(k, _)| **k == *key) {
            return false;
        }
        let legacy_key = format!("{}|{}:{}", self.cfg.name, f.inode.0, f.inode.1);
        let checkpoint = self.ctx.checkpointer.entry(&key).or_else(|| {
            let legacy = self.ctx.checkpointer.entry(&legacy_key);
            if legacy.is_some() {
                self.ctx.checkpointer.forget(&legacy_key);
            }
            legacy
        });
        let checkpoint = checkpoint.or_else(|| {
            let offset = self.released.take(&key)?;
            tracing::info!(path = %f.path.display(), offset, "file released earlier is back (same device, inode and first line); resuming where it was delivered to");
            Some(start_entry(&f.path, offset))
        });
        let offset = match checkpoint {
            Some(entry) if size.is_some_and(|s| entry.offset > s) => {
                self.counters.truncations.inc();
                tracing::warn!(path = %f.path.display(), checkpoint = entry.offset, size, "file shrank since its checkpoint; reading from the start");
                0
            }
            Some(entry) => entry.offset,
            None => match self.copy_of(i, fingerprint, size) {
                Some(offset) => {
                    tracing::info!(path = %f.path.display(), offset, "file is a copy of one already read; resuming where that one was");
                    offset
                }
                None if f.read_from_end && f.is_compressed() => {
                    self.files[i].finished = true;
                    tracing::info!(path = %self.files[i].path.display(), "archive present at start-up skipped (read_from = end)");
                    return false;
                }
                None if f.read_from_end => f.size_at_open,
                None => 0,
            },
        };
        let f = &mut self.files[i];
        match f.begin(identity, offset, &self.cfg, &self.ctx) {
            Ok(offset) => {
                tracing::info!(source = %self.cfg.name, path = %f.path.display(), offset, "reading file");
                true
            }
            Err(e) => {
                self.counters.read_errors.inc();
                let path = f.path.clone();
                self.open_failed(i, &path, &e);
                false
            }
        }
    }

    /// Where to resume a new file whose first line matches a file already
    /// read under another inode (a copytruncate copy, an archive): that
    /// file's position, if the new one is at least that long.
    fn copy_of(&self, i: usize, fingerprint: Fingerprint, size: Option<u64>) -> Option<u64> {
        if !fingerprint.matches_copies() {
            return None;
        }
        let inode = self.files[i].inode;
        let open = self.files.iter().find_map(|f| {
            if f.inode == inode {
                return None;
            }
            match (f.identity(), f.before_truncation) {
                (Some(id), _) if id.fingerprint == fingerprint => f.resume_offset(),
                (_, Some((fp, offset))) if fp == fingerprint => Some(offset),
                _ => None,
            }
        });
        let offset = open.or_else(|| self.known_fingerprints.get(&fingerprint.hash).copied())?;
        size.is_none_or(|s| offset <= s).then_some(offset)
    }

    /// Watches the directory each include glob starts from (again at each
    /// re-glob, for those that did not exist yet or were made again).
    fn watch_roots(&mut self) {
        self.watcher.recheck();
        for pattern in &self.cfg.include {
            let (root, recursive) = watch::watch_root(pattern);
            self.watcher.watch(&root, recursive);
        }
    }

    /// How often every file is re-checked without a wake-up: `poll_interval`,
    /// or with the re-glob when inotify sees every change in every directory
    /// (then the re-check only guards against a missed event, and an idle
    /// agent does not wake every second per source).
    fn poll_interval(&self) -> Duration {
        if self.watcher.sees_every_change() {
            self.cfg.poll_interval.max(self.cfg.glob_interval)
        } else {
            self.cfg.poll_interval
        }
    }

    /// How long the loop may sleep: until the next poll, re-glob or
    /// multiline timeout.
    fn next_wake(&self, last_poll: Instant, last_scan: Instant, rescan: bool) -> Duration {
        let now = Instant::now();
        let mut wake = (last_poll + self.poll_interval()).min(last_scan + self.cfg.glob_interval);
        if rescan {
            wake = wake.min(last_scan + RESCAN_DEBOUNCE);
        }
        if let Some(retry) = self.pressure.retry_at().filter(|t| *t > now) {
            if self.files.iter().any(|f| f.waiting_since.is_some()) {
                wake = wake.min(retry);
            }
        }
        for f in &self.files {
            if let Some(deadline) = f.multiline_deadline() {
                wake = wake.min(deadline);
            }
        }
        wake.saturating_duration_since(now)
    }

    fn mark_changed(&mut self, changes: &Changes) {
        if changes.overflow {
            for f in &mut self.files {
                f.due = true;
            }
            return;
        }
        for path in &changes.modified {
            if let Some(&i) = self.by_path.get(path) {
                self.files[i].due = true;
            }
        }
    }

    fn send(&self, handle: &tokio::runtime::Handle, mut batch: EventBatch) -> bool {
        batch.source = Arc::clone(&self.source_name);
        let cancel = self.ctx.cancel.clone();
        handle.block_on(async {
            tokio::select! {
                r = self.ctx.out.send_batch(batch) => r.is_ok(),
                _ = cancel.cancelled() => false,
            }
        })
    }

    fn excluded(&self, path: &Path) -> bool {
        self.exclude.iter().any(|p| p.matches_path(path))
    }

    fn reindex(&mut self) {
        self.by_inode.clear();
        self.by_path.clear();
        for (i, f) in self.files.iter().enumerate() {
            self.by_inode.insert(f.inode, i);
            self.by_path.insert(f.path.clone(), i);
            if let Some(target) = &f.target {
                self.by_path.insert(target.clone(), i);
            }
        }
    }

    fn scan(&mut self, initial: bool) {
        let mut matched: HashSet<(u64, u64)> = HashSet::new();
        let mut seen_paths = HashSet::new();
        let mut added = false;
        let mut out_of_descriptors = false;
        for pattern in &self.cfg.include.clone() {
            let paths = match glob::glob(pattern) {
                Ok(paths) => paths,
                Err(e) => {
                    tracing::error!(source = %self.cfg.name, pattern, error = %e, "invalid glob");
                    continue;
                }
            };
            for found in paths {
                let path = match found {
                    Ok(path) => path,
                    Err(e) => {
                        let failure = self.unreadable(e.path(), e.error());
                        out_of_descriptors |= failure == OpenFailure::Descriptors;
                        continue;
                    }
                };
                if !seen_paths.insert(path.clone()) || self.excluded(&path) {
                    continue;
                }
                let meta = match std::fs::metadata(&path) {
                    Ok(meta) => meta,
                    Err(e) => {
                        self.unreadable(&path, &e);
                        continue;
                    }
                };
                if !meta.is_file() {
                    continue;
                }
                let inode = (meta.dev(), meta.ino());
                matched.insert(inode);
                if let Some(&i) = self.by_inode.get(&inode) {
                    let f = &mut self.files[i];
                    if f.rotated_at.take().is_some() {
                        tracing::info!(path = %path.display(), "rotated file is matched again");
                    }
                    continue;
                }
                if reader::is_compressed(&path) && !self.cfg.read_compressed {
                    continue;
                }
                let f = self.track(&path, inode, meta.len(), initial);
                self.files.push(f);
                added = true;
                let i = self.files.len() - 1;
                self.by_inode.insert(inode, i);
            }
        }
        let now = Instant::now();
        for i in 0..self.files.len() {
            let f = &self.files[i];
            if matched.contains(&f.inode) || f.rotated_at.is_some() || !self.left_its_name(i) {
                continue;
            }
            let f = &mut self.files[i];
            f.rotated_at = Some(now);
            f.due = true;
            f.at_end = false;
            self.counters.rotations.inc();
            tracing::info!(path = %f.path.display(), "file rotated away or removed; reading it to its end");
        }
        if added {
            self.reindex();
        }
        if !out_of_descriptors {
            self.pressure.listed();
        }
    }

    /// Whether file `i`, which no glob matched, really left its name: the
    /// name is missing (ENOENT) or leads to another file. A glob that could
    /// not list a directory (no descriptor left, no permission) hides files
    /// that are still there; so does a failed `stat`, counted and logged.
    fn left_its_name(&mut self, i: usize) -> bool {
        let path = self.files[i].path.clone();
        match std::fs::metadata(&path) {
            Ok(meta) => (meta.dev(), meta.ino()) != self.files[i].inode,
            Err(e) if OpenFailure::of(&e) == OpenFailure::Missing => true,
            Err(e) => {
                self.unreadable(&path, &e);
                false
            }
        }
    }

    /// A directory or path of the globs could not be read: counted by
    /// reason and logged (rate-limited); for want of descriptors, part of
    /// the exhaustion episode instead.
    fn unreadable(&mut self, path: &Path, error: &std::io::Error) -> OpenFailure {
        let failure = OpenFailure::of(error);
        if failure == OpenFailure::Missing {
            return failure;
        }
        self.counters.glob_errors.count(failure);
        if failure == OpenFailure::Descriptors {
            let held = self.files.iter().filter(|f| f.is_open()).count();
            self.pressure.exhausted(error, held);
        } else if let Some(suppressed) = self.glob_error_log.allow() {
            tracing::warn!(source = %self.cfg.name, path = %path.display(), error = %error, reason = failure.label(), suppressed, "cannot read a directory or path the globs match; files under it are not tailed until it can be read");
        }
        failure
    }

    /// A file could not be opened (or its first line read) for another
    /// reason than a missing name: counted, logged (rate-limited), retried
    /// later; the file keeps its identity and position.
    fn open_failed(&mut self, i: usize, path: &Path, error: &std::io::Error) {
        let failure = OpenFailure::of(error);
        self.counters.open_errors.count(failure);
        if failure == OpenFailure::Descriptors {
            let held = self.files.iter().filter(|f| f.is_open()).count();
            self.pressure.exhausted(error, held);
            return;
        }
        self.files[i].retry_at = Some(Instant::now() + OPEN_RETRY);
        if let Some(suppressed) = self.open_error_log.allow() {
            tracing::warn!(source = %self.cfg.name, path = %path.display(), error = %error, reason = failure.label(), suppressed, "cannot open file; keeping its position and trying again");
        }
    }

    /// Starts tracking a newly found file, its descriptor not open yet; its
    /// start position is settled once its first line (its fingerprint) is
    /// there.
    fn track(&mut self, path: &Path, inode: (u64, u64), size: u64, initial: bool) -> TailedFile {
        let target = std::fs::symlink_metadata(path)
            .ok()
            .filter(|m| m.file_type().is_symlink())
            .and_then(|_| std::fs::canonicalize(path).ok());
        if let Some(dir) = target.as_deref().and_then(Path::parent) {
            self.watcher.watch(dir, false);
        }
        let resource = self.resource(path);
        let read_from_end = initial && self.cfg.read_from == ReadFrom::End;
        tracing::info!(source = %self.cfg.name, path = %path.display(), "tailing file");
        let mut f = TailedFile::new(path, target, inode, resource, read_from_end);
        f.size_at_open = size;
        f
    }

    fn resource(&self, path: &Path) -> Arc<Resource> {
        let mut attributes = vec![(
            "host.name".into(),
            Value::String(self.ctx.host_name.clone().into()),
        )];
        attributes.extend(file_resource_attributes(&self.cfg, path));
        Arc::new(Resource { attributes })
    }

    fn load_known_fingerprints(&mut self) {
        for (key, entry) in self
            .ctx
            .checkpointer
            .entries_with_prefix(&format!("{}|", self.cfg.name))
        {
            if let Some(parsed) = parse_key(&self.cfg.name, &key) {
                self.known_fingerprints.insert(parsed.hash, entry.offset);
            }
        }
    }

    /// Checkpointed files that no glob matches any more rotated away while
    /// shipd was down: find them beside their old path by inode and drain
    /// them; forget the checkpoints of files that are gone.
    fn resume_rotated_while_down(&mut self) {
        let entries = self
            .ctx
            .checkpointer
            .entries_with_prefix(&format!("{}|", self.cfg.name));
        let mut added = false;
        for (key, entry) in entries {
            let Some(parsed) = parse_key(&self.cfg.name, &key) else {
                continue;
            };
            if self.by_inode.contains_key(&(parsed.dev, parsed.ino)) {
                continue;
            }
            let old_dir = Path::new(&entry.path).parent().unwrap_or(Path::new("/"));
            match reader::find_by_inode(old_dir, parsed.dev, parsed.ino) {
                Ok(Some(path)) => {
                    tracing::info!(was = %entry.path, now = %path.display(), offset = entry.offset, "file rotated while shipd was down; reading it to its end");
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    let mut f = self.track(&path, (parsed.dev, parsed.ino), size, false);
                    f.rotated_at = Some(Instant::now());
                    self.counters.rotations.inc();
                    self.files.push(f);
                    added = true;
                }
                Ok(None) => {
                    tracing::info!(path = %entry.path, "checkpointed file no longer exists; forgetting it");
                    self.ctx.checkpointer.forget(&key);
                }
                Err(e) => {
                    // Not knowing is not "gone": the checkpoint stays, and
                    // the file resumes there if a glob finds it again.
                    self.unreadable(old_dir, &e);
                }
            }
        }
        if added {
            self.reindex();
        }
    }

    /// Emits multiline events that waited too long for a next line.
    fn flush_timed_out(&mut self, handle: &tokio::runtime::Handle) -> bool {
        let now = Instant::now();
        for i in 0..self.files.len() {
            if let Some(batch) = self.files[i].flush_timed_out(now, &self.ctx, &self.counters) {
                if !self.send(handle, batch) {
                    return false;
                }
            }
        }
        true
    }

    /// Releases rotated files that are drained, or waited `rotate_wait`.
    fn release_rotated(&mut self, handle: &tokio::runtime::Handle) -> bool {
        let now = Instant::now();
        let idle = ROTATED_IDLE.min(self.cfg.rotate_wait);
        let mut released = false;
        let mut i = 0;
        while i < self.files.len() {
            let f = &self.files[i];
            let Some(rotated_at) = f.rotated_at else {
                i += 1;
                continue;
            };
            let expired = now.duration_since(rotated_at) >= self.cfg.rotate_wait;
            let drained = f.at_end && now.duration_since(f.last_growth.max(rotated_at)) >= idle;
            if !(expired || drained || f.gone) {
                i += 1;
                continue;
            }
            let mut f = self.files.swap_remove(i);
            if f.gone {
                tracing::info!(path = %f.path.display(), "file rotated away while its descriptor was closed and is not beside its old name any more; released where it was read to");
            } else if expired && !drained {
                tracing::warn!(path = %f.path.display(), rotate_wait = ?self.cfg.rotate_wait, "rotated file released before its end");
            } else {
                tracing::info!(path = %f.path.display(), "rotated file read to its end; released");
            }
            if let Some(batch) = f.flush_all(&self.ctx, &self.counters) {
                if !self.send(handle, batch) {
                    return false;
                }
            }
            if let Some(retired) = f.retire() {
                self.retired.push(retired);
            }
            released = true;
        }
        if released {
            self.reindex();
        }
        true
    }

    /// Forgets the checkpoints of released files whose every batch is
    /// delivered, remembering where they ended in case they come back.
    fn forget_delivered_retired(&mut self) {
        let checkpointer = &self.ctx.checkpointer;
        let released = &mut self.released;
        self.retired.retain(|(key, end)| {
            let delivered = checkpointer.entry(key).is_none_or(|e| e.offset >= *end);
            if delivered {
                checkpointer.forget(key);
                released.remember(key, *end);
            }
            !delivered
        });
    }
}

/// The checkpoint entry written when a file is first tracked.
fn start_entry(path: &Path, offset: u64) -> Entry {
    Entry {
        path: path.display().to_string(),
        offset,
        cursor: None,
    }
}

/// The resource attributes (besides `host.name`) of the records a file
/// source configured as `cfg` reads from `path`: the source, the path, the
/// container of a docker or CRI log and `service.name` (the source's
/// `service`, else the container's, else the source's name). Tests with
/// `input SOURCE lines [...] from "PATH"` get the same.
pub fn file_resource_attributes(cfg: &FileSourceConfig, path: &Path) -> Attributes {
    let mut attributes: Attributes = vec![
        (
            "shipd.source".into(),
            Value::String(cfg.name.clone().into()),
        ),
        (
            "log.file.path".into(),
            Value::String(path.display().to_string().into()),
        ),
    ];
    let container = crate::sources::containers::resource_attributes(cfg.format, path);
    let has_service = container.iter().any(|(k, _)| k == "service.name");
    attributes.extend(container);
    if !has_service || cfg.service_name.is_some() {
        attributes.retain(|(k, _)| k != "service.name");
        attributes.push((
            "service.name".into(),
            Value::String(
                cfg.service_name
                    .clone()
                    .unwrap_or_else(|| cfg.name.clone())
                    .into(),
            ),
        ));
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::pipeline::acks::ack_events;
    use crate::pipeline::channel::{batch_channel, BatchReceiver};
    use regex::bytes::Regex;

    fn bodies(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Log(r) => r.body.as_str().unwrap_or_default().to_owned(),
                Event::Metric(_) => String::new(),
            })
            .collect()
    }

    async fn next(rx: &mut BatchReceiver) -> Vec<Event> {
        let batch = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a batch in time")
            .expect("source alive");
        batch.item.events
    }

    #[test]
    fn checkpoint_of_a_multiline_event_is_the_end_of_its_last_line_never_past_a_held_one() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let first = "2026 first\n  at a\n  at b\n";
        let second = "2026 second\n  at c\n";
        std::fs::write(&path, format!("{first}{second}")).unwrap();
        let checkpointer = Checkpointer::open(
            &dir.path().join("data"),
            &crate::pipeline::checkpoint::CheckpointSettings::disk_only(Duration::from_secs(60)),
        )
        .unwrap();
        let (tx, mut rx) = batch_channel(1 << 20);
        let cancel = CancellationToken::new();
        let mut cfg = FileSourceConfig::new("files", vec![path.display().to_string()]);
        cfg.read_from = ReadFrom::Beginning;
        cfg.poll_interval = Duration::from_millis(20);
        let mut multiline = MultilineConfig::new(MultilineMode::Patterns(Boundaries::start(
            Regex::new("^2026").unwrap(),
        )));
        multiline.timeout = Duration::from_millis(500);
        cfg.multiline = Some(multiline);
        let ctx = SourceContext {
            unreplayable: JournaledSender::new(tx.clone(), None),
            out: tx,
            checkpointer: Arc::clone(&checkpointer),
            cancel: cancel.clone(),
            host_name: "test".into(),
        };
        let offset = || {
            let entries = checkpointer.entries_with_prefix("files|");
            assert_eq!(entries.len(), 1, "one file, one key");
            entries[0].1.offset
        };
        rt.block_on(async {
            let task = FileSource::new(cfg, ctx).spawn();
            let events = next(&mut rx).await;
            assert_eq!(bodies(&events), vec!["2026 first\n  at a\n  at b"]);
            ack_events(&events);
            assert_eq!(
                offset(),
                first.len() as u64,
                "the held second event keeps the checkpoint before it"
            );
            let events = next(&mut rx).await;
            assert_eq!(
                bodies(&events),
                vec!["2026 second\n  at c"],
                "flushed by the timeout"
            );
            ack_events(&events);
            assert_eq!(offset(), (first.len() + second.len()) as u64);
            cancel.cancel();
            task.await.unwrap();
        });
    }
}
