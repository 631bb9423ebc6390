//! CPU: `/proc/stat` parsed once per collection into [`ProcStat`];
//! `system.cpu.time` (cumulative seconds by cpu and state) and
//! `system.cpu.utilization` (share of each state since the previous
//! collection). Guest time is already part of user and nice, so it is not
//! reported again.

use super::Emit;

/// The states of one `cpuN` line, in the kernel's order, with their
/// OpenTelemetry names.
pub const STATES: [&str; 8] = [
    "user",
    "nice",
    "system",
    "idle",
    "wait",
    "interrupt",
    "softirq",
    "steal",
];

/// Ticks per state of one CPU.
pub type Ticks = [u64; 8];

/// What shipd uses of `/proc/stat`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcStat {
    /// The aggregate `cpu` line.
    pub total: Option<Ticks>,
    /// `cpu0`, `cpu1`, ... with their ticks.
    pub cpus: Vec<(String, Ticks)>,
    pub boot_time: Option<u64>,
    pub processes: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
}

impl ProcStat {
    /// Parses the text of `/proc/stat`; unknown or malformed lines are skipped.
    pub fn parse(text: &str) -> ProcStat {
        let mut stat = ProcStat::default();
        for line in text.lines() {
            let mut fields = line.split_ascii_whitespace();
            let Some(key) = fields.next() else { continue };
            if let Some(rest) = key.strip_prefix("cpu") {
                let mut ticks = [0u64; 8];
                for (slot, field) in ticks.iter_mut().zip(fields) {
                    *slot = field.parse().unwrap_or(0);
                }
                if rest.is_empty() {
                    stat.total = Some(ticks);
                } else if rest.bytes().all(|b| b.is_ascii_digit()) {
                    stat.cpus.push((key.to_owned(), ticks));
                }
                continue;
            }
            let value = fields.next().and_then(|v| v.parse().ok());
            match key {
                "btime" => stat.boot_time = value,
                "processes" => stat.processes = value,
                "procs_running" => stat.procs_running = value,
                "procs_blocked" => stat.procs_blocked = value,
                _ => {}
            }
        }
        stat
    }
}

/// The kernel's clock ticks per second (USER_HZ).
pub fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// Ticks of the previous collection, for utilization.
#[derive(Debug, Default)]
pub struct CpuState {
    previous_total: Option<Ticks>,
    previous: Vec<(String, Ticks)>,
}

/// Share of each state in the change from `before` to `after`; `None` when
/// no time passed.
fn shares(before: &Ticks, after: &Ticks) -> Option<[f64; 8]> {
    let mut delta = [0f64; 8];
    for i in 0..8 {
        delta[i] = after[i].saturating_sub(before[i]) as f64;
    }
    let sum: f64 = delta.iter().sum();
    if sum <= 0.0 {
        return None;
    }
    Some(delta.map(|d| d / sum))
}

impl CpuState {
    /// Emits CPU time and utilization; returns the busy share of all CPUs
    /// (percent) since the previous collection.
    pub fn emit(&mut self, stat: &super::cpu::ProcStat, out: &mut Emit<'_>) -> Option<f64> {
        let hz = ticks_per_second();
        for (cpu, ticks) in &stat.cpus {
            for (state, &t) in STATES.iter().zip(ticks) {
                out.counter(
                    "system.cpu.time",
                    "s",
                    t,
                    1.0 / hz,
                    &[("cpu", cpu), ("state", state)],
                );
            }
            let before = self.previous.iter().find(|(c, _)| c == cpu).map(|(_, t)| t);
            if let Some(shares) = before.and_then(|b| shares(b, ticks)) {
                for (state, share) in STATES.iter().zip(shares) {
                    out.gauge(
                        "system.cpu.utilization",
                        "1",
                        share,
                        &[("cpu", cpu), ("state", state)],
                    );
                }
            }
        }
        let busy = match (&self.previous_total, &stat.total) {
            (Some(before), Some(after)) => {
                shares(before, after).map(|s| 100.0 * (1.0 - s[3] - s[4]))
            }
            _ => None,
        };
        self.previous = stat.cpus.clone();
        self.previous_total = stat.total;
        busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_lines_are_parsed_and_guest_columns_ignored() {
        let stat = ProcStat::parse(
            "cpu  10 1 5 100 2 0 1 0 7 0\ncpu0 10 1 5 100 2 0 1 0 7 0\nintr 1 2 3\nbtime 1700000000\nprocesses 42\nprocs_running 3\nprocs_blocked 1\ncpufreq junk\n",
        );
        assert_eq!(stat.total, Some([10, 1, 5, 100, 2, 0, 1, 0]));
        assert_eq!(
            stat.cpus,
            vec![("cpu0".to_owned(), [10, 1, 5, 100, 2, 0, 1, 0])]
        );
        assert_eq!(stat.boot_time, Some(1_700_000_000));
        assert_eq!(
            (stat.processes, stat.procs_running, stat.procs_blocked),
            (Some(42), Some(3), Some(1))
        );
    }

    #[test]
    fn shares_of_a_tick_change_add_up_to_one() {
        let s = shares(&[0; 8], &[30, 0, 10, 50, 10, 0, 0, 0]).unwrap();
        assert_eq!(s[0], 0.3);
        assert_eq!(s[3], 0.5);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(shares(&[5; 8], &[5; 8]).is_none());
    }
}
