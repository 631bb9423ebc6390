//! The RAM journal: batches that no source can read again (metrics,
//! scrapes, OTLP received), kept in a RAM-backed directory (tmpfs) from the
//! moment their source made them until delivered, so a crash of the process
//! (kill -9, OOM kill, panic) loses none of them, wherever they waited.
//!
//! Each journaled batch is one file `<seq>.rec` (a [`segment`] record:
//! length, event count, CRC32C, zstd) in the source's directory, written
//! before the source sends the batch and removed when every event is
//! acknowledged: delivered, dropped by a step, or moved to the disk spill.
//! On start, the files left by a crashed run are read back one at a time,
//! in order, and sent again, each still owned by its file ([`Recovered`]).
//! Reading back obeys the source's memory budget for one batch: a file
//! whose batch would take more is set aside in `rejected/` (counted,
//! logged), never decoded, so a hostile batch cannot abort every restart.
//! Encoding and reading back block: callers on the runtime use
//! `spawn_blocking`. tmpfs lives in RAM: this costs no flash
//! writes (the kernel charges tmpfs nothing in `write_bytes`), and a power
//! cut or reboot loses what it holds, like any memory queue. A directory
//! that is not RAM-backed is refused, so the journal never wears the card.

use super::codec;
use super::segment::{self, ReadOutcome};
use crate::event::{Event, EventBatch};
use crate::pipeline::acks::{AckToken, BatchAck};
use crate::pipeline::channel::{BatchSender, Closed};
use crate::telemetry::{self, Metric};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("RAM journal directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("RAM journal directory {path} is not on tmpfs or ramfs; it would wear the storage")]
    NotInRam { path: PathBuf },
}

/// One source's journal directory.
#[derive(Debug)]
pub struct RamJournal {
    dir: PathBuf,
    next_seq: u64,
    source: String,
    write_errors: Metric,
}

fn seq_of(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".rec")?
        .parse()
        .ok()
}

impl RamJournal {
    /// Opens `dir/<source>` and finds the batches a crashed run left,
    /// oldest first, to be sent again by [`Recovered::send_all`]; none is
    /// read yet. A batch that takes more than `max_batch_memory` once
    /// decoded is set aside then.
    pub fn open(
        dir: &Path,
        source: &str,
        max_batch_memory: usize,
    ) -> Result<(Self, Recovered), JournalError> {
        let dir = dir.join(source);
        let err = |source| JournalError::Io {
            path: dir.clone(),
            source,
        };
        if !crate::fs_kind::prepare_ram_dir(&dir).map_err(err)? {
            return Err(JournalError::NotInRam { path: dir });
        }
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
            .map_err(err)?
            .filter_map(|e| {
                let path = e.ok()?.path();
                Some((seq_of(&path)?, path))
            })
            .collect();
        files.sort();
        let next_seq = files.last().map_or(0, |(seq, _)| seq + 1);
        let recovered = Recovered {
            source: source.to_owned(),
            dir: dir.clone(),
            files: files.into_iter().map(|(_, path)| path).collect(),
            max_batch_memory,
        };
        if !recovered.files.is_empty() {
            let events: u64 = recovered.files.iter().map(|p| events_in(p)).sum();
            tracing::info!(
                source,
                batches = recovered.files.len(),
                events,
                "sending again what a crashed run left in the RAM journal"
            );
        }
        Ok((
            RamJournal {
                dir,
                next_seq,
                source: source.to_owned(),
                write_errors: telemetry::counter(
                    "shipd_journal_write_errors_total",
                    &[("component", source)],
                ),
            },
            recovered,
        ))
    }

    /// Writes `batch` to the journal and gives each of its events the ack
    /// token that removes the file once every event was acknowledged; the
    /// token is returned too, for a caller that must give the batch up
    /// ([`BatchAck::ack`] all of it). When the batch cannot be written it
    /// goes on unjournaled (logged, counted).
    pub fn add(&mut self, batch: &mut EventBatch) -> Option<AckToken> {
        if batch.is_empty() {
            return None;
        }
        let path = self.dir.join(format!("{:020}.rec", self.next_seq));
        self.next_seq += 1;
        let mut encoded = Vec::with_capacity(batch.bytes / 2);
        codec::encode_batch("", batch, &mut encoded);
        let written = segment::frame(&encoded, batch.len() as u32)
            .and_then(|record| std::fs::write(&path, record));
        if let Err(e) = written {
            self.write_errors.inc();
            tracing::error!(source = %self.source, path = %path.display(), error = %e,
                "cannot journal a batch in RAM; a crash before it is delivered would lose it");
            return None;
        }
        Some(own(batch, path))
    }

    /// Removes the directory when nothing is left in it (clean shutdown).
    pub fn remove_dir_if_empty(&self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A source's way into the pipeline for batches it cannot read again:
/// journaled in RAM first (when the agent has a journal for it).
#[derive(Debug, Clone)]
pub struct JournaledSender {
    out: BatchSender,
    journal: Option<SharedJournal>,
    /// The source's name, given to a batch that has none (routes test
    /// `source == NAME`; journaled batches keep it for replay).
    source: Arc<str>,
}

/// A journal shared by the clones of a [`JournaledSender`].
pub type SharedJournal = Arc<Mutex<RamJournal>>;

/// Why [`JournaledSender::send_within`] gave a batch up.
#[derive(Debug, PartialEq, Eq)]
pub enum NotSent {
    /// The pipeline stayed full for the whole wait.
    Full,
    /// The pipeline is gone (shutdown).
    Closed,
}

impl JournaledSender {
    pub fn new(out: BatchSender, journal: Option<SharedJournal>) -> Self {
        JournaledSender {
            out,
            journal,
            source: Arc::from(""),
        }
    }

    /// The same sender naming the batches of source `name` that come
    /// without a name.
    pub fn named(mut self, name: &str) -> Self {
        self.source = Arc::from(name);
        self
    }

    /// Journals `batch` (when this sender has a journal), returning the
    /// token that gives it up. Blocks on encoding and writing: call it from
    /// `spawn_blocking` for a large batch.
    pub fn journal(&self, batch: &mut EventBatch) -> Option<AckToken> {
        self.name(batch);
        let journal = self.journal.as_ref()?;
        journal.lock().unwrap_or_else(|p| p.into_inner()).add(batch)
    }

    /// Journals `batch` and sends it, waiting for room. After a crash
    /// the journal sends it again, whether or not it got in here.
    pub async fn send(&self, mut batch: EventBatch) -> Result<(), Closed> {
        self.journal(&mut batch);
        self.out.send_batch(batch).await
    }

    /// Like [`send`](Self::send), giving up after `wait`: a batch given up
    /// leaves the journal too (its sender was told so and sends again).
    pub async fn send_within(&self, mut batch: EventBatch, wait: Duration) -> Result<(), NotSent> {
        let token = self.journal(&mut batch);
        self.send_journaled_within(batch, token, wait).await
    }

    /// Sends a batch [`journal`](Self::journal) already wrote (its `token`),
    /// giving up after `wait` like [`send_within`](Self::send_within).
    pub async fn send_journaled_within(
        &self,
        mut batch: EventBatch,
        token: Option<AckToken>,
        wait: Duration,
    ) -> Result<(), NotSent> {
        self.name(&mut batch);
        let n = batch.len();
        match tokio::time::timeout(wait, self.out.send_batch(batch)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Closed)) => Err(NotSent::Closed),
            Err(_) => {
                if let Some(token) = token {
                    token.ack(n);
                }
                Err(NotSent::Full)
            }
        }
    }
}

impl JournaledSender {
    fn name(&self, batch: &mut EventBatch) {
        if batch.source.is_empty() {
            batch.source = Arc::clone(&self.source);
        }
    }
}

/// Makes the file at `path` the owner of every event in `batch`.
fn own(batch: &mut EventBatch, path: PathBuf) -> AckToken {
    let token: AckToken = Arc::new(BatchAck::removing(path, batch.len()));
    for event in &mut batch.events {
        event.set_ack(Arc::clone(&token));
    }
    token
}

/// What a crashed run left in one source's journal, sent again one batch
/// at a time.
#[derive(Debug)]
pub struct Recovered {
    source: String,
    dir: PathBuf,
    files: Vec<PathBuf>,
    max_batch_memory: usize,
}

/// Why a journaled batch is not sent again.
#[derive(Debug)]
enum Unreadable {
    /// It would take more than the budget: set aside.
    OverBudget { events: u64 },
    /// Damaged or unreadable: removed.
    Damaged(io::Error),
}

/// The encoding of a batch is no larger than what its events and
/// resources take in memory, give or take its header.
const ENCODING_SLACK: usize = 64 << 10;

impl Recovered {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Reads each batch back (off the runtime) and sends it, oldest first,
    /// each owned by its file; a batch over the budget is set aside, a
    /// damaged one removed, both counted.
    pub async fn send_all(self, out: BatchSender) {
        let recovered_events = telemetry::counter(
            "shipd_journal_recovered_events_total",
            &[("component", &self.source)],
        );
        for path in &self.files {
            let (read_path, max) = (path.clone(), self.max_batch_memory);
            let read = tokio::task::spawn_blocking(move || read_within(&read_path, max)).await;
            let batch = match read {
                Ok(Ok(mut batch)) => {
                    own(&mut batch, path.clone());
                    batch
                }
                Ok(Err(Unreadable::OverBudget { events })) => {
                    self.set_aside(path, events);
                    continue;
                }
                Ok(Err(Unreadable::Damaged(e))) => {
                    tracing::error!(source = %self.source, path = %path.display(), error = %e,
                        "journaled batch cannot be read back; its events are lost");
                    telemetry::counter(
                        "shipd_events_dropped_total",
                        &[("component", &self.source), ("reason", "journal_damaged")],
                    )
                    .inc();
                    let _ = std::fs::remove_file(path);
                    continue;
                }
                Err(e) => {
                    tracing::error!(source = %self.source, error = %e, "reading the RAM journal back failed");
                    return;
                }
            };
            let events = batch.len() as u64;
            if out.send_batch(batch).await.is_err() {
                return;
            }
            recovered_events.add(events);
        }
    }

    /// Moves the file at `path` to `rejected/` beside it (or removes it
    /// when it cannot be moved), counting its events as dropped.
    fn set_aside(&self, path: &Path, events: u64) {
        let rejected = self.dir.join("rejected");
        let target = path.file_name().map(|name| rejected.join(name));
        let moved = target.as_ref().filter(|target| {
            std::fs::create_dir_all(&rejected).is_ok() && std::fs::rename(path, target).is_ok()
        });
        if moved.is_none() {
            let _ = std::fs::remove_file(path);
        }
        telemetry::counter(
            "shipd_events_dropped_total",
            &[
                ("component", &self.source),
                ("reason", "journal_over_budget"),
            ],
        )
        .add(events);
        tracing::error!(
            source = %self.source,
            path = %path.display(),
            events,
            budget = self.max_batch_memory,
            set_aside = %moved.map_or_else(|| "removed".to_owned(), |t| t.display().to_string()),
            "journaled batch is over the memory budget of one batch; not sent again"
        );
    }
}

/// The events a journal file holds, from its header (0 when unreadable).
fn events_in(path: &Path) -> u64 {
    std::fs::File::open(path)
        .and_then(|mut file| {
            let len = file.metadata()?.len();
            segment::count_events(&mut file, 0, len)
        })
        .unwrap_or(0)
}

/// Reads the batch at `path`, refusing one that takes more than
/// `max_memory` before it is decompressed or decoded whole.
fn read_within(path: &Path, max_memory: usize) -> Result<EventBatch, Unreadable> {
    let damaged = |e: String| Unreadable::Damaged(io::Error::new(io::ErrorKind::InvalidData, e));
    let mut file = std::fs::File::open(path).map_err(Unreadable::Damaged)?;
    let len = file.metadata().map_err(Unreadable::Damaged)?.len();
    let events = segment::count_events(&mut file, 0, len).map_err(Unreadable::Damaged)?;
    let over = Unreadable::OverBudget { events };
    if (events as usize).saturating_mul(std::mem::size_of::<Event>()) > max_memory {
        return Err(over);
    }
    let max_encoded = max_memory.saturating_add(ENCODING_SLACK);
    match segment::read_record_within(&mut file, 0, len, max_encoded)
        .map_err(Unreadable::Damaged)?
    {
        ReadOutcome::Record(record) => {
            match codec::decode_batch_within(&record.encoded, max_memory) {
                Ok(routed) => Ok(routed.batch),
                Err(codec::DecodeError::OverBudget { .. }) => Err(over),
                Err(e) => Err(damaged(e.to_string())),
            }
        }
        ReadOutcome::Damaged(segment::Damage::Oversized) => Err(over),
        ReadOutcome::Damaged(damage) => Err(damaged(damage.as_str().to_owned())),
        ReadOutcome::End => Err(damaged("empty file".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, MetricKind, MetricPoint, Resource};
    use crate::pipeline::acks::ack_events;

    fn shm_dir() -> Option<tempfile::TempDir> {
        tempfile::tempdir_in("/dev/shm").ok()
    }

    const BUDGET: usize = 1 << 20;

    /// Opens the journal and collects what [`Recovered::send_all`] sends.
    fn open(dir: &Path) -> (RamJournal, Vec<EventBatch>) {
        open_within(dir, BUDGET)
    }

    fn open_within(dir: &Path, budget: usize) -> (RamJournal, Vec<EventBatch>) {
        let (journal, recovered) = RamJournal::open(dir, "node", budget).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sent = rt.block_on(async {
            let (tx, mut rx) = crate::pipeline::channel::batch_channel(1 << 30);
            recovered.send_all(tx).await;
            let mut sent = Vec::new();
            while let Ok(b) = rx.try_recv() {
                sent.push(b.item);
            }
            sent
        });
        (journal, sent)
    }

    #[test]
    fn a_nameless_batch_is_sent_and_journaled_under_its_sources_name() {
        let Some(dir) = shm_dir() else { return };
        let (journal, _) = RamJournal::open(dir.path(), "node", BUDGET).unwrap();
        let (tx, mut rx) = crate::pipeline::channel::batch_channel(1 << 30);
        let sender = JournaledSender::new(tx, Some(Arc::new(Mutex::new(journal)))).named("node");
        let mut nameless = batch(&[1.0]);
        nameless.source = Arc::from("");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(sender.send(nameless)).unwrap();
        let sent = rx.try_recv().map(|b| b.item.source.to_string());
        assert_eq!(sent.ok().as_deref(), Some("node"));
        // A crash now: the journaled copy comes back with the name too.
        let (_, recovered) = open(dir.path());
        assert_eq!(recovered.len(), 1);
        assert_eq!(&*recovered[0].source, "node");
    }

    fn batch(values: &[f64]) -> EventBatch {
        let source: Arc<str> = Arc::from("node");
        let mut batch = EventBatch::from_source(&source, values.len());
        let r = Arc::new(Resource::default());
        for v in values {
            let p = MetricPoint::new("m", "1", MetricKind::Gauge, *v, 1, Arc::clone(&r));
            batch.push(Event::Metric(p));
        }
        batch
    }

    fn values(b: &EventBatch) -> Vec<f64> {
        b.events
            .iter()
            .filter_map(|e| match e {
                Event::Metric(m) => Some(m.value),
                Event::Log(_) => None,
            })
            .collect()
    }

    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("node")).unwrap().count()
    }

    #[test]
    fn unacknowledged_batches_come_back_in_order_after_a_crash() {
        let Some(dir) = shm_dir() else { return };
        let (mut journal, recovered) = open(dir.path());
        assert!(recovered.is_empty());
        let mut first = batch(&[1.0, 2.0]);
        let mut second = batch(&[3.0]);
        let mut third = batch(&[4.0]);
        journal.add(&mut first);
        journal.add(&mut second);
        journal.add(&mut third);
        ack_events(&second.events);
        drop((journal, first, third)); // the crash: tokens dropped, never acked
        let (_, recovered) = open(dir.path());
        let got: Vec<Vec<f64>> = recovered.iter().map(values).collect();
        assert_eq!(got, vec![vec![1.0, 2.0], vec![4.0]]);
        assert_eq!(recovered[0].source.as_ref(), "node", "the source is kept");
    }

    #[test]
    fn recovered_batches_keep_their_files_until_delivered_and_numbering_continues() {
        let Some(dir) = shm_dir() else { return };
        let (mut journal, _) = open(dir.path());
        let mut b = batch(&[1.0]);
        journal.add(&mut b);
        let (mut journal, recovered) = open(dir.path());
        let mut newer = batch(&[2.0]);
        journal.add(&mut newer);
        assert_eq!(files(dir.path()), 2, "a new file beside the recovered one");
        ack_events(&recovered[0].events);
        assert_eq!(files(dir.path()), 1);
        ack_events(&newer.events);
        assert_eq!(files(dir.path()), 0);
        journal.remove_dir_if_empty();
        assert!(!dir.path().join("node").exists());
    }

    #[test]
    fn damaged_file_is_counted_and_the_others_recovered() {
        let Some(dir) = shm_dir() else { return };
        let (mut journal, _) = open(dir.path());
        let (mut a, mut b) = (batch(&[1.0]), batch(&[2.0]));
        journal.add(&mut a);
        journal.add(&mut b);
        let first = dir.path().join("node").join(format!("{:020}.rec", 0));
        let mut bytes = std::fs::read(&first).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&first, bytes).unwrap();
        let (_, recovered) = open(dir.path());
        let got: Vec<Vec<f64>> = recovered.iter().map(values).collect();
        assert_eq!(got, vec![vec![2.0]]);
        assert_eq!(files(dir.path()), 1, "the damaged file is removed");
    }

    #[test]
    fn a_batch_over_the_budget_is_set_aside_and_counted_not_sent() {
        let Some(dir) = shm_dir() else { return };
        let (mut journal, _) = open(dir.path());
        let big: Vec<f64> = (0..1000).map(f64::from).collect();
        let (mut small, mut large) = (batch(&[1.0]), batch(&big));
        journal.add(&mut small);
        journal.add(&mut large);
        let (mut over_by_count, mut over_by_size) = (batch(&big[..600]), batch(&[2.0]));
        if let Event::Metric(m) = &mut over_by_size.events[0] {
            m.labels = vec![("payload".into(), "x".repeat(200_000).as_str().into())];
        }
        journal.add(&mut over_by_count);
        journal.add(&mut over_by_size);
        let budget = large.bytes + Resource::default().size_hint();
        drop((journal, small, large, over_by_count, over_by_size));
        // The third and fourth batches fit the first start's budget, not this one's.
        let dropped = || {
            crate::telemetry::counter(
                "shipd_events_dropped_total",
                &[("component", "node"), ("reason", "journal_over_budget")],
            )
            .get()
        };
        let before = dropped();
        let (_, sent) = open_within(dir.path(), budget / 2);
        let got: Vec<Vec<f64>> = sent.iter().map(values).collect();
        assert_eq!(
            got,
            vec![vec![1.0]],
            "only the batch within the budget is sent"
        );
        assert_eq!(dropped() - before, 1000 + 600 + 1);
        let rejected = dir.path().join("node").join("rejected");
        assert_eq!(std::fs::read_dir(rejected).unwrap().count(), 3);
        ack_events(&sent[0].events);
        let (_, sent) = open_within(dir.path(), budget * 2);
        assert!(sent.is_empty(), "what was set aside is never sent again");
    }

    #[test]
    fn a_directory_on_disk_is_refused() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        if crate::fs_kind::in_ram(dir.path()).unwrap() {
            return;
        }
        let err = RamJournal::open(dir.path(), "node", BUDGET).unwrap_err();
        assert!(err.to_string().contains("not on tmpfs"), "{err}");
    }
}
