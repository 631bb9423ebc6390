//! The journald source against real journal files: `systemd-journal-remote`
//! writes them from export-format input (each run appends), the real shipd
//! binary reads them through `journalctl --directory` and ships them to an
//! in-process OTLP/HTTP receiver. Every test counts entries in and out.

mod common;

use common::*;
use opentelemetry_proto::tonic::common::v1::any_value;
use shipd::sources::journald::export::write_entry;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(60);
const BOOT_ID: &str = "5f1b2c3d4e5f60718293a4b5c6d7e8f9";

/// One journal entry as the test writes it.
#[derive(Clone)]
struct TestEntry {
    message: Vec<u8>,
    priority: u8,
    unit: Option<String>,
    identifier: String,
    pid: u32,
    /// `_SOURCE_REALTIME_TIMESTAMP`, µs.
    source_time_us: u64,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// `n` entries tagged `tag`, spread over a few units and every priority.
fn entries(tag: &str, n: usize, unit: Option<&str>) -> Vec<TestEntry> {
    let base = now_us() - 60_000_000;
    (0..n)
        .map(|i| TestEntry {
            message: format!("{tag} entry {i}: GET /api/{i} 200").into_bytes(),
            priority: (i % 8) as u8,
            unit: unit.map(str::to_owned),
            identifier: unit
                .map(|u| u.trim_end_matches(".service").to_owned())
                .unwrap_or_else(|| "cron".into()),
            pid: 1000 + i as u32,
            source_time_us: base + i as u64 * 1000 + 7,
        })
        .collect()
}

fn export_of(entries: &[TestEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let realtime = (e.source_time_us + 500).to_string();
        let monotonic = (1_000_000 + i as u64).to_string();
        let source_time = e.source_time_us.to_string();
        let priority = e.priority.to_string();
        let pid = e.pid.to_string();
        let mut fields: Vec<(&str, &[u8])> = vec![
            ("__REALTIME_TIMESTAMP", realtime.as_bytes()),
            ("__MONOTONIC_TIMESTAMP", monotonic.as_bytes()),
            ("_BOOT_ID", BOOT_ID.as_bytes()),
            ("MESSAGE", &e.message),
            ("PRIORITY", priority.as_bytes()),
            ("SYSLOG_IDENTIFIER", e.identifier.as_bytes()),
            ("_PID", pid.as_bytes()),
            ("_HOSTNAME", b"pi-7".as_slice()),
            ("_TRANSPORT", b"journal".as_slice()),
            ("_SOURCE_REALTIME_TIMESTAMP", source_time.as_bytes()),
        ];
        if let Some(unit) = &e.unit {
            fields.push(("_SYSTEMD_UNIT", unit.as_bytes()));
        }
        write_entry(&mut out, &fields);
    }
    out
}

fn journal_remote() -> PathBuf {
    [
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("systemd-journal-remote is installed (test.sh installs it)")
}

/// Appends `entries` to `journal_dir/x.journal` with systemd-journal-remote.
fn append_journal(journal_dir: &Path, entries: &[TestEntry]) {
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), export_of(entries)).unwrap();
    let out = Command::new(journal_remote())
        .arg(format!(
            "--output={}",
            journal_dir.join("x.journal").display()
        ))
        .arg(input.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-journal-remote failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Environment for shipd reading `journal_dir` from its beginning.
fn journald_env(
    receiver: &Receiver,
    journal_dir: &Path,
    data_dir: &Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("SHIPD_JOURNALD", journal_dir.display().to_string()),
        ("SHIPD_READ_FROM", "beginning".into()),
        ("SHIPD_DATA_DIR", data_dir.display().to_string()),
        ("OPENOBSERVE_URL", receiver.url()),
        ("OPENOBSERVE_ORG", "pis".into()),
        ("OPENOBSERVE_USER", "root@example.com".into()),
        ("OPENOBSERVE_PASSWORD", "Complexpass#123".into()),
        ("SHIPD_BATCH_TIMEOUT", "200ms".into()),
        ("SHIPD_RETRY_MAX", "1s".into()),
        ("SHIPD_CHECKPOINT_INTERVAL", "200ms".into()),
    ]
}

/// A delivered record with what the journald tests assert on.
#[derive(Debug, Clone)]
struct Delivered {
    body: String,
    time_unix_nano: u64,
    severity_number: i32,
    severity_text: String,
    attrs: Vec<(String, any_value::Value)>,
    service: Option<String>,
}

impl Delivered {
    fn attr(&self, key: &str) -> Option<&any_value::Value> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attr(key) {
            Some(any_value::Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }
}

fn delivered(receiver: &Receiver) -> Vec<Delivered> {
    let mut out = Vec::new();
    for captured in receiver.captured() {
        for rl in &captured.request.resource_logs {
            let service = rl.resource.as_ref().and_then(|r| {
                r.attributes.iter().find_map(|kv| match &kv.value {
                    Some(v) if kv.key == "service.name" => match &v.value {
                        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    },
                    _ => None,
                })
            });
            for sl in &rl.scope_logs {
                for lr in &sl.log_records {
                    let body = match lr.body.as_ref().and_then(|b| b.value.clone()) {
                        Some(any_value::Value::StringValue(s)) => s,
                        other => format!("{other:?}"),
                    };
                    out.push(Delivered {
                        body,
                        time_unix_nano: lr.time_unix_nano,
                        severity_number: lr.severity_number,
                        severity_text: lr.severity_text.clone(),
                        attrs: lr
                            .attributes
                            .iter()
                            .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?.value?)))
                            .collect(),
                        service: service.clone(),
                    });
                }
            }
        }
    }
    out
}

fn bodies_of(entries: &[TestEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.message).into_owned())
        .collect()
}

fn assert_exactly_once(got: &[Delivered], expected: &[String]) {
    let bodies: Vec<&String> = got.iter().map(|d| &d.body).collect();
    let unique: HashSet<&String> = bodies.iter().copied().collect();
    assert_eq!(bodies.len(), unique.len(), "duplicates delivered");
    let want: HashSet<&String> = expected.iter().collect();
    assert_eq!(unique, want, "delivered set differs from written set");
}

/// Waits for `n` records, then a little longer so duplicates would show.
fn settle(receiver: &Receiver, n: usize, shipd: &Shipd) {
    let got = receiver.wait_for(n, WAIT);
    assert!(got >= n, "got {got} of {n} records; log:\n{}", shipd.log());
    std::thread::sleep(Duration::from_millis(800));
}

const SEVERITIES: [(i32, &str); 8] = [
    (21, "emerg"),
    (19, "alert"),
    (18, "crit"),
    (17, "err"),
    (13, "warning"),
    (10, "notice"),
    (9, "info"),
    (5, "debug"),
];

#[test]
fn journal_entries_arrive_once_with_mapped_fields_across_restart_and_appends() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let data = dir.path().join("data");
    let first = entries("first", 40, Some("nginx.service"));
    append_journal(&journal, &first);

    let receiver = http_receiver(&rt, always_accept());
    let shipd = Shipd::start(
        &journald_env(&receiver, &journal, &data),
        &dir.path().join("shipd.log"),
    );
    settle(&receiver, first.len(), &shipd);
    let got = delivered(&receiver);
    assert_exactly_once(&got, &bodies_of(&first));
    for d in &got {
        let written = first
            .iter()
            .find(|e| e.message == d.body.as_bytes())
            .unwrap();
        assert_eq!(
            d.time_unix_nano,
            written.source_time_us * 1000,
            "time from _SOURCE_REALTIME_TIMESTAMP"
        );
        let (number, text) = SEVERITIES[written.priority as usize];
        assert_eq!(
            (d.severity_number, d.severity_text.as_str()),
            (number, text)
        );
        assert_eq!(d.attr_str("systemd.unit"), Some("nginx.service"));
        assert_eq!(d.attr_str("syslog.identifier"), Some("nginx"));
        assert_eq!(
            d.attr("process.pid"),
            Some(&any_value::Value::IntValue(i64::from(written.pid)))
        );
        assert_eq!(d.attr_str("host.hostname"), Some("pi-7"));
        assert_eq!(d.attr_str("systemd.boot_id"), Some(BOOT_ID));
        assert_eq!(d.attr_str("journald._transport"), Some("journal"));
        assert!(d.attr("journald.__cursor").is_none());
        assert_eq!(d.attr_str("log.record.uid").map(str::len), Some(32));
        assert_eq!(d.service.as_deref(), Some("nginx"));
    }
    let uids: HashSet<&str> = got
        .iter()
        .filter_map(|d| d.attr_str("log.record.uid"))
        .collect();
    assert_eq!(uids.len(), got.len(), "one uid per entry");

    // Appended while shipd follows the journal.
    let live = entries("live", 25, Some("nginx.service"));
    append_journal(&journal, &live);
    settle(&receiver, first.len() + live.len(), &shipd);
    let expected: Vec<String> = bodies_of(&first)
        .into_iter()
        .chain(bodies_of(&live))
        .collect();
    assert_exactly_once(&delivered(&receiver), &expected);
    assert_eq!(shipd.terminate(), Some(0));

    // Appended while shipd is stopped: only these arrive after the restart.
    let later = entries("later", 30, None);
    append_journal(&journal, &later);
    let receiver2 = http_receiver(&rt, always_accept());
    let shipd = Shipd::start(
        &journald_env(&receiver2, &journal, &data),
        &dir.path().join("shipd2.log"),
    );
    settle(&receiver2, later.len(), &shipd);
    let got = delivered(&receiver2);
    assert_exactly_once(&got, &bodies_of(&later));
    assert!(got.iter().all(|d| d.service.as_deref() == Some("cron")));
    assert_eq!(
        receiver.count(),
        first.len() + live.len(),
        "nothing went to the old receiver"
    );
}

#[test]
fn unit_filters_include_and_exclude_units() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let nginx = entries("nginx", 20, Some("nginx.service"));
    let ssh = entries("ssh", 15, Some("ssh.service"));
    let cron = entries("cron", 10, None);
    let marker = entries("marker", 1, Some("nginx.service"));
    for batch in [&nginx, &ssh, &cron, &marker] {
        append_journal(&journal, batch);
    }

    // Include: only nginx (a bare name means nginx.service).
    let receiver = http_receiver(&rt, always_accept());
    let mut env = journald_env(&receiver, &journal, &dir.path().join("data-include"));
    env.push(("SHIPD_JOURNALD_UNITS", "nginx".into()));
    let shipd = Shipd::start(&env, &dir.path().join("include.log"));
    settle(&receiver, nginx.len() + marker.len(), &shipd);
    let expected: Vec<String> = bodies_of(&nginx)
        .into_iter()
        .chain(bodies_of(&marker))
        .collect();
    assert_exactly_once(&delivered(&receiver), &expected);
    drop(shipd);

    // Exclude: everything but ssh; the marker, written last, proves the
    // excluded entries were read and passed over.
    let receiver = http_receiver(&rt, always_accept());
    let mut env = journald_env(&receiver, &journal, &dir.path().join("data-exclude"));
    env.push(("SHIPD_JOURNALD_EXCLUDE_UNITS", "ssh".into()));
    let shipd = Shipd::start(&env, &dir.path().join("exclude.log"));
    let want = nginx.len() + cron.len() + marker.len();
    settle(&receiver, want, &shipd);
    let expected: Vec<String> = [&nginx, &cron, &marker]
        .into_iter()
        .flat_map(|b| bodies_of(b))
        .collect();
    assert_exactly_once(&delivered(&receiver), &expected);
    assert_eq!(
        shipd.metric("shipd_events_dropped_total{component=\"journald\",reason=\"excluded_unit\"}"),
        ssh.len() as u64
    );
}

/// The pid of shipd's journalctl child.
fn journalctl_child(shipd_pid: u32, timeout: Duration) -> Option<u32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let out = Command::new("pgrep")
            .args(["-P", &shipd_pid.to_string(), "journalctl"])
            .output()
            .unwrap();
        let pids = String::from_utf8_lossy(&out.stdout);
        if let Some(pid) = pids.lines().next().and_then(|l| l.trim().parse().ok()) {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn killed_journalctl_is_restarted_and_resumes_from_its_cursor() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let bulk = entries("bulk", 20_000, Some("app.service"));
    append_journal(&journal, &bulk);

    let receiver = http_receiver(&rt, always_accept());
    let mut env = journald_env(&receiver, &journal, &dir.path().join("data"));
    // Small queues: journalctl blocks on its pipe mid-stream.
    env.push(("SHIPD_CHANNEL_BYTES", "32KiB".into()));
    env.push(("SHIPD_BATCH_MAX_EVENTS", "200".into()));
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    let first = journalctl_child(shipd.child.id(), WAIT).expect("journalctl child runs");
    let got = receiver.wait_for(1, WAIT);
    assert!(got >= 1, "nothing delivered; log:\n{}", shipd.log());
    let before_kill = receiver.count();
    let status = Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        before_kill < bulk.len(),
        "journalctl was killed after the stream was already delivered; the test proves nothing"
    );

    assert!(
        shipd.wait_log("journalctl ended; restarting", WAIT),
        "{}",
        shipd.log()
    );
    let second = journalctl_child(shipd.child.id(), WAIT).expect("journalctl restarted");
    assert_ne!(first, second);
    let tail = entries("after-kill", 50, Some("app.service"));
    append_journal(&journal, &tail);
    settle(&receiver, bulk.len() + tail.len(), &shipd);
    let expected: Vec<String> = bodies_of(&bulk)
        .into_iter()
        .chain(bodies_of(&tail))
        .collect();
    assert_exactly_once(&delivered(&receiver), &expected);
    assert!(shipd.metric("shipd_journalctl_restarts_total{component=\"journald\"}") >= 1);
}

#[test]
fn binary_message_is_delivered_lossily_and_counted() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let mut batch = entries("text", 3, Some("app.service"));
    batch[1].message = b"caf\xe9 line one\nline two \xff".to_vec();
    append_journal(&journal, &batch);

    let receiver = http_receiver(&rt, always_accept());
    let shipd = Shipd::start(
        &journald_env(&receiver, &journal, &dir.path().join("data")),
        &dir.path().join("shipd.log"),
    );
    settle(&receiver, batch.len(), &shipd);
    let bodies: HashSet<String> = delivered(&receiver).into_iter().map(|d| d.body).collect();
    assert!(
        bodies.contains("caf\u{fffd} line one\nline two \u{fffd}"),
        "{bodies:?}"
    );
    assert_eq!(bodies.len(), batch.len());
    assert_eq!(
        shipd.metric("shipd_invalid_utf8_total{component=\"journald\"}"),
        1
    );
}

/// Journal events carry their source's name into the pipeline: a step
/// `on` that source runs on them and a route `source == NAME` matches
/// (they once entered nameless, so both silently passed them by).
#[test]
fn steps_on_the_journald_source_and_routes_by_its_name_apply_to_its_events() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let written = entries("named", 5, Some("nginx.service"));
    append_journal(&journal, &written);
    let receiver = http_receiver(&rt, always_accept());
    let pipeline = dir.path().join("named.ship");
    std::fs::write(
        &pipeline,
        format!(
            "source sys = journald {{ directory = \"{}\", read_from = \"beginning\" }}\n\
             sink o2 = openobserve {{ url = env(\"OPENOBSERVE_URL\") ?? \"http://127.0.0.1:9\" }}\n\
             sink console = console {{}}\n\
             step mark on sys {{\n  .attributes.seen_by = \"mark\"\n}}\n\
             route {{\n  source == sys => o2 stream \"from_sys\"\n  else => console\n}}\n",
            journal.display()
        ),
    )
    .unwrap();
    let env = [
        ("OPENOBSERVE_URL", receiver.url()),
        (
            "SHIPD_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
    ];
    let shipd = Shipd::start_with_args(
        &["--config", &pipeline.display().to_string()],
        &env,
        &dir.path().join("shipd.log"),
    );
    settle(&receiver, written.len(), &shipd);
    let got = delivered(&receiver);
    assert_exactly_once(&got, &bodies_of(&written));
    for d in &got {
        assert_eq!(d.attr_str("seen_by"), Some("mark"), "{d:?}");
    }
    shipd.terminate();
}
