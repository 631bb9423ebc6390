//! Live taps: copies of the events passing a point of the pipeline (a
//! source's output, a step's output, a sink's input) for `shipctl tail`.
//!
//! A [`TapRequest`] names components by glob, a filter in the pipeline
//! language and a rate limit; [`subscribe`] registers it and hands back a
//! [`Subscription`] whose bounded queue the reader drains. The pipeline calls
//! [`observe`] at every point: with nobody tapping that is one atomic load.
//! A tap never waits: when its queue is full the event is dropped for that
//! reader only and counted. This module must never block or slow the data
//! path, and never change an event.

use crate::event::{format_rfc3339, Event};
use crate::lang::diagnostics::Diagnostic;
use crate::lang::eval::{truthy, CExpr, Ctx};
use crate::lang::functions::to_json;
use crate::telemetry::{self, Metric};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::mpsc;

/// Where in the pipeline events are observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// What a source produced, before any step.
    Source,
    /// What a step let through.
    Step,
    /// What the router sent to a sink.
    Sink,
}

impl Point {
    pub fn as_str(self) -> &'static str {
        match self {
            Point::Source => "source",
            Point::Step => "step",
            Point::Sink => "sink",
        }
    }
}

/// One observed event, rendered for the reader.
#[derive(Debug, Clone)]
pub struct TappedEvent {
    pub component: Arc<str>,
    pub point: Point,
    pub source: String,
    /// The event as a JSON object.
    pub json: String,
}

/// What a reader asks for.
#[derive(Debug)]
pub struct TapRequest {
    /// Component globs; empty taps every sink's input (each event once,
    /// fully processed).
    pub components: Vec<glob::Pattern>,
    pub filter: Option<CExpr>,
    /// Events per second; 0 is unlimited.
    pub rate_per_second: u32,
    /// Queue length before events are dropped for this reader.
    pub queue: usize,
}

/// A filter or glob could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("`{0}` is not a component glob: {1}")]
    Glob(String, glob::PatternError),
    #[error("{0}")]
    Filter(String),
}

/// Compiles component globs.
pub fn globs(patterns: &[String]) -> Result<Vec<glob::Pattern>, TapError> {
    patterns
        .iter()
        .map(|p| glob::Pattern::new(p).map_err(|e| TapError::Glob(p.clone(), e)))
        .collect()
}

/// Compiles a `--where` condition against the running pipeline's sources.
pub fn compile_filter(text: &str, sources: &[String]) -> Result<CExpr, TapError> {
    use crate::lang::compile::{Compiler, Scope};
    let render = |d: &[Diagnostic]| crate::lang::render("--where", text, d);
    let expr = crate::lang::parse::parse_expr(text).map_err(|d| TapError::Filter(render(&d)))?;
    let mut c = Compiler::default();
    let scope = Scope {
        sources,
        step_handles_errors: true,
        paths: true,
        records: false,
    };
    let typed = c.condition(&expr, &scope, true);
    if !c.diagnostics.is_empty() {
        return Err(TapError::Filter(render(&c.diagnostics)));
    }
    Ok(typed.expr)
}

/// Token bucket: `rate` events per second, bursts of up to `rate`.
#[derive(Debug)]
struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn admit(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A registered tap.
#[derive(Debug)]
struct Tap {
    id: u64,
    components: Vec<glob::Pattern>,
    filter: Option<CExpr>,
    limit: Option<Mutex<RateLimit>>,
    queue: mpsc::Sender<TappedEvent>,
    counts: Arc<TapCounts>,
}

/// What a tap could not deliver.
#[derive(Debug, Default)]
pub struct TapCounts {
    /// Dropped because the reader was too slow (queue full).
    pub dropped: AtomicU64,
    /// Skipped by the rate limit.
    pub rate_limited: AtomicU64,
}

impl Tap {
    fn matches(&self, point: Point, component: &str) -> bool {
        if self.components.is_empty() {
            return point == Point::Sink;
        }
        self.components.iter().any(|p| p.matches(component))
    }

    fn offer(&self, point: Point, component: &str, source: &str, event: &Event) {
        if let Some(filter) = &self.filter {
            // Conditions may call functions that edit their copy (`del`):
            // the pipeline's event is never touched.
            let mut copy = event.clone();
            let mut ctx = Ctx::new(&mut copy, source);
            if !filter.eval(&mut ctx).map(|v| truthy(&v)).unwrap_or(false) {
                return;
            }
        }
        if let Some(limit) = &self.limit {
            let admitted = limit.lock().unwrap_or_else(|p| p.into_inner()).admit();
            if !admitted {
                self.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let Ok(permit) = self.queue.try_reserve() else {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            DROPPED.inc();
            return;
        };
        permit.send(TappedEvent {
            component: Arc::from(component),
            point,
            source: source.to_owned(),
            json: event_json(event).to_string(),
        });
    }
}

/// How many taps are registered: the fast path reads only this.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static TAPS: LazyLock<RwLock<Vec<Arc<Tap>>>> = LazyLock::new(RwLock::default);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static DROPPED: LazyLock<Metric> =
    LazyLock::new(|| telemetry::counter("shipd_tap_events_dropped_total", &[("component", "tap")]));

/// Offers `events` passing `point` of `component` to every matching tap.
#[inline]
pub fn observe(point: Point, component: &str, source: &str, events: &[Event]) {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return;
    }
    observe_tapped(point, component, source, events);
}

#[cold]
fn observe_tapped(point: Point, component: &str, source: &str, events: &[Event]) {
    let taps = TAPS.read().unwrap_or_else(|p| p.into_inner());
    for tap in taps.iter().filter(|t| t.matches(point, component)) {
        for event in events {
            tap.offer(point, component, source, event);
        }
    }
}

/// A reader's end of a tap; dropping it unregisters the tap.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    pub events: mpsc::Receiver<TappedEvent>,
    pub counts: Arc<TapCounts>,
}

/// Registers a tap.
pub fn subscribe(request: TapRequest) -> Subscription {
    let (tx, rx) = mpsc::channel(request.queue.max(1));
    let counts = Arc::new(TapCounts::default());
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let limit = (request.rate_per_second > 0).then(|| {
        Mutex::new(RateLimit {
            rate: f64::from(request.rate_per_second),
            tokens: f64::from(request.rate_per_second),
            last: Instant::now(),
        })
    });
    let tap = Arc::new(Tap {
        id,
        components: request.components,
        filter: request.filter,
        limit,
        queue: tx,
        counts: Arc::clone(&counts),
    });
    let mut taps = TAPS.write().unwrap_or_else(|p| p.into_inner());
    taps.push(tap);
    ACTIVE.store(taps.len(), Ordering::Relaxed);
    Subscription {
        id,
        events: rx,
        counts,
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut taps = TAPS.write().unwrap_or_else(|p| p.into_inner());
        taps.retain(|t| t.id != self.id);
        ACTIVE.store(taps.len(), Ordering::Relaxed);
    }
}

/// Taps currently registered.
pub fn active() -> usize {
    ACTIVE.load(Ordering::Relaxed)
}

/// An event as a JSON object: logs with timestamp, severity, message (body),
/// attributes and resource; metrics with name, kind, unit, value, labels.
pub fn event_json(event: &Event) -> serde_json::Value {
    let map = |attrs: &[(crate::event::Str, crate::event::Value)]| {
        serde_json::Value::Object(
            attrs
                .iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        )
    };
    match event {
        Event::Log(log) => serde_json::json!({
            "timestamp": format_rfc3339(log.time_unix_nano as i64),
            "severity": log.severity_text,
            "message": to_json(&log.body),
            "attributes": map(&log.attributes),
            "resource": map(&log.resource.attributes),
        }),
        Event::Metric(m) => serde_json::json!({
            "timestamp": format_rfc3339(m.time_unix_nano as i64),
            "name": m.name,
            "kind": m.kind.name(),
            "unit": m.unit,
            "value": m.value,
            "labels": map(&m.labels),
            "resource": map(&m.resource.attributes),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LogRecord, Resource, Value};

    fn log(body: &str, level: &str) -> Event {
        let mut r = LogRecord::new(Value::String(body.into()), Arc::new(Resource::default()));
        r.attributes
            .push(("level".into(), Value::String(level.into())));
        Event::Log(r)
    }

    // One test drives the global registry, so parallel unit tests cannot
    // see each other's taps.
    #[test]
    fn taps_filter_limit_drop_and_unregister() {
        let source = "app_tap_test";
        let filter = compile_filter(r#".level == "error""#, &[]).unwrap();
        let mut sub = subscribe(TapRequest {
            components: globs(&["app_tap_*".into()]).unwrap(),
            filter: Some(filter),
            rate_per_second: 0,
            queue: 2,
        });
        assert!(active() >= 1);
        let events = [log("a", "info"), log("b", "error"), log("c", "error")];
        observe(Point::Source, "app_tap_test", source, &events);
        observe(Point::Source, "other", source, &events);
        let first = sub.events.try_recv().unwrap();
        assert_eq!(first.component.as_ref(), "app_tap_test");
        assert!(first.json.contains("\"message\":\"b\""), "{}", first.json);
        assert!(sub.events.try_recv().unwrap().json.contains("\"c\""));
        assert!(
            sub.events.try_recv().is_err(),
            "info and other components filtered out"
        );

        // A full queue drops for this reader and counts.
        observe(Point::Source, "app_tap_test", source, &events);
        observe(Point::Source, "app_tap_test", source, &events);
        assert_eq!(sub.counts.dropped.load(Ordering::Relaxed), 2);
        drop(sub);

        let limited = subscribe(TapRequest {
            components: globs(&["app_tap_*".into()]).unwrap(),
            filter: None,
            rate_per_second: 1,
            queue: 100,
        });
        observe(Point::Source, "app_tap_test", source, &events);
        assert_eq!(limited.counts.rate_limited.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_bad_filter_is_refused_with_a_diagnostic() {
        let err = compile_filter(".level ==", &[]).unwrap_err().to_string();
        assert!(err.contains("--where"), "{err}");
        assert!(compile_filter(r#"to_int(.x) > 3"#, &[]).is_ok());
    }
}
