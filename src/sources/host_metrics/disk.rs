//! Block devices: `/proc/diskstats` → `system.disk.io` (bytes),
//! `system.disk.operations`, `system.disk.merged`,
//! `system.disk.operation_time` (by device and direction) and
//! `system.disk.io_time` (by device). Sectors are always 512 bytes in
//! diskstats, whatever the device's block size.

use super::{read, Emit};
use std::path::Path;

/// The kernel's fixed diskstats sector size.
pub const SECTOR_BYTES: u64 = 512;

/// One line of `/proc/diskstats`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskStats<'a> {
    pub device: &'a str,
    pub reads: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub write_ms: u64,
    pub io_ms: u64,
}

/// Parses one diskstats line; `None` when it is malformed.
pub fn parse_line(line: &str) -> Option<DiskStats<'_>> {
    let mut f = line.split_ascii_whitespace();
    let _major = f.next()?;
    let _minor = f.next()?;
    let device = f.next()?;
    let mut n = [0u64; 10];
    for slot in &mut n {
        *slot = f.next()?.parse().ok()?;
    }
    Some(DiskStats {
        device,
        reads: n[0],
        reads_merged: n[1],
        sectors_read: n[2],
        read_ms: n[3],
        writes: n[4],
        writes_merged: n[5],
        sectors_written: n[6],
        write_ms: n[7],
        // n[8] is I/Os in progress.
        io_ms: n[9],
    })
}

pub fn emit(root: &Path, exclude_prefixes: &[String], out: &mut Emit<'_>) -> std::io::Result<()> {
    let text = read(root, "proc/diskstats")?;
    for d in text.lines().filter_map(parse_line) {
        if exclude_prefixes
            .iter()
            .any(|p| d.device.starts_with(p.as_str()))
        {
            continue;
        }
        let dev = d.device;
        let bytes = SECTOR_BYTES as f64;
        for (direction, sectors, ops, merged, ms) in [
            ("read", d.sectors_read, d.reads, d.reads_merged, d.read_ms),
            (
                "write",
                d.sectors_written,
                d.writes,
                d.writes_merged,
                d.write_ms,
            ),
        ] {
            let labels = [("device", dev), ("direction", direction)];
            out.counter("system.disk.io", "By", sectors, bytes, &labels);
            out.counter("system.disk.operations", "{operation}", ops, 1.0, &labels);
            out.counter("system.disk.merged", "{operation}", merged, 1.0, &labels);
            out.counter("system.disk.operation_time", "s", ms, 0.001, &labels);
        }
        out.counter(
            "system.disk.io_time",
            "s",
            d.io_ms,
            0.001,
            &[("device", dev)],
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diskstats_line_fields_are_named() {
        let d =
            parse_line(" 179       0 mmcblk0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17").unwrap();
        assert_eq!(d.device, "mmcblk0");
        assert_eq!(
            (
                d.reads,
                d.sectors_read,
                d.writes,
                d.sectors_written,
                d.io_ms
            ),
            (1, 3, 5, 7, 10)
        );
        assert!(parse_line("8 0 sda 1 2").is_none());
    }
}
