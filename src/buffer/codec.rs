//! The on-disk form of one routed batch: a compact, versioned binary
//! encoding of its stream, source and events (resources stored once per
//! batch and shared again on decoding). Pure: no I/O, no compression; ack
//! tokens are never encoded (a spilled batch has none, a replayed one gets
//! fresh ones).

use crate::event::Map;
use crate::event::{
    Attributes, Distribution, Event, EventBatch, LogRecord, MetricKind, MetricPoint, Position,
    Resource, Value,
};
use crate::sinks::RoutedBatch;
use std::sync::Arc;

const VERSION: u8 = 1;
/// Deepest nesting of arrays and maps accepted when decoding.
const MAX_DEPTH: usize = 64;

/// Bytes that are not a batch this version wrote.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unknown batch encoding version {0}")]
    Version(u8),
    #[error("batch encoding ends early")]
    Truncated,
    #[error("invalid batch encoding: {0}")]
    Invalid(&'static str),
    #[error("the batch takes more than {limit} bytes in memory")]
    OverBudget { limit: usize },
}

/// Appends the encoding of `batch`, bound for `stream`, to `out`. Linear
/// in the batch: resources are indexed by identity (a request of 160,000
/// resources once took 15 s here, searching a list for each event).
pub fn encode_batch(stream: &str, batch: &EventBatch, out: &mut Vec<u8>) {
    out.push(VERSION);
    put_str(out, stream);
    put_str(out, &batch.source);
    let mut resources = ResourceIndex::default();
    let indices: Vec<u32> = batch
        .events
        .iter()
        .map(|event| match event {
            Event::Log(log) => resources.index(&log.resource),
            Event::Metric(m) => resources.index(&m.resource),
        })
        .collect();
    put_u32(out, resources.order.len() as u32);
    for r in &resources.order {
        put_attrs(out, &r.attributes);
    }
    put_u32(out, batch.events.len() as u32);
    for (event, index) in batch.events.iter().zip(indices) {
        match event {
            Event::Log(log) => {
                out.push(0u8);
                put_u32(out, index);
                put_log(out, log);
            }
            Event::Metric(m) => {
                out.push(1u8);
                put_u32(out, index);
                put_metric(out, m);
            }
        }
    }
}

/// Decodes a batch [`encode_batch`] wrote.
pub fn decode_batch(bytes: &[u8]) -> Result<RoutedBatch, DecodeError> {
    decode_batch_within(bytes, usize::MAX)
}

/// Decodes a batch [`encode_batch`] wrote, giving up as soon as its events
/// and resources take more than `max_memory` (as `EventBatch::bytes` and
/// `Resource::size_hint` count them) with [`DecodeError::OverBudget`].
pub fn decode_batch_within(bytes: &[u8], max_memory: usize) -> Result<RoutedBatch, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let stream: Arc<str> = Arc::from(r.str()?);
    let source: Arc<str> = Arc::from(r.str()?);
    let n_resources = r.count(4)?;
    let mut resources = Vec::with_capacity(n_resources);
    let mut resources_memory = 0usize;
    let over = DecodeError::OverBudget { limit: max_memory };
    for _ in 0..n_resources {
        let resource = Resource {
            attributes: r.attrs(0)?,
        };
        resources_memory = resources_memory.saturating_add(resource.size_hint());
        if resources_memory > max_memory {
            return Err(over);
        }
        resources.push(Arc::new(resource));
    }
    let n_events = r.count(2)?;
    if n_events.saturating_mul(std::mem::size_of::<Event>()) > max_memory - resources_memory {
        return Err(over);
    }
    let mut batch = EventBatch::from_source(&source, n_events);
    for _ in 0..n_events {
        let kind = r.u8()?;
        let resource = resources
            .get(r.u32()? as usize)
            .cloned()
            .ok_or(DecodeError::Invalid("resource index out of range"))?;
        let event = match kind {
            0 => Event::Log(r.log(resource)?),
            1 => Event::Metric(r.metric(resource)?),
            _ => return Err(DecodeError::Invalid("unknown event kind")),
        };
        batch.push(event);
        if batch.bytes > max_memory - resources_memory {
            return Err(over);
        }
    }
    if r.at != bytes.len() {
        return Err(DecodeError::Invalid("trailing bytes"));
    }
    Ok(RoutedBatch { stream, batch })
}

/// The distinct resources of a batch in order of first use, each found
/// by its address (events of one resource mostly come in runs: the last
/// one is checked first).
#[derive(Default)]
struct ResourceIndex<'a> {
    order: Vec<&'a Arc<Resource>>,
    by_address: std::collections::HashMap<*const Resource, u32>,
    last: Option<(*const Resource, u32)>,
}

impl<'a> ResourceIndex<'a> {
    fn index(&mut self, r: &'a Arc<Resource>) -> u32 {
        let address = Arc::as_ptr(r);
        if let Some((last, i)) = self.last {
            if last == address {
                return i;
            }
        }
        let next = self.order.len() as u32;
        let i = *self.by_address.entry(address).or_insert(next);
        if i == next {
            self.order.push(r);
        }
        self.last = Some((address, i));
        i
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

fn put_attrs(out: &mut Vec<u8>, attrs: &[(crate::event::Str, Value)]) {
    put_u32(out, attrs.len() as u32);
    for (k, v) in attrs {
        put_str(out, k);
        put_value(out, v);
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
        Value::Int(i) => {
            out.push(2);
            put_u64(out, *i as u64);
        }
        Value::Float(f) => {
            out.push(3);
            put_u64(out, f.to_bits());
        }
        Value::String(s) => {
            out.push(4);
            put_str(out, s);
        }
        Value::Bytes(b) => {
            out.push(5);
            put_bytes(out, b);
        }
        Value::Timestamp(ns) => {
            out.push(6);
            put_u64(out, *ns as u64);
        }
        Value::Array(items) => {
            out.push(7);
            put_u32(out, items.len() as u32);
            for item in items {
                put_value(out, item);
            }
        }
        Value::Map(map) => {
            out.push(8);
            put_u32(out, map.len() as u32);
            for (k, v) in map {
                put_str(out, k);
                put_value(out, v);
            }
        }
    }
}

fn put_log(out: &mut Vec<u8>, log: &LogRecord) {
    put_u64(out, log.time_unix_nano);
    put_u64(out, log.observed_unix_nano);
    out.push(log.severity_number);
    put_opt_str(out, log.severity_text.as_deref());
    put_value(out, &log.body);
    put_attrs(out, &log.attributes);
    match &log.position {
        Some(p) => {
            out.push(1);
            put_u64(out, p.origin);
            put_u64(out, p.offset);
        }
        None => out.push(0),
    }
}

fn put_metric(out: &mut Vec<u8>, m: &MetricPoint) {
    put_str(out, &m.name);
    put_str(out, &m.unit);
    out.push(match m.kind {
        MetricKind::Gauge => 0,
        MetricKind::Sum { monotonic: false } => 1,
        MetricKind::Sum { monotonic: true } => 2,
        MetricKind::Histogram => 3,
        MetricKind::Summary => 4,
    });
    put_attrs(out, &m.labels);
    put_u64(out, m.value.to_bits());
    put_u64(out, m.time_unix_nano);
    put_u64(out, m.start_time_unix_nano);
    match m.distribution.as_deref() {
        None => out.push(0),
        Some(Distribution::Histogram {
            count,
            sum,
            bounds,
            bucket_counts,
        }) => {
            out.push(1);
            put_u64(out, *count);
            put_u64(out, sum.to_bits());
            put_u32(out, bounds.len() as u32);
            for b in bounds {
                put_u64(out, b.to_bits());
            }
            put_u32(out, bucket_counts.len() as u32);
            for c in bucket_counts {
                put_u64(out, *c);
            }
        }
        Some(Distribution::Summary {
            count,
            sum,
            quantiles,
        }) => {
            out.push(2);
            put_u64(out, *count);
            put_u64(out, sum.to_bits());
            put_u32(out, quantiles.len() as u32);
            for (q, v) in quantiles {
                put_u64(out, q.to_bits());
                put_u64(out, v.to_bits());
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.u64()?))
    }

    /// A count of items each at least `min_item_bytes` long, refused when
    /// the rest of the input cannot hold them (no huge allocations).
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item_bytes) > self.bytes.len() - self.at {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::Invalid("text is not UTF-8"))
    }

    fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?.to_owned())),
            _ => Err(DecodeError::Invalid("bad option flag")),
        }
    }

    fn attrs(&mut self, depth: usize) -> Result<Attributes, DecodeError> {
        let n = self.count(5)?;
        let mut attrs = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.str()?.into();
            attrs.push((k, self.value(depth)?));
        }
        Ok(attrs)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::Invalid("values nested too deep"));
        }
        Ok(match self.u8()? {
            0 => Value::Null,
            1 => Value::Bool(self.u8()? != 0),
            2 => Value::Int(self.u64()? as i64),
            3 => Value::Float(self.f64()?),
            4 => Value::String(self.str()?.into()),
            5 => Value::Bytes(bytes::Bytes::copy_from_slice(self.bytes()?)),
            6 => Value::Timestamp(self.u64()? as i64),
            7 => {
                let n = self.count(1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            8 => {
                let n = self.count(5)?;
                let mut map = Map::new();
                for _ in 0..n {
                    let k = self.str()?.into();
                    map.insert(k, self.value(depth + 1)?);
                }
                Value::Map(map)
            }
            _ => return Err(DecodeError::Invalid("unknown value tag")),
        })
    }

    fn log(&mut self, resource: Arc<Resource>) -> Result<LogRecord, DecodeError> {
        let mut log = LogRecord::new(Value::Null, resource);
        log.time_unix_nano = self.u64()?;
        log.observed_unix_nano = self.u64()?;
        log.severity_number = self.u8()?;
        log.severity_text = self.opt_str()?;
        log.body = self.value(0)?;
        log.attributes = self.attrs(0)?;
        log.position = match self.u8()? {
            0 => None,
            1 => Some(Position {
                origin: self.u64()?,
                offset: self.u64()?,
            }),
            _ => return Err(DecodeError::Invalid("bad position flag")),
        };
        Ok(log)
    }

    fn metric(&mut self, resource: Arc<Resource>) -> Result<MetricPoint, DecodeError> {
        let name = self.str()?.to_owned();
        let unit = self.str()?.to_owned();
        let kind = match self.u8()? {
            0 => MetricKind::Gauge,
            1 => MetricKind::Sum { monotonic: false },
            2 => MetricKind::Sum { monotonic: true },
            3 => MetricKind::Histogram,
            4 => MetricKind::Summary,
            _ => return Err(DecodeError::Invalid("unknown metric kind")),
        };
        let labels = self.attrs(0)?;
        let value = self.f64()?;
        let time = self.u64()?;
        let mut m = MetricPoint::new(name, unit, kind, value, time, resource);
        m.labels = labels;
        m.start_time_unix_nano = self.u64()?;
        m.distribution = match self.u8()? {
            0 => None,
            1 => {
                let count = self.u64()?;
                let sum = self.f64()?;
                let n = self.count(8)?;
                let bounds = (0..n).map(|_| self.f64()).collect::<Result<_, _>>()?;
                let n = self.count(8)?;
                let bucket_counts = (0..n).map(|_| self.u64()).collect::<Result<_, _>>()?;
                Some(Box::new(Distribution::Histogram {
                    count,
                    sum,
                    bounds,
                    bucket_counts,
                }))
            }
            2 => {
                let count = self.u64()?;
                let sum = self.f64()?;
                let n = self.count(16)?;
                let quantiles = (0..n)
                    .map(|_| Ok((self.f64()?, self.f64()?)))
                    .collect::<Result<_, DecodeError>>()?;
                Some(Box::new(Distribution::Summary {
                    count,
                    sum,
                    quantiles,
                }))
            }
            _ => return Err(DecodeError::Invalid("unknown distribution")),
        };
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RoutedBatch {
        let r = Arc::new(Resource {
            attributes: vec![("host.name".into(), Value::from("pi-1"))],
        });
        let source: Arc<str> = Arc::from("node");
        let mut batch = EventBatch::from_source(&source, 3);
        let mut log = LogRecord::new(Value::Bytes("hello".into()), Arc::clone(&r));
        let mut map = Map::new();
        map.insert(
            "a".into(),
            Value::Array(vec![Value::Int(-3), Value::Null, Value::Timestamp(7)]),
        );
        log.attributes = vec![
            ("m".into(), Value::Map(map)),
            ("f".into(), Value::Float(1.5)),
        ];
        log.severity_text = Some("warn".into());
        log.position = Some(Position {
            origin: 1,
            offset: 2,
        });
        batch.push(Event::Log(log));
        let mut gauge = MetricPoint::new("t", "Cel", MetricKind::Gauge, 41.5, 9, Arc::clone(&r));
        gauge.labels = vec![("cpu".into(), Value::from("0"))];
        batch.push(Event::Metric(gauge));
        let mut hist = MetricPoint::new("h", "s", MetricKind::Histogram, 3.0, 10, r);
        hist.distribution = Some(Box::new(Distribution::Histogram {
            count: 2,
            sum: 3.0,
            bounds: vec![1.0],
            bucket_counts: vec![1, 1],
        }));
        batch.push(Event::Metric(hist));
        RoutedBatch {
            stream: Arc::from("node_metrics"),
            batch,
        }
    }

    #[test]
    fn batch_round_trips_with_shared_resource() {
        let original = sample();
        let mut bytes = Vec::new();
        encode_batch(&original.stream, &original.batch, &mut bytes);
        let decoded = decode_batch(&bytes).unwrap();
        assert_eq!(&*decoded.stream, "node_metrics");
        assert_eq!(&*decoded.batch.source, "node");
        assert_eq!(decoded.batch.bytes, original.batch.bytes);
        let (Event::Log(a), Event::Log(b)) = (&original.batch.events[0], &decoded.batch.events[0])
        else {
            panic!("first event is a log")
        };
        assert_eq!(
            (&a.body, &a.attributes, &a.severity_text, a.position),
            (&b.body, &b.attributes, &b.severity_text, b.position)
        );
        let (Event::Metric(a), Event::Metric(b)) =
            (&original.batch.events[2], &decoded.batch.events[2])
        else {
            panic!("third event is a metric")
        };
        assert_eq!(
            (&a.name, a.kind, &a.distribution),
            (&b.name, b.kind, &b.distribution)
        );
        let (Event::Log(l), Event::Metric(m)) =
            (&decoded.batch.events[0], &decoded.batch.events[1])
        else {
            panic!()
        };
        assert!(
            Arc::ptr_eq(&l.resource, &m.resource),
            "resource shared again"
        );
    }

    #[test]
    fn distinct_resources_are_stored_once_each_in_order_of_first_use() {
        let source: Arc<str> = Arc::from("otlp");
        let mut batch = EventBatch::from_source(&source, 6);
        let resources: Vec<Arc<Resource>> = (0..3)
            .map(|i| {
                Arc::new(Resource {
                    attributes: vec![("service.name".into(), Value::from(format!("s{i}")))],
                })
            })
            .collect();
        for i in [0, 0, 2, 1, 2, 0] {
            batch.push(Event::Log(LogRecord::new(
                Value::Int(i as i64),
                Arc::clone(&resources[i]),
            )));
        }
        let mut bytes = Vec::new();
        encode_batch("s", &batch, &mut bytes);
        let decoded = decode_batch(&bytes).unwrap().batch;
        let names: Vec<String> = decoded
            .events
            .iter()
            .map(|e| match e {
                Event::Log(l) => format!("{:?}", l.resource.attributes[0].1),
                Event::Metric(_) => unreachable!(),
            })
            .collect();
        let want: Vec<String> = [0, 0, 2, 1, 2, 0]
            .iter()
            .map(|i| format!("{:?}", Value::from(format!("s{i}"))))
            .collect();
        assert_eq!(names, want);
        let Event::Log(first) = &decoded.events[0] else {
            unreachable!()
        };
        let Event::Log(last) = &decoded.events[5] else {
            unreachable!()
        };
        assert!(Arc::ptr_eq(&first.resource, &last.resource));
    }

    #[test]
    fn decoding_within_a_budget_stops_at_the_budget() {
        let sample = sample();
        let mut bytes = Vec::new();
        encode_batch(&sample.stream, &sample.batch, &mut bytes);
        // One resource, shared by the three events.
        let Event::Log(log) = &sample.batch.events[0] else {
            unreachable!()
        };
        let memory = sample.batch.bytes + log.resource.size_hint();
        assert!(decode_batch_within(&bytes, memory).is_ok());
        assert_eq!(
            decode_batch_within(&bytes, memory - 1).unwrap_err(),
            DecodeError::OverBudget { limit: memory - 1 }
        );
        assert!(matches!(
            decode_batch_within(&bytes, 100),
            Err(DecodeError::OverBudget { .. })
        ));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut bytes = Vec::new();
        let sample = sample();
        encode_batch(&sample.stream, &sample.batch, &mut bytes);
        for cut in 0..bytes.len() {
            assert!(decode_batch(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
