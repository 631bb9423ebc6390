//! The four event modes of the Forward protocol v1, from one whole msgpack
//! message ([`super::frame`]) to `(tag, time, record)` entries:
//!
//! - Message: `[tag, time, record, option?]`
//! - Forward: `[tag, [[time, record], ...], option?]`
//! - PackedForward: `[tag, bin|str holding msgpack [time, record] entries, option?]`
//! - CompressedPackedForward: the same with option `compressed: "gzip"`
//!   (one or more gzip members).
//!
//! Times are integer seconds or EventTime (ext type 0: 4 bytes of seconds,
//! 4 of nanoseconds, big-endian); floats are read as seconds too. A
//! top-level `nil` is a heartbeat. The option's `chunk` is what the client
//! wants acknowledged. Nothing here does I/O; decompression stops at the
//! message limit.

use super::frame::{FrameError, Framer, MAX_DEPTH};
use rmpv::ValueRef;
use std::io::Read;

/// Decoding one value takes about this much memory per msgpack value (the
/// borrowed value tree, then the event's own values), besides its bytes.
pub const BYTES_PER_VALUE: usize = 96;

/// Why a message was refused; either closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed forward message: {0}")]
    Malformed(String),
    #[error("{0}")]
    TooLarge(String),
    /// The [`Entries`] stopped decoding, for a reason it keeps.
    #[error("stopped by the receiver of the entries")]
    Stopped,
}

fn malformed(what: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(what.into())
}

impl From<FrameError> for DecodeError {
    fn from(e: FrameError) -> Self {
        malformed(e.to_string())
    }
}

/// One event's record: its msgpack map entries.
pub type Record<'a> = Vec<(ValueRef<'a>, ValueRef<'a>)>;

/// What one message held, beyond the entries handed out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The `chunk` option: answer `{"ack": chunk}` once the entries are safe.
    pub chunk: Option<String>,
    pub entries: usize,
}

/// Memory [`message`] asks for before it takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The next value, while it is decoded (replaces the previous one's).
    Value(usize),
    /// A compressed payload once inflated, for the rest of the message.
    Inflated(usize),
}

/// What takes a message's entries, and holds the memory decoding them
/// needs; an `Err` from either stops decoding with that error.
pub trait Entries {
    fn hold(&mut self, hold: Hold) -> Result<(), DecodeError>;
    fn entry(
        &mut self,
        tag: &str,
        time_unix_nano: u64,
        record: Record<'_>,
    ) -> Result<(), DecodeError>;
}

/// Decodes the message `frame` (one whole msgpack value) one entry at a
/// time, handing each to `out`, so memory holds one entry's values at
/// once, whatever the message's size. `out` is asked to hold the memory of
/// each value before it is decoded and of a compressed payload (at most
/// `max_bytes` inflated) before it is inflated.
pub fn message(
    frame: &[u8],
    max_bytes: usize,
    out: &mut dyn Entries,
) -> Result<Decoded, DecodeError> {
    if frame == [0xc0] {
        return Ok(Decoded::default());
    }
    let mut rd = frame;
    let n =
        rmp::decode::read_array_len(&mut rd).map_err(|_| malformed("expected an array or nil"))?;
    if !(2..=4).contains(&n) {
        return Err(malformed(format!("an array of {n} elements, not 2 to 4")));
    }
    let tag = match next_value(&mut rd, out)? {
        ValueRef::String(s) => s
            .into_str()
            .ok_or_else(|| malformed("the tag is not UTF-8"))?,
        other => {
            return Err(malformed(format!(
                "the tag is {}, not a string",
                kind(&other)
            )))
        }
    };
    let marker = rd.first().map(|b| rmp::Marker::from_u8(*b));
    match marker {
        Some(rmp::Marker::FixArray(_) | rmp::Marker::Array16 | rmp::Marker::Array32) => {
            // Forward mode: [tag, [[time, record], ...], option?]
            if n == 4 {
                return Err(malformed("Forward mode takes [tag, entries, option]"));
            }
            let count = rmp::decode::read_array_len(&mut rd)
                .map_err(|_| malformed("the entries are not an array"))?;
            for _ in 0..count {
                let (time, record) = pair_of(next_value(&mut rd, out)?)?;
                out.entry(tag, time, record)?;
            }
            let options = match n {
                3 => options(Some(next_value(&mut rd, out)?))?,
                _ => Options::default(),
            };
            Ok(Decoded {
                chunk: options.chunk,
                entries: count as usize,
            })
        }
        Some(
            rmp::Marker::Bin8
            | rmp::Marker::Bin16
            | rmp::Marker::Bin32
            | rmp::Marker::FixStr(_)
            | rmp::Marker::Str8
            | rmp::Marker::Str16
            | rmp::Marker::Str32,
        ) => {
            // PackedForward: [tag, bin|str, option?]; the option says
            // whether the entries are compressed, so it is read first.
            if n == 4 {
                return Err(malformed("PackedForward mode takes [tag, entries, option]"));
            }
            let packed = next_value(&mut rd, out)?;
            let option = match n {
                3 => Some(next_value(&mut rd, out)?),
                _ => None,
            };
            match packed {
                ValueRef::Binary(bytes) => packed_forward(tag, bytes, option, max_bytes, out),
                // Older clients send the packed entries as a msgpack str.
                ValueRef::String(s) => {
                    let bytes = s.into_bytes();
                    packed_forward(tag, &bytes, option, max_bytes, out)
                }
                other => Err(malformed(format!("packed entries are {}", kind(&other)))),
            }
        }
        _ => {
            // Message mode: [tag, time, record, option?]
            let time = time_of(&next_value(&mut rd, out)?)?;
            if n < 3 {
                return Err(malformed("Message mode without a record"));
            }
            let record = match next_value(&mut rd, out)? {
                ValueRef::Map(record) => record,
                other => {
                    return Err(malformed(format!(
                        "the record is {}, not a map",
                        kind(&other)
                    )))
                }
            };
            let options = match n {
                4 => options(Some(next_value(&mut rd, out)?))?,
                _ => Options::default(),
            };
            out.entry(tag, time, record)?;
            Ok(Decoded {
                chunk: options.chunk,
                entries: 1,
            })
        }
    }
}

/// The next whole value of `rd`, its memory held first.
fn next_value<'a>(rd: &mut &'a [u8], out: &mut dyn Entries) -> Result<ValueRef<'a>, DecodeError> {
    let frame = Framer::default()
        .next(rd)?
        .ok_or_else(|| malformed("the message ends inside a value"))?;
    out.hold(Hold::Value(frame.values.saturating_mul(BYTES_PER_VALUE)))?;
    rmpv::decode::read_value_ref_with_max_depth(rd, MAX_DEPTH + 1)
        .map_err(|e| malformed(e.to_string()))
}

fn packed_forward(
    tag: &str,
    packed: &[u8],
    option: Option<ValueRef<'_>>,
    max_bytes: usize,
    out: &mut dyn Entries,
) -> Result<Decoded, DecodeError> {
    let options = options(option)?;
    let inflated;
    let stream = if options.gzip {
        inflated = gunzip(packed, max_bytes)?;
        out.hold(Hold::Inflated(inflated.len()))?;
        &inflated[..]
    } else {
        packed
    };
    let mut rest = stream;
    let mut entries = 0;
    while !rest.is_empty() {
        let value = next_value(&mut rest, out).map_err(|e| match e {
            DecodeError::Malformed(m) => malformed(format!("in the packed entries: {m}")),
            other => other,
        })?;
        let (time, record) = pair_of(value)?;
        out.entry(tag, time, record)?;
        entries += 1;
    }
    Ok(Decoded {
        chunk: options.chunk,
        entries,
    })
}

/// Inflates gzip members (as many as there are) up to `max_bytes`.
fn gunzip(compressed: &[u8], max_bytes: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| malformed(format!("the gzip payload does not inflate: {e}")))?;
    if out.len() > max_bytes {
        return Err(DecodeError::TooLarge(format!(
            "the gzip payload inflates past max_message_bytes ({max_bytes} bytes)"
        )));
    }
    Ok(out)
}

#[derive(Default)]
struct Options {
    chunk: Option<String>,
    gzip: bool,
}

fn options(option: Option<ValueRef<'_>>) -> Result<Options, DecodeError> {
    let entries = match option {
        None | Some(ValueRef::Nil) => return Ok(Options::default()),
        Some(ValueRef::Map(entries)) => entries,
        Some(other) => {
            return Err(malformed(format!(
                "the option is {}, not a map",
                kind(&other)
            )))
        }
    };
    let mut out = Options::default();
    for (key, value) in entries {
        match (str_of(&key), value) {
            (Some("chunk"), ValueRef::String(s)) => {
                out.chunk = Some(
                    s.into_str()
                        .ok_or_else(|| malformed("the chunk id is not UTF-8"))?
                        .to_owned(),
                )
            }
            (Some("chunk"), other) => {
                return Err(malformed(format!(
                    "the chunk id is {}, not a string",
                    kind(&other)
                )))
            }
            (Some("compressed"), ValueRef::String(s)) => match s.as_str() {
                Some("gzip") => out.gzip = true,
                Some("text") => {}
                _ => return Err(malformed("compressed is neither \"gzip\" nor \"text\"")),
            },
            // `size` (the entry count) and anything newer are advisory.
            _ => {}
        }
    }
    Ok(out)
}

fn pair_of(value: ValueRef<'_>) -> Result<(u64, Record<'_>), DecodeError> {
    let ValueRef::Array(pair) = value else {
        return Err(malformed(format!(
            "an entry is {}, not [time, record]",
            kind(&value)
        )));
    };
    let mut pair = pair.into_iter();
    match (pair.next(), pair.next(), pair.next()) {
        (Some(time), Some(ValueRef::Map(record)), None) => Ok((time_of(&time)?, record)),
        (Some(_), Some(other), None) => Err(malformed(format!(
            "an entry's record is {}, not a map",
            kind(&other)
        ))),
        _ => Err(malformed("an entry is not [time, record]")),
    }
}

/// An event time as ns since the epoch.
pub fn time_of(time: &ValueRef<'_>) -> Result<u64, DecodeError> {
    const NS: u64 = 1_000_000_000;
    match time {
        ValueRef::Integer(n) => n
            .as_u64()
            .and_then(|s| s.checked_mul(NS))
            .ok_or_else(|| malformed("the time is not seconds since the epoch")),
        ValueRef::Ext(0, bytes) if bytes.len() == 8 => {
            let secs = u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
            let nanos = u64::from(u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]));
            if nanos >= NS {
                return Err(malformed("the EventTime's nanoseconds exceed a second"));
            }
            Ok(secs * NS + nanos)
        }
        ValueRef::F64(f) if f.is_finite() && *f >= 0.0 && *f < 1e10 => Ok((f * NS as f64) as u64),
        ValueRef::F32(f) if f.is_finite() && *f >= 0.0 => Ok((f64::from(*f) * NS as f64) as u64),
        other => Err(malformed(format!(
            "the time is {}, not integer seconds or EventTime",
            kind(other)
        ))),
    }
}

/// The text of a msgpack str that is valid UTF-8.
pub fn str_of<'a>(v: &ValueRef<'a>) -> Option<&'a str> {
    match v {
        ValueRef::String(s) => s.into_str(),
        _ => None,
    }
}

fn kind(v: &ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Nil => "nil",
        ValueRef::Boolean(_) => "a boolean",
        ValueRef::Integer(_) => "an integer",
        ValueRef::F32(_) | ValueRef::F64(_) => "a float",
        ValueRef::String(_) => "a string",
        ValueRef::Binary(_) => "binary",
        ValueRef::Array(_) => "an array",
        ValueRef::Map(_) => "a map",
        ValueRef::Ext(..) => "an extension value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;
    use std::io::Write;

    fn encode(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    fn event_time(secs: u32, nanos: u32) -> Value {
        let mut b = secs.to_be_bytes().to_vec();
        b.extend_from_slice(&nanos.to_be_bytes());
        Value::Ext(0, b)
    }

    fn record(log: &str) -> Value {
        Value::Map(vec![(Value::from("log"), Value::from(log))])
    }

    /// Collects (tag, time, log) of each entry and the largest value held.
    #[derive(Default)]
    struct Collect {
        got: Vec<Entry>,
        largest: usize,
    }

    impl Entries for Collect {
        fn hold(&mut self, hold: Hold) -> Result<(), DecodeError> {
            if let Hold::Value(b) = hold {
                self.largest = self.largest.max(b);
            }
            Ok(())
        }

        fn entry(&mut self, tag: &str, time: u64, record: Record<'_>) -> Result<(), DecodeError> {
            let log = record
                .iter()
                .find(|(k, _)| str_of(k) == Some("log"))
                .and_then(|(_, v)| str_of(v))
                .unwrap_or_default()
                .to_owned();
            self.got.push((tag.to_owned(), time, log));
            Ok(())
        }
    }

    fn chunk(id: &str) -> Value {
        Value::Map(vec![(Value::from("chunk"), Value::from(id))])
    }

    /// (tag, time, log) of one entry.
    type Entry = (String, u64, String);

    fn decode(v: &Value) -> Result<(Vec<Entry>, Decoded), DecodeError> {
        let mut out = Collect::default();
        let decoded = message(&encode(v), 1 << 20, &mut out)?;
        Ok((out.got, decoded))
    }

    #[test]
    fn message_mode_with_integer_time_and_chunk() {
        let (got, decoded) = decode(&Value::Array(vec![
            "app".into(),
            Value::from(1_700_000_000u64),
            record("hi"),
            chunk("c1"),
        ]))
        .unwrap();
        assert_eq!(
            got,
            vec![("app".into(), 1_700_000_000 * 1_000_000_000, "hi".into())]
        );
        assert_eq!(decoded.chunk.as_deref(), Some("c1"));
    }

    #[test]
    fn forward_mode_with_event_time_keeps_nanoseconds() {
        let (got, decoded) = decode(&Value::Array(vec![
            "docker.web".into(),
            Value::Array(vec![
                Value::Array(vec![event_time(1_700_000_000, 123_456_789), record("a")]),
                Value::Array(vec![event_time(1_700_000_001, 0), record("b")]),
            ]),
            chunk("c2"),
        ]))
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, 1_700_000_000_123_456_789);
        assert_eq!(got[1].2, "b");
        assert_eq!(decoded.entries, 2);
        assert_eq!(decoded.chunk.as_deref(), Some("c2"));
    }

    fn packed(n: usize) -> Vec<u8> {
        let mut stream = Vec::new();
        for i in 0..n {
            stream.extend(encode(&Value::Array(vec![
                event_time(1_700_000_000, i as u32),
                record(&format!("line {i}")),
            ])));
        }
        stream
    }

    #[test]
    fn packed_forward_as_bin_and_as_str() {
        let stream = packed(3);
        let (got, _) = decode(&Value::Array(vec![
            "p".into(),
            Value::Binary(stream.clone()),
        ]))
        .unwrap();
        assert_eq!(
            got.iter().map(|g| g.2.as_str()).collect::<Vec<_>>(),
            ["line 0", "line 1", "line 2"]
        );
        // Old clients send the stream as a msgpack str (raw bytes).
        let mut bytes = vec![0xdb];
        bytes.extend((stream.len() as u32).to_be_bytes());
        bytes.extend(&stream);
        let mut frame = vec![0x92, 0xa1, b'p'];
        frame.extend(bytes);
        let mut out = Collect::default();
        message(&frame, 1 << 20, &mut out).unwrap();
        assert_eq!(out.got.len(), 3);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn compressed_packed_forward_reads_every_gzip_member() {
        let stream = packed(4);
        // Two members, cut between whole entries.
        let half = {
            let mut framer = Framer::default();
            let a = framer.next(&stream).unwrap().unwrap().len;
            let b = framer.next(&stream[a..]).unwrap().unwrap().len;
            a + b
        };
        let mut members = gzip(&stream[..half]);
        members.extend(gzip(&stream[half..]));
        let option = Value::Map(vec![
            (Value::from("compressed"), Value::from("gzip")),
            (Value::from("chunk"), Value::from("z")),
        ]);
        let (got, decoded) = decode(&Value::Array(vec![
            "z".into(),
            Value::Binary(members),
            option,
        ]))
        .unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[3].2, "line 3");
        assert_eq!(decoded.chunk.as_deref(), Some("z"));
    }

    #[test]
    fn a_gzip_bomb_is_refused_at_the_limit() {
        let zeros = gzip(&vec![0u8; 4 << 20]);
        let option = Value::Map(vec![(Value::from("compressed"), Value::from("gzip"))]);
        let bytes = encode(&Value::Array(vec![
            "z".into(),
            Value::Binary(zeros),
            option,
        ]));
        let err = message(&bytes, 1 << 20, &mut Collect::default()).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge(_)), "{err}");
    }

    #[test]
    fn memory_is_asked_for_one_entry_at_a_time() {
        let entries: Vec<Value> = (0..100)
            .map(|i| Value::Array(vec![event_time(1, i), record("x")]))
            .collect();
        let bytes = encode(&Value::Array(vec!["t".into(), Value::Array(entries)]));
        let mut out = Collect::default();
        message(&bytes, 1 << 20, &mut out).unwrap();
        assert_eq!(out.got.len(), 100);
        // [time, {"log": "x"}]: the array, the time, the map, a key, a value.
        assert_eq!(out.largest, 5 * BYTES_PER_VALUE);
    }

    #[test]
    fn a_heartbeat_has_no_entries() {
        assert_eq!(decode(&Value::Nil).unwrap().1, Decoded::default());
    }

    #[test]
    fn wrong_shapes_are_refused_with_the_reason() {
        for (v, reason) in [
            (Value::from(5), "expected an array"),
            (
                Value::Array(vec![Value::from(1), Value::from(2)]),
                "the tag is an integer",
            ),
            (
                Value::Array(vec!["t".into(), Value::from("x"), Value::from(3)]),
                "the option is an integer",
            ),
            (
                Value::Array(vec!["t".into(), Value::from(1), Value::from(3)]),
                "the record is an integer",
            ),
            (
                Value::Array(vec!["t".into(), Value::from(true), record("x")]),
                "the time is a boolean",
            ),
            (
                Value::Array(vec!["t".into(), Value::Array(vec![Value::from(1)])]),
                "an entry is an integer",
            ),
        ] {
            let err = decode(&v).unwrap_err().to_string();
            assert!(err.contains(reason), "{err} lacks {reason}");
        }
    }
}
