//! Cuts a syslog TCP stream into messages (RFC 6587): octet counting
//! (`<len> <message>`) or a newline after each message, told apart at the
//! start of every message (a digit means a length, since messages start
//! with `<`). Holds at most `max_message_bytes` of one message: a longer
//! message is cut there, handed on marked truncated, and the rest of it
//! skipped as it arrives, never buffered.

/// One message cut from the stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub bytes: &'a [u8],
    /// The message was longer than `max_message_bytes` (or the connection
    /// closed before an announced length arrived): `bytes` is its start.
    pub truncated: bool,
}

/// The most digits of an octet count (a length of up to 9,999,999,999).
const MAX_COUNT_DIGITS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages.
    Start,
    /// Reading the digits of an octet count (kept in the buffer).
    Count,
    /// `remaining` bytes of an octet-counted message still to come.
    Counted { remaining: u64 },
    /// A newline-terminated message.
    Line,
    /// The rest of an overlong line, skipped up to its newline.
    SkipLine,
}

/// The framing state of one connection.
#[derive(Debug)]
pub struct Framer {
    max: usize,
    state: State,
    buf: Vec<u8>,
    truncated: bool,
}

impl Framer {
    pub fn new(max_message_bytes: usize) -> Self {
        Framer {
            max: max_message_bytes.max(1),
            state: State::Start,
            buf: Vec::new(),
            truncated: false,
        }
    }

    /// Bytes held for a message not yet complete.
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Feeds `data`, handing every message it completes to `emit`.
    pub fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(Frame<'_>)) {
        while !data.is_empty() {
            data = match self.state {
                State::Start => self.start(data),
                State::Count => self.count(data, emit),
                State::Counted { remaining } => self.counted(data, remaining, emit),
                State::Line => self.line(data, emit),
                State::SkipLine => match memchr::memchr(b'\n', data) {
                    Some(i) => {
                        self.state = State::Start;
                        &data[i + 1..]
                    }
                    None => &[],
                },
            };
        }
    }

    /// The connection closed: hands on what is left of a message.
    pub fn finish(&mut self, emit: &mut impl FnMut(Frame<'_>)) {
        let cut = matches!(self.state, State::Counted { .. });
        if matches!(
            self.state,
            State::Line | State::Count | State::Counted { .. }
        ) {
            self.truncated |= cut;
            self.emit(emit);
        }
        self.state = State::Start;
    }

    fn start<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        // Newlines, NULs and spaces between messages separate, never start, one.
        let skip = data
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r' | b'\0' | b' '))
            .count();
        let data = &data[skip..];
        match data.first() {
            Some(b) if b.is_ascii_digit() => self.state = State::Count,
            Some(_) => self.state = State::Line,
            None => {}
        }
        data
    }

    fn count<'d>(&mut self, data: &'d [u8], emit: &mut impl FnMut(Frame<'_>)) -> &'d [u8] {
        let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
        let room = MAX_COUNT_DIGITS
            .min(self.max)
            .saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&data[..digits.min(room)]);
        if digits > room {
            // Too long for a count: a message that starts with digits.
            self.state = State::Line;
            return &data[digits.min(room)..];
        }
        let rest = &data[digits..];
        match rest.first() {
            None => rest,
            Some(b' ') => {
                let len = std::str::from_utf8(&self.buf)
                    .ok()
                    .and_then(|d| d.parse::<u64>().ok())
                    .unwrap_or(0);
                self.buf.clear();
                self.state = if len == 0 {
                    State::Start
                } else {
                    State::Counted { remaining: len }
                };
                &rest[1..]
            }
            Some(b'\n') => {
                // A line of digits alone.
                self.emit(emit);
                self.state = State::Start;
                &rest[1..]
            }
            Some(_) => {
                self.state = State::Line;
                rest
            }
        }
    }

    fn counted<'d>(
        &mut self,
        data: &'d [u8],
        remaining: u64,
        emit: &mut impl FnMut(Frame<'_>),
    ) -> &'d [u8] {
        let take = usize::try_from(remaining).map_or(data.len(), |r| r.min(data.len()));
        self.keep(&data[..take]);
        let remaining = remaining - take as u64;
        if remaining == 0 {
            self.emit(emit);
            self.state = State::Start;
        } else {
            self.state = State::Counted { remaining };
        }
        &data[take..]
    }

    fn line<'d>(&mut self, data: &'d [u8], emit: &mut impl FnMut(Frame<'_>)) -> &'d [u8] {
        match memchr::memchr(b'\n', data) {
            Some(i) => {
                self.keep(&data[..i]);
                if !self.truncated && self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                self.emit(emit);
                self.state = State::Start;
                &data[i + 1..]
            }
            None => {
                self.keep(data);
                if self.truncated {
                    // Full: hand the start on now, skip the rest of the line.
                    self.emit(emit);
                    self.state = State::SkipLine;
                }
                &[]
            }
        }
    }

    /// Adds what fits under `max` to the message, marking it truncated
    /// when something did not fit.
    fn keep(&mut self, part: &[u8]) {
        let room = self.max.saturating_sub(self.buf.len());
        if part.len() > room {
            self.truncated = true;
        }
        let part = &part[..part.len().min(room)];
        let need = self.buf.len() + part.len();
        if need > self.buf.capacity() {
            // Grow as a Vec does, but never past `max`.
            let target = need.max(2 * self.buf.capacity()).min(self.max);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(part);
    }

    fn emit(&mut self, emit: &mut impl FnMut(Frame<'_>)) {
        if !self.buf.is_empty() {
            emit(Frame {
                bytes: &self.buf,
                truncated: self.truncated,
            });
        }
        self.buf.clear();
        self.truncated = false;
        // An idle connection keeps no large buffer.
        if self.buf.capacity() > 16 * 1024 {
            self.buf = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut framer = Framer::new(max);
        let mut out = Vec::new();
        let mut emit =
            |f: Frame<'_>| out.push((String::from_utf8_lossy(f.bytes).into_owned(), f.truncated));
        for chunk in chunks {
            framer.push(chunk, &mut emit);
        }
        framer.finish(&mut emit);
        out
    }

    fn whole(texts: &[&str]) -> Vec<(String, bool)> {
        texts.iter().map(|t| (t.to_string(), false)).collect()
    }

    #[test]
    fn newline_framing_splits_lines_and_drops_carriage_returns() {
        assert_eq!(
            frames(100, &[b"<13>a\n<14>b\r\n<15>c"]),
            whole(&["<13>a", "<14>b", "<15>c"])
        );
    }

    #[test]
    fn octet_counting_keeps_newlines_inside_a_message() {
        assert_eq!(
            frames(100, &[b"9 <13>a\nb c8 <14>xy z"]),
            whole(&["<13>a\nb c", "<14>xy z"])
        );
    }

    #[test]
    fn framing_is_detected_per_message_and_across_chunk_boundaries() {
        let stream: &[u8] = b"<13>line one\n12 <14>counted!<15>line two\n";
        let expected = whole(&["<13>line one", "<14>counted!", "<15>line two"]);
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(frames(100, &[a, b]), expected, "cut at {cut}");
        }
    }

    #[test]
    fn overlong_line_is_cut_marked_and_the_rest_skipped() {
        let long = [b'x'; 50];
        let out = frames(10, &[b"<13>", &long, &long, b"\n<14>next\n"]);
        assert_eq!(
            out,
            vec![
                ("<13>xxxxxx".to_string(), true),
                ("<14>next".to_string(), false)
            ]
        );
    }

    #[test]
    fn overlong_counted_message_is_cut_and_its_rest_skipped() {
        let out = frames(5, &[b"12 <13>abcdefgh3 <1>"]);
        assert_eq!(
            out,
            vec![("<13>a".to_string(), true), ("<1>".to_string(), false)]
        );
    }

    #[test]
    fn a_huge_announced_length_holds_only_max_bytes() {
        let mut framer = Framer::new(64);
        let mut n = 0;
        framer.push(b"9999999999 <13>", &mut |_| n += 1);
        for _ in 0..1000 {
            framer.push(&[b'y'; 1024], &mut |_| n += 1);
        }
        assert!(framer.held() <= 64 + 16, "held {}", framer.held());
        assert_eq!(n, 0, "the message is not complete yet");
    }

    #[test]
    fn a_connection_closed_mid_count_hands_on_a_truncated_start() {
        assert_eq!(
            frames(100, &[b"20 <13>short"]),
            vec![("<13>short".to_string(), true)]
        );
    }

    #[test]
    fn digits_without_a_space_are_a_line() {
        assert_eq!(frames(100, &[b"123abc\n"]), whole(&["123abc"]));
        assert_eq!(
            frames(100, &[b"12345678901234 x\n"]),
            whole(&["12345678901234 x"])
        );
    }

    proptest! {
        #[test]
        fn no_frame_is_longer_than_max(data in proptest::collection::vec(any::<u8>(), 0..2000), max in 1usize..64) {
            let mut framer = Framer::new(max);
            let mut ok = true;
            let mut check = |f: Frame<'_>| ok &= f.bytes.len() <= max;
            for chunk in data.chunks(37) {
                framer.push(chunk, &mut check);
            }
            framer.finish(&mut check);
            prop_assert!(ok);
        }
    }
}
