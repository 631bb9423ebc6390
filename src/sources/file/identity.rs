//! Who a file is, independent of its name: device and inode plus a
//! fingerprint of its first bytes.
//!
//! The fingerprint is the xxh3 of the file's first line (newline included),
//! capped at [`FINGERPRINT_BYTES`]. It is defined only once the file holds
//! that much — a file without a complete first line has no identity yet, which
//! costs nothing because a line is never emitted before its newline anyway.
//! Device and inode tell apart files that begin alike; the fingerprint tells
//! apart a file from a new one that reuses a freed inode, and recognises a copy
//! (copytruncate) or a compressed archive of a file already read. This module
//! only reads the first bytes; it never moves a reader's position.

use std::io::Read;

/// How many leading bytes at most make a fingerprint.
pub const FINGERPRINT_BYTES: usize = 256;

/// Below this many fingerprinted bytes, a match on fingerprint alone (another
/// inode) is not trusted: short first lines (`\n`, `---`) are too common.
pub const MIN_BYTES_FOR_COPY_MATCH: usize = 32;

/// The fingerprint of a stream's first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub hash: u64,
    /// How many bytes were hashed.
    pub len: usize,
}

impl Fingerprint {
    /// Fingerprints `head`, the first bytes of a stream (at most
    /// [`FINGERPRINT_BYTES`] are looked at). `None` while the first line is
    /// still incomplete and shorter than the cap.
    pub fn of_head(head: &[u8]) -> Option<Fingerprint> {
        let head = &head[..head.len().min(FINGERPRINT_BYTES)];
        let len = match memchr::memchr(b'\n', head) {
            Some(nl) => nl + 1,
            None if head.len() == FINGERPRINT_BYTES => FINGERPRINT_BYTES,
            None => return None,
        };
        Some(Fingerprint {
            hash: xxhash_rust::xxh3::xxh3_64(&head[..len]),
            len,
        })
    }

    /// Reads the first bytes of `reader` (which must be at its start).
    pub fn read_from(reader: &mut impl Read) -> std::io::Result<Option<Fingerprint>> {
        let mut head = [0u8; FINGERPRINT_BYTES];
        let mut filled = 0;
        while filled < head.len() {
            match reader.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    if memchr::memchr(b'\n', &head[filled - n..filled]).is_some() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(Fingerprint::of_head(&head[..filled]))
    }

    /// Reads the first bytes of a plain file at absolute positions, leaving its
    /// read position alone.
    pub fn read_at(file: &std::fs::File) -> std::io::Result<Option<Fingerprint>> {
        use std::os::unix::fs::FileExt;
        let mut head = [0u8; FINGERPRINT_BYTES];
        let mut filled = 0;
        while filled < head.len() {
            match file.read_at(&mut head[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(Fingerprint::of_head(&head[..filled]))
    }

    /// Strong enough to recognise the same content under another inode.
    pub fn matches_copies(&self) -> bool {
        self.len >= MIN_BYTES_FOR_COPY_MATCH
    }
}

/// A file's full identity: where it lives on disk and what it starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub fingerprint: Fingerprint,
}

impl FileIdentity {
    /// The checkpoint key of this file in source `source`:
    /// `source|dev:ino|fingerprint` (the fingerprint as 16 hex digits).
    pub fn key(&self, source: &str) -> String {
        format!(
            "{source}|{}:{}|{:016x}",
            self.dev, self.ino, self.fingerprint.hash
        )
    }
}

/// The parts of a checkpoint key written by [`FileIdentity::key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey {
    pub dev: u64,
    pub ino: u64,
    pub hash: u64,
}

/// Parses a key of source `source`; `None` for other sources' keys and for
/// keys written by older versions (those held device and inode only).
pub fn parse_key(source: &str, key: &str) -> Option<ParsedKey> {
    let rest = key.strip_prefix(source)?.strip_prefix('|')?;
    let (dev_ino, hash) = rest.split_once('|')?;
    let (dev, ino) = dev_ino.split_once(':')?;
    Some(ParsedKey {
        dev: dev.parse().ok()?,
        ino: ino.parse().ok()?,
        hash: u64::from_str_radix(hash, 16).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_waits_for_a_complete_first_line() {
        assert_eq!(Fingerprint::of_head(b"partial first li"), None);
        let fp = Fingerprint::of_head(b"first line\nsecond").unwrap();
        assert_eq!(fp.len, 11);
        assert_eq!(
            Fingerprint::of_head(b"first line\nother second line\n"),
            Some(fp),
            "only the first line counts"
        );
    }

    #[test]
    fn long_first_line_is_fingerprinted_by_its_first_256_bytes() {
        let long = vec![b'a'; 1000];
        let fp = Fingerprint::of_head(&long).unwrap();
        assert_eq!(fp.len, FINGERPRINT_BYTES);
        assert!(fp.matches_copies());
        assert!(!Fingerprint::of_head(b"\n").unwrap().matches_copies());
    }

    #[test]
    fn reading_from_a_stream_and_at_positions_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello world, this is the first line\nmore\n").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let at = Fingerprint::read_at(&file).unwrap();
        let streamed = Fingerprint::read_from(&mut std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(at, streamed);
        assert!(at.is_some());
    }

    #[test]
    fn keys_round_trip_and_other_sources_do_not_parse() {
        let id = FileIdentity {
            dev: 2049,
            ino: 1311,
            fingerprint: Fingerprint {
                hash: 0xabc,
                len: 40,
            },
        };
        let key = id.key("files");
        assert_eq!(key, "files|2049:1311|0000000000000abc");
        assert_eq!(
            parse_key("files", &key),
            Some(ParsedKey {
                dev: 2049,
                ino: 1311,
                hash: 0xabc
            })
        );
        assert_eq!(parse_key("docker", &key), None);
        assert_eq!(parse_key("files", "files|2049:1311"), None);
    }
}
