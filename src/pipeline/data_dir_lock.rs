//! One agent per data directory: an exclusive `flock` on the data
//! directory itself, taken at start and held for the life of the process
//! (the kernel drops it when the process dies, `kill -9` included, so a
//! stale lock cannot exist). A second agent on the same directory would
//! read every file from the same checkpoints and ship it twice: it is
//! refused at start, naming the directory and, from `/proc/locks`, the PID
//! of the holder.
//!
//! Locking the directory (opened read-only) rather than a lock file inside
//! it creates and writes nothing: it works on a directory remounted
//! read-only, costs the flash nothing, and holds no file open for writing
//! (a read-only remount stays possible).

use rustix::fs::{FlockOperation, Mode, OFlags};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DataDirLockError {
    #[error(
        "data directory {dir} is in use by another shipd{holder}: two agents on one data \
         directory would ship every line twice; stop the other agent or give this one its own \
         SHIPD_DATA_DIR (data_dir)"
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock data directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: OwnedFd,
}

impl DataDirLock {
    /// Locks `dir` (which must exist).
    pub fn acquire(dir: &Path) -> Result<Self, DataDirLockError> {
        let io = |source: std::io::Error| DataDirLockError::Io {
            dir: dir.to_owned(),
            source,
        };
        // Not inherited by children (journalctl): the lock ends with shipd.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let file = rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| io(e.into()))?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(DataDirLockError::Held {
                dir: dir.to_owned(),
                holder: holder_pid(&file).map_or_else(String::new, |pid| format!(" (pid {pid})")),
            }),
            Err(e) => Err(io(e.into())),
        }
    }
}

/// The PID holding a `flock` on `file`, from `/proc/locks`, if readable.
fn holder_pid(file: &impl AsFd) -> Option<u32> {
    let stat = rustix::fs::fstat(file).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(
        &locks,
        rustix::fs::major(stat.st_dev),
        rustix::fs::minor(stat.st_dev),
        stat.st_ino,
    )
}

/// Parses lines like `1: FLOCK  ADVISORY  WRITE 28081 fe:00:10010786 0 EOF`
/// (device numbers in hex, inode in decimal).
fn holder_in(locks: &str, major: u32, minor: u32, ino: u64) -> Option<u32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, "FLOCK", _, _, pid, id, ..] = fields.as_slice() else {
            return None;
        };
        let mut parts = id.split(':');
        let maj = u32::from_str_radix(parts.next()?, 16).ok()?;
        let min = u32::from_str_radix(parts.next()?, 16).ok()?;
        let inode: u64 = parts.next()?.parse().ok()?;
        (maj == major && min == minor && inode == ino)
            .then(|| pid.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = DataDirLock::acquire(dir.path()).unwrap();
        // A second open file description conflicts like a second process.
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
        drop(held);
        assert!(DataDirLock::acquire(dir.path()).is_ok(), "released");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing created"
        );
    }

    #[test]
    fn proc_locks_lines_are_matched_by_device_and_inode() {
        let locks = "1: FLOCK  ADVISORY  WRITE 28081 fe:00:10010786 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 99 fe:00:5 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 4242 08:11:5 0 EOF\n";
        assert_eq!(holder_in(locks, 0xfe, 0, 10010786), Some(28081));
        assert_eq!(holder_in(locks, 8, 0x11, 5), Some(4242));
        assert_eq!(
            holder_in(locks, 0xfe, 0, 5),
            None,
            "a POSIX lock is not ours"
        );
    }
}
