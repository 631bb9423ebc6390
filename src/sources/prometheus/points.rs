//! Samples of a parsed exposition ([`super::text`]) as metric points: the
//! one conversion every Prometheus-format source uses (`prometheus_scrape`,
//! `exec` with `format = "prometheus"`). Counters become monotonic sums,
//! histograms and summaries keep their distribution, untyped series and
//! gauges become gauges. Cumulative series start at their OpenMetrics
//! `_created` time when given, else at the caller's `start`. Pure: no I/O.

use super::text::{FamilyKind, Sample, SampleValue};
use crate::event::{Attributes, Distribution, MetricKind, MetricPoint, Resource};
use std::sync::Arc;

/// The point of `sample`, observed at `now` (ns since the epoch) unless the
/// sample carries its own timestamp, with `labels` (the caller decides how
/// exposed labels merge with its own).
pub fn sample_point(
    sample: Sample,
    labels: Attributes,
    now: u64,
    start: u64,
    resource: &Arc<Resource>,
) -> MetricPoint {
    let time = sample
        .timestamp_ms
        .and_then(|ms| u64::try_from(ms).ok())
        .map_or(now, |ms| ms.saturating_mul(1_000_000));
    let start = sample
        .created
        .filter(|c| c.is_finite() && *c > 0.0)
        .map_or(start, |c| (c * 1e9) as u64);
    let (kind, value, distribution) = match sample.value {
        SampleValue::Number(v) => {
            let kind = match sample.kind {
                FamilyKind::Counter => MetricKind::Sum { monotonic: true },
                _ => MetricKind::Gauge,
            };
            (kind, v, None)
        }
        SampleValue::Distribution(d) => {
            let (kind, sum) = match d.as_ref() {
                Distribution::Histogram { sum, .. } => (MetricKind::Histogram, *sum),
                Distribution::Summary { sum, .. } => (MetricKind::Summary, *sum),
            };
            (kind, sum, Some(d))
        }
    };
    let mut p = MetricPoint::new(
        sample.name,
        sample.unit,
        kind,
        value,
        time,
        Arc::clone(resource),
    );
    if kind != MetricKind::Gauge {
        p.start_time_unix_nano = start;
    }
    p.distribution = distribution;
    p.labels = labels;
    p
}
