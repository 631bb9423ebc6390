//! The seven end-to-end scenarios. Each prepares its workload in a fresh
//! directory, starts a receiver and the agent, drives the load, and returns
//! what it measured. Scenarios never share state; they only report, they do
//! not judge against the goals.

use super::process::Agent;
use super::receiver::Receiver;
use super::report::{percentile_ms, ScenarioResult};
use super::workload::{journal_export, json_app_line, probe_line, NginxLines};
use super::{BenchError, Settings};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every scenario name, in run order.
pub const ALL: [&str; 7] = [
    "raw",
    "nginx",
    "json",
    "files2000",
    "journald",
    "idle",
    "burst",
];

/// Longest wait for a backlog to be delivered before the run is cut short.
const BACKLOG_TIMEOUT: Duration = Duration::from_secs(300);
/// Probe lines per second written beside the workload.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Time given to the agent to start before a timed window opens.
const WARMUP: Duration = Duration::from_secs(3);
/// Records per second the receiver accepts in the burst scenario.
const BURST_CAPACITY: f64 = 2000.0;

pub fn run(name: &str, s: &Settings, dir: &Path) -> Result<ScenarioResult, BenchError> {
    std::fs::create_dir_all(dir.join("data"))?;
    let mut result = match name {
        "raw" => backlog(s, dir, Parse::Raw)?,
        "nginx" => backlog(s, dir, Parse::Nginx)?,
        "json" => backlog(s, dir, Parse::Json)?,
        "files2000" => many_files(s, dir)?,
        "journald" => journald(s, dir)?,
        "idle" => idle(s, dir)?,
        "burst" => burst(s, dir)?,
        other => return Err(BenchError::UnknownScenario(other.to_owned())),
    };
    result.name = name.to_owned();
    Ok(result)
}

#[derive(Clone, Copy, PartialEq)]
enum Parse {
    Raw,
    Nginx,
    Json,
}

/// The pipeline every file scenario runs: `lines` from the workload globs,
/// `probe` from the probe file, one OpenObserve sink.
fn file_pipeline(s: &Settings, dir: &Path, url: &str, include: &str, parse: Parse) -> String {
    let data = dir.join("data");
    let probe = dir.join("probe.log");
    let step = match parse {
        Parse::Raw => "",
        Parse::Nginx => {
            r#"
step parse on lines {
  .http = parse_nginx!(.message)
  .timestamp = .http.timestamp
  let status = .http.status ?? 0
  .level = if status >= 500 { "error" } else if status >= 400 { "warn" } else { "info" }
}
"#
        }
        Parse::Json => {
            r#"
step parse on lines {
  .app = parse_json!(.message)
  .level = .app.level ?? "info"
  del(.message)
}
"#
        }
    };
    let routes = match parse {
        Parse::Raw => "  else => o2 stream \"raw\"\n",
        Parse::Nginx => "  .level == \"error\" => o2 stream \"nginx_errors\"\n  else => o2 stream \"nginx_access\"\n",
        Parse::Json => "  .level == \"error\" => o2 stream \"app_errors\"\n  else => o2 stream \"app\"\n",
    };
    format!(
        r#"settings {{
  data_dir = "{data}"
  api_addr = "off"
}}
source lines = files {{ include = ["{include}"], read_from = "beginning" }}
source probe = files {{ include = ["{probe}"], read_from = "beginning" }}
{step}
sink o2 = openobserve {{ url = "{url}", compression = "{compression}", too_old = "keep"{extra} }}

route {{
  source == probe => o2 stream "probe"
{routes}}}
"#,
        data = data.display(),
        probe = probe.display(),
        compression = s.compression,
        extra = extra_sink_options(s),
    )
}

/// `--sink-option`s, each after a comma.
fn extra_sink_options(s: &Settings) -> String {
    s.sink_options.iter().map(|o| format!(", {o}")).collect()
}

fn write_pipeline(dir: &Path, text: &str) -> Result<PathBuf, BenchError> {
    let path = dir.join("bench.ship");
    std::fs::write(&path, text)?;
    std::fs::write(dir.join("probe.log"), "")?;
    Ok(path)
}

/// A thread appending lines to a file at a steady rate until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Writer {
    /// Calls `fill(seq, now_ns, buf)` `per_second` times a second, in ticks
    /// of `tick`; `fill` appends one line to `buf` and names the file.
    fn start<F>(per_second: f64, tick: Duration, mut fill: F) -> Writer
    where
        F: FnMut(u64, u64, &mut String) -> PathBuf + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let (stop_t, written_t, bytes_t) =
            (Arc::clone(&stop), Arc::clone(&written), Arc::clone(&bytes));
        let thread = std::thread::spawn(move || -> std::io::Result<()> {
            let started = Instant::now();
            let mut seq = 0u64;
            let mut line = String::new();
            let mut ticks = 0u32;
            while !stop_t.load(Ordering::Relaxed) {
                ticks += 1;
                let due = (per_second * (tick * ticks).as_secs_f64()) as u64;
                while seq < due {
                    line.clear();
                    let now = crate::event::unix_nanos(std::time::SystemTime::now());
                    let path = fill(seq, now, &mut line);
                    line.push('\n');
                    std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&path)?
                        .write_all(line.as_bytes())?;
                    seq += 1;
                    written_t.store(seq, Ordering::Relaxed);
                    bytes_t.fetch_add(line.len() as u64, Ordering::Relaxed);
                }
                if let Some(wait) = (started + tick * ticks).checked_duration_since(Instant::now())
                {
                    std::thread::sleep(wait);
                }
            }
            Ok(())
        });
        Writer {
            stop,
            written,
            bytes,
            thread: Some(thread),
        }
    }

    /// A probe line every [`PROBE_INTERVAL`] into `path`.
    fn probes(path: PathBuf) -> Writer {
        Writer::start(
            1.0 / PROBE_INTERVAL.as_secs_f64(),
            PROBE_INTERVAL,
            move |seq, now, buf| {
                buf.push_str(probe_line(now, seq).trim_end());
                path.clone()
            },
        )
    }

    /// Stops; returns (lines, bytes) written.
    fn finish(mut self) -> Result<(u64, u64), BenchError> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().map_err(|_| BenchError::Writer)??;
        }
        Ok((
            self.written.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        ))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Writes about `mb` MB of nginx lines (JSON application lines for
/// [`Parse::Json`]) to `path`; returns (lines, bytes).
fn write_corpus(path: &Path, mb: u64, parse: Parse) -> Result<(u64, u64), BenchError> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut gen = NginxLines::new(0x5eed);
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut line = String::new();
    while bytes < mb * 1_000_000 {
        line.clear();
        if parse == Parse::Json {
            json_app_line(&mut gen, (lines % 20) as usize, None, &mut line);
        } else {
            gen.next_line(&mut line);
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        lines += 1;
        bytes += line.len() as u64;
    }
    out.flush()?;
    Ok((lines, bytes))
}

/// Waits until the receiver counted `expected` payload records; returns
/// whether it did before `timeout`, and when.
fn wait_for(
    receiver: &Receiver,
    agent: &mut Agent,
    expected: u64,
    timeout: Duration,
) -> Result<(bool, Instant), BenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        if receiver.counts.payload_records() >= expected {
            return Ok((true, Instant::now()));
        }
        if Instant::now() >= deadline {
            return Ok((false, Instant::now()));
        }
        agent.snapshot()?;
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn latencies(receiver: &Receiver, result: &mut ScenarioResult) {
    let mut l = receiver.counts.take_latencies();
    result.latency_samples = l.len();
    result.latency_p50_ms = percentile_ms(&mut l, 50.0);
    result.latency_p99_ms = percentile_ms(&mut l, 99.0);
}

/// (1), (2) and (3): a corpus of nginx lines read from the beginning,
/// shipped raw or parsed and routed to two streams, or of JSON application
/// lines parsed and routed; done when all arrived.
fn backlog(s: &Settings, dir: &Path, parse: Parse) -> Result<ScenarioResult, BenchError> {
    std::fs::create_dir_all(dir.join("logs"))?;
    let (lines, bytes) = write_corpus(&dir.join("logs/access.log"), s.mb, parse)?;
    let receiver = Receiver::start(None)?;
    let include = dir.join("logs/*.log");
    let pipeline = write_pipeline(
        dir,
        &file_pipeline(
            s,
            dir,
            &receiver.url(),
            &include.display().to_string(),
            parse,
        ),
    )?;
    let agent = Agent::start(&s.shipd, &pipeline, &[], &dir.join("shipd.log"))?;
    let probes = Writer::probes(dir.join("probe.log"));
    let notes = format!(
        "{lines} lines, {:.0} MB backlog read from the beginning; start-up included",
        bytes as f64 / 1e6
    );
    backlog_result(receiver, agent, probes, lines, bytes, notes)
}

/// Waits until `expected` records arrived (or the backlog timeout) and
/// measures the run; `input_bytes` is scaled down when it timed out.
fn backlog_result(
    receiver: Receiver,
    mut agent: Agent,
    probes: Writer,
    expected: u64,
    input_bytes: u64,
    notes: String,
) -> Result<ScenarioResult, BenchError> {
    let (done, at) = wait_for(&receiver, &mut agent, expected, BACKLOG_TIMEOUT)?;
    let snap = agent.snapshot()?;
    let wall = at.duration_since(agent.started);
    probes.finish()?;
    let events = receiver.counts.payload_records();
    let mut r = ScenarioResult {
        events,
        input_bytes: if done {
            input_bytes
        } else {
            input_bytes * events / expected.max(1)
        },
        wall_seconds: wall.as_secs_f64(),
        cpu_seconds: snap.cpu_seconds,
        peak_rss_bytes: snap.hwm,
        steady_rss_bytes: agent.steady_rss(wall / 2),
        disk_write_bytes: snap.write_bytes,
        wire_bytes: receiver.counts.wire_bytes.load(Ordering::Relaxed),
        notes,
        ..Default::default()
    };
    if !done {
        r.notes
            .push_str(&format!("; TIMED OUT after {BACKLOG_TIMEOUT:?}"));
    }
    latencies(&receiver, &mut r);
    agent.stop(Duration::from_secs(15));
    Ok(r)
}

/// (4) 2,000 files, one JSON line per file per second, every line a probe.
fn many_files(s: &Settings, dir: &Path) -> Result<ScenarioResult, BenchError> {
    const FILES: usize = 2000;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let paths: Vec<PathBuf> = (0..FILES)
        .map(|i| logs.join(format!("svc-{i:04}.log")))
        .collect();
    for p in &paths {
        std::fs::write(p, "")?;
    }
    let receiver = Receiver::start(None)?;
    let include = logs.join("*.log");
    let pipeline = write_pipeline(
        dir,
        &file_pipeline(
            s,
            dir,
            &receiver.url(),
            &include.display().to_string(),
            Parse::Raw,
        ),
    )?;
    let mut agent = Agent::start(&s.shipd, &pipeline, &[], &dir.join("shipd.log"))?;
    std::thread::sleep(WARMUP);
    let before = agent.snapshot()?;
    let window_start = Instant::now();
    let mut gen = NginxLines::new(0xf11e);
    let writer = Writer::start(
        FILES as f64,
        Duration::from_millis(50),
        move |seq, now, buf| {
            let file = seq as usize % FILES;
            json_app_line(&mut gen, file, Some(now), buf);
            paths[file].clone()
        },
    );
    let window = s.duration.unwrap_or(Duration::from_secs(60));
    std::thread::sleep(window);
    let (lines, bytes) = writer.finish()?;
    let wall = window_start.elapsed();
    let after = agent.snapshot()?;
    // Let the last second of lines arrive before counting.
    let deadline = Instant::now() + Duration::from_secs(5);
    while receiver.counts.log_records() < lines && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut r = ScenarioResult {
        events: receiver.counts.log_records(),
        input_bytes: bytes,
        wall_seconds: wall.as_secs_f64(),
        cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        peak_rss_bytes: after.hwm,
        steady_rss_bytes: agent.steady_rss(WARMUP + wall / 2),
        disk_write_bytes: after.write_bytes,
        wire_bytes: receiver.counts.wire_bytes.load(Ordering::Relaxed),
        notes: format!(
            "{FILES} files, {lines} JSON lines written over {:.0} s, {} received",
            wall.as_secs_f64(),
            receiver.counts.log_records()
        ),
        ..Default::default()
    };
    latencies(&receiver, &mut r);
    agent.stop(Duration::from_secs(15));
    Ok(r)
}

fn journal_remote() -> Option<PathBuf> {
    [
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// (5) a journal written by systemd-journal-remote, read through
/// `journalctl --directory` from the beginning; done when all arrived.
fn journald(s: &Settings, dir: &Path) -> Result<ScenarioResult, BenchError> {
    let remote = journal_remote().ok_or(BenchError::Missing("systemd-journal-remote"))?;
    let entries = (s.mb * 1_000_000 / 4 / 160).max(1000) as usize;
    let now_us = crate::event::unix_nanos(std::time::SystemTime::now()) / 1000;
    let (export, message_bytes) = journal_export(entries, now_us - entries as u64 * 10);
    let journal = dir.join("journal");
    std::fs::create_dir_all(&journal)?;
    let input = dir.join("input.export");
    std::fs::write(&input, &export)?;
    drop(export);
    let status = std::process::Command::new(remote)
        .arg(format!(
            "--output={}",
            journal.join("remote.journal").display()
        ))
        .arg(&input)
        .stderr(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        return Err(BenchError::Failed(format!(
            "systemd-journal-remote: {status}"
        )));
    }
    std::fs::remove_file(&input)?;
    let receiver = Receiver::start(None)?;
    let text = format!(
        r#"settings {{
  data_dir = "{data}"
  api_addr = "off"
}}
source journal = journald {{ directory = "{journal}", read_from = "beginning" }}
source probe = files {{ include = ["{probe}"], read_from = "beginning" }}
sink o2 = openobserve {{ url = "{url}", compression = "{compression}", too_old = "keep"{extra} }}
route {{
  source == probe => o2 stream "probe"
  else => o2 stream "journal"
}}
"#,
        data = dir.join("data").display(),
        journal = journal.display(),
        probe = dir.join("probe.log").display(),
        url = receiver.url(),
        compression = s.compression,
        extra = extra_sink_options(s),
    );
    let pipeline = write_pipeline(dir, &text)?;
    let agent = Agent::start(&s.shipd, &pipeline, &[], &dir.join("shipd.log"))?;
    let probes = Writer::probes(dir.join("probe.log"));
    let notes = format!(
        "{entries} entries ({:.0} MB of MESSAGE); CPU is shipd's only (journalctl is a child, not counted)",
        message_bytes as f64 / 1e6
    );
    backlog_result(
        receiver,
        agent,
        probes,
        entries as u64,
        message_bytes,
        notes,
    )
}

/// (6) the embedded default pipeline (one idle tailed file, host metrics
/// every 15 s, OpenObserve sink) doing nothing else.
fn idle(s: &Settings, dir: &Path) -> Result<ScenarioResult, BenchError> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    std::fs::write(logs.join("app.log"), "")?;
    let receiver = Receiver::start(None)?;
    let env = [
        ("OPENOBSERVE_URL", receiver.url()),
        ("SHIPD_LOG_FILES", logs.join("*.log").display().to_string()),
        ("SHIPD_JOURNALD", "off".to_owned()),
        ("SHIPD_DATA_DIR", dir.join("data").display().to_string()),
        ("SHIPD_API_ADDR", "off".to_owned()),
        ("SHIPD_COMPRESSION", s.compression.clone()),
    ];
    let mut agent = Agent::start_default(&s.shipd, &env, &dir.join("shipd.log"))?;
    std::thread::sleep(WARMUP);
    let before = agent.snapshot()?;
    let wakeups_before = agent.wakeups();
    let window = s.duration.unwrap_or(Duration::from_secs(60));
    let started = Instant::now();
    std::thread::sleep(window);
    let after = agent.snapshot()?;
    let wakeups = agent.wakeups().saturating_sub(wakeups_before);
    let r = ScenarioResult {
        wakeups_per_minute: Some(wakeups as f64 * 60.0 / started.elapsed().as_secs_f64()),
        events: 0,
        input_bytes: 0,
        wall_seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        peak_rss_bytes: after.hwm,
        steady_rss_bytes: agent.steady_rss(WARMUP),
        disk_write_bytes: after.write_bytes,
        wire_bytes: receiver.counts.wire_bytes.load(Ordering::Relaxed),
        notes: format!(
            "default pipeline: 1 idle file, host metrics every 15 s ({} metric requests); CPU resolution 10 ms",
            receiver.counts.metric_requests.load(Ordering::Relaxed)
        ),
        ..Default::default()
    };
    agent.stop(Duration::from_secs(15));
    Ok(r)
}

/// (7) lines offered at 5× what the (throttled) receiver accepts: memory
/// must stay bounded while the file source falls behind (backpressure).
fn burst(s: &Settings, dir: &Path) -> Result<ScenarioResult, BenchError> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let file = logs.join("burst.log");
    std::fs::write(&file, "")?;
    let receiver = Receiver::start(Some(BURST_CAPACITY))?;
    let include = logs.join("*.log");
    let pipeline = write_pipeline(
        dir,
        &file_pipeline(
            s,
            dir,
            &receiver.url(),
            &include.display().to_string(),
            Parse::Raw,
        ),
    )?;
    let mut agent = Agent::start(&s.shipd, &pipeline, &[], &dir.join("shipd.log"))?;
    std::thread::sleep(WARMUP);
    let before = agent.snapshot()?;
    let started = Instant::now();
    let probes = Writer::probes(dir.join("probe.log"));
    let mut gen = NginxLines::new(0xb0057);
    let writer = Writer::start(
        5.0 * BURST_CAPACITY,
        Duration::from_millis(10),
        move |_, _, buf| {
            gen.next_line(buf);
            file.clone()
        },
    );
    let window = s.duration.unwrap_or(Duration::from_secs(30));
    std::thread::sleep(window);
    let (lines, bytes) = writer.finish()?;
    probes.finish()?;
    let after = agent.snapshot()?;
    let wall = started.elapsed();
    let received = receiver.counts.payload_records();
    let mut r = ScenarioResult {
        events: received,
        input_bytes: bytes * received / lines.max(1),
        wall_seconds: wall.as_secs_f64(),
        cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        peak_rss_bytes: after.hwm,
        steady_rss_bytes: agent.steady_rss(WARMUP + wall / 2),
        disk_write_bytes: after.write_bytes,
        wire_bytes: receiver.counts.wire_bytes.load(Ordering::Relaxed),
        notes: format!(
            "offered {lines} lines ({:.0}/s) to a receiver taking {BURST_CAPACITY:.0}/s; {received} delivered, {} left in the file (backpressure); latency is probe lines queued behind the burst",
            lines as f64 / wall.as_secs_f64(),
            lines.saturating_sub(received)
        ),
        ..Default::default()
    };
    latencies(&receiver, &mut r);
    agent.stop(Duration::from_secs(15));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backlog_pipeline_loads() {
        let settings = Settings {
            shipd: PathBuf::from("shipd"),
            duration: None,
            mb: 1,
            compression: "gzip".into(),
            sink_options: vec!["in_flight = 2".into()],
        };
        for parse in [Parse::Raw, Parse::Nginx, Parse::Json] {
            let text = file_pipeline(
                &settings,
                Path::new("/tmp/bench"),
                "http://127.0.0.1:1",
                "/tmp/bench/logs/*.log",
                parse,
            );
            if let Err(d) = crate::lang::load(&text) {
                panic!("{}", crate::lang::render("bench.ship", &text, &d));
            }
        }
    }
}
