//! Journald source throughput, in journal entries per second.
//!
//! - `export_parse_map`: the source's own CPU work per entry — the export
//!   parser ([`ExportParser`]) and the record mapping ([`RecordMapper`]) over
//!   an in-memory export stream of 100,000 entries shaped like a Pi's system
//!   journal (15 fields, text and binary), fed in 64 KiB reads.
//! - `journalctl_end_to_end`: a real journal of the same entries written by
//!   `systemd-journal-remote` (skipped when it is not installed), read by
//!   `journalctl --directory --output=export` and parsed and mapped as it
//!   streams: the rate the source can reach through journalctl.
//!
//! Run with `cargo bench --bench journald`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shipd::sources::journald::export::{write_entry, ExportParser};
use shipd::sources::journald::record::RecordMapper;
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ENTRIES: usize = 100_000;
const UNITS: [&str; 5] = [
    "nginx.service",
    "ssh.service",
    "k3s.service",
    "cron.service",
    "systemd-networkd.service",
];

/// An export stream of `ENTRIES` realistic entries.
fn export_stream() -> Vec<u8> {
    let mut out = Vec::with_capacity(ENTRIES * 600);
    let base_us: u64 = 1_764_000_000_000_000;
    for i in 0..ENTRIES {
        let unit = UNITS[i % UNITS.len()];
        let realtime = (base_us + i as u64 * 1000).to_string();
        let monotonic = (5_000_000 + i as u64 * 1000).to_string();
        let pid = (400 + i % 50).to_string();
        let priority = (3 + i % 4).to_string();
        let message = if i % 50 == 0 {
            format!("request {i} failed:\n  at handler (app.js:{})", i % 300)
        } else {
            format!(
                "10.0.{}.{} - - \"GET /api/v1/items/{i} HTTP/1.1\" 200 {} \"-\" \"curl/8.0\"",
                i % 256,
                (i / 256) % 256,
                100 + i % 900
            )
        };
        let cursor = format!(
            "s=fe55421b2f594f09aa4b4ee82b30cd54;i={:x};b=5f1b2c3d4e5f60718293a4b5c6d7e8f9;m={monotonic};t={realtime};x=f25df854086c8538",
            i + 1
        );
        write_entry(
            &mut out,
            &[
                ("__CURSOR", cursor.as_bytes()),
                ("__REALTIME_TIMESTAMP", realtime.as_bytes()),
                ("__MONOTONIC_TIMESTAMP", monotonic.as_bytes()),
                ("_BOOT_ID", b"5f1b2c3d4e5f60718293a4b5c6d7e8f9"),
                ("PRIORITY", priority.as_bytes()),
                ("SYSLOG_FACILITY", b"3"),
                (
                    "SYSLOG_IDENTIFIER",
                    unit.trim_end_matches(".service").as_bytes(),
                ),
                ("_PID", pid.as_bytes()),
                ("_UID", b"33"),
                ("_GID", b"33"),
                ("_COMM", unit.trim_end_matches(".service").as_bytes()),
                ("_TRANSPORT", b"stdout"),
                ("_SYSTEMD_UNIT", unit.as_bytes()),
                ("_HOSTNAME", b"pi-node-03"),
                ("MESSAGE", message.as_bytes()),
            ],
        );
    }
    out
}

/// Parses and maps a stream arriving in `reads`; returns entries seen.
fn parse_and_map(reads: impl Iterator<Item = Vec<u8>>) -> usize {
    let mut parser = ExportParser::new(1024 * 1024);
    let mut mapper = RecordMapper::new("journald", "pi-node-03");
    let mut n = 0;
    for chunk in reads {
        parser.push(&chunk);
        while let Ok(Some(entry)) = parser.next_entry() {
            black_box(mapper.map(&entry, 1));
            n += 1;
        }
    }
    n
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

fn write_journal(remote: &Path, dir: &Path, stream: &[u8]) {
    let input = dir.join("input.export");
    std::fs::write(&input, stream).expect("write export input");
    let journal_dir = dir.join("journal");
    std::fs::create_dir_all(&journal_dir).expect("journal dir");
    let status = Command::new(remote)
        .arg(format!(
            "--output={}",
            journal_dir.join("x.journal").display()
        ))
        .arg(&input)
        .stderr(Stdio::null())
        .status()
        .expect("run systemd-journal-remote");
    assert!(status.success(), "systemd-journal-remote failed");
}

/// Reads the whole journal through journalctl, parsing as it streams.
fn through_journalctl(journal_dir: &Path) -> usize {
    let mut child = Command::new("journalctl")
        .arg(format!("--directory={}", journal_dir.display()))
        .args(["--output=export", "--quiet", "--no-pager"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run journalctl");
    let mut stdout = child.stdout.take().expect("stdout");
    let reads = std::iter::from_fn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some(buf)
            }
        }
    });
    let n = parse_and_map(reads);
    let _ = child.wait();
    n
}

fn bench(c: &mut Criterion) {
    let stream = export_stream();
    let mut group = c.benchmark_group("journald");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("export_parse_map", |b| {
        b.iter(|| {
            let n = parse_and_map(stream.chunks(64 * 1024).map(<[u8]>::to_vec));
            assert_eq!(n, ENTRIES);
        })
    });
    if let Some(remote) = journal_remote() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_journal(&remote, dir.path(), &stream);
        let journal_dir = dir.path().join("journal");
        group.bench_function("journalctl_end_to_end", |b| {
            b.iter(|| {
                let n = through_journalctl(&journal_dir);
                assert_eq!(n, ENTRIES);
            })
        });
    } else {
        eprintln!("systemd-journal-remote not installed: journalctl_end_to_end skipped");
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
