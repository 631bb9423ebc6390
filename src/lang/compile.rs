//! Checking and compiling, in one pass over the syntax tree: resolves names
//! (sources, sinks, functions), types every expression, refuses unhandled
//! fallible calls and ill-typed arguments, prepares regexes once, and lowers
//! expressions to [`CExpr`] trees. Every problem becomes a diagnostic; the
//! pass goes on after each so all are reported at once. Types follow the
//! flow of a step ([`super::flow`]): a field that may be missing (null) is
//! refused in arithmetic and ordering comparisons until a `?? default` or a
//! tested condition (`exists(.x)`, `.x != null`) rules null out.

use super::ast::*;
use super::diagnostics::{suggest, Diagnostic, Span};
use super::eval::{CExpr, CStmt, Origin, Place, Root};
use super::flow::{Facts, Subject};
use super::functions::{self, Prepared};
use super::locals::{Global, Locals};
use super::types::Ty;
use crate::event::Value;
use std::sync::Arc;

/// What an expression may refer to.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// Declared source names (bare names in expressions resolve to these).
    pub sources: &'a [String],
    /// The enclosing step declared `on_error`: fallible calls need no `!`.
    pub step_handles_errors: bool,
    /// Field paths are allowed (not in component options).
    pub paths: bool,
    /// Metric recording (`count`, `observe`, `set_gauge`) is allowed: in
    /// steps only, never in routes, tests or options.
    pub records: bool,
}

/// A compiled expression with what the checker learned about it.
pub struct Typed {
    pub expr: CExpr,
    pub ty: Ty,
    /// Evaluation may fail at run time.
    pub may_fail: bool,
}

/// Collects diagnostics while lowering.
#[derive(Default)]
pub struct Compiler {
    pub diagnostics: Vec<Diagnostic>,
    /// What `env("X")` reads.
    pub env: super::environment::Environment,
    /// The file being compiled, so expressions that may fail at run time
    /// carry their place in it; `None` where nothing runs per event.
    pub file: Option<SourceFile>,
    /// Top-level `let`s, computed at load.
    pub globals: Vec<Global>,
    /// `let` locals of the step being compiled.
    pub(super) locals: Locals,
    /// What is known about fields and locals at this point of the step.
    pub(super) flow: Facts,
    /// How many closures enclose the expression being compiled.
    pub(super) closure_depth: usize,
    /// The stores of the declared `log_metrics` sources, which emission
    /// calls record into.
    pub log_metrics: Vec<Arc<crate::sources::log_metrics::MetricStore>>,
}

/// A pipeline file's name and text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: Arc<str>,
    pub text: Arc<str>,
}

impl SourceFile {
    /// The place of `span`: `NAME:LINE:COL` and the text there on one line,
    /// shortened to a readable length.
    pub fn origin(&self, span: Span) -> Arc<Origin> {
        let (line, col) = super::diagnostics::line_col(&self.text, span.start);
        let written = self.text.get(span.start..span.end).unwrap_or("");
        let mut text = written.split_whitespace().collect::<Vec<_>>().join(" ");
        const MAX_CHARS: usize = 80;
        if let Some((cut, _)) = text.char_indices().nth(MAX_CHARS) {
            text.truncate(cut);
            text.push('…');
        }
        Arc::new(Origin {
            at: format!("{}:{line}:{col}", self.name),
            text,
        })
    }
}

/// The type a field path has before anything is known about it.
pub fn path_type(place: &Place) -> Ty {
    match (&place.root, place.rest.is_empty()) {
        (Root::Timestamp, true) => Ty::TIMESTAMP.or(Ty::NULL),
        (Root::Severity, true) => Ty::STRING.or(Ty::NULL),
        (Root::Resource | Root::Attributes, true) => Ty::MAP,
        _ => Ty::ANY,
    }
}

/// A field path or local as written, for messages.
fn describe_operand(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Name(n) => n.clone(),
        ExprKind::Path(segs) if segs.is_empty() => ".".into(),
        ExprKind::Path(segs) => segs
            .iter()
            .map(|s| match s {
                Segment::Field(f)
                    if !f.is_empty()
                        && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    format!(".{f}")
                }
                Segment::Field(f) => format!(".{f:?}"),
                Segment::Index(i) => format!("[{i}]"),
            })
            .collect(),
        _ => String::new(),
    }
}

fn typed(expr: CExpr, ty: Ty, may_fail: bool) -> Typed {
    Typed { expr, ty, may_fail }
}

impl Compiler {
    pub(super) fn error(&mut self, span: Span, msg: impl Into<String>, hint: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(span, msg).hint(hint));
    }

    /// Compiles statements; the type is that of the last expression statement.
    pub fn block(
        &mut self,
        stmts: &[Stmt],
        scope: &Scope,
        handled: bool,
    ) -> (Vec<CStmt>, Ty, bool) {
        let mut out = Vec::with_capacity(stmts.len());
        let mut ty = Ty::NULL;
        let mut may_fail = false;
        for s in stmts {
            match s {
                Stmt::Assign {
                    target,
                    value,
                    span,
                } => {
                    if !scope.paths {
                        self.error(
                            *span,
                            "assignments are not allowed here",
                            "assign fields inside a step",
                        );
                    }
                    self.no_writes_in_closure(*span, "an assignment");
                    let v = self.expr(value, scope, handled);
                    let place = Place::resolve(target);
                    if matches!(place.root, Root::Timestamp)
                        && place.rest.is_empty()
                        && !v.ty.meets(Ty::TIMESTAMP.or(Ty::INT).or(Ty::TEXT))
                    {
                        self.error(
                            value.span,
                            format!("`.timestamp` cannot be set to {}", v.ty.describe()),
                            "use parse_timestamp(...) or now()",
                        );
                    }
                    may_fail |= v.may_fail
                        || matches!(place.root, Root::Timestamp)
                        || !place.rest.is_empty();
                    let subject = Subject::field(&place);
                    if matches!(place.root, Root::Timestamp | Root::Severity) {
                        // converted when written: only what is written is known
                        self.flow.forget(&subject);
                    } else {
                        self.flow.write(subject, v.ty);
                    }
                    out.push(CStmt::Assign(place, v.expr));
                    ty = Ty::NULL;
                }
                Stmt::Drop { condition, span } => {
                    self.no_writes_in_closure(*span, "`drop`");
                    let c = condition
                        .as_ref()
                        .map(|c| self.condition(c, scope, handled));
                    if let Some(c) = &c {
                        may_fail |= c.may_fail;
                    }
                    if let Some(cond) = condition {
                        // past `drop where C`, C was false
                        self.assume(cond, false);
                    }
                    out.push(CStmt::Drop(c.map(|c| c.expr)));
                    ty = Ty::NULL;
                }
                Stmt::Let { name, value, .. } => {
                    let v = self.expr(value, scope, handled);
                    self.no_regex(&v, value.span);
                    may_fail |= v.may_fail;
                    let slot = self.local(name, &v, scope.sources);
                    out.push(CStmt::Let(slot, v.expr));
                    ty = Ty::NULL;
                }
                Stmt::Expr(e) => {
                    let v = self.expr(e, scope, handled);
                    may_fail |= v.may_fail;
                    ty = v.ty;
                    out.push(CStmt::Expr(v.expr));
                }
            }
        }
        (out, ty, may_fail)
    }

    /// An expression that must be a boolean: refused when its type cannot
    /// be one, checked at run time when its type is not known (anything but
    /// a boolean is then an error, never `false`).
    pub fn condition(&mut self, e: &Expr, scope: &Scope, handled: bool) -> Typed {
        let t = self.expr(e, scope, handled);
        self.boolean(t, e, "a condition must be a boolean")
    }

    pub(super) fn boolean(&mut self, t: Typed, e: &Expr, what: &str) -> Typed {
        if !t.ty.meets(Ty::BOOL) {
            self.error(
                e.span,
                format!("{what}, this is {}", t.ty.describe()),
                "compare it, e.g. `.level == \"error\"` or `exists(.flag)`; there is no truthiness",
            );
            return t;
        }
        if t.ty == Ty::BOOL {
            return t;
        }
        typed(CExpr::Boolean(Box::new(t.expr)), Ty::BOOL, true)
    }

    /// Compiles an expression; one whose own operation may fail at run time
    /// carries its place in the file, so its error says where.
    pub fn expr(&mut self, e: &Expr, scope: &Scope, handled: bool) -> Typed {
        let mut t = self.expr_node(e, scope, handled);
        let fails_itself = matches!(
            e.kind,
            ExprKind::Binary(..)
                | ExprKind::Unary(..)
                | ExprKind::Call { .. }
                | ExprKind::Index(..)
                | ExprKind::If { .. }
        );
        if let (true, true, Some(file)) = (t.may_fail, fails_itself, &self.file) {
            t.expr = CExpr::Located(Box::new(t.expr), file.origin(e.span));
        }
        t
    }

    fn expr_node(&mut self, e: &Expr, scope: &Scope, handled: bool) -> Typed {
        match &e.kind {
            ExprKind::Lit(l) => self.literal(l, e.span),
            ExprKind::Path(segs) => {
                if !scope.paths {
                    self.error(e.span, "field paths are not available here", "options are evaluated when the pipeline loads; use literals or env(\"NAME\")");
                }
                let place = Place::resolve(segs);
                let ty = self
                    .flow
                    .get(&Subject::field(&place))
                    .unwrap_or_else(|| path_type(&place));
                typed(CExpr::Read(place), ty, false)
            }
            ExprKind::Name(name) => self.name(name, e.span, scope),
            ExprKind::Array(items) => {
                let mut out = Vec::new();
                let mut may_fail = false;
                for i in items {
                    let t = self.expr(i, scope, handled);
                    self.no_regex(&t, i.span);
                    may_fail |= t.may_fail;
                    out.push(t.expr);
                }
                typed(CExpr::Array(out), Ty::ARRAY, may_fail)
            }
            ExprKind::Map(entries) => {
                let mut out = Vec::new();
                let mut may_fail = false;
                for (k, v) in entries {
                    let t = self.expr(v, scope, handled);
                    // In component options a regex in a map is its pattern
                    // text (`multiline.rules`), compiled by the component.
                    if scope.paths {
                        self.no_regex(&t, v.span);
                    }
                    may_fail |= t.may_fail;
                    out.push((k.as_str().into(), t.expr));
                }
                typed(CExpr::Map(out), Ty::MAP, may_fail)
            }
            ExprKind::Index(base, index) => {
                let b = self.expr(base, scope, handled);
                let i = self.expr(index, scope, handled);
                if !b.ty.meets(Ty::ARRAY.or(Ty::MAP)) {
                    self.error(
                        base.span,
                        format!(
                            "only arrays and maps can be indexed, this is {}",
                            b.ty.describe()
                        ),
                        "index a field holding an array or map",
                    );
                }
                if !i.ty.meets(Ty::INT.or(Ty::TEXT)) {
                    self.error(
                        index.span,
                        format!(
                            "an index must be an integer or a string, this is {}",
                            i.ty.describe()
                        ),
                        "write [0] or [\"key\"]",
                    );
                }
                typed(
                    CExpr::Index(Box::new(b.expr), Box::new(i.expr)),
                    Ty::ANY,
                    b.may_fail || i.may_fail,
                )
            }
            ExprKind::Unary(op, inner) => {
                let t = self.expr(inner, scope, handled);
                match op {
                    UnOp::Not => {
                        if !t.ty.meets(Ty::BOOL.or(Ty::NULL)) {
                            self.error(
                                inner.span,
                                format!("`not` needs a boolean, this is {}", t.ty.describe()),
                                "compare first, e.g. `not exists(.x)`",
                            );
                        }
                        typed(
                            CExpr::Not(Box::new(t.expr)),
                            Ty::BOOL,
                            t.may_fail || t.ty != Ty::BOOL,
                        )
                    }
                    UnOp::Neg => {
                        let null = self.not_null(&t, inner, "negating null fails at run time");
                        if !null && !t.ty.meets(Ty::NUMBER) {
                            self.error(
                                inner.span,
                                format!("only numbers can be negated, this is {}", t.ty.describe()),
                                "convert with to_int(...) or to_float(...)",
                            );
                        }
                        typed(CExpr::Neg(Box::new(t.expr)), Ty::NUMBER, true)
                    }
                }
            }
            ExprKind::Binary(op, l, r) => self.binary(*op, l, r, e.span, scope, handled),
            ExprKind::Closure { .. } => self.misplaced_closure(e),
            ExprKind::Call { name, abort, args } => {
                self.call(name, *abort, args, e.span, scope, handled)
            }
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.condition(cond, scope, handled);
                let before = self.flow.clone();
                self.assume(cond, true);
                self.enter_block();
                let (t, tt, tf) = self.block(then, scope, handled);
                self.leave_block();
                let after_then = std::mem::replace(&mut self.flow, before);
                self.assume(cond, false);
                self.enter_block();
                let (o, ot, of) = match otherwise {
                    Some(b) => self.block(b, scope, handled),
                    None => (Vec::new(), Ty::NULL, false),
                };
                self.leave_block();
                self.flow = Facts::join(&after_then, &self.flow);
                typed(
                    CExpr::If(Box::new(c.expr), t, o),
                    tt.or(ot),
                    c.may_fail || tf || of,
                )
            }
        }
    }

    /// A field or local that may be null (missing), used where null fails
    /// at run time or silently compares false, is refused with the fix.
    /// Returns whether it reported one.
    fn not_null(&mut self, t: &Typed, e: &Expr, used_in: &str) -> bool {
        if !t.ty.meets(Ty::NULL) || self.subject(e).is_none() {
            return false;
        }
        let text = describe_operand(e);
        // `exists` takes a field path; a local (or closure parameter) is tested with `!=`
        let test = match e.kind {
            ExprKind::Name(_) => {
                format!("`if {text} != null {{ ... }}` / `{text} != null and ...`")
            }
            _ => format!("`if exists({text}) {{ ... }}` / `{text} != null and ...`"),
        };
        self.error(
            e.span,
            format!("`{text}` may be missing (null) here: {used_in}"),
            format!("give it a default: `({text} ?? 0)`, or test it first: {test}"),
        );
        true
    }

    pub(super) fn no_regex(&mut self, t: &Typed, span: Span) {
        if t.ty == Ty::REGEX {
            self.error(
                span,
                "a regex literal can only be a function argument",
                "pass it to parse_regex, replace, split or redact",
            );
        }
    }

    fn literal(&mut self, l: &Lit, _span: Span) -> Typed {
        let (v, ty) = match l {
            Lit::Null => (Value::Null, Ty::NULL),
            Lit::Bool(b) => (Value::Bool(*b), Ty::BOOL),
            Lit::Int(i) => (Value::Int(*i), Ty::INT),
            Lit::Float(f) => (Value::Float(*f), Ty::FLOAT),
            Lit::Str(s) => (Value::String(s.clone().into()), Ty::STRING),
            Lit::Regex(r) => (Value::String(r.clone().into()), Ty::REGEX),
            Lit::Duration(d) => (
                Value::Int(d.as_nanos().min(i64::MAX as u128) as i64),
                Ty::INT,
            ),
            Lit::Size(s) => (Value::Int((*s).min(i64::MAX as u64) as i64), Ty::INT),
        };
        typed(CExpr::Const(v), ty, false)
    }

    fn name(&mut self, name: &str, span: Span, scope: &Scope) -> Typed {
        if let Some(t) = self.resolve_let(name) {
            return t;
        }
        if name == "source" {
            return typed(CExpr::Source, Ty::STRING, false);
        }
        if scope.sources.iter().any(|s| s == name) {
            return typed(
                CExpr::Const(Value::String(name.to_owned().into())),
                Ty::STRING,
                false,
            );
        }
        let hint = self.unknown_name_hint(name, scope.sources);
        self.error(span, format!("unknown name `{name}`"), hint);
        typed(CExpr::Const(Value::Null), Ty::ANY, false)
    }

    fn binary(
        &mut self,
        op: BinOp,
        l: &Expr,
        r: &Expr,
        span: Span,
        scope: &Scope,
        handled: bool,
    ) -> Typed {
        let lt = self.expr(l, scope, handled || op == BinOp::Coalesce);
        let rt = match op {
            // the right side runs only when the left was true (`and`) or false (`or`)
            BinOp::And | BinOp::Or => {
                let before = self.flow.clone();
                self.assume(l, op == BinOp::And);
                let rt = self.expr(r, scope, handled);
                self.flow = Facts::join(&before, &self.flow);
                rt
            }
            _ => self.expr(r, scope, handled),
        };
        self.no_regex(&lt, l.span);
        self.no_regex(&rt, r.span);
        let may_fail = lt.may_fail && op != BinOp::Coalesce || rt.may_fail;
        let (ty, may_fail) = match op {
            BinOp::Coalesce => (Ty(lt.ty.0 & !Ty::NULL.0).or(rt.ty), may_fail),
            BinOp::And | BinOp::Or => {
                let lt = self.boolean(lt, l, "`and`/`or` need booleans");
                let rt = self.boolean(rt, r, "`and`/`or` need booleans");
                let may_fail = may_fail || lt.may_fail || rt.may_fail;
                return typed(
                    CExpr::Bin(op, Box::new(lt.expr), Box::new(rt.expr)),
                    Ty::BOOL,
                    may_fail,
                );
            }
            BinOp::Eq | BinOp::Ne => (Ty::BOOL, may_fail),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                self.not_null(&lt, l, "an ordering comparison with null is always false");
                self.not_null(&rt, r, "an ordering comparison with null is always false");
                (Ty::BOOL, may_fail)
            }
            BinOp::Add => {
                let null = self.not_null(&lt, l, "`+` with null fails at run time")
                    | self.not_null(&rt, r, "`+` with null fails at run time");
                let ok = |t: Ty| t.meets(Ty::NUMBER.or(Ty::TEXT).or(Ty::TIMESTAMP));
                let only = |t: Ty, kinds: Ty| t.0 != 0 && t.0 & !kinds.0 == 0;
                let text = |t: Ty| only(t, Ty::TEXT);
                let number = |t: Ty| only(t, Ty::NUMBER.or(Ty::TIMESTAMP));
                if null {
                    // reported above, with the fix
                } else if !ok(lt.ty) || !ok(rt.ty) {
                    self.error(
                        span,
                        format!("cannot add {} and {}", lt.ty.describe(), rt.ty.describe()),
                        "`+` adds numbers or joins strings",
                    );
                } else if (text(lt.ty) && number(rt.ty)) || (number(lt.ty) && text(rt.ty)) {
                    self.error(
                        span,
                        format!("cannot add {} and {}: `+` never converts", lt.ty.describe(), rt.ty.describe()),
                        "convert the number first: `to_string(x) + \"...\"`, or build the text with join([...], \"\")",
                    );
                }
                let ty = if text(lt.ty) || text(rt.ty) {
                    Ty::STRING
                } else if lt.ty == Ty::INT && rt.ty == Ty::INT {
                    Ty::INT
                } else {
                    Ty::NUMBER.or(Ty::STRING).or(Ty::TIMESTAMP)
                };
                (ty, true)
            }
            BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                let nulls = [
                    self.not_null(&lt, l, "arithmetic on null fails at run time"),
                    self.not_null(&rt, r, "arithmetic on null fails at run time"),
                ];
                for ((t, e), null) in [(&lt, l), (&rt, r)].into_iter().zip(nulls) {
                    if !null && !t.ty.meets(Ty::NUMBER.or(Ty::TIMESTAMP)) {
                        self.error(
                            e.span,
                            format!("arithmetic needs numbers, this is {}", t.ty.describe()),
                            "convert with to_int(...) or to_float(...)",
                        );
                    }
                }
                let ty = if lt.ty == Ty::INT && rt.ty == Ty::INT {
                    Ty::INT
                } else {
                    Ty::NUMBER
                };
                (ty, true)
            }
        };
        typed(
            CExpr::Bin(op, Box::new(lt.expr), Box::new(rt.expr)),
            ty,
            may_fail,
        )
    }

    fn call(
        &mut self,
        name: &Ident,
        abort: bool,
        args: &[Arg],
        span: Span,
        scope: &Scope,
        handled: bool,
    ) -> Typed {
        let handled_here = handled || abort || scope.step_handles_errors;
        let unhandled = |c: &mut Compiler| {
            c.error(
                span,
                format!("unhandled error: `{}` can fail", name.name),
                format!("write `{}!(...)` to fail the step when it does, add a fallback with `?? value`, or declare `on_error` on the step", name.name),
            );
        };
        if let Some(iteration) = self.iteration(name, abort, args, span, scope, handled) {
            return iteration;
        }
        if super::emit::NAMES.contains(&name.name.as_str()) {
            let t = super::emit::compile(self, name, args, span, scope, handled);
            if t.may_fail && !handled_here {
                unhandled(self);
            }
            if abort && !t.may_fail {
                self.error(
                    span,
                    format!("`{}` cannot fail here; remove the `!`", name.name),
                    "it fails only when its value may not be a number or a label value not a string",
                );
            }
            return t;
        }
        if let Some(special) = self.special(name, abort, args, span, scope) {
            if special.may_fail && !handled_here {
                unhandled(self);
            }
            return special;
        }
        let Some(f) = functions::lookup(&name.name) else {
            let hint = suggest(&name.name, functions::names(), || {
                "see docs/pipeline-language.md for the function list".into()
            });
            self.error(name.span, format!("unknown function `{}`", name.name), hint);
            for a in args {
                self.expr(&a.value, scope, true);
            }
            return typed(CExpr::Const(Value::Null), Ty::ANY, false);
        };
        let mut slots: Vec<Option<&Expr>> = vec![None; f.params.len()];
        let mut positional = 0;
        for a in args {
            let idx = match &a.name {
                Some(n) => match f.params.iter().position(|p| p.name == n.name) {
                    Some(i) => i,
                    None => {
                        let names: Vec<&str> = f.params.iter().map(|p| p.name).collect();
                        self.error(
                            n.span,
                            format!("`{}` has no parameter `{}`", f.name, n.name),
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
            if idx >= f.params.len() {
                self.error(
                    a.value.span,
                    format!("`{}` takes at most {} argument(s)", f.name, f.params.len()),
                    signature(f),
                );
                continue;
            }
            slots[idx] = Some(&a.value);
        }
        let mut compiled = Vec::with_capacity(f.params.len());
        let mut may_fail = f.fallible;
        let null = Expr {
            kind: ExprKind::Lit(Lit::Null),
            span,
        };
        let mut written: Vec<&Expr> = Vec::with_capacity(f.params.len());
        for (p, slot) in f.params.iter().zip(&slots) {
            match slot {
                Some(e) if p.at_load => {
                    compiled.push(CExpr::Const(Value::Null));
                    written.push(e);
                }
                Some(e) => {
                    let t = self.expr(e, scope, handled);
                    if !t.ty.meets(p.ty) {
                        self.error(
                            e.span,
                            format!(
                                "argument `{}` of `{}` must be {}, this is {}",
                                p.name,
                                f.name,
                                p.ty.describe(),
                                t.ty.describe()
                            ),
                            signature(f),
                        );
                    }
                    may_fail |= t.may_fail || t.ty != (Ty(t.ty.0 & p.ty.0));
                    compiled.push(t.expr);
                    written.push(e);
                }
                None if p.required => {
                    self.error(
                        span,
                        format!("`{}` needs its `{}` argument", f.name, p.name),
                        signature(f),
                    );
                    compiled.push(CExpr::Const(Value::Null));
                    written.push(&null);
                }
                None => {
                    compiled.push(CExpr::Const(Value::Null));
                    written.push(&null);
                }
            }
        }
        // The registry's word, unless a check of the arguments knows better.
        let fallible = match f.check.map(|check| check(&compiled)) {
            Some(Ok(fails)) => f.fallible || fails,
            Some(Err((i, msg))) => {
                let at = written.get(i).map(|e| e.span).unwrap_or(span);
                self.error(at, format!("`{}`: {msg}", f.name), signature(f));
                f.fallible
            }
            None => f.fallible,
        };
        may_fail |= fallible;
        let prepared = match f.prepare {
            Some(prepare) => match prepare(&written) {
                Ok(p) => p,
                Err(msg) => {
                    let at = written.get(1).map(|e| e.span).unwrap_or(span);
                    self.error(
                        at,
                        format!("`{}`: {msg}", f.name),
                        "regexes use Rust `regex` syntax: named groups are (?<name>...)",
                    );
                    Prepared::None
                }
            },
            None => Prepared::None,
        };
        if fallible && !handled_here {
            unhandled(self);
        }
        if abort && !fallible {
            self.error(
                span,
                format!("`{}` cannot fail; remove the `!`", f.name),
                "only fallible functions take `!`",
            );
        }
        typed(CExpr::Call(f, compiled, prepared), f.returns, may_fail)
    }

    /// `del(path)`, `exists(path)`, `env("NAME")`, `file("PATH")`.
    fn special(
        &mut self,
        name: &Ident,
        abort: bool,
        args: &[Arg],
        span: Span,
        scope: &Scope,
    ) -> Option<Typed> {
        let one = |c: &mut Compiler| -> Option<&Expr> {
            if args.len() != 1 {
                c.error(
                    span,
                    format!("`{}` takes exactly one argument", name.name),
                    "",
                );
                return None;
            }
            Some(&args[0].value)
        };
        match name.name.as_str() {
            "del" | "exists" => {
                let arg = one(self)?;
                let ExprKind::Path(segs) = &arg.kind else {
                    self.error(
                        arg.span,
                        format!("`{}` takes a field path", name.name),
                        format!("write `{}(.field)`", name.name),
                    );
                    return Some(typed(CExpr::Const(Value::Null), Ty::ANY, false));
                };
                if !scope.paths {
                    self.error(arg.span, "field paths are not available here", "");
                }
                let place = Place::resolve(segs);
                if abort {
                    self.error(
                        span,
                        format!("`{}` cannot fail; remove the `!`", name.name),
                        "",
                    );
                }
                Some(if name.name == "del" {
                    self.no_writes_in_closure(span, "`del`");
                    self.flow.write(Subject::field(&place), Ty::NULL);
                    typed(CExpr::Del(place), Ty::ANY, false)
                } else {
                    typed(CExpr::Exists(place), Ty::BOOL, false)
                })
            }
            "env" | "file" => {
                let arg = one(self)?;
                let key = match &arg.kind {
                    ExprKind::Lit(Lit::Str(key)) => Ok(key.clone()),
                    _ => {
                        // Any expression known at load: env("A") ?? "b", "/etc/" + x, ...
                        let constant = Scope {
                            sources: &[],
                            step_handles_errors: false,
                            paths: false,
                            records: false,
                        };
                        let before = self.diagnostics.len();
                        let t = self.expr(arg, &constant, true);
                        if self.diagnostics.len() > before {
                            return Some(typed(CExpr::Const(Value::Null), Ty::STRING, false));
                        }
                        let mut event = crate::event::Event::Log(crate::event::LogRecord::new(
                            Value::Null,
                            std::sync::Arc::new(crate::event::Resource::default()),
                        ));
                        let mut ctx = super::eval::Ctx::new(&mut event, "");
                        match t.expr.eval(&mut ctx) {
                            Ok(v) => functions::text_of(&v)
                                .map(|t| t.into_owned())
                                .ok_or_else(|| format!("`{}` needs a string", name.name)),
                            Err(e) => Err(e.0),
                        }
                    }
                };
                let value = key.and_then(|key| {
                    if name.name == "env" {
                        self.env
                            .get(&key)
                            .ok_or_else(|| format!("environment variable {key} is not set"))
                    } else {
                        std::fs::read_to_string(&key)
                            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                            .map_err(|e| format!("cannot read {key}: {e}"))
                    }
                });
                Some(match value {
                    Ok(v) => typed(CExpr::Const(Value::String(v.into())), Ty::STRING, true),
                    Err(msg) => typed(CExpr::Fail(msg), Ty::STRING, true),
                })
            }
            _ => None,
        }
    }
}

/// `name(param: type, [optional: type]) -> type`, for hints.
pub fn signature(f: &functions::Function) -> String {
    let params: Vec<String> = f
        .params
        .iter()
        .map(|p| {
            if p.required {
                format!("{}: {}", p.name, p.ty.describe())
            } else {
                format!("[{}: {}]", p.name, p.ty.describe())
            }
        })
        .collect();
    format!(
        "{}({}) -> {}{}",
        f.name,
        params.join(", "),
        f.returns.describe(),
        if f.fallible { ", can fail" } else { "" }
    )
}
