//! What kind of file system a path lives on, for the decisions that depend
//! on it: whether a directory is in RAM (the RAM journal and checkpoints
//! may live there without wearing the storage), and whether inotify sees
//! every change made to files on it (so the file source may poll rarely).

use std::io;
use std::path::Path;

/// statfs magic numbers (linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;
const EXT4_MAGIC: i64 = 0xef53;
const XFS_MAGIC: i64 = 0x5846_5342;
const BTRFS_MAGIC: i64 = 0x9123_683e;
const F2FS_MAGIC: i64 = 0xf2f5_2010;

/// The statfs type of `path`'s nearest existing ancestor.
fn kind(path: &Path) -> io::Result<i64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or_else(|| Path::new("/"));
    let stat = rustix::fs::statfs(existing)?;
    // A 32-bit C library keeps the type in an `int`: magic numbers above
    // 0x7fffffff (btrfs, f2fs, ramfs) come out negative; the low 32 bits
    // are the magic on every word size.
    Ok(i64::from(stat.f_type as u32))
}

/// Whether `dir` (or its nearest existing ancestor) lives in RAM.
pub fn in_ram(dir: &Path) -> io::Result<bool> {
    let kind = kind(dir)?;
    Ok(kind == TMPFS_MAGIC || kind == RAMFS_MAGIC)
}

/// Creates `dir` when it would live in RAM; `Ok(false)`, creating nothing,
/// when it would wear the storage instead.
pub fn prepare_ram_dir(dir: &Path) -> io::Result<bool> {
    if !in_ram(dir)? {
        return Ok(false);
    }
    std::fs::create_dir_all(dir)?;
    Ok(true)
}

/// Whether every write to a file under `dir` reaches an inotify watch on
/// it: true for the local file systems the kernel itself writes (ext4,
/// xfs, btrfs, f2fs, tmpfs); false for network, FUSE and overlay file
/// systems, where changes made elsewhere (another host, a lower layer) go
/// unseen, and when the type cannot be read.
pub fn inotify_sees_every_change(dir: &Path) -> bool {
    matches!(
        kind(dir),
        Ok(TMPFS_MAGIC | RAMFS_MAGIC | EXT4_MAGIC | XFS_MAGIC | BTRFS_MAGIC | F2FS_MAGIC)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_shm_is_in_ram_and_a_missing_child_takes_its_parents_kind() {
        let shm = Path::new("/dev/shm");
        if !shm.exists() {
            return;
        }
        assert!(in_ram(&shm.join("no/such/dir")).unwrap());
        assert!(inotify_sees_every_change(shm));
    }

    #[test]
    fn proc_is_neither_in_ram_nor_trusted_for_inotify() {
        assert!(!in_ram(Path::new("/proc/self")).unwrap());
        assert!(!inotify_sees_every_change(Path::new("/proc/self")));
    }
}
