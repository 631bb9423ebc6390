//! The in-memory aggregation behind a `log_metrics` source: [`MetricStore`].
//!
//! Metrics are declared when the pipeline loads ([`MetricStore::declare`]:
//! one kind per name, fixed histogram bounds); steps then record into
//! series — a metric plus the values of its labels — on the hot path
//! ([`MetricStore::record`]), and the source takes every series as a
//! cumulative point each interval ([`MetricStore::points`]). A series
//! beyond `max_series` is never created: its point is counted and dropped.
//! Recording an existing series allocates nothing: the series is found by
//! a hash of the borrowed label values. Never does I/O.

use crate::event::{Distribution, MetricKind, MetricPoint, Resource, Str, Value};
use crate::sinks::log_limit::LogLimit;
use crate::telemetry::{self, Metric};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Prometheus' default bounds, for `observe` calls that give none.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What a metric is.
#[derive(Debug, Clone, PartialEq)]
pub enum Instrument {
    /// A monotonic cumulative sum.
    Counter,
    /// The last value set.
    Gauge,
    /// Explicit-bucket histogram with these increasing upper bounds
    /// (inclusive, like Prometheus' `le`).
    Histogram(Box<[f64]>),
}

impl Instrument {
    /// How the instrument is named in diagnostics.
    pub fn describe(&self) -> &'static str {
        match self {
            Instrument::Counter => "a counter",
            Instrument::Gauge => "a gauge",
            Instrument::Histogram(_) => "a histogram",
        }
    }
}

/// Why a declaration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeclareError {
    #[error("`{name}` is already {first}; a metric has one kind")]
    KindClash { name: String, first: &'static str },
    #[error(
        "`{name}` already has other buckets; every observation of a histogram uses the same bounds"
    )]
    OtherBuckets { name: String },
}

/// A declared metric, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricId(u32);

/// A set of label keys (sorted), by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysId(u32);

/// One recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Update {
    /// Adds to a counter (never negative).
    Add(f64),
    /// Sets a gauge.
    Set(f64),
    /// One observation of a histogram.
    Observe(f64),
}

/// What [`MetricStore::record`] did with a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Recorded,
    /// A new series would pass `max_series`.
    Capped,
    /// A negative increment or a value that is not finite.
    Invalid,
}

#[derive(Debug)]
struct Declared {
    name: String,
    instrument: Instrument,
}

#[derive(Debug)]
enum State {
    Counter(f64),
    Gauge(f64),
    Histogram {
        /// Per bucket, one more than the bounds (the OTLP layout).
        counts: Box<[u64]>,
        sum: f64,
        count: u64,
    },
}

#[derive(Debug)]
struct Series {
    metric: MetricId,
    keys: KeysId,
    values: Box<[Str]>,
    /// When the series saw its first point.
    start_unix_nano: u64,
    state: State,
}

/// A `u64` that is already a hash needs no second one.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Default)]
struct Aggregation {
    declared: Vec<Declared>,
    key_sets: Vec<Box<[Str]>>,
    series: Vec<Series>,
    /// Series indexes by the hash of (metric, keys, values).
    index: HashMap<u64, SmallVec<[u32; 1]>, BuildHasherDefault<Prehashed>>,
}

fn series_hash(metric: MetricId, keys: KeysId, values: &[&str]) -> u64 {
    // One-shot xxh3 over the key laid out on the stack (label values are
    // short): cheaper than the streaming hasher's setup per event.
    let mut key: SmallVec<[u8; 128]> = SmallVec::new();
    key.extend_from_slice(&metric.0.to_le_bytes());
    key.extend_from_slice(&keys.0.to_le_bytes());
    for v in values {
        // The length keeps ("ab", "c") apart from ("a", "bc").
        key.extend_from_slice(&(v.len() as u64).to_le_bytes());
        key.extend_from_slice(v.as_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&key)
}

/// Counters of one store.
#[derive(Debug)]
struct StoreCounters {
    capped: Metric,
    invalid: Metric,
    series: Metric,
}

/// The series of one `log_metrics` source, shared by the steps that record
/// and the task that ships them. The lock is held for one recording or
/// one snapshot.
#[derive(Debug)]
pub struct MetricStore {
    source: String,
    max_series: usize,
    resource: Arc<Resource>,
    inner: Mutex<Aggregation>,
    counters: StoreCounters,
}

static CAPPED_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));
static INVALID_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));

impl MetricStore {
    /// An empty store of source `source`, whose points belong to `resource`.
    pub fn new(source: &str, max_series: usize, resource: Arc<Resource>) -> Self {
        let dropped = |reason| {
            telemetry::counter(
                "shipd_metric_points_dropped_total",
                &[("component", source), ("reason", reason)],
            )
        };
        MetricStore {
            source: source.to_owned(),
            max_series,
            resource,
            inner: Mutex::new(Aggregation::default()),
            counters: StoreCounters {
                capped: dropped("max_series"),
                invalid: dropped("invalid_value"),
                series: telemetry::gauge("shipd_metric_series", &[("component", source)]),
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, Aggregation> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Declares `name` as `instrument` (again, for a second call site);
    /// refuses a second kind or other bounds. Only when the pipeline loads.
    pub fn declare(&self, name: &str, instrument: Instrument) -> Result<MetricId, DeclareError> {
        let mut agg = self.lock();
        if let Some(i) = agg.declared.iter().position(|d| d.name == name) {
            let first = &agg.declared[i].instrument;
            return match (first, &instrument) {
                (Instrument::Histogram(a), Instrument::Histogram(b)) if a != b => {
                    Err(DeclareError::OtherBuckets { name: name.into() })
                }
                (a, b) if std::mem::discriminant(a) != std::mem::discriminant(b) => {
                    Err(DeclareError::KindClash {
                        name: name.into(),
                        first: a.describe(),
                    })
                }
                _ => Ok(MetricId(i as u32)),
            };
        }
        agg.declared.push(Declared {
            name: name.to_owned(),
            instrument,
        });
        Ok(MetricId(agg.declared.len() as u32 - 1))
    }

    /// The instrument of a declared metric named `name`.
    pub fn instrument(&self, name: &str) -> Option<Instrument> {
        self.lock()
            .declared
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.instrument.clone())
    }

    /// The names of every declared metric.
    pub fn metric_names(&self) -> Vec<String> {
        self.lock()
            .declared
            .iter()
            .map(|d| d.name.clone())
            .collect()
    }

    /// The id of the label keys `keys` (sorted by the caller).
    pub fn keys(&self, keys: &[&str]) -> KeysId {
        let mut agg = self.lock();
        let i = match agg
            .key_sets
            .iter()
            .position(|k| k.iter().map(Str::as_str).eq(keys.iter().copied()))
        {
            Some(i) => i,
            None => {
                agg.key_sets
                    .push(keys.iter().map(|k| Str::from(*k)).collect());
                agg.key_sets.len() - 1
            }
        };
        KeysId(i as u32)
    }

    /// Records `update` into the series of `metric` with label `values`
    /// (in the order of `keys`); `now` starts a new series.
    pub fn record(
        &self,
        metric: MetricId,
        keys: KeysId,
        values: &[&str],
        update: Update,
        now_unix_nano: impl FnOnce() -> u64,
    ) -> Recorded {
        let valid = match update {
            Update::Add(v) => v.is_finite() && v >= 0.0,
            Update::Set(v) | Update::Observe(v) => v.is_finite(),
        };
        if !valid {
            self.counters.invalid.inc();
            if let Some(suppressed) = INVALID_LOG.allow() {
                tracing::warn!(source = %self.source, ?update, suppressed, "metric point not recorded: a counter only goes up and values must be finite");
            }
            return Recorded::Invalid;
        }
        let hash = series_hash(metric, keys, values);
        let mut agg = self.lock();
        let Aggregation {
            declared,
            series,
            index,
            ..
        } = &mut *agg;
        let found = index.get(&hash).and_then(|slots| {
            slots.iter().copied().find(|&i| {
                let s = &series[i as usize];
                s.metric == metric
                    && s.keys == keys
                    && s.values.iter().map(Str::as_str).eq(values.iter().copied())
            })
        });
        let i = match found {
            Some(i) => i as usize,
            None => {
                if series.len() >= self.max_series {
                    drop(agg);
                    self.counters.capped.inc();
                    if let Some(suppressed) = CAPPED_LOG.allow() {
                        tracing::warn!(source = %self.source, max_series = self.max_series, suppressed,
                            "metric point dropped: a new series would pass max_series (a label with too many values?)");
                    }
                    return Recorded::Capped;
                }
                let state = match &declared[metric.0 as usize].instrument {
                    Instrument::Counter => State::Counter(0.0),
                    Instrument::Gauge => State::Gauge(0.0),
                    Instrument::Histogram(bounds) => State::Histogram {
                        counts: vec![0; bounds.len() + 1].into_boxed_slice(),
                        sum: 0.0,
                        count: 0,
                    },
                };
                series.push(Series {
                    metric,
                    keys,
                    values: values.iter().map(|v| Str::from(*v)).collect(),
                    start_unix_nano: now_unix_nano(),
                    state,
                });
                let i = series.len() - 1;
                index.entry(hash).or_default().push(i as u32);
                self.counters.series.set(series.len() as u64);
                i
            }
        };
        let bounds = match &declared[metric.0 as usize].instrument {
            Instrument::Histogram(b) => &b[..],
            _ => &[],
        };
        match (&mut series[i].state, update) {
            (State::Counter(total), Update::Add(v)) => *total += v,
            (State::Gauge(last), Update::Set(v)) => *last = v,
            (State::Histogram { counts, sum, count }, Update::Observe(v)) => {
                // The first bound at or above v: upper bounds are inclusive.
                let bucket = bounds.partition_point(|b| *b < v);
                counts[bucket] += 1;
                *sum += v;
                *count += 1;
            }
            // The compiler pairs each metric with its own kind of update.
            _ => return Recorded::Invalid,
        }
        Recorded::Recorded
    }

    /// Every series as a cumulative point at `time_unix_nano`.
    pub fn points(&self, time_unix_nano: u64) -> Vec<MetricPoint> {
        let agg = self.lock();
        agg.series
            .iter()
            .map(|s| {
                let declared = &agg.declared[s.metric.0 as usize];
                let (kind, value, distribution) = match (&s.state, &declared.instrument) {
                    (State::Counter(v), _) => (MetricKind::Sum { monotonic: true }, *v, None),
                    (State::Gauge(v), _) => (MetricKind::Gauge, *v, None),
                    (State::Histogram { counts, sum, count }, Instrument::Histogram(bounds)) => (
                        MetricKind::Histogram,
                        *sum,
                        Some(Box::new(Distribution::Histogram {
                            count: *count,
                            sum: *sum,
                            bounds: bounds.to_vec(),
                            bucket_counts: counts.to_vec(),
                        })),
                    ),
                    (State::Histogram { sum, .. }, _) => (MetricKind::Histogram, *sum, None),
                };
                let mut p = MetricPoint::new(
                    declared.name.as_str(),
                    "",
                    kind,
                    value,
                    time_unix_nano,
                    Arc::clone(&self.resource),
                );
                if kind != MetricKind::Gauge {
                    p.start_time_unix_nano = s.start_unix_nano;
                }
                p.distribution = distribution;
                p.labels = agg.key_sets[s.keys.0 as usize]
                    .iter()
                    .zip(s.values.iter())
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                p
            })
            .collect()
    }

    /// Forgets every series (declarations stay): each pipeline test starts
    /// from nothing.
    pub fn clear(&self) {
        let mut agg = self.lock();
        agg.series.clear();
        agg.index.clear();
        self.counters.series.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max_series: usize) -> MetricStore {
        MetricStore::new("agg_test", max_series, Arc::new(Resource::default()))
    }

    fn at() -> u64 {
        1_000
    }

    fn point<'a>(points: &'a [MetricPoint], name: &str, label: Option<&str>) -> &'a MetricPoint {
        points
            .iter()
            .find(|p| {
                p.name == name
                    && label.is_none_or(|l| p.labels.iter().any(|(_, v)| v.as_str() == Some(l)))
            })
            .unwrap_or_else(|| panic!("no {name} {label:?} in {points:?}"))
    }

    #[test]
    fn counters_add_up_per_label_values_and_start_at_their_first_point() {
        let s = store(10);
        let c = s.declare("requests_total", Instrument::Counter).unwrap();
        let keys = s.keys(&["status"]);
        for (t, status) in [(6, "200"), (7, "200"), (8, "404")] {
            s.record(c, keys, &[status], Update::Add(1.0), || t);
        }
        s.record(c, keys, &["200"], Update::Add(2.5), || 99);
        let points = s.points(at());
        assert_eq!(points.len(), 2);
        let ok = point(&points, "requests_total", Some("200"));
        assert_eq!(ok.value, 4.5);
        assert_eq!(ok.kind, MetricKind::Sum { monotonic: true });
        assert_eq!(ok.start_time_unix_nano, 6, "the first point's time");
        assert_eq!(ok.labels, vec![("status".into(), Value::from("200"))]);
        assert_eq!(point(&points, "requests_total", Some("404")).value, 1.0);
        assert_eq!(
            s.points(at())[0].value,
            4.5,
            "cumulative: a snapshot does not reset"
        );
    }

    #[test]
    fn a_counter_refuses_negative_and_non_finite_increments() {
        let s = store(10);
        let c = s.declare("c", Instrument::Counter).unwrap();
        let keys = s.keys(&[]);
        assert_eq!(
            s.record(c, keys, &[], Update::Add(-1.0), at),
            Recorded::Invalid
        );
        assert_eq!(
            s.record(c, keys, &[], Update::Add(f64::NAN), at),
            Recorded::Invalid
        );
        assert!(s.points(at()).is_empty(), "no series was made");
    }

    #[test]
    fn a_gauge_keeps_its_last_value() {
        let s = store(10);
        let g = s.declare("queue", Instrument::Gauge).unwrap();
        let keys = s.keys(&[]);
        for v in [3.0, 7.0, 2.0] {
            s.record(g, keys, &[], Update::Set(v), at);
        }
        let points = s.points(at());
        assert_eq!(points[0].value, 2.0);
        assert_eq!(points[0].kind, MetricKind::Gauge);
        assert_eq!(points[0].start_time_unix_nano, 0, "gauges have no start");
    }

    #[test]
    fn histogram_upper_bounds_are_inclusive_like_prometheus_le() {
        let s = store(10);
        let h = s
            .declare("latency", Instrument::Histogram(vec![0.1, 0.5, 1.0].into()))
            .unwrap();
        let keys = s.keys(&[]);
        for v in [0.05, 0.1, 0.10000001, 0.5, 1.0, 1.5, 30.0] {
            s.record(h, keys, &[], Update::Observe(v), at);
        }
        let points = s.points(at());
        let Some(Distribution::Histogram {
            count,
            sum,
            bounds,
            bucket_counts,
        }) = points[0].distribution.as_deref()
        else {
            panic!("{points:?}")
        };
        assert_eq!(bounds, &[0.1, 0.5, 1.0]);
        assert_eq!(
            bucket_counts,
            &[2, 2, 1, 2],
            "0.1 is in le=0.1, 0.10000001 in le=0.5, 1.0 in le=1, 1.5 and 30 above"
        );
        assert_eq!(*count, 7);
        assert!((sum - 33.25000001).abs() < 1e-9, "{sum}");
        assert_eq!(points[0].value, *sum);
        assert_eq!(points[0].kind, MetricKind::Histogram);
    }

    #[test]
    fn a_new_series_past_max_series_is_dropped_and_counted() {
        let s = MetricStore::new("agg_cap_test", 2, Arc::new(Resource::default()));
        let c = s.declare("c", Instrument::Counter).unwrap();
        let keys = s.keys(&["user"]);
        assert_eq!(
            s.record(c, keys, &["a"], Update::Add(1.0), at),
            Recorded::Recorded
        );
        assert_eq!(
            s.record(c, keys, &["b"], Update::Add(1.0), at),
            Recorded::Recorded
        );
        assert_eq!(
            s.record(c, keys, &["c"], Update::Add(1.0), at),
            Recorded::Capped
        );
        assert_eq!(
            s.record(c, keys, &["d"], Update::Add(1.0), at),
            Recorded::Capped
        );
        assert_eq!(
            s.record(c, keys, &["a"], Update::Add(1.0), at),
            Recorded::Recorded,
            "existing series still count"
        );
        assert_eq!(s.points(at()).len(), 2);
        assert_eq!(
            telemetry::value(
                "shipd_metric_points_dropped_total",
                "component=\"agg_cap_test\",reason=\"max_series\""
            ),
            Some(2)
        );
    }

    #[test]
    fn a_metric_has_one_kind_and_one_set_of_bounds() {
        let s = store(10);
        let first = s.declare("m", Instrument::Counter).unwrap();
        assert_eq!(
            s.declare("m", Instrument::Counter),
            Ok(first),
            "a second call site"
        );
        assert!(matches!(
            s.declare("m", Instrument::Gauge),
            Err(DeclareError::KindClash {
                first: "a counter",
                ..
            })
        ));
        s.declare("h", Instrument::Histogram(vec![1.0].into()))
            .unwrap();
        assert!(matches!(
            s.declare("h", Instrument::Histogram(vec![2.0].into())),
            Err(DeclareError::OtherBuckets { .. })
        ));
    }

    #[test]
    fn label_values_that_join_alike_are_different_series() {
        let s = store(10);
        let c = s.declare("c", Instrument::Counter).unwrap();
        let keys = s.keys(&["a", "b"]);
        s.record(c, keys, &["ab", "c"], Update::Add(1.0), at);
        s.record(c, keys, &["a", "bc"], Update::Add(1.0), at);
        assert_eq!(s.points(at()).len(), 2);
        s.clear();
        assert!(s.points(at()).is_empty());
    }
}
