//! The file source: tails the files matching a set of globs.
//!
//! One blocking thread per source serves all its files round-robin, reading at
//! most `read_budget` bytes of one file before moving to the next, so no file
//! starves the others and thousands of files need no task each. Each read
//! becomes one batch with one [`BatchAck`]; the [`Checkpointer`] holds the
//! delivered offset per file identity (device and inode). Discovery re-globs
//! every `glob_interval`; idle files are re-checked every `poll_interval`.
//! Rotation handling, multiline and fingerprints slot into [`TailedFile`].

mod lines;

pub use lines::{Line, LineSplitter};

use crate::event::{Event, EventBatch, LogRecord, Position, Resource, Value};
use crate::pipeline::acks::BatchAck;
use crate::pipeline::channel::BatchSender;
use crate::pipeline::checkpoint::{Checkpointer, Entry, SourceKey};
use crate::telemetry::{self, Metric};
use bytes::{Bytes, BytesMut};
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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
    pub read_from: ReadFrom,
    pub max_line_bytes: usize,
    pub poll_interval: Duration,
    pub glob_interval: Duration,
    /// Bytes read from one file before serving the next.
    pub read_budget: usize,
    /// `service.name` of the records (default: the source name).
    pub service_name: Option<String>,
}

impl FileSourceConfig {
    pub fn new(name: impl Into<String>, include: Vec<String>) -> Self {
        FileSourceConfig {
            name: name.into(),
            include,
            read_from: ReadFrom::End,
            max_line_bytes: 256 * 1024,
            poll_interval: Duration::from_millis(250),
            glob_interval: Duration::from_secs(1),
            read_budget: 256 * 1024,
            service_name: None,
        }
    }
}

/// What a source needs from the agent.
#[derive(Debug, Clone)]
pub struct SourceContext {
    pub out: BatchSender,
    pub checkpointer: Arc<Checkpointer>,
    pub cancel: CancellationToken,
    pub host_name: String,
}

struct Counters {
    events: Metric,
    bytes: Metric,
    truncated: Metric,
    invalid_utf8: Metric,
    empty: Metric,
    read_errors: Metric,
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
        }
    }
}

/// One file being tailed.
struct TailedFile {
    key: SourceKey,
    path: PathBuf,
    file: File,
    dev_ino: (u64, u64),
    origin: u64,
    splitter: LineSplitter,
    seq: u64,
    resource: Arc<Resource>,
    /// Matched by the latest glob scan.
    present: bool,
}

/// A running file source.
pub struct FileSource {
    cfg: FileSourceConfig,
    ctx: SourceContext,
    files: Vec<TailedFile>,
    counters: Counters,
    buf: BytesMut,
    source_name: Arc<str>,
}

impl FileSource {
    pub fn new(cfg: FileSourceConfig, ctx: SourceContext) -> Self {
        let counters = Counters::new(&cfg.name);
        let source_name: Arc<str> = Arc::from(cfg.name.as_str());
        FileSource {
            cfg,
            ctx,
            files: Vec::new(),
            counters,
            buf: BytesMut::new(),
            source_name,
        }
    }

    /// Runs on the blocking pool until cancelled.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::task::spawn_blocking(move || self.run())
    }

    fn run(mut self) {
        let handle = tokio::runtime::Handle::current();
        let mut last_scan: Option<Instant> = None;
        while !self.ctx.cancel.is_cancelled() {
            if last_scan.is_none_or(|t| t.elapsed() >= self.cfg.glob_interval) {
                self.scan(last_scan.is_none());
                last_scan = Some(Instant::now());
            }
            let mut progressed = false;
            for i in 0..self.files.len() {
                match self.read_once(i) {
                    Some(batch) => {
                        progressed = true;
                        if !self.send(&handle, batch) {
                            return;
                        }
                    }
                    None => continue,
                }
            }
            self.release_vanished();
            if !progressed {
                let cancel = self.ctx.cancel.clone();
                let idle = self.cfg.poll_interval;
                handle.block_on(async {
                    tokio::select! {
                        _ = tokio::time::sleep(idle) => {}
                        _ = cancel.cancelled() => {}
                    }
                });
            }
        }
    }

    fn send(&self, handle: &tokio::runtime::Handle, batch: EventBatch) -> bool {
        let cancel = self.ctx.cancel.clone();
        handle.block_on(async {
            tokio::select! {
                r = self.ctx.out.send_batch(batch) => r.is_ok(),
                _ = cancel.cancelled() => false,
            }
        })
    }

    fn scan(&mut self, initial: bool) {
        for f in &mut self.files {
            f.present = false;
        }
        let mut seen = HashSet::new();
        let include = self.cfg.include.clone();
        for pattern in &include {
            let paths = match glob::glob(pattern) {
                Ok(paths) => paths,
                Err(e) => {
                    tracing::error!(source = %self.cfg.name, pattern, error = %e, "invalid glob");
                    continue;
                }
            };
            for path in paths.flatten() {
                if seen.insert(path.clone()) {
                    self.discover(path, initial);
                }
            }
        }
    }

    fn discover(&mut self, path: PathBuf, initial: bool) {
        let Ok(meta) = std::fs::metadata(&path) else {
            return;
        };
        if !meta.is_file() {
            return;
        }
        let dev_ino = (meta.dev(), meta.ino());
        if let Some(f) = self.files.iter_mut().find(|f| f.dev_ino == dev_ino) {
            f.present = true;
            return;
        }
        match self.open(&path, dev_ino, meta.len(), initial) {
            Ok(f) => self.files.push(f),
            Err(e) => {
                self.counters.read_errors.inc();
                tracing::warn!(source = %self.cfg.name, path = %path.display(), error = %e, "cannot tail file");
            }
        }
    }

    fn open(
        &self,
        path: &Path,
        dev_ino: (u64, u64),
        size: u64,
        initial: bool,
    ) -> std::io::Result<TailedFile> {
        let key: SourceKey = Arc::from(format!("{}|{}:{}", self.cfg.name, dev_ino.0, dev_ino.1));
        let mut offset = match self.ctx.checkpointer.entry(&key) {
            Some(entry) if entry.offset <= size => entry.offset,
            Some(entry) => {
                tracing::warn!(source = %self.cfg.name, path = %path.display(), checkpoint = entry.offset, size, "file shrank since its checkpoint; reading from the start");
                0
            }
            None if initial && self.cfg.read_from == ReadFrom::End => size,
            None => 0,
        };
        let mut file = File::open(path)?;
        offset = file.seek(SeekFrom::Start(offset))?;
        let path_text = path.display().to_string();
        self.ctx
            .checkpointer
            .start(
                &key,
                Entry {
                    path: path_text.clone(),
                    offset,
                    cursor: None,
                },
            )
            .map_err(std::io::Error::other)?;
        tracing::info!(source = %self.cfg.name, path = %path_text, offset, "tailing file");
        let resource = Arc::new(Resource {
            attributes: vec![
                (
                    "host.name".into(),
                    Value::String(self.ctx.host_name.clone()),
                ),
                (
                    "service.name".into(),
                    Value::String(
                        self.cfg
                            .service_name
                            .clone()
                            .unwrap_or_else(|| self.cfg.name.clone()),
                    ),
                ),
                ("shipd.source".into(), Value::String(self.cfg.name.clone())),
                ("log.file.path".into(), Value::String(path_text)),
            ],
        });
        Ok(TailedFile {
            origin: xxhash_rust::xxh3::xxh3_64(key.as_bytes()),
            key,
            path: path.to_path_buf(),
            file,
            dev_ino,
            splitter: LineSplitter::new(self.cfg.max_line_bytes, offset),
            seq: 0,
            resource,
            present: true,
        })
    }

    /// Reads up to the budget from file `i`; `None` when nothing was read.
    fn read_once(&mut self, i: usize) -> Option<EventBatch> {
        self.buf.resize(self.cfg.read_budget, 0);
        let f = &mut self.files[i];
        let n = match f.file.read(&mut self.buf[..]) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) => {
                self.counters.read_errors.inc();
                tracing::warn!(path = %f.path.display(), error = %e, "read failed");
                return None;
            }
        };
        self.buf.truncate(n);
        let chunk: Bytes = self.buf.split().freeze();
        self.counters.bytes.add(n as u64);
        let mut lines = Vec::new();
        f.splitter.push(chunk, &mut lines);
        let mut batch = EventBatch::from_source(&self.source_name, lines.len());
        let mut events = Vec::with_capacity(lines.len());
        for line in lines {
            if line.bytes.is_empty() && !line.truncated {
                self.counters.empty.inc();
                continue;
            }
            events.push(line);
        }
        let seq = f.seq;
        f.seq += 1;
        let ack = BatchAck::new(
            &self.ctx.checkpointer,
            Arc::clone(&f.key),
            seq,
            f.splitter.committed(),
            events.len(),
        );
        for line in events {
            let body = match std::str::from_utf8(&line.bytes) {
                Ok(_) => Value::Bytes(line.bytes),
                Err(_) => {
                    self.counters.invalid_utf8.inc();
                    Value::Bytes(Bytes::from(
                        String::from_utf8_lossy(&line.bytes).into_owned(),
                    ))
                }
            };
            let mut record = LogRecord::new(body, Arc::clone(&f.resource));
            if line.truncated {
                self.counters.truncated.inc();
                record
                    .attributes
                    .push(("shipd.truncated".into(), Value::Bool(true)));
            }
            record.position = Some(Position {
                origin: f.origin,
                offset: line.start,
            });
            record.ack = ack.clone();
            batch.push(Event::Log(record));
        }
        self.counters.events.add(batch.len() as u64);
        Some(batch)
    }

    /// Drops files that no glob matches any more once they are read to the end.
    fn release_vanished(&mut self) {
        let checkpointer = &self.ctx.checkpointer;
        self.files.retain_mut(|f| {
            if f.present {
                return true;
            }
            let at_end = f
                .file
                .metadata()
                .map(|m| f.splitter.committed() + f.splitter.pending() as u64 >= m.len())
                .unwrap_or(true);
            if at_end {
                tracing::info!(path = %f.path.display(), "file gone; released");
                checkpointer.forget(&f.key);
            }
            !at_end
        });
    }
}
