//! What a run of an `exec` command becomes: with `format = "lines"` one log
//! record per line of standard output (the exit status and the command as
//! attributes), with `format = "prometheus"` the metric points of the text
//! exposition it printed, converted as `prometheus_scrape` converts them
//! ([`crate::sources::prometheus::points`]). Pure: no I/O, no clocks.

use super::run::{Ending, Run};
use crate::event::{Attributes, Event, LogRecord, MetricPoint, Resource, Value};
use crate::sources::prometheus::points::sample_point;
use crate::sources::prometheus::text::{self, Format, TooManySeries};
use bytes::Bytes;
use std::sync::Arc;

/// The attributes every record of a run carries: the command, and how it
/// ended (`exec.exit_code`, or `exec.signal`, or `exec.timed_out`).
pub fn run_attributes(command: &str, ending: Ending) -> Attributes {
    let mut attrs: Attributes = vec![("exec.command".into(), Value::from(command))];
    match ending {
        Ending::Exited(code) => attrs.push(("exec.exit_code".into(), Value::from(i64::from(code)))),
        Ending::Signaled(signal) => {
            attrs.push(("exec.signal".into(), Value::from(i64::from(signal))))
        }
        Ending::TimedOut => attrs.push(("exec.timed_out".into(), Value::from(true))),
    }
    attrs
}

/// One log record per line of the run's standard output (`\n` or `\r\n`
/// ends a line; empty lines are skipped). The last line of a cut output is
/// marked `exec.truncated`. Lines that are not UTF-8 are read lossily.
pub fn line_records(run: &mut Run, attrs: &Attributes, resource: &Arc<Resource>) -> Vec<Event> {
    let stdout = Bytes::from(std::mem::take(&mut run.stdout));
    let mut records = Vec::new();
    let mut rest = stdout.clone();
    while !rest.is_empty() {
        let (line, complete) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => {
                let line = rest.slice(..i);
                rest = rest.slice(i + 1..);
                (line, true)
            }
            None => (std::mem::take(&mut rest), false),
        };
        let line = match line.last() {
            Some(b'\r') => line.slice(..line.len() - 1),
            _ => line,
        };
        if line.is_empty() {
            continue;
        }
        let body = match std::str::from_utf8(&line) {
            Ok(_) => Value::Bytes(line),
            Err(_) => Value::Bytes(Bytes::from(String::from_utf8_lossy(&line).into_owned())),
        };
        let mut record = LogRecord::new(body, Arc::clone(resource));
        record.attributes = attrs.clone();
        if !complete && run.stdout_cut {
            record
                .attributes
                .push(("exec.truncated".into(), Value::from(true)));
        }
        records.push(Event::Log(record));
    }
    records
}

/// The parsed exposition of a run, with the number of malformed lines
/// skipped and the first of them (for the log).
pub struct Metrics {
    pub points: Vec<MetricPoint>,
    pub malformed: usize,
    pub malformed_examples: Vec<(usize, String)>,
}

/// The metric points of the text exposition the run printed, observed at
/// `now`; cumulative series start at `start` unless they carry `_created`.
/// At most `max_series` sample lines are accepted. Of a cut output the
/// unfinished last line is left out: `temp 48.3` cut to `temp 4` would be
/// a wrong value, not a malformed line.
pub fn exposition_points(
    run: &Run,
    now: u64,
    start: u64,
    max_series: usize,
    resource: &Arc<Resource>,
) -> Result<Metrics, TooManySeries> {
    let whole = match run.stdout_cut {
        true => run
            .stdout
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(&run.stdout[..0], |end| &run.stdout[..=end]),
        false => &run.stdout[..],
    };
    let text = String::from_utf8_lossy(whole);
    let exposition = text::parse_with_limit(&text, Format::Prometheus, max_series)?;
    let points = exposition
        .samples
        .into_iter()
        .map(|mut sample| {
            let labels = std::mem::take(&mut sample.labels)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            sample_point(sample, labels, now, start, resource)
        })
        .collect();
    Ok(Metrics {
        points,
        malformed: exposition.malformed,
        malformed_examples: exposition.malformed_examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MetricKind;
    use std::time::Duration;

    fn run_with(stdout: &[u8], cut: bool, ending: Ending) -> Run {
        Run {
            ending,
            stdout: stdout.to_vec(),
            stdout_cut: cut,
            stderr_excerpt: Vec::new(),
            stderr_bytes: 0,
            duration: Duration::ZERO,
        }
    }

    fn bodies(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Log(l) => String::from_utf8_lossy(match &l.body {
                    Value::Bytes(b) => b,
                    _ => panic!("not bytes"),
                })
                .into_owned(),
                Event::Metric(_) => panic!("not a log"),
            })
            .collect()
    }

    #[test]
    fn every_non_empty_line_is_a_record_with_the_run_attributes() {
        let mut run = run_with(b"a\r\n\nb\nc", false, Ending::Exited(2));
        let attrs = run_attributes("probe --x", run.ending);
        let events = line_records(&mut run, &attrs, &Arc::new(Resource::default()));
        assert_eq!(bodies(&events), ["a", "b", "c"]);
        let Event::Log(first) = &events[0] else {
            panic!()
        };
        assert_eq!(first.attributes, attrs);
        assert!(attrs.contains(&("exec.exit_code".into(), Value::Int(2))));
    }

    #[test]
    fn only_the_last_line_of_a_cut_output_is_marked_truncated() {
        let mut run = run_with(b"whole\nhal", true, Ending::Signaled(13));
        let attrs = run_attributes("flood", run.ending);
        let events = line_records(&mut run, &attrs, &Arc::new(Resource::default()));
        let marked: Vec<bool> = events
            .iter()
            .map(|e| match e {
                Event::Log(l) => l
                    .attributes
                    .iter()
                    .any(|(k, _)| k.as_str() == "exec.truncated"),
                Event::Metric(_) => false,
            })
            .collect();
        assert_eq!(marked, [false, true]);
    }

    #[test]
    fn an_exposition_becomes_points_like_a_scrape() {
        let run = run_with(
            b"# TYPE pi_temp_celsius gauge\npi_temp_celsius{sensor=\"soc\"} 48.3\n# TYPE pi_throttle_events_total counter\npi_throttle_events_total 7\nnot a sample\n",
            false,
            Ending::Exited(0),
        );
        let m = exposition_points(&run, 2_000, 1_000, 100, &Arc::new(Resource::default())).unwrap();
        assert_eq!(m.malformed, 1);
        let temp = &m.points[0];
        assert_eq!(
            (temp.name.as_str(), temp.value, temp.kind),
            ("pi_temp_celsius", 48.3, MetricKind::Gauge)
        );
        assert_eq!(temp.label("sensor"), Some("soc"));
        let counter = &m.points[1];
        assert_eq!(counter.kind, MetricKind::Sum { monotonic: true });
        assert_eq!(counter.start_time_unix_nano, 1_000);
    }

    #[test]
    fn the_unfinished_last_line_of_a_cut_exposition_is_left_out() {
        let run = run_with(b"a 1\nb 48.3\nc 4", true, Ending::Signaled(13));
        let m = exposition_points(&run, 0, 0, 100, &Arc::new(Resource::default())).unwrap();
        let names: Vec<&str> = m.points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn too_many_series_are_refused() {
        let run = run_with(b"a 1\nb 2\nc 3\n", false, Ending::Exited(0));
        assert!(exposition_points(&run, 0, 0, 2, &Arc::new(Resource::default())).is_err());
    }
}
