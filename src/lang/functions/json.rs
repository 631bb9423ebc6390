//! JSON text straight into [`Value`]s, the hot path of `parse_json`: one
//! pass, short keys and strings inline, numbers read in place, objects
//! built as sorted maps in one go. It takes the documents logs are made of
//! and declines (returns `None`) anything unusual — a number it cannot read
//! exactly as serde_json does, nesting deeper than serde_json allows, or
//! any invalid input; the caller then asks serde_json, which also words the
//! error. So results and error texts are serde_json's, only faster. It
//! remembers the keys of the last top-level object on the thread (see
//! `Shape`).

use crate::event::{KeyOrder, Map, Str, Value};
use std::cell::Cell;

/// Top-level objects with more keys are not remembered (see `Shape`).
const REMEMBERED_KEYS: usize = 32;

/// The entry stack of objects being read is kept on the thread between
/// documents (one allocation less per document) up to this capacity.
const KEPT_ENTRIES: usize = 256;

/// Deeper documents are left to serde_json (which refuses 128 levels).
const MAX_DEPTH: u32 = 100;

/// The value of a whole JSON document, or `None` when this parser leaves
/// the document to serde_json.
pub fn parse(text: &str) -> Option<Value> {
    thread_local! {
        static LAST_SHAPE: Cell<Shape> = const { Cell::new(Shape::new()) };
        static ENTRIES: Cell<Vec<(Str, Value)>> = const { Cell::new(Vec::new()) };
    }
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        entries: ENTRIES.take(),
        shape: LAST_SHAPE.take(),
        declined: false,
    };
    let v = p.value(0);
    LAST_SHAPE.set(std::mem::take(&mut p.shape));
    p.skip_space();
    let whole = !p.declined && p.pos == p.bytes.len();
    // The entry stack is kept for the next document unless a large one
    // grew it: a declined document may leave entries on it.
    p.entries.clear();
    if p.entries.capacity() <= KEPT_ENTRIES {
        ENTRIES.set(p.entries);
    }
    whole.then_some(v)
}

/// The keys (in arrival order) and key order of the last top-level object
/// read on this thread: the documents of one log repeat their keys. A key
/// that is the one remembered at its place is compared and copied, not
/// scanned and built; when every key was, the map takes the remembered
/// order as it is, otherwise it tries it before sorting.
#[derive(Default)]
struct Shape {
    /// Keys without escapes, quotes or control bytes (their text in the
    /// document is exactly their bytes); empty when some key had them.
    keys: Vec<Str>,
    order: KeyOrder,
}

impl Shape {
    const fn new() -> Self {
        Shape {
            keys: Vec::new(),
            order: KeyOrder::new(),
        }
    }
}

/// Reads by returning values, not `Option`s: a failed read sets
/// `declined` and returns a placeholder, and each caller checks the flag.
/// (An `Option<Value>` is checked and copied again at every level.)
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Entries of the objects being read, innermost last.
    entries: Vec<(Str, Value)>,
    /// Of the last top-level object.
    shape: Shape,
    /// The document is left to serde_json.
    declined: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skips spaces, then takes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let hit = self.peek() == Some(byte);
        self.pos += usize::from(hit);
        hit
    }

    /// Leaves the document to serde_json; the placeholder is never used.
    #[cold]
    fn decline<T: Default>(&mut self) -> T {
        self.declined = true;
        T::default()
    }

    fn value(&mut self, depth: u32) -> Value {
        self.skip_space();
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Value::String(self.string()),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'n') => self.word("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => match self.number() {
                Some(v) => v,
                None => self.decline(),
            },
            _ => self.decline(),
        }
    }

    fn word(&mut self, word: &str, v: Value) -> Value {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end) != Some(word.as_bytes()) {
            return self.decline();
        }
        self.pos = end;
        v
    }

    fn object(&mut self, depth: u32) -> Value {
        if depth > MAX_DEPTH {
            return self.decline();
        }
        self.pos += 1;
        let mark = self.entries.len();
        let top_level = depth == 1;
        // Keys that were the remembered one at their place.
        let mut known = 0;
        if !self.eat(b'}') {
            self.entries.reserve(16);
            loop {
                self.skip_space();
                if self.peek() != Some(b'"') {
                    return self.decline();
                }
                let at = self.entries.len() - mark;
                let key = if top_level && self.at_remembered_key(at) {
                    known += 1;
                    self.remembered_key(at)
                } else {
                    self.string()
                };
                if self.declined || !self.eat(b':') {
                    return self.decline();
                }
                let value = self.value(depth);
                if self.declined {
                    return Value::Null;
                }
                self.entries.push((key, value));
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b'}') {
                    break;
                }
                return self.decline();
            }
        }
        if !top_level {
            // Nested objects vary more: each is sorted.
            let mut order = KeyOrder::default();
            return Value::Map(Map::from_stack_top(
                &mut self.entries,
                mark,
                &mut order,
                false,
            ));
        }
        let keys = &self.entries[mark..];
        let same_keys = known == keys.len() && self.shape.keys.len() == keys.len();
        if !same_keys {
            self.shape.keys.clear();
            if keys.len() <= REMEMBERED_KEYS
                && keys
                    .iter()
                    .all(|(k, _)| special_byte(k.as_bytes(), 0).is_none())
            {
                self.shape.keys.extend(keys.iter().map(|(k, _)| k.clone()));
            }
        }
        Value::Map(Map::from_stack_top(
            &mut self.entries,
            mark,
            &mut self.shape.order,
            same_keys,
        ))
    }

    /// Whether the document has the remembered key of place `at` next
    /// (after its opening quote).
    fn at_remembered_key(&self, at: usize) -> bool {
        let Some(key) = self.shape.keys.get(at) else {
            return false;
        };
        let start = self.pos + 1;
        let end = start + key.len();
        self.bytes.get(start..end) == Some(key.as_bytes()) && self.bytes.get(end) == Some(&b'"')
    }

    /// Takes the remembered key of place `at` (see `at_remembered_key`).
    fn remembered_key(&mut self, at: usize) -> Str {
        let key = self.shape.keys.get(at).cloned().unwrap_or_default();
        self.pos += key.len() + 2;
        key
    }

    fn array(&mut self, depth: u32) -> Value {
        if depth > MAX_DEPTH {
            return self.decline();
        }
        self.pos += 1;
        let mut items = Vec::new();
        if !self.eat(b']') {
            loop {
                let item = self.value(depth);
                if self.declined {
                    return Value::Null;
                }
                items.push(item);
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b']') {
                    break;
                }
                return self.decline();
            }
        }
        Value::Array(items)
    }

    /// A string at `"`. Its text is valid UTF-8: it lies between ASCII
    /// delimiters of a `str`.
    fn string(&mut self) -> Str {
        let start = self.pos + 1;
        if let Some(i) = special_byte(self.bytes, start) {
            if self.bytes[i] == b'"' {
                if let Some(text) = self.text.get(start..i) {
                    self.pos = i + 1;
                    return Str::from(text);
                }
            } else if self.bytes[i] == b'\\' {
                if let Some(s) = self.escaped_string(start, i) {
                    return s;
                }
            }
        }
        self.decline()
    }

    /// The rest of a string from its first backslash at `at`.
    #[cold]
    #[inline(never)]
    fn escaped_string(&mut self, start: usize, mut at: usize) -> Option<Str> {
        let mut out = String::from(self.text.get(start..at)?);
        loop {
            match self.bytes.get(at)? {
                b'"' => {
                    self.pos = at + 1;
                    return Some(out.into());
                }
                b'\\' => {
                    let c = match self.bytes.get(at + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let (c, len) = self.unicode_escape(at)?;
                            out.push(c);
                            at += len;
                            continue;
                        }
                        _ => return None,
                    };
                    out.push(c);
                    at += 2;
                }
                0..=0x1f => return None,
                _ => {
                    // Copy the run up to the next quote or backslash.
                    let run_end = special_byte(self.bytes, at)?;
                    out.push_str(self.text.get(at..run_end)?);
                    at = run_end;
                }
            }
        }
    }

    /// `\uXXXX` at `at` (with its low surrogate when it is a high one): the
    /// character and the bytes it took. Lone surrogates are serde_json's.
    fn unicode_escape(&self, at: usize) -> Option<(char, usize)> {
        let unit = |from: usize| {
            let hex = self.text.get(from + 2..from + 6)?;
            if self.bytes.get(from..from + 2)? != b"\\u"
                || !hex.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return None;
            }
            u32::from_str_radix(hex, 16).ok()
        };
        let first = unit(at)?;
        match first {
            0xD800..=0xDBFF => {
                let low = unit(at + 6)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return None;
                }
                let c = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
                Some((char::from_u32(c)?, 12))
            }
            0xDC00..=0xDFFF => None,
            _ => Some((char::from_u32(first)?, 6)),
        }
    }

    /// A number: integers of up to 18 digits exactly, other numbers as
    /// the nearest float. `-0` and longer integers are left to serde_json
    /// (which reads them as floats or unsigned integers).
    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        let b = self.bytes;
        // The end of the run of digits from `i`, `None` when there is none.
        let digits = |i: usize| {
            let mut end = i;
            while b.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            (end > i).then_some(end)
        };
        let int_start = start + usize::from(b[start] == b'-');
        let mut i = match b.get(int_start)? {
            b'0' => int_start + 1,
            _ => digits(int_start)?,
        };
        let int_end = i;
        let mut float = false;
        if b.get(i) == Some(&b'.') {
            i = digits(i + 1)?;
            float = true;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            i = digits(i)?;
            float = true;
        }
        self.pos = i;
        let text = self.text.get(start..i)?;
        if float {
            // At the ends of the range serde_json's reading differs (it
            // refuses what rounds down to f64::MAX, flushes tiny values):
            // those are its to read.
            let f = text.parse::<f64>().ok()?;
            let ordinary = f == 0.0 || (1e-300..=1e300).contains(&f.abs());
            return ordinary.then_some(Value::Float(f));
        }
        if int_end - int_start > 18 || text == "-0" {
            return None;
        }
        text.parse::<i64>().ok().map(Value::Int)
    }
}

/// The index of the first quote, backslash or control byte at or after
/// `from`, looking at eight bytes at a time.
fn special_byte(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    // High bit of each byte that is zero; exact up to the first such byte
    // (a borrow can only mark bytes after it).
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let hits = zero_bytes(w ^ (ONES * u64::from(b'"')))
            | zero_bytes(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    tail.iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|n| at + n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// serde_json's reading, the reference.
    fn reference(text: &str) -> Result<Value, serde_json::Error> {
        super::super::parse_structured::json_with_serde(text)
    }

    /// Equal, floats within the last bit or so: serde_json's float reading
    /// is not always correctly rounded, Rust's is.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            // A few units in the last place; subnormals have fewer bits.
            (Value::Float(x), Value::Float(y)) => {
                (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs()) || (x - y).abs() < 1e-320
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Map(x), Value::Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y.iter())
                        .all(|((ka, a), (kb, b))| ka == kb && same(a, b))
            }
            _ => a == b,
        }
    }

    fn check(text: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = parse(text) {
            match reference(text) {
                Ok(r) => prop_assert!(same(&fast, &r), "{text:?}: {fast:?} vs serde_json {r:?}"),
                Err(e) => prop_assert!(false, "{text:?}: took {fast:?}, serde_json refuses: {e}"),
            }
        }
        Ok(())
    }

    #[test]
    fn the_first_quote_backslash_or_control_byte_is_found_in_any_position() {
        for len in 0..20 {
            for at in 0..len {
                for special in [b'"', b'\\', 0, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    // Bytes that sit next to the specials in value.
                    for (i, b) in bytes.iter_mut().enumerate() {
                        *b = [b'!', b'#', b'[', b']', 0x20, 0x80, 0xff][i % 7];
                    }
                    bytes[at] = special;
                    if at + 1 < len {
                        bytes[at + 1] = b'"';
                    }
                    assert_eq!(special_byte(&bytes, 0), Some(at), "{bytes:?}");
                }
            }
            assert_eq!(special_byte(&vec![b'x'; len], 0), None);
        }
    }

    #[test]
    fn log_documents_are_read_here_as_serde_json_reads_them() {
        for text in [
            r#"{"level":"info","ts":"2026-11-25T10:00:00Z","msg":"request served","status":200,"duration_ms":12.5,"tags":["web","edge"],"ok":true,"none":null}"#,
            r#" { "a" : [ 1 , -2 , 3.5e2 , 0.25 , -0.0 , 1E-3 ] , "b" : { } , "c" : [ ] } "#,
            r#"{"esc":"q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 tail","é":"ü"}"#,
            r#"{"b":1,"a":2,"b":3}"#,
            "[]",
            "\"just a string\"",
            "123456789012345678",
            "-9",
        ] {
            let fast = parse(text).unwrap_or_else(|| panic!("declined {text:?}"));
            assert!(same(&fast, &reference(text).unwrap()), "{text}");
        }
    }

    #[test]
    fn remembered_keys_are_taken_only_where_the_document_has_exactly_them() {
        let read = |text: &str| parse(text).map(|v| format!("{v:?}"));
        let expected = |text: &str| Some(format!("{:?}", reference(text).unwrap()));
        for (first, second) in [
            (r#"{"a":1,"b":2}"#, r#"{"ab":1,"b":2}"#),
            (r#"{"a":1,"b":2}"#, r#"{"a\"":1,"b":2}"#),
            (r#"{"a":1,"b":2}"#, r#"{"b":1,"a":2}"#),
            (r#"{"a":1,"b":2}"#, r#"{"a":1}"#),
            (r#"{"a":1}"#, r#"{"a":1,"b":2}"#),
            (r#"{"a":1,"b":2}"#, r#"{"\u0061":1,"b":2}"#),
            (r#"{"a":{"b":1}}"#, r#"{"b":{"a":1}}"#),
        ] {
            assert_eq!(read(first), expected(first), "{first}");
            assert_eq!(read(second), expected(second), "{second} after {first}");
        }
        // A key read from escapes is not remembered: its raw bytes would
        // match text that is not that key.
        assert!(read(r#"{"q\"":1}"#).is_some());
        assert_eq!(read(r#"{"q"":1}"#), None);
    }

    #[test]
    fn entries_of_a_declined_document_do_not_reach_the_next_one() {
        // Declined inside a nested object: entries of both objects were on
        // the thread's entry stack.
        assert_eq!(parse(r#"{"a":1,"b":{"c":2,"d":x}}"#), None);
        for text in [r#"{"e":3}"#, r#"{"a":1,"b":{"c":2}}"#, "[]"] {
            let fast = parse(text).unwrap_or_else(|| panic!("declined {text:?}"));
            assert!(same(&fast, &reference(text).unwrap()), "{text}");
        }
        // A document with more members than the kept capacity is read
        // whole, and the next one too.
        let wide = format!(
            "{{{}}}",
            (0..KEPT_ENTRIES + 10)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let fast = parse(&wide).expect("a wide object is read");
        assert!(same(&fast, &reference(&wide).unwrap()));
        let fast = parse(r#"{"e":3}"#).expect("read after a wide object");
        assert!(same(&fast, &reference(r#"{"e":3}"#).unwrap()));
    }

    #[test]
    fn unusual_or_invalid_documents_are_left_to_serde_json() {
        for text in [
            "-0",
            "1234567890123456789",
            "{\"a\":1,}",
            "[1 2]",
            "{\"a\" 1}",
            "\"tab\there\"",
            "\"\\ud800\"",
            "\"\\x\"",
            "01",
            "1.",
            ".5",
            "1e",
            "tru",
            "{\"a\":1} x",
            "",
            "1e999",
            "1.7976931348623158e308",
            "-1.7976931348623157e308",
            "5e-324",
            &"[".repeat(200),
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            "\\PC{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                proptest::collection::vec(("[a-c\"\\\\é]{0,3}", inner), 0..6)
                    .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn documents_agree_with_serde_json(v in json_value(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&v)
            } else {
                serde_json::to_string(&v)
            };
            let text = text.map_err(|e| TestCaseError::fail(e.to_string()))?;
            check(&text)?;
        }

        #[test]
        fn damaged_documents_never_disagree_or_panic(
            v in json_value(),
            cut in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let text = serde_json::to_string(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
            // Read whole first: the damaged copy meets its remembered keys.
            check(&text)?;
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let at = cut.index(bytes.len());
                if byte % 2 == 0 {
                    bytes.truncate(at);
                } else {
                    bytes[at] = byte;
                }
            }
            if let Ok(text) = String::from_utf8(bytes) {
                check(&text)?;
            }
        }

        #[test]
        fn any_text_never_disagrees_or_panics(text in "[\\[\\]{}:,\"\\\\0-9a-fnrtule.+ -]{0,40}") {
            check(&text)?;
        }
    }
}
