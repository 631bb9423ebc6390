//! Encodes metric events into OTLP `ExportMetricsServiceRequest`s.
//!
//! Points are grouped by resource, then by metric (name, unit, kind): each
//! metric appears once per request with all its data points. Sums and
//! histograms are cumulative. Every data point of a metric carries the same
//! label keys, in the same order, missing ones filled with `""`: OpenObserve
//! v0.16 leaks labels between the points of a metric otherwise. Pure: no I/O,
//! no clocks; log events are skipped.

use super::otlp_encode::encode_value;
use super::resource_groups::ResourceGroups;
use crate::event::{Distribution, Event, MetricKind, MetricPoint};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1 as otlp;
use opentelemetry_proto::tonic::resource::v1 as otlp_resource;
use std::collections::HashMap;

/// The points of one metric within one resource, in arrival order.
struct MetricGroup<'a> {
    name: &'a str,
    unit: &'a str,
    kind: MetricKind,
    points: Vec<&'a MetricPoint>,
}

/// The metrics of one resource, each found by name, unit and kind.
#[derive(Default)]
struct MetricGroups<'a> {
    groups: Vec<MetricGroup<'a>>,
    index: HashMap<(&'a str, &'a str, MetricKind), usize>,
}

/// Builds one request from the metric events of `events`.
pub fn encode_metrics<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> ExportMetricsServiceRequest {
    let mut resources: ResourceGroups<'_, MetricGroups<'_>> = ResourceGroups::default();
    for event in events {
        let Event::Metric(point) = event else {
            continue;
        };
        let groups = resources.group(&point.resource);
        let key = (point.name.as_str(), point.unit.as_str(), point.kind);
        match groups.index.get(&key) {
            Some(&i) => groups.groups[i].points.push(point),
            None => {
                groups.index.insert(key, groups.groups.len());
                groups.groups.push(MetricGroup {
                    name: &point.name,
                    unit: &point.unit,
                    kind: point.kind,
                    points: vec![point],
                });
            }
        }
    }
    ExportMetricsServiceRequest {
        resource_metrics: resources
            .into_groups()
            .into_iter()
            .map(
                |(resource, MetricGroups { groups, .. })| otlp::ResourceMetrics {
                    resource: Some(otlp_resource::Resource {
                        attributes: super::otlp_encode::encode_attributes(&resource.attributes),
                        ..Default::default()
                    }),
                    scope_metrics: vec![otlp::ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: "shipd".into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            ..Default::default()
                        }),
                        metrics: groups.iter().map(encode_metric).collect(),
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                },
            )
            .collect(),
    }
}

fn encode_metric(group: &MetricGroup<'_>) -> otlp::Metric {
    let keys = label_keys(&group.points);
    let cumulative = otlp::AggregationTemporality::Cumulative as i32;
    let data = match group.kind {
        MetricKind::Gauge => otlp::metric::Data::Gauge(otlp::Gauge {
            data_points: number_points(&group.points, &keys),
        }),
        MetricKind::Sum { monotonic } => otlp::metric::Data::Sum(otlp::Sum {
            data_points: number_points(&group.points, &keys),
            aggregation_temporality: cumulative,
            is_monotonic: monotonic,
        }),
        MetricKind::Histogram => otlp::metric::Data::Histogram(otlp::Histogram {
            data_points: group
                .points
                .iter()
                .map(|p| histogram_point(p, &keys))
                .collect(),
            aggregation_temporality: cumulative,
        }),
        MetricKind::Summary => otlp::metric::Data::Summary(otlp::Summary {
            data_points: group
                .points
                .iter()
                .map(|p| summary_point(p, &keys))
                .collect(),
        }),
    };
    otlp::Metric {
        name: group.name.to_owned(),
        unit: group.unit.to_owned(),
        data: Some(data),
        ..Default::default()
    }
}

/// Every label key used by any point of the metric, in first-seen order.
fn label_keys<'a>(points: &[&'a MetricPoint]) -> Vec<&'a str> {
    let mut keys: Vec<&str> = Vec::new();
    for point in points {
        for (key, _) in &point.labels {
            if !keys.contains(&key.as_str()) {
                keys.push(key);
            }
        }
    }
    keys
}

/// The point's labels over exactly `keys`, `""` where the point lacks one.
fn uniform_attributes(point: &MetricPoint, keys: &[&str]) -> Vec<KeyValue> {
    keys.iter()
        .map(|key| {
            let value = point
                .labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| encode_value(v))
                .unwrap_or_else(|| AnyValue {
                    value: Some(any_value::Value::StringValue(String::new())),
                });
            KeyValue {
                key: (*key).to_owned(),
                value: Some(value),
                ..Default::default()
            }
        })
        .collect()
}

fn number_points(points: &[&MetricPoint], keys: &[&str]) -> Vec<otlp::NumberDataPoint> {
    points
        .iter()
        .map(|p| otlp::NumberDataPoint {
            attributes: uniform_attributes(p, keys),
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
            value: Some(otlp::number_data_point::Value::AsDouble(p.value)),
            ..Default::default()
        })
        .collect()
}

fn histogram_point(p: &MetricPoint, keys: &[&str]) -> otlp::HistogramDataPoint {
    let (count, sum, bounds, bucket_counts) = match p.distribution.as_deref() {
        Some(Distribution::Histogram {
            count,
            sum,
            bounds,
            bucket_counts,
        }) => (*count, *sum, bounds.clone(), bucket_counts.clone()),
        // A histogram without buckets still reports its sum (as one bucket).
        _ => (0, p.value, Vec::new(), vec![0]),
    };
    otlp::HistogramDataPoint {
        attributes: uniform_attributes(p, keys),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        count,
        sum: Some(sum),
        bucket_counts,
        explicit_bounds: bounds,
        ..Default::default()
    }
}

fn summary_point(p: &MetricPoint, keys: &[&str]) -> otlp::SummaryDataPoint {
    let (count, sum, quantiles) = match p.distribution.as_deref() {
        Some(Distribution::Summary {
            count,
            sum,
            quantiles,
        }) => (*count, *sum, quantiles.as_slice()),
        _ => (0, p.value, &[][..]),
    };
    otlp::SummaryDataPoint {
        attributes: uniform_attributes(p, keys),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        count,
        sum,
        quantile_values: quantiles
            .iter()
            .map(|&(quantile, value)| otlp::summary_data_point::ValueAtQuantile { quantile, value })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Resource;
    use crate::event::{LogRecord, Value};
    use std::sync::Arc;

    fn resource(host: &str) -> Arc<Resource> {
        Arc::new(Resource {
            attributes: vec![("host.name".into(), Value::from(host))],
        })
    }

    fn point(name: &str, kind: MetricKind, labels: &[(&str, &str)], r: &Arc<Resource>) -> Event {
        let mut p = MetricPoint::new(name, "By", kind, 1.0, 10, Arc::clone(r));
        p.labels = labels
            .iter()
            .map(|(k, v)| ((*k).into(), Value::from(*v)))
            .collect();
        p.start_time_unix_nano = 5;
        Event::Metric(p)
    }

    fn keys_and_values(attrs: &[KeyValue]) -> Vec<(String, String)> {
        attrs
            .iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.clone()) {
                    Some(any_value::Value::StringValue(s)) => s,
                    other => format!("{other:?}"),
                };
                (kv.key.clone(), v)
            })
            .collect()
    }

    #[test]
    fn every_point_of_a_metric_carries_the_same_label_keys() {
        let r = resource("pi1");
        let events = vec![
            point("m", MetricKind::Gauge, &[("device", "eth0")], &r),
            point(
                "m",
                MetricKind::Gauge,
                &[("direction", "rx"), ("device", "wlan0")],
                &r,
            ),
        ];
        let req = encode_metrics(&events);
        let metric = &req.resource_metrics[0].scope_metrics[0].metrics[0];
        let Some(otlp::metric::Data::Gauge(g)) = &metric.data else {
            panic!("gauge expected")
        };
        assert_eq!(
            keys_and_values(&g.data_points[0].attributes),
            [
                ("device".into(), "eth0".into()),
                ("direction".into(), String::new())
            ]
        );
        assert_eq!(
            keys_and_values(&g.data_points[1].attributes),
            [
                ("device".into(), "wlan0".into()),
                ("direction".into(), "rx".into())
            ]
        );
    }

    #[test]
    fn each_metric_appears_once_per_resource_and_logs_are_skipped() {
        let (a, b) = (resource("a"), resource("b"));
        let events = vec![
            point(
                "x",
                MetricKind::Sum { monotonic: true },
                &[("cpu", "0")],
                &a,
            ),
            point("y", MetricKind::Gauge, &[], &a),
            point(
                "x",
                MetricKind::Sum { monotonic: true },
                &[("cpu", "1")],
                &a,
            ),
            point(
                "x",
                MetricKind::Sum { monotonic: true },
                &[("cpu", "0")],
                &b,
            ),
            Event::Log(LogRecord::new(Value::from("not a metric"), Arc::clone(&a))),
        ];
        let req = encode_metrics(&events);
        assert_eq!(req.resource_metrics.len(), 2);
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(
            metrics.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["x", "y"]
        );
        let Some(otlp::metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!("sum expected")
        };
        assert_eq!(sum.data_points.len(), 2);
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            otlp::AggregationTemporality::Cumulative as i32
        );
        assert_eq!(sum.data_points[0].start_time_unix_nano, 5);
        assert_eq!(metrics[0].unit, "By");
    }

    #[test]
    fn histograms_and_summaries_keep_buckets_and_quantiles() {
        let r = resource("a");
        let mut h = MetricPoint::new("lat", "s", MetricKind::Histogram, 3.5, 10, Arc::clone(&r));
        h.distribution = Some(Box::new(Distribution::Histogram {
            count: 4,
            sum: 3.5,
            bounds: vec![0.5, 1.0],
            bucket_counts: vec![1, 2, 1],
        }));
        let mut s = MetricPoint::new("rpc", "s", MetricKind::Summary, 2.0, 10, Arc::clone(&r));
        s.distribution = Some(Box::new(Distribution::Summary {
            count: 3,
            sum: 2.0,
            quantiles: vec![(0.5, 0.4), (0.99, 1.2)],
        }));
        let req = encode_metrics(&[Event::Metric(h), Event::Metric(s)]);
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let Some(otlp::metric::Data::Histogram(hist)) = &metrics[0].data else {
            panic!("histogram expected")
        };
        let p = &hist.data_points[0];
        assert_eq!((p.count, p.sum), (4, Some(3.5)));
        assert_eq!(p.explicit_bounds, [0.5, 1.0]);
        assert_eq!(p.bucket_counts, [1, 2, 1]);
        let Some(otlp::metric::Data::Summary(sum)) = &metrics[1].data else {
            panic!("summary expected")
        };
        let q = &sum.data_points[0].quantile_values;
        assert_eq!((q[1].quantile, q[1].value), (0.99, 1.2));
        assert_eq!(sum.data_points[0].count, 3);
    }
}
