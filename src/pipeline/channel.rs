//! Channels of event batches bounded by bytes, not by count, so that a full
//! downstream stage stops its upstream (backpressure reaches the sources).
//! The bytes are what the events take in memory ([`EventBatch::bytes`]:
//! each event's own size plus its payload), so millions of tiny events
//! fill a channel as surely as a few large ones. An item larger than the
//! whole capacity is let in alone (else it could never pass): sources bound
//! their batches (the OTLP receiver by `max_request_memory`, see
//! [`crate::memory`]).

use crate::event::EventBatch;
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// A batch together with the share of the channel's byte budget it holds;
/// the budget returns when the batch is dropped.
#[derive(Debug)]
pub struct Budgeted<T> {
    pub item: T,
    _permit: OwnedSemaphorePermit,
}

/// Sending half: waits while the channel holds `capacity` bytes.
#[derive(Debug)]
pub struct BatchSender<T = EventBatch> {
    tx: mpsc::UnboundedSender<Budgeted<T>>,
    budget: Arc<Semaphore>,
    capacity: u32,
}

impl<T> Clone for BatchSender<T> {
    fn clone(&self) -> Self {
        BatchSender {
            tx: self.tx.clone(),
            budget: Arc::clone(&self.budget),
            capacity: self.capacity,
        }
    }
}

/// Receiving half.
pub type BatchReceiver<T = EventBatch> = mpsc::UnboundedReceiver<Budgeted<T>>;

/// The receiver is gone; the item was not delivered.
#[derive(Debug, thiserror::Error)]
#[error("channel closed")]
pub struct Closed;

/// Why [`BatchSender::try_send`] gave the item back.
#[derive(Debug)]
pub enum TrySendError<T> {
    /// No room now.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// A channel holding at most `capacity_bytes` (an item larger than that is
/// admitted alone).
pub fn batch_channel<T>(capacity_bytes: usize) -> (BatchSender<T>, BatchReceiver<T>) {
    let capacity = capacity_bytes.clamp(1, u32::MAX as usize >> 4) as u32;
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = Arc::new(Semaphore::new(capacity as usize));
    (
        BatchSender {
            tx,
            budget,
            capacity,
        },
        rx,
    )
}

impl<T> BatchSender<T> {
    /// Sends `item` of `bytes` size, waiting for room.
    pub async fn send(&self, item: T, bytes: usize) -> Result<(), Closed> {
        let permits = (bytes.max(1) as u64).min(self.capacity as u64) as u32;
        let permit = Arc::clone(&self.budget)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Closed)?;
        self.tx
            .send(Budgeted {
                item,
                _permit: permit,
            })
            .map_err(|_| Closed)
    }

    /// Sends `item` only if its `bytes` fit now; gives it back otherwise.
    pub fn try_send(&self, item: T, bytes: usize) -> Result<(), TrySendError<T>> {
        let permits = (bytes.max(1) as u64).min(self.capacity as u64) as u32;
        let permit = match Arc::clone(&self.budget).try_acquire_many_owned(permits) {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(TrySendError::Full(item)),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(TrySendError::Closed(item)),
        };
        self.tx
            .send(Budgeted {
                item,
                _permit: permit,
            })
            .map_err(|e| TrySendError::Closed(e.0.item))
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> usize {
        self.capacity as usize - self.budget.available_permits()
    }

    /// A read-only view of the queued bytes that does not keep the channel open.
    pub fn meter(&self) -> QueueMeter {
        QueueMeter {
            budget: Arc::clone(&self.budget),
            capacity: self.capacity,
        }
    }
}

/// Reads how many bytes a channel holds (for status), without sending.
#[derive(Debug, Clone)]
pub struct QueueMeter {
    budget: Arc<Semaphore>,
    capacity: u32,
}

impl QueueMeter {
    pub fn queued_bytes(&self) -> usize {
        (self.capacity as usize).saturating_sub(self.budget.available_permits())
    }
}

impl BatchSender<EventBatch> {
    pub async fn send_batch(&self, batch: EventBatch) -> Result<(), Closed> {
        let bytes = batch.bytes;
        self.send(batch, bytes).await
    }
}
