//! Delivering one part of a batch through `_bulk`: the documents still
//! pending are sent, the answer sorts each; accepted ones are counted out,
//! refused ones counted as rejected and logged with their error type and
//! reason (rate-limited), and only the retryable ones (429, 5xx) are sent
//! again, in a later request after the backoff. The part is settled (and
//! then acknowledged by the caller) once no document is pending. A failure
//! of the whole request follows the shipping sink's policy.

use super::answer::ItemOutcome;
use super::BulkTransport;
use crate::event::Event;
use crate::sinks::log_limit::LogLimit;
use crate::sinks::otlp::{wait_to_retry, PartOutcome, SendError, Shared};
use crate::sinks::retry::Backoff;
use std::time::Duration;

static ITEM_REJECT_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));

impl BulkTransport {
    /// Sends `events` until each is accepted or refused for good (a
    /// request too large for the receiver is handed back for splitting).
    pub(crate) async fn send_part(
        &self,
        shared: &Shared,
        stream: &str,
        events: &[Event],
    ) -> PartOutcome {
        let mut pending: Vec<&Event> = events.iter().collect();
        let mut backoff = Backoff::new(shared.retry);
        while !pending.is_empty() {
            let body = match self.prepare(stream, &pending) {
                Ok(body) => body,
                Err(e) => {
                    // Compression into memory fails only short of memory;
                    // count the documents as dropped rather than loop.
                    tracing::error!(sink = %shared.name, error = %e, "cannot compress batch; dropped");
                    shared.counters.rejected.add(pending.len() as u64);
                    return PartOutcome::Settled;
                }
            };
            let wire_bytes = body.len() as u64;
            shared.counters.requests.inc();
            match self.send(body, pending.len()).await {
                Ok(items) => {
                    shared.counters.bytes_out.add(wire_bytes);
                    pending = self.settle(shared, stream, pending, items);
                    if pending.is_empty() {
                        shared.health.delivered();
                    } else {
                        let reason = format!(
                            "{} documents answered 429/5xx; sending them again",
                            pending.len()
                        );
                        wait_to_retry(shared, &mut backoff, SendError::Retryable(reason)).await;
                    }
                }
                Err(SendError::TooLarge(reason)) if pending.len() == events.len() => {
                    return PartOutcome::TooLarge(reason);
                }
                Err(SendError::Rejected(reason)) => {
                    shared.counters.rejected.add(pending.len() as u64);
                    shared.health.failed(&reason);
                    if let Some(suppressed) = ITEM_REJECT_LOG.allow() {
                        tracing::error!(
                            sink = %shared.name, %stream, events = pending.len(), %reason, suppressed,
                            "bulk request rejected by {}; not retried", shared.peer
                        );
                    }
                    return PartOutcome::Settled;
                }
                // A retry smaller than the part that was too large: wait
                // and send it again like any failure (it fitted before).
                Err(other) => wait_to_retry(shared, &mut backoff, other).await,
            }
        }
        PartOutcome::Settled
    }

    /// Counts what the answer settled and returns what is to be sent again.
    fn settle<'a>(
        &self,
        shared: &Shared,
        stream: &str,
        sent: Vec<&'a Event>,
        items: Vec<ItemOutcome>,
    ) -> Vec<&'a Event> {
        let mut again = Vec::new();
        for (event, item) in sent.into_iter().zip(items) {
            match item {
                ItemOutcome::Accepted => shared.counters.events_out.inc(),
                ItemOutcome::Retry { .. } => again.push(event),
                ItemOutcome::Rejected { status, error } => {
                    shared.counters.rejected.inc();
                    if let Some(suppressed) = ITEM_REJECT_LOG.allow() {
                        tracing::error!(
                            sink = %shared.name, %stream, status, error = %error, suppressed,
                            "{} refused a document; not retried", shared.peer
                        );
                    }
                }
            }
        }
        again
    }
}
