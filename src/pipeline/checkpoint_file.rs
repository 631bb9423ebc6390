//! The checkpoint state file on disk, shaped to spare flash.
//!
//! The file holds two slots of equal size, both inside one 4 KiB page while
//! the state is small. Each write goes *in place* to the slot the previous
//! write did not use: a header (magic, generation, length, CRC32C) and the
//! JSON state. Reading takes the valid slot with the highest generation, so
//! a write torn by a power cut falls back to the one before it.
//!
//! Why not write-temp + fsync + rename every time: the kernel charges every
//! new file two to three fresh 4 KiB pages (data, directory, inode), so a
//! checkpoint every 5 s costs ~1 MiB of flash writes per 10 minutes. An
//! in-place write re-dirties the same cached page, which the kernel writes
//! back once per `dirty_expire` (30 s by default) however often it changes:
//! a process crash (kill -9) loses nothing, since the page cache survives
//! it, and a power cut rolls positions back by at most that long, which
//! means re-reading (duplicates), never skipping. A synced write forces
//! the page out where a position must survive power loss at once (a newly
//! seen source, shutdown); the file is created and resized by
//! write-temp + fsync + rename.
//!
//! The file is opened for each write and closed after it, never held open
//! for writing: an operator can remount the data directory read-only
//! (which the kernel refuses while a file on it is open for writing), and
//! a file removed behind the agent's back is simply created again.
//! A file with no intact slot is [`SlotFileError::Damaged`]; the caller
//! moves it aside ([`move_aside`]) for inspection.
//!
//! The same format serves the copy kept in RAM (tmpfs, see
//! [`crate::pipeline::checkpoint`]): such a file counts no wear and is
//! never synced. Generations are given by the caller, so that the newest
//! state of the two files can be told apart.

use crate::telemetry;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 8] = b"SHIPCKP1";
/// magic, generation (u64), length (u32), CRC32C (u32) of generation,
/// length and payload.
const HEADER: usize = 8 + 8 + 4 + 4;
/// Two slots of this size share one 4 KiB page.
const MIN_SLOT: usize = 2048;

/// Failure to read or write the slot file.
#[derive(Debug, thiserror::Error)]
pub enum SlotFileError {
    #[error("cannot read checkpoint file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint file {path} has no intact slot (both damaged)")]
    Damaged { path: PathBuf },
    #[error("cannot write checkpoint file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The slot file: where the next write goes.
#[derive(Debug)]
pub struct SlotFile {
    path: PathBuf,
    /// The file exists with slots of `slot_size`; else the next write
    /// creates it.
    created: bool,
    slot_size: usize,
    /// Slot (0 or 1) holding the newest state; the next write takes the other.
    newest_slot: usize,
    generation: u64,
    /// A copy in RAM (tmpfs): no wear to count, nothing to sync.
    in_ram: bool,
}

/// What [`SlotFile::open`] found.
#[derive(Debug)]
pub struct Loaded {
    pub file: SlotFile,
    /// The newest intact payload; `None` when there is no file yet.
    pub payload: Option<Vec<u8>>,
}

impl SlotFile {
    /// Opens `path` (absent means empty) and returns its newest intact
    /// payload. `in_ram` marks a file on tmpfs.
    pub fn open(path: &Path, in_ram: bool) -> Result<Loaded, SlotFileError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    file: SlotFile::absent(path, in_ram),
                    payload: None,
                });
            }
            Err(source) => {
                return Err(SlotFileError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let slot_size = bytes.len() / 2;
        let slots = [
            decode_slot(&bytes[..slot_size]),
            decode_slot(&bytes[slot_size..]),
        ];
        let newest = slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.map(|(generation, payload)| (i, generation, payload)))
            .max_by_key(|&(_, generation, _)| generation);
        let Some((newest_slot, generation, payload)) = newest else {
            return Err(SlotFileError::Damaged {
                path: path.to_owned(),
            });
        };
        // A slot never written yet is all zeros: empty, not damaged.
        let damaged = |half: &[u8], slot: &Option<(u64, &[u8])>| {
            slot.is_none() && half.iter().any(|&b| b != 0)
        };
        if damaged(&bytes[..slot_size], &slots[0]) || damaged(&bytes[slot_size..], &slots[1]) {
            tracing::warn!(path = %path.display(), generation,
                "one checkpoint slot is damaged (a write cut short); using the other");
        }
        Ok(Loaded {
            payload: Some(payload.to_vec()),
            file: SlotFile {
                path: path.to_owned(),
                created: true,
                slot_size,
                newest_slot,
                generation,
                in_ram,
            },
        })
    }

    /// A file not written yet at `path`: the first write creates it
    /// (replacing whatever is there).
    pub fn absent(path: &Path, in_ram: bool) -> SlotFile {
        SlotFile {
            path: path.to_owned(),
            created: false,
            slot_size: MIN_SLOT,
            newest_slot: 0,
            generation: 0,
            in_ram,
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generation of the newest state written or read.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Writes `payload` as `generation` (higher than any before) into the
    /// slot not holding the newest state; with `sync`, forces it to storage
    /// (nothing to force in RAM). A failed write leaves the newest state
    /// where it was: the next write goes to the same slot again.
    pub fn write(
        &mut self,
        generation: u64,
        payload: &[u8],
        sync: bool,
    ) -> Result<(), SlotFileError> {
        let slot = encode_slot(generation, payload);
        let target = 1 - self.newest_slot;
        let in_place = self.created && slot.len() <= self.slot_size;
        let opened = match in_place {
            true => match std::fs::OpenOptions::new().write(true).open(&self.path) {
                Ok(file) => Some(file),
                // Removed behind our back: created again below.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(self.write_error(e)),
            },
            false => None,
        };
        match opened {
            Some(file) => {
                let offset = target * self.slot_size;
                file.write_all_at(&slot, offset as u64)
                    .map_err(|source| self.write_error(source))?;
                self.count_written(slot.len());
                if sync && !self.in_ram {
                    file.sync_data()
                        .map_err(|source| self.write_error(source))?;
                    telemetry::fsyncs(1);
                }
            }
            None => self.recreate(target, &slot)?,
        }
        self.newest_slot = target;
        self.generation = generation;
        Ok(())
    }

    fn count_written(&self, bytes: usize) {
        if !self.in_ram {
            telemetry::disk_written("checkpoint", bytes as u64);
        }
    }

    /// Creates the file (or grows its slots) by write-temp + fsync + rename,
    /// `slot` in slot `target` and the other slot empty.
    fn recreate(&mut self, target: usize, slot: &[u8]) -> Result<(), SlotFileError> {
        let slot_size = slot.len().next_power_of_two().max(MIN_SLOT);
        let mut image = vec![0u8; 2 * slot_size];
        let offset = target * slot_size;
        image[offset..offset + slot.len()].copy_from_slice(slot);
        let tmp = self.path.with_extension("tmp");
        let err = |source| self.write_error(source);
        let mut file = File::create(&tmp).map_err(err)?;
        file.write_all(&image).map_err(err)?;
        if !self.in_ram {
            file.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if !self.in_ram {
            if let Some(dir) = self.path.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
            }
            telemetry::fsyncs(2);
        }
        self.count_written(image.len());
        self.created = true;
        self.slot_size = slot_size;
        Ok(())
    }

    fn write_error(&self, source: std::io::Error) -> SlotFileError {
        SlotFileError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

/// Renames a damaged file at `path` to `<name>.damaged-<unix time>` beside
/// it, kept for inspection; returns the new path. Nothing is written: the
/// next write creates a new file at `path`.
pub fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Two damaged files within one second keep both.
    let mut aside = path.with_file_name(format!("{name}.damaged-{now}"));
    let mut n = 1;
    while aside.exists() && n < 100 {
        aside = path.with_file_name(format!("{name}.damaged-{now}-{n}"));
        n += 1;
    }
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

fn crc(generation: &[u8], len: &[u8], payload: &[u8]) -> u32 {
    let c = crc32c::crc32c(generation);
    crc32c::crc32c_append(crc32c::crc32c_append(c, len), payload)
}

fn encode_slot(generation: u64, payload: &[u8]) -> Vec<u8> {
    let generation = generation.to_le_bytes();
    let len = (payload.len() as u32).to_le_bytes();
    let mut slot = Vec::with_capacity(HEADER + payload.len());
    slot.extend_from_slice(MAGIC);
    slot.extend_from_slice(&generation);
    slot.extend_from_slice(&len);
    slot.extend_from_slice(&crc(&generation, &len, payload).to_le_bytes());
    slot.extend_from_slice(payload);
    slot
}

/// The generation and payload of an intact slot.
fn decode_slot(slot: &[u8]) -> Option<(u64, &[u8])> {
    let header = slot.get(..HEADER)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let generation: [u8; 8] = header[8..16].try_into().ok()?;
    let len_bytes: [u8; 4] = header[16..20].try_into().ok()?;
    let stored_crc = u32::from_le_bytes(header[20..24].try_into().ok()?);
    let len = u32::from_le_bytes(len_bytes) as usize;
    let payload = slot.get(HEADER..HEADER.checked_add(len)?)?;
    (crc(&generation, &len_bytes, payload) == stored_crc)
        .then(|| (u64::from_le_bytes(generation), payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(f: &mut SlotFile, payload: &[u8]) {
        f.write(f.generation() + 1, payload, false).unwrap();
    }

    fn reopen(path: &Path) -> Option<Vec<u8>> {
        SlotFile::open(path, false).unwrap().payload
    }

    #[test]
    fn writes_alternate_slots_and_the_newest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let mut f = SlotFile::open(&path, false).unwrap().file;
        for n in 0..5 {
            next(&mut f, format!("state {n}").as_bytes());
            assert_eq!(reopen(&path).unwrap(), format!("state {n}").as_bytes());
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            2 * MIN_SLOT as u64,
            "two small slots in one page"
        );
    }

    #[test]
    fn a_torn_newest_slot_falls_back_to_the_previous_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let mut f = SlotFile::open(&path, false).unwrap().file;
        next(&mut f, b"older");
        next(&mut f, b"newer");
        let mut bytes = std::fs::read(&path).unwrap();
        // generation 2 lives in slot 0: flip a payload byte there.
        bytes[HEADER + 1] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(reopen(&path).unwrap(), b"older");
    }

    #[test]
    fn slots_alternate_whatever_the_generations_given() {
        // A file written every third generation (the disk copy beside a RAM
        // copy) must still keep its previous state in the other slot.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let mut f = SlotFile::open(&path, false).unwrap().file;
        f.write(3, b"older", false).unwrap();
        f.write(9, b"newer", true).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let newest = (0..2)
            .find(|i| decode_slot(&bytes[i * MIN_SLOT..]).map(|(g, _)| g) == Some(9))
            .unwrap();
        bytes[newest * MIN_SLOT + HEADER] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let loaded = SlotFile::open(&path, false).unwrap();
        assert_eq!(loaded.payload.unwrap(), b"older");
        assert_eq!(loaded.file.generation(), 3);
    }

    #[test]
    fn growing_state_moves_to_bigger_slots_and_keeps_alternating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let mut f = SlotFile::open(&path, false).unwrap().file;
        next(&mut f, b"small");
        let big = vec![b'x'; 5000];
        next(&mut f, &big);
        assert_eq!(reopen(&path).unwrap(), big);
        next(&mut f, b"small again");
        assert_eq!(reopen(&path).unwrap(), b"small again");
        let mut f = SlotFile::open(&path, false).unwrap().file;
        next(&mut f, b"after reopen");
        assert_eq!(reopen(&path).unwrap(), b"after reopen");
    }

    #[test]
    fn no_descriptor_is_held_and_a_removed_file_is_created_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let mut f = SlotFile::open(&path, false).unwrap().file;
        next(&mut f, b"one");
        let fds = |p: &Path| {
            std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
                .filter(|target| target == p)
                .count()
        };
        assert_eq!(fds(&path), 0, "closed between writes");
        std::fs::remove_file(&path).unwrap();
        next(&mut f, b"two");
        assert_eq!(reopen(&path).unwrap(), b"two");
    }

    #[test]
    fn a_damaged_file_is_moved_aside_with_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        std::fs::write(&path, b"garbage").unwrap();
        let aside = move_aside(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(std::fs::read(&aside).unwrap(), b"garbage");
        let name = aside.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with("cp.damaged-"), "{name}");
        std::fs::write(&path, b"again").unwrap();
        let second = move_aside(&path).unwrap();
        assert_ne!(second, aside, "an earlier one is kept");
    }

    #[test]
    fn both_slots_damaged_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        std::fs::write(&path, vec![0xa5u8; 4096]).unwrap();
        let err = SlotFile::open(&path, false).unwrap_err();
        assert!(err.to_string().contains("no intact slot"), "{err}");
    }
}
