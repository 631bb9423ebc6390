//! The canonical formatter behind `shipctl fmt`. It works on tokens, so
//! comments survive and the meaning cannot change: every token keeps its
//! text and its order; only line breaks, indentation (two spaces per open
//! brace, bracket or parenthesis), spacing between tokens and blank lines
//! (at most one) are normalised. One style: every item starts a line; the
//! body of a `step`, `route` and `test`, a block holding statements and an
//! option block written over several lines have one statement (rule, input,
//! expectation, option) per line and their `}` on its own line; operators are spaced; a call or index stays glued to what it
//! applies to; a closure's bars hug its parameters (`|k, v| body`). Line breaks are added only at statement boundaries of a file
//! that parses, and never removed. Formatting twice gives the same text.

use super::ast::{self, Expr, ExprKind, File, Item, Stmt};
use super::diagnostics::Diagnostic;
use super::lex::{lex, Tok, Token};
use std::collections::BTreeSet;

fn opens(t: &Tok) -> bool {
    matches!(t, Tok::LBrace | Tok::LBracket | Tok::LParen)
}

fn closes(t: &Tok) -> bool {
    matches!(t, Tok::RBrace | Tok::RBracket | Tok::RParen)
}

const KEYWORDS: [&str; 12] = [
    "and", "or", "not", "if", "else", "where", "on", "stream", "drop", "return", "on_error",
    "lines",
];

fn is_keyword(t: &Tok) -> bool {
    matches!(t, Tok::Ident(w) if KEYWORDS.contains(&w.as_str()))
}

fn is_operator(t: &Tok) -> bool {
    matches!(
        t,
        Tok::Assign
            | Tok::Eq
            | Tok::Ne
            | Tok::Lt
            | Tok::Le
            | Tok::Gt
            | Tok::Ge
            | Tok::Plus
            | Tok::Minus
            | Tok::Star
            | Tok::Slash
            | Tok::Percent
            | Tok::Coalesce
            | Tok::Arrow
            | Tok::Comma
            | Tok::Colon
    ) || is_keyword(t)
}

/// Whether `t` can end an expression, so that a `(` or `[` glued to it is a
/// call or an index (the parser needs them adjacent).
fn ends_operand(t: &Tok) -> bool {
    match t {
        Tok::Ident(_) => !is_keyword(t),
        Tok::Comment(_) => false,
        t => !opens(t) && !is_operator(t) && !matches!(t, Tok::Bang | Tok::Semi),
    }
}

/// Whether joining `prev` and `next` could lex as a different token (`! =` → `!=`).
fn would_fuse(prev: &Token, next: &Token, src: &str) -> bool {
    let a = src[prev.span.start..prev.span.end].chars().last();
    let b = src[next.span.start..next.span.end].chars().next();
    matches!(
        (a, b),
        (Some('!' | '=' | '<' | '>'), Some('=' | '>'))
            | (Some('?'), Some('?'))
            | (Some('/'), Some('/'))
    ) || matches!((a, b), (Some(x), Some(y)) if (x.is_alphanumeric() || x == '_') && (y.is_alphanumeric() || y == '_' || y == '"'))
}

/// The offsets of the bars that open a closure's parameters: bars come
/// in pairs, the first of each opens (`||` included).
fn opening_bars(tokens: &[Token]) -> BTreeSet<usize> {
    let mut open = true;
    let mut out = BTreeSet::new();
    for t in tokens.iter().filter(|t| t.tok == Tok::Pipe) {
        if open {
            out.insert(t.span.start);
        }
        open = !open;
    }
    out
}

/// Whether a space separates `prev` and `next` on one line.
fn space_between(
    prev: &Token,
    before_prev: Option<&Token>,
    next: &Token,
    src: &str,
    opening: &BTreeSet<usize>,
) -> bool {
    if would_fuse(prev, next, src) {
        return true;
    }
    let adjacent = prev.span.end == next.span.start;
    let opens_params = |t: &Token| t.tok == Tok::Pipe && opening.contains(&t.span.start);
    match (&prev.tok, &next.tok) {
        // `|k, v| body`: the bars hug the parameters, the body stands apart
        (Tok::Pipe, _) if opens_params(prev) => false,
        (_, Tok::Pipe) if !opens_params(next) => false,
        (Tok::Pipe, _) => true,
        // A call or an index: gluing or parting them changes the meaning.
        (p, Tok::LParen | Tok::LBracket) if ends_operand(p) => !adjacent,
        // a keyword written against `(` may be a call of that name (`on(x)`)
        (Tok::Ident(_), Tok::LParen) if adjacent => false,
        (Tok::LParen | Tok::LBracket, _) => false,
        (_, Tok::RParen | Tok::RBracket | Tok::Comma | Tok::Semi | Tok::Colon) => false,
        (Tok::LBrace, Tok::RBrace) => false,
        (Tok::Ident(_), Tok::Bang) if adjacent => false,
        // dotted option keys: `multiline.start`; field access: `f(x).n`, `a[0].b`
        (Tok::Ident(_) | Tok::RParen | Tok::RBracket | Tok::RBrace, Tok::Path(_)) if adjacent => {
            false
        }
        // `f! (x)` is not a call: keep what the parser saw
        (Tok::Bang, Tok::LParen)
            if before_prev.is_some_and(|b| {
                matches!(b.tok, Tok::Ident(_)) && b.span.end == prev.span.start
            }) =>
        {
            !adjacent
        }
        (Tok::Bang, _) => false,
        (Tok::Minus, _) if adjacent => {
            // unary minus stays attached: `= -1`, `(-x`, `|x| -x`
            !before_prev.is_none_or(|b| is_operator(&b.tok) || opens(&b.tok) || b.tok == Tok::Pipe)
        }
        _ => true,
    }
}

/// Byte offsets of the tokens that must start a line: every item, and the
/// statements and closing brace of every multi-statement body.
struct Breaks<'a> {
    src: &'a str,
    tokens: &'a [Token],
    at: BTreeSet<usize>,
}

impl Breaks<'_> {
    /// Index of the token starting at `offset`.
    fn index(&self, offset: usize) -> Option<usize> {
        self.tokens
            .binary_search_by_key(&offset, |t| t.span.start)
            .ok()
    }

    /// Index of the brace closing the one at `open`.
    fn matching(&self, open: usize) -> Option<usize> {
        let mut depth = 0usize;
        for (i, t) in self.tokens.iter().enumerate().skip(open) {
            if opens(&t.tok) {
                depth += 1;
            } else if closes(&t.tok) {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
        }
        None
    }

    /// The first `{` at or after `offset`.
    fn brace_from(&self, offset: usize) -> Option<usize> {
        self.tokens
            .iter()
            .position(|t| t.span.start >= offset && t.tok == Tok::LBrace)
    }

    fn before(&mut self, index: usize) {
        if let Some(t) = self.tokens.get(index) {
            self.at.insert(t.span.start);
        }
    }

    /// A body whose `{` is at token `open`: its statements start at `starts`.
    fn body(&mut self, open: usize, starts: impl IntoIterator<Item = usize>) {
        let mut any = false;
        for s in starts {
            self.at.insert(s);
            any = true;
        }
        if any {
            if let Some(close) = self.matching(open) {
                self.before(close);
            }
        }
    }

    fn file(&mut self, file: &File) {
        for item in &file.items {
            let span = match item {
                Item::Source(c) | Item::Sink(c) => c.span,
                Item::Settings(_, span) | Item::Route(_, span) => *span,
                Item::Step(s) => s.span,
                Item::Test(t) => t.span,
                Item::Let { span, .. } => *span,
            };
            self.at.insert(span.start);
            match item {
                Item::Source(ast::Component { options, .. })
                | Item::Sink(ast::Component { options, .. })
                | Item::Settings(options, _) => self.options(span.start, options),
                Item::Step(step) => {
                    if let Some(c) = &step.condition {
                        self.expr(c);
                    }
                    // the body's `{` is the last token before its first statement
                    if let Some(close) = self.index(step.span.end.saturating_sub(1)) {
                        if let Some(open) = self.opening(close) {
                            self.stmts(open, &step.body);
                        }
                    }
                }
                Item::Let { value, .. } => self.expr(value),
                Item::Route(rules, span) => {
                    if let Some(open) = self.brace_from(span.start) {
                        self.body(open, rules.iter().map(|r| r.span.start));
                    }
                    for r in rules {
                        if let super::ast::RuleKind::When(e) = &r.kind {
                            self.expr(e);
                        }
                    }
                }
                Item::Test(t) => self.test(t.span.start),
            }
        }
    }

    /// An option block written over several lines: one option per line and
    /// its `}` alone. One written on one line stays so.
    fn options(&mut self, start: usize, options: &[ast::Opt]) {
        let Some(open) = self.brace_from(start) else {
            return;
        };
        let Some(close) = self.matching(open) else {
            return;
        };
        let (from, to) = (self.tokens[open].span.start, self.tokens[close].span.start);
        if self.src.get(from..to).is_some_and(|t| t.contains('\n')) {
            self.body(open, options.iter().map(|o| o.key.span.start));
        }
    }

    /// Index of the `{` that the brace at `close` closes.
    fn opening(&self, close: usize) -> Option<usize> {
        let mut depth = 0usize;
        for i in (0..=close).rev() {
            let t = &self.tokens.get(i)?.tok;
            if closes(t) {
                depth += 1;
            } else if opens(t) {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
        }
        None
    }

    /// A test body: one `env`, `input` or `expect` per line.
    fn test(&mut self, start: usize) {
        let Some(open) = self.brace_from(start) else {
            return;
        };
        let Some(close) = self.matching(open) else {
            return;
        };
        let mut starts = Vec::new();
        let mut depth = 0usize;
        for t in &self.tokens[open + 1..close] {
            match &t.tok {
                t if opens(t) => depth += 1,
                t if closes(t) => depth = depth.saturating_sub(1),
                Tok::Ident(w) if depth == 0 && ["env", "input", "expect"].contains(&w.as_str()) => {
                    starts.push(t.span.start)
                }
                _ => {}
            }
        }
        self.body(open, starts);
    }

    /// A block of statements whose `{` is at token `open`.
    fn stmts(&mut self, open: usize, stmts: &[Stmt]) {
        self.body(open, stmts.iter().map(stmt_start));
        for s in stmts {
            match s {
                Stmt::Assign { value, .. } | Stmt::Let { value, .. } => self.expr(value),
                Stmt::Drop { condition, .. } => {
                    if let Some(c) = condition {
                        self.expr(c);
                    }
                }
                Stmt::Expr(e) => self.expr(e),
            }
        }
    }

    /// Blocks inside `e` that hold statements (not a single value) get one
    /// statement per line.
    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                self.expr(cond);
                let Some(open) = self.brace_from(cond.span.end) else {
                    return;
                };
                if holds_statements(then) {
                    self.stmts(open, then);
                } else {
                    then.iter().for_each(|s| self.inner(s));
                }
                let Some(otherwise) = otherwise else { return };
                match otherwise.as_slice() {
                    [Stmt::Expr(
                        nested @ Expr {
                            kind: ExprKind::If { .. },
                            ..
                        },
                    )] if self.index(nested.span.start).is_some_and(
                        |i| matches!(&self.tokens[i].tok, Tok::Ident(w) if w == "if"),
                    ) && self.matching(open).is_some_and(|c| {
                        self.tokens.get(c + 2).map(|t| t.span.start) == Some(nested.span.start)
                    }) =>
                    {
                        self.expr(nested)
                    }
                    block => {
                        let Some(then_close) = self.matching(open) else {
                            return;
                        };
                        let Some(else_open) = self
                            .tokens
                            .get(then_close + 1..)
                            .and_then(|rest| rest.iter().position(|t| t.tok == Tok::LBrace))
                            .map(|p| then_close + 1 + p)
                        else {
                            return;
                        };
                        if holds_statements(block) {
                            self.stmts(else_open, block);
                        } else {
                            block.iter().for_each(|s| self.inner(s));
                        }
                    }
                }
            }
            ExprKind::Array(items) => items.iter().for_each(|i| self.expr(i)),
            ExprKind::Map(entries) => entries.iter().for_each(|(_, v)| self.expr(v)),
            ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Unary(_, a) => self.expr(a),
            ExprKind::Call { args, .. } => args.iter().for_each(|a| self.expr(&a.value)),
            ExprKind::Closure { body, .. } => self.expr(body),
            ExprKind::Lit(_) | ExprKind::Path(_) | ExprKind::Name(_) => {}
        }
    }

    fn inner(&mut self, s: &Stmt) {
        if let Stmt::Expr(e) = s {
            self.expr(e);
        }
    }
}

/// A block that does more than yield one value.
fn holds_statements(block: &[Stmt]) -> bool {
    block.len() > 1 || block.iter().any(|s| !matches!(s, Stmt::Expr(_)))
}

fn stmt_start(s: &Stmt) -> usize {
    match s {
        Stmt::Assign { span, .. } | Stmt::Drop { span, .. } | Stmt::Let { span, .. } => span.start,
        Stmt::Expr(e) => e.span.start,
    }
}

/// Where lines must break in `src`; `None` for a file that does not parse
/// (its statement boundaries are not known).
fn breaks(src: &str, tokens: &[Token]) -> Option<BTreeSet<usize>> {
    let (file, errors) = super::parse::parse(src);
    if !errors.is_empty() {
        return None;
    }
    let mut b = Breaks {
        src,
        tokens,
        at: BTreeSet::new(),
    };
    b.file(&file);
    Some(b.at)
}

/// Formats `src`; refuses text that does not lex.
pub fn format(src: &str) -> Result<String, Vec<Diagnostic>> {
    let out = format_with(src, true)?;
    // Leaving out a line-ending `;` must not change what the file says (a
    // `;` before a word the previous statement could take, as in
    // `x;on(...)`): when it would, the `;` stay.
    let (before, errors) = super::parse::parse(src);
    if errors.is_empty() {
        let (after, errors) = super::parse::parse(&out);
        if !errors.is_empty() || without_spans(&after) != without_spans(&before) {
            return format_with(src, false);
        }
    }
    Ok(out)
}

/// A file's syntax tree as text, its positions left out.
fn without_spans(file: &File) -> String {
    let text = format!("{file:?}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("Span { start: ") {
        out.push_str(&rest[..at]);
        match rest[at..].find('}') {
            Some(end) => rest = &rest[at + end + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn format_with(src: &str, drop_semicolons: bool) -> Result<String, Vec<Diagnostic>> {
    let (tokens, errors) = lex(src);
    if !errors.is_empty() {
        return Err(errors);
    }
    let forced = {
        let code: Vec<Token> = tokens
            .iter()
            .filter(|t| !matches!(t.tok, Tok::Comment(_)))
            .cloned()
            .collect();
        breaks(src, &code)
    };
    // In a file that parses, a `;` that ends a line only repeats the line
    // break: the canonical text leaves it out.
    let parses = drop_semicolons && forced.is_some();
    let forced = forced.unwrap_or_default();
    let line_of = |pos: usize| {
        src.as_bytes()[..pos.min(src.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    };
    let opening = opening_bars(&tokens);
    let mut out = String::new();
    let mut depth: usize = 0;
    let mut i = 0;
    let mut last_line: Option<usize> = None;
    while i < tokens.len() {
        let line = line_of(tokens[i].span.start);
        let after_blank = last_line.is_some_and(|prev| line > prev + 1);
        let mut j = i + 1;
        while j < tokens.len()
            && line_of(tokens[j].span.start) == line
            && !forced.contains(&tokens[j].span.start)
        {
            j += 1;
        }
        let row = &tokens[i..j];
        let leading_closers = row.iter().take_while(|t| closes(&t.tok)).count();
        let indent = depth.saturating_sub(leading_closers);
        let row: Vec<&Token> = row
            .iter()
            .enumerate()
            .filter(|(k, t)| {
                !(parses
                    && t.tok == Tok::Semi
                    && row[k + 1..]
                        .iter()
                        .all(|n| matches!(n.tok, Tok::Comment(_))))
            })
            .map(|(_, t)| t)
            .collect();
        if row.is_empty() {
            // a line that held only a `;`: it reads as a blank line, so the
            // next pass gives the same text
            i = j;
            continue;
        }
        if after_blank {
            out.push('\n');
        }
        out.push_str(&"  ".repeat(indent));
        for (k, t) in row.iter().enumerate() {
            let before_prev = k.checked_sub(2).map(|b| row[b]);
            if k > 0 && space_between(row[k - 1], before_prev, t, src, &opening) {
                out.push(' ');
            }
            out.push_str(&src[t.span.start..t.span.end]);
            if opens(&t.tok) {
                depth += 1;
            } else if closes(&t.tok) {
                depth = depth.saturating_sub(1);
            }
        }
        out.push('\n');
        last_line = Some(line_of(
            tokens[j - 1]
                .span
                .end
                .saturating_sub(1)
                .max(tokens[j - 1].span.start),
        ));
        i = j;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_indentation_and_spacing_keeping_comments() {
        let src = "# top\nstep  s on a {\n        .x=parse_json!( .message )??{}   # why\n\n\n   .y = -1\n}\n";
        let want =
            "# top\nstep s on a {\n  .x = parse_json!(.message) ?? {} # why\n\n  .y = -1\n}\n";
        let got = format(src).unwrap();
        assert_eq!(got, want);
        assert_eq!(format(&got).unwrap(), got, "idempotent");
    }

    #[test]
    fn operators_are_spaced_and_calls_and_indexes_stay_glued() {
        let src = "source a = files { include =[\"/x\"] }\nstep s on a {\n.y = \"s_\" +(.b)\n.z = f!(.m)[0] ?? g(.n)\n.w = -(.k)\n}\n";
        let want = "source a = files { include = [\"/x\"] }\nstep s on a {\n  .y = \"s_\" + (.b)\n  .z = f!(.m)[0] ?? g(.n)\n  .w = -(.k)\n}\n";
        assert_eq!(format(src).unwrap(), want);
    }

    #[test]
    fn bodies_get_one_statement_per_line_and_their_brace_on_its_own() {
        let src = "source a = files { include = [\"/x\"] } sink o = console {}\nstep s on a { .a = 1\n.b = if .a == 1 { \"one\" } else { \"other\" }\n  if .a == 1 { .c = 2\ndrop where .c == 3 } else if .a == 2 { .c = 4 } }\nroute { .a == 1 => o stream \"x\" else => o }\ntest \"t\" { input a { message = \"m\" } expect { .a == 1 } expect route o stream \"x\" }\n";
        let want = "source a = files { include = [\"/x\"] }\nsink o = console {}\nstep s on a {\n  .a = 1\n  .b = if .a == 1 { \"one\" } else { \"other\" }\n  if .a == 1 {\n    .c = 2\n    drop where .c == 3\n  } else if .a == 2 {\n    .c = 4\n  }\n}\nroute {\n  .a == 1 => o stream \"x\"\n  else => o\n}\ntest \"t\" {\n  input a { message = \"m\" }\n  expect { .a == 1 }\n  expect route o stream \"x\"\n}\n";
        let got = format(src).unwrap();
        assert_eq!(got, want);
        assert_eq!(format(&got).unwrap(), got, "idempotent");
    }

    #[test]
    fn an_option_block_over_several_lines_gets_one_option_per_line() {
        let src = "sink o = openobserve { url = \"http://x\",\n  user = \"u\", password = \"p\" }\nsink c = console { enabled = true }\n";
        let want = "sink o = openobserve {\n  url = \"http://x\",\n  user = \"u\",\n  password = \"p\"\n}\nsink c = console { enabled = true }\n";
        let got = format(src).unwrap();
        assert_eq!(got, want);
        assert_eq!(format(&got).unwrap(), got, "idempotent");
    }

    #[test]
    fn a_comment_before_a_closing_brace_stays_on_its_line() {
        let src = "step s { .a = 1 # why\n}\nroute { else => o }\n";
        let want = "step s {\n  .a = 1 # why\n}\nroute {\n  else => o\n}\n";
        assert_eq!(format(src).unwrap(), want);
    }

    #[test]
    fn closure_bars_hug_their_parameters() {
        let src = "step s {\n.a = map_values( .m ,| k ,v |if v == null { k } else { v })\n.b = filter(.x, |x|-x > 1)\n.c = map_keys(.l, || 1)\n}\n";
        let want = "step s {\n  .a = map_values(.m, |k, v| if v == null { k } else { v })\n  .b = filter(.x, |x| -x > 1)\n  .c = map_keys(.l, || 1)\n}\n";
        let got = format(src).unwrap();
        assert_eq!(got, want);
        assert_eq!(format(&got).unwrap(), got, "idempotent");
    }

    #[test]
    fn a_closure_body_holding_statements_gets_one_per_line() {
        let src = "step s {\n  .a = map_values(.m, |v| if is_string(v) { let t = trim(v)\nlowercase(t) } else { v })\n}\n";
        // the open `(` of the call counts as a level, as everywhere
        let want = "step s {\n  .a = map_values(.m, |v| if is_string(v) {\n      let t = trim(v)\n      lowercase(t)\n    } else { v })\n}\n";
        let got = format(src).unwrap();
        assert_eq!(got, want);
        assert_eq!(format(&got).unwrap(), got, "idempotent");
    }

    #[test]
    fn a_semicolon_ending_a_line_is_left_out_and_one_between_statements_becomes_a_line_break() {
        let src = "step s {\n  .a = 1; .b = 2;\n  .c = 3; # why\n}\nsource a = files { include = [\"/x\"]; }\n";
        let want = "step s {\n  .a = 1\n  .b = 2\n  .c = 3 # why\n}\nsource a = files { include = [\"/x\"]; }\n";
        let got = format(src).unwrap();
        assert_eq!(got, want);
        assert_eq!(format(&got).unwrap(), got, "idempotent");
        let broken = "step s {\n  .a = 1;\n  .b = = 2\n}\n";
        assert_eq!(
            format(broken).unwrap(),
            broken,
            "a file that does not parse keeps its `;`"
        );
    }

    #[test]
    fn a_line_holding_only_a_semicolon_leaves_no_whitespace_line() {
        let src = "source a = files {\n  include = [\"/x\"]\n;  read_from = \"end\"\n  ;\n\n  ;\n  poll_interval = 1s\n}\n";
        let want = "source a = files {\n  include = [\"/x\"]\n  read_from = \"end\"\n\n  poll_interval = 1s\n}\n";
        let got = format(src).unwrap();
        assert_eq!(got, want);
        assert_eq!(format(&got).unwrap(), got, "idempotent");
    }

    #[test]
    fn a_semicolon_before_a_keyword_call_keeps_the_meaning() {
        let src = "step s {\n  .f = parse_js;on(.message)\n}\n";
        let got = format(src).unwrap();
        let tree = |t: &str| without_spans(&super::super::parse::parse(t).0);
        assert_eq!(tree(&got), tree(src), "{got}");
        assert_eq!(format(&got).unwrap(), got, "idempotent");
    }

    #[test]
    fn field_access_on_a_value_stays_attached() {
        let src = "step s {\n  .d = parse_json(.message).n ?? (.a ?? .b).c[0].e\n}\n";
        assert_eq!(format(src).unwrap(), src);
    }

    #[test]
    fn every_example_pipeline_is_a_fixed_point_after_one_pass() {
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines")).unwrap() {
            let path = entry.unwrap().path();
            let src = std::fs::read_to_string(&path).unwrap();
            let once = format(&src).unwrap();
            assert_eq!(format(&once).unwrap(), once, "{}", path.display());
            let (a, _) = lex(&src);
            let (b, _) = lex(&once);
            let strip = |v: Vec<Token>| {
                v.into_iter()
                    .map(|t| t.tok)
                    .filter(|t| *t != Tok::Semi)
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                strip(a),
                strip(b),
                "formatting changed the tokens of {}",
                path.display()
            );
        }
    }
}
