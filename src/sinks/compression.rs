//! Request body compression for OTLP/HTTP (reqwest does not compress
//! requests). gRPC compression is tonic's job.

use std::io::Write;

/// A body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The `Content-Encoding` header value, if any.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }

    /// Compresses `body` (level 1: speed matters more than ratio on a Pi).
    pub fn compress(self, body: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Compression::None => Ok(body.to_vec()),
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::fast(),
                );
                enc.write_all(body)?;
                enc.finish()
            }
            Compression::Zstd => ZSTD.with(|cell| {
                let mut slot = cell.borrow_mut();
                let compressor = match &mut *slot {
                    Some(c) => c,
                    None => slot.insert(zstd::bulk::Compressor::new(1)?),
                };
                compressor.compress(body)
            }),
        }
    }
}

thread_local! {
    /// One zstd context per thread, kept between requests rather than made
    /// (its tables allocated and cleared) for every request body.
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            other => Err(format!(
                "unknown compression `{other}` (expected gzip, zstd or none)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_and_zstd_round_trip() {
        let body = b"hello hello hello hello".repeat(100);
        let gz = Compression::Gzip.compress(&body).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let zs = Compression::Zstd.compress(&body).unwrap();
        assert_eq!(zstd::decode_all(&zs[..]).unwrap(), body);
        let other = b"another body".repeat(50);
        let again = Compression::Zstd.compress(&other).unwrap();
        assert_eq!(
            zstd::decode_all(&again[..]).unwrap(),
            other,
            "a reused context starts each body afresh"
        );
        assert!(gz.len() < body.len() && zs.len() < body.len());
    }
}
