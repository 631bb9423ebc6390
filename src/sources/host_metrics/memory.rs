//! Memory and swap: `/proc/meminfo` and `/proc/vmstat`.
//!
//! `system.memory.usage`/`utilization` by state: `used` is MemTotal less
//! free, buffers, page cache and reclaimable slab (so the states add up to
//! the total); `slab_unreclaimable` is part of `used` and reported on its own
//! too. `system.memory.limit` is MemTotal. Swap: `system.paging.usage` and
//! `utilization` (used, free), `system.paging.operations` (pages swapped in
//! and out) and `system.paging.faults` (major, minor). The health input is
//! the share of memory *not available* (MemAvailable), what the kernel
//! itself considers usable for new work.

use super::{read, Emit, HealthInputs};
use std::collections::HashMap;
use std::path::Path;

/// `/proc/meminfo` in bytes by field name.
pub fn parse_meminfo(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut fields = rest.split_ascii_whitespace();
            let n: u64 = fields.next()?.parse().ok()?;
            let bytes = match fields.next() {
                Some("kB") => n.saturating_mul(1024),
                _ => n,
            };
            Some((key, bytes))
        })
        .collect()
}

pub fn emit(root: &Path, out: &mut Emit<'_>, inputs: &mut HealthInputs) -> std::io::Result<()> {
    let text = read(root, "proc/meminfo")?;
    let info = parse_meminfo(&text);
    let get = |k: &str| info.get(k).copied().unwrap_or(0);
    let total = get("MemTotal");
    if total == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "/proc/meminfo has no MemTotal",
        ));
    }
    let (free, buffers, cached) = (get("MemFree"), get("Buffers"), get("Cached"));
    let (reclaimable, unreclaimable) = (get("SReclaimable"), get("SUnreclaim"));
    let used = total
        .saturating_sub(free)
        .saturating_sub(buffers)
        .saturating_sub(cached)
        .saturating_sub(reclaimable);
    out.updown("system.memory.limit", "By", total as f64, &[]);
    for (state, bytes) in [
        ("used", used),
        ("free", free),
        ("buffered", buffers),
        ("cached", cached),
        ("slab_reclaimable", reclaimable),
        ("slab_unreclaimable", unreclaimable),
    ] {
        out.updown(
            "system.memory.usage",
            "By",
            bytes as f64,
            &[("state", state)],
        );
        out.gauge(
            "system.memory.utilization",
            "1",
            bytes as f64 / total as f64,
            &[("state", state)],
        );
    }
    let unavailable = match info.get("MemAvailable") {
        Some(&available) => total.saturating_sub(available),
        None => used,
    };
    inputs.memory_percent = Some(100.0 * unavailable as f64 / total as f64);

    let swap_total = get("SwapTotal");
    let swap_free = get("SwapFree");
    let swap_used = swap_total.saturating_sub(swap_free);
    for (state, bytes) in [("used", swap_used), ("free", swap_free)] {
        out.updown(
            "system.paging.usage",
            "By",
            bytes as f64,
            &[("state", state)],
        );
        if swap_total > 0 {
            out.gauge(
                "system.paging.utilization",
                "1",
                bytes as f64 / swap_total as f64,
                &[("state", state)],
            );
        }
    }
    // vmstat is optional (some containers hide it); its absence is not an error.
    if let Ok(vmstat) = read(root, "proc/vmstat") {
        emit_vmstat(&vmstat, out);
    }
    Ok(())
}

fn emit_vmstat(text: &str, out: &mut Emit<'_>) {
    let mut field = HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(' ') {
            if let Ok(v) = v.trim().parse::<u64>() {
                field.insert(k, v);
            }
        }
    }
    if let (Some(&swap_in), Some(&swap_out)) = (field.get("pswpin"), field.get("pswpout")) {
        out.counter(
            "system.paging.operations",
            "{operation}",
            swap_in,
            1.0,
            &[("direction", "page_in")],
        );
        out.counter(
            "system.paging.operations",
            "{operation}",
            swap_out,
            1.0,
            &[("direction", "page_out")],
        );
    }
    if let (Some(&all), Some(&major)) = (field.get("pgfault"), field.get("pgmajfault")) {
        out.counter(
            "system.paging.faults",
            "{fault}",
            major,
            1.0,
            &[("type", "major")],
        );
        out.counter(
            "system.paging.faults",
            "{fault}",
            all.saturating_sub(major),
            1.0,
            &[("type", "minor")],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_values_become_bytes() {
        let info = parse_meminfo("MemTotal:       1000 kB\nHugePages_Total:       3\nbad line\n");
        assert_eq!(info["MemTotal"], 1_024_000);
        assert_eq!(info["HugePages_Total"], 3);
        assert_eq!(info.len(), 2);
    }
}
