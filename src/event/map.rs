//! [`Map`]: the key/value map inside values (parsed JSON objects, regex
//! captures, nested attributes). A vector sorted by key: building one from
//! parsed entries is a sort of a few dozen items, a lookup a binary search,
//! a walk a slice iteration, and it is one heap block — several times
//! cheaper than a B-tree for the small maps events carry.

use super::value::{Str, Value};

/// Entries sorted by key, each key once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    entries: Vec<(Str, Value)>,
}

impl Map {
    pub fn new() -> Self {
        Map::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key`, returning the value it replaced.
    pub fn insert(&mut self, key: Str, value: Value) -> Option<Value> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// The value of `key`, inserting `default` first when it is missing.
    pub fn get_or_insert(&mut self, key: &Str, default: Value) -> &mut Value {
        let i = match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (key.clone(), default));
                i
            }
        };
        &mut self.entries[i].1
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Str, &Value)> {
        self.into_iter()
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Str> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The map from entries in any order; of repeated keys the last wins
    /// (as when inserting one by one).
    pub fn from_entries(mut entries: Vec<(Str, Value)>) -> Self {
        let n = entries.len();
        if n > SMALL {
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            keep_last_of_equal_keys(&mut entries);
            return Map { entries };
        }
        let mut order = [0u8; SMALL];
        let equal_keys = key_order(&entries, &mut order[..n]);
        // `order[i]`: where the entry that belongs at `i` is now. Each
        // cycle of the permutation is walked once, one swap per entry.
        for start in 0..n {
            let mut at = start;
            while usize::from(order[at]) != start {
                let next = usize::from(order[at]);
                entries.swap(at, next);
                order[at] = at as u8;
                at = next;
            }
            order[at] = at as u8;
        }
        if equal_keys {
            keep_last_of_equal_keys(&mut entries);
        }
        Map { entries }
    }

    /// The map from entries the caller has put in key order, each key once
    /// (parsers with fixed field names): the order is checked, a fraction of
    /// the cost of finding it, and when it does not hold the entries are
    /// sorted as by [`Map::from_entries`].
    pub fn from_ordered_entries(entries: Vec<(Str, Value)>) -> Self {
        if entries
            .windows(2)
            .all(|w| w[0].0.as_bytes() < w[1].0.as_bytes())
        {
            return Map { entries };
        }
        Map::from_entries(entries)
    }

    /// Takes the entries of `stack` above `mark` (in arrival order) off it
    /// as a map; of repeated keys the last wins. Readers of nested
    /// documents keep the entries of every open object on one stack: the
    /// map gets a block of exactly its size, each entry moved into place
    /// once. `last` is the order of the last map built with it: taken as
    /// it is when the caller knows the keys are the same, place by place
    /// (`same_keys`); tried first otherwise, and when it does not put the
    /// keys in order they are sorted. Either way it becomes this map's.
    pub fn from_stack_top(
        stack: &mut Vec<(Str, Value)>,
        mark: usize,
        last: &mut KeyOrder,
        same_keys: bool,
    ) -> Self {
        let mark = mark.min(stack.len());
        let n = stack.len() - mark;
        if n > SMALL {
            return Map::from_entries(stack.drain(mark..).collect());
        }
        let top = &mut stack[mark..];
        let order = &mut last.order[..n];
        let equal_keys = if same_keys && last.len == n {
            last.equal_keys
        } else if last.len == n
            && order.windows(2).all(|w| {
                // Strictly increasing: the order holds, no key repeats.
                top[usize::from(w[0])].0.as_bytes() < top[usize::from(w[1])].0.as_bytes()
            })
        {
            false
        } else {
            key_order(top, order)
        };
        last.len = n;
        last.equal_keys = equal_keys;
        let mut entries = Vec::with_capacity(n);
        for &i in order.iter() {
            entries.push(std::mem::take(&mut top[usize::from(i)]));
        }
        // SAFETY: shrinking: `mark` is at most the length (clamped above),
        // so no uninitialised entry becomes visible. The entries above it
        // were all taken (each is an empty key and a null, owning
        // nothing): forgetting them leaks nothing and skips a drop call
        // per entry, 6 % of reading a 300-byte JSON object.
        unsafe { stack.set_len(mark) };
        if equal_keys {
            keep_last_of_equal_keys(&mut entries);
        }
        Map { entries }
    }
}

/// The key order of the last map built with it (see
/// [`Map::from_stack_top`]): checking that an order still holds, or
/// knowing it does, costs a fraction of sorting again.
#[derive(Debug, Clone, Copy)]
pub struct KeyOrder {
    /// Entries `order` is a permutation of (`0..len`).
    len: usize,
    order: [u8; SMALL],
    /// Some keys of that map were equal (it kept the last).
    equal_keys: bool,
}

impl KeyOrder {
    /// No map built yet (usable in a `const` thread-local).
    pub const fn new() -> Self {
        KeyOrder {
            len: usize::MAX,
            order: [0; SMALL],
            equal_keys: false,
        }
    }
}

impl Default for KeyOrder {
    fn default() -> Self {
        KeyOrder::new()
    }
}

/// Of adjacent entries with equal keys, keeps one with the last value.
fn keep_last_of_equal_keys(entries: &mut Vec<(Str, Value)>) {
    // `dedup_by` keeps the earlier of two equal entries: give it the later
    // value first.
    entries.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(&mut later.1, &mut kept.1);
        }
        same
    });
}

/// Writes into `order` (one slot per entry, at most [`SMALL`]) the
/// positions of `entries` in key order, equal keys in their original
/// order. Sorts integers on the stack — the first seven bytes of the key
/// above the entry's index (one byte) — a fraction of the cost of sorting
/// the entries themselves (there a comparison decodes two strings, a move
/// copies 64 bytes). Returns whether some keys are equal.
fn key_order(entries: &[(Str, Value)], order: &mut [u8]) -> bool {
    let n = order.len();
    let mut sorted = [0u64; SMALL];
    for (slot, (i, (k, _))) in sorted.iter_mut().zip(entries.iter().enumerate()) {
        *slot = prefix(k.as_bytes()) & !0xff | i as u64;
    }
    let sorted = &mut sorted[..n];
    sorted.sort_unstable();
    let index = |o: u64| usize::from(o as u8);
    let key = |o: u64| entries[index(o)].0.as_bytes();
    // Keys that share their first seven bytes: by the whole key, then (as
    // already) by position.
    let mut equal_keys = false;
    let mut run = 0;
    for i in 1..=n {
        if i < n && sorted[i] >> 8 == sorted[run] >> 8 {
            continue;
        }
        if i - run > 1 {
            let same_prefix = &mut sorted[run..i];
            same_prefix.sort_unstable_by(|&a, &b| key(a).cmp(key(b)).then(a.cmp(&b)));
            equal_keys |= same_prefix.windows(2).any(|w| key(w[0]) == key(w[1]));
        }
        run = i;
    }
    for (slot, &o) in order.iter_mut().zip(sorted.iter()) {
        *slot = index(o) as u8;
    }
    equal_keys
}

/// Maps up to this many entries are sorted on the stack.
const SMALL: usize = 32;

/// The first eight bytes of a key as a number that orders like the bytes
/// (shorter keys padded with zeros; ties are settled by the whole key).
fn prefix(key: &[u8]) -> u64 {
    if let Some(head) = key.first_chunk::<8>() {
        return u64::from_be_bytes(*head);
    }
    key.iter()
        .enumerate()
        .fold(0, |v, (i, &b)| v | u64::from(b) << (56 - 8 * i))
}

impl std::ops::Index<&str> for Map {
    type Output = Value;

    /// Panics when `key` is missing, like indexing a `BTreeMap` (tests only
    /// index keys they know).
    fn index(&self, key: &str) -> &Value {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no key {key:?} in map"),
        }
    }
}

impl FromIterator<(Str, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (Str, Value)>>(iter: I) -> Self {
        Map::from_entries(iter.into_iter().collect())
    }
}

impl<const N: usize> From<[(Str, Value); N]> for Map {
    fn from(entries: [(Str, Value); N]) -> Self {
        Map::from_entries(entries.into())
    }
}

impl Extend<(Str, Value)> for Map {
    fn extend<I: IntoIterator<Item = (Str, Value)>>(&mut self, iter: I) {
        let mut entries = std::mem::take(&mut self.entries);
        entries.extend(iter);
        *self = Map::from_entries(entries);
    }
}

impl IntoIterator for Map {
    type Item = (Str, Value);
    type IntoIter = std::vec::IntoIter<(Str, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a Str, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Str, Value)>,
        fn(&'a (Str, Value)) -> (&'a Str, &'a Value),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(m: &Map) -> Vec<&str> {
        m.keys().map(|k| k.as_str()).collect()
    }

    #[test]
    fn entries_in_any_order_become_sorted_and_the_last_repeated_key_wins() {
        let m: Map = [
            ("b".into(), Value::Int(1)),
            ("a".into(), Value::Int(2)),
            ("b".into(), Value::Int(3)),
            ("c".into(), Value::Int(4)),
            ("b".into(), Value::Int(5)),
        ]
        .into();
        assert_eq!(keys(&m), ["a", "b", "c"]);
        assert_eq!(m["b"], Value::Int(5));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn insert_replaces_or_places_a_key_in_order() {
        let mut m = Map::new();
        assert_eq!(m.insert("m".into(), Value::Int(1)), None);
        assert_eq!(m.insert("a".into(), Value::Int(2)), None);
        assert_eq!(m.insert("z".into(), Value::Int(3)), None);
        assert_eq!(m.insert("m".into(), Value::Int(4)), Some(Value::Int(1)));
        assert_eq!(keys(&m), ["a", "m", "z"]);
        *m.get_or_insert(&"b".into(), Value::Null) = Value::Int(9);
        assert_eq!(m.get_or_insert(&"a".into(), Value::Null), &Value::Int(2));
        assert_eq!(keys(&m), ["a", "b", "m", "z"]);
        assert_eq!(m.remove("m"), Some(Value::Int(4)));
        assert_eq!(m.remove("m"), None);
        assert!(!m.contains_key("m") && m.contains_key("b"));
        assert_eq!(m.get("nope"), None);
    }

    #[test]
    fn building_agrees_with_inserting_one_by_one() {
        use proptest::prelude::*;
        let keys = proptest::collection::vec("[ab\\x00é]{0,10}", 0..50);
        proptest!(|(keys in keys)| {
            let entries: Vec<(Str, Value)> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (Str::from(k.as_str()), Value::Int(i as i64)))
                .collect();
            let mut by_insert = Map::new();
            for (k, v) in entries.clone() {
                by_insert.insert(k, v);
            }
            prop_assert_eq!(&Map::from_ordered_entries(entries.clone()), &by_insert);
            let mut in_order = entries.clone();
            in_order.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            in_order.dedup_by(|a, b| a.0 == b.0);
            let first_of_each = Map::from_entries(in_order.clone());
            prop_assert_eq!(Map::from_ordered_entries(in_order), first_of_each);
            let mut stack = vec![(Str::from("below"), Value::Null)];
            let mut last = KeyOrder::default();
            for same_keys in [false, false, true] {
                // Sorted, then with the order remembered from the first
                // time: checked, then known to hold.
                stack.extend(entries.clone());
                prop_assert_eq!(&Map::from_stack_top(&mut stack, 1, &mut last, same_keys), &by_insert);
                prop_assert_eq!(stack.len(), 1, "only the entries above the mark are taken");
            }
            // An order remembered from other keys is checked, not trusted.
            let other: Vec<(Str, Value)> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (Str::from(k.chars().rev().collect::<String>()), Value::Int(i as i64)))
                .collect();
            let mut expected = Map::new();
            for (k, v) in other.clone() {
                expected.insert(k, v);
            }
            stack.extend(other);
            prop_assert_eq!(Map::from_stack_top(&mut stack, 1, &mut last, false), expected);
            prop_assert_eq!(Map::from_entries(entries), by_insert);
        });
    }

    #[test]
    fn order_is_by_bytes_like_the_btree_it_replaced() {
        let m: Map = ["é", "Z", "a", "", "ab"]
            .into_iter()
            .map(|k| (Str::from(k), Value::Null))
            .collect();
        let mut expected = vec!["é", "Z", "a", "", "ab"];
        expected.sort();
        assert_eq!(keys(&m), expected);
    }
}
