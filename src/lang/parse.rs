//! The parser: tokens to a syntax tree. Recursive descent for items and
//! statements, precedence climbing for expressions. After an error it skips to
//! the next top-level item, so one run reports every broken item.

use super::ast::*;
use super::diagnostics::{Diagnostic, Span};
use super::lex::{lex, Tok, Token};

const ITEM_KEYWORDS: [&str; 7] = ["source", "sink", "step", "route", "test", "settings", "let"];
const MAX_DEPTH: usize = 64;

struct Parser {
    toks: Vec<Token>,
    /// Per token: a line break separates it from the token before.
    line_start: Vec<bool>,
    pos: usize,
    depth: usize,
    end: usize,
}

type PResult<T> = Result<T, Diagnostic>;

/// Parses a whole file; returns the tree of every item that parsed, and all errors.
pub fn parse(src: &str) -> (File, Vec<Diagnostic>) {
    let (tokens, mut errors) = lex(src);
    let toks: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t.tok, Tok::Comment(_)))
        .collect();
    let line_start = line_starts(src, &toks);
    let mut p = Parser {
        toks,
        line_start,
        pos: 0,
        depth: 0,
        end: src.len(),
    };
    let mut file = File::default();
    while p.pos < p.toks.len() {
        match p.item() {
            Ok(item) => file.items.push(item),
            Err(e) => {
                errors.push(e);
                p.recover();
            }
        }
    }
    (file, errors)
}

/// Parses one expression (for `shipctl tail --where`).
pub fn parse_expr(src: &str) -> Result<Expr, Vec<Diagnostic>> {
    let (tokens, errors) = lex(src);
    if !errors.is_empty() {
        return Err(errors);
    }
    let toks: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t.tok, Tok::Comment(_)))
        .collect();
    let line_start = line_starts(src, &toks);
    let mut p = Parser {
        toks,
        line_start,
        pos: 0,
        depth: 0,
        end: src.len(),
    };
    let e = p.expr().map_err(|e| vec![e])?;
    if let Some(t) = p.toks.get(p.pos) {
        return Err(vec![Diagnostic::new(
            t.span,
            format!("unexpected {} after the expression", t.tok.describe()),
        )]);
    }
    Ok(e)
}

/// For each token, whether a line break lies between it and the token before
/// (comments in between do not count as tokens).
fn line_starts(src: &str, toks: &[Token]) -> Vec<bool> {
    let mut prev_end = 0;
    toks.iter()
        .map(|t| {
            let gap = src.get(prev_end..t.span.start).unwrap_or("");
            prev_end = t.span.end;
            gap.contains('\n')
        })
        .collect()
}

/// The literal a token stands for, if it is one.
fn token_literal(tok: &Tok) -> Option<Lit> {
    Some(match tok {
        Tok::Str(s) => Lit::Str(s.clone()),
        Tok::Regex(r) => Lit::Regex(r.clone()),
        Tok::Int(i) => Lit::Int(*i),
        Tok::Float(f) => Lit::Float(*f),
        Tok::Duration(d) => Lit::Duration(*d),
        Tok::Size(n) => Lit::Size(*n),
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.pos + n).map(|t| &t.tok)
    }

    fn span(&self) -> Span {
        self.toks
            .get(self.pos)
            .map(|t| t.span)
            .unwrap_or(Span::new(self.end, self.end))
    }

    fn prev_span(&self) -> Span {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map(|t| t.span)
            .unwrap_or_default()
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == w)
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn found(&self) -> String {
        self.peek()
            .map(Tok::describe)
            .unwrap_or_else(|| "the end of the file".into())
    }

    fn expect(&mut self, tok: Tok, hint: &str) -> PResult<Span> {
        if self.eat(&tok) {
            return Ok(self.prev_span());
        }
        Err(Diagnostic::new(
            self.span(),
            format!(
                "expected `{}`, found {}",
                super::lex::punct_text(&tok),
                self.found()
            ),
        )
        .hint(hint))
    }

    fn ident(&mut self, what: &str) -> PResult<Ident> {
        match self.peek().cloned() {
            Some(Tok::Ident(name)) => {
                let span = self.span();
                self.pos += 1;
                Ok(Ident { name, span })
            }
            _ => Err(Diagnostic::new(
                self.span(),
                format!("expected {what}, found {}", self.found()),
            )
            .hint(format!("{what}s are written like_this"))),
        }
    }

    fn recover(&mut self) {
        self.pos += 1;
        let mut depth: i32 = 0;
        while let Some(t) = self.peek() {
            match t {
                Tok::LBrace => depth += 1,
                Tok::RBrace => depth -= 1,
                Tok::Ident(w) if depth <= 0 && ITEM_KEYWORDS.contains(&w.as_str()) => return,
                _ => {}
            }
            self.pos += 1;
        }
    }

    fn item(&mut self) -> PResult<Item> {
        let start = self.span();
        let Some(Tok::Ident(word)) = self.peek().cloned() else {
            return Err(Diagnostic::new(start, format!("expected an item, found {}", self.found()))
                .hint("a pipeline file holds `source`, `step`, `sink`, `route`, `test`, `settings` and `let` items"));
        };
        self.pos += 1;
        match word.as_str() {
            "source" | "sink" => {
                let name = self.ident("a name")?;
                self.expect(Tok::Assign, "write `source NAME = KIND { ... }`")?;
                let kind = self.ident("a component kind")?;
                let options = self.options()?;
                let c = Component {
                    name,
                    kind,
                    options,
                    span: start.to(self.prev_span()),
                };
                Ok(if word == "source" {
                    Item::Source(c)
                } else {
                    Item::Sink(c)
                })
            }
            "settings" => {
                let options = self.options()?;
                Ok(Item::Settings(options, start.to(self.prev_span())))
            }
            "step" => self.step(start),
            "let" => {
                let (name, value) = self.let_binding()?;
                Ok(Item::Let {
                    name,
                    value,
                    span: start.to(self.prev_span()),
                })
            }
            "route" => self.route(start),
            "test" => self.test(start),
            other => Err(
                Diagnostic::new(start, format!("unknown item `{other}`")).hint(
                    super::diagnostics::did_you_mean(other, ITEM_KEYWORDS)
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| {
                            "items are source, step, sink, route, test, settings, let".into()
                        }),
                ),
            ),
        }
    }

    /// `{ key = value, ... }` (commas optional).
    fn options(&mut self) -> PResult<Vec<Opt>> {
        self.expect(Tok::LBrace, "options go in braces: `{ key = value }`")?;
        let mut out = Vec::new();
        loop {
            while self.eat(&Tok::Comma) || self.eat(&Tok::Semi) {}
            if self.eat(&Tok::RBrace) {
                return Ok(out);
            }
            let mut key = self.ident("an option name")?;
            while let Some(Tok::Path(segs)) = self.peek().cloned() {
                // `multiline.start` lexes as `multiline` followed by the path `.start`.
                for s in segs {
                    match s {
                        Segment::Field(f) => {
                            key.name.push('.');
                            key.name.push_str(&f);
                        }
                        Segment::Index(_) => {}
                    }
                }
                key.span = key.span.to(self.span());
                self.pos += 1;
            }
            if !self.eat(&Tok::Assign) && !self.eat(&Tok::Colon) {
                return Err(Diagnostic::new(
                    self.span(),
                    format!("expected `=` after `{}`, found {}", key.name, self.found()),
                )
                .hint("options are written `name = value`"));
            }
            let value = self.expr()?;
            out.push(Opt { key, value });
        }
    }

    fn step(&mut self, start: Span) -> PResult<Item> {
        let name = self.ident("a step name")?;
        let mut sources = Vec::new();
        if self.eat_word("on") {
            loop {
                sources.push(self.ident("a source name")?);
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
        }
        let condition = if self.eat_word("where") {
            Some(self.expr()?)
        } else {
            None
        };
        let on_error = if self.eat_word("on_error") {
            let policy = self.ident("a failure policy")?;
            let p = match policy.name.as_str() {
                "abort" | "dead_letter" => OnError::Abort,
                "keep" => OnError::Keep,
                "drop" => OnError::Drop,
                "tag" => OnError::Tag,
                other => {
                    return Err(Diagnostic::new(
                        policy.span,
                        format!("unknown failure policy `{other}`"),
                    )
                    .hint("use keep, drop, tag or dead_letter"))
                }
            };
            Some((p, policy.span))
        } else {
            None
        };
        let body = self.block()?;
        Ok(Item::Step(Step {
            name,
            sources,
            condition,
            on_error,
            body,
            span: start.to(self.prev_span()),
        }))
    }

    fn route(&mut self, start: Span) -> PResult<Item> {
        self.expect(Tok::LBrace, "write `route { condition => sink ... }`")?;
        let mut rules = Vec::new();
        loop {
            while self.eat(&Tok::Comma) || self.eat(&Tok::Semi) {}
            if self.eat(&Tok::RBrace) {
                break;
            }
            let rstart = self.span();
            let kind = if self.is_word("else") && self.peek_at(1) == Some(&Tok::Arrow) {
                self.pos += 1;
                RuleKind::Else
            } else if self.is_word("dead_letter") && self.peek_at(1) == Some(&Tok::Arrow) {
                self.pos += 1;
                RuleKind::DeadLetter
            } else {
                RuleKind::When(self.expr()?)
            };
            self.expect(Tok::Arrow, "routes are written `condition => sink`")?;
            let mut sinks = vec![self.ident("a sink name")?];
            while self.eat_word("or") {
                sinks.push(self.ident("a sink name")?);
            }
            let stream = if self.eat_word("stream") {
                Some(self.expr()?)
            } else {
                None
            };
            rules.push(Rule {
                kind,
                sinks,
                stream,
                span: rstart.to(self.prev_span()),
            });
        }
        Ok(Item::Route(rules, start.to(self.prev_span())))
    }

    fn test(&mut self, start: Span) -> PResult<Item> {
        let name = match self.bump() {
            Some(Token {
                tok: Tok::Str(s), ..
            }) => s,
            _ => {
                return Err(Diagnostic::new(
                    self.prev_span(),
                    "expected the test's name as a string",
                )
                .hint("write `test \"what it proves\" { ... }`"))
            }
        };
        self.expect(Tok::LBrace, "a test's body goes in braces")?;
        let mut env = Vec::new();
        let mut inputs = Vec::new();
        let mut expects = Vec::new();
        loop {
            while self.eat(&Tok::Comma) || self.eat(&Tok::Semi) {}
            if self.eat(&Tok::RBrace) {
                break;
            }
            if self.is_word("env") && self.peek_at(1) == Some(&Tok::LBrace) {
                self.pos += 1;
                env.extend(self.options()?);
            } else if self.eat_word("input") {
                let source = self.ident("a source name")?;
                if self.eat_word("lines") {
                    let lines = self.expr()?;
                    let path = if self.eat_word("from") {
                        Some(self.expr()?)
                    } else {
                        None
                    };
                    inputs.push(Input::Lines(source, lines, path));
                } else {
                    inputs.push(Input::Fields(source, self.options()?));
                }
            } else if self.eat_word("expect") {
                let es = self.span();
                if self.eat_word("route") {
                    let sink = self.ident("a sink name")?;
                    let stream = if self.eat_word("stream") {
                        Some(self.expr()?)
                    } else {
                        None
                    };
                    expects.push(Expect::Route {
                        sink,
                        stream,
                        span: es.to(self.prev_span()),
                    });
                } else if self.eat_word("metric") {
                    let name = match self.bump() {
                        Some(Token {
                            tok: Tok::Str(s),
                            span,
                        }) => Ident { name: s, span },
                        _ => {
                            return Err(Diagnostic::new(
                                self.prev_span(),
                                "expected the metric's name as a string",
                            )
                            .hint("write `expect metric \"http_requests_total\" { status = \"200\" } == 2`"))
                        }
                    };
                    let labels = if self.peek() == Some(&Tok::LBrace) {
                        self.options()?
                    } else {
                        Vec::new()
                    };
                    self.expect(
                        Tok::Eq,
                        "write `expect metric \"name\" { label = \"value\" } == number`",
                    )?;
                    let value = self.expr()?;
                    expects.push(Expect::Metric {
                        name,
                        labels,
                        value,
                        span: es.to(self.prev_span()),
                    });
                } else if self.eat_word("dropped") {
                    expects.push(Expect::Dropped(es));
                } else if self.eat_word("failed") {
                    let message = match self.peek() {
                        Some(Tok::Str(_)) => Some(self.expr()?),
                        _ => None,
                    };
                    expects.push(Expect::Failed(message, es.to(self.prev_span())));
                } else {
                    self.expect(Tok::LBrace, "write `expect { condition, ... }`")?;
                    let mut conds = Vec::new();
                    loop {
                        while self.eat(&Tok::Comma) || self.eat(&Tok::Semi) {}
                        if self.eat(&Tok::RBrace) {
                            break;
                        }
                        conds.push(self.expr()?);
                    }
                    expects.push(Expect::Conditions(conds));
                }
            } else {
                return Err(Diagnostic::new(self.span(), format!("expected `env`, `input` or `expect`, found {}", self.found()))
                    .hint("a test holds `env { NAME = \"value\" }`, `input SOURCE { field = value }` (or `input SOURCE lines [\"...\"] [from \"PATH\"]`) and `expect { condition }` lines"));
            }
        }
        Ok(Item::Test(Test {
            name,
            env,
            inputs,
            expects,
            span: start.to(self.prev_span()),
        }))
    }

    /// `{ statement* }`.
    fn block(&mut self) -> PResult<Vec<Stmt>> {
        self.expect(Tok::LBrace, "a block goes in braces")?;
        let mut out = Vec::new();
        loop {
            while self.eat(&Tok::Semi) || self.eat(&Tok::Comma) {}
            if self.eat(&Tok::RBrace) {
                return Ok(out);
            }
            if self.peek().is_none() {
                return Err(Diagnostic::new(self.span(), "unclosed block").hint("add `}`"));
            }
            out.push(self.stmt()?);
            self.statement_end()?;
        }
    }

    /// A statement ends at a line break, `;` or the `}` of its block; anything
    /// else on the same line would silently start a second statement.
    fn statement_end(&mut self) -> PResult<()> {
        match self.peek() {
            None | Some(Tok::Semi | Tok::Comma | Tok::RBrace) => Ok(()),
            Some(_) if self.line_start.get(self.pos) == Some(&true) => Ok(()),
            Some(next) => {
                let after_value = matches!(
                    self.pos
                        .checked_sub(1)
                        .and_then(|i| self.toks.get(i))
                        .map(|t| &t.tok),
                    Some(Tok::RParen | Tok::RBracket | Tok::Ident(_))
                );
                let hint = if matches!(next, Tok::Path(_)) && after_value {
                    "put each statement on its own line or separate them with `;`; to read a field of the value, write it with no space before the dot: `f(x).field`"
                } else {
                    "put each statement on its own line or separate them with `;`"
                };
                Err(Diagnostic::new(
                    self.span(),
                    format!(
                        "expected a newline or `;` after the statement, found {}",
                        self.found()
                    ),
                )
                .hint(hint))
            }
        }
    }

    /// `NAME = EXPR` after `let`.
    fn let_binding(&mut self) -> PResult<(Ident, Expr)> {
        let name = self.ident("a local name")?;
        self.expect(Tok::Assign, "write `let name = value`")?;
        let value = self.expr()?;
        Ok((name, value))
    }

    fn stmt(&mut self) -> PResult<Stmt> {
        let start = self.span();
        if self.eat_word("let") {
            let (name, value) = self.let_binding()?;
            return Ok(Stmt::Let {
                name,
                span: start.to(value.span),
                value,
            });
        }
        if self.eat_word("drop") {
            let condition = if self.eat_word("where") {
                Some(self.expr()?)
            } else {
                None
            };
            return Ok(Stmt::Drop {
                condition,
                span: start.to(self.prev_span()),
            });
        }
        let e = self.expr()?;
        if self.eat(&Tok::Assign) {
            let target = match e.kind {
                ExprKind::Path(segs) if !segs.is_empty() => segs,
                _ => {
                    return Err(
                        Diagnostic::new(e.span, "only a field path can be assigned to")
                            .hint("write `.field = value`"),
                    )
                }
            };
            let value = self.expr()?;
            return Ok(Stmt::Assign {
                target,
                span: start.to(value.span),
                value,
            });
        }
        Ok(Stmt::Expr(e))
    }

    pub fn expr(&mut self) -> PResult<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.depth -= 1;
            return Err(Diagnostic::new(self.span(), "expression nested too deeply")
                .hint("split it into several assignments"));
        }
        let r = self.binary(0);
        self.depth -= 1;
        r
    }

    fn binop(&self) -> Option<(BinOp, u8)> {
        let op = match self.peek()? {
            Tok::Ident(w) if w == "or" => (BinOp::Or, 2),
            Tok::Ident(w) if w == "and" => (BinOp::And, 3),
            Tok::Eq => (BinOp::Eq, 4),
            Tok::Ne => (BinOp::Ne, 4),
            Tok::Lt => (BinOp::Lt, 4),
            Tok::Le => (BinOp::Le, 4),
            Tok::Gt => (BinOp::Gt, 4),
            Tok::Ge => (BinOp::Ge, 4),
            Tok::Coalesce => (BinOp::Coalesce, 5),
            Tok::Plus => (BinOp::Add, 6),
            Tok::Minus => (BinOp::Sub, 6),
            Tok::Star => (BinOp::Mul, 7),
            Tok::Slash => (BinOp::Div, 7),
            Tok::Percent => (BinOp::Rem, 7),
            _ => return None,
        };
        Some(op)
    }

    fn binary(&mut self, min: u8) -> PResult<Expr> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec < min || prec == 0 {
                break;
            }
            self.pos += 1;
            let rhs = self.binary(prec + 1)?;
            let span = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
            // comparisons do not chain
            if prec == 4 && matches!(self.binop(), Some((_, 4))) {
                return Err(
                    Diagnostic::new(self.span(), "comparisons cannot be chained")
                        .hint("combine them with `and`"),
                );
            }
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> PResult<Expr> {
        let start = self.span();
        let op = if self.eat_word("not") || self.eat(&Tok::Bang) {
            Some(UnOp::Not)
        } else if self.eat(&Tok::Minus) {
            Some(UnOp::Neg)
        } else {
            None
        };
        match op {
            Some(op) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(Diagnostic::new(start, "expression nested too deeply"));
                }
                let e = self.unary();
                self.depth -= 1;
                let e = e?;
                Ok(Expr {
                    span: start.to(e.span),
                    kind: ExprKind::Unary(op, Box::new(e)),
                })
            }
            None => self.postfix(),
        }
    }

    /// Field (`.name`, written with no space) and index (`[i]`) access on
    /// any expression: `f(x).n`, `(a ?? b).x`, `f(x)[0]`.
    fn postfix(&mut self) -> PResult<Expr> {
        let mut e = self.primary()?;
        loop {
            let adjacent = self.span().start == e.span.end;
            match self.peek() {
                Some(Tok::Path(segs)) if adjacent && !segs.is_empty() => {
                    let segs = segs.clone();
                    let span = e.span.to(self.span());
                    self.pos += 1;
                    e = match e.kind {
                        ExprKind::Path(mut base) => {
                            base.extend(segs);
                            Expr {
                                kind: ExprKind::Path(base),
                                span,
                            }
                        }
                        kind => {
                            let mut base = Expr { kind, span: e.span };
                            for seg in segs {
                                let key = match seg {
                                    Segment::Field(f) => Lit::Str(f.as_str().to_owned()),
                                    Segment::Index(i) => Lit::Int(i),
                                };
                                base = Expr {
                                    kind: ExprKind::Index(
                                        Box::new(base),
                                        Box::new(Expr {
                                            kind: ExprKind::Lit(key),
                                            span,
                                        }),
                                    ),
                                    span,
                                };
                            }
                            base
                        }
                    };
                    continue;
                }
                Some(Tok::LBracket) if adjacent => {}
                _ => break,
            }
            self.pos += 1;
            let index = self.expr()?;
            let close = self.expect(Tok::RBracket, "close the index with `]`")?;
            let span = e.span.to(close);
            e = match (e.kind, &index.kind) {
                (ExprKind::Path(mut segs), ExprKind::Lit(Lit::Str(s))) => {
                    segs.push(Segment::Field(s.as_str().into()));
                    Expr {
                        kind: ExprKind::Path(segs),
                        span,
                    }
                }
                (ExprKind::Path(mut segs), ExprKind::Lit(Lit::Int(i))) => {
                    segs.push(Segment::Index(*i));
                    Expr {
                        kind: ExprKind::Path(segs),
                        span,
                    }
                }
                (kind, _) => Expr {
                    kind: ExprKind::Index(Box::new(Expr { kind, span: e.span }), Box::new(index)),
                    span,
                },
            };
        }
        Ok(e)
    }

    fn primary(&mut self) -> PResult<Expr> {
        let start = self.span();
        let Some(tok) = self.peek().cloned() else {
            return Err(Diagnostic::new(
                start,
                "expected an expression, found the end of the file",
            ));
        };
        let lit = |l| {
            Ok(Expr {
                kind: ExprKind::Lit(l),
                span: start,
            })
        };
        if let Some(l) = token_literal(&tok) {
            self.pos += 1;
            return lit(l);
        }
        match tok {
            Tok::Path(segs) => {
                self.pos += 1;
                Ok(Expr {
                    kind: ExprKind::Path(segs),
                    span: start,
                })
            }
            Tok::LParen => {
                self.pos += 1;
                let e = self.expr()?;
                let close = self.expect(Tok::RParen, "close the parenthesis")?;
                Ok(Expr {
                    kind: e.kind,
                    span: start.to(close),
                })
            }
            Tok::LBracket => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    while self.eat(&Tok::Comma) {}
                    if self.eat(&Tok::RBracket) {
                        break;
                    }
                    items.push(self.expr()?);
                    if !self.eat(&Tok::Comma) && self.peek() != Some(&Tok::RBracket) {
                        return Err(Diagnostic::new(
                            self.span(),
                            format!("expected `,` or `]`, found {}", self.found()),
                        ));
                    }
                }
                Ok(Expr {
                    kind: ExprKind::Array(items),
                    span: start.to(self.prev_span()),
                })
            }
            Tok::LBrace => {
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    while self.eat(&Tok::Comma) {}
                    if self.eat(&Tok::RBrace) {
                        break;
                    }
                    let key = match self.bump() {
                        Some(Token {
                            tok: Tok::Str(s), ..
                        })
                        | Some(Token {
                            tok: Tok::Ident(s), ..
                        }) => s,
                        _ => {
                            return Err(Diagnostic::new(self.prev_span(), "expected a map key")
                                .hint("write `{ \"key\": value }`"))
                        }
                    };
                    if !self.eat(&Tok::Colon) && !self.eat(&Tok::Assign) {
                        return Err(Diagnostic::new(
                            self.span(),
                            format!("expected `:` after the key, found {}", self.found()),
                        ));
                    }
                    entries.push((key, self.expr()?));
                }
                Ok(Expr {
                    kind: ExprKind::Map(entries),
                    span: start.to(self.prev_span()),
                })
            }
            Tok::Ident(word) => self.word(word, start),
            Tok::Pipe => self.closure(start),
            other => Err(Diagnostic::new(
                start,
                format!("expected an expression, found {}", other.describe()),
            )),
        }
    }

    /// `|x| body`, `|k, v| body`: names between bars, then one expression
    /// (which the compiler allows only as an argument of the iteration
    /// functions).
    fn closure(&mut self, start: Span) -> PResult<Expr> {
        self.pos += 1;
        let mut params = Vec::new();
        loop {
            if self.eat(&Tok::Pipe) {
                break;
            }
            params.push(self.ident("a closure parameter")?);
            if !self.eat(&Tok::Comma) && self.peek() != Some(&Tok::Pipe) {
                return Err(Diagnostic::new(
                    self.span(),
                    format!("expected `,` or `|`, found {}", self.found()),
                )
                .hint("write the parameters between bars: `|v| ...` or `|k, v| ...`"));
            }
        }
        let body = self.expr()?;
        Ok(Expr {
            span: start.to(body.span),
            kind: ExprKind::Closure {
                params,
                body: Box::new(body),
            },
        })
    }

    fn word(&mut self, word: String, start: Span) -> PResult<Expr> {
        self.pos += 1;
        let lit = |l| {
            Ok(Expr {
                kind: ExprKind::Lit(l),
                span: start,
            })
        };
        match word.as_str() {
            "true" => return lit(Lit::Bool(true)),
            "false" => return lit(Lit::Bool(false)),
            "null" => return lit(Lit::Null),
            "if" => {
                let cond = self.expr()?;
                let then = self.block()?;
                let otherwise = if self.eat_word("else") {
                    if self.is_word("if") {
                        let s = self.span();
                        let nested = self.primary()?;
                        let _ = s;
                        Some(vec![Stmt::Expr(nested)])
                    } else {
                        Some(self.block()?)
                    }
                } else {
                    None
                };
                return Ok(Expr {
                    kind: ExprKind::If {
                        cond: Box::new(cond),
                        then,
                        otherwise,
                    },
                    span: start.to(self.prev_span()),
                });
            }
            _ => {}
        }
        let abort = self.peek() == Some(&Tok::Bang)
            && self.peek_at(1) == Some(&Tok::LParen)
            && self.span().start == start.end;
        if abort {
            self.pos += 1;
        }
        if self.peek() == Some(&Tok::LParen) && self.span().start == start.end + usize::from(abort)
        {
            self.pos += 1;
            let mut args = Vec::new();
            loop {
                while self.eat(&Tok::Comma) {}
                if self.eat(&Tok::RParen) {
                    break;
                }
                let name = match (self.peek().cloned(), self.peek_at(1)) {
                    (Some(Tok::Ident(n)), Some(Tok::Colon)) => {
                        let span = self.span();
                        self.pos += 2;
                        Some(Ident { name: n, span })
                    }
                    _ => None,
                };
                let value = self.expr()?;
                args.push(Arg { name, value });
                if !self.eat(&Tok::Comma) && self.peek() != Some(&Tok::RParen) {
                    return Err(Diagnostic::new(
                        self.span(),
                        format!("expected `,` or `)`, found {}", self.found()),
                    )
                    .hint("separate arguments with commas"));
                }
            }
            return Ok(Expr {
                kind: ExprKind::Call {
                    name: Ident {
                        name: word,
                        span: start,
                    },
                    abort,
                    args,
                },
                span: start.to(self.prev_span()),
            });
        }
        Ok(Expr {
            kind: ExprKind::Name(word),
            span: start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_whole_pipeline() {
        let src = r#"
source app = files { include = ["/var/log/app/*.log"], multiline.start = /^\S/ }
step s on app where .unit == "x" on_error tag {
  .http = parse_regex!(.message, /(?<status>\d+)/)
  .level = if to_int(.http.status) ?? 0 >= 500 { "error" } else { "info" }
  drop where .level == "debug"
}
sink o2 = console {}
route {
  .level == "error" => o2 stream "errors"
  else => o2
}
test "t" { input app { message = "500" } expect { .level == "error" } expect route o2 stream "errors" }
"#;
        let (file, errors) = parse(src);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(file.items.len(), 5);
        let Item::Source(c) = &file.items[0] else {
            panic!()
        };
        assert_eq!(c.options[1].key.name, "multiline.start");
    }

    #[test]
    fn reports_errors_in_several_items() {
        let src = "source a = { }\nstep s { .x = }\nsink k = console {}\n";
        let (file, errors) = parse(src);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(file.items.len(), 1);
    }

    fn step_body(src: &str) -> Vec<Stmt> {
        let (file, errors) = parse(src);
        assert!(errors.is_empty(), "{errors:?}");
        match file.items.into_iter().next() {
            Some(Item::Step(s)) => s.body,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_field_after_a_call_or_parenthesis_is_one_expression() {
        let body = step_body("step s { .a = f(.x).n ?? null\n .b = (.c ?? .d).e[0] }");
        assert_eq!(body.len(), 2);
        let Stmt::Assign { value, .. } = &body[0] else {
            panic!()
        };
        let ExprKind::Binary(BinOp::Coalesce, left, _) = &value.kind else {
            panic!("{value:?}")
        };
        assert!(matches!(&left.kind, ExprKind::Index(base, key)
            if matches!(base.kind, ExprKind::Call { .. })
                && matches!(&key.kind, ExprKind::Lit(Lit::Str(k)) if k == "n")));
    }

    #[test]
    fn statements_need_a_line_break_or_semicolon_between_them() {
        assert_eq!(step_body("step s { .a = 1; .b = 2 }").len(), 2);
        let (_, errors) = parse("step s { .a = 1 .b = 2 }");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("expected a newline or `;`"));
        assert_eq!(errors[0].span.start, "step s { .a = 1 ".len());
    }

    #[test]
    fn let_is_a_statement_and_an_item() {
        let body = step_body("step s { let x = 1\n .y = x }");
        assert!(matches!(&body[0], Stmt::Let { name, .. } if name.name == "x"));
        let (file, errors) = parse("let dir = \"/x\"\nsink o = console {}");
        assert!(errors.is_empty(), "{errors:?}");
        assert!(matches!(&file.items[0], Item::Let { name, .. } if name.name == "dir"));
    }

    #[test]
    fn a_closure_argument_holds_its_parameters_and_one_expression() {
        let body = step_body(
            "step s { .a = map_values(.m, |k, v| if v == null { k } else { v }) ?? {}\n .b = 1 }",
        );
        assert_eq!(body.len(), 2);
        let Stmt::Assign { value, .. } = &body[0] else {
            panic!()
        };
        let ExprKind::Binary(BinOp::Coalesce, call, _) = &value.kind else {
            panic!("{value:?}")
        };
        let ExprKind::Call { name, args, .. } = &call.kind else {
            panic!("{call:?}")
        };
        assert_eq!(name.name, "map_values");
        let ExprKind::Closure { params, body } = &args[1].value.kind else {
            panic!("{:?}", args[1])
        };
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["k", "v"]);
        assert!(matches!(body.kind, ExprKind::If { .. }));
    }

    #[test]
    fn a_closure_without_its_closing_bar_is_a_syntax_error() {
        let (_, errors) = parse("step s { .a = filter(.m, |x x > 1) }");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].message.contains("expected `,` or `|`"),
            "{errors:?}"
        );
        assert_eq!(errors[0].span.start, "step s { .a = filter(.m, |x ".len());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let src = format!(
            "step s {{ .x = {}1{} }}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        let (_, errors) = parse(&src);
        assert!(!errors.is_empty());
        let src = format!("step s {{ .x = {}1 }}", "not ".repeat(10_000));
        let (_, errors) = parse(&src);
        assert!(!errors.is_empty());
    }
}
