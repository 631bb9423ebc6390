//! An incremental parser of the journal export format
//! (`journalctl --output=export`).
//!
//! The format is a stream of entries separated by an empty line. Each field
//! is either text, `NAME=value\n`, or binary, `NAME\n` followed by the value
//! length as a little-endian `u64`, the value bytes and `\n`. Bytes are pushed
//! in as they arrive ([`ExportParser::buffer_mut`]); complete entries come out
//! of [`ExportParser::next_entry`] with their fields as zero-copy [`Bytes`]
//! slices. A field longer than `max_field_bytes` is skipped as it streams by
//! (its entry is marked truncated), so memory stays bounded. This module does
//! no I/O and never interprets field contents.

use bytes::{Buf, Bytes, BytesMut};
use std::ops::Range;

/// The byte stream is not valid export format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("binary field `{field}` is not followed by a newline")]
    MissingNewline { field: String },
    #[error("field with an empty name")]
    EmptyName,
}

/// One journal entry: its fields in stream order (names may repeat).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportEntry {
    pub fields: Vec<(Bytes, Bytes)>,
    /// At least one field exceeded the size limit and was left out.
    pub truncated: bool,
}

impl ExportEntry {
    /// The first value of field `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Bytes> {
        self.fields
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .map(|(_, v)| v)
    }

    /// Rough size in bytes (names and values).
    pub fn byte_len(&self) -> usize {
        self.fields.iter().map(|(n, v)| n.len() + v.len() + 2).sum()
    }
}

/// Where the parser is inside the current field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field or of the blank line ending the entry.
    FieldStart,
    /// Discarding `remaining` bytes of an oversized binary value (and its `\n`).
    Skipping { remaining: u64 },
    /// Discarding the rest of an oversized text line, up to its `\n`.
    SkippingLine,
}

/// Turns export-format bytes into [`ExportEntry`]s, as they arrive.
#[derive(Debug)]
pub struct ExportParser {
    buf: BytesMut,
    /// Fields of the current entry still inside `buf` (offsets into it).
    pending: Vec<(Range<usize>, Range<usize>)>,
    /// Fields of the current entry already split off `buf` (before a skip).
    frozen: Vec<(Bytes, Bytes)>,
    /// Offset in `buf` where the next field starts.
    pos: usize,
    state: State,
    truncated: bool,
    max_field_bytes: usize,
}

const READ_RESERVE: usize = 64 * 1024;

impl ExportParser {
    /// A parser that keeps values of at most `max_field_bytes`.
    pub fn new(max_field_bytes: usize) -> Self {
        ExportParser {
            buf: BytesMut::with_capacity(READ_RESERVE),
            pending: Vec::with_capacity(32),
            frozen: Vec::new(),
            pos: 0,
            state: State::FieldStart,
            truncated: false,
            max_field_bytes: max_field_bytes.max(1),
        }
    }

    /// The buffer to append newly read bytes to (room for one read reserved).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        self.buf.reserve(READ_RESERVE);
        &mut self.buf
    }

    /// Appends bytes (a copy; readers can use [`buffer_mut`](Self::buffer_mut)).
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Forgets any partial entry (the stream broke off mid-entry).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.pending.clear();
        self.frozen.clear();
        self.pos = 0;
        self.state = State::FieldStart;
        self.truncated = false;
    }

    /// Bytes of an entry that is not complete yet.
    pub fn partial_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The next complete entry, `None` until more bytes arrive.
    pub fn next_entry(&mut self) -> Result<Option<ExportEntry>, ExportError> {
        loop {
            match self.state {
                State::Skipping { remaining } => {
                    let available = (self.buf.len() - self.pos) as u64;
                    let take = available.min(remaining);
                    self.buf.advance(self.pos + take as usize);
                    self.pos = 0;
                    if take < remaining {
                        self.state = State::Skipping {
                            remaining: remaining - take,
                        };
                        return Ok(None);
                    }
                    self.state = State::FieldStart;
                }
                State::SkippingLine => {
                    match memchr::memchr(b'\n', &self.buf[self.pos..]) {
                        Some(i) => {
                            self.buf.advance(self.pos + i + 1);
                            self.state = State::FieldStart;
                        }
                        None => self.buf.clear(),
                    }
                    self.pos = 0;
                    if self.state != State::FieldStart {
                        return Ok(None);
                    }
                }
                State::FieldStart => match self.field()? {
                    Step::NeedMore => return Ok(None),
                    Step::Field => {}
                    Step::EndOfEntry => {
                        if let Some(entry) = self.finish_entry() {
                            return Ok(Some(entry));
                        }
                    }
                },
            }
        }
    }

    /// Parses one field (or the entry's end) at `pos`.
    fn field(&mut self) -> Result<Step, ExportError> {
        let rest = &self.buf[self.pos..];
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            // No field line is this long: drop it as it streams by.
            if rest.len() > self.max_field_bytes + 256 {
                self.start_skip(State::SkippingLine);
                return Ok(Step::Field);
            }
            return Ok(Step::NeedMore);
        };
        if nl == 0 {
            self.pos += 1;
            return Ok(Step::EndOfEntry);
        }
        let line = &rest[..nl];
        if let Some(eq) = memchr::memchr(b'=', line) {
            if eq == 0 {
                return Err(ExportError::EmptyName);
            }
            let start = self.pos;
            if nl - eq - 1 > self.max_field_bytes {
                self.pos += nl + 1;
                self.truncated = true;
                return Ok(Step::Field);
            }
            self.pending
                .push((start..start + eq, start + eq + 1..start + nl));
            self.pos += nl + 1;
            return Ok(Step::Field);
        }
        // Binary field: NAME\n, u64 LE length, data, \n.
        let header = nl + 1 + 8;
        if rest.len() < header {
            return Ok(Step::NeedMore);
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&rest[nl + 1..header]);
        let len = u64::from_le_bytes(len_bytes);
        if len > self.max_field_bytes as u64 {
            self.pos += header;
            self.start_skip(State::Skipping {
                remaining: len.saturating_add(1),
            });
            return Ok(Step::Field);
        }
        let len = len as usize;
        if rest.len() < header + len + 1 {
            return Ok(Step::NeedMore);
        }
        if rest[header + len] != b'\n' {
            return Err(ExportError::MissingNewline {
                field: String::from_utf8_lossy(&rest[..nl]).into_owned(),
            });
        }
        let start = self.pos;
        self.pending
            .push((start..start + nl, start + header..start + header + len));
        self.pos += header + len + 1;
        Ok(Step::Field)
    }

    /// Moves the fields parsed so far out of `buf` so that the bytes of an
    /// oversized value can be dropped as they arrive.
    fn start_skip(&mut self, state: State) {
        self.truncated = true;
        let head = self.buf.split_to(self.pos).freeze();
        for (name, value) in self.pending.drain(..) {
            self.frozen.push((head.slice(name), head.slice(value)));
        }
        self.pos = 0;
        self.state = state;
    }

    /// Splits the finished entry off the buffer; `None` for an empty entry
    /// (consecutive blank lines).
    fn finish_entry(&mut self) -> Option<ExportEntry> {
        let chunk = self.buf.split_to(self.pos).freeze();
        self.pos = 0;
        let mut fields = std::mem::take(&mut self.frozen);
        fields.reserve(self.pending.len());
        for (name, value) in self.pending.drain(..) {
            fields.push((chunk.slice(name), chunk.slice(value)));
        }
        let truncated = std::mem::take(&mut self.truncated);
        if fields.is_empty() && !truncated {
            return None;
        }
        Some(ExportEntry { fields, truncated })
    }
}

enum Step {
    NeedMore,
    Field,
    EndOfEntry,
}

/// Appends one entry in export format to `out` (text fields where possible,
/// binary encoding for values holding a newline or invalid UTF-8). Used by
/// tests and benches to produce input for `systemd-journal-remote`.
pub fn write_entry(out: &mut Vec<u8>, fields: &[(&str, &[u8])]) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        if value.contains(&b'\n') || std::str::from_utf8(value).is_err() {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: &ExportEntry) -> Vec<(String, Vec<u8>)> {
        e.fields
            .iter()
            .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v.to_vec()))
            .collect()
    }

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        write_entry(
            &mut out,
            &[
                ("__CURSOR", b"s=1;i=1"),
                ("MESSAGE", b"hello"),
                ("PRIORITY", b"6"),
            ],
        );
        write_entry(
            &mut out,
            &[
                ("__CURSOR", b"s=1;i=2"),
                ("MESSAGE", b"two\nlines \xff\x00"),
                ("EMPTY", b""),
            ],
        );
        out
    }

    #[test]
    fn text_and_binary_fields_are_parsed_byte_for_byte() {
        let mut p = ExportParser::new(1024);
        p.push(&sample());
        let a = p.next_entry().unwrap().unwrap();
        assert_eq!(
            fields(&a),
            vec![
                ("__CURSOR".into(), b"s=1;i=1".to_vec()),
                ("MESSAGE".into(), b"hello".to_vec()),
                ("PRIORITY".into(), b"6".to_vec()),
            ]
        );
        let b = p.next_entry().unwrap().unwrap();
        assert_eq!(
            b.get(b"MESSAGE").map(|v| v.to_vec()),
            Some(b"two\nlines \xff\x00".to_vec())
        );
        assert_eq!(b.get(b"EMPTY").map(|v| v.len()), Some(0));
        assert_eq!(p.next_entry().unwrap(), None);
        assert_eq!(p.partial_bytes(), 0);
    }

    #[test]
    fn entries_split_at_every_byte_boundary_parse_the_same() {
        let input = sample();
        let mut whole = ExportParser::new(1024);
        whole.push(&input);
        let expected = [
            whole.next_entry().unwrap().unwrap(),
            whole.next_entry().unwrap().unwrap(),
        ];
        for cut in 0..input.len() {
            let mut p = ExportParser::new(1024);
            let mut got = Vec::new();
            p.push(&input[..cut]);
            while let Some(e) = p.next_entry().unwrap() {
                got.push(e);
            }
            p.push(&input[cut..]);
            while let Some(e) = p.next_entry().unwrap() {
                got.push(e);
            }
            assert_eq!(got, expected, "cut at {cut}");
        }
    }

    #[test]
    fn oversized_fields_are_skipped_and_the_entry_marked_truncated() {
        let big = vec![b'x'; 5000];
        let mut big_binary = vec![b'\n'; 5000];
        big_binary[0] = 0xff;
        let mut input = Vec::new();
        write_entry(
            &mut input,
            &[
                ("A", b"1"),
                ("BIG", &big),
                ("BIN", &big_binary),
                ("B", b"2"),
            ],
        );
        write_entry(&mut input, &[("C", b"3")]);
        let mut p = ExportParser::new(100);
        let mut got = Vec::new();
        for chunk in input.chunks(7) {
            p.push(chunk);
            while let Some(e) = p.next_entry().unwrap() {
                got.push(e);
            }
            assert!(
                p.partial_bytes() < 400,
                "buffer grew to {}",
                p.partial_bytes()
            );
        }
        assert_eq!(got.len(), 2);
        assert!(got[0].truncated);
        assert_eq!(
            fields(&got[0]),
            vec![("A".into(), b"1".to_vec()), ("B".into(), b"2".to_vec())]
        );
        assert!(!got[1].truncated);
        assert_eq!(fields(&got[1]), vec![("C".into(), b"3".to_vec())]);
    }

    #[test]
    fn binary_value_without_trailing_newline_is_an_error() {
        let mut p = ExportParser::new(1024);
        p.push(b"MESSAGE\n\x02\0\0\0\0\0\0\0abX\n");
        assert!(matches!(
            p.next_entry(),
            Err(ExportError::MissingNewline { .. })
        ));
    }

    #[test]
    fn blank_lines_between_entries_yield_no_empty_entries() {
        let mut p = ExportParser::new(1024);
        p.push(b"\n\nA=1\n\n\n\nB=2\n\n");
        assert_eq!(fields(&p.next_entry().unwrap().unwrap())[0].0, "A");
        assert_eq!(fields(&p.next_entry().unwrap().unwrap())[0].0, "B");
        assert_eq!(p.next_entry().unwrap(), None);
    }
}
