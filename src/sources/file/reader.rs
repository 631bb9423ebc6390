//! The open descriptor of one tailed file: plain, or a gzip archive
//! decompressed as it is read. A rotated-away file stays readable through it
//! until released. Offsets are positions in the (decompressed) content.
//! A file whose descriptor was closed is opened again by identity (device
//! and inode), never by name alone: [`open_by_identity`].

use super::descriptors::OpenFailure;
use super::identity::Fingerprint;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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
    /// Opens `path`, through a gzip decoder when `gzip` (a rotated file is
    /// read as what it was found as, whatever its new name).
    pub fn open_as(path: &Path, gzip: bool) -> std::io::Result<Reader> {
        let file = open_noatime(path)?;
        Ok(if gzip {
            Reader::Gzip(Box::new(MultiGzDecoder::new(file)))
        } else {
            Reader::Plain(file)
        })
    }

    fn file(&self) -> &File {
        match self {
            Reader::Plain(file) => file,
            Reader::Gzip(gz) => gz.get_ref(),
        }
    }

    /// Device and inode of the open file.
    pub fn inode(&self) -> std::io::Result<(u64, u64)> {
        let meta = self.file().metadata()?;
        Ok((meta.dev(), meta.ino()))
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

/// Opens the file with device and inode `inode`: under one of `names`, else
/// found by inode beside one of them (a rename in the same directory).
/// `Ok(None)` when no name leads to it any more (removed, or moved out of
/// those directories). Any other failure (out of descriptors, no permission)
/// is an error: it says nothing about whether the file is still there.
pub fn open_by_identity(
    names: &[&Path],
    inode: (u64, u64),
    gzip: bool,
) -> std::io::Result<Option<(Reader, PathBuf)>> {
    for name in names {
        if let Some(reader) = open_if_inode(name, inode, gzip)? {
            return Ok(Some((reader, name.to_path_buf())));
        }
    }
    let mut searched: Vec<&Path> = Vec::new();
    for dir in names.iter().filter_map(|n| n.parent()) {
        if searched.contains(&dir) {
            continue;
        }
        searched.push(dir);
        if let Some(found) = find_by_inode(dir, inode.0, inode.1)? {
            if let Some(reader) = open_if_inode(&found, inode, gzip)? {
                return Ok(Some((reader, found)));
            }
        }
    }
    Ok(None)
}

/// Opens `path` if it (still) is the file `inode`. Looked at first, so a
/// name that now leads to another file the agent may not read is passed
/// over, not an error.
fn open_if_inode(path: &Path, inode: (u64, u64), gzip: bool) -> std::io::Result<Option<Reader>> {
    match std::fs::metadata(path) {
        Ok(meta) if (meta.dev(), meta.ino()) != inode => return Ok(None),
        Ok(_) => {}
        Err(e) if OpenFailure::of(&e) == OpenFailure::Missing => return Ok(None),
        Err(e) => return Err(e),
    }
    let reader = match Reader::open_as(path, gzip) {
        Ok(r) => r,
        Err(e) if OpenFailure::of(&e) == OpenFailure::Missing => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok((reader.inode()? == inode).then_some(reader))
}

/// The regular file in `dir` with this device and inode (following
/// symlinks). A missing directory holds none; entries that cannot be looked
/// at are skipped; failing to list the directory is an error.
pub fn find_by_inode(dir: &Path, dev: u64, ino: u64) -> std::io::Result<Option<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if OpenFailure::of(&e) == OpenFailure::Missing => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() && meta.dev() == dev && meta.ino() == ino {
            return Ok(Some(path));
        }
    }
    Ok(None)
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
        let mut reader = Reader::open_as(&path, false).unwrap();
        assert_eq!(reader.read(&mut buf).unwrap(), 8);
        assert_eq!(
            std::fs::metadata(&path).unwrap().accessed().unwrap(),
            before,
            "the tailer's read did not dirty the inode"
        );
    }

    fn inode_of(path: &Path) -> (u64, u64) {
        let m = std::fs::metadata(path).unwrap();
        (m.dev(), m.ino())
    }

    #[test]
    fn a_file_is_opened_again_by_inode_never_by_name_alone() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, b"first\n").unwrap();
        let inode = inode_of(&log);
        let (_, at) = open_by_identity(&[&log], inode, false).unwrap().unwrap();
        assert_eq!(at, log);
        // Renamed beside its name, and the name reused by another file.
        let rotated = dir.path().join("app.log.1");
        std::fs::rename(&log, &rotated).unwrap();
        std::fs::write(&log, b"second\n").unwrap();
        let (mut reader, at) = open_by_identity(&[&log], inode, false).unwrap().unwrap();
        assert_eq!(at, rotated, "found beside its old name by inode");
        let mut text = String::new();
        let mut buf = [0u8; 64];
        let n = reader.read(&mut buf).unwrap();
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        assert_eq!(text, "first\n");
        std::fs::remove_file(&rotated).unwrap();
        assert!(
            open_by_identity(&[&log], inode, false).unwrap().is_none(),
            "gone"
        );
        let moved_dir = dir.path().join("gone");
        assert!(open_by_identity(&[&moved_dir.join("x.log")], inode, false)
            .unwrap()
            .is_none());
    }
}
