//! The open descriptor of one tailed file: plain, or a gzip archive
//! decompressed as it is read. A rotated-away file stays readable through it
//! until released. Offsets are positions in the (decompressed) content.

use super::identity::Fingerprint;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Reads one file's content from a position onwards.
pub enum Reader {
    Plain(File),
    Gzip(Box<MultiGzDecoder<File>>),
}

/// `*.gz`: read through a gzip decoder.
pub fn is_compressed(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

impl Reader {
    pub fn open(path: &Path) -> std::io::Result<Reader> {
        let file = File::open(path)?;
        Ok(if is_compressed(path) {
            Reader::Gzip(Box::new(MultiGzDecoder::new(file)))
        } else {
            Reader::Plain(file)
        })
    }

    pub fn is_compressed(&self) -> bool {
        matches!(self, Reader::Gzip(_))
    }

    /// The fingerprint of the content's first line; `path` reopens an archive
    /// so this reader's position is not disturbed.
    pub fn fingerprint(&self, path: &Path) -> std::io::Result<Option<Fingerprint>> {
        match self {
            Reader::Plain(file) => Fingerprint::read_at(file),
            Reader::Gzip(_) => Fingerprint::read_from(&mut MultiGzDecoder::new(File::open(path)?)),
        }
    }

    /// Moves to `offset` of a reader still at the start of the content;
    /// returns where it ended up (an archive may be shorter).
    pub fn skip_to(&mut self, offset: u64) -> std::io::Result<u64> {
        match self {
            Reader::Plain(file) => file.seek(SeekFrom::Start(offset)),
            Reader::Gzip(gz) => std::io::copy(&mut gz.by_ref().take(offset), &mut std::io::sink()),
        }
    }

    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Reader::Plain(file) => file.read(buf),
            Reader::Gzip(gz) => gz.read(buf),
        }
    }

    /// Current size of a plain file (through the descriptor, so it follows
    /// the file across renames); `None` for archives.
    pub fn len(&self) -> std::io::Result<Option<u64>> {
        match self {
            Reader::Plain(file) => Ok(Some(file.metadata()?.len())),
            Reader::Gzip(_) => Ok(None),
        }
    }
}
