//! Per-stream batching: events accumulate per stream until a batch reaches
//! `max_events` or `max_bytes`, or its oldest event waited `timeout`.

use crate::event::Event;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// When a batch is closed.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_events: usize,
    /// Uncompressed, estimated from event sizes.
    pub max_bytes: usize,
    pub timeout: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_events: 5000,
            max_bytes: crate::memory::budgets().batch_max_bytes,
            timeout: Duration::from_secs(1),
        }
    }
}

/// A closed batch for one stream.
#[derive(Debug)]
pub struct StreamBatch {
    pub stream: Arc<str>,
    pub events: Vec<Event>,
    pub bytes: usize,
}

#[derive(Debug)]
struct Open {
    events: Vec<Event>,
    bytes: usize,
    deadline: Instant,
}

/// Open batches, one per stream.
#[derive(Debug)]
pub struct StreamBatcher {
    limits: BatchLimits,
    open: HashMap<Arc<str>, Open>,
}

impl StreamBatcher {
    pub fn new(limits: BatchLimits) -> Self {
        StreamBatcher {
            limits,
            open: HashMap::new(),
        }
    }

    /// Adds events to `stream`'s batch; returns the batches that filled up.
    /// The stream's open batch is looked up once per call, not per event.
    pub fn push(&mut self, stream: &Arc<str>, events: Vec<Event>, out: &mut Vec<StreamBatch>) {
        let timeout = self.limits.timeout;
        let fresh = || Open {
            events: Vec::new(),
            bytes: 0,
            deadline: Instant::now() + timeout,
        };
        let mut open = self.open.remove(stream).unwrap_or_else(fresh);
        for event in events {
            open.bytes += event.size_hint();
            open.events.push(event);
            if open.events.len() >= self.limits.max_events || open.bytes >= self.limits.max_bytes {
                out.push(close(
                    Arc::clone(stream),
                    std::mem::replace(&mut open, fresh()),
                ));
            }
        }
        if !open.events.is_empty() {
            self.open.insert(Arc::clone(stream), open);
        }
    }

    /// The earliest deadline among open batches.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open.values().map(|o| o.deadline).min()
    }

    /// Closes every batch whose deadline passed.
    pub fn expired(&mut self, now: Instant, out: &mut Vec<StreamBatch>) {
        let due: Vec<Arc<str>> = self
            .open
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(s, _)| Arc::clone(s))
            .collect();
        for stream in due {
            if let Some(open) = self.open.remove(&stream) {
                out.push(close(stream, open));
            }
        }
    }

    /// Closes every open batch.
    pub fn drain(&mut self, out: &mut Vec<StreamBatch>) {
        out.extend(self.open.drain().map(|(s, o)| close(s, o)));
    }
}

fn close(stream: Arc<str>, open: Open) -> StreamBatch {
    StreamBatch {
        stream,
        events: open.events,
        bytes: open.bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LogRecord, Resource, Value};

    fn events(n: usize) -> Vec<Event> {
        let r = Arc::new(Resource::default());
        (0..n)
            .map(|_| Event::Log(LogRecord::new(Value::from("line"), Arc::clone(&r))))
            .collect()
    }

    #[test]
    fn batch_closes_at_max_events_per_stream() {
        let limits = BatchLimits {
            max_events: 3,
            ..BatchLimits::default()
        };
        let mut b = StreamBatcher::new(limits);
        let (a, c): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("c"));
        let mut out = Vec::new();
        b.push(&a, events(2), &mut out);
        b.push(&c, events(2), &mut out);
        assert!(out.is_empty());
        b.push(&a, events(2), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].events.len(), 3);
        let mut rest = Vec::new();
        b.drain(&mut rest);
        assert_eq!(rest.iter().map(|s| s.events.len()).sum::<usize>(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn batch_closes_after_timeout() {
        let mut b = StreamBatcher::new(BatchLimits::default());
        let s: Arc<str> = Arc::from("s");
        let mut out = Vec::new();
        b.push(&s, events(1), &mut out);
        let deadline = b.next_deadline().unwrap();
        b.expired(Instant::now(), &mut out);
        assert!(out.is_empty());
        tokio::time::sleep_until(deadline).await;
        b.expired(Instant::now(), &mut out);
        assert_eq!(out.len(), 1);
        assert!(b.next_deadline().is_none());
    }
}
