//! Typed values carried in bodies, attributes and labels.

use bytes::Bytes;
use std::collections::BTreeMap;

/// Text in events: inline up to 24 bytes, so short keys and values (most
/// attribute names, levels, methods, status codes) cost no allocation.
pub type Str = compact_str::CompactString;

/// A typed value. `Bytes` holds raw, not yet parsed data (usually a line);
/// it is exported as a string when it is valid UTF-8, as bytes otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(Str),
    Bytes(Bytes),
    /// Nanoseconds since the Unix epoch.
    Timestamp(i64),
    Array(Vec<Value>),
    Map(BTreeMap<Str, Value>),
}

impl Value {
    /// Rough in-memory size in bytes.
    pub fn size_hint(&self) -> usize {
        match self {
            Value::Null
            | Value::Bool(_)
            | Value::Int(_)
            | Value::Float(_)
            | Value::Timestamp(_) => 8,
            Value::String(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Array(items) => items.iter().map(Value::size_hint).sum::<usize>() + 8,
            Value::Map(map) => {
                map.iter()
                    .map(|(k, v)| k.len() + v.size_hint())
                    .sum::<usize>()
                    + 8
            }
        }
    }

    /// The value as text, when it is text (a string or UTF-8 bytes).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(Str::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(Str::from(s))
    }
}

impl From<Str> for Value {
    fn from(s: Str) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
