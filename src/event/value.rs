//! Typed values carried in bodies, attributes and labels.

use super::map::Map;
use bytes::Bytes;

/// Text in events: inline up to 24 bytes, so short keys and values (most
/// attribute names, levels, methods, status codes) cost no allocation.
pub type Str = compact_str::CompactString;

/// A typed value. `Bytes` holds raw, not yet parsed data (usually a line);
/// it is exported as a string when it is valid UTF-8, as bytes otherwise.
///
/// The tag is a whole word (`repr(C, u64)`), so every payload starts at
/// offset 8 and a value is copied in aligned words. With a one-byte tag
/// the compiler copies "bytes 1 to 40" in unaligned pieces, and reading a
/// value back soon after writing it stalls (store forwarding fails): that
/// cost parse_json a fifth of its time. Same size (40 bytes), and
/// `Option<Value>` still fits in 40.
#[derive(Debug, Clone, Default, PartialEq)]
#[repr(C, u64)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(Str),
    Bytes(Bytes),
    /// Nanoseconds since the Unix epoch.
    Timestamp(i64),
    Array(Vec<Value>),
    Map(Map),
}

impl Value {
    /// Rough in-memory size in bytes, heap allocations and their
    /// bookkeeping included, so that byte budgets bound real memory (a
    /// parsed line of a dozen small fields costs several times its text).
    /// Raw `Bytes` count their length only: they share the source's buffer.
    pub fn size_hint(&self) -> usize {
        match self {
            Value::Array(items) => {
                items
                    .iter()
                    .map(|v| std::mem::size_of::<Value>() + v.nested_size_hint())
                    .sum::<usize>()
                    + ALLOC_OVERHEAD
            }
            Value::Map(map) => {
                map.iter()
                    .map(|(k, v)| entry_size_hint(k, v))
                    .sum::<usize>()
                    + ALLOC_OVERHEAD
            }
            leaf => leaf.leaf_size_hint(),
        }
    }

    /// [`Value::size_hint`] of a value inside another: leaves (nearly
    /// all) without a call.
    #[inline(always)]
    fn nested_size_hint(&self) -> usize {
        match self {
            Value::Array(_) | Value::Map(_) => self.size_hint(),
            leaf => leaf.leaf_size_hint(),
        }
    }

    #[inline(always)]
    fn leaf_size_hint(&self) -> usize {
        match self {
            Value::String(s) => s.len() + ALLOC_OVERHEAD,
            Value::Bytes(b) => b.len(),
            _ => 8,
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

/// What the allocator adds to each heap block (glibc: 8–16 bytes plus rounding).
const ALLOC_OVERHEAD: usize = 16;

/// Size of one key/value entry of a map or attribute list: the slot, the
/// key's heap block and the value.
#[inline]
pub fn entry_size_hint(key: &str, value: &Value) -> usize {
    std::mem::size_of::<(String, Value)>() + key.len() + ALLOC_OVERHEAD + value.nested_size_hint()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 40 bytes on 64-bit CPUs, 24 on the 32-bit Pis (armv7).
    #[test]
    fn a_value_is_a_tag_word_and_four_payload_words_and_an_option_adds_nothing() {
        let word = std::mem::size_of::<usize>();
        let value = 8 + 4 * word;
        assert_eq!(std::mem::size_of::<Value>(), value);
        assert_eq!(std::mem::size_of::<Option<Value>>(), value);
        assert_eq!(
            std::mem::size_of::<(Str, Value)>(),
            (3 * word).next_multiple_of(8) + value
        );
    }
}
