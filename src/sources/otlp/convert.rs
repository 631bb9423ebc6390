//! Maps OTLP export requests onto shipd's events: one [`EventBatch`] per
//! request, resource attributes kept (plus `shipd.source` and, when the app
//! did not set it, the node's `host.name`), scope name and version as
//! `otel.scope.*` attributes, trace context as `trace_id` / `span_id`.
//!
//! A request is converted from its protobuf encoding one record (or data
//! point) at a time ([`wire::Fields`]), never decoded whole: what it costs
//! in memory is the events it becomes, counted as they are made and bounded
//! by `max_memory` (an empty log record is 2 bytes on the wire and some 160
//! in memory). Records are counted first ([`wire::census`]), so a request
//! that cannot fit is refused before anything is built. Time is linear in
//! the request's size. Pure: no I/O, no channels; the only clock read fills
//! missing timestamps.

use super::expansion::{self, Kind, MAX_EXPANSION};
use super::wire::{self, Fields, WireError};
use crate::cli::status::human_bytes;
use crate::event::Map;
use crate::event::{
    unix_nanos, Attributes, Distribution, Event, EventBatch, LogRecord, MetricKind, MetricPoint,
    Resource, Value,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord as OtlpLogRecord;
use opentelemetry_proto::tonic::metrics::v1::{
    number_data_point, AggregationTemporality, DataPointFlags, ExponentialHistogramDataPoint,
    HistogramDataPoint, NumberDataPoint, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use prost::Message;
use std::sync::Arc;
use std::time::SystemTime;

/// Who receives: the source's name and the node's host name.
#[derive(Debug, Clone)]
pub struct Origin {
    pub source: Arc<str>,
    pub host_name: String,
}

/// Events of one request, and the data points that could not be represented.
#[derive(Debug)]
pub struct Converted {
    pub batch: EventBatch,
    /// Points flagged "no recorded value" or without a value.
    pub skipped_points: u64,
    /// What the events take in memory: their sizes (`batch.bytes`) and the
    /// resources they share.
    pub memory: usize,
}

/// Why a request was not converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("body is not an OTLP export request: {0}")]
    Malformed(String),
    #[error(
        "the request's {items} {what} take more than {} in memory once decoded (at least {}); \
         this receiver takes at most {} per request (max_request_memory): send smaller batches",
        human_bytes(*limit as u64),
        human_bytes(*at_least as u64),
        human_bytes(*limit as u64)
    )]
    TooLarge {
        items: u64,
        what: &'static str,
        at_least: usize,
        limit: usize,
    },
    /// `hold` refused more memory: none free now.
    #[error("no memory free for the request now")]
    NoRoom,
}

impl From<WireError> for ConvertError {
    fn from(e: WireError) -> Self {
        ConvertError::Malformed(e.to_string())
    }
}

impl From<prost::DecodeError> for ConvertError {
    fn from(e: prost::DecodeError) -> Self {
        ConvertError::Malformed(e.to_string())
    }
}

/// Memory is asked for in steps of this much, not per event.
const HOLD_STEP: usize = 256 << 10;

/// The batch being built, with what it takes and what `hold` granted.
struct Building<H> {
    batch: EventBatch,
    resources: usize,
    granted: usize,
    max_memory: usize,
    hold: H,
    items: u64,
    what: &'static str,
}

impl<H: FnMut(usize) -> bool> Building<H> {
    /// Refuses a request whose items cannot fit whatever they hold: each
    /// becomes an event of at least `size_of::<Event>()`.
    fn new(
        origin: &Origin,
        census: wire::Census,
        what: &'static str,
        max_memory: usize,
        hold: H,
    ) -> Result<Self, ConvertError> {
        let at_least = usize::try_from(census.items)
            .unwrap_or(usize::MAX)
            .saturating_mul(std::mem::size_of::<Event>());
        if at_least > max_memory {
            return Err(ConvertError::TooLarge {
                items: census.items,
                what,
                at_least,
                limit: max_memory,
            });
        }
        let mut building = Building {
            batch: EventBatch::from_source(&origin.source, census.items as usize),
            resources: 0,
            granted: 0,
            max_memory,
            hold,
            items: census.items,
            what,
        };
        // The events' slots are allocated at once.
        building.check(at_least)?;
        Ok(building)
    }

    fn memory(&self) -> usize {
        self.batch.bytes + self.resources
    }

    fn check(&mut self, memory: usize) -> Result<(), ConvertError> {
        if memory > self.max_memory {
            return Err(ConvertError::TooLarge {
                items: self.items,
                what: self.what,
                at_least: memory,
                limit: self.max_memory,
            });
        }
        if memory > self.granted {
            let want = memory.saturating_add(HOLD_STEP).min(self.max_memory);
            if !(self.hold)(want) {
                return Err(ConvertError::NoRoom);
            }
            self.granted = want;
        }
        Ok(())
    }

    /// Makes sure decoding `item` fits before it is decoded: a small item
    /// (a few hundred bytes, the usual record) is taken at its worst,
    /// [`MAX_EXPANSION`] times its size; a larger one is measured
    /// ([`expansion::least`]), so a bomb inside one record is found without
    /// refusing a record that is merely long.
    fn admit(&mut self, item: &[u8], kind: Kind) -> Result<(), ConvertError> {
        let rough = item.len().saturating_mul(MAX_EXPANSION);
        let need = if rough <= HOLD_STEP {
            rough
        } else {
            expansion::least(item, kind)?
        };
        self.check(self.memory().saturating_add(need))
    }

    fn push(&mut self, event: Event) -> Result<(), ConvertError> {
        self.batch.push(event);
        self.check(self.memory())
    }

    /// The resource of the events that follow (field 1 of `resource_logs`
    /// or `resource_metrics`), counted once.
    fn share(
        &mut self,
        resource_of_items: &[u8],
        origin: &Origin,
    ) -> Result<Arc<Resource>, ConvertError> {
        let mut decoded: Option<OtlpResource> = None;
        for bytes in Fields::new(resource_of_items).messages(1) {
            let bytes = bytes?;
            self.admit(bytes, Kind::Resource)?;
            decoded
                .get_or_insert_with(OtlpResource::default)
                .merge(bytes)?;
        }
        let resource = resource_of(decoded, origin);
        self.resources += resource.size_hint();
        self.check(self.memory())?;
        Ok(Arc::new(resource))
    }

    fn finish(self, skipped_points: u64) -> Converted {
        let memory = self.memory();
        Converted {
            batch: self.batch,
            skipped_points,
            memory,
        }
    }
}

/// The `otel.scope.*` attributes of the scope (field 1) of `scope_items`
/// (`scope_logs` or `scope_metrics`): its name and version, the last of
/// each as protobuf merges; its attributes are not decoded.
fn scope_of(scope_items: &[u8]) -> Result<Attributes, ConvertError> {
    let (mut name, mut version) = ("", "");
    for scope in Fields::new(scope_items).messages(1) {
        for field in Fields::new(scope?) {
            let field = field?;
            match field.number {
                1 => name = text(field.bytes()?)?,
                2 => version = text(field.bytes()?)?,
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    if !name.is_empty() {
        out.push(("otel.scope.name".into(), Value::from(name)));
    }
    if !version.is_empty() {
        out.push(("otel.scope.version".into(), Value::from(version)));
    }
    Ok(out)
}

/// The log records of an encoded `ExportLogsServiceRequest`, in order.
/// `hold` is asked before the events grow past what it last allowed (with
/// the bytes they are about to take; `false`: not now, [`ConvertError::NoRoom`]);
/// beyond `max_memory` the request is [`ConvertError::TooLarge`].
pub fn logs(
    request: &[u8],
    origin: &Origin,
    max_memory: usize,
    hold: impl FnMut(usize) -> bool,
) -> Result<Converted, ConvertError> {
    let census = wire::census(request, wire::LOG_RECORDS)?;
    let mut out = Building::new(origin, census, "log records", max_memory, hold)?;
    let now = unix_nanos(SystemTime::now());
    for resource_logs in Fields::new(request).messages(1) {
        let resource_logs = resource_logs?;
        let mut resource = None;
        for scope_logs in Fields::new(resource_logs).messages(2) {
            let scope_logs = scope_logs?;
            let scope = scope_of(scope_logs)?;
            for record in Fields::new(scope_logs).messages(2) {
                let resource = match &resource {
                    Some(r) => Arc::clone(r),
                    None => resource.insert(out.share(resource_logs, origin)?).clone(),
                };
                let record = record?;
                out.admit(record, Kind::LogRecord)?;
                let record = OtlpLogRecord::decode(record)?;
                out.push(Event::Log(log_event(record, resource, &scope, now)))?;
            }
        }
    }
    Ok(out.finish(0))
}

fn log_event(r: OtlpLogRecord, resource: Arc<Resource>, scope: &Attributes, now: u64) -> LogRecord {
    let mut attributes = attributes_of(r.attributes);
    attributes.extend(scope.iter().cloned());
    if !r.trace_id.is_empty() {
        attributes.push(("trace_id".into(), Value::String(hex(&r.trace_id).into())));
    }
    if !r.span_id.is_empty() {
        attributes.push(("span_id".into(), Value::String(hex(&r.span_id).into())));
    }
    if !r.event_name.is_empty() {
        attributes.push(("event.name".into(), Value::String(r.event_name.into())));
    }
    let observed = if r.observed_time_unix_nano > 0 {
        r.observed_time_unix_nano
    } else {
        now
    };
    let mut log = LogRecord::new(r.body.map(value_of).unwrap_or(Value::Null), resource);
    // OTLP: a missing event time means "use the observed time".
    log.time_unix_nano = if r.time_unix_nano > 0 {
        r.time_unix_nano
    } else {
        observed
    };
    log.observed_unix_nano = observed;
    log.severity_number = r.severity_number.clamp(0, 24) as u8;
    log.severity_text = Some(r.severity_text).filter(|t| !t.is_empty());
    log.attributes = attributes;
    log
}

/// Field numbers of `Metric`'s `data` cases.
const GAUGE: u32 = 5;
const SUM: u32 = 7;
const HISTOGRAM: u32 = 9;
const EXPONENTIAL_HISTOGRAM: u32 = 10;
const SUMMARY: u32 = 11;

/// The metric points of an encoded `ExportMetricsServiceRequest`, bounded
/// like [`logs`]. Delta sums become gauges (the value over the interval):
/// the event model's sums are cumulative.
pub fn metrics(
    request: &[u8],
    origin: &Origin,
    max_memory: usize,
    hold: impl FnMut(usize) -> bool,
) -> Result<Converted, ConvertError> {
    let census = wire::census(request, wire::DATA_POINTS)?;
    let mut out = Building::new(origin, census, "metric data points", max_memory, hold)?;
    let mut skipped_points = 0;
    for resource_metrics in Fields::new(request).messages(1) {
        let resource_metrics = resource_metrics?;
        let mut resource = None;
        for scope_metrics in Fields::new(resource_metrics).messages(2) {
            let scope_metrics = scope_metrics?;
            let scope = scope_of(scope_metrics)?;
            for metric in Fields::new(scope_metrics).messages(2) {
                let metric = metric?;
                let resource = match &resource {
                    Some(r) => Arc::clone(r),
                    None => resource
                        .insert(out.share(resource_metrics, origin)?)
                        .clone(),
                };
                skipped_points += metric_points(metric, &resource, &scope, &mut out)?;
            }
        }
    }
    Ok(out.finish(skipped_points))
}

/// The UTF-8 text of a string field, as prost checks it.
fn text(bytes: &[u8]) -> Result<&str, ConvertError> {
    std::str::from_utf8(bytes)
        .map_err(|_| ConvertError::Malformed("a string field is not UTF-8".into()))
}

/// Pushes the points of one encoded `Metric`; returns how many were skipped.
fn metric_points<H: FnMut(usize) -> bool>(
    metric: &[u8],
    resource: &Arc<Resource>,
    scope: &Attributes,
    out: &mut Building<H>,
) -> Result<u64, ConvertError> {
    // Scalars: the last occurrence wins; `data` is a oneof: the last case
    // set wins, and repeated occurrences of that case merge.
    let (mut name, mut unit, mut case) = ("", "", None);
    let (mut temporality, mut monotonic) = (0i32, false);
    for field in Fields::new(metric) {
        let field = field?;
        match field.number {
            1 => name = text(field.bytes()?)?,
            3 => unit = text(field.bytes()?)?,
            GAUGE | SUM | HISTOGRAM | EXPONENTIAL_HISTOGRAM | SUMMARY => {
                if case != Some(field.number) {
                    (temporality, monotonic) = (0, false);
                }
                case = Some(field.number);
                if field.number == SUM {
                    for inner in Fields::new(field.bytes()?) {
                        let inner = inner?;
                        match inner.number {
                            2 => temporality = inner.varint()? as i32,
                            3 => monotonic = inner.varint()? != 0,
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let Some(case) = case else { return Ok(0) };
    let shape = Shape {
        name,
        unit,
        resource,
        scope,
    };
    let mut skipped = 0;
    for data in Fields::new(metric).messages(case) {
        for point in Fields::new(data?).messages(1) {
            let point = point?;
            out.admit(
                point,
                match case {
                    GAUGE | SUM => Kind::NumberPoint,
                    HISTOGRAM => Kind::HistogramPoint,
                    EXPONENTIAL_HISTOGRAM => Kind::ExponentialPoint,
                    _ => Kind::SummaryPoint,
                },
            )?;
            let converted = match case {
                GAUGE => number(&shape, MetricKind::Gauge, NumberDataPoint::decode(point)?),
                SUM => {
                    let kind = if temporality == AggregationTemporality::Delta as i32 {
                        MetricKind::Gauge
                    } else {
                        MetricKind::Sum { monotonic }
                    };
                    number(&shape, kind, NumberDataPoint::decode(point)?)
                }
                HISTOGRAM => histogram(&shape, HistogramDataPoint::decode(point)?),
                EXPONENTIAL_HISTOGRAM => {
                    exponential(&shape, ExponentialHistogramDataPoint::decode(point)?)
                }
                _ => summary(&shape, SummaryDataPoint::decode(point)?),
            };
            match converted {
                Some(p) => out.push(Event::Metric(p))?,
                None => skipped += 1,
            }
        }
    }
    Ok(skipped)
}

/// What every point of one metric shares.
struct Shape<'a> {
    name: &'a str,
    unit: &'a str,
    resource: &'a Arc<Resource>,
    scope: &'a Attributes,
}

impl Shape<'_> {
    fn point(
        &self,
        kind: MetricKind,
        value: f64,
        time: u64,
        start: u64,
        labels: Vec<KeyValue>,
    ) -> MetricPoint {
        let mut p = MetricPoint::new(
            self.name,
            self.unit,
            kind,
            value,
            time,
            Arc::clone(self.resource),
        );
        p.start_time_unix_nano = start;
        p.labels = attributes_of(labels);
        p.labels.extend(self.scope.iter().cloned());
        p
    }
}

fn no_value(flags: u32) -> bool {
    flags & DataPointFlags::NoRecordedValueMask as u32 != 0
}

fn number(shape: &Shape<'_>, kind: MetricKind, p: NumberDataPoint) -> Option<MetricPoint> {
    let value = match p.value? {
        number_data_point::Value::AsDouble(v) => v,
        number_data_point::Value::AsInt(v) => v as f64,
    };
    if no_value(p.flags) {
        return None;
    }
    Some(shape.point(
        kind,
        value,
        p.time_unix_nano,
        p.start_time_unix_nano,
        p.attributes,
    ))
}

fn histogram(shape: &Shape<'_>, p: HistogramDataPoint) -> Option<MetricPoint> {
    if no_value(p.flags) {
        return None;
    }
    let sum = p.sum.unwrap_or(0.0);
    let mut point = shape.point(
        MetricKind::Histogram,
        sum,
        p.time_unix_nano,
        p.start_time_unix_nano,
        p.attributes,
    );
    point.distribution = Some(Box::new(Distribution::Histogram {
        count: p.count,
        sum,
        bounds: p.explicit_bounds,
        bucket_counts: p.bucket_counts,
    }));
    Some(point)
}

/// An exponential histogram as explicit buckets with the same edges:
/// negative buckets (most negative first), the zero bucket, the positive
/// buckets, then an empty overflow bucket.
fn exponential(shape: &Shape<'_>, p: ExponentialHistogramDataPoint) -> Option<MetricPoint> {
    if no_value(p.flags) {
        return None;
    }
    let base = 2f64.powf(2f64.powi(-p.scale));
    let mut bounds: Vec<f64> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let mut bucket = |upper: f64, count: u64| match bounds.last() {
        Some(&last) if upper <= last || !upper.is_finite() => {
            if let Some(c) = counts.last_mut() {
                *c += count;
            }
        }
        _ => {
            bounds.push(upper);
            counts.push(count);
        }
    };
    if let Some(neg) = &p.negative {
        for (j, count) in neg.bucket_counts.iter().enumerate().rev() {
            bucket(-base.powf(f64::from(neg.offset) + j as f64), *count);
        }
    }
    let has_negative = p
        .negative
        .as_ref()
        .is_some_and(|n| !n.bucket_counts.is_empty());
    if p.zero_count > 0 || has_negative {
        bucket(p.zero_threshold.max(0.0), p.zero_count);
    }
    if let Some(pos) = &p.positive {
        for (i, count) in pos.bucket_counts.iter().enumerate() {
            bucket(base.powf(f64::from(pos.offset) + i as f64 + 1.0), *count);
        }
    }
    counts.push(0);
    let sum = p.sum.unwrap_or(0.0);
    let mut point = shape.point(
        MetricKind::Histogram,
        sum,
        p.time_unix_nano,
        p.start_time_unix_nano,
        p.attributes,
    );
    point.distribution = Some(Box::new(Distribution::Histogram {
        count: p.count,
        sum,
        bounds,
        bucket_counts: counts,
    }));
    Some(point)
}

fn summary(shape: &Shape<'_>, p: SummaryDataPoint) -> Option<MetricPoint> {
    if no_value(p.flags) {
        return None;
    }
    let mut point = shape.point(
        MetricKind::Summary,
        p.sum,
        p.time_unix_nano,
        p.start_time_unix_nano,
        p.attributes,
    );
    point.distribution = Some(Box::new(Distribution::Summary {
        count: p.count,
        sum: p.sum,
        quantiles: p
            .quantile_values
            .into_iter()
            .map(|q| (q.quantile, q.value))
            .collect(),
    }));
    Some(point)
}

/// The app's resource, with `shipd.source` set and `host.name` filled in.
fn resource_of(resource: Option<OtlpResource>, origin: &Origin) -> Resource {
    let mut attributes = attributes_of(resource.map(|r| r.attributes).unwrap_or_default());
    attributes.retain(|(k, _)| k != "shipd.source");
    if !attributes.iter().any(|(k, _)| k == "host.name") {
        attributes.push(("host.name".into(), Value::from(origin.host_name.as_str())));
    }
    attributes.push(("shipd.source".into(), Value::from(&*origin.source)));
    Resource { attributes }
}

fn attributes_of(kvs: Vec<KeyValue>) -> Attributes {
    kvs.into_iter()
        .map(|kv| (kv.key.into(), kv.value.map(value_of).unwrap_or(Value::Null)))
        .collect()
}

/// An OTLP `AnyValue` as a [`Value`]; UTF-8 bytes stay bytes (exported as text).
pub fn value_of(v: AnyValue) -> Value {
    match v.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.into()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        Some(any_value::Value::IntValue(i)) => Value::Int(i),
        Some(any_value::Value::DoubleValue(f)) => Value::Float(f),
        Some(any_value::Value::BytesValue(b)) => Value::Bytes(b.into()),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.into_iter().map(value_of).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Map(
            kv.values
                .into_iter()
                .map(|kv| (kv.key.into(), kv.value.map(value_of).unwrap_or(Value::Null)))
                .collect::<Map>(),
        ),
        Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use opentelemetry_proto::tonic::metrics::v1::{
        exponential_histogram_data_point::Buckets, ExponentialHistogram, Gauge, Metric,
        ResourceMetrics, ScopeMetrics, Sum,
    };

    fn logs_of(request: ExportLogsServiceRequest) -> Converted {
        logs(&request.encode_to_vec(), &origin(), usize::MAX, |_| true).unwrap()
    }

    fn metrics_of(request: ExportMetricsServiceRequest) -> Converted {
        metrics(&request.encode_to_vec(), &origin(), usize::MAX, |_| true).unwrap()
    }

    fn origin() -> Origin {
        Origin {
            source: Arc::from("apps"),
            host_name: "pi-1".into(),
        }
    }

    fn kv(key: &str, v: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn resource_gets_shipd_source_and_host_name_only_when_absent() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(OtlpResource {
                    attributes: vec![kv("host.name", "app-host"), kv("shipd.source", "spoofed")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![OtlpLog::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let converted = logs_of(request);
        let Event::Log(log) = &converted.batch.events[0] else {
            panic!("not a log");
        };
        let attrs = &log.resource.attributes;
        assert_eq!(
            attrs,
            &vec![
                ("host.name".into(), Value::from("app-host")),
                ("shipd.source".into(), Value::from("apps")),
            ]
        );
        // A record without times gets the observed time as its event time.
        assert!(log.time_unix_nano > 0);
        assert_eq!(log.time_unix_nano, log.observed_unix_nano);
        assert_eq!(log.body, Value::Null);
        assert!(log.ack.is_none() && log.position.is_none());
    }

    #[test]
    fn delta_sums_become_gauges_and_valueless_points_are_skipped() {
        let point = NumberDataPoint {
            time_unix_nano: 5,
            value: Some(number_data_point::Value::AsInt(3)),
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: "requests".into(),
                            data: Some(Data::Sum(Sum {
                                data_points: vec![point.clone()],
                                aggregation_temporality: AggregationTemporality::Delta as i32,
                                is_monotonic: true,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "idle".into(),
                            data: Some(Data::Gauge(Gauge {
                                data_points: vec![
                                    NumberDataPoint {
                                        flags: DataPointFlags::NoRecordedValueMask as u32,
                                        ..point.clone()
                                    },
                                    NumberDataPoint {
                                        value: None,
                                        ..point.clone()
                                    },
                                ],
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let converted = metrics_of(request);
        assert_eq!(converted.skipped_points, 2);
        assert_eq!(converted.batch.len(), 1);
        let Event::Metric(m) = &converted.batch.events[0] else {
            panic!("not a metric");
        };
        assert_eq!(
            (m.name.as_str(), m.kind, m.value),
            ("requests", MetricKind::Gauge, 3.0)
        );
    }

    #[test]
    fn exponential_histograms_become_explicit_buckets_with_the_same_edges() {
        // scale 0: base 2. Positive offset 1: (2,4] 3, (4,8] 5; negative offset 0:
        // [-2,-1) 1; zero bucket 2.
        let point = ExponentialHistogramDataPoint {
            count: 11,
            sum: Some(30.0),
            scale: 0,
            zero_count: 2,
            positive: Some(Buckets {
                offset: 1,
                bucket_counts: vec![3, 5],
            }),
            negative: Some(Buckets {
                offset: 0,
                bucket_counts: vec![1],
            }),
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "latency".into(),
                        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![point],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let converted = metrics_of(request);
        assert_eq!(converted.skipped_points, 0);
        let Event::Metric(m) = &converted.batch.events[0] else {
            panic!("not a metric");
        };
        assert_eq!(m.kind, MetricKind::Histogram);
        assert_eq!(
            m.distribution.as_deref(),
            Some(&Distribution::Histogram {
                count: 11,
                sum: 30.0,
                bounds: vec![-1.0, 0.0, 4.0, 8.0],
                bucket_counts: vec![1, 2, 3, 5, 0],
            })
        );
    }

    fn empty_records(n: usize) -> Vec<u8> {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![OtlpLog::default(); n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn records_that_cannot_fit_are_refused_before_anything_is_built() {
        let wire = empty_records(100_000);
        let mut asked = 0;
        let refused = logs(&wire, &origin(), 1 << 20, |_| {
            asked += 1;
            true
        })
        .unwrap_err();
        assert!(
            matches!(refused, ConvertError::TooLarge { items: 100_000, .. }),
            "{refused:?}"
        );
        assert_eq!(asked, 0, "no memory was asked for");
        assert!(
            refused.to_string().contains("max_request_memory"),
            "{refused}"
        );
    }

    #[test]
    fn what_fits_is_converted_holding_memory_in_steps_and_no_room_is_not_too_large() {
        let wire = empty_records(5_000);
        let mut asked = Vec::new();
        let converted = logs(&wire, &origin(), 8 << 20, |bytes| {
            asked.push(bytes);
            true
        })
        .unwrap();
        assert_eq!(converted.batch.len(), 5_000);
        assert!(converted.memory >= converted.batch.bytes);
        assert!(
            asked.len() < 10,
            "asked in steps, not per record: {asked:?}"
        );
        assert!(asked.last().is_some_and(|&b| b >= converted.memory));
        let busy = logs(&wire, &origin(), 8 << 20, |_| false).unwrap_err();
        assert_eq!(busy, ConvertError::NoRoom);
    }

    #[test]
    fn an_attribute_bomb_inside_one_record_is_measured_before_it_is_decoded() {
        let record = OtlpLog {
            attributes: vec![KeyValue::default(); 100_000],
            ..Default::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let wire = request.encode_to_vec();
        assert!(wire.len() < 300_000);
        let refused = logs(&wire, &origin(), 4 << 20, |_| true).unwrap_err();
        assert!(
            matches!(refused, ConvertError::TooLarge { at_least, .. } if at_least > 4 << 20),
            "{refused:?}"
        );
    }

    #[test]
    fn a_resource_after_its_records_on_the_wire_still_applies() {
        use prost::encoding::{encode_key, encode_varint, WireType};
        let field = |number: u32, inner: &[u8]| {
            let mut out = Vec::new();
            encode_key(number, WireType::LengthDelimited, &mut out);
            encode_varint(inner.len() as u64, &mut out);
            out.extend_from_slice(inner);
            out
        };
        let scope_logs = ScopeLogs {
            log_records: vec![OtlpLog::default()],
            ..Default::default()
        }
        .encode_to_vec();
        let resource = OtlpResource {
            attributes: vec![kv("service.name", "late")],
            ..Default::default()
        }
        .encode_to_vec();
        // ResourceLogs with scope_logs (2) before resource (1).
        let mut resource_logs = field(2, &scope_logs);
        resource_logs.extend(field(1, &resource));
        let wire = field(1, &resource_logs);
        let converted = logs(&wire, &origin(), usize::MAX, |_| true).unwrap();
        let Event::Log(log) = &converted.batch.events[0] else {
            panic!("not a log");
        };
        assert_eq!(
            log.resource.attributes[0],
            ("service.name".into(), Value::from("late"))
        );
    }

    #[test]
    fn malformed_bytes_are_malformed_not_a_panic() {
        let wire = empty_records(3);
        for cut in 1..wire.len() {
            let _ = logs(&wire[..cut], &origin(), usize::MAX, |_| true);
            let _ = metrics(&wire[..cut], &origin(), usize::MAX, |_| true);
        }
        assert!(matches!(
            logs(&[0xff, 0xff], &origin(), usize::MAX, |_| true),
            Err(ConvertError::Malformed(_))
        ));
    }

    #[test]
    fn empty_data_points_beyond_the_budget_are_refused_before_anything_is_built() {
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "m".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint::default(); 50_000],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let refused = metrics(&request.encode_to_vec(), &origin(), 1 << 20, |_| true);
        assert!(
            matches!(refused, Err(ConvertError::TooLarge { items: 50_000, .. })),
            "{refused:?}"
        );
    }
}
