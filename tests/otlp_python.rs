//! Cross-check: what shipd sends decodes with Python's official
//! `opentelemetry-proto` classes and Python's own gzip.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn wire_bodies_decode_with_the_official_python_otlp_classes() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    let lines = nginx_lines("python", 2_000);
    append_lines(&file, &lines, 2_000, Duration::ZERO);
    let mut env = ship_env(
        &receiver,
        "http",
        &file.display().to_string(),
        &dir.path().join("data"),
    );
    env.push(("SHIPD_READ_FROM", "beginning".to_owned()));
    // gzip, not the HTTP default zstd: the check decompresses with Python's
    // own gzip module, so only the protobuf comes from shipd.
    env.push(("SHIPD_COMPRESSION", "gzip".to_owned()));
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert_eq!(
        receiver.wait_for(lines.len(), Duration::from_secs(60)),
        lines.len()
    );
    assert_eq!(shipd.terminate(), Some(0));

    let captures = dir.path().join("captures");
    std::fs::create_dir(&captures).unwrap();
    for (i, c) in receiver.captured().iter().enumerate() {
        std::fs::write(captures.join(format!("{i:05}.bin")), &c.wire).unwrap();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/decode_otlp.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&captures)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python decoder failed (pip install opentelemetry-proto): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["records"], lines.len());
    assert_eq!(report["uids"], lines.len());
    let bodies: Vec<String> = report["bodies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_owned())
        .collect();
    let mut sorted = bodies.clone();
    sorted.sort();
    let mut want = lines.clone();
    want.sort();
    assert_eq!(sorted, want);
    let keys = report["resource_keys"].to_string();
    for key in ["host.name", "service.name", "shipd.source"] {
        assert!(keys.contains(key), "{key} missing in {keys}");
    }
}
