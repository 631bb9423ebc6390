//! Evaluation of compiled expressions and statements over one event, in
//! place. Field places are resolved when the pipeline loads; regexes and other
//! literal-derived state are prepared once. Work per event is bounded: the
//! only loops walk the elements of a value ([`super::iterate`]), no
//! recursion beyond the expression's own depth.

use super::ast::{BinOp, Segment};
use super::functions::{convert, Function, Prepared};
use super::iterate::Iteration;
use crate::event::Map;
use crate::event::{Event, LogRecord, MetricPoint, Str, Value};
use std::cmp::Ordering;
use std::sync::Arc;

/// Why an evaluation failed (a fallible function, a type error), and where
/// in the pipeline file: the innermost located expression that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError(pub String, pub Option<Arc<Origin>>);

impl EvalError {
    pub fn new(msg: impl Into<String>) -> Self {
        EvalError(msg.into(), None)
    }

    /// Attaches `origin` unless an inner expression already did.
    fn at(mut self, origin: &Arc<Origin>) -> Self {
        if self.1.is_none() {
            self.1 = Some(Arc::clone(origin));
        }
        self
    }

    /// `FILE:LINE:COL: message in `expression`` when located, else the message.
    pub fn located(&self) -> String {
        match &self.1 {
            Some(o) => format!("{}: {} in `{}`", o.at, self.0, o.text),
            None => self.0.clone(),
        }
    }
}

/// Where an expression stands in its pipeline file, resolved when the
/// pipeline loads so a failure at run time costs no lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// `FILE:LINE:COL`.
    pub at: String,
    /// The expression as written (one line, shortened).
    pub text: String,
}

pub type EvalResult = Result<Value, EvalError>;

fn fail<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::new(msg))
}

/// The first segment of a field path, resolved at load.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    /// `.message`: the log body.
    Message,
    /// `.timestamp`: event time.
    Timestamp,
    /// `.severity`: severity text (setting it also sets the number).
    Severity,
    /// `.resource`: resource attributes.
    Resource,
    /// `.attributes` (logs) or `.labels` (metrics): the whole attribute map.
    Attributes,
    /// `.name`, `.value`, `.unit` of a metric (attributes of a log).
    MetricField(&'static str),
    /// Any other name: one attribute (log) or label (metric).
    Attr(Str),
}

/// A resolved field path.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub root: Root,
    pub rest: Vec<Segment>,
}

impl Place {
    /// Resolves `.a.b[0]` segments.
    pub fn resolve(segments: &[Segment]) -> Place {
        let Some(Segment::Field(first)) = segments.first() else {
            return Place {
                root: Root::Attributes,
                rest: segments.to_vec(),
            };
        };
        let root = match first.as_str() {
            "message" => Root::Message,
            "timestamp" => Root::Timestamp,
            "severity" => Root::Severity,
            "resource" => Root::Resource,
            "attributes" | "labels" => Root::Attributes,
            "name" => Root::MetricField("name"),
            "value" => Root::MetricField("value"),
            "unit" => Root::MetricField("unit"),
            other => Root::Attr(other.into()),
        };
        Place {
            root,
            rest: segments[1..].to_vec(),
        }
    }
}

/// A compiled expression.
#[derive(Debug)]
pub enum CExpr {
    Const(Value),
    /// Known at load to fail (e.g. an unset environment variable).
    Fail(String),
    Read(Place),
    /// A `let` local of the step, by slot.
    Local(usize),
    /// A condition whose type is not known to be boolean: anything but a
    /// boolean is a run-time error, never `false`.
    Boolean(Box<CExpr>),
    /// The name of the event's source.
    Source,
    Array(Vec<CExpr>),
    Map(Vec<(Str, CExpr)>),
    Index(Box<CExpr>, Box<CExpr>),
    Not(Box<CExpr>),
    Neg(Box<CExpr>),
    Bin(BinOp, Box<CExpr>, Box<CExpr>),
    Call(&'static Function, Vec<CExpr>, Prepared),
    Del(Place),
    Exists(Place),
    If(Box<CExpr>, Vec<CStmt>, Vec<CStmt>),
    /// An expression that may fail, with its place in the file: a failure
    /// inside it carries that place (the innermost one wins).
    Located(Box<CExpr>, Arc<Origin>),
    /// `map_values`, `map_keys` or `filter`: a closure run per element.
    Iterate(Box<Iteration>),
    /// `count`, `observe` or `set_gauge`: records a metric point (a side
    /// effect outside the event).
    Emit(Box<super::emit::Emission>),
}

/// A compiled statement.
#[derive(Debug)]
pub enum CStmt {
    Assign(Place, CExpr),
    /// `drop` or `drop where COND`.
    Drop(Option<CExpr>),
    /// `let`: stores the value in the step's local slot.
    Let(usize, CExpr),
    Expr(CExpr),
}

impl CStmt {
    /// Whether evaluating the statement may change the event before its
    /// final write (a nested `del` or block).
    pub fn has_effects(&self) -> bool {
        match self {
            CStmt::Assign(_, e) | CStmt::Expr(e) | CStmt::Drop(Some(e)) | CStmt::Let(_, e) => {
                e.has_effects()
            }
            CStmt::Drop(None) => false,
        }
    }
}

impl CExpr {
    /// Whether evaluating the expression may change the event.
    pub fn has_effects(&self) -> bool {
        match self {
            CExpr::Del(_) | CExpr::If(..) => true,
            CExpr::Const(_)
            | CExpr::Fail(_)
            | CExpr::Read(_)
            | CExpr::Local(_)
            | CExpr::Source
            | CExpr::Exists(_) => false,
            // Records outside the event: nothing of the event to undo.
            CExpr::Emit(_) => false,
            CExpr::Array(items) | CExpr::Call(_, items, _) => items.iter().any(CExpr::has_effects),
            CExpr::Map(entries) => entries.iter().any(|(_, e)| e.has_effects()),
            CExpr::Index(a, b) | CExpr::Bin(_, a, b) => a.has_effects() || b.has_effects(),
            CExpr::Not(e) | CExpr::Neg(e) | CExpr::Boolean(e) | CExpr::Located(e, _) => {
                e.has_effects()
            }
            CExpr::Iterate(it) => it.has_effects(),
        }
    }
}

/// The event under evaluation and what the expression may ask about it.
pub struct Ctx<'a> {
    pub event: &'a mut Event,
    pub source: &'a str,
    /// Set by a `drop` statement.
    pub dropped: bool,
    /// The step's `let` locals, by slot (allocated on the first `let`).
    pub locals: Vec<Value>,
}

impl<'a> Ctx<'a> {
    pub fn new(event: &'a mut Event, source: &'a str) -> Self {
        Ctx {
            event,
            source,
            dropped: false,
            locals: Vec::new(),
        }
    }
}

/// Runs statements; the value of the last expression statement is returned.
pub fn run_block(stmts: &[CStmt], ctx: &mut Ctx) -> EvalResult {
    let mut last = None;
    for s in stmts {
        if ctx.dropped {
            break;
        }
        match s {
            CStmt::Assign(place, e) => {
                let v = operand(e, ctx)?;
                write(ctx.event, place, v)?;
                last = None;
            }
            CStmt::Drop(cond) => {
                let hit = match cond {
                    Some(c) => truthy(&c.eval(ctx)?),
                    None => true,
                };
                ctx.dropped |= hit;
                last = None;
            }
            CStmt::Let(slot, e) => {
                let v = operand(e, ctx)?;
                if ctx.locals.len() <= *slot {
                    ctx.locals.resize(*slot + 1, Value::Null);
                }
                ctx.locals[*slot] = v;
                last = None;
            }
            CStmt::Expr(e) => last = Some(e.eval(ctx)?),
        }
    }
    Ok(last.unwrap_or(Value::Null))
}

/// `true` and nothing else is true; conditions never coerce.
pub fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

impl CExpr {
    pub fn eval(&self, ctx: &mut Ctx) -> EvalResult {
        match self {
            CExpr::Const(v) => Ok(v.clone()),
            CExpr::Fail(msg) => fail(msg.clone()),
            // The common located forms run here: a level of recursion less
            // for each fallible call or operator.
            CExpr::Located(inner, origin) => match &**inner {
                CExpr::Call(f, args, prepared) => call(f, args, prepared, ctx),
                CExpr::Bin(op, l, r) => binary(*op, l, r, ctx),
                inner => inner.eval(ctx),
            }
            .map_err(|e| e.at(origin)),
            CExpr::Read(place) => Ok(read(ctx.event, place)),
            CExpr::Local(slot) => Ok(ctx.locals.get(*slot).cloned().unwrap_or(Value::Null)),
            CExpr::Boolean(e) => match e.eval(ctx)? {
                v @ Value::Bool(_) => Ok(v),
                v => fail(format!(
                    "a condition must be a boolean, got {}",
                    super::types::Ty::of(&v).describe()
                )),
            },
            CExpr::Source => Ok(Value::String(ctx.source.into())),
            CExpr::Array(items) => items
                .iter()
                .map(|e| e.eval(ctx))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            CExpr::Map(entries) => {
                let mut m = Map::new();
                for (k, e) in entries {
                    m.insert(k.clone(), e.eval(ctx)?);
                }
                Ok(Value::Map(m))
            }
            CExpr::Index(base, index) => {
                let base = base.eval(ctx)?;
                let seg = match index.eval(ctx)? {
                    Value::Int(i) => Segment::Index(i),
                    v => match super::functions::text_of(&v) {
                        Some(t) => Segment::Field(t.as_ref().into()),
                        None => return fail("an index must be an integer or a string"),
                    },
                };
                Ok(get_in(&base, std::slice::from_ref(&seg))
                    .cloned()
                    .unwrap_or(Value::Null))
            }
            CExpr::Not(e) => match e.eval(ctx)? {
                Value::Bool(b) => Ok(Value::Bool(!b)),
                Value::Null => Ok(Value::Bool(true)),
                v => fail(format!(
                    "`not` needs a boolean, got {}",
                    super::types::Ty::of(&v).describe()
                )),
            },
            CExpr::Neg(e) => match e.eval(ctx)? {
                Value::Int(i) => Ok(Value::Int(i.wrapping_neg())),
                Value::Float(f) => Ok(Value::Float(-f)),
                v => fail(format!(
                    "cannot negate {}",
                    super::types::Ty::of(&v).describe()
                )),
            },
            CExpr::Bin(op, l, r) => binary(*op, l, r, ctx),
            CExpr::Call(f, args, prepared) => call(f, args, prepared, ctx),
            CExpr::Del(place) => Ok(delete(ctx.event, place)),
            CExpr::Emit(emission) => emission.run(ctx).map(|()| Value::Null),
            CExpr::Exists(place) => Ok(Value::Bool(!matches!(read(ctx.event, place), Value::Null))),
            CExpr::If(cond, then, otherwise) => {
                if truthy(&cond.eval(ctx)?) {
                    run_block(then, ctx)
                } else {
                    run_block(otherwise, ctx)
                }
            }
            CExpr::Iterate(it) => it.eval(ctx),
        }
    }
}

/// Evaluates an argument or operand: the leaves (constants, field reads)
/// without a level of recursion.
#[inline(always)]
fn operand(e: &CExpr, ctx: &mut Ctx) -> EvalResult {
    match e {
        CExpr::Const(v) => Ok(v.clone()),
        CExpr::Read(place) => Ok(read(ctx.event, place)),
        e => e.eval(ctx),
    }
}

/// Calls a function of the registry on its evaluated arguments.
#[inline(always)]
fn call(f: &Function, args: &[CExpr], prepared: &Prepared, ctx: &mut Ctx) -> EvalResult {
    let mut values: smallvec::SmallVec<[Value; 4]> = smallvec::SmallVec::new();
    for a in args {
        values.push(operand(a, ctx)?);
    }
    while values.len() < f.params.len() {
        values.push(Value::Null);
    }
    (f.call)(&values, prepared).map_err(|e| EvalError::new(format!("{}: {e}", f.name)))
}

fn binary(op: BinOp, l: &CExpr, r: &CExpr, ctx: &mut Ctx) -> EvalResult {
    match op {
        BinOp::And => {
            if !truthy(&operand(l, ctx)?) {
                return Ok(Value::Bool(false));
            }
            Ok(Value::Bool(truthy(&operand(r, ctx)?)))
        }
        BinOp::Or => {
            if truthy(&operand(l, ctx)?) {
                return Ok(Value::Bool(true));
            }
            Ok(Value::Bool(truthy(&operand(r, ctx)?)))
        }
        BinOp::Coalesce => match operand(l, ctx) {
            Ok(Value::Null) | Err(_) => operand(r, ctx),
            Ok(v) => Ok(v),
        },
        _ => {
            let a = operand(l, ctx)?;
            let b = operand(r, ctx)?;
            apply(op, a, b)
        }
    }
}

/// Applies an arithmetic or comparison operator.
pub fn apply(op: BinOp, a: Value, b: Value) -> EvalResult {
    use Value::*;
    match op {
        BinOp::Eq => Ok(Bool(equal(&a, &b))),
        BinOp::Ne => Ok(Bool(!equal(&a, &b))),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let Some(ord) = compare(&a, &b) else {
                return Ok(Bool(false));
            };
            Ok(Bool(match op {
                BinOp::Lt => ord == Ordering::Less,
                BinOp::Le => ord != Ordering::Greater,
                BinOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }))
        }
        BinOp::Add => match (&a, &b) {
            (Int(x), Int(y)) => x
                .checked_add(*y)
                .map(Int)
                .ok_or_else(|| EvalError::new("integer overflow")),
            (Int(_) | Float(_), Int(_) | Float(_)) => Ok(Float(num(&a) + num(&b))),
            (Timestamp(t), Int(n)) => Ok(Timestamp(t.saturating_add(*n))),
            // Strings join only with strings: `7 + "a"` is an error, not "7a".
            _ => match (super::functions::text_of(&a), super::functions::text_of(&b)) {
                (Some(x), Some(y)) => Ok(String(format!("{x}{y}").into())),
                _ => fail(format!(
                    "cannot add {} and {}: `+` does not convert; use to_string(...)",
                    super::types::Ty::of(&a).describe(),
                    super::types::Ty::of(&b).describe()
                )),
            },
        },
        BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => match (&a, &b) {
            (Int(x), Int(y)) => {
                let r = match op {
                    BinOp::Sub => x.checked_sub(*y),
                    BinOp::Mul => x.checked_mul(*y),
                    BinOp::Div => x.checked_div(*y),
                    _ => x.checked_rem(*y),
                };
                r.map(Int)
                    .ok_or_else(|| EvalError::new("integer overflow or division by zero"))
            }
            (Int(_) | Float(_), Int(_) | Float(_)) => {
                let (x, y) = (num(&a), num(&b));
                Ok(Float(match op {
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                    _ => x % y,
                }))
            }
            (Timestamp(x), Timestamp(y)) if op == BinOp::Sub => Ok(Int(x.saturating_sub(*y))),
            _ => fail(format!(
                "arithmetic needs numbers, got {} and {}",
                super::types::Ty::of(&a).describe(),
                super::types::Ty::of(&b).describe()
            )),
        },
        BinOp::And | BinOp::Or | BinOp::Coalesce => {
            fail("internal: short-circuit operator applied eagerly")
        }
    }
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    }
}

/// Equality across representations: bytes equal strings with the same text,
/// integers equal floats with the same value.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => num(a) == num(b),
        (Value::String(_) | Value::Bytes(_), Value::String(_) | Value::Bytes(_)) => {
            super::functions::text_of(a) == super::functions::text_of(b)
        }
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            num(a).partial_cmp(&num(b))
        }
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        _ => match (super::functions::text_of(a), super::functions::text_of(b)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => None,
        },
    }
}

/// Follows `segments` inside a value.
#[inline]
pub fn get_in<'v>(mut v: &'v Value, segments: &[Segment]) -> Option<&'v Value> {
    for s in segments {
        v = match (v, s) {
            (Value::Map(m), Segment::Field(k)) => m.get(k.as_str())?,
            (Value::Array(a), Segment::Index(i)) => {
                let idx = if *i < 0 {
                    a.len().checked_sub(i.unsigned_abs() as usize)?
                } else {
                    *i as usize
                };
                a.get(idx)?
            }
            _ => return None,
        };
    }
    Some(v)
}

fn attrs_map(attrs: &[(Str, Value)]) -> Value {
    Value::Map(attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn lookup(attrs: &[(Str, Value)], key: &str, rest: &[Segment]) -> Value {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| get_in(v, rest))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Reads a place of an event (null when absent).
pub fn read(event: &Event, place: &Place) -> Value {
    match event {
        Event::Log(log) => read_log(log, place),
        Event::Metric(m) => read_metric(m, place),
    }
}

fn split_first(rest: &[Segment]) -> Option<(&Str, &[Segment])> {
    match rest.split_first() {
        Some((Segment::Field(k), tail)) => Some((k, tail)),
        _ => None,
    }
}

fn read_log(log: &LogRecord, place: &Place) -> Value {
    let whole = |v: Value| get_in(&v, &place.rest).cloned().unwrap_or(Value::Null);
    match &place.root {
        Root::Message => {
            if place.rest.is_empty() {
                log.body.clone()
            } else {
                get_in(&log.body, &place.rest)
                    .cloned()
                    .unwrap_or(Value::Null)
            }
        }
        Root::Timestamp => whole(Value::Timestamp(log.time_unix_nano as i64)),
        Root::Severity => whole(
            log.severity_text
                .clone()
                .map(Value::from)
                .unwrap_or(Value::Null),
        ),
        Root::Resource => match split_first(&place.rest) {
            Some((k, tail)) => lookup(&log.resource.attributes, k, tail),
            None => attrs_map(&log.resource.attributes),
        },
        Root::Attributes => match split_first(&place.rest) {
            Some((k, tail)) => lookup(&log.attributes, k, tail),
            None => attrs_map(&log.attributes),
        },
        Root::MetricField(k) => lookup(&log.attributes, k, &place.rest),
        Root::Attr(k) => lookup(&log.attributes, k, &place.rest),
    }
}

fn read_metric(m: &MetricPoint, place: &Place) -> Value {
    match &place.root {
        Root::MetricField("name") => Value::String(m.name.as_str().into()),
        Root::MetricField("unit") => Value::String(m.unit.as_str().into()),
        Root::MetricField(_) => Value::Float(m.value),
        Root::Timestamp => Value::Timestamp(m.time_unix_nano as i64),
        Root::Resource => match split_first(&place.rest) {
            Some((k, tail)) => lookup(&m.resource.attributes, k, tail),
            None => attrs_map(&m.resource.attributes),
        },
        Root::Attributes => match split_first(&place.rest) {
            Some((k, tail)) => lookup(&m.labels, k, tail),
            None => attrs_map(&m.labels),
        },
        Root::Attr(k) => lookup(&m.labels, k, &place.rest),
        Root::Message | Root::Severity => Value::Null,
    }
}

/// Sets `segments` inside `target`, creating maps on the way.
fn set_in(target: &mut Value, segments: &[Segment], v: Value) -> Result<(), EvalError> {
    let Some((first, tail)) = segments.split_first() else {
        *target = v;
        return Ok(());
    };
    match first {
        Segment::Field(k) => {
            if !matches!(target, Value::Map(_)) {
                *target = Value::Map(Map::new());
            }
            let Value::Map(m) = target else {
                return fail("internal: not a map");
            };
            set_in(m.get_or_insert(k, Value::Null), tail, v)
        }
        Segment::Index(i) => match target {
            Value::Array(a) => {
                let idx = if *i < 0 {
                    a.len().checked_sub(i.unsigned_abs() as usize)
                } else {
                    Some(*i as usize)
                };
                match idx.and_then(|i| a.get_mut(i)) {
                    Some(slot) => set_in(slot, tail, v),
                    None => fail(format!("index {i} is out of bounds")),
                }
            }
            _ => fail(format!("cannot index [{i}] into a non-array")),
        },
    }
}

fn set_attr(
    attrs: &mut Vec<(Str, Value)>,
    key: &Str,
    rest: &[Segment],
    v: Value,
) -> Result<(), EvalError> {
    match attrs.iter_mut().find(|(k, _)| k == key) {
        Some((_, slot)) if rest.is_empty() => {
            *slot = v;
            Ok(())
        }
        Some((_, slot)) => set_in(slot, rest, v),
        None if rest.is_empty() => {
            attrs.push((key.clone(), v));
            Ok(())
        }
        None => {
            let mut slot = Value::Null;
            set_in(&mut slot, rest, v)?;
            attrs.push((key.clone(), slot));
            Ok(())
        }
    }
}

fn replace_all(attrs: &mut Vec<(Str, Value)>, v: Value) -> Result<(), EvalError> {
    match v {
        Value::Map(m) => {
            *attrs = m.into_iter().collect();
            Ok(())
        }
        other => fail(format!(
            "attributes must be a map, got {}",
            super::types::Ty::of(&other).describe()
        )),
    }
}

/// Writes a place of an event.
pub fn write(event: &mut Event, place: &Place, v: Value) -> Result<(), EvalError> {
    match event {
        Event::Log(log) => write_log(log, place, v),
        Event::Metric(m) => write_metric(m, place, v),
    }
}

fn write_log(log: &mut LogRecord, place: &Place, v: Value) -> Result<(), EvalError> {
    match &place.root {
        Root::Message => set_in(&mut log.body, &place.rest, v),
        Root::Timestamp => {
            log.time_unix_nano = match v {
                Value::Timestamp(ns) | Value::Int(ns) => ns.max(0) as u64,
                other => match super::functions::text_of(&other) {
                    Some(t) => convert::parse_time(&t, None)
                        .map_err(EvalError::new)?
                        .max(0) as u64,
                    None => return fail("`.timestamp` must be a timestamp"),
                },
            };
            Ok(())
        }
        Root::Severity => {
            let (text, number) = match &v {
                Value::Null => (None, 0),
                other => match convert::severity_of(other) {
                    Some((t, n)) => (Some(t.to_owned()), n),
                    None => (super::functions::text_of(other).map(|t| t.into_owned()), 0),
                },
            };
            log.severity_text = text;
            log.severity_number = number;
            Ok(())
        }
        Root::Resource => match split_first(&place.rest) {
            Some((k, tail)) => {
                set_attr(&mut Arc::make_mut(&mut log.resource).attributes, k, tail, v)
            }
            None => replace_all(&mut Arc::make_mut(&mut log.resource).attributes, v),
        },
        Root::Attributes => match split_first(&place.rest) {
            Some((k, tail)) => set_attr(&mut log.attributes, k, tail, v),
            None => replace_all(&mut log.attributes, v),
        },
        Root::MetricField(k) => set_attr(&mut log.attributes, &Str::const_new(k), &place.rest, v),
        Root::Attr(k) => set_attr(&mut log.attributes, k, &place.rest, v),
    }
}

fn write_metric(m: &mut MetricPoint, place: &Place, v: Value) -> Result<(), EvalError> {
    match &place.root {
        Root::MetricField("name") | Root::MetricField("unit") => {
            let text = super::functions::text_of(&v)
                .ok_or_else(|| EvalError::new("a metric name or unit must be a string"))?
                .into_owned();
            if matches!(place.root, Root::MetricField("name")) {
                m.name = text;
            } else {
                m.unit = text;
            }
            Ok(())
        }
        Root::MetricField(_) => match v {
            Value::Int(i) => {
                m.value = i as f64;
                Ok(())
            }
            Value::Float(f) => {
                m.value = f;
                Ok(())
            }
            _ => fail("a metric value must be a number"),
        },
        Root::Resource => match split_first(&place.rest) {
            Some((k, tail)) => set_attr(&mut Arc::make_mut(&mut m.resource).attributes, k, tail, v),
            None => replace_all(&mut Arc::make_mut(&mut m.resource).attributes, v),
        },
        Root::Attributes => match split_first(&place.rest) {
            Some((k, tail)) => set_attr(&mut m.labels, k, tail, v),
            None => replace_all(&mut m.labels, v),
        },
        Root::Attr(k) => set_attr(&mut m.labels, k, &place.rest, v),
        Root::Timestamp | Root::Message | Root::Severity => {
            fail("metrics have no message, severity or settable timestamp")
        }
    }
}

fn remove_in(target: &mut Value, segments: &[Segment]) -> Option<Value> {
    let (last, parents) = segments.split_last()?;
    let mut cur = target;
    for s in parents {
        cur = match (cur, s) {
            (Value::Map(m), Segment::Field(k)) => m.get_mut(k.as_str())?,
            (Value::Array(a), Segment::Index(i)) if *i >= 0 => a.get_mut(*i as usize)?,
            _ => return None,
        };
    }
    match (cur, last) {
        (Value::Map(m), Segment::Field(k)) => m.remove(k.as_str()),
        (Value::Array(a), Segment::Index(i)) if *i >= 0 && (*i as usize) < a.len() => {
            Some(a.remove(*i as usize))
        }
        _ => None,
    }
}

fn remove_attr(attrs: &mut Vec<(Str, Value)>, key: &str, rest: &[Segment]) -> Value {
    let Some(pos) = attrs.iter().position(|(k, _)| k == key) else {
        return Value::Null;
    };
    if rest.is_empty() {
        return attrs.remove(pos).1;
    }
    remove_in(&mut attrs[pos].1, rest).unwrap_or(Value::Null)
}

/// Removes a place; returns what was there.
pub fn delete(event: &mut Event, place: &Place) -> Value {
    let attrs = match event {
        Event::Log(log) => match &place.root {
            Root::Message => return std::mem::replace(&mut log.body, Value::Null),
            Root::Severity => {
                log.severity_number = 0;
                return log
                    .severity_text
                    .take()
                    .map(Value::from)
                    .unwrap_or(Value::Null);
            }
            Root::Timestamp => return Value::Null,
            Root::Resource => &mut Arc::make_mut(&mut log.resource).attributes,
            _ => &mut log.attributes,
        },
        Event::Metric(m) => match &place.root {
            Root::Resource => &mut Arc::make_mut(&mut m.resource).attributes,
            Root::Attr(_) | Root::Attributes => &mut m.labels,
            _ => return Value::Null,
        },
    };
    match &place.root {
        Root::Attr(k) => remove_attr(attrs, k, &place.rest),
        Root::MetricField(k) => remove_attr(attrs, k, &place.rest),
        _ => match split_first(&place.rest) {
            Some((k, tail)) => remove_attr(attrs, k, tail),
            None => {
                let all = attrs_map(attrs);
                attrs.clear();
                all
            }
        },
    }
}
