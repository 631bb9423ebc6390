//! Filesystems: the mounts in `/proc/mounts` (pseudo filesystems and excluded
//! mount points skipped, each mount point once) measured with `statvfs`:
//! `system.filesystem.usage` (used, free, reserved bytes),
//! `system.filesystem.utilization` (used / (used + free), what `df` shows)
//! and `system.filesystem.inodes.usage`, by device, mountpoint, type and mode.
//! A mount that cannot be measured (gone, no permission) is skipped quietly.

use super::{Emit, HealthInputs, HostMetricsConfig};
use std::path::{Path, PathBuf};

/// Filesystem types that hold no user data.
pub const PSEUDO_FS_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
    "ramfs",
    "fuse.gvfsd-fuse",
    "fuse.portal",
];

/// Block counts of one filesystem, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub total_bytes: u64,
    /// Free for everyone, including root (`f_bfree`).
    pub free_bytes: u64,
    /// Free for unprivileged users (`f_bavail`).
    pub available_bytes: u64,
    pub total_inodes: u64,
    pub free_inodes: u64,
}

/// Measures a mounted filesystem; a seam so tests can supply known numbers.
pub trait StatFs: Send {
    fn stat(&self, path: &Path) -> std::io::Result<FsStats>;
}

/// The real `statvfs(2)`.
pub struct Statvfs;

impl StatFs for Statvfs {
    fn stat(&self, path: &Path) -> std::io::Result<FsStats> {
        let s = rustix::fs::statvfs(path)?;
        let block = s.f_frsize.max(1);
        Ok(FsStats {
            total_bytes: s.f_blocks.saturating_mul(block),
            free_bytes: s.f_bfree.saturating_mul(block),
            available_bytes: s.f_bavail.saturating_mul(block),
            total_inodes: s.f_files,
            free_inodes: s.f_ffree,
        })
    }
}

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    /// `ro` or `rw`.
    pub mode: &'static str,
}

/// Undoes the kernel's octal escapes (`\040` for a space) in mount fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/mounts`; malformed lines are skipped.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let device = unescape(f.next()?);
            let mount_point = unescape(f.next()?);
            let fs_type = f.next()?.to_owned();
            let options = f.next().unwrap_or("");
            let mode = if options.split(',').any(|o| o == "ro") {
                "ro"
            } else {
                "rw"
            };
            Some(Mount {
                device,
                mount_point,
                fs_type,
                mode,
            })
        })
        .collect()
}

fn excluded(mount_point: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| {
        mount_point == p
            || mount_point
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The mounts to report, in file order, each mount point once (the last
/// mount over a point is the visible one).
pub fn reported_mounts(text: &str, cfg: &HostMetricsConfig) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for m in parse_mounts(text) {
        if cfg.exclude_fs_types.contains(&m.fs_type)
            || excluded(&m.mount_point, &cfg.exclude_mount_points)
        {
            continue;
        }
        mounts.retain(|seen| seen.mount_point != m.mount_point);
        mounts.push(m);
    }
    mounts
}

/// Where a mount point is found below `root`.
fn path_below(root: &Path, mount_point: &str) -> PathBuf {
    root.join(mount_point.trim_start_matches('/'))
}

pub fn emit(
    root: &Path,
    cfg: &HostMetricsConfig,
    statfs: &dyn StatFs,
    out: &mut Emit<'_>,
    inputs: &mut HealthInputs,
) -> std::io::Result<()> {
    let text = super::read(root, "proc/mounts")?;
    for m in reported_mounts(&text, cfg) {
        let Ok(s) = statfs.stat(&path_below(root, &m.mount_point)) else {
            continue;
        };
        if s.total_bytes == 0 {
            continue;
        }
        let used = s.total_bytes.saturating_sub(s.free_bytes);
        let reserved = s.free_bytes.saturating_sub(s.available_bytes);
        let labels = [
            ("device", m.device.as_str()),
            ("mountpoint", m.mount_point.as_str()),
            ("type", m.fs_type.as_str()),
            ("mode", m.mode),
        ];
        for (state, bytes) in [
            ("used", used),
            ("free", s.available_bytes),
            ("reserved", reserved),
        ] {
            let mut with_state = labels.to_vec();
            with_state.push(("state", state));
            out.updown("system.filesystem.usage", "By", bytes as f64, &with_state);
        }
        let visible = used + s.available_bytes;
        let utilization = if visible > 0 {
            used as f64 / visible as f64
        } else {
            0.0
        };
        out.gauge("system.filesystem.utilization", "1", utilization, &labels);
        if s.total_inodes > 0 {
            for (state, n) in [
                ("used", s.total_inodes.saturating_sub(s.free_inodes)),
                ("free", s.free_inodes),
            ] {
                let mut with_state = labels.to_vec();
                with_state.push(("state", state));
                out.updown(
                    "system.filesystem.inodes.usage",
                    "{inode}",
                    n as f64,
                    &with_state,
                );
            }
        }
        let percent = 100.0 * utilization;
        if m.mode == "rw"
            && inputs
                .disk_percent
                .as_ref()
                .is_none_or(|(p, _)| percent > *p)
        {
            inputs.disk_percent = Some((percent, m.mount_point.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_filesystems_and_repeated_mount_points_are_left_out() {
        let cfg = HostMetricsConfig::new("h");
        let text = "proc /proc proc rw 0 0\n/dev/root / ext4 ro,noatime 0 0\n/dev/root / ext4 rw,noatime 0 0\ntmpfs /run tmpfs rw 0 0\n/dev/sda1 /mnt/my\\040disk vfat rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n";
        let mounts = reported_mounts(text, &cfg);
        let points: Vec<(&str, &str)> = mounts
            .iter()
            .map(|m| (m.mount_point.as_str(), m.mode))
            .collect();
        assert_eq!(
            points,
            [("/", "rw"), ("/run", "rw"), ("/mnt/my disk", "rw")]
        );
    }

    #[test]
    fn mount_point_exclusion_matches_whole_path_components() {
        let prefixes = vec!["/sys".to_owned()];
        assert!(excluded("/sys", &prefixes));
        assert!(excluded("/sys/fs/cgroup", &prefixes));
        assert!(!excluded("/sysroot", &prefixes));
    }
}
