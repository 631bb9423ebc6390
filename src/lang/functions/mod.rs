//! The standard function library: one table of signatures (checked at load)
//! and implementations (called per event). Functions never do I/O at event
//! time; `env` and `file` are resolved when the pipeline loads. Arguments that
//! must be known at load (regex patterns, redaction rules) are prepared once.

mod access_format;
mod access_line;
mod apache_format;
mod collections;
pub mod convert;
mod delimited;
mod digest;
pub mod examples;
mod json;
mod klog;
mod net;
mod nginx_format;
mod parse_formats;
mod parse_structured;
mod redact;
pub mod syslog;
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
    /// A custom nginx `log_format` or Apache `LogFormat`.
    AccessFormat(Box<access_format::AccessFormat>),
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

/// Checks a call's compiled arguments when the pipeline loads, for a
/// function that needs an argument in range: `Err((i, message))` refuses
/// argument `i` (a constant out of range); `Ok(true)` when the call can
/// fail at run time after all (that argument is computed per event), so it
/// must be handled like a fallible one; `Ok(false)` when it cannot.
pub type CheckFn = fn(&[super::eval::CExpr]) -> Result<bool, (usize, String)>;

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
    /// Checks of the compiled arguments when the pipeline loads.
    pub check: Option<CheckFn>,
    pub doc: &'static str,
}

/// A function the compiler handles itself: it takes a field path, reads
/// the environment or a file once, when the pipeline loads, or takes a
/// closure ([`crate::lang::iterate`]).
#[derive(Debug)]
pub struct SpecialForm {
    pub name: &'static str,
    /// The parameters as written in a signature, e.g. `path: a field path`.
    pub params: &'static str,
    pub returns: Ty,
    pub fallible: bool,
    pub doc: &'static str,
}

pub static SPECIAL: &[SpecialForm] = &[
    SpecialForm {
        name: "del",
        params: "path: a field path",
        returns: ANY,
        fallible: false,
        doc: "Removes a field and returns its value (null when it was absent).",
    },
    SpecialForm {
        name: "exists",
        params: "path: a field path",
        returns: Ty::BOOL,
        fallible: false,
        doc: "Whether the field is present and not null.",
    },
    SpecialForm {
        name: "env",
        params: "name: string",
        returns: Ty::STRING,
        fallible: true,
        doc: "An environment variable, read once when the pipeline loads (in tests, only the test's environment); fails when it is not set.",
    },
    SpecialForm {
        name: "file",
        params: "path: string",
        returns: Ty::STRING,
        fallible: true,
        doc: "A file's text without trailing newlines, read once when the pipeline loads (for secrets: never printed); fails when it cannot be read.",
    },
    SpecialForm {
        name: "map_values",
        params: "value: map or array, closure: |v| or |k, v|",
        returns: Ty::MAP.or(Ty::ARRAY),
        fallible: false,
        doc: "The map (keys kept) or array with each value replaced by what the closure yields. One parameter is the value; two are the key (maps) or index from 0 (arrays) and the value. A value that is not a map or array fails the step.",
    },
    SpecialForm {
        name: "map_keys",
        params: "value: map, closure: |k| or |k, v|",
        returns: Ty::MAP,
        fallible: false,
        doc: "The map with each key replaced by what the closure yields, which must be a string; of two equal new keys the later in key order wins. One parameter is the key; two are the key and the value.",
    },
    SpecialForm {
        name: "filter",
        params: "value: map or array, closure: |v| or |k, v|",
        returns: Ty::MAP.or(Ty::ARRAY),
        fallible: false,
        doc: "The map or array with only the elements for which the closure yields `true` (it must yield a boolean). Parameters as for `map_values`.",
    },
    SpecialForm {
        name: "count",
        params: "source: a log_metrics source, name: string literal, [labels: map of strings], [by: number]",
        returns: Ty::NULL,
        fallible: false,
        doc: "Adds `by` (default 1) to the counter `name` with these labels in a `log_metrics` source; only in steps. Fails only when `by` may not be a number or a label value not a string.",
    },
    SpecialForm {
        name: "observe",
        params: "source: a log_metrics source, name: string literal, value: number, [labels: map of strings], [buckets: increasing number literals]",
        returns: Ty::NULL,
        fallible: false,
        doc: "Records `value` in the histogram `name` (explicit buckets, upper bounds inclusive; Prometheus' defaults when none are given) of a `log_metrics` source; only in steps. Fails only when the value may not be a number or a label value not a string.",
    },
    SpecialForm {
        name: "set_gauge",
        params: "source: a log_metrics source, name: string literal, value: number, [labels: map of strings]",
        returns: Ty::NULL,
        fallible: false,
        doc: "Sets the gauge `name` with these labels of a `log_metrics` source to `value` (the last value of an interval is shipped); only in steps. Fails only when the value may not be a number or a label value not a string.",
    },
];

const S: Ty = Ty::TEXT;
const ANY: Ty = Ty::ANY;

macro_rules! f {
    ($name:literal, [$($p:expr),*], $ret:expr, $fallible:literal, $call:expr, $prep:expr, $doc:literal) => {
        Function { name: $name, params: &[$($p),*], returns: $ret, fallible: $fallible, call: $call, prepare: $prep, check: None, doc: $doc }
    };
    ($name:literal, [$($p:expr),*], $ret:expr, $fallible:literal, $call:expr, $prep:expr, check $check:expr, $doc:literal) => {
        Function { name: $name, params: &[$($p),*], returns: $ret, fallible: $fallible, call: $call, prepare: $prep, check: Some($check), doc: $doc }
    };
}

pub static FUNCTIONS: &[Function] = &[
    f!("parse_json", [req("value", S)], ANY, true, parse_structured::parse_json, None, "Parses JSON text."),
    f!("parse_logfmt", [req("value", S)], Ty::MAP, true, parse_structured::parse_logfmt, None, "Parses `key=value key2=\"quoted value\"` pairs."),
    f!("parse_regex", [req("value", S), req("pattern", Ty::REGEX)], Ty::MAP, true, parse_structured::parse_regex, Some(parse_structured::prepare_regex), "Named captures of a regex as a map; fails without a match. Grok-like named patterns (`%{IP:client}`, `%{INT:status:int}`, `%{NUMBER:secs:float}`) expand when the pipeline loads; `:int` and `:float` convert the capture."),
    f!("parse_syslog", [req("value", S)], Ty::MAP, true, syslog::parse_syslog, None, "Parses RFC 5424 and RFC 3164 syslog lines."),
    f!("parse_nginx", [req("value", S), opt("format", Ty::STRING)], Ty::MAP, true, parse_formats::parse_nginx, Some(parse_formats::prepare_nginx), "Parses nginx access lines (`combined` by default, `main`, or a custom `log_format` string with `$variables`, typed) or `error` log lines; trailing text the format does not cover is an error."),
    f!("parse_apache", [req("value", S), opt("format", Ty::STRING)], Ty::MAP, true, parse_formats::parse_apache, Some(parse_formats::prepare_apache), "Parses Apache `common`, `combined` (default) or custom `LogFormat` (`%h %l %u %t \\\"%r\\\" %>s %b`) lines; trailing text is an error."),
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
    f!("replace", [req("value", S), req("pattern", Ty::STRING.or(Ty::REGEX)), req("with", Ty::STRING)], Ty::STRING, false, text::replace, Some(text::prepare_optional_regex), "Replaces every match of a string or regex. With a regex, `$1` or `${name}` in `with` inserts that capture (`${1}` before a letter, digit or `_`; `$$` is a `$`); with a string pattern, `with` is literal."),
    f!("split", [req("value", S), req("separator", Ty::STRING.or(Ty::REGEX))], Ty::ARRAY, false, text::split, Some(text::prepare_optional_regex), "Splits a string by a string or regex."),
    f!("join", [req("value", Ty::ARRAY), opt("separator", Ty::STRING)], Ty::STRING, false, text::join, None, "Joins array items as strings."),
    f!("len", [req("value", S.or(Ty::ARRAY).or(Ty::MAP))], Ty::INT, false, text::len, None, "Length of a string (bytes), array or map."),
    f!("merge", [req("to", Ty::MAP), req("from", Ty::MAP)], Ty::MAP, false, text::merge, None, "Merges two maps; keys of the second win."),
    f!("now", [], Ty::TIMESTAMP, false, convert::now, None, "The current time."),
    f!("hash", [req("value", ANY)], Ty::INT, false, text::hash, None, "A stable 63-bit hash (xxh3) of the value's text."),
    f!("sample", [req("rate", Ty::INT), req("key", ANY)], Ty::BOOL, false, text::sample, None, check text::check_sample, "True when `hash(key)` is divisible by `rate`: one key in `rate`, the same keys on every node and every run, so every event of a kept key is kept. A constant rate below 1 is refused when the pipeline loads; a rate computed per event may be below 1, so the call can then fail and must be handled (`sample!(...)`, `?? value` or the step's `on_error`)."),
    f!("redact", [req("value", ANY), load_time("rules", Ty::ARRAY)], ANY, false, redact::redact, Some(redact::prepare), "Replaces emails, IPv4 addresses, bearer tokens, JWTs, credit card numbers or custom regexes with [REDACTED], in a string or in every string inside maps and arrays."),
    f!("normalize_severity", [req("value", ANY), opt("scheme", Ty::STRING)], Ty::STRING, true, convert::normalize_severity, None, "Maps a level word or number to an OpenTelemetry severity text (TRACE, DEBUG, INFO, WARN, ERROR, FATAL). Numbers: scheme `auto` (default) reads 0-7 as syslog and 10-60 as pino/bunyan; `syslog` only 0-7; `pino`/`bunyan` any positive level (10 trace ... 60 fatal)."),
    f!("from_unix", [req("value", Ty::NUMBER.or(S)), opt("unit", Ty::STRING)], Ty::TIMESTAMP, true, convert::from_unix, None, "A Unix time in `s` (default), `ms`, `us` or `ns` as a timestamp."),
    f!("parse_klog", [req("value", S)], Ty::MAP, true, klog::parse_klog, None, "Parses a Kubernetes/K3s klog line: severity, timestamp (current year), thread, file, line, message."),
    f!("parse_csv", [req("value", S), opt("header", Ty::ARRAY), opt("delimiter", Ty::STRING)], Ty::ARRAY.or(Ty::MAP), true, delimited::parse_csv, None, "Parses one CSV record (quotes per RFC 4180) as an array of strings, or a map keyed by the header names."),
    f!("parse_key_value", [req("value", S), opt("key_value_separator", Ty::STRING), opt("field_separator", Ty::STRING)], Ty::MAP, true, delimited::parse_key_value, None, "Parses `k=v k2=\"quoted v\"` pairs with configurable separators (defaults `=` and space)."),
    f!("compact", [req("value", ANY)], ANY, false, collections::compact, None, "Removes null values, empty strings, arrays and maps, recursively."),
    f!("flatten", [req("value", Ty::MAP), opt("separator", Ty::STRING)], Ty::MAP, false, collections::flatten, None, "Nested maps to one map with dotted keys (`{a: {b: 1}}` to `{\"a.b\": 1}`); arrays stay values."),
    f!("keys", [req("value", Ty::MAP)], Ty::ARRAY, false, collections::keys, None, "The keys of a map, sorted."),
    f!("values", [req("value", Ty::MAP)], Ty::ARRAY, false, collections::values, None, "The values of a map, in key order."),
    f!("is_string", [req("value", ANY)], Ty::BOOL, false, collections::is_string, None, "Whether the value is a string (or bytes)."),
    f!("is_int", [req("value", ANY)], Ty::BOOL, false, collections::is_int, None, "Whether the value is an integer."),
    f!("is_float", [req("value", ANY)], Ty::BOOL, false, collections::is_float, None, "Whether the value is a float."),
    f!("is_bool", [req("value", ANY)], Ty::BOOL, false, collections::is_bool, None, "Whether the value is a boolean."),
    f!("is_map", [req("value", ANY)], Ty::BOOL, false, collections::is_map, None, "Whether the value is a map."),
    f!("is_array", [req("value", ANY)], Ty::BOOL, false, collections::is_array, None, "Whether the value is an array."),
    f!("is_null", [req("value", ANY)], Ty::BOOL, false, collections::is_null, None, "Whether the value is null (a missing field reads as null)."),
    f!("is_timestamp", [req("value", ANY)], Ty::BOOL, false, collections::is_timestamp, None, "Whether the value is a timestamp."),
    f!("ip_mask", [req("ip", S), req("prefix_len", Ty::INT)], Ty::STRING, true, net::ip_mask, None, "Zeroes an IPv4 or IPv6 address after its first `prefix_len` bits (`10.1.2.3`, 24 to `10.1.2.0`)."),
    f!("ip_in_cidr", [req("ip", S), req("cidr", Ty::STRING)], Ty::BOOL, true, net::ip_in_cidr, None, "Whether an IPv4 or IPv6 address is inside a CIDR block."),
    f!("sha256", [req("value", S)], Ty::STRING, false, digest::sha256, None, "The SHA-256 of the text, as lowercase hex."),
    f!("hmac_sha256", [req("value", S), req("key", S)], Ty::STRING, false, digest::hmac_sha256, None, "The HMAC-SHA-256 of the text with a key, as lowercase hex: a pseudonym that cannot be reversed without the key."),
];

/// Looks a function up by name.
pub fn lookup(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Every function name, special forms and metric emission included (for
/// "did you mean", and the reference documents each).
pub fn names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS
        .iter()
        .map(|f| f.name)
        .chain(SPECIAL.iter().map(|s| s.name))
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

/// Calls of text functions in unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{CallFn, Prepared};
    use crate::event::{Map, Value};

    /// The map a call returned (panics otherwise).
    pub fn map(v: Result<Value, String>) -> Map {
        match v {
            Ok(Value::Map(m)) => m,
            other => panic!("expected a map, got {other:?}"),
        }
    }

    /// `f` called with text arguments.
    pub fn call(f: CallFn, args: &[&str]) -> Result<Value, String> {
        let args: Vec<Value> = args.iter().map(|a| Value::from(*a)).collect();
        f(&args, &Prepared::None)
    }
}
