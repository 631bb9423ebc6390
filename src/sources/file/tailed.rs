//! One tailed file and the per-file path of its bytes: reader → line
//! splitter → decoder → multiline → an [`EventBatch`] with one
//! [`BatchAck`](crate::pipeline::acks::BatchAck) whose end never passes a
//! line still held. It does no discovery and decides no start positions;
//! the source does both.
//!
//! Its descriptor may be closed while it is idle (the source holds a bounded
//! number open) and opened again by identity ([`TailedFile::reopen`]): the
//! reading state (position, held lines, multiline event) stays in memory.

use super::decode::{Decoder, Message};
use super::framing;
use super::identity::FileIdentity;
use super::identity::Fingerprint;
use super::lines::{Line, LineSplitter};
use super::multiline::Aggregator;
use super::reader::{self, Reader};
use super::{start_entry, Counters, FileSourceConfig, SourceContext};
use crate::event::{Event, EventBatch, Position, Resource};
use crate::pipeline::acks::BatchAck;
use crate::pipeline::checkpoint::SourceKey;
use bytes::{Bytes, BytesMut};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What one turn at a file produced.
pub enum Progress {
    /// Events to send.
    Batch(EventBatch),
    /// Work done, nothing to send yet (come back soon).
    Busy,
    /// Nothing new.
    Idle,
}

/// What [`TailedFile::reopen`] found.
pub enum Reopened {
    /// The same file: reading goes on where it was.
    Same,
    /// Its inode now holds other content (freed and reused while closed):
    /// it must be read again from its start.
    Replaced,
    /// No name leads to it any more (removed, or moved out of its
    /// directory while closed).
    Gone,
}

/// The reading state of a file whose identity is known.
struct Active {
    identity: FileIdentity,
    key: SourceKey,
    origin: u64,
    splitter: LineSplitter,
    decoder: Decoder,
    multiline: Option<Aggregator>,
    seq: u64,
    /// Offset of the next byte to read.
    pos: u64,
    /// End of the last batch handed out.
    acked_end: u64,
}

impl Active {
    /// Where reading may resume without losing a held line.
    fn safe_end(&self) -> u64 {
        [
            Some(self.splitter.committed()),
            self.decoder.held_from(),
            self.multiline.as_ref().and_then(Aggregator::held_from),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.pos)
    }
}

/// One file being tailed.
pub struct TailedFile {
    /// The path it was found under.
    pub path: PathBuf,
    /// Where `path` leads when it is a symlink.
    pub target: Option<PathBuf>,
    /// Device and inode (of the target, for a symlink).
    pub inode: (u64, u64),
    /// `None` while its descriptor is closed.
    reader: Option<Reader>,
    /// Where the descriptor was last opened (the path, or where the file was
    /// found by inode after a rename).
    opened_from: PathBuf,
    /// Size when its descriptor was last closed, before its first line was
    /// complete (an active file is compared with its read position).
    closed_len: Option<u64>,
    /// Turns it had since its descriptor was opened.
    pub turns_since_open: u32,
    /// Waiting for a descriptor since.
    pub waiting_since: Option<Instant>,
    /// Opening it failed (other than for want of descriptors): not before.
    pub retry_at: Option<Instant>,
    /// Closed, and no name leads to it any more: released at once.
    pub gone: bool,
    resource: Arc<Resource>,
    /// Set when no glob matches it any more: it is being drained.
    pub rotated_at: Option<Instant>,
    /// Read it at the next turn.
    pub due: bool,
    /// The last look found nothing new.
    pub at_end: bool,
    pub last_growth: Instant,
    /// Size when found; the start of an unknown file read from its end.
    pub size_at_open: u64,
    /// Unknown files start at `size_at_open` rather than 0.
    pub read_from_end: bool,
    /// An archive read to its end (or skipped): never read again.
    pub finished: bool,
    /// Fingerprint and safe end it had before it was last truncated, so a
    /// copy made just before (copytruncate) resumes where it was.
    pub before_truncation: Option<(super::identity::Fingerprint, u64)>,
    /// Number of the next batch. It goes on across a truncation: read again
    /// with the same first line, the file keeps its checkpoint key, and the
    /// acknowledgements of batches read before must not pass for new ones.
    next_seq: u64,
    active: Option<Active>,
}

impl TailedFile {
    /// A file found under `path`, its descriptor not open yet.
    pub fn new(
        path: &Path,
        target: Option<PathBuf>,
        inode: (u64, u64),
        resource: Arc<Resource>,
        read_from_end: bool,
    ) -> Self {
        TailedFile {
            path: path.to_path_buf(),
            target,
            inode,
            reader: None,
            opened_from: path.to_path_buf(),
            closed_len: None,
            turns_since_open: 0,
            waiting_since: None,
            retry_at: None,
            gone: false,
            resource,
            rotated_at: None,
            due: true,
            at_end: false,
            last_growth: Instant::now(),
            size_at_open: 0,
            read_from_end,
            finished: false,
            before_truncation: None,
            next_seq: 0,
            active: None,
        }
    }

    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    pub fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// Read through a gzip decoder (decided by the name it was found under).
    pub fn is_compressed(&self) -> bool {
        reader::is_compressed(&self.path)
    }

    /// The fingerprint of its first line (descriptor open).
    pub fn fingerprint(&self) -> std::io::Result<Option<Fingerprint>> {
        match &self.reader {
            Some(r) => r.fingerprint(&self.opened_from),
            None => Err(closed()),
        }
    }

    /// Its current size through the descriptor; `None` for archives.
    pub fn len(&self) -> std::io::Result<Option<u64>> {
        match &self.reader {
            Some(r) => r.len(),
            None => Err(closed()),
        }
    }

    /// Closes its descriptor; reading resumes at [`reopen`](Self::reopen).
    pub fn close(&mut self) {
        if let Some(reader) = self.reader.take() {
            self.closed_len = reader.len().ok().flatten();
        }
    }

    /// Whether a closed file needs its descriptor back: it rotated away, its
    /// name leads elsewhere, or its size differs from the read position (or,
    /// before its first line was complete, from its size when closed). One
    /// `stat`, no descriptor.
    pub fn changed_since_closed(&self) -> bool {
        let known = match &self.active {
            Some(active) => Some(active.pos),
            None => self.closed_len,
        };
        let Some(known) = known else {
            return true;
        };
        if self.rotated_at.is_some() {
            return true;
        }
        match std::fs::metadata(&self.opened_from) {
            Ok(meta) => (meta.dev(), meta.ino()) != self.inode || meta.len() != known,
            Err(_) => true,
        }
    }

    /// Opens its descriptor again by identity (device and inode, then the
    /// fingerprint of an active file) and moves to where reading stopped.
    /// An error is a failure to open (no descriptor left, no permission),
    /// never a sign that the file went away.
    pub fn reopen(&mut self) -> std::io::Result<Reopened> {
        let gzip = self.is_compressed();
        let mut names: Vec<&Path> = vec![&self.opened_from, &self.path];
        if let Some(target) = &self.target {
            names.push(target);
        }
        names.dedup();
        let Some((mut reader, at)) = reader::open_by_identity(&names, self.inode, gzip)? else {
            return Ok(Reopened::Gone);
        };
        let mut reopened = Reopened::Same;
        if let Some(active) = &self.active {
            if !gzip {
                match reader.fingerprint(&at)? {
                    Some(fp) if fp != active.identity.fingerprint => reopened = Reopened::Replaced,
                    _ => {}
                }
            }
            reader.skip_to(active.pos)?;
        }
        self.reader = Some(reader);
        self.opened_from = at;
        self.closed_len = None;
        self.turns_since_open = 0;
        self.waiting_since = None;
        self.retry_at = None;
        Ok(reopened)
    }

    pub fn identity(&self) -> Option<FileIdentity> {
        self.active.as_ref().map(|a| a.identity)
    }

    /// Where a copy of this file could resume (its safe end).
    pub fn resume_offset(&self) -> Option<u64> {
        self.active.as_ref().map(Active::safe_end)
    }

    /// Starts reading at `offset` under `identity`; the caller persists the
    /// start (one checkpoint write for all files started in one pass).
    pub fn begin(
        &mut self,
        identity: FileIdentity,
        offset: u64,
        cfg: &FileSourceConfig,
        ctx: &SourceContext,
    ) -> std::io::Result<u64> {
        let key: SourceKey = Arc::from(identity.key(&cfg.name));
        let offset = self.reader.as_mut().ok_or_else(closed)?.skip_to(offset)?;
        ctx.checkpointer
            .start_unflushed_at(&key, start_entry(&self.path, offset), self.next_seq);
        self.active = Some(Active {
            identity,
            origin: xxhash_rust::xxh3::xxh3_64(key.as_bytes()),
            key,
            splitter: LineSplitter::new(cfg.max_line_bytes, offset),
            decoder: Decoder::new(cfg.format, cfg.max_line_bytes),
            multiline: cfg.multiline.clone().map(Aggregator::new),
            seq: self.next_seq,
            pos: offset,
            acked_end: offset,
        });
        Ok(offset)
    }

    /// The deadline of a held multiline event.
    pub fn multiline_deadline(&self) -> Option<Instant> {
        self.active
            .as_ref()
            .and_then(|a| a.multiline.as_ref())
            .and_then(Aggregator::deadline)
    }

    /// Reads up to the budget from an active file.
    pub fn read(
        &mut self,
        cfg: &FileSourceConfig,
        ctx: &SourceContext,
        counters: &Counters,
        buf: &mut BytesMut,
    ) -> Progress {
        let Some(active) = &self.active else {
            // First line still incomplete: nothing readable yet.
            self.at_end = true;
            return Progress::Idle;
        };
        if self.finished {
            return Progress::Idle;
        }
        let Some(reader) = &mut self.reader else {
            return Progress::Idle;
        };
        match reader.len() {
            Ok(Some(len)) if len < active.pos => return self.truncated(len, ctx, counters),
            Ok(Some(len)) if len == active.pos => {
                self.at_end = true;
                return Progress::Idle;
            }
            Ok(_) => {}
            Err(e) => {
                counters.read_errors.inc();
                tracing::warn!(path = %self.path.display(), error = %e, "stat failed");
                return Progress::Idle;
            }
        }
        // One read buffer for the whole source, zero-filled once.
        let budget = cfg.read_budget.max(1);
        if buf.len() < budget {
            buf.resize(budget, 0);
        }
        let n = match reader.read(&mut buf[..budget]) {
            Ok(n) => n,
            Err(e) => {
                counters.read_errors.inc();
                tracing::warn!(path = %self.path.display(), error = %e, "read failed");
                self.at_end = true;
                return Progress::Idle;
            }
        };
        if n == 0 {
            self.at_end = true;
            if reader.is_compressed() {
                self.finished = true;
                tracing::info!(path = %self.path.display(), "archive read to its end");
                return self
                    .flush_all(ctx, counters)
                    .map_or(Progress::Idle, Progress::Batch);
            }
            return Progress::Idle;
        }
        self.at_end = false;
        self.last_growth = Instant::now();
        // Copied out at its exact size: a chunk split off the read buffer
        // would pin the whole read buffer for as long as any line of it
        // is in flight — with 2,000 files each bringing one short line, that
        // was a gigabyte. The copy costs one memcpy of what was read.
        let chunk = Bytes::copy_from_slice(&buf[..n]);
        counters.bytes.add(n as u64);
        let Some(active) = &mut self.active else {
            return Progress::Idle;
        };
        active.pos += n as u64;
        let mut lines = Vec::new();
        active.splitter.push(chunk, &mut lines);
        let messages = decode(active, lines, counters);
        Progress::Batch(self.batch(messages, ctx, counters))
    }

    /// The file shrank below the read position: it was truncated in place.
    fn truncated(&mut self, len: u64, ctx: &SourceContext, counters: &Counters) -> Progress {
        counters.truncations.inc();
        if let Some(active) = &self.active {
            tracing::warn!(path = %self.path.display(), size = len, offset = active.pos, "file truncated; reading it again from the start");
        }
        self.restart(ctx, counters)
            .map_or(Progress::Busy, Progress::Batch)
    }

    /// Its inode was freed and reused while its descriptor was closed: the
    /// content is another file's, read from its start. Returns what was
    /// still held of the old content.
    pub fn replaced(&mut self, ctx: &SourceContext, counters: &Counters) -> Option<EventBatch> {
        counters.rotations.inc();
        tracing::info!(path = %self.path.display(), "file replaced while its descriptor was closed (same inode, other first line); reading it from the start");
        self.restart(ctx, counters)
    }

    /// Forgets the current content's identity and reads again from 0,
    /// emitting what was held.
    fn restart(&mut self, ctx: &SourceContext, counters: &Counters) -> Option<EventBatch> {
        let flushed = self.flush_all(ctx, counters);
        if let Some(active) = self.active.take() {
            self.next_seq = active.seq;
            self.before_truncation = Some((active.identity.fingerprint, active.safe_end()));
            ctx.checkpointer.forget(&active.key);
        }
        self.read_from_end = false;
        self.size_at_open = 0;
        self.due = true;
        if let Some(Err(e)) = self.reader.as_mut().map(|r| r.skip_to(0)) {
            counters.read_errors.inc();
            tracing::warn!(path = %self.path.display(), error = %e, "cannot seek to the start");
        }
        flushed
    }

    /// Emits a multiline event that waited `timeout` for a next line.
    pub fn flush_timed_out(
        &mut self,
        now: Instant,
        ctx: &SourceContext,
        counters: &Counters,
    ) -> Option<EventBatch> {
        let active = self.active.as_mut()?;
        let msg = active.multiline.as_mut()?.flush_due(now)?;
        Some(self.batch(vec![msg], ctx, counters))
    }

    /// Emits everything held, including an unfinished last line: the file
    /// is being released (or was truncated).
    pub fn flush_all(&mut self, ctx: &SourceContext, counters: &Counters) -> Option<EventBatch> {
        let active = self.active.as_mut()?;
        let tail: Vec<Line> = active.splitter.finish().into_iter().collect();
        let (out, undecodable) =
            framing::frame_lines(&mut active.decoder, active.multiline.as_mut(), tail, true);
        counters.decode_errors.add(undecodable);
        if out.is_empty() && active.safe_end() == active.acked_end {
            return None;
        }
        Some(self.batch(out, ctx, counters))
    }

    /// The key and final offset of a released file.
    pub fn retire(self) -> Option<(SourceKey, u64)> {
        self.active.map(|a| (a.key, a.acked_end))
    }

    /// One batch of `messages` acknowledged up to the safe end.
    fn batch(
        &mut self,
        messages: Vec<Message>,
        ctx: &SourceContext,
        counters: &Counters,
    ) -> EventBatch {
        let Some(active) = &mut self.active else {
            return EventBatch::with_capacity(0);
        };
        let mut kept = Vec::with_capacity(messages.len());
        for m in messages {
            if m.bytes.is_empty() && !m.truncated {
                counters.empty.inc();
            } else {
                kept.push(m);
            }
        }
        let end = active.safe_end();
        let seq = active.seq;
        active.seq += 1;
        active.acked_end = end;
        let ack = BatchAck::new(
            &ctx.checkpointer,
            Arc::clone(&active.key),
            seq,
            end,
            kept.len(),
        );
        let mut batch = EventBatch::with_capacity(kept.len());
        for m in kept {
            let start = m.start;
            if m.truncated {
                counters.truncated.inc();
            }
            let (mut record, lossy) = framing::record(m, Arc::clone(&self.resource));
            if lossy {
                counters.invalid_utf8.inc();
            }
            record.position = Some(Position {
                origin: active.origin,
                offset: start,
            });
            record.ack = ack.clone();
            batch.push(Event::Log(record));
        }
        counters.events.add(batch.len() as u64);
        batch
    }
}

fn closed() -> std::io::Error {
    std::io::Error::other("the file's descriptor is closed")
}

/// Lines → decoded messages → multiline events.
fn decode(active: &mut Active, lines: Vec<Line>, counters: &Counters) -> Vec<Message> {
    let (messages, undecodable) =
        framing::frame_lines(&mut active.decoder, active.multiline.as_mut(), lines, false);
    counters.decode_errors.add(undecodable);
    messages
}
