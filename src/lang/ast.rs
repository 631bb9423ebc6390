//! The syntax tree of a `.ship` file, as parsed (names not yet resolved).

use super::diagnostics::Span;
pub use super::lex::Segment;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, Default)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub enum Item {
    Source(Component),
    Sink(Component),
    Settings(Vec<Opt>, Span),
    Step(Step),
    Route(Vec<Rule>, Span),
    Test(Test),
    /// `let NAME = EXPR` at the top level: evaluated once when the pipeline
    /// loads, usable in every expression of the file.
    Let {
        name: Ident,
        value: Expr,
        span: Span,
    },
}

/// `source NAME = KIND { options }` or `sink NAME = KIND { options }`.
#[derive(Debug, Clone)]
pub struct Component {
    pub name: Ident,
    pub kind: Ident,
    pub options: Vec<Opt>,
    pub span: Span,
}

/// `key = value`; dotted keys (`multiline.start`) are joined with `.`.
#[derive(Debug, Clone)]
pub struct Opt {
    pub key: Ident,
    pub value: Expr,
}

/// What a failed step does with its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Count it and send it to the `dead_letter` route (or drop it when there is none).
    Abort,
    /// Undo the step's writes and go on.
    Keep,
    /// Count and drop the event.
    Drop,
    /// Undo the step's writes, set `shipd.error`, go on.
    Tag,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: Ident,
    pub sources: Vec<Ident>,
    pub condition: Option<Expr>,
    pub on_error: Option<(OnError, Span)>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum Stmt {
    Assign {
        target: Vec<Segment>,
        value: Expr,
        span: Span,
    },
    Drop {
        condition: Option<Expr>,
        span: Span,
    },
    /// `let NAME = EXPR`: a local of the enclosing block, per event.
    Let {
        name: Ident,
        value: Expr,
        span: Span,
    },
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub enum RuleKind {
    When(Expr),
    Else,
    DeadLetter,
}

/// `condition => sink [or sink...] [stream EXPR]`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub kind: RuleKind,
    pub sinks: Vec<Ident>,
    pub stream: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Test {
    pub name: String,
    /// `env { NAME = "value" }`: the only environment the test sees.
    pub env: Vec<Opt>,
    pub inputs: Vec<Input>,
    pub expects: Vec<Expect>,
    pub span: Span,
}

/// One `input` line of a test.
#[derive(Debug, Clone)]
pub enum Input {
    /// `input SOURCE { field = value }`: one event as the source would make it.
    Fields(Ident, Vec<Opt>),
    /// `input SOURCE lines [ "...", ... ] [from "PATH"]`: raw lines through
    /// the source's framing, read as if from the file at PATH.
    Lines(Ident, Expr, Option<Expr>),
}

#[derive(Debug, Clone)]
pub enum Expect {
    Conditions(Vec<Expr>),
    Route {
        sink: Ident,
        stream: Option<Expr>,
        span: Span,
    },
    Dropped(Span),
    /// `expect failed ["substring"]`: a step failed (the event was dead-lettered).
    Failed(Option<Expr>, Span),
    /// `expect metric "name" { label = "value" } == number`: a series the
    /// steps recorded, after every input of the test.
    Metric {
        name: Ident,
        labels: Vec<Opt>,
        value: Expr,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Regex(String),
    Duration(Duration),
    Size(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Coalesce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Not,
    Neg,
}

#[derive(Debug, Clone)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Lit(Lit),
    Path(Vec<Segment>),
    /// A bare name: a source name, or `source` (the event's source).
    Name(String),
    Array(Vec<Expr>),
    Map(Vec<(String, Expr)>),
    Index(Box<Expr>, Box<Expr>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call {
        name: Ident,
        abort: bool,
        args: Vec<Arg>,
    },
    If {
        cond: Box<Expr>,
        then: Vec<Stmt>,
        otherwise: Option<Vec<Stmt>>,
    },
    /// `|x| body` or `|k, v| body`: only an argument of `map_values`,
    /// `map_keys` and `filter`, which run `body` once per element.
    Closure {
        params: Vec<Ident>,
        body: Box<Expr>,
    },
}
