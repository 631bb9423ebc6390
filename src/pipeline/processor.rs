//! The processing stage: runs the compiled steps of the pipeline over each
//! event of a batch (in place, all-or-nothing per step), then routes it.
//! Dropped events are acknowledged at once, so checkpoints move past them.

use super::acks::ack_events;
use super::router::{Route, Router};
use crate::control::tap::{self, Point};
use crate::event::{Event, EventBatch, Value};
use crate::lang::ast::OnError;
use crate::lang::eval::{run_block, truthy, CExpr, CStmt, Ctx};
use crate::telemetry::{self, Metric};
use std::sync::Arc;

/// One compiled step.
#[derive(Debug)]
pub struct Step {
    pub name: String,
    /// Sources the step applies to; empty means all.
    pub sources: Vec<String>,
    pub condition: Option<CExpr>,
    pub on_error: OnError,
    pub body: Vec<CStmt>,
    /// The step may fail half-way: keep a copy to restore.
    pub snapshot: bool,
}

/// What a step did to an event.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Continue,
    Dropped,
    Failed(String),
}

impl Step {
    pub fn applies_to(&self, source: &str) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|s| s == source)
    }

    /// Runs the step on one event.
    pub fn apply(&self, event: &mut Event, source: &str) -> Outcome {
        let original = self.snapshot.then(|| event.clone());
        let mut ctx = Ctx::new(event, source);
        let result = match &self.condition {
            Some(c) => match c.eval(&mut ctx) {
                Ok(v) if !truthy(&v) => return Outcome::Continue,
                Ok(_) => run_block(&self.body, &mut ctx),
                Err(e) => Err(e),
            },
            None => run_block(&self.body, &mut ctx),
        };
        let dropped = ctx.dropped;
        let err = match result {
            Ok(_) if dropped => return Outcome::Dropped,
            Ok(_) => return Outcome::Continue,
            Err(e) => format!("step {}: {}", self.name, e.0),
        };
        if let Some(original) = original {
            *event = original;
        }
        match self.on_error {
            OnError::Keep => Outcome::Continue,
            OnError::Tag => {
                if let Event::Log(log) = event {
                    log.attributes
                        .push(("shipd.error".into(), Value::String(err)));
                }
                Outcome::Continue
            }
            OnError::Drop => Outcome::Dropped,
            OnError::Abort => Outcome::Failed(err),
        }
    }
}

/// Steps plus router.
#[derive(Debug)]
pub struct Processor {
    pub steps: Vec<Step>,
    pub router: Router,
    dropped: Metric,
    failed: Metric,
}

impl Processor {
    pub fn new(steps: Vec<Step>, router: Router) -> Self {
        Processor {
            steps,
            router,
            dropped: telemetry::counter(
                "shipd_events_dropped_total",
                &[("component", "pipeline"), ("reason", "drop")],
            ),
            failed: telemetry::counter("shipd_step_errors_total", &[("component", "pipeline")]),
        }
    }

    /// Runs every applicable step; `Err` carries the failure of an aborting step.
    pub fn run_steps(&self, event: &mut Event, source: &str) -> Result<bool, String> {
        for step in self.steps.iter().filter(|s| s.applies_to(source)) {
            match step.apply(event, source) {
                Outcome::Continue => {
                    tap::observe(Point::Step, &step.name, source, std::slice::from_ref(event))
                }
                Outcome::Dropped => return Ok(false),
                Outcome::Failed(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Processes a batch into per-destination batches.
    pub fn process(&mut self, batch: EventBatch) -> Vec<(Route, EventBatch)> {
        let source = Arc::clone(&batch.source);
        let mut out: Vec<(Route, EventBatch)> = Vec::new();
        let mut gone = Vec::new();
        for mut event in batch.events {
            let route = match self.run_steps(&mut event, &source) {
                Ok(true) => self.router.route(&mut event, &source),
                Ok(false) => {
                    self.dropped.inc();
                    None
                }
                Err(e) => {
                    self.failed.inc();
                    self.router.dead_letter(&mut event, &source, &e)
                }
            };
            let Some(route) = route else {
                gone.push(event);
                continue;
            };
            match out.iter_mut().find(|(r, _)| *r == route) {
                Some((_, b)) => b.push(event),
                None => {
                    let mut b = EventBatch::from_source(&source, 16);
                    b.push(event);
                    out.push((route, b));
                }
            }
        }
        ack_events(&gone);
        out
    }
}
