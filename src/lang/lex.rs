//! The lexer: `.ship` text to tokens with byte spans. Comments are kept as
//! tokens (the formatter needs them; the parser skips them). A `/` starts a
//! regex literal where an operand is expected, and divides elsewhere.

use super::diagnostics::{Diagnostic, Span};
use std::time::Duration;

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Field(crate::event::Str),
    Index(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// `.a.b."c d"`; an empty vector is the root `.`.
    Path(Vec<Segment>),
    Str(String),
    Regex(String),
    Int(i64),
    Float(f64),
    Duration(Duration),
    Size(u64),
    Comment(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Semi,
    Colon,
    Assign,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    Coalesce,
    Arrow,
    /// `|`: opens and closes the parameters of a closure (`|k, v| ...`).
    Pipe,
}

impl Tok {
    /// Can this token end an operand (so a following `/` divides)?
    fn ends_operand(&self) -> bool {
        matches!(
            self,
            Tok::Ident(_)
                | Tok::Path(_)
                | Tok::Str(_)
                | Tok::Regex(_)
                | Tok::Int(_)
                | Tok::Float(_)
                | Tok::Duration(_)
                | Tok::Size(_)
                | Tok::RParen
                | Tok::RBracket
        )
    }

    /// How the token is written, for messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Path(_) => "a field path".into(),
            Tok::Str(_) => "a string".into(),
            Tok::Regex(_) => "a regex".into(),
            Tok::Int(_) | Tok::Float(_) => "a number".into(),
            Tok::Duration(_) => "a duration".into(),
            Tok::Size(_) => "a size".into(),
            Tok::Comment(_) => "a comment".into(),
            other => format!("`{}`", punct_text(other)),
        }
    }
}

/// The text of a punctuation token.
pub fn punct_text(t: &Tok) -> &'static str {
    match t {
        Tok::LBrace => "{",
        Tok::RBrace => "}",
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::LBracket => "[",
        Tok::RBracket => "]",
        Tok::Comma => ",",
        Tok::Semi => ";",
        Tok::Colon => ":",
        Tok::Assign => "=",
        Tok::Eq => "==",
        Tok::Ne => "!=",
        Tok::Lt => "<",
        Tok::Le => "<=",
        Tok::Gt => ">",
        Tok::Ge => ">=",
        Tok::Plus => "+",
        Tok::Minus => "-",
        Tok::Star => "*",
        Tok::Slash => "/",
        Tok::Percent => "%",
        Tok::Bang => "!",
        Tok::Coalesce => "??",
        Tok::Arrow => "=>",
        Tok::Pipe => "|",
        _ => "",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: Vec<Token>,
    errors: Vec<Diagnostic>,
}

/// Splits `src` into tokens; errors are collected, lexing goes on after them.
pub fn lex(src: &str) -> (Vec<Token>, Vec<Diagnostic>) {
    let mut lx = Lexer {
        src,
        bytes: src.as_bytes(),
        pos: 0,
        out: Vec::new(),
        errors: Vec::new(),
    };
    lx.run();
    (lx.out, lx.errors)
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.out.push(Token {
            tok,
            span: Span::new(start, self.pos),
        });
    }

    fn error(&mut self, start: usize, msg: impl Into<String>, hint: &str) {
        self.errors
            .push(Diagnostic::new(Span::new(start, self.pos.max(start + 1)), msg).hint(hint));
    }

    fn operand_expected(&self) -> bool {
        !self
            .out
            .iter()
            .rev()
            .find(|t| !matches!(t.tok, Tok::Comment(_)))
            .is_some_and(|t| t.tok.ends_operand())
    }

    fn run(&mut self) {
        while let Some(c) = self.peek(0) {
            let start = self.pos;
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'#' => {
                    let end = self.src[start..]
                        .find('\n')
                        .map(|i| start + i)
                        .unwrap_or(self.src.len());
                    self.pos = end;
                    let text = self.src[start + 1..end].trim_end().to_owned();
                    self.push(Tok::Comment(text), start);
                }
                b'"' => {
                    if let Some(s) = self.string() {
                        self.push(Tok::Str(s), start);
                    }
                }
                b'.' => self.path(),
                b'/' if self.operand_expected() => self.regex(),
                b'0'..=b'9' => self.number(),
                c if is_ident_start(c) => {
                    while self.peek(0).is_some_and(is_ident_char) {
                        self.pos += 1;
                    }
                    let word = self.src[start..self.pos].to_owned();
                    self.push(Tok::Ident(word), start);
                }
                _ => self.punct(c),
            }
        }
    }

    fn punct(&mut self, c: u8) {
        let start = self.pos;
        let two = (c, self.peek(1).unwrap_or(0));
        let (tok, len) = match two {
            (b'=', b'=') => (Tok::Eq, 2),
            (b'=', b'>') => (Tok::Arrow, 2),
            (b'!', b'=') => (Tok::Ne, 2),
            (b'<', b'=') => (Tok::Le, 2),
            (b'>', b'=') => (Tok::Ge, 2),
            (b'?', b'?') => (Tok::Coalesce, 2),
            (b'=', _) => (Tok::Assign, 1),
            (b'<', _) => (Tok::Lt, 1),
            (b'>', _) => (Tok::Gt, 1),
            (b'!', _) => (Tok::Bang, 1),
            (b'{', _) => (Tok::LBrace, 1),
            (b'}', _) => (Tok::RBrace, 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'[', _) => (Tok::LBracket, 1),
            (b']', _) => (Tok::RBracket, 1),
            (b',', _) => (Tok::Comma, 1),
            (b';', _) => (Tok::Semi, 1),
            (b':', _) => (Tok::Colon, 1),
            (b'+', _) => (Tok::Plus, 1),
            (b'-', _) => (Tok::Minus, 1),
            (b'*', _) => (Tok::Star, 1),
            (b'/', _) => (Tok::Slash, 1),
            (b'%', _) => (Tok::Percent, 1),
            (b'|', _) => (Tok::Pipe, 1),
            _ => {
                let ch = self.src[start..].chars().next().unwrap_or('?');
                self.pos += ch.len_utf8();
                self.error(
                    start,
                    format!("unexpected character `{ch}`"),
                    "remove it, or quote it inside a string",
                );
                return;
            }
        };
        self.pos += len;
        self.push(tok, start);
    }

    /// A double-quoted string with escapes; `None` after reporting an error.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.pos..].chars().next() else {
                self.error(start, "unterminated string", "close it with `\"`");
                return None;
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Some(out),
                '\n' => {
                    self.error(
                        start,
                        "unterminated string",
                        "strings end on the line they start; use \\n for a newline",
                    );
                    return None;
                }
                '\\' => {
                    let Some(e) = self.src[self.pos..].chars().next() else {
                        continue;
                    };
                    self.pos += e.len_utf8();
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '0' => out.push('\0'),
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        other => {
                            self.error(
                                self.pos - 2,
                                format!("unknown escape `\\{other}`"),
                                "valid escapes: \\n \\t \\r \\0 \\\" \\\\",
                            );
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn regex(&mut self) {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.pos..].chars().next() else {
                self.error(start, "unterminated regex", "close it with `/`");
                return;
            };
            self.pos += c.len_utf8();
            match c {
                '/' => break,
                '\n' => {
                    self.error(
                        start,
                        "unterminated regex",
                        "close it with `/` on the same line",
                    );
                    return;
                }
                '\\' if self.peek(0) == Some(b'/') => {
                    self.pos += 1;
                    out.push('/');
                }
                '\\' => {
                    out.push('\\');
                    if let Some(n) = self.src[self.pos..].chars().next() {
                        self.pos += n.len_utf8();
                        out.push(n);
                    }
                }
                c => out.push(c),
            }
        }
        self.push(Tok::Regex(out), start);
    }

    fn path(&mut self) {
        let start = self.pos;
        let mut segments = Vec::new();
        while self.peek(0) == Some(b'.') {
            let seg_start = self.pos;
            self.pos += 1;
            match self.peek(0) {
                Some(c) if is_ident_start(c) => {
                    let s = self.pos;
                    while self.peek(0).is_some_and(is_ident_char) {
                        self.pos += 1;
                    }
                    segments.push(Segment::Field(self.src[s..self.pos].into()));
                }
                Some(b'"') => match self.string() {
                    Some(s) => segments.push(Segment::Field(s.into())),
                    None => return,
                },
                _ if segments.is_empty() => break,
                _ => {
                    self.error(
                        seg_start,
                        "a path segment must follow `.`",
                        "write `.name` or `.\"odd name\"`",
                    );
                    break;
                }
            }
        }
        self.push(Tok::Path(segments), start);
    }

    fn number(&mut self) {
        let start = self.pos;
        while self
            .peek(0)
            .is_some_and(|c| c.is_ascii_digit() || c == b'_')
        {
            self.pos += 1;
        }
        let mut is_float = false;
        if self.peek(0) == Some(b'.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            is_float = true;
            self.pos += 1;
            while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        let digits: String = self.src[start..self.pos]
            .chars()
            .filter(|c| *c != '_')
            .collect();
        let unit_start = self.pos;
        while self.peek(0).is_some_and(|c| c.is_ascii_alphabetic()) {
            self.pos += 1;
        }
        let unit = &self.src[unit_start..self.pos];
        let tok = match unit {
            "" if is_float => digits.parse().map(Tok::Float).ok(),
            "" => digits.parse().map(Tok::Int).ok(),
            "ms" | "s" | "m" | "h" | "d" => {
                let n: f64 = digits.parse().unwrap_or(f64::NAN);
                let secs = match unit {
                    "ms" => n / 1000.0,
                    "s" => n,
                    "m" => n * 60.0,
                    "h" => n * 3600.0,
                    _ => n * 86400.0,
                };
                Duration::try_from_secs_f64(secs).ok().map(Tok::Duration)
            }
            "B" | "KiB" | "MiB" | "GiB" | "KB" | "MB" | "GB" => {
                let mult: f64 = match unit {
                    "B" => 1.0,
                    "KiB" => 1024.0,
                    "MiB" => 1024.0 * 1024.0,
                    "GiB" => 1024.0 * 1024.0 * 1024.0,
                    "KB" => 1e3,
                    "MB" => 1e6,
                    _ => 1e9,
                };
                digits
                    .parse::<f64>()
                    .ok()
                    .map(|n| n * mult)
                    .filter(|v| v.is_finite() && *v < u64::MAX as f64)
                    .map(|v| Tok::Size(v as u64))
            }
            _ => {
                self.error(
                    start,
                    format!("unknown unit `{unit}`"),
                    "durations: ms s m h d; sizes: B KiB MiB GiB KB MB GB",
                );
                return;
            }
        };
        match tok {
            Some(tok) => self.push(tok, start),
            None => self.error(start, "number out of range", "integers are 64-bit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        let (t, e) = lex(src);
        assert!(e.is_empty(), "{e:?}");
        t.into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn paths_strings_regexes_and_units() {
        assert_eq!(
            toks(r#".a."b c" = /^\S+\/x/ # hi"#),
            vec![
                Tok::Path(vec![
                    Segment::Field("a".into()),
                    Segment::Field("b c".into())
                ]),
                Tok::Assign,
                Tok::Regex(r"^\S+/x".into()),
                Tok::Comment(" hi".into()),
            ]
        );
        assert_eq!(
            toks("15s 1MiB 2.5"),
            vec![
                Tok::Duration(Duration::from_secs(15)),
                Tok::Size(1 << 20),
                Tok::Float(2.5)
            ]
        );
    }

    #[test]
    fn slash_after_operand_divides() {
        assert_eq!(
            toks(".a / 2"),
            vec![
                Tok::Path(vec![Segment::Field("a".into())]),
                Tok::Slash,
                Tok::Int(2)
            ]
        );
    }

    #[test]
    fn closure_bars_are_single_tokens() {
        assert_eq!(
            toks("|k, v| ||"),
            vec![
                Tok::Pipe,
                Tok::Ident("k".into()),
                Tok::Comma,
                Tok::Ident("v".into()),
                Tok::Pipe,
                Tok::Pipe,
                Tok::Pipe
            ]
        );
    }

    #[test]
    fn errors_have_spans_and_lexing_continues() {
        let (t, e) = lex("\"open\n x @ 3");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].span.start, 0);
        assert!(t.iter().any(|t| t.tok == Tok::Int(3)));
    }
}
