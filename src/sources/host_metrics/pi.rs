//! Raspberry Pi health, read where present and silently absent elsewhere:
//!
//! - `hw.temperature` (°C) per thermal zone (`/sys/class/thermal/thermal_zone*/temp`,
//!   millidegrees), labelled `hw.id` (the zone) and `hw.name` (its `type`);
//! - `system.cpu.frequency` (Hz) per CPU (`cpufreq/scaling_cur_freq`, kHz);
//! - `rpi.throttled` (0/1) per named flag and period (`current`,
//!   `since_boot`), decoded from the firmware's `get_throttled` hex bits 0–3
//!   and 16–19;
//! - per SD/eMMC device (`/sys/block/mmcblk*`): `rpi.mmc.life_time_estimate`
//!   (JEDEC step 1–11 for type A and B: 1 means 0–10 % of life used, 10 means
//!   90–100 %, 11 exceeded), `rpi.mmc.pre_eol` (1 normal, 2 warning, 3
//!   urgent), both eMMC only, and `rpi.mmc.written` (bytes written since boot
//!   from the device's `stat`, SD cards too).
//!
//! Paths are discovered once, when the collector is built (sysfs layouts do
//! not change while running); the values are read every collection.

use super::{Emit, HealthInputs};
use std::path::{Path, PathBuf};

/// Firmware `get_throttled` locations across kernels (raspberrypi and
/// mainline device trees).
const THROTTLED_GLOBS: &[&str] = &[
    "sys/devices/platform/soc/soc:firmware/get_throttled",
    "sys/devices/platform/soc:firmware/get_throttled",
    "sys/devices/platform/*/*firmware*/get_throttled",
    "sys/devices/platform/*firmware*/get_throttled",
    "sys/devices/platform/*/*/*firmware*/get_throttled",
];

/// Names of the `get_throttled` bits 0–3 (the same bits + 16 latch since boot).
pub const THROTTLE_FLAGS: [&str; 4] = [
    "under_voltage",
    "arm_frequency_capped",
    "throttled",
    "soft_temperature_limit",
];

/// The sysfs files found at start.
#[derive(Debug, Default)]
pub struct PiPaths {
    /// (zone name, temp file, type)
    thermal: Vec<(String, PathBuf, String)>,
    /// (cpuN, scaling_cur_freq file)
    cpufreq: Vec<(String, PathBuf)>,
    throttled: Option<PathBuf>,
    /// (device name, /sys/block/<dev> directory)
    mmc: Vec<(String, PathBuf)>,
}

fn glob_under(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let full = root.join(pattern);
    let Some(text) = full.to_str() else {
        return Vec::new();
    };
    let escaped = glob::Pattern::escape(&root.to_string_lossy());
    let pattern = format!("{}{}", escaped, &text[root.to_string_lossy().len()..]);
    let mut paths: Vec<PathBuf> = glob::glob(&pattern)
        .map(|paths| paths.filter_map(Result::ok).collect())
        .unwrap_or_default();
    paths.sort_by_key(|p| natural_key(p));
    paths
}

/// Sorts `cpu10` after `cpu9`.
fn natural_key(p: &Path) -> (String, u64) {
    let s = p.to_string_lossy();
    let digits_at = s.trim_end_matches(|c: char| !c.is_ascii_digit()).len();
    let start = s[..digits_at]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    (
        s[..start].to_owned(),
        s[start..digits_at].parse().unwrap_or(0),
    )
}

fn file_name_of(path: &Path, up: usize) -> String {
    let mut p = path;
    for _ in 0..up {
        p = p.parent().unwrap_or(p);
    }
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl PiPaths {
    pub fn discover(root: &Path) -> PiPaths {
        let thermal = glob_under(root, "sys/class/thermal/thermal_zone*/temp")
            .into_iter()
            .map(|temp| {
                let zone = file_name_of(&temp, 1);
                let kind = temp
                    .parent()
                    .and_then(|dir| std::fs::read_to_string(dir.join("type")).ok())
                    .map(|t| t.trim().to_owned())
                    .unwrap_or_default();
                (zone, temp, kind)
            })
            .collect();
        let cpufreq = glob_under(
            root,
            "sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq",
        )
        .into_iter()
        .map(|f| (file_name_of(&f, 2), f))
        .collect();
        let throttled = THROTTLED_GLOBS
            .iter()
            .find_map(|g| glob_under(root, g).into_iter().next());
        let mmc = glob_under(root, "sys/block/mmcblk*")
            .into_iter()
            .filter(|dir| {
                !file_name_of(dir, 0).contains("boot") && !file_name_of(dir, 0).contains("rpmb")
            })
            .map(|dir| (file_name_of(&dir, 0), dir))
            .collect();
        PiPaths {
            thermal,
            cpufreq,
            throttled,
            mmc,
        }
    }

    pub fn emit(&self, out: &mut Emit<'_>, inputs: &mut HealthInputs) {
        for (zone, file, kind) in &self.thermal {
            if let Some(milli) = read_number(file) {
                let celsius = milli / 1000.0;
                out.gauge(
                    "hw.temperature",
                    "Cel",
                    celsius,
                    &[("hw.id", zone), ("hw.name", kind)],
                );
                if inputs.temperature_celsius.is_none_or(|t| celsius > t) {
                    inputs.temperature_celsius = Some(celsius);
                }
            }
        }
        for (cpu, file) in &self.cpufreq {
            if let Some(khz) = read_number(file) {
                out.gauge("system.cpu.frequency", "Hz", khz * 1000.0, &[("cpu", cpu)]);
            }
        }
        if let Some(bits) = self
            .throttled
            .as_deref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| parse_throttled(&t))
        {
            for (flag, now, since_boot) in decode_throttled(bits) {
                out.gauge(
                    "rpi.throttled",
                    "1",
                    f64::from(u8::from(now)),
                    &[("flag", flag), ("period", "current")],
                );
                out.gauge(
                    "rpi.throttled",
                    "1",
                    f64::from(u8::from(since_boot)),
                    &[("flag", flag), ("period", "since_boot")],
                );
            }
        }
        for (device, dir) in &self.mmc {
            let media = std::fs::read_to_string(dir.join("device/type"))
                .map(|t| t.trim().to_owned())
                .unwrap_or_default();
            if let Ok(text) = std::fs::read_to_string(dir.join("device/life_time")) {
                let mut steps = text.split_ascii_whitespace().filter_map(parse_hex);
                for kind in ["A", "B"] {
                    if let Some(step) = steps.next() {
                        out.gauge(
                            "rpi.mmc.life_time_estimate",
                            "1",
                            step as f64,
                            &[("device", device), ("type", kind)],
                        );
                    }
                }
            }
            if let Some(level) = std::fs::read_to_string(dir.join("device/pre_eol_info"))
                .ok()
                .and_then(|t| parse_hex(t.trim()))
            {
                out.gauge("rpi.mmc.pre_eol", "1", level as f64, &[("device", device)]);
            }
            if let Ok(stat) = std::fs::read_to_string(dir.join("stat")) {
                // Fields: read ios, merges, sectors, ticks, write ios, merges, sectors, ...
                if let Some(sectors) = stat
                    .split_ascii_whitespace()
                    .nth(6)
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    out.counter(
                        "rpi.mmc.written",
                        "By",
                        sectors,
                        super::disk::SECTOR_BYTES as f64,
                        &[("device", device), ("media", &media)],
                    );
                }
            }
        }
    }
}

/// A sysfs file holding one decimal number.
fn read_number(path: &Path) -> Option<f64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `0x0b` or `0b` as a number.
fn parse_hex(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u64::from_str_radix(t, 16).ok()
}

/// The bits of `get_throttled` text (`50005`, `0x50005` or vcgencmd's `throttled=0x50005`).
pub fn parse_throttled(text: &str) -> Option<u64> {
    let t = text.trim();
    parse_hex(t.strip_prefix("throttled=").unwrap_or(t))
}

/// Each flag with (currently, since boot).
pub fn decode_throttled(bits: u64) -> [(&'static str, bool, bool); 4] {
    let mut out = [("", false, false); 4];
    for (i, flag) in THROTTLE_FLAGS.iter().enumerate() {
        out[i] = (flag, bits & (1 << i) != 0, bits & (1 << (16 + i)) != 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_bits_decode_into_named_flags() {
        assert_eq!(parse_throttled("throttled=0x50005\n"), Some(0x50005));
        assert_eq!(parse_throttled("50005"), Some(0x50005));
        let flags = decode_throttled(0x50005);
        assert_eq!(flags[0], ("under_voltage", true, true));
        assert_eq!(flags[1], ("arm_frequency_capped", false, false));
        assert_eq!(flags[2], ("throttled", true, true));
        assert_eq!(flags[3], ("soft_temperature_limit", false, false));
        assert_eq!(
            decode_throttled(0x80000)[3],
            ("soft_temperature_limit", false, true)
        );
    }

    #[test]
    fn cpus_sort_numerically() {
        let mut v = [
            PathBuf::from("/c/cpu10/x"),
            PathBuf::from("/c/cpu9/x"),
            PathBuf::from("/c/cpu2/x"),
        ];
        v.sort_by_key(|p| natural_key(p));
        assert_eq!(v[0], PathBuf::from("/c/cpu2/x"));
        assert_eq!(v[2], PathBuf::from("/c/cpu10/x"));
    }
}
