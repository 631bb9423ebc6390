//! Per-file decoding between the line splitter and multiline: plain lines
//! pass through, container runtime formats (docker `json-file`, CRI) are
//! unwrapped into their message, stream and timestamp, and their partial
//! lines reassembled.
//!
//! A [`Decoder`] may hold the first parts of a reassembled line;
//! [`Decoder::held_from`] tells where, so the checkpoint never passes them.
//! It never reads files.

use super::lines::Line;
use crate::sources::containers::{cri::CriDecoder, docker::DockerDecoder};
use bytes::Bytes;

/// How the lines of a file are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Each line is one message.
    #[default]
    Plain,
    /// Docker `json-file`: `{"log":"...","stream":"stdout","time":"..."}`.
    Docker,
    /// CRI (containerd, CRI-O): `TIMESTAMP STREAM P|F MESSAGE`.
    Cri,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(LogFormat::Plain),
            "docker" => Ok(LogFormat::Docker),
            "cri" => Ok(LogFormat::Cri),
            other => Err(format!("`{other}`: expected plain, docker or cri")),
        }
    }
}

/// One decoded message of a file, before multiline aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub bytes: Bytes,
    /// Offset of the first byte of the first line it came from.
    pub start: u64,
    /// Offset just past the last line it came from.
    pub end: u64,
    pub truncated: bool,
    /// Event time written by the container runtime.
    pub time_unix_nano: Option<u64>,
    /// `stdout` or `stderr`, for container logs.
    pub stream: Option<&'static str>,
}

impl Message {
    pub fn plain(bytes: Bytes, start: u64, end: u64, truncated: bool) -> Self {
        Message {
            bytes,
            start,
            end,
            truncated,
            time_unix_nano: None,
            stream: None,
        }
    }
}

impl From<Line> for Message {
    fn from(line: Line) -> Self {
        Message::plain(line.bytes, line.start, line.end, line.truncated)
    }
}

/// The decoder of one file.
#[derive(Debug)]
pub enum Decoder {
    Plain,
    Docker(DockerDecoder),
    Cri(CriDecoder),
}

impl Decoder {
    /// A decoder for `format`; reassembled lines are capped at `max_bytes`.
    pub fn new(format: LogFormat, max_bytes: usize) -> Self {
        match format {
            LogFormat::Plain => Decoder::Plain,
            LogFormat::Docker => Decoder::Docker(DockerDecoder::new(max_bytes)),
            LogFormat::Cri => Decoder::Cri(CriDecoder::new(max_bytes)),
        }
    }

    /// Decodes one line; complete messages go to `out`. Returns `false` when
    /// the line was not in the format (it is then passed on as it is).
    pub fn decode(&mut self, line: Line, out: &mut Vec<Message>) -> bool {
        match self {
            Decoder::Plain => {
                out.push(line.into());
                true
            }
            Decoder::Docker(d) => d.decode(line, out),
            Decoder::Cri(d) => d.decode(line, out),
        }
    }

    /// Start offset of the earliest held partial line.
    pub fn held_from(&self) -> Option<u64> {
        match self {
            Decoder::Plain => None,
            Decoder::Docker(d) => d.held_from(),
            Decoder::Cri(d) => d.held_from(),
        }
    }

    /// Emits held partial lines as they are (the file is being released).
    pub fn take_held(&mut self, out: &mut Vec<Message>) {
        match self {
            Decoder::Plain => {}
            Decoder::Docker(d) => d.take_held(out),
            Decoder::Cri(d) => d.take_held(out),
        }
    }
}
