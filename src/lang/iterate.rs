//! Iteration: `map_values`, `map_keys` and `filter` run a closure (`|v| ...`,
//! `|k, v| ...`) once per element of a map or an array. This module checks
//! their calls — arity, the closure's parameters bound as locals of its
//! body, a boolean `filter` closure, a string `map_keys` closure — and runs
//! them. A closure computes a value: it never writes the event (no
//! assignment, `drop` or `del` inside), and it exists only as the last
//! argument of these functions. The work is bounded by the size of the
//! value: a closure cannot call itself.

use super::ast::{Arg, Expr, ExprKind, Ident};
use super::compile::{Compiler, Scope, Typed};
use super::diagnostics::Span;
use super::eval::{truthy, CExpr, Ctx, EvalError, EvalResult};
use super::functions::text_of;
use super::types::Ty;
use crate::event::{Map, Str, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IterOp {
    /// Each value replaced by what the closure yields; keys (indexes) kept.
    MapValues,
    /// Each key replaced by what the closure yields (a string); maps only.
    MapKeys,
    /// Only the elements for which the closure yields `true`.
    Filter,
}

impl IterOp {
    fn of(name: &str) -> Option<IterOp> {
        match name {
            "map_values" => Some(IterOp::MapValues),
            "map_keys" => Some(IterOp::MapKeys),
            "filter" => Some(IterOp::Filter),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IterOp::MapValues => "map_values",
            IterOp::MapKeys => "map_keys",
            IterOp::Filter => "filter",
        }
    }

    /// What its first argument may be.
    fn accepts(self) -> Ty {
        match self {
            IterOp::MapKeys => Ty::MAP,
            _ => Ty::MAP.or(Ty::ARRAY),
        }
    }

    /// The call as it is written, for hints.
    fn usage(self) -> &'static str {
        match self {
            IterOp::MapValues => "map_values(VALUE, |v| ...) or map_values(VALUE, |k, v| ...); VALUE is a map or an array",
            IterOp::MapKeys => "map_keys(MAP, |k| ...) or map_keys(MAP, |k, v| ...); the closure yields the new key (a string)",
            IterOp::Filter => "filter(VALUE, |v| ...) or filter(VALUE, |k, v| ...); the closure yields a boolean",
        }
    }
}

/// A compiled `map_values`, `map_keys` or `filter` call.
#[derive(Debug)]
pub struct Iteration {
    op: IterOp,
    input: CExpr,
    /// The local slot of the parameter holding the key (of a map) or the
    /// index (of an array), when the closure names one.
    key: Option<usize>,
    /// The local slot of the parameter holding the element's value.
    value: Option<usize>,
    body: CExpr,
}

impl Compiler {
    /// Checks and compiles a call of an iteration function; `None` when
    /// `name` is not one.
    pub(super) fn iteration(
        &mut self,
        name: &Ident,
        abort: bool,
        args: &[Arg],
        span: Span,
        scope: &Scope,
        handled: bool,
    ) -> Option<Typed> {
        let op = IterOp::of(&name.name)?;
        let refused = Some(Typed {
            expr: CExpr::Const(Value::Null),
            ty: Ty::ANY,
            may_fail: false,
        });
        if abort {
            self.error(
                span,
                format!("`{}` cannot fail; remove the `!`", op.name()),
                "only fallible functions take `!`; a failure inside the closure is handled there",
            );
        }
        if let Some(named) = args.iter().find_map(|a| a.name.as_ref()) {
            self.error(
                named.span,
                format!("`{}` takes no named arguments", op.name()),
                op.usage(),
            );
            return refused;
        }
        let [input, closure] = args else {
            self.error(
                span,
                format!(
                    "`{}` takes 2 arguments (a value and a closure), found {}",
                    op.name(),
                    args.len()
                ),
                op.usage(),
            );
            return refused;
        };
        let input_t = self.expr(&input.value, scope, handled);
        if !input_t.ty.meets(op.accepts()) {
            self.error(
                input.value.span,
                format!(
                    "argument `value` of `{}` must be {}, this is {}",
                    op.name(),
                    op.accepts().describe(),
                    input_t.ty.describe()
                ),
                op.usage(),
            );
        }
        let ExprKind::Closure { params, body } = &closure.value.kind else {
            self.error(
                closure.value.span,
                format!("the second argument of `{}` must be a closure", op.name()),
                op.usage(),
            );
            return refused;
        };
        if params.is_empty() || params.len() > 2 {
            self.error(
                params_span(params, closure.value.span, body),
                format!(
                    "a `{}` closure takes 1 or 2 parameters, this one takes {}",
                    op.name(),
                    params.len()
                ),
                op.usage(),
            );
            return refused;
        }
        if let [a, b] = params.as_slice() {
            if a.name == b.name {
                self.error(
                    b.span,
                    format!("the closure has two parameters named `{}`", b.name),
                    "name the key and the value differently: `|k, v| ...`",
                );
                return refused;
            }
        }
        let container = Ty(input_t.ty.0 & op.accepts().0);
        let container = if container.0 == 0 {
            op.accepts()
        } else {
            container
        };
        let key_ty = if container == Ty::ARRAY {
            Ty::INT
        } else if container == Ty::MAP {
            Ty::STRING
        } else {
            Ty::STRING.or(Ty::INT)
        };
        let (key_param, value_param) = match (op, params.as_slice()) {
            (IterOp::MapKeys, [k]) => (Some(k), None),
            (_, [v]) => (None, Some(v)),
            (_, [k, v]) => (Some(k), Some(v)),
            _ => (None, None),
        };

        let facts_before = self.flow.clone();
        self.closure_depth += 1;
        self.enter_block();
        let key = key_param.map(|k| self.param(k, key_ty, scope.sources));
        let value = value_param.map(|v| self.param(v, Ty::ANY, scope.sources));
        let body_t = self.expr(body, scope, handled);
        self.leave_block();
        self.closure_depth -= 1;
        // the body may run any number of times, from the facts before it
        self.flow = facts_before;

        self.no_regex(&body_t, body.span);
        let (body_t, ty, yields_other) = match op {
            IterOp::MapValues => (body_t, container, false),
            IterOp::Filter => {
                let t = self.boolean(body_t, body, "a `filter` closure must yield a boolean");
                (t, container, false)
            }
            IterOp::MapKeys => {
                if !body_t.ty.meets(Ty::TEXT) {
                    self.error(
                        body.span,
                        format!(
                            "a `map_keys` closure must yield the new key, a string; this is {}",
                            body_t.ty.describe()
                        ),
                        "convert it with to_string(...)",
                    );
                }
                let other = body_t.ty.0 & !Ty::TEXT.0 != 0;
                (body_t, Ty::MAP, other)
            }
        };
        let may_fail = input_t.may_fail
            || body_t.may_fail
            || yields_other
            || input_t.ty.0 & !op.accepts().0 != 0;
        Some(Typed {
            expr: CExpr::Iterate(Box::new(Iteration {
                op,
                input: input_t.expr,
                key,
                value,
                body: body_t.expr,
            })),
            ty,
            may_fail,
        })
    }

    /// A closure anywhere but as the last argument of an iteration function.
    pub(super) fn misplaced_closure(&mut self, e: &Expr) -> Typed {
        self.error(
            e.span,
            "a closure can only be the last argument of map_values, map_keys or filter",
            "write e.g. `map_values(.http, |v| ...)`; elsewhere, compute the value directly",
        );
        Typed {
            expr: CExpr::Const(Value::Null),
            ty: Ty::ANY,
            may_fail: false,
        }
    }

    /// Refuses what would write the event from inside a closure (an
    /// assignment, `drop`, `del`): a closure only computes a value.
    pub(super) fn no_writes_in_closure(&mut self, span: Span, what: &str) {
        if self.closure_depth > 0 {
            self.error(
                span,
                format!("{what} is not allowed inside a closure"),
                "a closure computes a value for each element; change the event with the function's result, e.g. `.http = map_values(.http, |v| ...)`",
            );
        }
    }
}

/// From a closure's opening bar to its last parameter, so an arity error
/// points at the parameters and not at the whole body.
fn params_span(params: &[Ident], closure: Span, body: &Expr) -> Span {
    let end = match params.last() {
        Some(p) => p.span.end,
        None => (closure.start + 2).min(body.span.start),
    };
    Span::new(closure.start, end.max(closure.start + 1))
}

impl Iteration {
    pub fn has_effects(&self) -> bool {
        self.input.has_effects() || self.body.has_effects()
    }

    pub fn eval(&self, ctx: &mut Ctx) -> EvalResult {
        match self.input.eval(ctx)? {
            Value::Map(m) => self.over_map(m, ctx),
            Value::Array(a) if self.op != IterOp::MapKeys => self.over_array(a, ctx),
            other => Err(EvalError::new(format!(
                "{}: expects {}, got {}",
                self.op.name(),
                self.op.accepts().describe(),
                Ty::of(&other).describe()
            ))),
        }
    }

    /// Runs the body with `key` and `value` bound; returns its result and
    /// the value (moved into its slot and back, not copied).
    fn run(&self, ctx: &mut Ctx, key: impl FnOnce() -> Value, value: Value) -> (EvalResult, Value) {
        if let Some(slot) = self.key {
            bind(ctx, slot, key());
        }
        match self.value {
            Some(slot) => {
                bind(ctx, slot, value);
                let result = self.body.eval(ctx);
                let value = ctx.locals.get_mut(slot).map(std::mem::take);
                (result, value.unwrap_or_default())
            }
            None => (self.body.eval(ctx), value),
        }
    }

    fn over_map(&self, m: Map, ctx: &mut Ctx) -> EvalResult {
        let mut out: Vec<(Str, Value)> = Vec::with_capacity(m.len());
        for (k, v) in m {
            let (result, v) = self.run(ctx, || Value::String(k.clone()), v);
            let result = result?;
            match self.op {
                IterOp::MapValues => out.push((k, result)),
                IterOp::Filter => {
                    if truthy(&result) {
                        out.push((k, v));
                    }
                }
                IterOp::MapKeys => out.push((new_key(result)?, v)),
            }
        }
        // map_keys may give two entries one key: the later one wins
        Ok(Value::Map(Map::from_entries(out)))
    }

    fn over_array(&self, a: Vec<Value>, ctx: &mut Ctx) -> EvalResult {
        let mut out = Vec::with_capacity(a.len());
        for (i, v) in a.into_iter().enumerate() {
            let (result, v) = self.run(ctx, || Value::Int(i as i64), v);
            let result = result?;
            match self.op {
                IterOp::Filter => {
                    if truthy(&result) {
                        out.push(v);
                    }
                }
                _ => out.push(result),
            }
        }
        Ok(Value::Array(out))
    }
}

fn bind(ctx: &mut Ctx, slot: usize, v: Value) {
    if ctx.locals.len() <= slot {
        ctx.locals.resize(slot + 1, Value::Null);
    }
    ctx.locals[slot] = v;
}

/// The key a `map_keys` closure yielded.
fn new_key(v: Value) -> Result<Str, EvalError> {
    match v {
        Value::String(s) => Ok(s),
        other => match text_of(&other) {
            Some(t) => Ok(t.as_ref().into()),
            None => Err(EvalError::new(format!(
                "map_keys: the closure must yield a string, got {}",
                Ty::of(&other).describe()
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, LogRecord, Resource};
    use crate::lang::parse::parse_expr;
    use std::sync::Arc;

    /// Compiles `src` as an expression of a step; the diagnostics' messages.
    fn compile(src: &str) -> (Typed, Vec<String>) {
        let e = parse_expr(src).unwrap_or_else(|d| panic!("{src}: {d:?}"));
        let mut c = Compiler::default();
        c.begin_step();
        let scope = Scope {
            sources: &["app".to_owned()],
            step_handles_errors: false,
            paths: true,
            records: true,
        };
        let t = c.expr(&e, &scope, false);
        (t, c.diagnostics.into_iter().map(|d| d.message).collect())
    }

    fn run(src: &str) -> EvalResult {
        let (t, errors) = compile(src);
        assert!(errors.is_empty(), "{src}: {errors:?}");
        let mut event = Event::Log(LogRecord::new(Value::Null, Arc::new(Resource::default())));
        let mut ctx = Ctx::new(&mut event, "app");
        t.expr.eval(&mut ctx)
    }

    fn assert_gives(src: &str, expected: &str) {
        assert_eq!(run(src), run(expected), "{src}");
    }

    fn refused(src: &str) -> Vec<String> {
        let (_, errors) = compile(src);
        assert!(!errors.is_empty(), "accepted: {src}");
        errors
    }

    #[test]
    fn map_values_replaces_the_values_of_a_map_and_keeps_its_keys() {
        assert_gives(
            r#"map_values({ "path": "/u?m=a@b.org", "status": 200 }, |v| if is_string(v) { redact(v, [email]) } else { v })"#,
            r#"{ "path": "/u?m=[REDACTED]", "status": 200 }"#,
        );
        assert_gives(
            r#"map_values({ "a": 1, "b": 2 }, |k, v| k + "=" + to_string(v))"#,
            r#"{ "a": "a=1", "b": "b=2" }"#,
        );
    }

    #[test]
    fn over_an_array_one_parameter_is_the_element_and_two_are_index_and_element() {
        assert_gives("map_values([1, 2, null], |x| (x ?? 0) * 2)", "[2, 4, 0]");
        assert_gives(r#"map_values(["a", "b"], |i, x| i)"#, "[0, 1]");
        assert_gives(
            "filter([3, -1, null, 5], |x| x != null and x > 0)",
            "[3, 5]",
        );
        assert_gives("filter([7, 8, 9], |i, x| i != 1)", "[7, 9]");
    }

    #[test]
    fn filter_keeps_the_entries_whose_closure_is_true() {
        assert_gives(
            r#"filter({ "a": null, "b": 1, "c": "" }, |k, v| v != null)"#,
            r#"{ "b": 1, "c": "" }"#,
        );
        assert_gives(
            r#"filter({ "keep": 1, "drop_me": 2 }, |k, v| not starts_with(k, "drop"))"#,
            r#"{ "keep": 1 }"#,
        );
    }

    #[test]
    fn map_keys_renames_and_the_later_of_two_equal_keys_wins() {
        assert_gives(
            r#"map_keys({ "Host": "a", "x": 1 }, |k| lowercase(k))"#,
            r#"{ "host": "a", "x": 1 }"#,
        );
        assert_gives(
            r#"map_keys({ "A": 1, "a": 2 }, |k| lowercase(k))"#,
            r#"{ "a": 2 }"#,
        );
        assert_gives(
            r#"map_keys({ "a": 1 }, |k, v| k + "_" + to_string(v))"#,
            r#"{ "a_1": 1 }"#,
        );
    }

    #[test]
    fn nested_closures_see_the_parameters_of_the_outer_one() {
        assert_gives(
            r#"map_values({ "x": { "y": 1 } }, |m| map_values(m, |v| (v ?? 0) + 1))"#,
            r#"{ "x": { "y": 2 } }"#,
        );
        assert_gives(
            r#"map_values({ "a": [1, 2] }, |k, xs| map_values(xs, |x| k))"#,
            r#"{ "a": ["a", "a"] }"#,
        );
    }

    #[test]
    fn a_fallible_call_in_a_closure_follows_the_usual_rules() {
        let errors = refused(r#"map_values(["1", "x"], |s| to_int(s))"#);
        assert!(
            errors[0].contains("unhandled error: `to_int` can fail"),
            "{errors:?}"
        );
        assert_gives(r#"map_values(["1", "x"], |s| to_int(s) ?? 0)"#, "[1, 0]");
        assert_gives(r#"map_values(["1", "x"], |s| to_int(s)) ?? []"#, "[]");
        let failed = run(r#"map_values(["1", "x"], |s| to_int!(s))"#);
        assert!(
            matches!(&failed, Err(e) if e.0.contains("to_int")),
            "{failed:?}"
        );
    }

    #[test]
    fn what_is_not_a_map_or_array_fails_at_run_time() {
        let failed = run("map_values(.missing, |v| v)");
        assert_eq!(
            failed,
            Err(EvalError::new("map_values: expects array or map, got null"))
        );
        assert_gives("map_values(.missing ?? {}, |v| v)", "{}");
        let failed = run("filter([1, \"a\"], |x| x)");
        assert!(
            matches!(&failed, Err(e) if e.0.contains("a condition must be a boolean, got integer")),
            "{failed:?}"
        );
    }

    #[test]
    fn closure_checks_name_the_mistake() {
        let cases = [
            (
                r#"filter(["a"], |x| "s")"#,
                "a `filter` closure must yield a boolean, this is string",
            ),
            (
                "map_values([1], |a, b, c| a)",
                "a `map_values` closure takes 1 or 2 parameters, this one takes 3",
            ),
            (
                "map_values([1], || 1)",
                "a `map_values` closure takes 1 or 2 parameters, this one takes 0",
            ),
            (
                "map_values([1], |a, a| a)",
                "the closure has two parameters named `a`",
            ),
            (
                "len(|x| x)",
                "a closure can only be the last argument of map_values, map_keys or filter",
            ),
            (
                "map_values([1])",
                "`map_values` takes 2 arguments (a value and a closure), found 1",
            ),
            (
                "map_values([1], lowercase)",
                "the second argument of `map_values` must be a closure",
            ),
            (
                r#"map_values("s", |x| x)"#,
                "argument `value` of `map_values` must be array or map, this is string",
            ),
            (
                "map_keys([1], |k| k)",
                "argument `value` of `map_keys` must be map, this is array",
            ),
            (
                r#"map_keys({ "a": 1 }, |k| 1)"#,
                "a `map_keys` closure must yield the new key, a string; this is integer",
            ),
            ("map_values([1], |value| valeu)", "unknown name `valeu`"),
            ("[map_values([1], |x| x), x]", "unknown name `x`"),
            (
                "map_values([1], |x| x * 2)",
                "`x` may be missing (null) here: arithmetic on null fails at run time",
            ),
            (
                "map_values([1], |x| if true { .a = x })",
                "an assignment is not allowed inside a closure",
            ),
            (
                "map_values([1], |x| if true { drop })",
                "`drop` is not allowed inside a closure",
            ),
            (
                "map_values([1], |x| del(.a))",
                "`del` is not allowed inside a closure",
            ),
            (
                "map_values([1], |app| 1)",
                "the closure parameter `app` would hide the source of that name",
            ),
            (
                "map_values!([1], |x| x)",
                "`map_values` cannot fail; remove the `!`",
            ),
        ];
        for (src, message) in cases {
            let errors = refused(src);
            assert!(errors.iter().any(|e| e == message), "{src}: {errors:?}");
        }
    }

    #[test]
    fn the_hint_for_an_unknown_name_offers_the_closure_parameter() {
        let e = parse_expr("map_values([1], |value| valeu)").unwrap();
        let mut c = Compiler::default();
        c.begin_step();
        let scope = Scope {
            sources: &[],
            step_handles_errors: false,
            paths: true,
            records: true,
        };
        c.expr(&e, &scope, false);
        assert_eq!(c.diagnostics.len(), 1);
        assert_eq!(
            c.diagnostics[0].hint.as_deref(),
            Some("did you mean `value`?")
        );
    }

    #[test]
    fn flow_typing_applies_inside_and_ends_with_the_closure() {
        assert!(compile("filter([1], |x| x != null and x > 0)").1.is_empty());
        assert!(
            compile("map_values([1], |x| if x != null { x * 2 } else { 0 })")
                .1
                .is_empty()
        );
        // a closure cannot write the event: what held before it holds inside
        assert!(compile("if exists(.a) { map_values([1], |x| .a * 2) }")
            .1
            .is_empty());
        let errors = refused("map_values([1], |x| .a * 2)");
        assert!(errors[0].contains("`.a` may be missing"), "{errors:?}");
    }
}
