//! Diagnostics: every error the language reports carries a span (byte range
//! in the source), a message and a hint, and renders as
//! `file:line:column: error: message`, the source line, a caret, the hint.

use std::fmt::Write;

/// A byte range in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// One problem found in a pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub span: Span,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// 1-based line and column (in characters) of byte offset `pos`.
pub fn line_col(source: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(source.len());
    let before = &source[..floor_char_boundary(source, pos)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Renders diagnostics for `file` whose text is `source`.
pub fn render(file: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    render_as("error", file, source, diagnostics)
}

/// Renders warnings (which do not refuse the file) like errors.
pub fn render_warnings(file: &str, source: &str, warnings: &[Diagnostic]) -> String {
    render_as("warning", file, source, warnings)
}

fn render_as(severity: &str, file: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let (line, col) = line_col(source, d.span.start);
        let _ = writeln!(out, "{file}:{line}:{col}: {severity}: {}", d.message);
        let text = source.lines().nth(line - 1).unwrap_or("");
        let width = {
            let end = d.span.end.max(d.span.start + 1);
            let (end_line, end_col) = line_col(source, end);
            if end_line == line {
                end_col.saturating_sub(col).max(1)
            } else {
                text.chars().count().saturating_sub(col - 1).max(1)
            }
        };
        let gutter = line.to_string().len();
        let _ = writeln!(out, "{:gutter$} |", "");
        let _ = writeln!(out, "{line} | {text}");
        let _ = writeln!(
            out,
            "{:gutter$} | {}{}",
            "",
            " ".repeat(col - 1),
            "^".repeat(width)
        );
        if let Some(hint) = &d.hint {
            let _ = writeln!(out, "{:gutter$} = hint: {hint}", "");
        }
    }
    out
}

/// The closest candidate to `name` (edit distance ≤ 2, or ≤ a third of its length).
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean `x`?" for the closest candidate, else `otherwise()`.
pub fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    otherwise: impl FnOnce() -> String,
) -> String {
    match did_you_mean(name, candidates) {
        Some(s) => format!("did you mean `{s}`?"),
        None => otherwise(),
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_caret_and_hint() {
        let src = "a = 1\nb = frobnicate(2)\n";
        let d = Diagnostic::new(Span::new(10, 20), "unknown function `frobnicate`")
            .hint("did you mean `floor`?");
        let text = render("x.ship", src, &[d]);
        assert_eq!(
            text,
            "x.ship:2:5: error: unknown function `frobnicate`\n  |\n2 | b = frobnicate(2)\n  |     ^^^^^^^^^^\n  = hint: did you mean `floor`?\n"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("parse_jsn", ["parse_json", "parse_regex"]),
            Some("parse_json")
        );
        assert_eq!(did_you_mean("zzz", ["parse_json"]), None);
    }
}
