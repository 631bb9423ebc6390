//! Functions over whole maps and arrays: `compact` (drop null and empty
//! values, recursively), `flatten` (nested maps to dotted keys), `keys`,
//! `values`, and type predicates (`is_string`, `is_map`, ...).

use super::Prepared;
use crate::event::{Map, Str, Value};

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Map(m) => m.is_empty(),
        _ => false,
    }
}

fn compacted(v: &Value) -> Value {
    match v {
        Value::Map(m) => Value::Map(Map::from_entries(
            m.iter()
                .map(|(k, v)| (k.clone(), compacted(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        )),
        Value::Array(a) => Value::Array(a.iter().map(compacted).filter(|v| !is_empty(v)).collect()),
        other => other.clone(),
    }
}

/// Removes null values, empty strings, empty arrays and empty maps, also
/// inside nested maps and arrays (a map emptied that way goes too).
pub fn compact(a: &[Value], _: &Prepared) -> Result<Value, String> {
    Ok(compacted(&a[0]))
}

fn flatten_into(prefix: &str, sep: &str, m: &Map, out: &mut Vec<(Str, Value)>) {
    for (k, v) in m.iter() {
        let key = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}{sep}{k}")
        };
        match v {
            Value::Map(inner) if !inner.is_empty() => flatten_into(&key, sep, inner, out),
            other => out.push((key.into(), other.clone())),
        }
    }
}

/// Nested maps become one map with dotted keys (`{"a": {"b": 1}}` →
/// `{"a.b": 1}`); arrays stay values. The separator defaults to `.`.
pub fn flatten(a: &[Value], _: &Prepared) -> Result<Value, String> {
    let Value::Map(m) = &a[0] else {
        return Err("flatten expects a map".into());
    };
    let sep = match a.get(1) {
        None | Some(Value::Null) => ".".to_owned(),
        Some(_) => super::arg_text(a, 1)?.into_owned(),
    };
    let mut out = Vec::new();
    flatten_into("", &sep, m, &mut out);
    Ok(Value::Map(Map::from_entries(out)))
}

pub fn keys(a: &[Value], _: &Prepared) -> Result<Value, String> {
    match &a[0] {
        Value::Map(m) => Ok(Value::Array(
            m.keys().map(|k| Value::String(k.clone())).collect(),
        )),
        _ => Err("keys expects a map".into()),
    }
}

pub fn values(a: &[Value], _: &Prepared) -> Result<Value, String> {
    match &a[0] {
        Value::Map(m) => Ok(Value::Array(m.values().cloned().collect())),
        _ => Err("values expects a map".into()),
    }
}

macro_rules! predicate {
    ($name:ident, $pat:pat) => {
        pub fn $name(a: &[Value], _: &Prepared) -> Result<Value, String> {
            Ok(Value::Bool(matches!(a[0], $pat)))
        }
    };
}

predicate!(is_string, Value::String(_) | Value::Bytes(_));
predicate!(is_int, Value::Int(_));
predicate!(is_float, Value::Float(_));
predicate!(is_bool, Value::Bool(_));
predicate!(is_map, Value::Map(_));
predicate!(is_array, Value::Array(_));
predicate!(is_null, Value::Null);
predicate!(is_timestamp, Value::Timestamp(_));

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, Value)]) -> Value {
        Value::Map(Map::from_entries(
            entries
                .iter()
                .map(|(k, v)| (Str::from(*k), v.clone()))
                .collect(),
        ))
    }

    #[test]
    fn compact_removes_empty_values_at_every_depth() {
        let v = map(&[
            ("a", Value::Int(0)),
            ("b", Value::Null),
            ("c", Value::from("")),
            ("d", map(&[("e", Value::Null)])),
            (
                "f",
                Value::Array(vec![Value::Null, Value::from("x"), Value::Array(vec![])]),
            ),
            ("g", Value::Bool(false)),
        ]);
        let out = compact(&[v], &Prepared::None).unwrap();
        assert_eq!(
            out,
            map(&[
                ("a", Value::Int(0)),
                ("f", Value::Array(vec![Value::from("x")])),
                ("g", Value::Bool(false)),
            ])
        );
    }

    #[test]
    fn flatten_joins_nested_keys_and_keeps_arrays() {
        let v = map(&[
            (
                "http",
                map(&[
                    ("status", Value::Int(200)),
                    ("req", map(&[("path", Value::from("/"))])),
                ]),
            ),
            ("tags", Value::Array(vec![Value::from("a")])),
            ("empty", map(&[])),
        ]);
        let out = flatten(std::slice::from_ref(&v), &Prepared::None).unwrap();
        assert_eq!(
            out,
            map(&[
                ("http.status", Value::Int(200)),
                ("http.req.path", Value::from("/")),
                ("tags", Value::Array(vec![Value::from("a")])),
                ("empty", map(&[])),
            ])
        );
        let out = flatten(&[v, Value::from("_")], &Prepared::None).unwrap();
        let Value::Map(m) = out else { panic!() };
        assert!(m.contains_key("http_req_path"));
        assert!(flatten(&[Value::Int(1)], &Prepared::None).is_err());
    }

    #[test]
    fn keys_values_and_predicates() {
        let v = map(&[("b", Value::Int(2)), ("a", Value::Int(1))]);
        assert_eq!(
            keys(std::slice::from_ref(&v), &Prepared::None),
            Ok(Value::Array(vec![Value::from("a"), Value::from("b")]))
        );
        assert_eq!(
            values(std::slice::from_ref(&v), &Prepared::None),
            Ok(Value::Array(vec![Value::Int(1), Value::Int(2)]))
        );
        assert!(keys(&[Value::Int(1)], &Prepared::None).is_err());
        let p = &Prepared::None;
        assert_eq!(is_map(&[v], p), Ok(Value::Bool(true)));
        assert_eq!(is_string(&[Value::from("x")], p), Ok(Value::Bool(true)));
        assert_eq!(is_int(&[Value::Float(1.0)], p), Ok(Value::Bool(false)));
        assert_eq!(is_float(&[Value::Float(1.0)], p), Ok(Value::Bool(true)));
        assert_eq!(is_null(&[Value::Null], p), Ok(Value::Bool(true)));
        assert_eq!(
            is_timestamp(&[Value::Timestamp(1)], p),
            Ok(Value::Bool(true))
        );
        assert_eq!(is_bool(&[Value::Int(1)], p), Ok(Value::Bool(false)));
        assert_eq!(is_array(&[Value::Array(vec![])], p), Ok(Value::Bool(true)));
    }
}
