//! The processing stage: runs the compiled steps of the pipeline over each
//! event of a batch (in place, all-or-nothing per step), then routes it.
//! Dropped events are acknowledged at once, so checkpoints move past them.

use super::acks::ack_events;
use super::router::{Route, Router};
use super::step_meter::{StepMeter, Tally};
use crate::control::tap::{self, Point};
use crate::event::{Event, EventBatch, Value};
use crate::lang::ast::OnError;
use crate::lang::eval::{run_block, truthy, CExpr, CStmt, Ctx, EvalError, Origin};
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
    /// Where the step is declared: the place of a failure that no
    /// expression of it locates (a write into a non-map, say).
    pub origin: Arc<Origin>,
}

/// What a step did to an event.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Continue,
    Dropped,
    /// The step failed. Boxed: failures are rare, and a small outcome
    /// comes back in registers on every event's way.
    Failed(Box<Failure>),
}

/// A step's failure on one event: where and why (`error`), and what its
/// `on_error` decided follows (`Abort`: the event leaves the pipeline).
#[derive(Debug, PartialEq)]
pub struct Failure {
    pub error: String,
    pub then: OnError,
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
        match result {
            Ok(_) if dropped => Outcome::Dropped,
            Ok(_) => Outcome::Continue,
            Err(e) => self.failed(event, original, e),
        }
    }

    /// The failure path of [`Step::apply`], kept out of its way: undoes
    /// the step's writes, tags the event if `on_error tag`.
    #[cold]
    #[inline(never)]
    fn failed(&self, event: &mut Event, original: Option<Event>, e: EvalError) -> Outcome {
        let error = self.locate(e);
        if let Some(original) = original {
            *event = original;
        }
        if self.on_error == OnError::Tag {
            if let Event::Log(log) = event {
                log.attributes
                    .push(("shipd.error".into(), Value::String(error.as_str().into())));
            }
        }
        Outcome::Failed(Box::new(Failure {
            error,
            then: self.on_error,
        }))
    }

    /// The error with its place in the file: the failing expression's, else
    /// the step's own.
    fn locate(&self, e: EvalError) -> String {
        match e.1 {
            Some(_) => e.located(),
            None => format!("{}: {} in step `{}`", self.origin.at, e.0, self.name),
        }
    }
}

/// Steps plus router.
#[derive(Debug)]
pub struct Processor {
    pub steps: Vec<Step>,
    pub router: Router,
    /// Counters and log limit of each step, by index in `steps`.
    meters: Vec<StepMeter>,
    /// The router's failures (route conditions failing at run time).
    route_meter: StepMeter,
    /// `shipd_events_out_total` of each source seen, found per batch.
    source_out: Vec<(Arc<str>, Metric)>,
    events_in: Metric,
    events_out: Metric,
    dropped: Metric,
    failed: Metric,
    router_in: Metric,
    router_out: Metric,
}

impl Processor {
    pub fn new(steps: Vec<Step>, router: Router) -> Self {
        let pipeline = |name| telemetry::counter(name, &[("component", "pipeline")]);
        let router_count = |name| telemetry::counter(name, &[("component", "router")]);
        Processor {
            meters: steps.iter().map(|s| StepMeter::new(&s.name)).collect(),
            route_meter: StepMeter::new("router"),
            steps,
            router,
            source_out: Vec::new(),
            events_in: pipeline("shipd_events_in_total"),
            events_out: pipeline("shipd_events_out_total"),
            dropped: telemetry::counter(
                "shipd_events_dropped_total",
                &[("component", "pipeline"), ("reason", "drop")],
            ),
            failed: pipeline("shipd_events_failed_total"),
            router_in: router_count("shipd_events_in_total"),
            router_out: router_count("shipd_events_out_total"),
        }
    }

    /// Runs every applicable step; `Err` carries the failure of an aborting
    /// step. Counts nothing: for tests of the pipeline.
    pub fn run_steps(&self, event: &mut Event, source: &str) -> Result<bool, String> {
        let steps: Vec<(usize, &Step)> = self
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.applies_to(source))
            .collect();
        let mut tally = vec![Tally::default(); steps.len()];
        run_applicable(&steps, &mut tally, event, source).map_err(|(_, e)| e)
    }

    /// The `shipd_events_out_total` counter of a source.
    fn source_out(&mut self, source: &Arc<str>) -> &Metric {
        let i = match self.source_out.iter().position(|(s, _)| s == source) {
            Some(i) => i,
            None => {
                let metric = telemetry::counter("shipd_events_out_total", &[("component", source)]);
                self.source_out.push((Arc::clone(source), metric));
                self.source_out.len() - 1
            }
        };
        &self.source_out[i].1
    }

    /// Processes a batch into per-destination batches. When every event
    /// goes to one destination (the common case) the batch's own vector is
    /// passed on, so events are not moved again. Counters move once per
    /// batch; each step failure is logged through its step's limit.
    pub fn process(&mut self, batch: EventBatch) -> Vec<(Route, EventBatch)> {
        let source = Arc::clone(&batch.source);
        let mut events = batch.events;
        let received = events.len() as u64;
        crate::memory::note_work(batch.bytes);
        self.source_out(&source).add(received);
        self.events_in.add(received);
        // Every event of a batch comes from one source: pick its steps once.
        let steps: Vec<(usize, &Step)> = self
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.applies_to(&source))
            .collect();
        let mut tally = vec![Tally::default(); steps.len()];
        let dead_letter = self.router.has_dead_letter();
        // When the first rule needs no evaluation, every passing event goes
        // there: no route is evaluated (or its stream cloned) per event.
        let fixed = self.router.fixed().cloned();
        let (mut dropped, mut failed) = (0u64, 0u64);
        let mut placement = Placement::with_capacity(events.len());
        // Route conditions that failed at run time (not "no match").
        let mut route_failures = Tally::default();
        for event in events.iter_mut() {
            let outcome = run_applicable(&steps, &mut tally, event, &source);
            let route = match outcome {
                Ok(true) => match &fixed {
                    Some(route) => {
                        placement.place(route, event);
                        continue;
                    }
                    None => match self.router.route(event, &source) {
                        Ok(route) => route,
                        Err(e) => {
                            route_failures.error(&e, OnError::Abort);
                            route_failures.failed += 1;
                            let meter = &self.route_meter;
                            failed_event(&mut self.router, meter, "router", event, &source, e)
                        }
                    },
                },
                Ok(false) => {
                    dropped += 1;
                    None
                }
                Err((i, e)) => {
                    failed += 1;
                    let (meter, step) = (&self.meters[i], &self.steps[i].name);
                    failed_event(&mut self.router, meter, step, event, &source, e)
                }
            };
            match route {
                Some(route) => placement.place(&route, event),
                None => placement.gone(),
            }
        }
        Tally::settle(&mut tally, received);
        for ((i, step), t) in steps.iter().zip(&tally) {
            self.meters[*i].record(&step.name, &source, t, dead_letter);
        }
        self.route_meter
            .record("router", &source, &route_failures, dead_letter);
        let passed = received - dropped - failed;
        let routed = placement.routed();
        self.events_out.add(passed);
        self.dropped.add(dropped);
        self.failed.add(failed);
        self.router_in.add(passed + failed);
        self.router_out.add(routed);
        placement.split(events, source)
    }
}

/// Where an event that failed in `component` (a step, or the router's
/// conditions) goes: the `dead_letter` route, else nowhere (counted as
/// lost, its error attached so a tail of the component shows why).
fn failed_event(
    router: &mut Router,
    meter: &StepMeter,
    component: &str,
    event: &mut Event,
    source: &str,
    error: String,
) -> Option<Route> {
    let route = router.dead_letter(event, source, &error);
    if route.is_none() {
        meter.lost();
        if let Event::Log(log) = event {
            log.attributes
                .push(("shipd.error".into(), Value::String(error.into())));
        }
    }
    tap::observe(Point::Step, component, source, std::slice::from_ref(event));
    route
}

/// Runs `steps` (those that apply to the event's source) in order, tallying
/// the events each drops or fails (what passes is counted per batch, by
/// [`Tally::settle`]). `Err` carries the index of an aborting step and its
/// failure.
fn run_applicable(
    steps: &[(usize, &Step)],
    tally: &mut [Tally],
    event: &mut Event,
    source: &str,
) -> Result<bool, (usize, String)> {
    for ((i, step), t) in steps.iter().zip(tally.iter_mut()) {
        match step.apply(event, source) {
            Outcome::Continue => {}
            Outcome::Dropped => {
                t.dropped += 1;
                return Ok(false);
            }
            Outcome::Failed(failure) => {
                let Failure { error, then } = *failure;
                t.error(&error, then);
                match then {
                    OnError::Abort => {
                        t.failed += 1;
                        return Err((*i, error));
                    }
                    OnError::Drop => {
                        t.dropped += 1;
                        return Ok(false);
                    }
                    OnError::Keep | OnError::Tag => {}
                }
            }
        }
        tap::observe(Point::Step, &step.name, source, std::slice::from_ref(event));
    }
    Ok(true)
}

/// Where each event of a batch goes, and the bytes of each destination's
/// events, counted while each event is still in cache (a second pass over
/// a batch of parsed events misses it).
struct Placement {
    routes: Vec<(Route, usize)>,
    /// Index into `routes` per event; `None` when the event is gone.
    dest: Vec<Option<u32>>,
    /// How many events are gone.
    gone: usize,
}

impl Placement {
    fn with_capacity(events: usize) -> Self {
        Placement {
            routes: Vec::new(),
            dest: Vec::with_capacity(events),
            gone: 0,
        }
    }

    /// The next event goes to `route` (its stream is cloned only the first
    /// time the route is seen).
    fn place(&mut self, route: &Route, event: &Event) {
        let i = match self.routes.iter().position(|(r, _)| r == route) {
            Some(i) => i,
            None => {
                self.routes.push((route.clone(), 0));
                self.routes.len() - 1
            }
        };
        self.routes[i].1 += event.size_hint();
        self.dest.push(Some(i as u32));
    }

    /// The next event goes nowhere (dropped, or lost).
    fn gone(&mut self) {
        self.dest.push(None);
        self.gone += 1;
    }

    fn routed(&self) -> u64 {
        (self.dest.len() - self.gone) as u64
    }

    /// Moves the processed events into one batch per destination (each
    /// with the bytes of its events); events without one are acknowledged.
    fn split(self, events: Vec<Event>, source: Arc<str>) -> Vec<(Route, EventBatch)> {
        let Placement {
            mut routes,
            dest,
            gone,
        } = self;
        if routes.len() == 1 && gone == 0 {
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

    fn error_of(e: &Event) -> Option<String> {
        let Event::Log(l) = e else { return None };
        l.attributes
            .iter()
            .find(|(k, _)| &**k == "shipd.error")
            .map(|(_, v)| crate::lang::functions::stringify(v))
    }

    #[test]
    fn a_dead_lettered_event_carries_file_line_column_and_expression_of_its_failure() {
        let src = "source app = files { include = [\"/none/*.log\"] }\nsink out = console {}\nsink dead = console {}\nstep ms_of_time on app {\n .seen = true\n .ms = (.time ?? \"none\") * 1000\n}\nroute {\n else => out\n dead_letter => dead\n}\n";
        let mut p = match crate::lang::load_file("pipelines/t.ship", src) {
            Ok(p) => p.agent.processor,
            Err(d) => panic!("{}", crate::lang::render("t.ship", src, &d)),
        };
        let source: Arc<str> = Arc::from("app");
        let mut batch = EventBatch::from_source(&source, 1);
        batch.push(event("no time here"));
        let out = p.process(batch);
        assert_eq!(out.len(), 1);
        let (route, b) = &out[0];
        assert_eq!(route.sink, 1, "the dead_letter sink");
        assert_eq!(
            error_of(&b.events[0]).as_deref(),
            Some("pipelines/t.ship:6:8: arithmetic needs numbers, got string and integer in `(.time ?? \"none\") * 1000`")
        );
        assert!(
            !attrs(&b.events[0]).contains(&"seen".to_owned()),
            "the step was undone"
        );
    }

    #[test]
    fn a_route_condition_failing_at_run_time_dead_letters_the_event_instead_of_not_matching() {
        let rules = "route {\n (.n ?? 0) * 2 > 10 => out stream \"big\"\n else => out stream \"other\"\n dead_letter => dead\n}\n";
        let src = format!("source app = files {{ include = [\"/none/*.log\"] }}\nsink out = console {{}}\nsink dead = console {{}}\nstep s on app {{\n .n = parse_json!(.message).n\n}}\n{rules}");
        let mut p = match crate::lang::load_file("pipelines/r.ship", &src) {
            Ok(p) => p.agent.processor,
            Err(d) => panic!("{}", crate::lang::render("r.ship", &src, &d)),
        };
        let source: Arc<str> = Arc::from("app");
        let mut batch = EventBatch::from_source(&source, 3);
        for body in [r#"{"n":7}"#, r#"{"n":"many"}"#, r#"{"n":1}"#] {
            batch.push(event(body));
        }
        let out = p.process(batch);
        let stream_of = |name: &str| {
            out.iter()
                .find(|(r, _)| &*r.stream == name)
                .map(|(r, b)| (r.sink, b.len()))
        };
        assert_eq!(stream_of("big"), Some((0, 1)));
        assert_eq!(stream_of("other"), Some((0, 1)), "not the string one");
        let dead: Vec<&Event> = out
            .iter()
            .filter(|(r, _)| r.sink == 1)
            .flat_map(|(_, b)| &b.events)
            .collect();
        assert_eq!(dead.len(), 1);
        let error = error_of(dead[0]).unwrap_or_default();
        assert!(
            error.starts_with("pipelines/r.ship:8:2: ") && error.ends_with("(route condition)"),
            "{error}"
        );

        // Without a dead_letter route the event is lost, counted for the router.
        let mut lossy = processor("");
        lossy.router = Router::new(
            vec![super::super::router::Rule {
                condition: Some(CExpr::Fail("boom".into())),
                sink: 0,
                stream: super::super::router::StreamSpec::Fixed(Arc::from("x")),
            }],
            None,
            10,
            "overflow",
        );
        let before =
            telemetry::value("shipd_events_lost_total", "component=\"router\"").unwrap_or(0);
        let mut batch = EventBatch::from_source(&source, 1);
        batch.push(event("x"));
        assert!(lossy.process(batch).is_empty());
        let after =
            telemetry::value("shipd_events_lost_total", "component=\"router\"").unwrap_or(0);
        assert_eq!(after - before, 1);
    }

    #[test]
    fn a_failure_no_expression_locates_names_the_step_and_its_line() {
        let p = processor("step into_text on app {\n .timestamp = .message\n}");
        let mut e = event("a string body");
        let err = p.run_steps(&mut e, "app");
        assert!(
            matches!(&err, Err(m) if m.starts_with("pipeline:3:6: ") && m.ends_with("in step `into_text`")),
            "{err:?}"
        );
    }

    #[test]
    fn every_step_counts_in_out_dropped_and_failed_per_batch() {
        let src = "source app = files { include = [\"/none/*.log\"] }\nsink out = console {}\nstep counted_parse on app {\n .n = to_int!(.message)\n}\nstep counted_drop on app {\n drop where .n == 0\n}\nroute { else => out }\n";
        let mut p = match crate::lang::load(src) {
            Ok(p) => p.agent.processor,
            Err(d) => panic!("{}", crate::lang::render("t.ship", src, &d)),
        };
        // The steps apply to `app` only; this batch's source is another.
        let source: Arc<str> = Arc::from("counted_app");
        let mut other = EventBatch::from_source(&source, 1);
        other.push(event("y"));
        p.process(other);
        let out = p.process(app_batch(&["1", "0", "x", "2", "0"]));
        let delivered: usize = out.iter().map(|(_, b)| b.len()).sum();
        assert_eq!(delivered, 2);
        assert_eq!(step_counts("counted_parse"), (5, 4, 0, 1));
        assert_eq!(
            telemetry::value("shipd_events_lost_total", "component=\"counted_parse\""),
            Some(1),
            "no dead_letter route"
        );
        assert_eq!(step_counts("counted_drop"), (4, 2, 2, 0));
        assert_eq!(
            telemetry::value("shipd_events_out_total", "component=\"counted_app\""),
            Some(1),
            "source OUT"
        );
    }

    /// A batch of source `app`, one event per body.
    fn app_batch(bodies: &[&str]) -> EventBatch {
        let source: Arc<str> = Arc::from("app");
        let mut batch = EventBatch::from_source(&source, bodies.len());
        for body in bodies {
            batch.push(event(body));
        }
        batch
    }

    /// IN, OUT, DROPPED (by `drop`) and FAILED of a step, as its telemetry
    /// counts them (`u64::MAX` for a count that is missing).
    fn step_counts(step: &str) -> (u64, u64, u64, u64) {
        let get = |name: &str, labels: &str| telemetry::value(name, labels).unwrap_or(u64::MAX);
        let c = format!("component=\"{step}\"");
        (
            get("shipd_events_in_total", &c),
            get("shipd_events_out_total", &c),
            get(
                "shipd_events_dropped_total",
                &format!("{c},reason=\"drop\""),
            ),
            get("shipd_events_failed_total", &c),
        )
    }

    #[test]
    fn on_error_drop_and_keep_are_counted_so_each_step_takes_in_what_the_last_let_out() {
        let src = "source app = files { include = [\"/none/*.log\"] }\nsink out = console {}\nstep chain_keep on app on_error keep {\n .n = to_int!(.message)\n}\nstep chain_drop on app on_error drop {\n .m = to_int!(.message) * 2\n}\nstep chain_last on app {\n drop where .m == 4\n}\nroute { else => out }\n";
        let mut p = match crate::lang::load(src) {
            Ok(p) => p.agent.processor,
            Err(d) => panic!("{}", crate::lang::render("t.ship", src, &d)),
        };
        assert!(
            p.router.fixed().is_some(),
            "an else-only route needs no evaluation"
        );
        let out = p.process(app_batch(&["1", "x", "2", "y", "3"]));
        let delivered: usize = out.iter().map(|(_, b)| b.len()).sum();
        assert_eq!(delivered, 2, "1 and 3");
        let errors = |step: &str| {
            telemetry::value("shipd_step_errors_total", &format!("component=\"{step}\""))
        };
        assert_eq!(step_counts("chain_keep"), (5, 5, 0, 0), "kept on failure");
        assert_eq!(errors("chain_keep"), Some(2));
        assert_eq!(
            step_counts("chain_drop"),
            (5, 3, 2, 0),
            "dropped on failure"
        );
        assert_eq!(errors("chain_drop"), Some(2));
        assert_eq!(step_counts("chain_last"), (3, 2, 1, 0));
        assert_eq!(errors("chain_last"), Some(0));
    }

    #[test]
    fn a_fixed_route_carries_no_empty_batch_when_every_event_is_dropped() {
        let mut p = processor("step s on app { drop }");
        let source: Arc<str> = Arc::from("app");
        let mut batch = EventBatch::from_source(&source, 2);
        batch.push(event("a"));
        batch.push(event("b"));
        assert!(p.process(batch).is_empty());
    }

    #[test]
    fn a_long_failing_expression_is_named_on_one_line_and_shortened() {
        let p = processor(
            "step long on app {\n .n = to_int!(\n   .message\n ) + to_int!(.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ?? \"0\") + to_int!(.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb ?? \"0\")\n}",
        );
        let mut e = event("seven");
        let err = p.run_steps(&mut e, "app");
        let Err(message) = err else { panic!("{err:?}") };
        assert!(
            message.starts_with("pipeline:4:7: to_int: "),
            "the innermost failing call: {message}"
        );
        assert!(message.ends_with("in `to_int!( .message )`"), "{message}");

        let long = "a".repeat(100);
        let p = processor(&format!(
            "step long on app {{\n .n = to_int!((.message ?? \"x\") + \"{long}\")\n}}"
        ));
        let mut e = event("seven");
        let Err(message) = p.run_steps(&mut e, "app") else {
            panic!("not a number")
        };
        let text = message.split_once(" in `").map(|(_, t)| t).unwrap_or("");
        let shown = format!("to_int!((.message ?? \"x\") + \"{}…`", &long[..51]);
        assert_eq!(text, shown, "80 characters and an ellipsis: {message}");
    }
}
