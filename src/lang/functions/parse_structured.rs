//! Structured-text parsers: JSON, logfmt, and regex named captures (with
//! grok-like named patterns expanded at load into one linear-time regex).

use super::{arg_text, Prepared};
use crate::event::Map;
use crate::event::{Str, Value};
use crate::lang::ast::Lit;
use std::panic::{RefUnwindSafe, UnwindSafe};

/// Parses JSON text into a [`Value`]: [`super::json`] reads what logs are
/// made of; serde_json reads the rest and words the errors.
pub fn json_to_value(text: &str) -> Result<Value, serde_json::Error> {
    match super::json::parse(text) {
        Some(v) => Ok(v),
        None => json_with_serde(text),
    }
}

/// serde_json's reading, straight into a [`Value`] without an intermediate
/// tree.
pub(super) fn json_with_serde(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<JsonValue>(text).map(|j| j.0)
}

/// A [`Value`] read from JSON.
struct JsonValue(Value);

impl<'de> serde::Deserialize<'de> for JsonValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor).map(JsonValue)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map_or(Value::Float(u as f64), Value::Int))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.into()))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(JsonValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
        while let Some((k, JsonValue(v))) = map.next_entry::<Str, JsonValue>()? {
            entries.push((k, v));
        }
        Ok(Value::Map(Map::from_entries(entries)))
    }
}

/// Converts a value to JSON.
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::String(s) => s.as_str().into(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned().into(),
        Value::Timestamp(ns) => crate::event::format_rfc3339(*ns).into(),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
        }
    }
}

pub fn parse_json(args: &[Value], _: &Prepared) -> Result<Value, String> {
    let text = arg_text(args, 0)?;
    json_to_value(&text).map_err(|e| format!("invalid JSON: {e}"))
}

pub fn parse_logfmt(args: &[Value], _: &Prepared) -> Result<Value, String> {
    let text = arg_text(args, 0)?;
    let mut out = Map::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        if key.is_empty() {
            return Err(format!(
                "logfmt: expected a key at `{}`",
                rest.chars().take(20).collect::<String>()
            ));
        }
        rest = &rest[key_end..];
        let value = if let Some(after) = rest.strip_prefix('=') {
            if let Some(quoted) = after.strip_prefix('"') {
                let mut val = String::new();
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                val.push(match n {
                                    'n' => '\n',
                                    't' => '\t',
                                    other => other,
                                });
                            }
                        }
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        c => val.push(c),
                    }
                }
                let end =
                    end.ok_or_else(|| format!("logfmt: unterminated quote for key `{key}`"))?;
                rest = &quoted[end + 1..];
                val
            } else {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                let val = after[..end].to_owned();
                rest = &after[end..];
                val
            }
        } else {
            "true".to_owned()
        };
        out.insert(key.to_owned().into(), Value::String(value.into()));
        rest = rest.trim_start();
    }
    Ok(Value::Map(out))
}

/// Named patterns usable as `%{NAME:field}` or `%{NAME:field:int}` in regexes.
const NAMED_PATTERNS: &[(&str, &str)] = &[
    ("INT", r"[+-]?\d+"),
    ("NUMBER", r"[+-]?\d+(?:\.\d+)?"),
    ("WORD", r"\w+"),
    ("NOTSPACE", r"\S+"),
    ("DATA", r".*?"),
    ("GREEDYDATA", r".*"),
    (
        "IP",
        r"(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+",
    ),
    ("IPV4", r"(?:\d{1,3}\.){3}\d{1,3}"),
    ("HOSTNAME", r"[A-Za-z0-9][A-Za-z0-9.-]*"),
    ("QS", r#""(?:[^"\\]|\\.)*""#),
    ("HTTPDATE", r"\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}"),
    (
        "TIMESTAMP_ISO8601",
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
    ),
    (
        "LOGLEVEL",
        r"(?i:trace|debug|info|notice|warn(?:ing)?|error|err|crit(?:ical)?|fatal|alert|emerg(?:ency)?)",
    ),
    (
        "UUID",
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    ),
];

/// Expands `%{NAME}`, `%{NAME:field}` and `%{NAME:field:int|float}`; returns
/// the regex text and the fields to convert.
/// Fields of named captures and the conversion (`int` or `float`) each gets.
pub type Conversions = Vec<(String, &'static str)>;

pub fn expand_patterns(pattern: &str) -> Result<(String, Conversions), String> {
    let mut out = String::with_capacity(pattern.len());
    let mut conversions = Vec::new();
    let mut rest = pattern;
    while let Some(i) = rest.find("%{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').ok_or("unclosed `%{` in pattern")?;
        let mut parts = after[..end].split(':');
        let name = parts.next().unwrap_or_default();
        let body = NAMED_PATTERNS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                let known: Vec<&str> = NAMED_PATTERNS.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown named pattern `{name}` (known: {})",
                    known.join(", ")
                )
            })?;
        match (parts.next(), parts.next()) {
            (Some(field), conv) => {
                if let Some(conv) = conv {
                    let conv = match conv {
                        "int" => "int",
                        "float" => "float",
                        other => {
                            return Err(format!("unknown conversion `{other}` (use int or float)"))
                        }
                    };
                    conversions.push((field.to_owned(), conv));
                }
                out.push_str(&format!("(?<{field}>{body})"));
            }
            (None, _) => out.push_str(&format!("(?:{body})")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, conversions))
}

/// Compiles a regex with a size limit (linear-time engine, bounded memory).
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regex: {e}"))
}

/// A prepared `parse_regex` pattern: the regex, and per named group the
/// field it fills and how its text converts, in the order of the field
/// names (the map's order, so a match builds its map without sorting).
/// Capture slots are reused per thread, so a match allocates only for long
/// field values.
#[derive(Debug)]
pub struct NamedCaptures {
    re: regex::Regex,
    fields: Vec<CaptureField>,
    slots: SlotPool,
}

#[derive(Debug)]
struct CaptureField {
    group: usize,
    name: Str,
    conversion: Option<&'static str>,
}

type NewSlots = Box<dyn Fn() -> regex::CaptureLocations + Send + Sync + UnwindSafe + RefUnwindSafe>;
type SlotPool = regex_automata::util::pool::Pool<regex::CaptureLocations, NewSlots>;

impl NamedCaptures {
    fn new(re: regex::Regex, conversions: &Conversions) -> Self {
        let mut fields: Vec<CaptureField> = re
            .capture_names()
            .enumerate()
            .filter_map(|(group, name)| {
                let name = name?;
                let conversion = conversions.iter().find(|(f, _)| f == name).map(|(_, c)| *c);
                Some(CaptureField {
                    group,
                    name: name.into(),
                    conversion,
                })
            })
            .collect();
        // Group names are unique (the regex refuses repeats).
        fields.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let for_pool = re.clone();
        let new_slots: NewSlots = Box::new(move || for_pool.capture_locations());
        NamedCaptures {
            re,
            fields,
            slots: SlotPool::new(new_slots),
        }
    }

    fn has_fields(&self) -> bool {
        !self.fields.is_empty()
    }

    /// The named captures of `text` as a map; fails without a match or
    /// when a typed capture does not convert (the first such group in the
    /// pattern is named).
    fn parse(&self, text: &str) -> Result<Value, String> {
        let mut slots = self.slots.get();
        self.re.captures_read(&mut slots, text).ok_or("no match")?;
        let mut entries = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            match field.value(&slots, text) {
                Ok(v) => entries.push((field.name.clone(), v)),
                Err(()) => return Err(self.first_failure(&slots, text)),
            }
        }
        Ok(Value::Map(Map::from_ordered_entries(entries)))
    }

    /// The error of the first group, in pattern order, whose text does not
    /// convert.
    #[cold]
    fn first_failure(&self, slots: &regex::CaptureLocations, text: &str) -> String {
        self.fields
            .iter()
            .filter(|f| f.value(slots, text).is_err())
            .min_by_key(|f| f.group)
            .map(|f| {
                let name = &f.name;
                let text = f.text(slots, text).unwrap_or_default();
                match f.conversion {
                    Some("int") => format!("`{name}`: `{text}` is not an integer"),
                    _ => format!("`{name}`: `{text}` is not a number"),
                }
            })
            .unwrap_or_else(|| "a capture did not convert".into())
    }
}

impl CaptureField {
    /// The group's text, `None` when it took no part in the match.
    fn text<'t>(&self, slots: &regex::CaptureLocations, text: &'t str) -> Option<&'t str> {
        let (start, end) = slots.get(self.group)?;
        Some(text.get(start..end).unwrap_or_default())
    }

    /// The field's value: null for a group that took no part, the
    /// converted text, or `Err` when it does not convert.
    fn value(&self, slots: &regex::CaptureLocations, text: &str) -> Result<Value, ()> {
        let Some(text) = self.text(slots, text) else {
            return Ok(Value::Null);
        };
        match self.conversion {
            Some("int") => text.parse().map(Value::Int).map_err(drop),
            Some(_) => text.parse().map(Value::Float).map_err(drop),
            None => Ok(Value::String(text.into())),
        }
    }
}

pub fn prepare_regex(args: &super::ConstArgs) -> Result<Prepared, String> {
    match super::literal(args, 1) {
        Some(Lit::Regex(p)) | Some(Lit::Str(p)) => {
            let (expanded, conversions) = expand_patterns(p)?;
            let captures = NamedCaptures::new(compile_regex(&expanded)?, &conversions);
            if !captures.has_fields() {
                return Err(
                    "the pattern has no named capture; write `(?<name>...)` or `%{INT:name}`"
                        .into(),
                );
            }
            Ok(Prepared::Grok(Box::new(captures)))
        }
        _ => Err("the pattern must be a regex literal like /(?<status>\\d+)/".into()),
    }
}

pub fn parse_regex(args: &[Value], prepared: &Prepared) -> Result<Value, String> {
    let Prepared::Grok(captures) = prepared else {
        return Err("regex not prepared".into());
    };
    captures.parse(&arg_text(args, 0)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn e(l: Lit) -> crate::lang::ast::Expr {
        crate::lang::ast::Expr {
            kind: crate::lang::ast::ExprKind::Lit(l),
            span: Default::default(),
        }
    }

    fn s(x: &str) -> Vec<Value> {
        vec![Value::from(x)]
    }

    #[test]
    fn json_success_and_failure() {
        let v = parse_json(
            &s(r#"{"a":1,"b":[true,null],"c":{"d":"x"}}"#),
            &Prepared::None,
        )
        .unwrap();
        let Value::Map(m) = v else { panic!() };
        assert_eq!(m["a"], Value::Int(1));
        assert!(parse_json(&s(r#"{"a":"#), &Prepared::None)
            .unwrap_err()
            .contains("invalid JSON"));
        assert!(parse_json(&[Value::Int(1)], &Prepared::None).is_err());
    }

    #[test]
    fn json_objects_keep_the_last_of_repeated_keys_in_key_order() {
        let v = parse_json(
            &s(r#"{"b":1,"a":2,"b":3,"c":{"z":1,"y":2,"z":4}}"#),
            &Prepared::None,
        )
        .unwrap();
        let Value::Map(m) = v else { panic!() };
        assert_eq!(
            m.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(m["b"], Value::Int(3));
        let Value::Map(c) = &m["c"] else { panic!() };
        assert_eq!(c.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["y", "z"]);
        assert_eq!(c["z"], Value::Int(4));
    }

    #[test]
    fn logfmt_success_and_failure() {
        let v = parse_logfmt(
            &s(r#"level=info msg="hello \"w\"" flag dur=5ms"#),
            &Prepared::None,
        )
        .unwrap();
        let Value::Map(m) = v else { panic!() };
        assert_eq!(m["msg"], Value::from("hello \"w\""));
        assert_eq!(m["flag"], Value::from("true"));
        assert_eq!(m["dur"], Value::from("5ms"));
        assert!(parse_logfmt(&s(r#"a="open"#), &Prepared::None).is_err());
        assert!(parse_logfmt(&s("=x"), &Prepared::None).is_err());
    }

    #[test]
    fn regex_named_captures_and_grok_patterns() {
        let p = prepare_regex(&[
            &e(Lit::Null),
            &e(Lit::Regex(
                r#"^%{IP:client} .* "%{WORD:method} (?<path>\S+)[^"]*" %{INT:status}"#.into(),
            )),
        ])
        .unwrap();
        let line = r#"10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /x HTTP/1.1" 502 12 "-" "Mozilla/5.0 (X11; Linux)""#;
        let Value::Map(m) = parse_regex(&s(line), &p).unwrap() else {
            panic!()
        };
        assert_eq!(m["client"], Value::from("10.0.0.1"));
        assert_eq!(m["method"], Value::from("GET"));
        assert_eq!(m["status"], Value::from("502"));
        let typed =
            prepare_regex(&[&e(Lit::Null), &e(Lit::Regex("%{INT:status:int}".into()))]).unwrap();
        let Value::Map(m) = parse_regex(&s("code 404"), &typed).unwrap() else {
            panic!()
        };
        assert_eq!(m["status"], Value::Int(404));
        // Of several failing conversions, the first group's is reported.
        let two = prepare_regex(&[
            &e(Lit::Null),
            &e(Lit::Regex("%{WORD:z:int} %{WORD:a:int}".into())),
        ])
        .unwrap();
        assert_eq!(
            parse_regex(&s("x y"), &two).unwrap_err(),
            "`z`: `x` is not an integer"
        );
        let optional =
            prepare_regex(&[&e(Lit::Null), &e(Lit::Regex("(?<a>x)|(?<b>y)".into()))]).unwrap();
        let Value::Map(m) = parse_regex(&s("y"), &optional).unwrap() else {
            panic!()
        };
        assert_eq!(m["a"], Value::Null);
        assert_eq!(m["b"], Value::from("y"));
        assert_eq!(parse_regex(&s("nope"), &p).unwrap_err(), "no match");
        assert!(prepare_regex(&[&e(Lit::Null), &e(Lit::Regex("(".into()))]).is_err());
        assert!(prepare_regex(&[&e(Lit::Null), &e(Lit::Regex("%{NOPE:x}".into()))]).is_err());
        assert!(prepare_regex(&[&e(Lit::Null), &e(Lit::Str("(?<a>x)".into()))]).is_ok());
        assert!(prepare_regex(&[&e(Lit::Null)]).is_err());
    }
}
