//! Metric emission from steps: `count(SOURCE, "name", {labels}, by: n)`,
//! `observe(SOURCE, "name", value, {labels}, buckets: [...])` and
//! `set_gauge(SOURCE, "name", value, {labels})`.
//!
//! Checked when the pipeline loads: the call stands in a step, the first
//! argument names a declared `log_metrics` source, the metric name is a
//! literal used with one kind (and one set of buckets), label keys are
//! literal, label values can only be strings, values only numbers. Compiled to an [`Emission`] that records
//! into the source's [`MetricStore`] at run time: a side effect that leaves
//! the event as it is and is never undone (a later `drop`, or a failure
//! after it in the same step, does not take the point back).

use super::ast::{Arg, Expr, ExprKind, Ident, Lit, UnOp};
use super::compile::{Compiler, Scope, Typed};
use super::diagnostics::{suggest, Diagnostic, Span};
use super::eval::{CExpr, Ctx, EvalError};
use super::functions::text_of;
use super::types::Ty;
use crate::event::{unix_nanos, Value};
use crate::sources::log_metrics::{
    Instrument, KeysId, MetricId, MetricStore, Update, DEFAULT_BUCKETS,
};
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::SystemTime;

/// The names of the emission calls.
pub const NAMES: [&str; 3] = ["count", "observe", "set_gauge"];

/// Which call it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Count,
    Observe,
    SetGauge,
}

/// One compiled emission call.
#[derive(Debug)]
pub struct Emission {
    store: Arc<MetricStore>,
    metric: MetricId,
    keys: KeysId,
    /// Label keys, sorted, for run-time errors.
    key_names: Box<[String]>,
    /// Label value expressions, in the order of `key_names`.
    labels: Vec<CExpr>,
    /// The increment, observation or gauge value; `None` counts one.
    value: Option<CExpr>,
    call: Call,
}

impl Emission {
    /// Records the point; fails only on a value that is not a number or a
    /// label value that is not a string (never when the checker knew both).
    pub fn run(&self, ctx: &mut Ctx) -> Result<(), EvalError> {
        let value = match &self.value {
            Some(e) => match e.eval(ctx)? {
                Value::Int(i) => i as f64,
                Value::Float(f) => f,
                v => {
                    return Err(EvalError::new(format!(
                        "the value of a metric must be a number, got {}",
                        Ty::of(&v).describe()
                    )))
                }
            },
            None => 1.0,
        };
        let mut values: SmallVec<[Value; 4]> = SmallVec::with_capacity(self.labels.len());
        for e in &self.labels {
            values.push(e.eval(ctx)?);
        }
        let mut texts: SmallVec<[std::borrow::Cow<str>; 4]> = SmallVec::with_capacity(values.len());
        for (key, v) in self.key_names.iter().zip(&values) {
            match text_of(v) {
                Some(t) => texts.push(t),
                None => {
                    return Err(EvalError::new(format!(
                        "label `{key}` must be a string, got {}",
                        Ty::of(v).describe()
                    )))
                }
            }
        }
        let refs: SmallVec<[&str; 4]> = texts.iter().map(|t| t.as_ref()).collect();
        let update = match self.call {
            Call::Count => Update::Add(value),
            Call::Observe => Update::Observe(value),
            Call::SetGauge => Update::Set(value),
        };
        self.store
            .record(self.metric, self.keys, &refs, update, || {
                unix_nanos(SystemTime::now())
            });
        Ok(())
    }
}

/// Whether a metric name reads as one (Prometheus and OpenObserve alike).
fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parameters of each call, in positional order.
fn params(call: Call) -> &'static [&'static str] {
    match call {
        Call::Count => &["source", "name", "labels", "by"],
        Call::Observe => &["source", "name", "value", "labels", "buckets"],
        Call::SetGauge => &["source", "name", "value", "labels"],
    }
}

fn signature(call: Call) -> &'static str {
    match call {
        Call::Count => "count(SOURCE, \"name\", [{ label: string, ... }], [by: number])",
        Call::Observe => {
            "observe(SOURCE, \"name\", value: number, [{ label: string, ... }], [buckets: [bounds]])"
        }
        Call::SetGauge => "set_gauge(SOURCE, \"name\", value: number, [{ label: string, ... }])",
    }
}

fn error(c: &mut Compiler, span: Span, msg: impl Into<String>, hint: impl Into<String>) {
    c.diagnostics.push(Diagnostic::new(span, msg).hint(hint));
}

fn nothing() -> Typed {
    Typed {
        expr: CExpr::Const(Value::Null),
        ty: Ty::NULL,
        may_fail: false,
    }
}

/// A number literal, negative ones included.
fn number_literal(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Lit(Lit::Int(i)) => Some(*i as f64),
        ExprKind::Lit(Lit::Float(f)) => Some(*f),
        ExprKind::Unary(UnOp::Neg, inner) => number_literal(inner).map(|n| -n),
        _ => None,
    }
}

/// The bounds of `buckets: [...]`: number literals, strictly increasing.
fn buckets(c: &mut Compiler, e: Option<&Expr>) -> Option<Box<[f64]>> {
    let Some(e) = e else {
        return Some(DEFAULT_BUCKETS.into());
    };
    let hint = "write increasing numbers, e.g. buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]";
    let ExprKind::Array(items) = &e.kind else {
        error(c, e.span, "`buckets` must be a list of numbers", hint);
        return None;
    };
    let mut bounds = Vec::with_capacity(items.len());
    for item in items {
        match number_literal(item) {
            Some(b) if b.is_finite() && bounds.last().is_none_or(|last| *last < b) => {
                bounds.push(b)
            }
            Some(_) => {
                error(
                    c,
                    item.span,
                    "bucket bounds must be finite and strictly increasing",
                    hint,
                );
                return None;
            }
            None => {
                error(
                    c,
                    item.span,
                    "a bucket bound must be a number literal",
                    hint,
                );
                return None;
            }
        }
    }
    if bounds.is_empty() {
        error(c, e.span, "`buckets` needs at least one bound", hint);
        return None;
    }
    Some(bounds.into())
}

/// Compiles an emission call (`name` is one of [`NAMES`]).
pub fn compile(
    c: &mut Compiler,
    name: &Ident,
    args: &[Arg],
    span: Span,
    scope: &Scope,
    handled: bool,
) -> Typed {
    let call = match name.name.as_str() {
        "count" => Call::Count,
        "observe" => Call::Observe,
        _ => Call::SetGauge,
    };
    if !scope.records {
        error(
            c,
            span,
            format!("`{}` records a metric: only a step can", name.name),
            "move the call into a step",
        );
        return nothing();
    }
    let names = params(call);
    let mut slots: Vec<Option<&Expr>> = vec![None; names.len()];
    let mut positional = 0;
    for a in args {
        let idx = match &a.name {
            Some(n) => match names.iter().position(|p| *p == n.name) {
                Some(i) => i,
                None => {
                    error(
                        c,
                        n.span,
                        format!("`{}` has no parameter `{}`", name.name, n.name),
                        format!("its parameters are: {}", names.join(", ")),
                    );
                    continue;
                }
            },
            None => {
                positional += 1;
                positional - 1
            }
        };
        match slots.get_mut(idx) {
            Some(slot) => *slot = Some(&a.value),
            None => error(
                c,
                a.value.span,
                format!("`{}` takes at most {} arguments", name.name, names.len()),
                signature(call),
            ),
        }
    }
    let required = if call == Call::Count { 2 } else { 3 };
    if slots[..required].iter().any(Option::is_none) {
        error(
            c,
            span,
            format!("`{}` needs at least {required} arguments", name.name),
            signature(call),
        );
        return nothing();
    }
    let (Some(source_arg), Some(name_arg)) = (slots[0], slots[1]) else {
        return nothing();
    };

    // The source: a bare name of a declared `log_metrics` source.
    let store = match &source_arg.kind {
        ExprKind::Name(n) => c
            .log_metrics
            .iter()
            .find(|s| s.source() == n)
            .map(Arc::clone)
            .ok_or(n.as_str()),
        _ => Err(""),
    };
    let store = match store {
        Ok(s) => Some(s),
        Err(n) => {
            let declared: Vec<String> = c
                .log_metrics
                .iter()
                .map(|s| s.source().to_owned())
                .collect();
            let hint = suggest(n, declared.iter().map(String::as_str), || {
                "declare one with `source NAME = log_metrics { every = 15s }` and name it here"
                    .into()
            });
            let msg = if scope.sources.iter().any(|s| s == n) {
                format!("`{n}` is not a `log_metrics` source; metrics are recorded into one")
            } else if n.is_empty() {
                format!(
                    "the first argument of `{}` names a `log_metrics` source",
                    name.name
                )
            } else {
                format!("`{n}` is not a declared `log_metrics` source")
            };
            error(c, source_arg.span, msg, hint);
            None
        }
    };

    // The metric's name: a literal.
    let metric_name = match &name_arg.kind {
        ExprKind::Lit(Lit::Str(s)) if valid_metric_name(s) => Some(s.clone()),
        ExprKind::Lit(Lit::Str(_)) => {
            error(
                c,
                name_arg.span,
                "a metric name is letters, digits, `_` and `:`, not starting with a digit",
                "e.g. \"http_requests_total\"",
            );
            None
        }
        _ => {
            error(
                c,
                name_arg.span,
                "a metric name must be a string literal",
                "series are told apart by labels: put what varies in the labels map",
            );
            None
        }
    };

    // The value.
    let mut may_fail = false;
    let value_slot = match call {
        Call::Count => slots[3],
        _ => slots[2],
    };
    let value = value_slot.map(|e| {
        let t = c.expr(e, scope, handled);
        if !t.ty.meets(Ty::NUMBER) {
            error(
                c,
                e.span,
                format!(
                    "the value of a metric must be a number, this is {}",
                    t.ty.describe()
                ),
                "convert it, e.g. `to_float(.request_time) ?? 0.0`",
            );
        }
        // A value that can only be something else was refused above.
        may_fail |= t.may_fail || (t.ty.meets(Ty::NUMBER) && t.ty.0 & !Ty::NUMBER.0 != 0);
        t.expr
    });

    // The labels: a map literal with string values.
    let labels_slot = match call {
        Call::Count => slots[2],
        _ => slots[3],
    };
    let mut labels: Vec<(String, CExpr)> = Vec::new();
    if let Some(e) = labels_slot {
        match &e.kind {
            ExprKind::Map(entries) => {
                for (key, v) in entries {
                    if labels.iter().any(|(k, _)| k == key) {
                        error(c, v.span, format!("label `{key}` is given twice"), "");
                        continue;
                    }
                    let t = c.expr(v, scope, handled);
                    if !t.ty.meets(Ty::TEXT) {
                        error(
                            c,
                            v.span,
                            format!("label values are strings, this is {}", t.ty.describe()),
                            "convert it, e.g. `to_string(.status)`",
                        );
                    }
                    may_fail |= t.may_fail || (t.ty.meets(Ty::TEXT) && t.ty.0 & !Ty::TEXT.0 != 0);
                    labels.push((key.clone(), t.expr));
                }
            }
            _ => error(
                c,
                e.span,
                "labels must be a map literal",
                "e.g. { status: to_string(.status), method: .method }",
            ),
        }
    }
    labels.sort_by(|a, b| a.0.cmp(&b.0));

    let instrument = match call {
        Call::Count => Some(Instrument::Counter),
        Call::SetGauge => Some(Instrument::Gauge),
        Call::Observe => buckets(c, slots[4]).map(Instrument::Histogram),
    };
    let (Some(store), Some(metric_name), Some(instrument)) = (store, metric_name, instrument)
    else {
        return nothing();
    };
    let metric = match store.declare(&metric_name, instrument) {
        Ok(id) => id,
        Err(e) => {
            error(
                c,
                name_arg.span,
                e.to_string(),
                "give each kind of metric its own name",
            );
            return nothing();
        }
    };
    let key_names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
    let keys = store.keys(&key_names);
    let (key_names, labels): (Vec<String>, Vec<CExpr>) = labels.into_iter().unzip();
    Typed {
        expr: CExpr::Emit(Box::new(Emission {
            store,
            metric,
            keys,
            key_names: key_names.into(),
            labels,
            value,
            call,
        })),
        ty: Ty::NULL,
        may_fail,
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{Event, LogRecord, Resource, Value};
    use std::sync::Arc;

    fn program(step: &str) -> crate::lang::Program {
        let src = format!(
            "source app = files {{ include = [\"/none/*.log\"] }}\nsource m = log_metrics {{}}\nsink out = console {{}}\n{step}\nroute {{ else => out }}\n"
        );
        crate::lang::load(&src)
            .unwrap_or_else(|d| panic!("{}", crate::lang::render("t.ship", &src, &d)))
    }

    fn event(body: &str) -> Event {
        Event::Log(LogRecord::new(body.into(), Arc::new(Resource::default())))
    }

    #[test]
    fn recording_leaves_the_event_as_it_is_and_a_later_drop_keeps_the_point() {
        let p = program(
            "step s on app {\n count(m, \"seen_total\", { body: to_string(.message) })\n drop\n}",
        );
        let mut e = event("hello");
        assert_eq!(
            p.agent.processor.run_steps(&mut e, "app"),
            Ok(false),
            "dropped"
        );
        let Event::Log(log) = &e else { panic!() };
        assert!(log.attributes.is_empty(), "{:?}", log.attributes);
        let points = p.log_metrics[0].points(1);
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].value, 1.0);
        assert_eq!(
            points[0].labels,
            vec![("body".into(), Value::from("hello"))]
        );
    }

    #[test]
    fn a_label_value_that_turns_out_not_to_be_text_fails_the_step_and_records_nothing() {
        let p = program(
            "step s on app {\n .n = parse_json!(.message)\n count!(m, \"n_total\", { n: .n })\n}",
        );
        let mut text = event("\"a\"");
        assert_eq!(p.agent.processor.run_steps(&mut text, "app"), Ok(true));
        let mut number = event("5");
        let err = p.agent.processor.run_steps(&mut number, "app");
        assert!(
            matches!(&err, Err(m) if m.contains("label `n` must be a string, got integer")),
            "{err:?}"
        );
        let points = p.log_metrics[0].points(1);
        assert_eq!(points.len(), 1, "only the text label was recorded");
    }

    #[test]
    fn only_a_step_records() {
        let src = "source app = files { include = [\"/none/*.log\"] }\nsource m = log_metrics {}\nsink out = console {}\nroute {\n count(m, \"c\") == null => out\n else => out\n}\n";
        let Err(d) = crate::lang::load(src) else {
            panic!("loaded")
        };
        assert!(
            d.iter()
                .any(|d| d.message == "`count` records a metric: only a step can"),
            "{d:?}"
        );
    }

    #[test]
    fn an_emission_whose_types_are_known_cannot_fail_and_refuses_a_bang() {
        let src = "source app = files { include = [\"/none/*.log\"] }\nsource m = log_metrics {}\nsink out = console {}\nstep s on app {\n count!(m, \"c\")\n}\nroute { else => out }\n";
        let Err(d) = crate::lang::load(src) else {
            panic!("loaded")
        };
        assert!(
            d.iter()
                .any(|d| d.message.contains("`count` cannot fail here")),
            "{d:?}"
        );
    }
}
