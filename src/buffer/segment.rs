//! Spill segment records: the framing of one batch on disk and reading it
//! back. A record is a 12-byte header — payload length, event count and
//! CRC32C of (event count, payload), all little-endian u32 — followed by
//! the zstd-compressed encoded batch. Reading never trusts the file: a
//! short, zero-filled or corrupt record is reported as [`Damage`], never a
//! panic. This module does not decide what to do about damage.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Header bytes before every payload.
pub const HEADER_BYTES: u64 = 12;
/// A payload larger than this is damage, not a record (batches are ~1 MiB).
const MAX_PAYLOAD: u32 = 64 * 1024 * 1024;
/// zstd level for spilled batches: fast, and ~5x on logs and metrics.
const ZSTD_LEVEL: i32 = 3;

/// One record read back.
#[derive(Debug)]
pub struct Record {
    pub events: u32,
    /// The encoded batch, decompressed.
    pub encoded: Vec<u8>,
    /// Offset just past the record.
    pub next: u64,
}

/// Why the bytes at an offset are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The file ends inside the record (a torn write).
    Short,
    /// A zero header: preallocated or zero-filled space.
    Zeroed,
    /// The length is impossible or the checksum does not match.
    Corrupt,
    /// The checksum matched but the payload does not decompress.
    Undecodable,
    /// The payload decompresses to more than the reader allows.
    Oversized,
}

impl Damage {
    pub fn as_str(self) -> &'static str {
        match self {
            Damage::Short => "torn",
            Damage::Zeroed => "zeroed",
            Damage::Corrupt => "checksum",
            Damage::Undecodable => "undecodable",
            Damage::Oversized => "oversized",
        }
    }
}

/// What reading at an offset found.
#[derive(Debug)]
pub enum ReadOutcome {
    Record(Record),
    /// Exactly at `limit`: nothing more to read.
    End,
    Damaged(Damage),
}

/// Compresses `encoded` and frames it as one record, ready for one `write`.
pub fn frame(encoded: &[u8], events: u32) -> io::Result<Vec<u8>> {
    let payload = zstd::bulk::compress(encoded, ZSTD_LEVEL)?;
    let mut record = Vec::with_capacity(payload.len() + HEADER_BYTES as usize);
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&events.to_le_bytes());
    record.extend_from_slice(&checksum(events, &payload).to_le_bytes());
    record.extend_from_slice(&payload);
    Ok(record)
}

fn checksum(events: u32, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&events.to_le_bytes()), payload)
}

fn header_at(file: &mut File, at: u64, limit: u64) -> io::Result<Result<(u32, u32, u32), Damage>> {
    if limit - at < HEADER_BYTES {
        return Ok(Err(Damage::Short));
    }
    let mut header = [0u8; HEADER_BYTES as usize];
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(&mut header)?;
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (len, events, crc) = (word(0), word(4), word(8));
    if len == 0 && events == 0 && crc == 0 {
        return Ok(Err(Damage::Zeroed));
    }
    if len == 0 || len > MAX_PAYLOAD {
        return Ok(Err(Damage::Corrupt));
    }
    if limit - at - HEADER_BYTES < u64::from(len) {
        return Ok(Err(Damage::Short));
    }
    Ok(Ok((len, events, crc)))
}

/// Reads the record at `at`, looking no further than `limit` (the bytes
/// known to be written). I/O errors are errors; bad bytes are [`Damage`].
pub fn read_record(file: &mut File, at: u64, limit: u64) -> io::Result<ReadOutcome> {
    read_record_within(file, at, limit, usize::MAX)
}

/// Like [`read_record`], decompressing no more than `max_encoded` bytes:
/// a record that would be larger is [`Damage::Oversized`].
pub fn read_record_within(
    file: &mut File,
    at: u64,
    limit: u64,
    max_encoded: usize,
) -> io::Result<ReadOutcome> {
    if at >= limit {
        return Ok(ReadOutcome::End);
    }
    let (len, events, crc) = match header_at(file, at, limit)? {
        Ok(h) => h,
        Err(damage) => return Ok(ReadOutcome::Damaged(damage)),
    };
    let mut payload = vec![0u8; len as usize];
    file.read_exact(&mut payload)?;
    if checksum(events, &payload) != crc {
        return Ok(ReadOutcome::Damaged(Damage::Corrupt));
    }
    let mut encoded = Vec::new();
    let decoded = zstd::stream::read::Decoder::new(&payload[..]).and_then(|d| {
        d.take((max_encoded as u64).saturating_add(1))
            .read_to_end(&mut encoded)
    });
    if decoded.is_ok() && encoded.len() > max_encoded {
        return Ok(ReadOutcome::Damaged(Damage::Oversized));
    }
    match decoded {
        Ok(_) => Ok(ReadOutcome::Record(Record {
            events,
            encoded,
            next: at + HEADER_BYTES + u64::from(len),
        })),
        Err(_) => Ok(ReadOutcome::Damaged(Damage::Undecodable)),
    }
}

/// Counts the events of the intact records from `at` up to `limit`
/// without decompressing them (headers only; stops at damage).
pub fn count_events(file: &mut File, mut at: u64, limit: u64) -> io::Result<u64> {
    let mut events = 0u64;
    while at < limit {
        match header_at(file, at, limit)? {
            Ok((len, n, _)) => {
                events += u64::from(n);
                at += HEADER_BYTES + u64::from(len);
            }
            Err(_) => break,
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(records: &[Vec<u8>]) -> (tempfile::NamedTempFile, u64) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for r in records {
            f.write_all(r).unwrap();
        }
        let len = f.as_file().metadata().unwrap().len();
        (f, len)
    }

    #[test]
    fn framed_records_read_back_in_order() {
        let a = frame(b"first batch", 3).unwrap();
        let b = frame(b"second", 1).unwrap();
        let (f, len) = file_with(&[a, b]);
        let mut file = f.reopen().unwrap();
        let ReadOutcome::Record(first) = read_record(&mut file, 0, len).unwrap() else {
            panic!("first record")
        };
        assert_eq!((first.events, &first.encoded[..]), (3, &b"first batch"[..]));
        let ReadOutcome::Record(second) = read_record(&mut file, first.next, len).unwrap() else {
            panic!("second record")
        };
        assert_eq!(&second.encoded[..], b"second");
        assert!(matches!(
            read_record(&mut file, second.next, len).unwrap(),
            ReadOutcome::End
        ));
        assert_eq!(count_events(&mut file, 0, len).unwrap(), 4);
    }

    #[test]
    fn flipped_byte_truncation_and_zero_fill_are_damage() {
        let record = frame(&[7u8; 4000], 1).unwrap();
        let mut flipped = record.clone();
        let last = flipped.len() - 5;
        flipped[last] ^= 0x40;
        let (f, len) = file_with(&[flipped]);
        let outcome = read_record(&mut f.reopen().unwrap(), 0, len).unwrap();
        assert!(
            matches!(outcome, ReadOutcome::Damaged(Damage::Corrupt)),
            "{outcome:?}"
        );

        let (f, len) = file_with(&[record[..record.len() - 3].to_vec()]);
        let outcome = read_record(&mut f.reopen().unwrap(), 0, len).unwrap();
        assert!(
            matches!(outcome, ReadOutcome::Damaged(Damage::Short)),
            "{outcome:?}"
        );

        let (f, len) = file_with(&[vec![0u8; 4096]]);
        let outcome = read_record(&mut f.reopen().unwrap(), 0, len).unwrap();
        assert!(
            matches!(outcome, ReadOutcome::Damaged(Damage::Zeroed)),
            "{outcome:?}"
        );
    }
}
