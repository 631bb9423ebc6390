//! Where one msgpack message ends in a TCP byte stream. The forward protocol
//! has no length prefix: a message is one msgpack value, so [`Framer`] walks
//! the markers (never the payloads) and says when a whole value is buffered,
//! how many values it holds (to bound what decoding it will take) and how
//! deep it nests. The walk resumes where it stopped when more bytes arrive,
//! so a large message costs one pass however it is split. It never decodes
//! and never allocates beyond its stack of open containers.

use rmp::Marker;

/// The deepest nesting accepted; deeper input is refused as malformed
/// (decoding recurses once per level).
pub const MAX_DEPTH: usize = 64;

/// One whole message at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Its length in bytes.
    pub len: usize,
    /// The msgpack values it holds, containers and leaves.
    pub values: usize,
}

/// Why the bytes are not msgpack this source reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("byte 0x{0:02x} is not a msgpack marker")]
    Reserved(u8),
    #[error("msgpack nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// The walk over the message at the front of a buffer.
#[derive(Debug, Default)]
pub struct Framer {
    /// Where the next value starts, from the front of the buffer.
    pos: usize,
    /// Values still to read in each open container (the message itself at
    /// the bottom).
    open: Vec<u64>,
    values: usize,
    /// The least the message can be, from the lengths announced so far.
    need: usize,
}

/// How a marker continues: a leaf of `header + payload` bytes (the payload's
/// length read from the header), or a container of `n` values after `header`.
enum Shape {
    Leaf { header: usize, payload: Payload },
    Container { header: usize, count: Count },
}

#[derive(Clone, Copy)]
enum Payload {
    Fixed(usize),
    /// Length in the 1, 2 or 4 bytes after the marker, plus `extra` bytes
    /// (an ext type).
    Sized {
        width: usize,
        extra: usize,
    },
}

#[derive(Clone, Copy)]
enum Count {
    Fixed(u64),
    /// Count in the 2 or 4 bytes after the marker; `per` values each (2 for maps).
    Sized {
        width: usize,
        per: u64,
    },
}

fn shape(byte: u8) -> Result<Shape, FrameError> {
    use Payload::{Fixed, Sized};
    let leaf = |payload| Shape::Leaf { header: 1, payload };
    Ok(match Marker::from_u8(byte) {
        Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
            leaf(Fixed(0))
        }
        Marker::U8 | Marker::I8 => leaf(Fixed(1)),
        Marker::U16 | Marker::I16 => leaf(Fixed(2)),
        Marker::U32 | Marker::I32 | Marker::F32 => leaf(Fixed(4)),
        Marker::U64 | Marker::I64 | Marker::F64 => leaf(Fixed(8)),
        Marker::FixStr(n) => leaf(Fixed(usize::from(n))),
        Marker::Str8 | Marker::Bin8 => leaf(Sized { width: 1, extra: 0 }),
        Marker::Str16 | Marker::Bin16 => leaf(Sized { width: 2, extra: 0 }),
        Marker::Str32 | Marker::Bin32 => leaf(Sized { width: 4, extra: 0 }),
        Marker::FixExt1 => leaf(Fixed(2)),
        Marker::FixExt2 => leaf(Fixed(3)),
        Marker::FixExt4 => leaf(Fixed(5)),
        Marker::FixExt8 => leaf(Fixed(9)),
        Marker::FixExt16 => leaf(Fixed(17)),
        Marker::Ext8 => leaf(Sized { width: 1, extra: 1 }),
        Marker::Ext16 => leaf(Sized { width: 2, extra: 1 }),
        Marker::Ext32 => leaf(Sized { width: 4, extra: 1 }),
        Marker::FixArray(n) => Shape::Container {
            header: 1,
            count: Count::Fixed(u64::from(n)),
        },
        Marker::FixMap(n) => Shape::Container {
            header: 1,
            count: Count::Fixed(2 * u64::from(n)),
        },
        Marker::Array16 => Shape::Container {
            header: 1,
            count: Count::Sized { width: 2, per: 1 },
        },
        Marker::Array32 => Shape::Container {
            header: 1,
            count: Count::Sized { width: 4, per: 1 },
        },
        Marker::Map16 => Shape::Container {
            header: 1,
            count: Count::Sized { width: 2, per: 2 },
        },
        Marker::Map32 => Shape::Container {
            header: 1,
            count: Count::Sized { width: 4, per: 2 },
        },
        Marker::Reserved => return Err(FrameError::Reserved(byte)),
    })
}

/// The big-endian number in `bytes` (1, 2 or 4 of them).
fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, &b| (n << 8) | u64::from(b))
}

impl Framer {
    /// Bytes of the current message already walked: the message is at
    /// least this long.
    pub fn walked(&self) -> usize {
        self.pos
    }

    /// The least the current message can be: what is walked and the
    /// announced length of the value it waits for.
    pub fn needs(&self) -> usize {
        self.need.max(self.pos)
    }

    /// The message at the front of `buf` when it is whole (the walk then
    /// starts over for the next one), `None` when more bytes are needed.
    /// `buf` must start with the same bytes as at the previous call.
    pub fn next(&mut self, buf: &[u8]) -> Result<Option<Frame>, FrameError> {
        if self.open.is_empty() {
            self.open.push(1);
            self.pos = 0;
            self.values = 0;
            self.need = 0;
        }
        loop {
            let depth = self.open.len();
            let Some(top) = self.open.last_mut() else {
                let frame = Frame {
                    len: self.pos,
                    values: self.values,
                };
                self.pos = 0;
                self.values = 0;
                self.need = 0;
                return Ok(Some(frame));
            };
            if *top == 0 {
                self.open.pop();
                continue;
            }
            let Some(&byte) = buf.get(self.pos) else {
                return Ok(None);
            };
            match shape(byte)? {
                Shape::Leaf { header, payload } => {
                    let len = match payload {
                        Payload::Fixed(n) => header + n,
                        Payload::Sized { width, extra } => {
                            let Some(size) = buf.get(self.pos + 1..self.pos + 1 + width) else {
                                return Ok(None);
                            };
                            // An announced length near 4 GiB must not wrap
                            // a 32-bit usize (armv7) into a short one.
                            let announced = usize::try_from(be(size)).unwrap_or(usize::MAX);
                            (header + width + extra).saturating_add(announced)
                        }
                    };
                    let end = self.pos.saturating_add(len);
                    if buf.len() < end {
                        self.need = end;
                        return Ok(None);
                    }
                    self.pos += len;
                    *top -= 1;
                }
                Shape::Container { header, count } => {
                    let (header, n) = match count {
                        Count::Fixed(n) => (header, n),
                        Count::Sized { width, per } => {
                            let Some(size) = buf.get(self.pos + 1..self.pos + 1 + width) else {
                                return Ok(None);
                            };
                            (header + width, be(size) * per)
                        }
                    };
                    if depth > MAX_DEPTH {
                        return Err(FrameError::TooDeep);
                    }
                    *top -= 1;
                    self.open.push(n);
                    self.pos += header;
                }
            }
            self.values += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;

    fn encode(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    #[test]
    fn a_message_split_at_every_byte_is_found_once_whole() {
        let message = Value::Array(vec![
            Value::from("app.web"),
            Value::Ext(0, vec![0, 0, 0, 1, 0, 0, 0, 2]),
            Value::Map(vec![
                (Value::from("log"), Value::from("x".repeat(300))),
                (Value::from("n"), Value::from(70000)),
                (Value::from("b"), Value::Binary(vec![1; 70000])),
            ]),
        ]);
        let mut bytes = encode(&message);
        let second = encode(&Value::Nil);
        let whole = bytes.len();
        bytes.extend_from_slice(&second);
        for cut in 0..whole {
            let mut framer = Framer::default();
            assert_eq!(framer.next(&bytes[..cut]), Ok(None), "cut at {cut}");
            let frame = framer.next(&bytes).unwrap().unwrap();
            assert_eq!(frame.len, whole);
            // The array, tag, time, map, and three keys and values.
            assert_eq!(frame.values, 10);
            assert_eq!(
                framer.next(&bytes[whole..]),
                Ok(Some(Frame { len: 1, values: 1 }))
            );
        }
    }

    #[test]
    fn the_reserved_marker_is_refused() {
        assert_eq!(
            Framer::default().next(&[0x92, 0xc1]),
            Err(FrameError::Reserved(0xc1))
        );
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused_before_it_is_decoded() {
        let deep = vec![0x91; MAX_DEPTH + 2];
        assert_eq!(Framer::default().next(&deep), Err(FrameError::TooDeep));
        let mut ok = vec![0x91; MAX_DEPTH];
        ok.push(0xc0);
        assert!(Framer::default().next(&ok).unwrap().is_some());
    }

    #[test]
    fn a_huge_announced_length_waits_for_its_bytes_without_holding_them() {
        let mut framer = Framer::default();
        assert_eq!(framer.next(&[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]), Ok(None));
        assert_eq!(framer.walked(), 0);
        // 5 + 0xffff_ffff bytes; on a 32-bit target that saturates, never wraps.
        assert_eq!(framer.needs(), 5usize.saturating_add(0xffff_ffff));
    }
}
