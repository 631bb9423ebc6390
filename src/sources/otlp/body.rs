//! Request bodies of the OTLP receiver: read chunk by chunk as the client
//! sends them ([`BodyReader`], the same for HTTP and gRPC), and
//! decompressed ([`decompress`]) no further than the receiver's limit,
//! asking for memory before the output grows. Reading stops when the
//! caller stops asking, so an unread body is held by the kernel and the
//! client, never here.

use super::Refusal;
use axum::body::{Body, BodyDataStream, Bytes};
use std::io::Read;
use tokio_stream::StreamExt;

/// How a body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// The encoding named by a `Content-Encoding` or `grpc-encoding`
    /// header; `None` means identity.
    pub fn from_header(name: Option<&str>) -> Result<Self, Refusal> {
        let name = name.unwrap_or("identity").trim().to_ascii_lowercase();
        match name.as_str() {
            "identity" | "" => Ok(Encoding::Identity),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            "zstd" => Ok(Encoding::Zstd),
            other => Err(Refusal::Unsupported(format!(
                "content encoding `{other}` is not supported; use gzip, zstd or none"
            ))),
        }
    }
}

/// A request body, read as it arrives.
pub struct BodyReader {
    chunks: BodyDataStream,
    /// What the last chunk held beyond what was asked for.
    pending: Bytes,
}

impl BodyReader {
    pub fn new(body: Body) -> Self {
        BodyReader {
            chunks: body.into_data_stream(),
            pending: Bytes::new(),
        }
    }

    /// The next piece of the body; `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, Refusal> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        loop {
            match self.chunks.next().await {
                None => return Ok(None),
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => return Ok(Some(chunk)),
                Some(Err(e)) => {
                    return Err(Refusal::Malformed(format!(
                        "the request body could not be read: {e}"
                    )))
                }
            }
        }
    }

    /// Appends the next `n` bytes of the body to `out`; `false` when the
    /// body ended first.
    pub async fn read_exact(&mut self, n: usize, out: &mut Vec<u8>) -> Result<bool, Refusal> {
        let mut missing = n;
        while missing > 0 {
            let Some(mut chunk) = self.next_chunk().await? else {
                return Ok(false);
            };
            if chunk.len() > missing {
                self.pending = chunk.split_off(missing);
            }
            missing -= chunk.len();
            out.extend_from_slice(&chunk);
        }
        Ok(true)
    }
}

/// Decompressed bytes are produced in steps of this size.
const STEP: usize = 64 << 10;

/// Decompresses `wire` into at most `max` bytes. `hold(bytes)` is asked
/// before the output grows, with all that is held then (the compressed
/// body and the output); the compressed body is given up at the end.
pub fn decompress(
    encoding: Encoding,
    wire: Vec<u8>,
    max: usize,
    mut hold: impl FnMut(usize) -> Result<(), Refusal>,
) -> Result<Vec<u8>, Refusal> {
    let mut decoder: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => return Ok(wire),
        Encoding::Gzip => Box::new(flate2::read::GzDecoder::new(&wire[..])),
        Encoding::Zstd => Box::new(
            zstd::stream::read::Decoder::new(&wire[..])
                .map_err(|e| Refusal::Malformed(format!("body is not valid zstd: {e}")))?,
        ),
    };
    let name = match encoding {
        Encoding::Gzip => "gzip",
        _ => "zstd",
    };
    let mut out: Vec<u8> = Vec::new();
    let mut step = vec![0u8; STEP];
    loop {
        let n = match decoder.read(&mut step) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Refusal::Malformed(format!("body is not valid {name}: {e}"))),
        };
        let need = out.len() + n;
        if need > max {
            return Err(Refusal::TooLarge(format!(
                "the decompressed body exceeds this receiver's max_message_bytes ({} bytes)",
                max
            )));
        }
        if need > out.capacity() {
            let grown = need.max(2 * out.capacity()).min(max);
            hold(wire.len() + grown)?;
            out.reserve_exact(grown - out.len());
        }
        out.extend_from_slice(&step[..n]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn decompression_asks_before_growing_and_stops_at_the_limit() {
        let data = vec![7u8; 1 << 20];
        let wire = gzip(&data);
        let wire_len = wire.len();
        let mut asked = Vec::new();
        let out = decompress(Encoding::Gzip, wire.clone(), 1 << 20, |held| {
            asked.push(held);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, data);
        assert!(asked.windows(2).all(|w| w[0] < w[1]), "{asked:?}");
        assert_eq!(asked.last(), Some(&(wire_len + (1 << 20))));
        let over = decompress(Encoding::Gzip, wire.clone(), (1 << 20) - 1, |_| Ok(()));
        assert!(matches!(over, Err(Refusal::TooLarge(_))), "{over:?}");
        let refused = decompress(Encoding::Gzip, wire, 1 << 20, |_| Err(Refusal::Busy));
        assert_eq!(refused, Err(Refusal::Busy));
        let zstd = zstd::encode_all(&data[..], 1).unwrap();
        assert_eq!(
            decompress(Encoding::Zstd, zstd, 1 << 20, |_| Ok(())).unwrap(),
            data
        );
        assert!(matches!(
            decompress(Encoding::Gzip, b"not gzip".to_vec(), 100, |_| Ok(())),
            Err(Refusal::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn bodies_are_read_in_exact_pieces_across_chunks() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"")),
            Ok(Bytes::from_static(b"defgh")),
        ];
        let body = Body::from_stream(tokio_stream::iter(chunks));
        let mut reader = BodyReader::new(body);
        let mut out = Vec::new();
        assert!(reader.read_exact(4, &mut out).await.unwrap());
        assert_eq!(out, b"abcd");
        assert_eq!(
            reader.next_chunk().await.unwrap().as_deref(),
            Some(&b"efgh"[..])
        );
        assert!(!reader.read_exact(1, &mut out).await.unwrap());
    }
}
