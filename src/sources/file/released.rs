//! Files released after they rotated away, remembered by identity (their
//! checkpoint key: device, inode, fingerprint) with the offset they were
//! delivered to. A directory moved away and back brings the same files
//! back under the globs: they resume there instead of being read whole
//! again. Bounded: the oldest are forgotten first. Held in memory only; a
//! restart forgets them (their checkpoints were forgotten on release).

use std::collections::{BTreeMap, HashMap};

/// How many released files are remembered at most.
pub const MAX_REMEMBERED: usize = 10_000;

/// Delivered offsets of released files, by checkpoint key.
#[derive(Debug, Default)]
pub struct ReleasedFiles {
    /// key → (offset, age stamp).
    offsets: HashMap<String, (u64, u64)>,
    /// age stamp → key, oldest first.
    order: BTreeMap<u64, String>,
    next_stamp: u64,
}

impl ReleasedFiles {
    /// Remembers that `key` was delivered up to `offset` when released.
    pub fn remember(&mut self, key: &str, offset: u64) {
        self.take(key);
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.offsets.insert(key.to_owned(), (offset, stamp));
        self.order.insert(stamp, key.to_owned());
        while self.offsets.len() > MAX_REMEMBERED {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.offsets.remove(&oldest);
        }
    }

    /// The offset a file with `key` was released at, forgetting it.
    pub fn take(&mut self, key: &str) -> Option<u64> {
        let (offset, stamp) = self.offsets.remove(key)?;
        self.order.remove(&stamp);
        Some(offset)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.offsets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_file_is_found_once_by_its_key() {
        let mut r = ReleasedFiles::default();
        r.remember("files|1:2|00000000000000aa", 120);
        assert_eq!(r.take("files|1:2|00000000000000bb"), None);
        assert_eq!(r.take("files|1:2|00000000000000aa"), Some(120));
        assert_eq!(r.take("files|1:2|00000000000000aa"), None);
    }

    #[test]
    fn the_oldest_are_forgotten_beyond_the_bound() {
        let mut r = ReleasedFiles::default();
        for i in 0..MAX_REMEMBERED + 5 {
            r.remember(&format!("k{i}"), i as u64);
        }
        assert_eq!(r.len(), MAX_REMEMBERED);
        assert_eq!(r.order.len(), MAX_REMEMBERED);
        assert_eq!(r.take("k0"), None);
        assert_eq!(r.take("k4"), None);
        assert_eq!(r.take("k5"), Some(5));
        r.remember("k6", 60);
        assert_eq!(r.take("k6"), Some(60), "remembered again: the newer offset");
        assert_eq!(r.order.len(), r.len());
    }
}
