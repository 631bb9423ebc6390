//! What a start finds of the checkpoints, and which state it resumes from:
//! the disk copy in the data directory, its RAM copy (see
//! [`super::checkpoint`]), or the JSON file of an earlier version.
//!
//! A copy that is damaged (no intact slot, or a state that does not parse)
//! never stops the agent: it is moved aside for inspection
//! (`checkpoints.state.damaged-<unix time>`, see
//! [`checkpoint_file::move_aside`]), one ERROR says where reading resumes,
//! and shipping continues. A RAM copy is trusted only beside the disk copy
//! it was written with, or when the disk copy is damaged (it holds the
//! positions of this boot). A runtime directory that is not RAM is a
//! standing warning. This module reads, renames and removes stale copies;
//! it never writes state.

use super::checkpoint::{CheckpointError, Entry, StateFile};
use super::checkpoint_file::{self, SlotFile, SlotFileError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(super) const FILE_NAME: &str = "checkpoints.state";
/// Whole-file JSON written by write-temp + rename (before 0.2).
pub(super) const LEGACY_FILE_NAME: &str = "checkpoints.json";

/// What happens without a RAM copy, said in every message about lacking it.
pub(super) const DISK_ONLY: &str =
    "checkpoints go to disk only, every checkpoint_disk_interval, so a crash re-sends up to that much";

/// Where a source without a checkpoint starts reading.
const WITHOUT_CHECKPOINTS: &str = "where each source starts without a checkpoint: files from \
     their read_from (SHIPD_READ_FROM; files appearing later from their beginning), journals \
     from their configured start, spilled batches from their oldest segment (re-sent)";

/// The state a start resumes from, and the copies it goes on writing.
pub(super) struct Recovered {
    pub disk: SlotFile,
    pub ram: Option<SlotFile>,
    pub entries: BTreeMap<String, Entry>,
    /// Generation of the newest state found in either copy.
    pub generation: u64,
    /// A file of an earlier version whose state was taken over (removed
    /// after the first write).
    pub legacy: Option<PathBuf>,
    /// Why a RAM copy was asked for (`ram_dir`) but is not kept: a standing
    /// warning for `/health` and `shipctl status`.
    pub ram_warning: Option<String>,
}

/// What was found in the data directory.
enum DiskCopy {
    Absent,
    Intact {
        generation: u64,
        state: StateFile,
    },
    /// Moved aside (or not: the reason why not), already described.
    Damaged {
        report: String,
    },
}

/// What was found in the RAM directory.
enum RamCopy {
    /// Not kept: why (for the warning).
    Off(String),
    /// Kept, its state not used (none, or not trusted).
    Fresh(SlotFile),
    /// Kept, and its state is the newest.
    Resumed(SlotFile, StateFile),
    /// Damaged: moved aside; a new copy is written.
    Damaged(SlotFile, String),
}

fn parse(path: &Path, bytes: &[u8]) -> Result<StateFile, CheckpointError> {
    serde_json::from_slice::<StateFile>(bytes).map_err(|source| CheckpointError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Moves a damaged `path` aside and says where it went (for the ERROR).
fn set_aside(path: &Path, reason: &str) -> String {
    match checkpoint_file::move_aside(path) {
        Ok(aside) => format!(
            "{} is damaged ({reason}); moved aside to {} for inspection",
            path.display(),
            aside.display()
        ),
        Err(e) => format!(
            "{} is damaged ({reason}) and cannot be moved aside ({e}); the next checkpoint write replaces it",
            path.display()
        ),
    }
}

fn load_disk(path: &Path) -> Result<(SlotFile, DiskCopy), CheckpointError> {
    let reason = match SlotFile::open(path, false) {
        Ok(loaded) => match loaded.payload {
            None => return Ok((loaded.file, DiskCopy::Absent)),
            Some(payload) => match parse(path, &payload) {
                Ok(state) => {
                    let generation = loaded.file.generation();
                    return Ok((loaded.file, DiskCopy::Intact { generation, state }));
                }
                Err(e) => format!("its state does not parse: {e}"),
            },
        },
        Err(SlotFileError::Damaged { .. }) => "no intact slot".to_owned(),
        Err(e) => return Err(e.into()),
    };
    let report = set_aside(path, &reason);
    Ok((SlotFile::absent(path, false), DiskCopy::Damaged { report }))
}

/// Opens the RAM copy in `dir`. Its state comes back only when it is
/// newer than the disk copy and was written beside that very disk copy,
/// or when the disk copy is damaged; otherwise (a first start, an emptied
/// data directory, a later run without the RAM copy) it is removed.
fn open_ram_copy(dir: &Path, disk: &DiskCopy) -> RamCopy {
    let path = dir.join(FILE_NAME);
    match crate::fs_kind::prepare_ram_dir(dir) {
        Ok(true) => {}
        Ok(false) => {
            return RamCopy::Off(format!(
                "runtime_dir {} is not RAM-backed (tmpfs or ramfs): {DISK_ONLY}, and metrics and received data are not journaled",
                dir.display()
            ))
        }
        Err(e) => {
            return RamCopy::Off(format!(
                "no RAM copy of checkpoints in runtime_dir {}: {e}: {DISK_ONLY}",
                dir.display()
            ))
        }
    }
    let untrusted = match SlotFile::open(&path, true) {
        Ok(loaded) => match loaded.payload {
            None => return RamCopy::Fresh(loaded.file),
            Some(payload) => match (parse(&path, &payload), disk) {
                (Err(e), _) => {
                    let report = set_aside(&path, &format!("its state does not parse: {e}"));
                    return RamCopy::Damaged(SlotFile::absent(&path, true), report);
                }
                (Ok(state), DiskCopy::Damaged { .. }) => {
                    return RamCopy::Resumed(loaded.file, state)
                }
                (Ok(state), DiskCopy::Intact { generation, .. })
                    if loaded.file.generation() > *generation =>
                {
                    if state.disk_generation == Some(*generation) {
                        return RamCopy::Resumed(loaded.file, state);
                    }
                    "written beside another disk copy"
                }
                (Ok(_), DiskCopy::Intact { .. }) => "older than the disk copy",
                (Ok(_), DiskCopy::Absent) => "no disk copy",
            },
        },
        Err(SlotFileError::Damaged { .. }) => {
            let report = set_aside(&path, "no intact slot");
            return RamCopy::Damaged(SlotFile::absent(&path, true), report);
        }
        Err(e) => {
            return RamCopy::Off(format!(
                "RAM copy of checkpoints unreadable: {e}: {DISK_ONLY}"
            ))
        }
    };
    tracing::info!(path = %path.display(), reason = untrusted, "RAM copy of checkpoints not used; removed");
    if let Err(e) = std::fs::remove_file(&path) {
        return RamCopy::Off(format!(
            "cannot remove the stale RAM copy of checkpoints {}: {e}: {DISK_ONLY}",
            path.display()
        ));
    }
    RamCopy::Fresh(SlotFile::absent(&path, true))
}

/// The state of a `checkpoints.json` of an earlier version, if there is
/// one (a damaged one is moved aside and reported in `damage`).
fn load_legacy(
    path: &Path,
    damage: &mut Vec<String>,
) -> Result<Option<BTreeMap<String, Entry>>, CheckpointError> {
    match std::fs::read(path) {
        Ok(bytes) => match parse(path, &bytes) {
            Ok(state) => Ok(Some(state.entries)),
            Err(e) => {
                damage.push(set_aside(path, &format!("its state does not parse: {e}")));
                Ok(None)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Loads the newest state found under `data_dir` and `ram_dir`; damage is
/// set aside and logged, never an error (unreadable files are).
pub(super) fn recover(
    data_dir: &Path,
    ram_dir: Option<&Path>,
) -> Result<Recovered, CheckpointError> {
    let path = data_dir.join(FILE_NAME);
    let (disk, found) = load_disk(&path)?;
    let ram = ram_dir.map(|dir| open_ram_copy(dir, &found));
    let disk_generation = disk.generation();
    let mut damage = Vec::new();
    if let DiskCopy::Damaged { report } = &found {
        damage.push(format!("checkpoint file {report}"));
    }
    let (ram, ram_state, ram_warning) = match ram {
        None => (None, None, None),
        Some(RamCopy::Off(why)) => (None, None, Some(why)),
        Some(RamCopy::Fresh(file)) => (Some(file), None, None),
        Some(RamCopy::Resumed(file, state)) => (Some(file), Some(state), None),
        Some(RamCopy::Damaged(file, report)) => {
            damage.push(format!("RAM copy of checkpoints {report}"));
            (Some(file), None, None)
        }
    };
    let generation = ram
        .as_ref()
        .map_or(disk_generation, |r| r.generation().max(disk_generation));
    let legacy_path = data_dir.join(LEGACY_FILE_NAME);
    let mut legacy = None;
    let (entries, resumes) = match (ram_state, found) {
        (Some(state), _) => (
            state.entries,
            format!(
                "from the intact RAM copy {} (the positions of this boot: nothing skipped)",
                ram_dir.map(|d| d.join(FILE_NAME)).unwrap_or_default().display()
            ),
        ),
        (None, DiskCopy::Intact { state, .. }) => (
            state.entries,
            format!(
                "from the disk copy {}, up to checkpoint_disk_interval older (what was delivered since is re-sent, nothing skipped)",
                path.display()
            ),
        ),
        (None, DiskCopy::Absent) => match load_legacy(&legacy_path, &mut damage)? {
            Some(entries) => {
                legacy = Some(legacy_path.clone());
                (entries, format!("from {}", legacy_path.display()))
            }
            None => (BTreeMap::new(), WITHOUT_CHECKPOINTS.to_owned()),
        },
        (None, DiskCopy::Damaged { .. }) => (BTreeMap::new(), WITHOUT_CHECKPOINTS.to_owned()),
    };
    if !damage.is_empty() {
        tracing::error!(
            "{}; reading resumes {resumes}; shipping continues",
            damage.join("; ")
        );
    }
    if let Some(why) = &ram_warning {
        tracing::warn!("{why}");
    }
    Ok(Recovered {
        disk,
        ram,
        entries,
        generation,
        legacy,
        ram_warning,
    })
}
