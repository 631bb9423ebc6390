//! The Prometheus text exposition format (0.0.4) and the parts of OpenMetrics
//! 1.0 that fit it (`# UNIT`, `# EOF`, `_total` counters, `_created`,
//! exemplars, timestamps in seconds), parsed by hand into [`Sample`]s:
//! counters and gauges as numbers, histograms (cumulative `le` buckets turned
//! into per-bucket counts, the OTLP layout) and summaries (quantiles).
//!
//! A malformed line is skipped and counted; every other line is kept. An
//! exposition with more sample lines than a limit ([`parse_with_limit`]) is
//! refused after counting them, before anything is built from it. Pure: no
//! I/O, no clocks.

use crate::event::{Distribution, Str};
use std::collections::HashMap;

/// The declared type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// No `# TYPE` (or `untyped`/`unknown`): exported as a gauge.
    Untyped,
}

/// The value of one sample, or the distribution of one histogram/summary
/// series (buckets per bucket, not cumulative, as OTLP wants them; boxed,
/// so the many plain samples stay small).
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    Number(f64),
    Distribution(Box<Distribution>),
}

/// One series of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample name for counters and gauges (`http_requests_total`), the
    /// family name for histograms and summaries.
    pub name: Str,
    pub kind: FamilyKind,
    /// `# UNIT` of the family (OpenMetrics), else empty.
    pub unit: Str,
    pub labels: Labels,
    pub value: SampleValue,
    /// The sample's own timestamp, in ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// OpenMetrics `_created`: when the series started, in seconds since the epoch.
    pub created: Option<f64>,
}

/// The result of parsing one exposition.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Lines that could not be understood and were skipped.
    pub malformed: usize,
    /// The first few malformed lines (for the log), with their line numbers.
    pub malformed_examples: Vec<(usize, String)>,
}

/// Which dialect the text is in; decides how timestamps are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4: integer timestamps in milliseconds.
    Prometheus,
    /// OpenMetrics: timestamps in (fractional) seconds.
    OpenMetrics,
}

impl Format {
    /// The dialect announced by a `Content-Type` header.
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        match content_type {
            Some(ct) if ct.starts_with("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }
}

const MAX_EXAMPLES: usize = 3;

/// Label names and values: short strings, kept inline (no allocation) up
/// to 24 bytes, as most are.
pub type Labels = Vec<(Str, Str)>;

/// A histogram or summary series being assembled from its samples.
#[derive(Debug, Default)]
struct Accumulator {
    /// (le or quantile, value)
    points: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: Option<f64>,
    created: Option<f64>,
    timestamp_ms: Option<i64>,
}

/// What a sample line contributes to its family.
enum Role {
    Value,
    Bucket,
    Quantile,
    Count,
    Sum,
    Created,
}

/// An exposition with more sample lines than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the exposition has more than {limit} series (max_series)")]
pub struct TooManySeries {
    pub limit: usize,
}

/// Parses `text`, however many samples it holds.
pub fn parse(text: &str, format: Format) -> Exposition {
    // No text holds more than usize::MAX lines: the limit is never reached.
    parse_with_limit(text, format, usize::MAX).unwrap_or_default()
}

/// One line of an exposition, by what it is.
enum Line<'a> {
    Blank,
    /// After `#`.
    Comment(&'a str),
    /// `# EOF`: nothing after it counts.
    Eof,
    /// Anything else, trimmed: a sample, or a malformed line.
    Sample(&'a str),
}

impl<'a> Line<'a> {
    fn of(raw: &'a str) -> Line<'a> {
        let line = raw.trim();
        match line.strip_prefix('#') {
            _ if line.is_empty() => Line::Blank,
            Some(comment) if comment.split_ascii_whitespace().eq(["EOF"]) => Line::Eof,
            Some(comment) => Line::Comment(comment),
            None => Line::Sample(line),
        }
    }
}

/// Parses `text` when it holds at most `max_samples` sample lines (every
/// line that is not blank or a comment counts: a histogram bucket, a `_sum`,
/// a malformed line). More are refused after one pass that only counts, so
/// refusing costs no memory and a parse builds at most the limit.
pub fn parse_with_limit(
    text: &str,
    format: Format,
    max_samples: usize,
) -> Result<Exposition, TooManySeries> {
    let sample_lines = text
        .lines()
        .map(Line::of)
        .take_while(|l| !matches!(l, Line::Eof))
        .filter(|l| matches!(l, Line::Sample(_)))
        .take(max_samples.saturating_add(1))
        .count();
    if sample_lines > max_samples {
        return Err(TooManySeries { limit: max_samples });
    }
    // At most one sample per line: reserved once, never grown by doubling.
    let mut out = Exposition {
        samples: Vec::with_capacity(sample_lines),
        ..Exposition::default()
    };
    let mut types: HashMap<&str, FamilyKind> = HashMap::new();
    let mut units: HashMap<&str, &str> = HashMap::new();
    // Distributions in first-seen order: index by (family, labels without le/quantile).
    let mut dists: Vec<(Str, FamilyKind, Labels, Accumulator)> = Vec::new();
    let mut dist_index: HashMap<(Str, Labels), usize> = HashMap::new();
    // Counter `_created` samples, applied after the pass.
    let mut created: HashMap<(Str, Labels), f64> = HashMap::new();

    for (number, raw_line) in text.lines().enumerate() {
        let line = match Line::of(raw_line) {
            Line::Blank => continue,
            Line::Eof => break,
            Line::Sample(line) => line,
            Line::Comment(comment) => {
                let mut words = comment.split_ascii_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        let kind = match kind {
                            "counter" => FamilyKind::Counter,
                            "gauge" => FamilyKind::Gauge,
                            "histogram" | "gaugehistogram" => FamilyKind::Histogram,
                            "summary" => FamilyKind::Summary,
                            _ => FamilyKind::Untyped,
                        };
                        types.insert(name, kind);
                    }
                    (Some("UNIT"), Some(name), Some(unit)) => {
                        units.insert(name, unit);
                    }
                    _ => {}
                }
                continue;
            }
        };
        let Some(parsed) = parse_sample_line(line, format) else {
            out.malformed += 1;
            if out.malformed_examples.len() < MAX_EXAMPLES {
                out.malformed_examples
                    .push((number + 1, raw_line.chars().take(200).collect()));
            }
            continue;
        };
        let (family, kind, role) = classify(&parsed.name, &types);
        match (kind, role) {
            (FamilyKind::Histogram | FamilyKind::Summary, role) => {
                let bound_label = if kind == FamilyKind::Histogram {
                    "le"
                } else {
                    "quantile"
                };
                let mut labels = parsed.labels;
                let bound = labels
                    .iter()
                    .position(|(k, _)| k == bound_label)
                    .map(|i| labels.remove(i).1);
                let key = (Str::from(family), labels);
                let index = match dist_index.get(&key) {
                    Some(&i) => i,
                    None => {
                        dists.push((key.0.clone(), kind, key.1.clone(), Accumulator::default()));
                        dist_index.insert(key, dists.len() - 1);
                        dists.len() - 1
                    }
                };
                let d = &mut dists[index].3;
                d.timestamp_ms = d.timestamp_ms.or(parsed.timestamp_ms);
                match role {
                    Role::Bucket | Role::Quantile | Role::Value => {
                        let Some(at) = bound.as_deref().and_then(parse_float) else {
                            out.malformed += 1;
                            continue;
                        };
                        d.points.push((at, parsed.value));
                    }
                    Role::Count => d.count = Some(parsed.value),
                    Role::Sum => d.sum = Some(parsed.value),
                    Role::Created => d.created = Some(parsed.value),
                }
            }
            (FamilyKind::Counter, Role::Created) => {
                created.insert((Str::from(family), parsed.labels), parsed.value);
            }
            (kind, _) => {
                let unit = units.get(family).map(|u| Str::from(*u)).unwrap_or_default();
                out.samples.push(Sample {
                    name: parsed.name,
                    kind,
                    unit,
                    labels: parsed.labels,
                    value: SampleValue::Number(parsed.value),
                    timestamp_ms: parsed.timestamp_ms,
                    created: None,
                });
            }
        }
    }
    if !created.is_empty() {
        for s in out
            .samples
            .iter_mut()
            .filter(|s| s.kind == FamilyKind::Counter)
        {
            let family = s.name.strip_suffix("_total").unwrap_or(&s.name);
            s.created = created.remove(&(Str::from(family), s.labels.clone()));
        }
    }
    for (family, kind, labels, d) in dists {
        let unit = units
            .get(family.as_str())
            .map(|u| Str::from(*u))
            .unwrap_or_default();
        let value = match kind {
            FamilyKind::Histogram => finish_histogram(d.points, d.count, d.sum),
            _ => {
                let mut quantiles = d.points;
                quantiles.sort_by(|a, b| a.0.total_cmp(&b.0));
                SampleValue::Distribution(Box::new(Distribution::Summary {
                    count: d.count.map_or(0, as_count),
                    sum: d.sum.unwrap_or(0.0),
                    quantiles,
                }))
            }
        };
        out.samples.push(Sample {
            name: family,
            kind,
            unit,
            labels,
            value,
            timestamp_ms: d.timestamp_ms,
            created: d.created,
        });
    }
    Ok(out)
}

fn as_count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

/// Cumulative `le` buckets to OTLP per-bucket counts.
fn finish_histogram(
    mut buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: Option<f64>,
) -> SampleValue {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let inf = buckets
        .iter()
        .find(|(le, _)| *le == f64::INFINITY)
        .map(|(_, c)| *c);
    let count = count.or(inf).map_or(0, as_count);
    let mut bounds = Vec::with_capacity(buckets.len());
    let mut bucket_counts = Vec::with_capacity(buckets.len() + 1);
    let mut below = 0u64;
    for (le, cumulative) in buckets.iter().filter(|(le, _)| le.is_finite()) {
        let cumulative = as_count(*cumulative).max(below);
        bounds.push(*le);
        bucket_counts.push(cumulative - below);
        below = cumulative;
    }
    bucket_counts.push(count.saturating_sub(below));
    SampleValue::Distribution(Box::new(Distribution::Histogram {
        count,
        sum: sum.unwrap_or(0.0),
        bounds,
        bucket_counts,
    }))
}

/// Finds the family of a sample name and the sample's role in it.
fn classify<'a>(name: &'a str, types: &HashMap<&str, FamilyKind>) -> (&'a str, FamilyKind, Role) {
    if let Some(&kind) = types.get(name) {
        let role = match kind {
            FamilyKind::Histogram => Role::Bucket,
            FamilyKind::Summary => Role::Quantile,
            _ => Role::Value,
        };
        return (name, kind, role);
    }
    const SUFFIXES: [(&str, Role); 6] = [
        ("_bucket", Role::Bucket),
        ("_count", Role::Count),
        ("_sum", Role::Sum),
        ("_created", Role::Created),
        ("_total", Role::Value),
        ("_gcount", Role::Count),
    ];
    for (suffix, role) in SUFFIXES {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(&kind) = types.get(base) {
                let fits = matches!(
                    (kind, &role),
                    (
                        FamilyKind::Histogram,
                        Role::Bucket | Role::Count | Role::Sum | Role::Created
                    ) | (FamilyKind::Summary, Role::Count | Role::Sum | Role::Created)
                        | (FamilyKind::Counter, Role::Value | Role::Created)
                );
                if fits {
                    return (base, kind, role);
                }
            }
        }
    }
    (name, FamilyKind::Untyped, Role::Value)
}

struct SampleLine {
    name: Str,
    labels: Labels,
    value: f64,
    timestamp_ms: Option<i64>,
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        t => t.parse().ok(),
    }
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit()
}

/// `name{label="value",...} value [timestamp] [# exemplar]`.
fn parse_sample_line(line: &str, format: Format) -> Option<SampleLine> {
    let bytes = line.as_bytes();
    if !is_name_start(*bytes.first()?) {
        return None;
    }
    let name_end = bytes
        .iter()
        .position(|&b| !is_name_char(b))
        .unwrap_or(bytes.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remaining;
    }
    // Exemplars (OpenMetrics) follow ` # `.
    let rest = rest.split_once(" # ").map_or(rest, |(before, _)| before);
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = parse_float(fields.next()?)?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(ts) => Some(match format {
            Format::Prometheus => ts.parse::<i64>().ok()?,
            Format::OpenMetrics => (ts.parse::<f64>().ok()? * 1000.0).round() as i64,
        }),
    };
    if fields.next().is_some() {
        return None;
    }
    Some(SampleLine {
        name: Str::from(name),
        labels,
        value,
        timestamp_ms,
    })
}

/// Labels after `{` up to and including `}`; returns them and the rest.
fn parse_labels(mut s: &str) -> Option<(Labels, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            // A Vec starts with room for 4 pairs; most series have fewer,
            // and a scrape holds up to max_series of them.
            labels.shrink_to_fit();
            return Some((labels, rest));
        }
        let bytes = s.as_bytes();
        if !is_name_start(*bytes.first()?) {
            return None;
        }
        let end = bytes
            .iter()
            .position(|&b| !is_name_char(b))
            .unwrap_or(bytes.len());
        let key = &s[..end];
        s = s[end..]
            .trim_start()
            .strip_prefix('=')?
            .trim_start()
            .strip_prefix('"')?;
        let mut value = Str::default();
        let mut chars = s.char_indices();
        let close = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    other => {
                        value.push('\\');
                        value.push(other);
                    }
                },
                c => value.push(c),
            }
        };
        labels.push((Str::from(key), value));
        s = s[close + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (Str::from(*k), Str::from(*v)))
            .collect()
    }

    #[test]
    fn counters_gauges_and_untyped_samples_keep_labels_and_timestamps() {
        let text = "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\nhttp_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\nhttp_requests_total{method=\"post\",code=\"400\"}    3\n# TYPE temp gauge\ntemp -3.5e1\nweird{path=\"C:\\\\dir\",q=\"say \\\"hi\\\"\\n\",} +Inf\n";
        let e = parse(text, Format::Prometheus);
        assert_eq!(e.malformed, 0);
        assert_eq!(e.samples.len(), 4);
        let first = &e.samples[0];
        assert_eq!(first.kind, FamilyKind::Counter);
        assert_eq!(first.labels, labels(&[("method", "post"), ("code", "200")]));
        assert_eq!(first.value, SampleValue::Number(1027.0));
        assert_eq!(first.timestamp_ms, Some(1_395_066_363_000));
        assert_eq!(e.samples[2].value, SampleValue::Number(-35.0));
        assert_eq!(e.samples[3].kind, FamilyKind::Untyped);
        assert_eq!(
            e.samples[3].labels,
            labels(&[("path", "C:\\dir"), ("q", "say \"hi\"\n")])
        );
        assert_eq!(e.samples[3].value, SampleValue::Number(f64::INFINITY));
    }

    #[test]
    fn histogram_buckets_become_per_bucket_counts() {
        let text = "# TYPE rpc histogram\nrpc_bucket{svc=\"a\",le=\"0.1\"} 2\nrpc_bucket{svc=\"a\",le=\"0.5\"} 5\nrpc_bucket{svc=\"a\",le=\"+Inf\"} 6\nrpc_sum{svc=\"a\"} 1.7\nrpc_count{svc=\"a\"} 6\n";
        let e = parse(text, Format::Prometheus);
        assert_eq!(e.samples.len(), 1);
        assert_eq!(e.samples[0].labels, labels(&[("svc", "a")]));
        assert_eq!(
            e.samples[0].value,
            SampleValue::Distribution(Box::new(Distribution::Histogram {
                count: 6,
                sum: 1.7,
                bounds: vec![0.1, 0.5],
                bucket_counts: vec![2, 3, 1]
            }))
        );
    }

    #[test]
    fn summaries_collect_quantiles_count_and_sum() {
        let text = "# TYPE gc summary\ngc{quantile=\"0.99\"} 0.02\ngc{quantile=\"0.5\"} 0.01\ngc_sum 3.5\ngc_count 120\n";
        let e = parse(text, Format::Prometheus);
        assert_eq!(
            e.samples[0].value,
            SampleValue::Distribution(Box::new(Distribution::Summary {
                count: 120,
                sum: 3.5,
                quantiles: vec![(0.5, 0.01), (0.99, 0.02)]
            }))
        );
    }

    #[test]
    fn malformed_lines_are_counted_and_the_rest_kept() {
        let text = "good 1\nbad line here\n{no=\"name\"} 1\nunterminated{a=\"x} 2\nalso_good{a=\"b\"} 2\nnot_a_number abc\n";
        let e = parse(text, Format::Prometheus);
        assert_eq!(e.malformed, 4);
        assert_eq!(e.samples.len(), 2);
        assert_eq!(e.malformed_examples[0], (2, "bad line here".to_owned()));
    }

    #[test]
    fn parsing_stops_past_the_sample_limit() {
        let text = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nbad line\ng 1\n";
        assert_eq!(
            parse_with_limit(text, Format::Prometheus, 5)
                .unwrap()
                .samples
                .len(),
            2,
            "five sample lines (the malformed one too) fit in five"
        );
        assert_eq!(
            parse_with_limit(text, Format::Prometheus, 4),
            Err(TooManySeries { limit: 4 })
        );
        let after_eof = "a 1\nb 1\n# EOF\nc 1\n";
        assert!(parse_with_limit(after_eof, Format::OpenMetrics, 2).is_ok());
    }

    #[test]
    fn openmetrics_counters_units_created_exemplars_and_eof() {
        let text = "# TYPE req counter\n# UNIT req seconds\nreq_total{a=\"1\"} 5 # {trace_id=\"x\"} 1 1.5\nreq_created{a=\"1\"} 1700000000.5\ntick 1 1700000000.25\n# EOF\nafter_eof 1\n";
        let e = parse(text, Format::OpenMetrics);
        assert_eq!(e.malformed, 0);
        assert_eq!(e.samples.len(), 2);
        assert_eq!(e.samples[0].name, "req_total");
        assert_eq!(e.samples[0].unit, "seconds");
        assert_eq!(e.samples[0].created, Some(1_700_000_000.5));
        assert_eq!(e.samples[1].timestamp_ms, Some(1_700_000_000_250));
    }
}
