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
                        .push(("shipd.error".into(), Value::String(err.into())));
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
        let steps: Vec<&Step> = self.steps.iter().filter(|s| s.applies_to(source)).collect();
        run_applicable(&steps, event, source)
    }

    /// Processes a batch into per-destination batches. When every event
    /// goes to one destination (the common case) the batch's own vector is
    /// passed on, so events are not moved again.
    pub fn process(&mut self, batch: EventBatch) -> Vec<(Route, EventBatch)> {
        let source = Arc::clone(&batch.source);
        let mut events = batch.events;
        // Every event of a batch comes from one source: pick its steps once.
        let steps: Vec<&Step> = self
            .steps
            .iter()
            .filter(|s| s.applies_to(&source))
            .collect();
        // Each destination with the bytes of its events, counted while each
        // event is still in cache (a second pass over a batch of parsed
        // events misses it).
        let mut routes: Vec<(Route, usize)> = Vec::new();
        // Index into `routes` per event; `None` when the event is gone.
        let mut dest: Vec<Option<u32>> = Vec::with_capacity(events.len());
        for event in events.iter_mut() {
            let route = match run_applicable(&steps, event, &source) {
                Ok(true) => self.router.route(event, &source),
                Ok(false) => {
                    self.dropped.inc();
                    None
                }
                Err(e) => {
                    self.failed.inc();
                    self.router.dead_letter(event, &source, &e)
                }
            };
            dest.push(route.map(|route| {
                let i = match routes.iter().position(|(r, _)| *r == route) {
                    Some(i) => i,
                    None => {
                        routes.push((route, 0));
                        routes.len() - 1
                    }
                };
                routes[i].1 += event.size_hint();
                i as u32
            }));
        }
        split_by_route(events, routes, dest, source)
    }
}

/// Runs `steps` (those that apply to the event's source) in order; `Err`
/// carries the failure of an aborting step.
fn run_applicable(steps: &[&Step], event: &mut Event, source: &str) -> Result<bool, String> {
    for step in steps {
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

/// Moves processed events into one batch per destination (each route
/// with the bytes of its events); events without one (dropped,
/// unroutable) are acknowledged.
fn split_by_route(
    events: Vec<Event>,
    mut routes: Vec<(Route, usize)>,
    dest: Vec<Option<u32>>,
    source: Arc<str>,
) -> Vec<(Route, EventBatch)> {
    if routes.len() == 1 && dest.iter().all(Option::is_some) {
        if let Some((route, bytes)) = routes.pop() {
            let out = EventBatch {
                events,
                bytes,
                source,
            };
            return vec![(route, out)];
        }
    }
    let mut counts = vec![0usize; routes.len()];
    for i in dest.iter().flatten() {
        counts[*i as usize] += 1;
    }
    let mut out: Vec<(Route, EventBatch)> = routes
        .into_iter()
        .zip(counts)
        .map(|((r, bytes), n)| {
            let mut batch = EventBatch::from_source(&source, n);
            batch.bytes = bytes;
            (r, batch)
        })
        .collect();
    let mut gone = Vec::new();
    for (event, d) in events.into_iter().zip(dest) {
        match d {
            Some(i) => out[i as usize].1.events.push(event),
            None => gone.push(event),
        }
    }
    ack_events(&gone);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LogRecord, Resource};

    fn processor(steps: &str) -> Processor {
        let src = format!(
            "source app = files {{ include = [\"/none/*.log\"] }}\nsink out = console {{}}\n{steps}\nroute {{ else => out }}\n"
        );
        match crate::lang::load(&src) {
            Ok(p) => p.agent.processor,
            Err(d) => panic!("{}", crate::lang::render("t.ship", &src, &d)),
        }
    }

    fn event(body: &str) -> Event {
        Event::Log(LogRecord::new(body.into(), Arc::new(Resource::default())))
    }

    fn attrs(e: &Event) -> Vec<String> {
        let Event::Log(l) = e else { return vec![] };
        l.attributes.iter().map(|(k, _)| k.to_string()).collect()
    }

    #[test]
    fn a_failure_after_a_write_undoes_the_whole_step() {
        let p = processor("step s on app on_error keep {\n .a = 1\n .b = to_int!(.message)\n}");
        assert!(p.steps[0].snapshot, "a write precedes a fallible call");
        let mut e = event("not a number");
        assert_eq!(p.run_steps(&mut e, "app"), Ok(true));
        assert!(
            attrs(&e).is_empty(),
            "the write of .a was undone: {:?}",
            attrs(&e)
        );
        let mut ok = event("42");
        assert_eq!(p.run_steps(&mut ok, "app"), Ok(true));
        assert_eq!(attrs(&ok), ["a", "b"]);
    }

    #[test]
    fn a_step_failing_before_any_write_needs_no_copy_and_changes_nothing() {
        let p = processor("step s on app on_error keep {\n .b = to_int!(.message)\n .c = 2\n}");
        assert!(!p.steps[0].snapshot, "only the first statement may fail");
        let mut e = event("nope");
        assert_eq!(p.run_steps(&mut e, "app"), Ok(true));
        assert!(attrs(&e).is_empty(), "{:?}", attrs(&e));
        let aborting = processor("step s on app {\n .b = to_int!(.message)\n}");
        let mut e = event("nope");
        let err = aborting.run_steps(&mut e, "app");
        assert!(matches!(&err, Err(m) if m.contains("to_int")), "{err:?}");
    }

    #[test]
    fn each_output_batch_counts_the_bytes_of_its_own_events() {
        let src = "source app = files { include = [\"/none/*.log\"] }\nsink out = console {}\nstep s on app {\n .x = parse_json!(.message)\n}\nstep d on app { drop where .x.n == 0 }\nroute {\n .x.n == 1 => out stream \"one\"\n else => out stream \"other\"\n}\n";
        let mut p = match crate::lang::load(src) {
            Ok(p) => p.agent.processor,
            Err(d) => panic!("{}", crate::lang::render("t.ship", src, &d)),
        };
        let source: Arc<str> = Arc::from("app");
        let mut batch = EventBatch::from_source(&source, 4);
        for body in [
            r#"{"n":1}"#,
            r#"{"n":2,"s":"a longer string value"}"#,
            r#"{"n":0}"#,
            r#"{"n":1,"k":[1,2]}"#,
        ] {
            batch.push(event(body));
        }
        let out = p.process(batch);
        assert_eq!(out.len(), 2, "two streams");
        for (route, b) in &out {
            let expected: usize = b.events.iter().map(Event::size_hint).sum();
            assert_eq!(b.bytes, expected, "stream {}", route.stream);
        }
        let one = out
            .iter()
            .find(|(r, _)| &*r.stream == "one")
            .map(|(_, b)| b.len());
        assert_eq!(one, Some(2));

        // One destination: the batch's own vector, bytes of the events after the steps.
        let mut single = processor("step s on app { .x = parse_json!(.message) }");
        let mut batch = EventBatch::from_source(&source, 1);
        batch.push(event(r#"{"a":"b"}"#));
        let before = batch.bytes;
        let out = single.process(batch);
        let (_, b) = &out[0];
        assert_eq!(b.bytes, b.events[0].size_hint());
        assert!(b.bytes > before, "the parsed map counts");
    }
}
