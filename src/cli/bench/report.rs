//! Bench results: one [`ScenarioResult`] per scenario, rendered as a text
//! table, saved as JSON, and compared against an earlier JSON file. It
//! computes derived figures (rates, per-GB costs) but measures nothing.

use serde::{Deserialize, Serialize};
use std::io::Write;

const MB: f64 = 1_000_000.0;
const MIB: f64 = 1024.0 * 1024.0;

/// What one scenario measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    /// Events the receiver counted (latency probes excluded).
    pub events: u64,
    /// Raw input bytes those events came from (log lines or journal messages).
    pub input_bytes: u64,
    pub wall_seconds: f64,
    /// The agent's user + system CPU over the measured window.
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    /// Median resident set over the second half of the window.
    pub steady_rss_bytes: u64,
    /// `/proc/PID/io` write_bytes of the agent over its whole life.
    pub disk_write_bytes: u64,
    /// Compressed bytes the receiver got.
    pub wire_bytes: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_samples: usize,
    /// Times per minute the agent's threads were woken (voluntary context
    /// switches over the window; timed scenarios).
    #[serde(default)]
    pub wakeups_per_minute: Option<f64>,
    /// Scenario-specific facts (backlog left, rates offered).
    pub notes: String,
}

impl ScenarioResult {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.wall_seconds.max(1e-9)
    }

    pub fn mb_per_second(&self) -> f64 {
        self.input_bytes as f64 / MB / self.wall_seconds.max(1e-9)
    }

    /// Input MB processed per CPU second: throughput per fully used core.
    pub fn mb_per_core_second(&self) -> Option<f64> {
        (self.cpu_seconds > 0.0 && self.input_bytes > 0)
            .then(|| self.input_bytes as f64 / MB / self.cpu_seconds)
    }

    pub fn cpu_seconds_per_gb(&self) -> Option<f64> {
        (self.input_bytes > 0).then(|| self.cpu_seconds / (self.input_bytes as f64 / 1e9))
    }

    /// Average share of one core over the window, in percent.
    pub fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu_seconds / self.wall_seconds.max(1e-9)
    }
}

/// Latency percentile `p` (0..=100) of `samples_ns`, in ms.
pub fn percentile_ms(samples_ns: &mut [u64], p: f64) -> Option<f64> {
    if samples_ns.is_empty() {
        return None;
    }
    samples_ns.sort_unstable();
    let rank = ((p / 100.0) * (samples_ns.len() - 1) as f64).round() as usize;
    Some(samples_ns[rank.min(samples_ns.len() - 1)] as f64 / 1e6)
}

/// A whole bench run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub shipd: String,
    pub cpu_model: String,
    pub cores: usize,
    /// The 1-minute load average before the run (other work on the machine).
    pub load_before: f64,
    pub started_unix: u64,
    pub scenarios: Vec<ScenarioResult>,
}

impl Report {
    pub fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "shipd {} on {} ({} cores, load {:.2} before)",
            self.shipd, self.cpu_model, self.cores, self.load_before
        )?;
        writeln!(
            out,
            "{:<12} {:>10} {:>9} {:>8} {:>8} {:>9} {:>8} {:>7} {:>8} {:>8} {:>9} {:>8} {:>8}",
            "scenario",
            "events/s",
            "MB/s",
            "MB/s/core",
            "CPU s/GB",
            "CPU %",
            "wake/min",
            "peak MiB",
            "RSS MiB",
            "disk KB",
            "wire MB",
            "p50 ms",
            "p99 ms"
        )?;
        for s in &self.scenarios {
            writeln!(
                out,
                "{:<12} {:>10.0} {:>9.1} {:>8} {:>8} {:>9.3} {:>8} {:>7.1} {:>8.1} {:>8.0} {:>9.1} {:>8} {:>8}",
                s.name,
                s.events_per_second(),
                s.mb_per_second(),
                opt(s.mb_per_core_second(), 1),
                opt(s.cpu_seconds_per_gb(), 1),
                s.cpu_percent(),
                opt(s.wakeups_per_minute, 0),
                s.peak_rss_bytes as f64 / MIB,
                s.steady_rss_bytes as f64 / MIB,
                s.disk_write_bytes as f64 / 1000.0,
                s.wire_bytes as f64 / MB,
                opt(s.latency_p50_ms, 0),
                opt(s.latency_p99_ms, 0),
            )?;
        }
        for s in self.scenarios.iter().filter(|s| !s.notes.is_empty()) {
            writeln!(out, "  {}: {}", s.name, s.notes)?;
        }
        Ok(())
    }

    /// One line per scenario and figure present in both runs: old → new.
    pub fn write_comparison(&self, old: &Report, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "compared with {} ({}):", old.shipd, old.started_unix)?;
        for new in &self.scenarios {
            let Some(before) = old.scenarios.iter().find(|o| o.name == new.name) else {
                writeln!(out, "  {}: not in the old run", new.name)?;
                continue;
            };
            let figures: [(&str, Option<f64>, Option<f64>); 8] = [
                (
                    "MB/s",
                    Some(before.mb_per_second()),
                    Some(new.mb_per_second()),
                ),
                (
                    "MB/s/core",
                    before.mb_per_core_second(),
                    new.mb_per_core_second(),
                ),
                ("CPU %", Some(before.cpu_percent()), Some(new.cpu_percent())),
                (
                    "wake/min",
                    before.wakeups_per_minute,
                    new.wakeups_per_minute,
                ),
                (
                    "peak MiB",
                    Some(before.peak_rss_bytes as f64 / MIB),
                    Some(new.peak_rss_bytes as f64 / MIB),
                ),
                (
                    "RSS MiB",
                    Some(before.steady_rss_bytes as f64 / MIB),
                    Some(new.steady_rss_bytes as f64 / MIB),
                ),
                ("p99 ms", before.latency_p99_ms, new.latency_p99_ms),
                (
                    "wire MB",
                    Some(before.wire_bytes as f64 / MB),
                    Some(new.wire_bytes as f64 / MB),
                ),
            ];
            let cells: Vec<String> = figures
                .iter()
                .filter_map(|(label, a, b)| {
                    let (a, b) = ((*a)?, (*b)?);
                    let change = if a.abs() > f64::EPSILON {
                        format!("{:+.0}%", 100.0 * (b - a) / a)
                    } else {
                        "new".into()
                    };
                    Some(format!("{label} {a:.2} → {b:.2} ({change})"))
                })
                .collect();
            writeln!(out, "  {}: {}", new.name, cells.join(", "))?;
        }
        Ok(())
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|v| format!("{v:.decimals$}"))
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, mb: u64, cpu: f64) -> ScenarioResult {
        ScenarioResult {
            name: name.into(),
            events: 1000,
            input_bytes: mb * 1_000_000,
            wall_seconds: 2.0,
            cpu_seconds: cpu,
            ..Default::default()
        }
    }

    #[test]
    fn derived_figures_and_comparison() {
        let r = result("raw", 100, 0.5);
        assert_eq!(r.mb_per_second(), 50.0);
        assert_eq!(r.mb_per_core_second(), Some(200.0));
        assert_eq!(r.cpu_seconds_per_gb(), Some(5.0));
        assert_eq!(r.cpu_percent(), 25.0);
        let old = Report {
            scenarios: vec![result("raw", 100, 1.0)],
            ..Default::default()
        };
        let new = Report {
            scenarios: vec![r, result("idle", 0, 0.01)],
            ..Default::default()
        };
        let mut text = Vec::new();
        new.write_comparison(&old, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("MB/s/core 100.00 → 200.00 (+100%)"), "{text}");
        assert!(text.contains("idle: not in the old run"), "{text}");
        let json = serde_json::to_string(&new).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.scenarios.len(), 2);
    }

    #[test]
    fn percentiles_pick_ranks() {
        let mut v: Vec<u64> = (1..=100).map(|ms| ms * 1_000_000).collect();
        assert_eq!(percentile_ms(&mut v, 50.0), Some(51.0));
        assert_eq!(percentile_ms(&mut v, 99.0), Some(99.0));
        assert_eq!(percentile_ms(&mut [], 50.0), None);
    }
}
