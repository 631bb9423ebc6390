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
//! means re-reading (duplicates), never skipping. [`SlotFile::sync`] forces
//! the page out where a position must survive power loss at once (a newly
//! seen source, shutdown); the file is created and resized by
//! write-temp + fsync + rename.

use crate::telemetry;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

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

/// The open slot file: where the next write goes.
#[derive(Debug)]
pub struct SlotFile {
    path: PathBuf,
    file: Option<File>,
    slot_size: usize,
    generation: u64,
}

/// What [`SlotFile::open`] found.
#[derive(Debug)]
pub struct Loaded {
    pub file: SlotFile,
    /// The newest intact payload; `None` when there is no file yet.
    pub payload: Option<Vec<u8>>,
}

impl SlotFile {
    /// Opens `path` (absent means empty) and returns its newest intact payload.
    pub fn open(path: &Path) -> Result<Loaded, SlotFileError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    file: SlotFile {
                        path: path.to_owned(),
                        file: None,
                        slot_size: MIN_SLOT,
                        generation: 0,
                    },
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
            .flatten()
            .max_by_key(|(generation, _)| *generation);
        let Some(&(generation, payload)) = newest else {
            return Err(SlotFileError::Damaged {
                path: path.to_owned(),
            });
        };
        if slots.iter().any(Option::is_none) && generation > 1 {
            tracing::warn!(path = %path.display(), generation,
                "one checkpoint slot is damaged (a write cut short); using the other");
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| SlotFileError::Read {
                path: path.to_owned(),
                source,
            })?;
        Ok(Loaded {
            payload: Some(payload.to_vec()),
            file: SlotFile {
                path: path.to_owned(),
                file: Some(file),
                slot_size,
                generation,
            },
        })
    }

    /// Writes `payload` into the slot not holding the newest state. Not
    /// synced: see [`sync`](Self::sync).
    pub fn write(&mut self, payload: &[u8]) -> Result<(), SlotFileError> {
        let generation = self.generation + 1;
        let slot = encode_slot(generation, payload);
        match &self.file {
            Some(file) if slot.len() <= self.slot_size => {
                let offset = (generation % 2) as usize * self.slot_size;
                file.write_all_at(&slot, offset as u64)
                    .map_err(|source| self.write_error(source))?;
                telemetry::disk_written("checkpoint", slot.len() as u64);
            }
            _ => self.recreate(generation, &slot)?,
        }
        self.generation = generation;
        Ok(())
    }

    /// Forces what was written to storage.
    pub fn sync(&self) -> Result<(), SlotFileError> {
        if let Some(file) = &self.file {
            file.sync_data()
                .map_err(|source| self.write_error(source))?;
            telemetry::fsyncs(1);
        }
        Ok(())
    }

    /// Creates the file (or grows its slots) by write-temp + fsync + rename,
    /// `slot` in its place and the other slot empty.
    fn recreate(&mut self, generation: u64, slot: &[u8]) -> Result<(), SlotFileError> {
        let slot_size = slot.len().next_power_of_two().max(MIN_SLOT);
        let mut image = vec![0u8; 2 * slot_size];
        let offset = (generation % 2) as usize * slot_size;
        image[offset..offset + slot.len()].copy_from_slice(slot);
        let tmp = self.path.with_extension("tmp");
        let err = |source| self.write_error(source);
        let mut file = File::create(&tmp).map_err(err)?;
        file.write_all(&image).map_err(err)?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
        }
        telemetry::disk_written("checkpoint", image.len() as u64);
        telemetry::fsyncs(2);
        self.file = Some(
            std::fs::OpenOptions::new()
                .write(true)
                .open(&self.path)
                .map_err(err)?,
        );
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

    fn reopen(path: &Path) -> Option<Vec<u8>> {
        SlotFile::open(path).unwrap().payload
    }

    #[test]
    fn writes_alternate_slots_and_the_newest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let mut f = SlotFile::open(&path).unwrap().file;
        for n in 0..5 {
            f.write(format!("state {n}").as_bytes()).unwrap();
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
        let mut f = SlotFile::open(&path).unwrap().file;
        f.write(b"older").unwrap();
        f.write(b"newer").unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // generation 2 lives in slot 0: flip a payload byte there.
        bytes[HEADER + 1] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(reopen(&path).unwrap(), b"older");
    }

    #[test]
    fn growing_state_moves_to_bigger_slots_and_keeps_alternating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let mut f = SlotFile::open(&path).unwrap().file;
        f.write(b"small").unwrap();
        let big = vec![b'x'; 5000];
        f.write(&big).unwrap();
        assert_eq!(reopen(&path).unwrap(), big);
        f.write(b"small again").unwrap();
        assert_eq!(reopen(&path).unwrap(), b"small again");
        let mut f = SlotFile::open(&path).unwrap().file;
        f.write(b"after reopen").unwrap();
        assert_eq!(reopen(&path).unwrap(), b"after reopen");
    }

    #[test]
    fn both_slots_damaged_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        std::fs::write(&path, vec![0xa5u8; 4096]).unwrap();
        let err = SlotFile::open(&path).unwrap_err();
        assert!(err.to_string().contains("no intact slot"), "{err}");
    }
}
