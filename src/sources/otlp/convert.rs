//! Maps OTLP export requests onto shipd's events: one [`EventBatch`] per
//! request, resource attributes kept (plus `shipd.source` and, when the app
//! did not set it, the node's `host.name`), scope name and version as
//! `otel.scope.*` attributes, trace context as `trace_id` / `span_id`.
//! Pure: no I/O, no channels; the only clock read fills missing timestamps.

use crate::event::Map;
use crate::event::{
    unix_nanos, Attributes, Distribution, Event, EventBatch, LogRecord, MetricKind, MetricPoint,
    Resource, Value,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, DataPointFlags,
    ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
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
}

/// The log records of `request`, in order.
pub fn logs(request: ExportLogsServiceRequest, origin: &Origin) -> Converted {
    let now = unix_nanos(SystemTime::now());
    let n = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    let mut batch = EventBatch::from_source(&origin.source, n);
    for resource_logs in request.resource_logs {
        let resource = resource_of(resource_logs.resource, origin);
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_attributes(scope_logs.scope);
            for r in scope_logs.log_records {
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
                let mut log = LogRecord::new(
                    r.body.map(value_of).unwrap_or(Value::Null),
                    Arc::clone(&resource),
                );
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
                batch.push(Event::Log(log));
            }
        }
    }
    Converted {
        batch,
        skipped_points: 0,
    }
}

/// The metric points of `request`. Delta sums become gauges (the value over
/// the interval): the event model's sums are cumulative.
pub fn metrics(request: ExportMetricsServiceRequest, origin: &Origin) -> Converted {
    let mut batch = EventBatch::from_source(&origin.source, 0);
    let mut skipped_points = 0;
    for resource_metrics in request.resource_metrics {
        let resource = resource_of(resource_metrics.resource, origin);
        for scope_metrics in resource_metrics.scope_metrics {
            let scope = scope_attributes(scope_metrics.scope);
            for metric in scope_metrics.metrics {
                let shape = Shape {
                    name: &metric.name,
                    unit: &metric.unit,
                    resource: &resource,
                    scope: &scope,
                };
                match metric.data {
                    Some(Data::Gauge(g)) => {
                        for p in g.data_points {
                            push(
                                &mut batch,
                                &mut skipped_points,
                                number(&shape, MetricKind::Gauge, p),
                            );
                        }
                    }
                    Some(Data::Sum(s)) => {
                        let kind =
                            if s.aggregation_temporality == AggregationTemporality::Delta as i32 {
                                MetricKind::Gauge
                            } else {
                                MetricKind::Sum {
                                    monotonic: s.is_monotonic,
                                }
                            };
                        for p in s.data_points {
                            push(&mut batch, &mut skipped_points, number(&shape, kind, p));
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        for p in h.data_points {
                            push(&mut batch, &mut skipped_points, histogram(&shape, p));
                        }
                    }
                    Some(Data::Summary(s)) => {
                        for p in s.data_points {
                            push(&mut batch, &mut skipped_points, summary(&shape, p));
                        }
                    }
                    Some(Data::ExponentialHistogram(e)) => {
                        for p in e.data_points {
                            push(&mut batch, &mut skipped_points, exponential(&shape, p));
                        }
                    }
                    None => {}
                }
            }
        }
    }
    Converted {
        batch,
        skipped_points,
    }
}

fn push(batch: &mut EventBatch, skipped: &mut u64, point: Option<MetricPoint>) {
    match point {
        Some(p) => batch.push(Event::Metric(p)),
        None => *skipped += 1,
    }
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
fn resource_of(resource: Option<OtlpResource>, origin: &Origin) -> Arc<Resource> {
    let mut attributes = attributes_of(resource.map(|r| r.attributes).unwrap_or_default());
    attributes.retain(|(k, _)| k != "shipd.source");
    if !attributes.iter().any(|(k, _)| k == "host.name") {
        attributes.push(("host.name".into(), Value::from(origin.host_name.as_str())));
    }
    attributes.push(("shipd.source".into(), Value::from(&*origin.source)));
    Arc::new(Resource { attributes })
}

fn scope_attributes(scope: Option<InstrumentationScope>) -> Attributes {
    let mut out = Vec::new();
    if let Some(scope) = scope {
        if !scope.name.is_empty() {
            out.push(("otel.scope.name".into(), Value::String(scope.name.into())));
        }
        if !scope.version.is_empty() {
            out.push((
                "otel.scope.version".into(),
                Value::String(scope.version.into()),
            ));
        }
    }
    out
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
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        exponential_histogram_data_point::Buckets, ExponentialHistogram, Gauge, Metric,
        ResourceMetrics, ScopeMetrics, Sum,
    };

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
        let converted = logs(request, &origin());
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
        let converted = metrics(request, &origin());
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
        let converted = metrics(request, &origin());
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
}
