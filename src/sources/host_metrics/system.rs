//! Load average (`/proc/loadavg`), uptime (`/proc/uptime`) and process
//! counts (from `/proc/stat`): `system.cpu.load_average.{1m,5m,15m}`,
//! `system.uptime`, `system.processes.count` and `system.processes.created`.

use super::cpu::ProcStat;
use super::{read, Emit, HealthInputs};
use std::path::Path;

fn malformed(file: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("unexpected format of {file}"),
    )
}

/// The three load averages.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

pub fn emit_load(
    root: &Path,
    out: &mut Emit<'_>,
    inputs: &mut HealthInputs,
) -> std::io::Result<()> {
    let text = read(root, "proc/loadavg")?;
    let [m1, m5, m15] = parse_loadavg(&text).ok_or_else(|| malformed("/proc/loadavg"))?;
    out.gauge("system.cpu.load_average.1m", "{thread}", m1, &[]);
    out.gauge("system.cpu.load_average.5m", "{thread}", m5, &[]);
    out.gauge("system.cpu.load_average.15m", "{thread}", m15, &[]);
    inputs.load_1m = Some(m1);
    Ok(())
}

pub fn emit_uptime(root: &Path, out: &mut Emit<'_>) -> std::io::Result<()> {
    let text = read(root, "proc/uptime")?;
    let uptime: f64 = text
        .split_ascii_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| malformed("/proc/uptime"))?;
    out.gauge("system.uptime", "s", uptime, &[]);
    Ok(())
}

pub fn emit_processes(stat: &ProcStat, out: &mut Emit<'_>) {
    if let Some(n) = stat.procs_running {
        out.updown(
            "system.processes.count",
            "{process}",
            n as f64,
            &[("status", "running")],
        );
    }
    if let Some(n) = stat.procs_blocked {
        out.updown(
            "system.processes.count",
            "{process}",
            n as f64,
            &[("status", "blocked")],
        );
    }
    if let Some(n) = stat.processes {
        out.counter("system.processes.created", "{process}", n, 1.0, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadavg_gives_three_averages() {
        assert_eq!(
            parse_loadavg("0.50 1.25 2.00 3/120 4567\n"),
            Some([0.5, 1.25, 2.0])
        );
        assert_eq!(parse_loadavg("0.50 x"), None);
    }
}
