//! A typed line parser for access-log formats written as literal text with
//! fields between (nginx `log_format`, Apache `LogFormat`). The format is
//! turned into [`AccessFormat`] once, when the pipeline loads; per line it is
//! a left-to-right scan for each literal, no regex and no backtracking. A
//! line must be consumed completely: trailing text is an error, never cut off.

use super::convert::parse_time;
use super::convert::ACCESS_LOG_TIME;
use crate::event::{Map, Str, Value};

/// How a field's text becomes a value. `-` is null for every kind except
/// [`Kind::BytesOrDash`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Str,
    Int,
    Float,
    /// Apache `%b`: `-` means zero bytes.
    BytesOrDash,
    /// `25/Nov/2026:10:00:00 +0100`.
    TimeLocal,
    /// RFC 3339.
    TimeIso8601,
    /// Seconds since the epoch with a fraction (nginx `$msec`).
    EpochSeconds,
    /// `GET /path HTTP/1.1`: also sets method, path and protocol.
    Request,
    /// nginx upstream timings: one float, or an array when several
    /// upstreams answered (`0.010, 0.002` or `0.010 : 0.002`).
    FloatList,
    /// nginx upstream statuses: one int, or an array.
    IntList,
}

impl Kind {
    /// Whether a value of this kind never contains a space (so a field at
    /// the end of the format stops at the first space and what follows is
    /// trailing text).
    fn is_token(self) -> bool {
        matches!(
            self,
            Kind::Int | Kind::Float | Kind::BytesOrDash | Kind::EpochSeconds | Kind::TimeIso8601
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Literal(String),
    Field { name: Str, kind: Kind },
}

/// A compiled access-log format.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessFormat {
    segments: Vec<Segment>,
    /// What the format is called in errors (`nginx log_format`, ...).
    what: &'static str,
}

impl AccessFormat {
    /// Checks the segments: two fields side by side cannot be told apart.
    pub fn new(segments: Vec<Segment>, what: &'static str) -> Result<Self, String> {
        let mut merged: Vec<Segment> = Vec::with_capacity(segments.len());
        for seg in segments {
            match (merged.last_mut(), seg) {
                (_, Segment::Literal(l)) if l.is_empty() => {}
                (Some(Segment::Literal(prev)), Segment::Literal(l)) => prev.push_str(&l),
                (Some(Segment::Field { name: a, .. }), Segment::Field { name: b, .. }) => {
                    return Err(format!(
                        "{what}: `{a}` and `{b}` follow each other with no text between, so a line cannot be split between them"
                    ))
                }
                (_, seg) => merged.push(seg),
            }
        }
        if !merged.iter().any(|s| matches!(s, Segment::Field { .. })) {
            return Err(format!("{what}: the format has no fields"));
        }
        Ok(AccessFormat {
            segments: merged,
            what,
        })
    }

    /// The fields of `line`, typed; an error when the line does not follow
    /// the format or has text left over.
    pub fn parse(&self, line: &str) -> Result<Map, String> {
        let line = line.trim_end_matches(['\n', '\r']);
        let mut out = Vec::with_capacity(self.segments.len() + 3);
        let mut pos = 0;
        let mut segments = self.segments.iter().peekable();
        while let Some(seg) = segments.next() {
            let rest = &line[pos..];
            match seg {
                Segment::Literal(lit) => {
                    if !rest.starts_with(lit.as_str()) {
                        return Err(format!(
                            "not a line of this {}: expected `{lit}` at byte {pos}, found `{}`",
                            self.what,
                            excerpt(rest)
                        ));
                    }
                    pos += lit.len();
                }
                Segment::Field { name, kind } => {
                    let len = match segments.peek() {
                        Some(Segment::Literal(next)) => {
                            find_unescaped(rest, next).ok_or_else(|| {
                                format!(
                                    "not a line of this {}: `{next}` after `{name}` not found",
                                    self.what
                                )
                            })?
                        }
                        _ if kind.is_token() => rest.find(' ').unwrap_or(rest.len()),
                        _ => rest.len(),
                    };
                    put(&mut out, name, *kind, &rest[..len])?;
                    pos += len;
                }
            }
        }
        if pos < line.len() {
            return Err(format!(
                "{}: unparsed text at the end of the line: `{}`",
                self.what,
                excerpt(&line[pos..])
            ));
        }
        Ok(Map::from_entries(out))
    }
}

fn excerpt(s: &str) -> String {
    s.chars().take(30).collect()
}

/// Where `needle` first occurs in `hay` not preceded by a backslash (an
/// escaped quote inside a quoted field does not end it).
fn find_unescaped(hay: &str, needle: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = hay[from..].find(needle) {
        let at = from + i;
        if needle.starts_with('"') && hay[..at].ends_with('\\') && !hay[..at].ends_with("\\\\") {
            from = at + 1;
            continue;
        }
        return Some(at);
    }
    None
}

fn string(v: &str) -> Value {
    Value::String(Str::from(v))
}

fn number<T: std::str::FromStr>(name: &str, text: &str, what: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{name}`: `{}` is not {what}", excerpt(text)))
}

fn list<T: std::str::FromStr>(
    name: &str,
    text: &str,
    what: &str,
    one: fn(T) -> Value,
) -> Result<Value, String> {
    let parts: Vec<&str> = text
        .split([',', ':'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        values.push(if *part == "-" {
            Value::Null
        } else {
            one(number(name, part, what)?)
        });
    }
    match values.len() {
        1 => Ok(values.remove(0)),
        _ => Ok(Value::Array(values)),
    }
}

fn put(out: &mut Vec<(Str, Value)>, name: &Str, kind: Kind, text: &str) -> Result<(), String> {
    if text == "-" {
        let v = match kind {
            Kind::BytesOrDash => Value::Int(0),
            _ => Value::Null,
        };
        out.push((name.clone(), v));
        return Ok(());
    }
    let value = match kind {
        Kind::Str => string(text),
        Kind::Int | Kind::BytesOrDash => Value::Int(number(name, text, "an integer")?),
        Kind::Float => Value::Float(number(name, text, "a number")?),
        Kind::TimeLocal => Value::Timestamp(
            parse_time(text, Some(ACCESS_LOG_TIME)).map_err(|e| format!("`{name}`: {e}"))?,
        ),
        Kind::TimeIso8601 => {
            Value::Timestamp(parse_time(text, None).map_err(|e| format!("`{name}`: {e}"))?)
        }
        Kind::EpochSeconds => {
            let secs: f64 = number(name, text, "seconds since the epoch")?;
            Value::Timestamp((secs * 1e9).round() as i64)
        }
        Kind::FloatList => list(name, text, "a number", Value::Float)?,
        Kind::IntList => list(name, text, "an integer", Value::Int)?,
        Kind::Request => {
            push_request_parts(out, text);
            string(text)
        }
    };
    out.push((name.clone(), value));
    Ok(())
}

/// The method, path and protocol of a request line (`GET /path HTTP/1.1`):
/// none without a space, no protocol without a second space.
pub(super) fn push_request_parts(out: &mut Vec<(Str, Value)>, request: &str) {
    if let Some((method, rest)) = request.split_once(' ') {
        out.push(("method".into(), string(method)));
        match rest.split_once(' ') {
            Some((path, proto)) => {
                out.push(("path".into(), string(path)));
                out.push(("protocol".into(), string(proto)));
            }
            None => out.push(("path".into(), string(rest))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: Kind) -> Segment {
        Segment::Field {
            name: name.into(),
            kind,
        }
    }

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.into())
    }

    #[test]
    fn adjacent_fields_and_formats_without_fields_are_refused() {
        let e = AccessFormat::new(vec![field("a", Kind::Str), field("b", Kind::Int)], "test")
            .unwrap_err();
        assert!(e.contains("`a` and `b`"), "{e}");
        assert!(AccessFormat::new(vec![lit("x")], "test").is_err());
    }

    #[test]
    fn trailing_text_after_the_last_field_is_an_error() {
        let f = AccessFormat::new(
            vec![field("ip", Kind::Str), lit(" "), field("n", Kind::Int)],
            "test",
        )
        .unwrap();
        let m = f.parse("1.2.3.4 17").unwrap();
        assert_eq!(m.get("n"), Some(&Value::Int(17)));
        let e = f.parse("1.2.3.4 17 0.5").unwrap_err();
        assert!(e.contains("unparsed text") && e.contains("0.5"), "{e}");
    }

    #[test]
    fn escaped_quotes_stay_inside_a_quoted_field() {
        let f = AccessFormat::new(
            vec![
                lit("\""),
                field("ua", Kind::Str),
                lit("\" "),
                field("n", Kind::Int),
            ],
            "test",
        )
        .unwrap();
        let m = f.parse(r#""a \"b\" c" 5"#).unwrap();
        assert_eq!(m.get("ua"), Some(&string(r#"a \"b\" c"#)));
    }

    #[test]
    fn dashes_are_null_and_upstream_lists_become_arrays() {
        let f = AccessFormat::new(
            vec![
                field("t", Kind::FloatList),
                lit("|"),
                field("s", Kind::IntList),
            ],
            "test",
        )
        .unwrap();
        let m = f.parse("0.010, 0.002 : -|502, 200").unwrap();
        assert_eq!(
            m.get("t"),
            Some(&Value::Array(vec![
                Value::Float(0.010),
                Value::Float(0.002),
                Value::Null
            ]))
        );
        assert_eq!(
            m.get("s"),
            Some(&Value::Array(vec![Value::Int(502), Value::Int(200)]))
        );
        let m = f.parse("-|-").unwrap();
        assert_eq!(m.get("t"), Some(&Value::Null));
        assert!(f.parse("x|200").unwrap_err().contains("`t`"));
    }
}
