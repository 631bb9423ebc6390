//! The disk half of a spill buffer: an ordered run of segment files
//! (`<id>.seg`, ids increasing) in one directory. It appends framed records
//! to the newest segment (one `write` each), reads them back in order,
//! deletes segments once every record in them is acknowledged, enforces the
//! size cap, and fsyncs on segment close or every `sync_interval`. Damage
//! found while reading is logged, counted and skipped — never fatal.
//! It never decides *whether* a batch spills; [`super`] does.

use super::segment::{self, Damage, ReadOutcome};
use crate::telemetry::{self, Metric};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A place in the spill: segment id in the high 32 bits, byte offset in
/// the low 32 bits. Ordered like the records.
pub type SpillPosition = u64;

pub fn position(id: u64, offset: u64) -> SpillPosition {
    (id << 32) | (offset & 0xffff_ffff)
}

fn split(pos: SpillPosition) -> (u64, u64) {
    (pos >> 32, pos & 0xffff_ffff)
}

/// What happens when the spill reached `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Stop taking batches (backpressure reaches the sources).
    Block,
    /// Delete the oldest segment, counting its events as dropped.
    DropOldest,
}

impl std::str::FromStr for WhenFull {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(WhenFull::Block),
            "drop_oldest" => Ok(WhenFull::DropOldest),
            other => Err(format!(
                "unknown when_full `{other}` (expected block or drop_oldest)"
            )),
        }
    }
}

/// Sizes and timings of one spill buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpillOptions {
    pub max_bytes: u64,
    pub segment_bytes: u64,
    pub sync_interval: Duration,
    pub when_full: WhenFull,
}

/// The smallest `max_bytes` accepted.
pub const MIN_MAX_BYTES: u64 = 1024 * 1024;

impl Default for SpillOptions {
    fn default() -> Self {
        SpillOptions {
            max_bytes: 256 * 1024 * 1024,
            segment_bytes: 8 * 1024 * 1024,
            sync_interval: Duration::from_secs(5),
            when_full: WhenFull::Block,
        }
    }
}

impl SpillOptions {
    /// `max_bytes` raised to the minimum; segments at most a quarter of it,
    /// so dropping the oldest segment never empties the whole buffer.
    pub fn normalized(mut self) -> Self {
        self.max_bytes = self.max_bytes.max(MIN_MAX_BYTES);
        self.segment_bytes = self.segment_bytes.clamp(64 * 1024, self.max_bytes / 4);
        self
    }
}

#[derive(Debug)]
struct Segment {
    id: u64,
    path: PathBuf,
    /// Bytes written (known good up to here for this run's segments).
    len: u64,
    closed: bool,
    /// Where reading stopped for good (end, or the first damage).
    read_end: Option<u64>,
}

/// One record read back, with the position just past it.
#[derive(Debug)]
pub struct SpilledRecord {
    pub end: SpillPosition,
    pub events: u32,
    pub encoded: Vec<u8>,
}

struct Counters {
    bytes: Metric,
    damaged: Metric,
    dropped_events: Metric,
    spilled_events: Metric,
    uncompressed: Metric,
    fsyncs: Metric,
}

/// The segments of one sink's spill directory.
pub struct DiskQueue {
    dir: PathBuf,
    opts: SpillOptions,
    segments: VecDeque<Segment>,
    active: Option<File>,
    unsynced_since: Option<Instant>,
    /// Segments that existed at start; damage at the end of the last one is
    /// a torn tail from the crash, elsewhere it is corruption.
    last_old_id: Option<u64>,
    read_id: u64,
    read_offset: u64,
    /// Id of the next segment created: above every id seen and above the
    /// resume position's, so a new segment never hides behind it.
    next_id: u64,
    reader: Option<(u64, File)>,
    counters: Counters,
    sink: String,
}

/// The spill directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("spill directory {path}: {source}")]
pub struct QueueError {
    pub path: PathBuf,
    pub source: io::Error,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:010}.seg"))
}

impl DiskQueue {
    /// Opens `dir` (created if missing), deleting segments wholly before
    /// `resume` (already delivered); reading starts at `resume`.
    pub fn open(
        dir: &Path,
        sink: &str,
        opts: SpillOptions,
        resume: SpillPosition,
    ) -> Result<Self, QueueError> {
        let err = |source| QueueError {
            path: dir.to_path_buf(),
            source,
        };
        // The directory is created on the first spill, not here: a healthy
        // agent writes nothing, not even a directory.
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => Some(listing),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(err(e)),
        };
        let mut found = Vec::new();
        for entry in listing.into_iter().flatten() {
            let entry = entry.map_err(err)?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let len = entry.metadata().map_err(err)?.len();
            found.push((id, entry.path(), len));
        }
        found.sort_by_key(|(id, ..)| *id);
        let (resume_id, resume_offset) = split(resume);
        let mut segments = VecDeque::new();
        for (id, path, len) in found {
            if id < resume_id || (id == resume_id && len <= resume_offset) {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(sink, path = %path.display(), error = %e, "cannot delete a delivered spill segment");
                }
                continue;
            }
            segments.push_back(Segment {
                id,
                path,
                len,
                closed: true,
                read_end: None,
            });
        }
        let next_id = segments.back().map_or(0, |s| s.id).max(resume_id) + 1;
        let c = |name| telemetry::counter(name, &[("component", sink)]);
        let queue = DiskQueue {
            next_id,
            dir: dir.to_path_buf(),
            opts: opts.normalized(),
            last_old_id: segments.back().map(|s| s.id),
            read_id: segments.front().map_or(resume_id, |s| s.id.max(resume_id)),
            read_offset: match segments.front() {
                Some(s) if s.id == resume_id => resume_offset,
                _ => 0,
            },
            segments,
            active: None,
            unsynced_since: None,
            reader: None,
            counters: Counters {
                bytes: telemetry::gauge("shipd_spill_bytes", &[("component", sink)]),
                damaged: c("shipd_spill_damaged_total"),
                dropped_events: telemetry::counter(
                    "shipd_events_dropped_total",
                    &[("component", sink), ("reason", "spill_full")],
                ),
                spilled_events: c("shipd_spilled_events_total"),
                uncompressed: c("shipd_spill_uncompressed_bytes_total"),
                fsyncs: c("shipd_spill_fsync_total"),
            },
            sink: sink.to_owned(),
        };
        queue.counters.bytes.set(queue.bytes());
        Ok(queue)
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Whether records wait to be read.
    pub fn has_unread(&self) -> bool {
        self.segments.iter().any(|s| {
            s.read_end.is_none()
                && (s.id > self.read_id || (s.id == self.read_id && s.len > self.read_offset))
        })
    }

    /// Whether a record of `incoming` bytes would pass `max_bytes`.
    pub fn would_overflow(&self, incoming: u64) -> bool {
        self.bytes() + incoming > self.opts.max_bytes
    }

    pub fn options(&self) -> SpillOptions {
        self.opts
    }

    /// Appends one framed record (see [`segment::frame`]) with one `write`;
    /// `uncompressed` is the size of the encoded batch it holds.
    pub fn append(&mut self, record: &[u8], events: u32, uncompressed: u64) -> io::Result<()> {
        let needs_new = match self.segments.back() {
            Some(s) if !s.closed => {
                s.len > 0 && s.len + record.len() as u64 > self.opts.segment_bytes
            }
            _ => true,
        };
        if needs_new {
            self.close_active()?;
            self.open_new_segment()?;
        }
        let (Some(file), Some(seg)) = (self.active.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("no active spill segment"));
        };
        if let Err(e) = file.write_all(record) {
            // A partial write is cut off so the segment stays readable.
            let _ = file.set_len(seg.len);
            return Err(e);
        }
        seg.len += record.len() as u64;
        telemetry::disk_written("spill", record.len() as u64);
        self.counters.spilled_events.add(u64::from(events));
        self.counters.uncompressed.add(uncompressed);
        self.unsynced_since.get_or_insert_with(Instant::now);
        self.counters.bytes.set(self.bytes());
        Ok(())
    }

    fn open_new_segment(&mut self) -> io::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        std::fs::create_dir_all(&self.dir)?;
        let path = segment_path(&self.dir, id);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        File::open(&self.dir)?.sync_all()?;
        self.fsynced(1);
        self.active = Some(file);
        self.segments.push_back(Segment {
            id,
            path,
            len: 0,
            closed: false,
            read_end: None,
        });
        Ok(())
    }

    fn fsynced(&self, n: u64) {
        telemetry::fsyncs(n);
        self.counters.fsyncs.add(n);
    }

    /// fsyncs and closes the segment being written, if any.
    pub fn close_active(&mut self) -> io::Result<()> {
        if let Some(file) = self.active.take() {
            if self.unsynced_since.take().is_some() {
                file.sync_data()?;
                self.fsynced(1);
            }
        }
        if let Some(seg) = self.segments.back_mut() {
            seg.closed = true;
        }
        Ok(())
    }

    /// fsyncs the active segment when it has waited `sync_interval`.
    pub fn sync_if_due(&mut self) -> io::Result<()> {
        match (self.unsynced_since, &self.active) {
            (Some(since), Some(file)) if since.elapsed() >= self.opts.sync_interval => {
                file.sync_data()?;
                self.unsynced_since = None;
                self.fsynced(1);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The next record in order, skipping damage (logged and counted).
    /// `Ok(None)` when everything written was read.
    pub fn next_record(&mut self) -> io::Result<Option<SpilledRecord>> {
        loop {
            let Some(idx) = self.segments.iter().position(|s| s.id >= self.read_id) else {
                return Ok(None);
            };
            let (id, len, closed, path) = {
                let s = &self.segments[idx];
                (s.id, s.len, s.closed, s.path.clone())
            };
            if id != self.read_id {
                self.read_id = id;
                self.read_offset = 0;
            }
            if self.reader.as_ref().map(|(rid, _)| *rid) != Some(id) {
                self.reader = Some((id, File::open(&path)?));
            }
            let Some((_, file)) = self.reader.as_mut() else {
                return Ok(None);
            };
            match segment::read_record(file, self.read_offset, len)? {
                ReadOutcome::Record(r) => {
                    self.read_offset = r.next;
                    return Ok(Some(SpilledRecord {
                        end: position(id, r.next),
                        events: r.events,
                        encoded: r.encoded,
                    }));
                }
                ReadOutcome::End if !closed => return Ok(None),
                ReadOutcome::End => self.leave_segment(idx),
                ReadOutcome::Damaged(damage) => {
                    self.report_damage(id, &path, damage, len);
                    self.leave_segment(idx);
                }
            }
        }
    }

    fn report_damage(&self, id: u64, path: &Path, damage: Damage, len: u64) {
        let lost = len - self.read_offset;
        let tail = Some(id) == self.last_old_id;
        let kind = if tail { "torn_tail" } else { "corrupt_segment" };
        telemetry::counter(
            "shipd_spill_damaged_total",
            &[("component", &self.sink), ("kind", kind)],
        )
        .inc();
        self.counters.damaged.inc();
        if tail {
            tracing::warn!(sink = %self.sink, path = %path.display(), offset = self.read_offset, cut_bytes = lost, damage = damage.as_str(),
                "spill segment ends in a torn or damaged record (crash mid-write); the tail is cut, everything before it is kept");
        } else {
            tracing::error!(sink = %self.sink, path = %path.display(), offset = self.read_offset, skipped_bytes = lost, damage = damage.as_str(),
                "spill segment is damaged; the rest of this segment is skipped, later segments are kept");
        }
    }

    fn leave_segment(&mut self, idx: usize) {
        self.segments[idx].read_end = Some(self.read_offset);
        self.read_id = self.segments[idx].id + 1;
        self.read_offset = 0;
        self.reader = None;
    }

    /// Deletes every segment read to its end whose records are all
    /// acknowledged (`acked` is the delivered position).
    pub fn acknowledged(&mut self, acked: SpillPosition) {
        while let Some(front) = self.segments.front() {
            let Some(end) = front.read_end else { break };
            if !front.closed || acked < position(front.id, end) {
                break;
            }
            if let Some(seg) = self.segments.pop_front() {
                self.delete(&seg);
            }
        }
        if let [only] = self.segments.make_contiguous() {
            // Caught up after an outage: the active segment goes too, so the
            // directory empties once everything is delivered.
            let caught_up = only.id == self.read_id && only.len == self.read_offset;
            if caught_up && acked >= position(only.id, only.len) {
                // Delivered and about to be deleted: no fsync needed.
                self.active = None;
                self.unsynced_since = None;
                if let Some(seg) = self.segments.pop_front() {
                    self.delete(&seg);
                }
                self.reader = None;
                self.read_id = self.next_id;
                self.read_offset = 0;
            }
        }
        self.counters.bytes.set(self.bytes());
    }

    fn delete(&self, seg: &Segment) {
        if let Err(e) = std::fs::remove_file(&seg.path) {
            tracing::warn!(sink = %self.sink, path = %seg.path.display(), error = %e, "cannot delete spill segment");
        }
    }

    /// Deletes the oldest segment (closing the active one first when it is
    /// the only one); its unread events are counted as dropped. Returns
    /// the number of events dropped.
    pub fn drop_oldest(&mut self) -> io::Result<u64> {
        if self.segments.len() == 1 {
            self.close_active()?;
        }
        let Some(seg) = self.segments.pop_front() else {
            return Ok(0);
        };
        let from = match seg.read_end {
            Some(_) => seg.len,
            None if seg.id == self.read_id => self.read_offset,
            None if seg.id < self.read_id => seg.len,
            None => 0,
        };
        let dropped = match File::open(&seg.path) {
            Ok(mut f) => segment::count_events(&mut f, from, seg.len)?,
            Err(e) => return Err(e),
        };
        self.delete(&seg);
        if self.reader.as_ref().is_some_and(|(id, _)| *id == seg.id) {
            self.reader = None;
        }
        if seg.id >= self.read_id {
            self.read_id = seg.id + 1;
            self.read_offset = 0;
        }
        self.counters.dropped_events.add(dropped);
        self.counters.bytes.set(self.bytes());
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::segment::frame;

    fn opts() -> SpillOptions {
        SpillOptions {
            max_bytes: 4 * 1024 * 1024,
            segment_bytes: 64 * 1024,
            ..SpillOptions::default()
        }
    }

    fn payload(i: u32) -> Vec<u8> {
        // Distinct, poorly compressible bytes, so segments fill.
        let mut x = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..8000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn drain(q: &mut DiskQueue) -> Vec<(SpillPosition, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(r) = q.next_record().unwrap() {
            out.push((r.end, r.encoded));
        }
        out
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_acked_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), "t", opts(), 0).unwrap();
        for i in 0..30 {
            q.append(&frame(&payload(i), 1).unwrap(), 1, 8000).unwrap();
        }
        let read = drain(&mut q);
        assert_eq!(read.len(), 30);
        assert!(read
            .iter()
            .enumerate()
            .all(|(i, (_, p))| *p == payload(i as u32)));
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(files > 2, "spread over segments ({files})");
        q.acknowledged(read[29].0);
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, 0, "every segment, the active one too, is deleted");
        q.append(&frame(&payload(99), 1).unwrap(), 1, 8000).unwrap();
        assert_eq!(drain(&mut q)[0].1, payload(99), "spilling again works");
    }

    #[test]
    fn reopening_resumes_after_the_acknowledged_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), "t", opts(), 0).unwrap();
        for i in 0..20 {
            q.append(&frame(&payload(i), 1).unwrap(), 1, 8000).unwrap();
        }
        q.close_active().unwrap();
        let read = drain(&mut q);
        drop(q);
        let mut q = DiskQueue::open(dir.path(), "t", opts(), read[11].0).unwrap();
        let again = drain(&mut q);
        assert_eq!(again.len(), 8);
        assert_eq!(again[0].1, payload(12));
    }

    #[test]
    fn drop_oldest_counts_unread_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), "t", opts(), 0).unwrap();
        for i in 0..20 {
            q.append(&frame(&payload(i), 3).unwrap(), 3, 8000).unwrap();
        }
        let before = q.bytes();
        let dropped = q.drop_oldest().unwrap();
        assert!(dropped > 0 && dropped % 3 == 0, "{dropped}");
        assert!(q.bytes() < before);
        let rest = drain(&mut q);
        assert_eq!(rest.len() as u64 * 3 + dropped, 60);
    }

    #[test]
    fn damage_in_a_middle_segment_skips_only_its_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), "t", opts(), 0).unwrap();
        for i in 0..30 {
            q.append(&frame(&payload(i), 1).unwrap(), 1, 8000).unwrap();
        }
        q.close_active().unwrap();
        drop(q);
        let mut segs: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segs.sort();
        let mut bytes = std::fs::read(&segs[1]).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&segs[1], &bytes).unwrap();
        let mut q = DiskQueue::open(dir.path(), "t", opts(), 0).unwrap();
        let read = drain(&mut q);
        let got: Vec<Vec<u8>> = read.into_iter().map(|(_, p)| p).collect();
        assert!(got.contains(&payload(0)), "before the damage");
        assert!(got.contains(&payload(29)), "after the damage");
        assert!(got.len() < 30);
    }
}
