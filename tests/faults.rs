//! Faults: kill -9 mid-stream and restart, hostile input files.

mod common;

use common::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

#[test]
fn kill_9_mid_stream_then_restart_loses_no_line() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stream.log");
    std::fs::write(&file, b"").unwrap();
    let mut env = ship_env(
        &receiver,
        "http",
        &file.display().to_string(),
        &dir.path().join("data"),
    );
    env.push(("SHIPD_CHECKPOINT_INTERVAL", "1s".to_owned()));
    let log = dir.path().join("shipd.log");
    let first = Shipd::start(&env, &log);
    assert!(first.wait_log("tailing file", WAIT));

    let lines = nginx_lines("kill9", 50_000);
    let writer = {
        let (file, lines) = (file.clone(), lines.clone());
        std::thread::spawn(move || append_lines(&file, &lines, 250, Duration::from_millis(20)))
    };
    let deadline = Instant::now() + WAIT;
    while receiver.count() < 20_000 {
        assert!(
            Instant::now() < deadline,
            "stream never got going:\n{}",
            first.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill9();
    let before_kill = receiver.count();
    writer.join().unwrap();

    let second = Shipd::start(&env, &log);
    receiver.wait_for_all(&lines, WAIT);
    let got = receiver.count();
    std::thread::sleep(Duration::from_secs(1));
    let bodies = receiver.bodies();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for b in &bodies {
        *seen.entry(b.as_str()).or_default() += 1;
    }
    let missing = lines
        .iter()
        .filter(|l| !seen.contains_key(l.as_str()))
        .count();
    let duplicates = bodies.len() - seen.len();
    println!(
        "kill -9 after {before_kill} of {} lines delivered: {missing} missing, {duplicates} duplicates (re-sent after restart)",
        lines.len()
    );
    assert!(got >= lines.len(), "only {got} records arrived");
    assert_eq!(missing, 0, "lines lost across kill -9");
    assert_eq!(seen.len(), lines.len(), "nothing unexpected arrived");
    assert!(
        duplicates < before_kill,
        "restart resumed from the checkpoint, not from the start ({duplicates} duplicates)"
    );
    assert_eq!(second.terminate(), Some(0));
}

/// A deterministic pseudo-random byte generator (xorshift64*).
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn huge_line_random_bytes_and_empty_file_are_counted_and_everything_else_delivered() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();

    let mut big = b"before the giant\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    big.extend_from_slice(b"\nafter the giant\n");
    std::fs::write(logs.join("big.log"), &big).unwrap();
    let garbage = random_bytes(1024 * 1024, 0x5eed);
    std::fs::write(logs.join("garbage.log"), &garbage).unwrap();
    std::fs::write(logs.join("empty.log"), b"").unwrap();
    let normal = nginx_lines("normal", 200);
    append_lines(&logs.join("normal.log"), &normal, 200, Duration::ZERO);

    let segments: Vec<&[u8]> = garbage.split(|b| *b == b'\n').collect();
    let garbage_records = segments[..segments.len() - 1]
        .iter()
        .filter(|s| !s.is_empty())
        .count();
    let expected = normal.len() + 3 + garbage_records;

    let mut env = ship_env(
        &receiver,
        "http",
        &format!("{}/*.log", logs.display()),
        &dir.path().join("data"),
    );
    env.push(("SHIPD_READ_FROM", "beginning".to_owned()));
    let mut shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert_eq!(
        receiver.wait_for(expected, WAIT),
        expected,
        "log:\n{}",
        shipd.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.count(), expected, "nothing extra");
    assert!(
        shipd.child.try_wait().unwrap().is_none(),
        "shipd still running"
    );

    let records = receiver.records();
    let bodies: Vec<&str> = records.iter().map(|r| r.body.as_str()).collect();
    for line in &normal {
        assert!(bodies.contains(&line.as_str()), "normal line lost");
    }
    assert!(bodies.contains(&"before the giant") && bodies.contains(&"after the giant"));
    let giant: Vec<_> = records
        .iter()
        .filter(|r| r.body.starts_with("xxxx"))
        .collect();
    assert_eq!(giant.len(), 1, "the 10 MiB line is one record");
    assert_eq!(
        giant[0].body.len(),
        256 * 1024,
        "truncated to max_line_bytes"
    );
    assert_eq!(
        giant[0].attributes.get("shipd.truncated"),
        Some(&opentelemetry_proto::tonic::common::v1::any_value::Value::BoolValue(true))
    );
    assert_eq!(
        shipd.metric("shipd_lines_truncated_total{component=\"files\"}"),
        1
    );
    assert!(
        shipd.metric("shipd_invalid_utf8_total{component=\"files\"}") > 0,
        "invalid UTF-8 counted"
    );
    assert!(
        shipd.metric("shipd_events_dropped_total{component=\"files\",reason=\"empty_line\"}") > 0
    );
    assert_eq!(shipd.terminate(), Some(0));
}
