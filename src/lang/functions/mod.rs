//! The standard function library: one table of signatures (checked at load)
//! and implementations (called per event). Functions never do I/O at event
//! time; `env` and `file` are resolved when the pipeline loads. Arguments that
//! must be known at load (regex patterns, redaction rules) are prepared once.

pub mod convert;
mod json;
mod parse_formats;
mod parse_structured;
mod redact;
mod text;

pub use convert::stringify;
pub use parse_structured::{compile_regex, to_json};

use super::types::Ty;
use crate::event::Value;
use std::borrow::Cow;

/// State built once from literal arguments.
#[derive(Debug)]
pub enum Prepared {
    None,
    Regex(regex::Regex),
    /// A regex with the fields and conversions (`%{NAME:field:int}`) of its
    /// named captures.
    Grok(Box<parse_structured::NamedCaptures>),
    Redact(Vec<redact::Rule>),
}

/// The arguments as written, for functions that prepare state from literals.
pub type ConstArgs<'a> = [&'a super::ast::Expr];

/// The literal written as argument `i`, if it is one.
pub fn literal<'a>(args: &ConstArgs<'a>, i: usize) -> Option<&'a super::ast::Lit> {
    match &args.get(i)?.kind {
        super::ast::ExprKind::Lit(l) => Some(l),
        _ => None,
    }
}

pub type CallFn = fn(&[Value], &Prepared) -> Result<Value, String>;
pub type PrepareFn = fn(&ConstArgs) -> Result<Prepared, String>;

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    /// Read only when the pipeline loads (by `prepare`), never evaluated per event.
    pub at_load: bool,
}

const fn req(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: true,
        at_load: false,
    }
}

const fn opt(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: false,
        at_load: false,
    }
}

const fn load_time(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: true,
        at_load: true,
    }
}

/// One standard function.
#[derive(Debug)]
pub struct Function {
    pub name: &'static str,
    pub params: &'static [Param],
    pub returns: Ty,
    /// Can fail at run time: the call must be handled with `!`, `??` or a step `on_error`.
    pub fallible: bool,
    pub call: CallFn,
    pub prepare: Option<PrepareFn>,
    pub doc: &'static str,
}

/// Functions the compiler handles itself (they take a path, or read the environment at load).
pub const SPECIAL: [&str; 4] = ["del", "exists", "env", "file"];

const S: Ty = Ty::TEXT;
const ANY: Ty = Ty::ANY;

macro_rules! f {
    ($name:literal, [$($p:expr),*], $ret:expr, $fallible:literal, $call:expr, $prep:expr, $doc:literal) => {
        Function { name: $name, params: &[$($p),*], returns: $ret, fallible: $fallible, call: $call, prepare: $prep, doc: $doc }
    };
}

pub static FUNCTIONS: &[Function] = &[
    f!("parse_json", [req("value", S)], ANY, true, parse_structured::parse_json, None, "Parses JSON text."),
    f!("parse_logfmt", [req("value", S)], Ty::MAP, true, parse_structured::parse_logfmt, None, "Parses `key=value key2=\"quoted value\"` pairs."),
    f!("parse_regex", [req("value", S), req("pattern", Ty::REGEX)], Ty::MAP, true, parse_structured::parse_regex, Some(parse_structured::prepare_regex), "Named captures of a regex (grok-like `%{IP:client}` patterns allowed) as a map; fails without a match."),
    f!("parse_syslog", [req("value", S)], Ty::MAP, true, parse_formats::parse_syslog, None, "Parses RFC 5424 and RFC 3164 syslog lines."),
    f!("parse_nginx", [req("value", S), opt("format", Ty::STRING)], Ty::MAP, true, parse_formats::parse_nginx, None, "Parses nginx `combined` (default) or `error` log lines."),
    f!("parse_apache", [req("value", S), opt("format", Ty::STRING)], Ty::MAP, true, parse_formats::parse_apache, None, "Parses Apache `common` or `combined` (default) log lines."),
    f!("parse_cri", [req("value", S)], Ty::MAP, true, parse_formats::parse_cri, None, "Parses a CRI (containerd, K3s) log line: timestamp, stream, partial, message."),
    f!("parse_docker_json", [req("value", S)], Ty::MAP, true, parse_formats::parse_docker_json, None, "Parses a docker json-file line: message, stream, timestamp."),
    f!("parse_timestamp", [req("value", S), opt("format", Ty::STRING)], Ty::TIMESTAMP, true, convert::parse_timestamp, None, "Parses RFC 3339 (default) or a strftime format."),
    f!("to_int", [req("value", ANY)], Ty::INT, true, convert::to_int, None, "Converts to an integer."),
    f!("to_float", [req("value", ANY)], Ty::FLOAT, true, convert::to_float, None, "Converts to a float."),
    f!("to_string", [req("value", ANY)], Ty::STRING, false, convert::to_string, None, "Converts to a string (JSON for arrays and maps)."),
    f!("to_bool", [req("value", ANY)], Ty::BOOL, true, convert::to_bool, None, "Converts true/false/yes/no/on/off/1/0 to a boolean."),
    f!("lowercase", [req("value", S)], Ty::STRING, false, text::lowercase, None, "Lowercases a string."),
    f!("uppercase", [req("value", S)], Ty::STRING, false, text::uppercase, None, "Uppercases a string."),
    f!("trim", [req("value", S)], Ty::STRING, false, text::trim, None, "Removes surrounding whitespace."),
    f!("contains", [req("value", S), req("substring", Ty::STRING)], Ty::BOOL, false, text::contains, None, "Whether the string contains the substring."),
    f!("starts_with", [req("value", S), req("prefix", Ty::STRING)], Ty::BOOL, false, text::starts_with, None, "Whether the string starts with the prefix."),
    f!("ends_with", [req("value", S), req("suffix", Ty::STRING)], Ty::BOOL, false, text::ends_with, None, "Whether the string ends with the suffix."),
    f!("replace", [req("value", S), req("pattern", Ty::STRING.or(Ty::REGEX)), req("with", Ty::STRING)], Ty::STRING, false, text::replace, Some(text::prepare_optional_regex), "Replaces every match of a string or regex."),
    f!("split", [req("value", S), req("separator", Ty::STRING.or(Ty::REGEX))], Ty::ARRAY, false, text::split, Some(text::prepare_optional_regex), "Splits a string by a string or regex."),
    f!("join", [req("value", Ty::ARRAY), opt("separator", Ty::STRING)], Ty::STRING, false, text::join, None, "Joins array items as strings."),
    f!("len", [req("value", S.or(Ty::ARRAY).or(Ty::MAP))], Ty::INT, false, text::len, None, "Length of a string (bytes), array or map."),
    f!("merge", [req("to", Ty::MAP), req("from", Ty::MAP)], Ty::MAP, false, text::merge, None, "Merges two maps; keys of the second win."),
    f!("now", [], Ty::TIMESTAMP, false, convert::now, None, "The current time."),
    f!("hash", [req("value", ANY)], Ty::INT, false, text::hash, None, "A stable 63-bit hash (xxh3) of the value's text."),
    f!("sample", [req("rate", Ty::INT), req("key", ANY)], Ty::BOOL, false, text::sample, None, "True for one in `rate` keys, the same keys every time."),
    f!("redact", [req("value", S), load_time("rules", Ty::ARRAY)], Ty::STRING, false, redact::redact, Some(redact::prepare), "Replaces emails, IPv4 addresses, bearer tokens, JWTs, credit card numbers or custom regexes with [REDACTED]."),
    f!("normalize_severity", [req("value", ANY)], Ty::STRING, true, convert::normalize_severity, None, "Maps a syslog priority (0-7) or a level word to an OpenTelemetry severity text (TRACE, DEBUG, INFO, WARN, ERROR, FATAL)."),
];

/// Looks a function up by name.
pub fn lookup(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Every function name, special forms included (for "did you mean").
pub fn names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|f| f.name).chain(SPECIAL)
}

/// The text of a string or UTF-8 bytes value.
pub fn text_of(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        // from_utf8 has a fast ASCII path; the lossy decoder only for the rest.
        Value::Bytes(b) => Some(match std::str::from_utf8(b) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(b),
        }),
        _ => None,
    }
}

/// The text of argument `i`, or an error naming the expected type.
pub fn arg_text<'a>(args: &'a [Value], i: usize) -> Result<Cow<'a, str>, String> {
    match args.get(i) {
        Some(v) => {
            text_of(v).ok_or_else(|| format!("expected a string, got {}", Ty::of(v).describe()))
        }
        None => Err("missing argument".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_a_unique_name_and_doc() {
        let mut names: Vec<&str> = names().collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(FUNCTIONS.iter().all(|f| !f.doc.is_empty()));
    }
}
