//! The canonical formatter behind `shipctl fmt`. It works on tokens, so
//! comments survive and the meaning cannot change: every token keeps its
//! original text and line; only indentation (two spaces per open brace,
//! bracket or parenthesis), spacing between tokens and blank lines (at most
//! one) are normalised. Formatting twice gives the same text.

use super::diagnostics::Diagnostic;
use super::lex::{lex, Tok, Token};

fn opens(t: &Tok) -> bool {
    matches!(t, Tok::LBrace | Tok::LBracket | Tok::LParen)
}

fn closes(t: &Tok) -> bool {
    matches!(t, Tok::RBrace | Tok::RBracket | Tok::RParen)
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
    ) || matches!(t, Tok::Ident(w) if w == "and" || w == "or" || w == "not" || w == "return")
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

/// Whether a space separates `prev` and `next` on one line.
fn space_between(prev: &Token, before_prev: Option<&Token>, next: &Token, src: &str) -> bool {
    if would_fuse(prev, next, src) {
        return true;
    }
    let adjacent = prev.span.end == next.span.start;
    match (&prev.tok, &next.tok) {
        (Tok::LParen | Tok::LBracket, _) => false,
        (_, Tok::RParen | Tok::RBracket | Tok::Comma | Tok::Semi | Tok::Colon) => false,
        (Tok::LBrace, Tok::RBrace) => false,
        (_, Tok::LParen | Tok::LBracket) if adjacent => false,
        (Tok::Ident(_), Tok::Bang) if adjacent => false,
        // dotted option keys: `multiline.start`; field access: `f(x).n`, `a[0].b`
        (Tok::Ident(_) | Tok::RParen | Tok::RBracket | Tok::RBrace, Tok::Path(_)) if adjacent => {
            false
        }
        (Tok::Bang, _) => false,
        (Tok::Minus, _) if adjacent => {
            // unary minus stays attached: `= -1`, `(-x`
            !before_prev.is_none_or(|b| is_operator(&b.tok) || opens(&b.tok))
        }
        _ => true,
    }
}

/// Formats `src`; refuses text that does not lex.
pub fn format(src: &str) -> Result<String, Vec<Diagnostic>> {
    let (tokens, errors) = lex(src);
    if !errors.is_empty() {
        return Err(errors);
    }
    let line_of = |pos: usize| {
        src.as_bytes()[..pos.min(src.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    };
    let mut out = String::new();
    let mut depth: usize = 0;
    let mut i = 0;
    let mut last_line: Option<usize> = None;
    while i < tokens.len() {
        let line = line_of(tokens[i].span.start);
        if let Some(prev) = last_line {
            if line > prev + 1 {
                out.push('\n');
            }
        }
        let mut j = i;
        while j < tokens.len() && line_of(tokens[j].span.start) == line {
            j += 1;
        }
        let row = &tokens[i..j];
        let leading_closers = row.iter().take_while(|t| closes(&t.tok)).count();
        let indent = depth.saturating_sub(leading_closers);
        out.push_str(&"  ".repeat(indent));
        for (k, t) in row.iter().enumerate() {
            if k > 0 && space_between(&row[k - 1], k.checked_sub(2).map(|b| &row[b]), t, src) {
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
            let strip = |v: Vec<Token>| v.into_iter().map(|t| t.tok).collect::<Vec<_>>();
            assert_eq!(
                strip(a),
                strip(b),
                "formatting changed the tokens of {}",
                path.display()
            );
        }
    }
}
