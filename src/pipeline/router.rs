//! Routing: the last stage. Rules are tried in order and the first match
//! decides the sink and stream; the `else` rule is mandatory, so nothing
//! disappears unrouted. Computed stream names are normalised the way
//! OpenObserve stores them and capped (`max_streams`, then an overflow
//! stream), so a bad field cannot create thousands of streams.

use crate::event::{Event, Value};
use crate::lang::eval::{truthy, CExpr, Ctx, EvalError};
use crate::telemetry::{self, Metric};
use std::collections::HashSet;
use std::sync::Arc;

/// A destination: a sink (by index in the topology) and a stream.
#[derive(Debug, Clone)]
pub struct Route {
    pub sink: usize,
    pub stream: Arc<str>,
}

impl PartialEq for Route {
    /// Equal sinks and stream names; a fixed stream is one shared `Arc`, so
    /// the per-event comparison in the processor rarely reads the text.
    fn eq(&self, other: &Self) -> bool {
        self.sink == other.sink
            && (Arc::ptr_eq(&self.stream, &other.stream) || self.stream == other.stream)
    }
}

/// How a rule names its stream.
#[derive(Debug)]
pub enum StreamSpec {
    Fixed(Arc<str>),
    Computed(CExpr),
}

/// One routing rule; no condition means `else`.
#[derive(Debug)]
pub struct Rule {
    pub condition: Option<CExpr>,
    pub sink: usize,
    pub stream: StreamSpec,
}

/// Turns stream specs into capped, normalised names.
#[derive(Debug)]
struct StreamNamer {
    max_streams: usize,
    overflow: Arc<str>,
    computed: HashSet<Arc<str>>,
    overflowed: Metric,
}

/// Decides the destination of every event.
#[derive(Debug)]
pub struct Router {
    rules: Vec<Rule>,
    /// The destination of every event when the first rule needs no
    /// evaluation (no condition, a fixed stream).
    fixed: Option<Route>,
    dead_letter: Option<Rule>,
    namer: StreamNamer,
    unrouted: Metric,
}

impl Router {
    pub fn new(
        rules: Vec<Rule>,
        dead_letter: Option<Rule>,
        max_streams: usize,
        overflow: &str,
    ) -> Self {
        let fixed = match rules.first() {
            Some(Rule {
                condition: None,
                sink,
                stream: StreamSpec::Fixed(stream),
            }) => Some(Route {
                sink: *sink,
                stream: Arc::clone(stream),
            }),
            _ => None,
        };
        Router {
            rules,
            fixed,
            dead_letter,
            namer: StreamNamer {
                max_streams,
                overflow: Arc::from(normalize_stream_name(overflow)),
                computed: HashSet::new(),
                overflowed: telemetry::counter(
                    "shipd_stream_overflow_total",
                    &[("component", "router")],
                ),
            },
            unrouted: telemetry::counter(
                "shipd_events_dropped_total",
                &[("component", "router"), ("reason", "step_failed")],
            ),
        }
    }

    /// A router sending everything to one sink and stream.
    pub fn single(sink: usize, stream: &str) -> Self {
        let rule = Rule {
            condition: None,
            sink,
            stream: StreamSpec::Fixed(Arc::from(normalize_stream_name(stream))),
        };
        Router::new(vec![rule], None, 100, "overflow")
    }
}

impl StreamNamer {
    fn name(&mut self, spec: &StreamSpec, ctx: &mut Ctx) -> Arc<str> {
        let value = match spec {
            StreamSpec::Fixed(s) => return Arc::clone(s),
            StreamSpec::Computed(e) => e.eval(ctx),
        };
        let name = match value {
            Ok(v) => match crate::lang::functions::text_of(&v) {
                Some(t) => normalize_stream_name(&t),
                None if v == Value::Null => return Arc::clone(&self.overflow),
                None => normalize_stream_name(&crate::lang::functions::stringify(&v)),
            },
            Err(_) => return Arc::clone(&self.overflow),
        };
        if let Some(known) = self.computed.get(name.as_str()) {
            return Arc::clone(known);
        }
        if self.computed.len() >= self.max_streams {
            self.overflowed.inc();
            return Arc::clone(&self.overflow);
        }
        let name: Arc<str> = Arc::from(name);
        self.computed.insert(Arc::clone(&name));
        name
    }
}

impl Router {
    /// The destination of an event: `Ok(None)` when no rule matches (only
    /// with a disabled `else` sink), `Err` with the located error when a
    /// rule's condition fails at run time: that is not "no match", the
    /// caller treats the event as failed.
    pub fn route(&mut self, event: &mut Event, source: &str) -> Result<Option<Route>, String> {
        let mut ctx = Ctx::new(event, source);
        let mut chosen = None;
        for (i, rule) in self.rules.iter().enumerate() {
            let hit = match &rule.condition {
                None => true,
                Some(c) => match c.eval(&mut ctx) {
                    Ok(v) => truthy(&v),
                    Err(e) => return Err(route_error(&e)),
                },
            };
            if hit {
                chosen = Some(i);
                break;
            }
        }
        let Some(rule) = chosen.map(|i| &self.rules[i]) else {
            return Ok(None);
        };
        let stream = self.namer.name(&rule.stream, &mut ctx);
        Ok(Some(Route {
            sink: rule.sink,
            stream,
        }))
    }

    /// Where every event goes, when that needs no evaluation (the first
    /// rule is an unconditional one to a fixed stream): the same as
    /// [`Router::route`] gives each event then.
    pub fn fixed(&self) -> Option<&Route> {
        self.fixed.as_ref()
    }

    /// Whether failed events have somewhere to go.
    pub fn has_dead_letter(&self) -> bool {
        self.dead_letter.is_some()
    }

    /// The destination of an event whose step failed: the `dead_letter`
    /// rule when there is one (with `shipd.error` set), else none (counted).
    pub fn dead_letter(&mut self, event: &mut Event, source: &str, error: &str) -> Option<Route> {
        let Some(rule) = &self.dead_letter else {
            self.unrouted.inc();
            return None;
        };
        if let Event::Log(log) = event {
            log.attributes
                .push(("shipd.error".into(), Value::String(error.to_owned().into())));
        }
        let mut ctx = Ctx::new(event, source);
        let stream = self.namer.name(&rule.stream, &mut ctx);
        Some(Route {
            sink: rule.sink,
            stream,
        })
    }
}

/// A route condition's failure, located when the expression knows its place.
#[cold]
fn route_error(e: &EvalError) -> String {
    match e.1 {
        Some(_) => format!("{} (route condition)", e.located()),
        None => format!("{} in a route condition", e.0),
    }
}

/// OpenObserve's stream-name rule: runs of characters outside
/// `[a-zA-Z0-9_:]` become one `_`, and the name is lowercased.
pub fn normalize_stream_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            out.push(c.to_ascii_lowercase());
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    if out.is_empty() {
        out.push_str("default");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event::Log(crate::event::LogRecord::new(
            Value::Null,
            Arc::new(crate::event::Resource::default()),
        ))
    }

    #[test]
    fn only_an_unconditional_first_rule_to_a_fixed_stream_fixes_every_route() {
        let mut single = Router::single(2, "Web-Logs");
        let fixed = single.fixed().cloned();
        let routed = single.route(&mut event(), "app");
        assert_eq!(routed, Ok(fixed.clone()), "the same destination");
        assert_eq!(fixed.map(|r| r.stream), Some(Arc::from("web_logs")));

        let conditional = Rule {
            condition: Some(CExpr::Const(Value::Bool(false))),
            sink: 0,
            stream: StreamSpec::Fixed(Arc::from("a")),
        };
        let computed = Rule {
            condition: None,
            sink: 0,
            stream: StreamSpec::Computed(CExpr::Source),
        };
        assert!(Router::new(vec![conditional], None, 10, "o")
            .fixed()
            .is_none());
        assert!(Router::new(vec![computed], None, 10, "o").fixed().is_none());
    }

    #[test]
    fn stream_names_are_normalised_like_openobserve() {
        assert_eq!(normalize_stream_name("Logs-Web.01"), "logs_web_01");
        assert_eq!(normalize_stream_name("a  -- b"), "a_b");
        assert_eq!(normalize_stream_name("k8s:pods"), "k8s:pods");
        assert_eq!(normalize_stream_name(""), "default");
    }
}
