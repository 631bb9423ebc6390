//! `let` bindings. A top-level `let` is evaluated once when the pipeline
//! loads (like `env(...)`) and is a constant everywhere in the file: steps,
//! conditions, routes, settings, component options and tests. A `let` inside
//! a block is a per-event local of that block and the blocks nested in it,
//! stored in a numbered slot of the step's evaluation context. This module
//! resolves names to both and tells the checker what a condition proves
//! about a subject ([`super::flow`]).

use super::ast::{BinOp, Expr, ExprKind, Ident, Lit, UnOp};
use super::compile::{Compiler, Scope, Typed};
use super::diagnostics::{suggest, Diagnostic};
use super::eval::{CExpr, Ctx, Place};
use super::flow::Subject;
use super::types::Ty;
use crate::event::{Event, LogRecord, Resource, Value};
use std::sync::Arc;

/// A top-level `let`: its value, computed at load.
#[derive(Debug, Clone)]
pub struct Global {
    pub name: String,
    pub value: Value,
    pub ty: Ty,
    /// The environment variables its value came from (for option messages).
    pub env_origin: Vec<String>,
}

/// A `let` local of a block.
#[derive(Debug, Clone)]
pub struct Local {
    pub name: String,
    pub slot: usize,
    pub ty: Ty,
}

/// Block scopes of the step being compiled, innermost last.
#[derive(Debug, Default)]
pub struct Locals {
    pub scopes: Vec<Vec<Local>>,
    pub next_slot: usize,
}

impl Compiler {
    /// Evaluates a top-level `let` (in file order: it may use the ones above).
    pub fn global(&mut self, name: &Ident, value: &Expr, sources: &[String]) {
        if self.refused_name(name, sources) {
            return;
        }
        if self.globals.iter().any(|g| g.name == name.name) {
            self.diagnostics.push(
                Diagnostic::new(name.span, format!("`{}` is already defined", name.name))
                    .hint("a top-level `let` is defined once; pick another name"),
            );
            return;
        }
        let scope = Scope {
            sources,
            step_handles_errors: false,
            paths: false,
            records: false,
        };
        let before = self.diagnostics.len();
        // A failure is reported here, when the pipeline loads.
        let t = self.expr(value, &scope, true);
        if self.diagnostics.len() > before {
            return;
        }
        let mut event = Event::Log(LogRecord::new(Value::Null, Arc::new(Resource::default())));
        let mut ctx = Ctx::new(&mut event, "");
        match t.expr.eval(&mut ctx) {
            Ok(v) => {
                let mut env_origin = super::option_range::env_origin(&self.env, value);
                env_origin.extend(self.let_env_origin(value));
                self.globals.push(Global {
                    name: name.name.clone(),
                    value: v,
                    ty: t.ty,
                    env_origin,
                })
            }
            Err(e) => self.diagnostics.push(
                Diagnostic::new(value.span, format!("`let {}`: {}", name.name, e.0))
                    .hint("a top-level `let` is computed when the pipeline loads; add a fallback with `?? value`"),
            ),
        }
    }

    /// A `let` inside a block: returns the slot its value goes to.
    pub fn local(&mut self, name: &Ident, value: &Typed, sources: &[String]) -> usize {
        self.refused_name(name, sources);
        self.bind(name, value.ty)
    }

    /// A closure parameter, a local of the closure's body holding each
    /// element (or key) in turn: returns its slot.
    pub fn param(&mut self, name: &Ident, ty: Ty, sources: &[String]) -> usize {
        if name.name == "source" || sources.contains(&name.name) {
            self.diagnostics.push(
                Diagnostic::new(name.span, format!("the closure parameter `{}` would hide the source of that name", name.name))
                    .hint("bare names also refer to sources (and `source` to the event's source); pick another name"),
            );
        }
        self.bind(name, ty)
    }

    /// A new local of the innermost scope, of type `ty`.
    fn bind(&mut self, name: &Ident, ty: Ty) -> usize {
        let slot = self.locals.next_slot;
        self.locals.next_slot += 1;
        if self.locals.scopes.is_empty() {
            self.locals.scopes.push(Vec::new());
        }
        if let Some(scope) = self.locals.scopes.last_mut() {
            scope.push(Local {
                name: name.name.clone(),
                slot,
                ty,
            });
        }
        self.flow.write(Subject::Local(slot), ty);
        slot
    }

    /// Names that would hide a source (bare names are source names).
    fn refused_name(&mut self, name: &Ident, sources: &[String]) -> bool {
        let hides = name.name == "source" || sources.contains(&name.name);
        if hides {
            self.diagnostics.push(
                Diagnostic::new(name.span, format!("`let {}` would hide the source of that name", name.name))
                    .hint("bare names also refer to sources (and `source` to the event's source); pick another name"),
            );
        }
        hides
    }

    /// The environment variables behind the top-level `let`s `e` uses.
    pub fn let_env_origin(&self, e: &Expr) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |vars: &[String]| {
            for v in vars {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
        };
        match &e.kind {
            ExprKind::Name(n) => {
                if let Some(g) = self.globals.iter().find(|g| g.name == *n) {
                    add(&g.env_origin);
                }
            }
            ExprKind::Array(items) => items.iter().for_each(|i| add(&self.let_env_origin(i))),
            ExprKind::Map(entries) => entries
                .iter()
                .for_each(|(_, v)| add(&self.let_env_origin(v))),
            ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => {
                add(&self.let_env_origin(a));
                add(&self.let_env_origin(b));
            }
            ExprKind::Unary(_, a) => add(&self.let_env_origin(a)),
            ExprKind::Call { args, .. } => args
                .iter()
                .for_each(|a| add(&self.let_env_origin(&a.value))),
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                add(&self.let_env_origin(cond));
                for stmt in then.iter().chain(otherwise.iter().flatten()) {
                    if let super::ast::Stmt::Expr(e) = stmt {
                        add(&self.let_env_origin(e));
                    }
                }
            }
            ExprKind::Closure { body, .. } => add(&self.let_env_origin(body)),
            ExprKind::Lit(_) | ExprKind::Path(_) => {}
        }
        out
    }

    /// Starts a step (or a route rule): no locals, no facts.
    pub fn begin_step(&mut self) {
        self.locals = Locals {
            scopes: vec![Vec::new()],
            next_slot: 0,
        };
        self.flow = Default::default();
    }

    /// Ends a step: its locals and facts are out of scope.
    pub fn end_step(&mut self) {
        self.locals = Locals::default();
        self.flow = Default::default();
    }

    pub fn enter_block(&mut self) {
        self.locals.scopes.push(Vec::new());
    }

    pub fn leave_block(&mut self) {
        self.locals.scopes.pop();
    }

    /// A `let` local or a top-level `let` named `name`.
    pub fn resolve_let(&self, name: &str) -> Option<Typed> {
        let local = self
            .locals
            .scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|l| l.name == name);
        if let Some(l) = local {
            let ty = self.flow.get(&Subject::Local(l.slot)).unwrap_or(l.ty);
            return Some(Typed {
                expr: CExpr::Local(l.slot),
                ty,
                may_fail: false,
            });
        }
        self.globals.iter().find(|g| g.name == name).map(|g| Typed {
            expr: CExpr::Const(g.value.clone()),
            ty: g.ty,
            may_fail: false,
        })
    }

    /// The hint for an unknown bare name: the closest local, `let`, source.
    pub fn unknown_name_hint(&self, name: &str, sources: &[String]) -> String {
        let lets = self
            .locals
            .scopes
            .iter()
            .flatten()
            .map(|l| l.name.as_str())
            .chain(self.globals.iter().map(|g| g.name.as_str()));
        suggest(
            name,
            lets.chain(sources.iter().map(String::as_str))
                .chain(["source"]),
            || {
                format!("field paths start with a dot: `.{name}`; bare names are `let` locals or sources")
            },
        )
    }

    /// The field or local `e` names, if it is one (what facts are about).
    pub fn subject(&self, e: &Expr) -> Option<Subject> {
        match &e.kind {
            ExprKind::Path(segs) => Some(Subject::field(&Place::resolve(segs))),
            ExprKind::Name(name) => match self.resolve_let(name)?.expr {
                CExpr::Local(slot) => Some(Subject::Local(slot)),
                _ => None,
            },
            _ => None,
        }
    }

    /// What `e` proves about fields and locals when it evaluates to `when`:
    /// each subject it shows not to be null, with its type without null.
    pub fn proves(&self, e: &Expr, when: bool, out: &mut Vec<(Subject, Ty)>) {
        let is_null = |e: &Expr| matches!(e.kind, ExprKind::Lit(Lit::Null));
        let not_null = |c: &Compiler, x: &Expr, out: &mut Vec<(Subject, Ty)>| {
            if let Some(s) = c.subject(x) {
                let ty = c.current_type(&s, x);
                out.push((s, Ty(ty.0 & !Ty::NULL.0)));
            }
        };
        match &e.kind {
            ExprKind::Call { name, abort, args } if name.name == "exists" && !abort => {
                if let ([arg], true) = (args.as_slice(), when) {
                    not_null(self, &arg.value, out);
                }
            }
            ExprKind::Binary(op @ (BinOp::Ne | BinOp::Eq), l, r) => {
                let proves_non_null = (*op == BinOp::Ne) == when;
                if proves_non_null {
                    if is_null(r) {
                        not_null(self, l, out);
                    } else if is_null(l) {
                        not_null(self, r, out);
                    }
                }
            }
            ExprKind::Unary(UnOp::Not, inner) => self.proves(inner, !when, out),
            ExprKind::Binary(BinOp::And, l, r) if when => {
                self.proves(l, true, out);
                self.proves(r, true, out);
            }
            ExprKind::Binary(BinOp::Or, l, r) if !when => {
                self.proves(l, false, out);
                self.proves(r, false, out);
            }
            _ => {}
        }
    }

    /// Adds what `e` proves when it is `when` to the current facts. A
    /// condition that changes the event (`del`, a block) proves nothing: its
    /// tests may be stale by the time it ends.
    pub fn assume(&mut self, e: &Expr, when: bool) {
        if changes_event(e) {
            return;
        }
        let mut facts = Vec::new();
        self.proves(e, when, &mut facts);
        for (s, ty) in facts {
            self.flow.assume(s, ty);
        }
    }

    /// The type of a subject here: narrowed by facts, else as declared.
    fn current_type(&self, s: &Subject, e: &Expr) -> Ty {
        if let Some(t) = self.flow.get(s) {
            return t;
        }
        match &e.kind {
            ExprKind::Path(segs) => super::compile::path_type(&Place::resolve(segs)),
            ExprKind::Name(name) => self.resolve_let(name).map(|t| t.ty).unwrap_or(Ty::ANY),
            _ => Ty::ANY,
        }
    }
}

/// Whether evaluating `e` may change the event (it calls `del` or holds a block).
fn changes_event(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::If { .. } => true,
        ExprKind::Call { name, args, .. } => {
            name.name == "del" || args.iter().any(|a| changes_event(&a.value))
        }
        ExprKind::Lit(_) | ExprKind::Path(_) | ExprKind::Name(_) => false,
        ExprKind::Array(items) => items.iter().any(changes_event),
        ExprKind::Map(entries) => entries.iter().any(|(_, v)| changes_event(v)),
        ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => changes_event(a) || changes_event(b),
        ExprKind::Unary(_, a) => changes_event(a),
        ExprKind::Closure { body, .. } => changes_event(body),
    }
}
