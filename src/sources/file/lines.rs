//! Splits a byte stream into lines with a hard length cap.
//!
//! The only line splitter in shipd. Lines end at `\n` (a trailing `\r` is
//! removed). A line longer than `max_line_bytes` keeps its first
//! `max_line_bytes` and is marked truncated; the rest is skipped without being
//! buffered, so memory stays bounded whatever the input. Offsets are absolute
//! positions in the stream, so a line's end is a resumable checkpoint.

use bytes::{Bytes, BytesMut};

/// One complete line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub bytes: Bytes,
    /// Offset of the line's first byte.
    pub start: u64,
    /// Offset just past its newline (where reading resumes).
    pub end: u64,
    pub truncated: bool,
}

/// Incremental line splitter over consecutive chunks of one stream.
#[derive(Debug)]
pub struct LineSplitter {
    max_line_bytes: usize,
    /// Bytes of an unfinished line (at most `max_line_bytes`).
    carry: BytesMut,
    /// The unfinished line exceeded the cap.
    overflowed: bool,
    /// Offset of the unfinished line's first byte.
    line_start: u64,
    /// Offset of the next byte to be pushed.
    next: u64,
}

impl LineSplitter {
    /// A splitter whose next pushed byte sits at `offset`.
    pub fn new(max_line_bytes: usize, offset: u64) -> Self {
        LineSplitter {
            max_line_bytes: max_line_bytes.max(1),
            carry: BytesMut::new(),
            overflowed: false,
            line_start: offset,
            next: offset,
        }
    }

    /// Offset just past the last complete line handed out.
    pub fn committed(&self) -> u64 {
        self.line_start
    }

    /// Bytes held for an unfinished line.
    pub fn pending(&self) -> usize {
        self.carry.len()
    }

    /// The unfinished last line, as it is (the stream ended without a
    /// newline); afterwards the splitter is committed up to the stream's end.
    pub fn finish(&mut self) -> Option<Line> {
        if self.next == self.line_start {
            return None;
        }
        let truncated = self.overflowed;
        let line = Line {
            bytes: self.carry.split().freeze(),
            start: self.line_start,
            end: self.next,
            truncated,
        };
        self.overflowed = false;
        self.line_start = self.next;
        Some(line)
    }

    /// Pushes the next `chunk` of the stream, appending complete lines to `out`.
    pub fn push(&mut self, chunk: Bytes, out: &mut Vec<Line>) {
        let mut pos = 0;
        for nl in memchr::memchr_iter(b'\n', &chunk) {
            let end = self.next + nl as u64 + 1;
            let (bytes, truncated) = if self.carry.is_empty() && !self.overflowed {
                let line = chunk.slice(pos..nl);
                if line.len() > self.max_line_bytes {
                    (line.slice(..self.max_line_bytes), true)
                } else {
                    (line, false)
                }
            } else {
                self.append_capped(&chunk[pos..nl]);
                (self.carry.split().freeze(), self.overflowed)
            };
            let bytes = strip_cr(bytes, truncated);
            out.push(Line {
                bytes,
                start: self.line_start,
                end,
                truncated,
            });
            self.overflowed = false;
            self.line_start = end;
            pos = nl + 1;
        }
        if pos < chunk.len() {
            self.append_capped(&chunk[pos..]);
        }
        self.next += chunk.len() as u64;
    }

    fn append_capped(&mut self, bytes: &[u8]) {
        let room = self.max_line_bytes - self.carry.len();
        if bytes.len() > room {
            self.overflowed = true;
        }
        self.carry
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

fn strip_cr(line: Bytes, truncated: bool) -> Bytes {
    if !truncated && line.last() == Some(&b'\r') {
        line.slice(..line.len() - 1)
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<Line>, LineSplitter) {
        let mut s = LineSplitter::new(max, 0);
        let mut out = Vec::new();
        for c in chunks {
            s.push(Bytes::copy_from_slice(c), &mut out);
        }
        (out, s)
    }

    #[test]
    fn lines_across_chunks_keep_absolute_offsets() {
        let (lines, s) = split(100, &[b"ab", b"c\nde\r\nf", b"g"]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].bytes, "abc");
        assert_eq!((lines[0].start, lines[0].end), (0, 4));
        assert_eq!(lines[1].bytes, "de");
        assert_eq!((lines[1].start, lines[1].end), (4, 8));
        assert_eq!(s.committed(), 8);
        assert_eq!(s.pending(), 2, "unfinished `fg` is held");
    }

    #[test]
    fn overlong_line_is_truncated_and_marked_without_buffering_it_all() {
        let big = vec![b'x'; 10_000];
        let (lines, s) = split(16, &[&big, &big, b"\nnext\n"]);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].truncated);
        assert_eq!(lines[0].bytes.len(), 16);
        assert_eq!(lines[0].end, 20_001);
        assert_eq!(lines[1].bytes, "next");
        assert!(!lines[1].truncated);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn overlong_line_within_one_chunk_is_truncated() {
        let (lines, _) = split(3, &[b"abcdef\nab\n"]);
        assert_eq!(lines[0].bytes, "abc");
        assert!(lines[0].truncated);
        assert_eq!(lines[1].bytes, "ab");
    }

    #[test]
    fn finish_hands_out_the_unfinished_last_line() {
        let (_, mut s) = split(100, &[b"a\nlast words"]);
        let line = s.finish().unwrap();
        assert_eq!(line.bytes, "last words");
        assert_eq!((line.start, line.end), (2, 12));
        assert_eq!(s.committed(), 12);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn empty_lines_are_lines() {
        let (lines, _) = split(10, &[b"\n\nx\n"]);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].bytes, "");
    }
}
