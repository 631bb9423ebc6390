//! What each step did, counted and told: a step's events in, out, dropped
//! and failed (`shipd_events_*_total{component=STEP}`), its errors
//! (`shipd_step_errors_total`) and the failed events lost for want of a
//! `dead_letter` route (`shipd_events_lost_total`), plus one WARN per step
//! per minute with the located error and how many failed since. The
//! processor tallies per batch (only what leaves a step early is counted
//! per event) and records once, so counters move per batch, not per event.

use crate::lang::ast::OnError;
use crate::sinks::log_limit::LogLimit;
use crate::telemetry::{self, Metric};
use std::time::Duration;

/// What one step did to one batch.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub events_in: u64,
    pub events_out: u64,
    pub dropped: u64,
    /// Failed and left the pipeline (to `dead_letter`, or lost).
    pub failed: u64,
    /// Every failure, whatever `on_error` then did.
    pub errors: u64,
    /// The batch's first failure: the subject of a WARN line.
    pub first_error: Option<(String, OnError)>,
}

impl Tally {
    /// Notes one failure, whatever `on_error` then does: counted as an
    /// error, and the batch's first kept for the WARN line.
    pub fn error(&mut self, error: &str, then: OnError) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some((error.to_owned(), then));
        }
    }

    /// Fills in IN and OUT of a batch's steps (in order) from the events
    /// the batch brought and what each step dropped or failed: an event
    /// leaves at the first step that drops or fails it, so each step's IN
    /// is the previous step's OUT, and OUT = IN - DROPPED - FAILED. Exact,
    /// and nothing is counted per event on the way.
    pub fn settle(steps: &mut [Tally], received: u64) {
        let mut reaching = received;
        for t in steps {
            t.events_in = reaching;
            reaching = reaching.saturating_sub(t.dropped + t.failed);
            t.events_out = reaching;
        }
    }
}

/// The counters and log limit of one step.
#[derive(Debug)]
pub struct StepMeter {
    events_in: Metric,
    events_out: Metric,
    dropped: Metric,
    failed: Metric,
    errors: Metric,
    lost: Metric,
    log: LogLimit,
}

impl StepMeter {
    pub fn new(step: &str) -> Self {
        let c = |name| telemetry::counter(name, &[("component", step)]);
        StepMeter {
            events_in: c("shipd_events_in_total"),
            events_out: c("shipd_events_out_total"),
            dropped: telemetry::counter(
                "shipd_events_dropped_total",
                &[("component", step), ("reason", "drop")],
            ),
            failed: c("shipd_events_failed_total"),
            errors: c("shipd_step_errors_total"),
            lost: c("shipd_events_lost_total"),
            log: LogLimit::new(Duration::from_secs(60)),
        }
    }

    /// A failed event had no `dead_letter` route to go to.
    pub fn lost(&self) {
        self.lost.inc();
    }

    /// Adds a batch's tally; logs its first failure when the step's limit
    /// lets a line through.
    pub fn record(&self, step: &str, source: &str, t: &Tally, dead_letter: bool) {
        self.events_in.add(t.events_in);
        self.events_out.add(t.events_out);
        self.dropped.add(t.dropped);
        self.failed.add(t.failed);
        self.errors.add(t.errors);
        let Some((error, then)) = &t.first_error else {
            return;
        };
        let Some(since) = self.log.allow_for(t.errors) else {
            return;
        };
        let outcome = match then {
            OnError::Abort if dead_letter => "sent to the dead_letter route",
            OnError::Abort => "lost: no dead_letter route (counted in shipd_events_lost_total)",
            OnError::Drop => "dropped (on_error drop)",
            OnError::Keep => "kept unchanged (on_error keep)",
            OnError::Tag => "kept with shipd.error (on_error tag)",
        };
        tracing::warn!(
            step,
            source,
            failed_since_last_report = since,
            "step failed: {error}; the event was {outcome}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_takes_in_what_the_previous_let_out() {
        let mut steps = vec![
            Tally {
                dropped: 2,
                ..Tally::default()
            },
            Tally::default(),
            Tally {
                dropped: 1,
                failed: 3,
                errors: 5,
                ..Tally::default()
            },
            Tally::default(),
        ];
        Tally::settle(&mut steps, 10);
        let in_out: Vec<(u64, u64)> = steps.iter().map(|t| (t.events_in, t.events_out)).collect();
        assert_eq!(in_out, [(10, 8), (8, 8), (8, 4), (4, 4)]);
        for t in &steps {
            assert_eq!(t.events_in, t.events_out + t.dropped + t.failed);
        }
    }

    #[test]
    fn a_batch_tally_moves_the_step_counters_once() {
        let meter = StepMeter::new("step_meter_test_step");
        let tally = Tally {
            events_in: 5,
            events_out: 2,
            dropped: 1,
            failed: 2,
            errors: 3,
            first_error: Some(("t.ship:1:2: boom in `x`".into(), OnError::Abort)),
        };
        meter.record("step_meter_test_step", "app", &tally, false);
        meter.lost();
        let value =
            |name| telemetry::value(name, "component=\"step_meter_test_step\"").unwrap_or(u64::MAX);
        assert_eq!(value("shipd_events_in_total"), 5);
        assert_eq!(value("shipd_events_out_total"), 2);
        assert_eq!(value("shipd_events_failed_total"), 2);
        assert_eq!(value("shipd_step_errors_total"), 3);
        assert_eq!(value("shipd_events_lost_total"), 1);
        assert_eq!(
            telemetry::value(
                "shipd_events_dropped_total",
                "component=\"step_meter_test_step\",reason=\"drop\""
            ),
            Some(1)
        );
    }
}
