//! The measured agent process: spawns `shipd`, samples its resident memory
//! and its threads' wake-ups while it runs, and reads CPU time
//! (`/proc/PID/stat`), peak memory (`/proc/PID/status` VmHWM) and bytes
//! written (`/proc/PID/io`). It stops the agent with SIGTERM; it never
//! measures any other process.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One reading of the agent's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSnapshot {
    /// user + system CPU seconds.
    pub cpu_seconds: f64,
    /// Resident set now, bytes.
    pub rss: u64,
    /// Peak resident set, bytes.
    pub hwm: u64,
    /// Bytes the process caused to be written to storage.
    pub write_bytes: u64,
}

/// A running agent with a background memory sampler.
pub struct Agent {
    child: Child,
    samples: Arc<Mutex<Vec<(Duration, u64)>>>,
    wakeups: Arc<Mutex<ThreadWakeups>>,
    stop_sampler: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
    pub started: Instant,
    /// When the last snapshot read the peak (since start): later samples
    /// are not part of the run it measured.
    snapshot_at: Option<Duration>,
}

impl Agent {
    /// Starts `shipd --config pipeline`, its stderr in `log`.
    pub fn start(
        shipd: &Path,
        pipeline: &Path,
        env: &[(&str, String)],
        log: &Path,
    ) -> std::io::Result<Agent> {
        let mut cmd = Command::new(shipd);
        cmd.arg("--config").arg(pipeline);
        Agent::spawn(cmd, env, log)
    }

    /// Starts `shipd` with its embedded default pipeline.
    pub fn start_default(
        shipd: &Path,
        env: &[(&str, String)],
        log: &Path,
    ) -> std::io::Result<Agent> {
        Agent::spawn(Command::new(shipd), env, log)
    }

    fn spawn(mut cmd: Command, env: &[(&str, String)], log: &Path) -> std::io::Result<Agent> {
        cmd.env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?);
        let started = Instant::now();
        let child = cmd.spawn()?;
        let pid = child.id();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let wakeups = Arc::new(Mutex::new(ThreadWakeups::default()));
        let stop_sampler = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (samples, wakeups, stop) = (
                Arc::clone(&samples),
                Arc::clone(&wakeups),
                Arc::clone(&stop_sampler),
            );
            std::thread::Builder::new()
                .name("bench-rss-sampler".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(s) = snapshot(pid) {
                            if let Ok(mut v) = samples.lock() {
                                v.push((started.elapsed(), s.rss));
                            }
                        }
                        if let Ok(mut w) = wakeups.lock() {
                            w.sample(pid);
                        }
                        std::thread::sleep(SAMPLE_INTERVAL);
                    }
                })?
        };
        Ok(Agent {
            child,
            samples,
            wakeups,
            stop_sampler,
            sampler: Some(sampler),
            started,
            snapshot_at: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The agent's counters now; an error when it is gone.
    pub fn snapshot(&mut self) -> std::io::Result<ProcSnapshot> {
        if let Some(status) = self.child.try_wait()? {
            return Err(std::io::Error::other(format!(
                "shipd exited early: {status}"
            )));
        }
        self.snapshot_at = Some(self.started.elapsed());
        snapshot(self.child.id())
    }

    /// Wake-ups of all the agent's threads so far: read now, plus what
    /// threads that have exited had at their last sample.
    pub fn wakeups(&self) -> u64 {
        match self.wakeups.lock() {
            Ok(mut w) => {
                w.sample(self.child.id());
                w.total()
            }
            Err(_) => 0,
        }
    }

    /// Median resident set of the samples taken after `from` (since start)
    /// and up to the last snapshot (whose peak must not be below it).
    pub fn steady_rss(&self, from: Duration) -> u64 {
        let mut rss: Vec<u64> = match self.samples.lock() {
            Ok(s) => s
                .iter()
                .filter(|(t, _)| *t >= from && self.snapshot_at.is_none_or(|at| *t <= at))
                .map(|(_, r)| *r)
                .collect(),
            Err(_) => Vec::new(),
        };
        rss.sort_unstable();
        rss.get(rss.len() / 2).copied().unwrap_or(0)
    }

    /// SIGTERM, then SIGKILL after `grace`; returns whether it exited in time.
    pub fn stop(mut self, grace: Duration) -> bool {
        self.stop_sampler.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop_sampler.store(true, Ordering::Relaxed);
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How often memory and wake-ups are sampled.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// The voluntary context switches of every thread of a process, by thread
/// id: each is one time a thread went to sleep and was woken again. Kept
/// per thread because a thread's count leaves `/proc` with it; a thread
/// that lives less than [`SAMPLE_INTERVAL`] between samples is missed.
#[derive(Debug, Default)]
struct ThreadWakeups {
    by_thread: HashMap<u32, u64>,
}

impl ThreadWakeups {
    fn sample(&mut self, pid: u32) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
                let n = field(&status, "voluntary_ctxt_switches:");
                let seen = self.by_thread.entry(tid).or_default();
                *seen = (*seen).max(n);
            }
        }
    }

    fn total(&self) -> u64 {
        self.by_thread.values().sum()
    }
}

/// Reads `/proc/PID/{stat,status,io}`.
pub fn snapshot(pid: u32) -> std::io::Result<ProcSnapshot> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    // /proc/PID/io needs ptrace rights; an unreadable one reads as 0 written.
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    Ok(ProcSnapshot {
        cpu_seconds: cpu_seconds(&stat)
            .ok_or_else(|| std::io::Error::other("unexpected /proc/PID/stat format"))?,
        rss: status_kib(&status, "VmRSS:") * 1024,
        hwm: status_kib(&status, "VmHWM:") * 1024,
        write_bytes: field(&io, "write_bytes:"),
    })
}

/// utime + stime (fields 14 and 15) in seconds.
fn cpu_seconds(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name start at field 3 (state).
    let after_comm = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / rustix::param::clock_ticks_per_second() as f64)
}

fn status_kib(status: &str, key: &str) -> u64 {
    field(status, key)
}

/// The first number after `key` at the start of a line.
fn field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_counters_are_read() {
        let s = snapshot(std::process::id()).unwrap();
        assert!(s.rss > 0 && s.hwm >= s.rss);
        let burn: u64 = (0..20_000_000u64).fold(0, |a, b| a ^ b.wrapping_mul(31));
        std::hint::black_box(burn);
        assert!(snapshot(std::process::id()).unwrap().cpu_seconds >= s.cpu_seconds);
    }

    #[test]
    fn own_threads_wake_ups_are_counted_and_grow() {
        let mut w = ThreadWakeups::default();
        w.sample(std::process::id());
        let before = w.total();
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(2));
        }
        w.sample(std::process::id());
        assert!(w.total() >= before + 5, "{} -> {}", before, w.total());
    }

    #[test]
    fn stat_fields_after_a_command_with_spaces() {
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 300 200 0 0";
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        assert_eq!(cpu_seconds(stat), Some(500.0 / ticks));
    }
}
