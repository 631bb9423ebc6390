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

/// Opens `path` for reading without updating its access time where the
/// kernel allows it (the owner, or CAP_FOWNER): on a `relatime` mount each
/// read of a growing log would otherwise dirty its inode, a flash write
/// charged to shipd. Falls back to a plain open.
fn open_noatime(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(noatime)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => File::open(path),
        opened => opened,
    }
}

impl Reader {
    pub fn open(path: &Path) -> std::io::Result<Reader> {
        let file = open_noatime(path)?;
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
            Reader::Gzip(_) => {
                Fingerprint::read_from(&mut MultiGzDecoder::new(open_noatime(path)?))
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// Sets the access time an hour before the modification time, where
    /// `relatime` updates it at the next read.
    fn stale_atime(path: &Path) -> SystemTime {
        let old = SystemTime::now() - Duration::from_secs(3600);
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.set_times(std::fs::FileTimes::new().set_accessed(old))
            .unwrap();
        std::fs::metadata(path).unwrap().accessed().unwrap()
    }

    #[test]
    fn reading_a_log_leaves_its_access_time_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, b"one\ntwo\n").unwrap();
        let mut buf = [0u8; 64];

        let before = stale_atime(&path);
        assert_eq!(File::open(&path).unwrap().read(&mut buf).unwrap(), 8);
        assert_ne!(
            std::fs::metadata(&path).unwrap().accessed().unwrap(),
            before,
            "control: a plain read updates the access time on this mount (relatime)"
        );

        let before = stale_atime(&path);
        let mut reader = Reader::open(&path).unwrap();
        assert_eq!(reader.read(&mut buf).unwrap(), 8);
        assert_eq!(
            std::fs::metadata(&path).unwrap().accessed().unwrap(),
            before,
            "the tailer's read did not dirty the inode"
        );
    }
}
