//! OpenObserve's ingest window: it refuses log records older than 5 hours
//! (`ZO_INGEST_ALLOWED_UPTO`), which a replay after a long outage produces.
//! [`TooOld`] says what happens to them instead of a silent loss: dropped
//! (acknowledged, counted, logged), restamped to now with the original
//! time kept in an attribute, or kept as they are. Pure apart from counters and logs.

use super::super::log_limit::LogLimit;
use crate::event::{Event, Value};
use crate::pipeline::acks::ack_events;
use crate::telemetry::Metric;
use std::time::Duration;

/// How far back OpenObserve accepts log records.
pub const INGEST_WINDOW: Duration = Duration::from_secs(5 * 3600);
/// The attribute holding a restamped record's original time.
pub const ORIGINAL_TIME_ATTRIBUTE: &str = "shipd.original_timestamp";

/// What to do with log records older than the ingest window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TooOld {
    /// Drop them, counted as `reason="too_old"` and logged.
    #[default]
    Drop,
    /// Send them with the current time; the original goes to
    /// [`ORIGINAL_TIME_ATTRIBUTE`].
    Restamp,
    /// Send them unchanged (an OpenObserve whose `ZO_INGEST_ALLOWED_UPTO`
    /// was raised, or tests replaying old fixtures).
    Keep,
}

impl std::str::FromStr for TooOld {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "drop" => Ok(TooOld::Drop),
            "restamp" => Ok(TooOld::Restamp),
            "keep" => Ok(TooOld::Keep),
            other => Err(format!(
                "unknown too_old `{other}` (expected drop, restamp or keep)"
            )),
        }
    }
}

static TOO_OLD_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));

/// Applies `policy` to the log records of `events` older than the window
/// at `now_ns`. Dropped records are acknowledged (they are done) and
/// counted on `dropped`; restamped ones on `restamped`.
pub fn apply(
    policy: TooOld,
    sink: &str,
    events: &mut Vec<Event>,
    now_ns: u64,
    dropped: &Metric,
    restamped: &Metric,
) {
    let oldest_allowed = now_ns.saturating_sub(INGEST_WINDOW.as_nanos() as u64);
    let is_old = |e: &Event| matches!(e, Event::Log(l) if l.time_unix_nano != 0 && l.time_unix_nano < oldest_allowed);
    let n_old = events.iter().filter(|e| is_old(e)).count();
    if n_old == 0 {
        return;
    }
    match policy {
        TooOld::Keep => return,
        TooOld::Drop => {
            let (old, keep): (Vec<Event>, Vec<Event>) = events.drain(..).partition(is_old);
            *events = keep;
            ack_events(&old);
            dropped.add(old.len() as u64);
        }
        TooOld::Restamp => {
            for event in events.iter_mut() {
                if let Event::Log(log) = event {
                    if log.time_unix_nano != 0 && log.time_unix_nano < oldest_allowed {
                        log.attributes.push((
                            ORIGINAL_TIME_ATTRIBUTE.into(),
                            Value::Timestamp(log.time_unix_nano as i64),
                        ));
                        log.time_unix_nano = now_ns;
                    }
                }
            }
            restamped.add(n_old as u64);
        }
    }
    if let Some(suppressed) = TOO_OLD_LOG.allow() {
        tracing::warn!(
            sink, records = n_old, policy = ?policy, suppressed,
            "log records older than OpenObserve's 5 h ingest window (a long outage?)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LogRecord, Resource};
    use std::sync::Arc;

    const HOUR: u64 = 3_600_000_000_000;

    fn logs(times: &[u64]) -> Vec<Event> {
        let r = Arc::new(Resource::default());
        times
            .iter()
            .map(|t| {
                let mut l = LogRecord::new(Value::from("x"), Arc::clone(&r));
                l.time_unix_nano = *t;
                Event::Log(l)
            })
            .collect()
    }

    fn counters() -> (Metric, Metric) {
        (
            crate::telemetry::counter("shipd_test_too_old_total", &[("c", "d")]),
            crate::telemetry::counter("shipd_test_restamped_total", &[("c", "r")]),
        )
    }

    #[test]
    fn records_older_than_five_hours_are_dropped_and_counted_by_default() {
        let now = 100 * HOUR;
        let mut events = logs(&[now - 6 * HOUR, now - 4 * HOUR, 0]);
        let (dropped, restamped) = counters();
        let before = dropped.get();
        apply(
            TooOld::default(),
            "o2",
            &mut events,
            now,
            &dropped,
            &restamped,
        );
        assert_eq!(
            events.len(),
            2,
            "the recent record and the one without time stay"
        );
        assert_eq!(dropped.get() - before, 1);
    }

    #[test]
    fn every_policy_name_parses() {
        for (name, policy) in [
            ("drop", TooOld::Drop),
            ("restamp", TooOld::Restamp),
            ("keep", TooOld::Keep),
        ] {
            assert_eq!(name.parse::<TooOld>(), Ok(policy));
        }
        assert!("later".parse::<TooOld>().is_err());
    }

    #[test]
    fn restamp_moves_the_original_time_to_an_attribute() {
        let now = 100 * HOUR;
        let old = now - 6 * HOUR;
        let mut events = logs(&[old]);
        let (dropped, restamped) = counters();
        apply(
            TooOld::Restamp,
            "o2",
            &mut events,
            now,
            &dropped,
            &restamped,
        );
        let Event::Log(l) = &events[0] else { panic!() };
        assert_eq!(l.time_unix_nano, now);
        assert_eq!(
            l.attributes.last(),
            Some(&(ORIGINAL_TIME_ATTRIBUTE.into(), Value::Timestamp(old as i64)))
        );
    }
}
