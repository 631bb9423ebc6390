//! `expect metric` in pipeline tests: compiled against the metrics the
//! steps declare ([`compile`]), then checked after the test's inputs
//! ([`check`]): finds the series an expectation names among the points the
//! steps recorded and compares its value. A
//! histogram reads as OpenObserve stores it: `NAME_count`, `NAME_sum`, and
//! `NAME_bucket` with an `le` label (cumulative, `+Inf` for all); `NAME`
//! alone is its count. Labels must match exactly (besides `le`); a series
//! never recorded reads as 0.

use super::ast::{Expr, ExprKind, Ident, Lit, Opt};
use super::compile::Compiler;
use super::diagnostics::{suggest, Diagnostic, Span};
use super::program::Expectation;
use crate::event::{Distribution, MetricPoint};
use crate::sources::log_metrics::Instrument;

/// Which number of a point an expectation reads.
enum Part<'a> {
    Value,
    Count,
    Sum,
    Bucket(&'a str),
}

/// `Ok` when the series `name{labels}` has the value `want`; else why not.
pub fn check(
    points: &[MetricPoint],
    name: &str,
    labels: &[(String, String)],
    want: f64,
) -> Result<(), String> {
    let le = labels
        .iter()
        .find(|(k, _)| k == "le")
        .map(|(_, v)| v.as_str());
    let is_histogram = |n: &str| {
        points.iter().any(|p| {
            p.name == n
                && matches!(
                    p.distribution.as_deref(),
                    Some(Distribution::Histogram { .. })
                )
        })
    };
    let (base, part) = match [
        ("_count", Part::Count),
        ("_sum", Part::Sum),
        ("_bucket", Part::Bucket(le.unwrap_or(""))),
    ]
    .into_iter()
    .find_map(|(suffix, part)| {
        name.strip_suffix(suffix)
            .filter(|base| is_histogram(base))
            .map(|base| (base, part))
    }) {
        Some(found) => found,
        None => (name, Part::Value),
    };
    let wanted: Vec<(&str, &str)> = labels
        .iter()
        .filter(|(k, _)| !matches!(part, Part::Bucket(_)) || k != "le")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let series: Vec<&MetricPoint> = points.iter().filter(|p| p.name == base).collect();
    let Some(point) = series.iter().find(|p| same_labels(p, &wanted)) else {
        // Nothing recorded reads as zero, as a counter that never moved.
        if want == 0.0 {
            return Ok(());
        }
        let present: Vec<String> = series.iter().map(|p| describe_labels(p)).collect();
        return Err(if present.is_empty() {
            format!("no series of `{base}` was recorded")
        } else {
            format!(
                "no series of `{base}` has exactly these labels; recorded: {}",
                present.join(", ")
            )
        });
    };
    let got = read(point, &part)?;
    let close = (got - want).abs() <= 1e-9 * want.abs().max(1.0);
    if close {
        Ok(())
    } else {
        Err(format!("got {got}"))
    }
}

fn same_labels(p: &MetricPoint, wanted: &[(&str, &str)]) -> bool {
    p.labels.len() == wanted.len()
        && wanted.iter().all(|(k, v)| {
            p.labels
                .iter()
                .any(|(pk, pv)| pk == k && pv.as_str() == Some(v))
        })
}

fn describe_labels(p: &MetricPoint) -> String {
    let pairs: Vec<String> = p
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or("")))
        .collect();
    format!("{{{}}}", pairs.join(" "))
}

fn read(p: &MetricPoint, part: &Part) -> Result<f64, String> {
    let Some(Distribution::Histogram {
        count,
        sum,
        bounds,
        bucket_counts,
    }) = p.distribution.as_deref()
    else {
        return Ok(p.value);
    };
    Ok(match part {
        Part::Value | Part::Count => *count as f64,
        Part::Sum => *sum,
        Part::Bucket("+Inf") => *count as f64,
        Part::Bucket(le) => {
            let bound: f64 = le
                .parse()
                .map_err(|_| format!("`le = {le:?}` is not a number or \"+Inf\""))?;
            let Some(i) = bounds.iter().position(|b| *b == bound) else {
                return Err(format!(
                    "`{}` has no bucket le={le}; its bounds are {bounds:?}",
                    p.name
                ));
            };
            bucket_counts[..=i].iter().sum::<u64>() as f64
        }
    })
}

/// `expect metric "name" { label = "value" } == number`, checked against
/// the metrics the steps declare.
pub fn compile(
    c: &mut Compiler,
    name: &Ident,
    labels: &[Opt],
    value: &Expr,
    span: Span,
    src: &str,
) -> Option<Expectation> {
    let instrument = |n: &str| c.log_metrics.iter().find_map(|s| s.instrument(n));
    let histogram_part = ["_count", "_sum", "_bucket"].iter().find_map(|suffix| {
        let base = name.name.strip_suffix(suffix)?;
        matches!(instrument(base), Some(Instrument::Histogram(_))).then_some(*suffix)
    });
    if instrument(&name.name).is_none() && histogram_part.is_none() {
        let declared: Vec<String> = c
            .log_metrics
            .iter()
            .flat_map(|s| s.metric_names())
            .collect();
        let hint = suggest(&name.name, declared.iter().map(String::as_str), || {
            "a step records it with count(...), observe(...) or set_gauge(...)".into()
        });
        c.diagnostics.push(
            Diagnostic::new(
                name.span,
                format!("no step records a metric `{}`", name.name),
            )
            .hint(hint),
        );
        return None;
    }
    let mut pairs = Vec::with_capacity(labels.len());
    for opt in labels {
        match &opt.value.kind {
            ExprKind::Lit(Lit::Str(v)) => pairs.push((opt.key.name.clone(), v.clone())),
            _ => c.diagnostics.push(
                Diagnostic::new(
                    opt.value.span,
                    "an expected label value is a string literal",
                )
                .hint("label values are strings, e.g. status = \"200\""),
            ),
        }
    }
    if histogram_part == Some("_bucket") && !pairs.iter().any(|(k, _)| k == "le") {
        c.diagnostics.push(
            Diagnostic::new(span, "a bucket is chosen by its `le` label")
                .hint("e.g. { le = \"0.5\" }, or le = \"+Inf\" for every observation"),
        );
    }
    let want = match &value.kind {
        ExprKind::Lit(Lit::Int(i)) => *i as f64,
        ExprKind::Lit(Lit::Float(f)) => *f,
        _ => {
            c.diagnostics.push(
                Diagnostic::new(value.span, "the expected value is a number literal")
                    .hint("e.g. `== 2` or `== 0.25`"),
            );
            return None;
        }
    };
    Some(Expectation::Metric {
        name: name.name.clone(),
        labels: pairs,
        want,
        text: src.get(span.start..span.end).unwrap_or("").to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{MetricKind, Resource, Value};
    use std::sync::Arc;

    fn histogram() -> MetricPoint {
        let mut p = MetricPoint::new(
            "lat",
            "",
            MetricKind::Histogram,
            1.5,
            0,
            Arc::new(Resource::default()),
        );
        p.labels = vec![("route".into(), Value::from("/"))];
        p.distribution = Some(Box::new(Distribution::Histogram {
            count: 4,
            sum: 1.5,
            bounds: vec![0.1, 0.5],
            bucket_counts: vec![1, 2, 1],
        }));
        p
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn a_histogram_reads_as_count_sum_and_cumulative_buckets() {
        let points = [histogram()];
        let route = labels(&[("route", "/")]);
        assert_eq!(check(&points, "lat", &route, 4.0), Ok(()));
        assert_eq!(check(&points, "lat_count", &route, 4.0), Ok(()));
        assert_eq!(check(&points, "lat_sum", &route, 1.5), Ok(()));
        let le = |b: &str| labels(&[("route", "/"), ("le", b)]);
        assert_eq!(check(&points, "lat_bucket", &le("0.1"), 1.0), Ok(()));
        assert_eq!(check(&points, "lat_bucket", &le("0.5"), 3.0), Ok(()));
        assert_eq!(check(&points, "lat_bucket", &le("+Inf"), 4.0), Ok(()));
        assert!(check(&points, "lat_bucket", &le("0.3"), 1.0).is_err());
        assert_eq!(check(&points, "lat", &route, 5.0), Err("got 4".into()));
    }

    #[test]
    fn labels_must_match_exactly() {
        let points = [histogram()];
        let err = check(&points, "lat", &[], 4.0).unwrap_err();
        assert!(err.contains("recorded: {route=\"/\"}"), "{err}");
        assert!(check(&points, "other", &[], 1.0)
            .unwrap_err()
            .contains("no series"));
        assert_eq!(
            check(&points, "other", &[], 0.0),
            Ok(()),
            "never recorded reads as 0"
        );
    }
}
