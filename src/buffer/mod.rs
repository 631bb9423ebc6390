//! Per-sink buffering of data that cannot be read again from its source.
//!
//! A [`SpillBuffer`] sits between the processing stage and one sink. Every
//! routed batch is either *replayable* (its events carry checkpoint ack
//! tokens: files, journald) or *spillable* (host metrics, scrapes, OTLP
//! received, stdin: no token, or a [`journal`] token) — decided in one
//! place, [`is_spillable`]. Replayable
//! batches wait for room in the sink's memory queue (the source is their
//! buffer). Spillable batches go to memory while it has room; when it is
//! full they are appended to segment files ([`queue::DiskQueue`], framed
//! by [`segment`], encoded by [`codec`]) under
//! `SHIPD_DATA_DIR/buffer/<sink>/`, and replayed in order as room returns.
//! Replayed events carry ack tokens keyed `spill|<sink>` in the
//! [`Checkpointer`], so a segment is deleted only once every record in it
//! was accepted, and a restart resumes after the delivered position.
//! A healthy sink never makes this module touch the disk.
//! A spill that cannot be written (read-only remount, full disk) keeps the
//! batch in memory (backpressure) and marks the sink degraded in
//! [`health`](crate::control::health) with the cause, until a spill write
//! succeeds again or no spill is needed any more (memory has room, nothing
//! waits on disk).

pub mod codec;
pub mod journal;
pub mod queue;
pub mod segment;

pub use queue::{SpillOptions, WhenFull};

use crate::control::health::ComponentHealth;
use crate::event::EventBatch;
use crate::pipeline::acks::{ack_events, BatchAck};
use crate::pipeline::channel::{BatchReceiver, BatchSender, TrySendError};
use crate::pipeline::checkpoint::{Checkpointer, Entry, SourceKey};
use crate::sinks::log_limit::LogLimit;
use crate::sinks::RoutedBatch;
use crate::telemetry::{self, Metric};
use queue::{DiskQueue, QueueError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Whether `batch` may be written to disk: only when none of its events can
/// be read again from its source (no event waits on a checkpoint).
pub fn is_spillable(batch: &EventBatch) -> bool {
    batch
        .events
        .iter()
        .all(|e| e.ack_token().is_none_or(|t| t.is_journaled()))
}

/// How often acknowledgements are checked and the active segment synced.
const HOUSEKEEPING: Duration = Duration::from_millis(250);

static FULL_LOG: LogLimit = LogLimit::new(Duration::from_secs(30));
static ERROR_LOG: LogLimit = LogLimit::new(Duration::from_secs(30));

/// The cause a sink is degraded for when its spill cannot be written.
const SPILL_CAUSE: &str = "spill";

/// How often a batch held in memory because the spill failed tries the
/// spill again.
const SPILL_RETRY: Duration = Duration::from_secs(1);

/// State shared by the intake, replay and housekeeping tasks of one sink.
struct Shared {
    sink: String,
    key: SourceKey,
    queue: Mutex<DiskQueue>,
    checkpointer: Arc<Checkpointer>,
    /// Wakes the replay task: a record was appended.
    appended: Notify,
    /// Wakes the housekeeping task out of its idle wait: a record was appended.
    spilled: Notify,
    /// Wakes a blocked intake: segments were deleted.
    room: Notify,
    write_errors: Metric,
    /// The spill directory, for messages.
    dir: PathBuf,
    /// The sink's health: degraded while spilling fails.
    health: Arc<ComponentHealth>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, DiskQueue> {
        // I/O under the lock leaves the queue consistent even on panic.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A spill write (or fsync) failed: counted, and the sink degraded.
    fn write_failed(&self, e: &std::io::Error) {
        self.write_errors.inc();
        let reason = format!(
            "cannot write the spill buffer {}: {e}; batches wait in memory",
            self.dir.display()
        );
        if self.health.degrade(SPILL_CAUSE, reason) {
            tracing::error!(sink = %self.sink, dir = %self.dir.display(), error = %e,
                "cannot write the spill buffer: /health reports degraded; batches wait in memory");
        }
    }

    /// A spill write succeeded, or none is needed (memory has room and
    /// nothing waits on disk): no longer degraded for the spill.
    fn spill_fine(&self) {
        if self.health.restore(SPILL_CAUSE) {
            tracing::info!(sink = %self.sink, dir = %self.dir.display(), "the spill buffer is writable again or no longer needed");
        }
    }

    fn housekeeping(&self) {
        let acked = self.checkpointer.entry(&self.key).map_or(0, |e| e.offset);
        let mut queue = self.queue();
        let before = queue.bytes();
        queue.acknowledged(acked);
        if let Err(e) = queue.sync_if_due() {
            self.write_failed(&e);
            if let Some(suppressed) = ERROR_LOG.allow() {
                tracing::error!(sink = %self.sink, error = %e, suppressed, "cannot fsync the spill segment");
            }
        }
        if queue.bytes() < before {
            self.room.notify_waiters();
        }
    }
}

/// The spill buffer of one sink, ready to run.
pub struct SpillBuffer {
    shared: Arc<Shared>,
}

impl SpillBuffer {
    /// Opens the spill directory of `sink` under `data_dir/buffer/` and
    /// resumes after the position the checkpointer last recorded.
    pub fn open(
        sink: &str,
        opts: SpillOptions,
        data_dir: &Path,
        checkpointer: &Arc<Checkpointer>,
    ) -> Result<Self, QueueError> {
        let key: SourceKey = Arc::from(format!("spill|{sink}"));
        let dir = data_dir.join("buffer").join(sink);
        let resume = checkpointer.entry(&key).map_or(0, |e| e.offset);
        let queue = DiskQueue::open(&dir, sink, opts, resume)?;
        if queue.has_unread() {
            tracing::info!(
                sink,
                bytes = queue.bytes(),
                "replaying spilled batches from the last run"
            );
        }
        checkpointer.start_unflushed(
            &key,
            Entry {
                path: dir.display().to_string(),
                offset: resume,
                cursor: None,
            },
        );
        Ok(SpillBuffer {
            shared: Arc::new(Shared {
                sink: sink.to_owned(),
                key,
                queue: Mutex::new(queue),
                checkpointer: Arc::clone(checkpointer),
                appended: Notify::new(),
                spilled: Notify::new(),
                room: Notify::new(),
                write_errors: telemetry::counter(
                    "shipd_spill_write_errors_total",
                    &[("component", sink)],
                ),
                dir,
                health: ComponentHealth::register(sink),
            }),
        })
    }

    /// Moves batches from `input` to `output` until `input` closes, then
    /// syncs the segment being written and returns. Spilled records not yet
    /// replayed stay on disk for the next start.
    pub fn spawn(
        self,
        input: BatchReceiver<RoutedBatch>,
        output: BatchSender<RoutedBatch>,
    ) -> JoinHandle<()> {
        let shared = self.shared;
        let stop = CancellationToken::new();
        tokio::spawn(async move {
            let replay = tokio::spawn(replay(Arc::clone(&shared), output.clone(), stop.clone()));
            let housekeeping = tokio::spawn(housekeeping(Arc::clone(&shared), stop.clone()));
            intake(&shared, input, output).await;
            stop.cancel();
            let _ = replay.await;
            let _ = housekeeping.await;
            shared.housekeeping();
            if let Err(e) = shared.queue().close_active() {
                tracing::error!(sink = %shared.sink, error = %e, "cannot fsync the spill segment at shutdown");
            }
        })
    }
}

/// Checks acknowledgements and syncs every [`HOUSEKEEPING`] while anything
/// is on disk; with nothing spilled (a healthy sink) it sleeps until a
/// record is appended, so an idle agent is not woken for nothing.
async fn housekeeping(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HOUSEKEEPING);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if shared.queue().bytes() == 0 {
            tokio::select! {
                _ = shared.spilled.notified() => tick.reset(),
                _ = stop.cancelled() => return,
            }
        }
        tokio::select! {
            _ = tick.tick() => shared.housekeeping(),
            _ = stop.cancelled() => return,
        }
    }
}

async fn intake(
    shared: &Shared,
    mut input: BatchReceiver<RoutedBatch>,
    output: BatchSender<RoutedBatch>,
) {
    while let Some(routed) = input.recv().await {
        let routed = routed.item;
        let bytes = routed.batch.bytes;
        if !is_spillable(&routed.batch) {
            if output.send(routed, bytes).await.is_err() {
                return;
            }
            continue;
        }
        // Memory first, unless older batches wait on disk (keep the order).
        let routed = if shared.queue().has_unread() {
            routed
        } else {
            match output.try_send(routed, bytes) {
                Ok(()) => {
                    // Memory has room and nothing waits on disk: the spill
                    // is not needed, so a failed spill no longer matters.
                    shared.spill_fine();
                    continue;
                }
                Err(TrySendError::Full(routed)) => routed,
                Err(TrySendError::Closed(_)) => return,
            }
        };
        if let Some(routed) = spill(shared, routed).await {
            if !hold_in_memory(shared, &output, routed, bytes).await {
                return;
            }
        }
    }
}

/// Keeps a batch the spill could not take (disk full, read-only, I/O
/// error) until the memory queue has room, rather than lose it; the
/// backpressure reaches the sources meanwhile. The spill is tried again
/// every [`SPILL_RETRY`], so a disk made writable again (space freed,
/// remounted) is used without waiting for the sink. `false` when the
/// queue closed.
async fn hold_in_memory(
    shared: &Shared,
    output: &BatchSender<RoutedBatch>,
    mut routed: RoutedBatch,
    bytes: usize,
) -> bool {
    loop {
        match output.try_send(routed, bytes) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(held)) => routed = held,
        }
        tokio::time::sleep(SPILL_RETRY).await;
        match spill(shared, routed).await {
            None => return true,
            Some(held) => routed = held,
        }
    }
}

/// Appends `routed` to the spill; gives it back when it cannot be written.
async fn spill(shared: &Shared, routed: RoutedBatch) -> Option<RoutedBatch> {
    let mut encoded = Vec::with_capacity(routed.batch.bytes / 2);
    codec::encode_batch(&routed.stream, &routed.batch, &mut encoded);
    let events = routed.batch.len() as u32;
    let uncompressed = encoded.len() as u64;
    let record = match segment::frame(&encoded, events) {
        Ok(r) => r,
        Err(e) => {
            shared.write_errors.inc();
            tracing::error!(sink = %shared.sink, error = %e, "cannot compress a batch for the spill buffer");
            return Some(routed);
        }
    };
    drop(encoded);
    loop {
        let room = shared.room.notified();
        {
            let mut queue = shared.queue();
            if queue.would_overflow(record.len() as u64) {
                if queue.bytes() == 0 {
                    // One batch larger than the whole cap: memory only.
                    return Some(routed);
                }
                match queue.options().when_full {
                    WhenFull::DropOldest => match queue.drop_oldest() {
                        Ok(dropped) => {
                            if let Some(suppressed) = FULL_LOG.allow() {
                                tracing::warn!(sink = %shared.sink, dropped_events = dropped, suppressed,
                                    "spill buffer full: dropped its oldest segment (when_full = drop_oldest)");
                            }
                            continue;
                        }
                        Err(e) => {
                            shared.write_errors.inc();
                            tracing::error!(sink = %shared.sink, error = %e, "cannot drop the oldest spill segment");
                            return Some(routed);
                        }
                    },
                    WhenFull::Block => {
                        if let Some(suppressed) = FULL_LOG.allow() {
                            tracing::warn!(sink = %shared.sink, suppressed,
                                "spill buffer full: waiting for delivery (when_full = block)");
                        }
                    }
                }
            } else {
                return match queue.append(&record, events, uncompressed) {
                    Ok(()) => {
                        drop(queue);
                        shared.spill_fine();
                        shared.appended.notify_one();
                        shared.spilled.notify_one();
                        // On disk now: its RAM journal copies may go.
                        ack_events(&routed.batch.events);
                        None
                    }
                    Err(e) => {
                        shared.write_failed(&e);
                        if let Some(suppressed) = ERROR_LOG.allow() {
                            tracing::error!(sink = %shared.sink, error = %e, suppressed,
                                "cannot write to the spill buffer; holding the batch in memory");
                        }
                        Some(routed)
                    }
                };
            }
        }
        // Blocked: wait for deleted segments (or re-check soon).
        let _ = tokio::time::timeout(HOUSEKEEPING, room).await;
        shared.housekeeping();
    }
}

/// Reads spilled records in order and hands them to the sink with fresh
/// ack tokens, one batch in memory at a time besides the sink's queue.
async fn replay(shared: Arc<Shared>, output: BatchSender<RoutedBatch>, stop: CancellationToken) {
    let mut seq = 0u64;
    loop {
        let wake = shared.appended.notified();
        let next = shared.queue().next_record();
        let record = match next {
            Ok(Some(record)) => record,
            Ok(None) => {
                // With nothing on disk only an append brings a record;
                // otherwise re-check soon (a segment closing, damage skipped).
                let recheck = async {
                    if shared.queue().bytes() == 0 {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(HOUSEKEEPING).await;
                };
                tokio::select! {
                    _ = wake => continue,
                    _ = recheck => continue,
                    _ = stop.cancelled() => return,
                }
            }
            Err(e) => {
                shared.write_errors.inc();
                if let Some(suppressed) = ERROR_LOG.allow() {
                    tracing::error!(sink = %shared.sink, error = %e, suppressed, "cannot read the spill buffer; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.cancelled() => return,
                }
            }
        };
        let mut routed = match codec::decode_batch(&record.encoded) {
            Ok(routed) => routed,
            Err(e) => {
                tracing::error!(sink = %shared.sink, error = %e, events = record.events, "spilled batch cannot be decoded; skipped");
                telemetry::counter(
                    "shipd_events_dropped_total",
                    &[("component", &shared.sink), ("reason", "spill_undecodable")],
                )
                .add(u64::from(record.events));
                shared.checkpointer.complete(&shared.key, seq, record.end);
                seq += 1;
                continue;
            }
        };
        let n = routed.batch.len();
        if let Some(token) = BatchAck::new(
            &shared.checkpointer,
            Arc::clone(&shared.key),
            seq,
            record.end,
            n,
        ) {
            for event in &mut routed.batch.events {
                event.set_ack(Arc::clone(&token));
            }
        }
        seq += 1;
        let bytes = routed.batch.bytes;
        tokio::select! {
            sent = output.send(routed, bytes) => if sent.is_err() { return },
            // Not acknowledged: replayed again on the next start.
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, MetricKind, MetricPoint, Resource};
    use crate::pipeline::channel::batch_channel;

    fn metrics(tag: usize) -> RoutedBatch {
        let source: Arc<str> = Arc::from("node");
        let mut batch = EventBatch::from_source(&source, 10);
        let r = Arc::new(Resource::default());
        for i in 0..10 {
            let p = MetricPoint::new(
                "m",
                "1",
                MetricKind::Gauge,
                (tag * 10 + i) as f64,
                1,
                Arc::clone(&r),
            );
            batch.push(Event::Metric(p));
        }
        RoutedBatch {
            stream: Arc::from("s"),
            batch,
        }
    }

    #[tokio::test]
    async fn full_memory_queue_spills_then_replays_in_order_and_deletes_acked_segments() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::open(
            dir.path(),
            &crate::pipeline::checkpoint::CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
        let spill = SpillBuffer::open("o2", SpillOptions::default(), dir.path(), &cp).unwrap();
        let (in_tx, in_rx) = batch_channel::<RoutedBatch>(1 << 20);
        let (out_tx, mut out_rx) = batch_channel::<RoutedBatch>(2000);
        let task = spill.spawn(in_rx, out_tx);
        for tag in 0..50 {
            let b = metrics(tag);
            let bytes = b.batch.bytes;
            in_tx.send(b, bytes).await.unwrap();
        }
        let segments = dir.path().join("buffer/o2");
        let mut values = Vec::new();
        while values.len() < 500 {
            let got = out_rx.recv().await.unwrap().item;
            for e in &got.batch.events {
                let Event::Metric(m) = e else { panic!() };
                values.push(m.value as usize);
            }
            if values.len() == 100 {
                assert!(
                    std::fs::read_dir(&segments).unwrap().count() > 0,
                    "the rest waits on disk"
                );
            }
            ack_events(&got.batch.events);
        }
        assert_eq!(
            values,
            (0..500).collect::<Vec<_>>(),
            "memory first, then disk, in order"
        );
        let emptied = async {
            while std::fs::read_dir(&segments).unwrap().count() > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), emptied)
            .await
            .expect("acked segments deleted");
        drop(in_tx);
        task.await.unwrap();
    }

    #[test]
    fn only_batches_without_ack_tokens_spill() {
        assert!(is_spillable(&metrics(0).batch));
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::open(
            dir.path(),
            &crate::pipeline::checkpoint::CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap();
        let key: SourceKey = Arc::from("files|1");
        cp.start_unflushed(
            &key,
            Entry {
                path: "/x".into(),
                offset: 0,
                cursor: None,
            },
        );
        let mut batch = metrics(0);
        let token = BatchAck::new(&cp, key, 0, 10, 1);
        if let Event::Metric(m) = &mut batch.batch.events[0] {
            m.ack = token;
        }
        assert!(
            !is_spillable(&batch.batch),
            "a replayable event keeps the batch in memory"
        );
    }
}
