//! Container logs through the real shipd binary: docker `json-file` logs
//! with their `config.v2.json`, and CRI logs in the `/var/log/pods` layout,
//! written the way docker and containerd write them — including a 40 KiB
//! line the runtime split into 16 KiB partial records.

mod common;

use common::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
/// Docker and containerd both cut lines into records of at most 16 KiB.
const RUNTIME_CHUNK: usize = 16 * 1024;

fn text(v: Option<&AnyValue>) -> Option<String> {
    match v {
        Some(AnyValue::StringValue(s)) => Some(s.clone()),
        Some(AnyValue::IntValue(i)) => Some(i.to_string()),
        _ => None,
    }
}

/// A 40 KiB line of printable text, distinct per `tag`.
fn long_line(tag: &str) -> String {
    let mut s = format!("{tag} ");
    let mut i = 0u64;
    while s.len() < 40 * 1024 {
        s.push_str(&format!("{i:08x}-"));
        i += 1;
    }
    s.truncate(40 * 1024);
    s
}

fn start_shipd(receiver: &Receiver, dir: &Path, extra: &[(&'static str, String)]) -> Shipd {
    start_shipd_confined(receiver, dir, extra, ChildLimits::default())
}

fn start_shipd_confined(
    receiver: &Receiver,
    dir: &Path,
    extra: &[(&'static str, String)],
    limits: ChildLimits,
) -> Shipd {
    let mut env: Vec<(&'static str, String)> = ship_env(receiver, "http", "", &dir.join("data"))
        .into_iter()
        .filter(|(k, _)| *k != "SHIPD_LOG_FILES")
        .collect();
    env.push(("SHIPD_READ_FROM", "beginning".into()));
    // The fixtures carry fixed 2026-03-01 times, outside OpenObserve's 5 h
    // ingest window that the sink enforces by default.
    env.push(("SHIPD_TOO_OLD", "keep".into()));
    env.extend(extra.iter().cloned());
    let shipd = Shipd::start_confined(&[], &env, &dir.join("shipd.log"), limits);
    assert!(
        shipd.wait_log("file source started", WAIT),
        "shipd did not start:\n{}",
        shipd.log()
    );
    shipd
}

/// One json-file record as docker's log driver writes it (Go's encoder
/// escapes `<`, `>` and `&`).
fn docker_record(log: &str, stream: &str, time: &str) -> String {
    let json = serde_json::json!({ "log": log, "stream": stream, "time": time }).to_string();
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[test]
fn docker_json_file_logs_are_unwrapped_reassembled_and_named_after_their_container() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let id = "4f2c9e1b7a3d".repeat(5) + "abcd";
    let cdir = dir.path().join("containers").join(&id);
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(
        cdir.join("config.v2.json"),
        format!(
            r#"{{"ID":"{id}","Name":"/shop-web-1","Config":{{"Hostname":"4f2c9e1b7a3d","Image":"nginx:1.25-alpine","Labels":{{"com.docker.compose.project":"shop","com.docker.compose.service":"web","com.docker.compose.version":"2.24.6"}}}},"State":{{"Running":true}}}}"#
        ),
    )
    .unwrap();
    let mut expected = nginx_lines("docker", 100);
    expected.push("<html> & friends".to_owned());
    let long = long_line("docker-long");
    let mut records = String::new();
    for (i, line) in expected.iter().enumerate() {
        let stream = if i % 10 == 0 { "stderr" } else { "stdout" };
        let time = format!("2026-03-01T10:00:{:02}.{:09}Z", i % 60, i);
        records.push_str(&docker_record(&format!("{line}\n"), stream, &time));
        records.push('\n');
    }
    let chunks: Vec<&str> = long
        .as_bytes()
        .chunks(RUNTIME_CHUNK)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    assert_eq!(
        chunks.len(),
        3,
        "40 KiB = two full 16 KiB records and a rest"
    );
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let log = if last {
            format!("{chunk}\n")
        } else {
            chunk.to_string()
        };
        records.push_str(&docker_record(
            &log,
            "stdout",
            "2026-03-01T11:00:00.000000007Z",
        ));
        records.push('\n');
    }
    expected.push(long.clone());
    let log_path = cdir.join(format!("{id}-json.log"));
    std::fs::File::create(&log_path)
        .unwrap()
        .write_all(records.as_bytes())
        .unwrap();

    let shipd = start_shipd(
        &receiver,
        dir.path(),
        &[
            ("SHIPD_DOCKER_LOGS", "on".into()),
            (
                "SHIPD_DOCKER_DIR",
                dir.path().join("containers").display().to_string(),
            ),
        ],
    );
    assert_eq!(
        receiver.wait_for(expected.len(), WAIT),
        expected.len(),
        "log:\n{}",
        shipd.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = receiver.records();
    let bodies: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(
        bodies,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let joined = got.iter().find(|r| r.body.len() == long.len()).unwrap();
    assert_eq!(joined.body, long, "the split line is whole again");
    assert_eq!(joined.time_unix_nano, 1_772_362_800_000_000_007);
    assert_eq!(got[1].time_unix_nano, 1_772_359_201_000_000_001);
    assert_eq!(got[0].attr_str("log.iostream").as_deref(), Some("stderr"));
    assert_eq!(got[1].attr_str("log.iostream").as_deref(), Some("stdout"));
    let res = &got[0].resource;
    assert_eq!(
        text(res.get("container.name")).as_deref(),
        Some("shop-web-1")
    );
    assert_eq!(text(res.get("container.id")), Some(id.clone()));
    assert_eq!(
        text(res.get("container.image.name")).as_deref(),
        Some("nginx")
    );
    assert_eq!(text(res.get("compose.project")).as_deref(), Some("shop"));
    assert_eq!(text(res.get("service.name")).as_deref(), Some("web"));
    assert_eq!(text(res.get("shipd.source")).as_deref(), Some("docker"));
    assert_eq!(text(res.get("host.name")).as_deref(), Some("test-node"));
    assert_eq!(
        shipd.metric("shipd_decode_errors_total{component=\"docker\"}"),
        0
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn cri_logs_are_reassembled_per_stream_and_named_from_their_path() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let cdir = pods
        .join("shop_web-7d9f8b6c5-x2x9z_5d1f0a34-1b1c-4a3e-9f55-0c4f1a2b3c4d")
        .join("nginx");
    std::fs::create_dir_all(&cdir).unwrap();
    let mut expected = nginx_lines("cri", 100);
    let mut records = String::new();
    for (i, line) in expected.iter().enumerate() {
        records.push_str(&format!(
            "2026-03-01T10:00:{:02}.{:09}Z stdout F {line}\n",
            i % 60,
            i
        ));
    }
    // containerd cuts the long line into P records; a stderr line arrives
    // between its parts and must not be mixed into it.
    let long = long_line("cri-long");
    let chunks: Vec<&str> = long
        .as_bytes()
        .chunks(RUNTIME_CHUNK)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let tag = if i + 1 == chunks.len() { "F" } else { "P" };
        records.push_str(&format!(
            "2026-03-01T11:00:00.00000000{i}Z stdout {tag} {chunk}\n"
        ));
        if i == 0 {
            records.push_str("2026-03-01T11:00:00.5Z stderr F warning: in between\n");
        }
    }
    expected.push("warning: in between".to_owned());
    expected.push(long.clone());
    std::fs::File::create(cdir.join("0.log"))
        .unwrap()
        .write_all(records.as_bytes())
        .unwrap();

    let shipd = start_shipd(
        &receiver,
        dir.path(),
        &[
            ("SHIPD_CRI_LOGS", "on".into()),
            ("SHIPD_CRI_DIR", pods.display().to_string()),
        ],
    );
    assert_eq!(
        receiver.wait_for(expected.len(), WAIT),
        expected.len(),
        "log:\n{}",
        shipd.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = receiver.records();
    let bodies: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(
        bodies,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let joined = got.last().unwrap();
    assert_eq!(joined.body.len(), 40 * 1024);
    assert_eq!(
        joined.time_unix_nano, 1_772_362_800_000_000_000,
        "time of the first part"
    );
    assert_eq!(got[100].attr_str("log.iostream").as_deref(), Some("stderr"));
    let res = &got[0].resource;
    assert_eq!(text(res.get("k8s.namespace.name")).as_deref(), Some("shop"));
    assert_eq!(
        text(res.get("k8s.pod.name")).as_deref(),
        Some("web-7d9f8b6c5-x2x9z")
    );
    assert_eq!(
        text(res.get("k8s.container.name")).as_deref(),
        Some("nginx")
    );
    assert_eq!(
        text(res.get("k8s.container.restart_count")).as_deref(),
        Some("0")
    );
    assert_eq!(text(res.get("service.name")).as_deref(), Some("nginx"));
    assert_eq!(text(res.get("shipd.source")).as_deref(), Some("kubernetes"));
    assert_eq!(shipd.terminate(), Some(0));
}

/// `ulimit -n 24`: the file source reads 150 container logs in turns with
/// the few descriptors there are, and reading a container's
/// `config.v2.json` waits out the shortage instead of shipping its lines
/// without the container's name.
#[test]
fn containers_read_in_turns_under_ulimit_24_keep_their_names() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let containers = dir.path().join("containers");
    let mut expected = Vec::new();
    for c in 0..150 {
        let id = format!("{c:064x}");
        let cdir = containers.join(&id);
        std::fs::create_dir_all(&cdir).unwrap();
        std::fs::write(
            cdir.join("config.v2.json"),
            format!(r#"{{"ID":"{id}","Name":"/app-{c}","Config":{{"Image":"app:1"}}}}"#),
        )
        .unwrap();
        let mut records = String::new();
        for line in nginx_lines(&format!("app-{c}"), 3) {
            records.push_str(&docker_record(
                &format!("{line}\n"),
                "stdout",
                "2026-03-01T10:00:00Z",
            ));
            records.push('\n');
            expected.push(line);
        }
        std::fs::write(cdir.join(format!("{id}-json.log")), records).unwrap();
    }
    let shipd = start_shipd_confined(
        &receiver,
        dir.path(),
        &[
            ("SHIPD_DOCKER_LOGS", "on".into()),
            ("SHIPD_DOCKER_DIR", containers.display().to_string()),
        ],
        ChildLimits {
            open_files: Some(24),
            user: None,
        },
    );
    assert_eq!(
        receiver.wait_for(expected.len(), WAIT),
        expected.len(),
        "log:\n{}",
        shipd.log()
    );
    let unnamed: Vec<String> = receiver
        .records()
        .into_iter()
        .filter(|r| {
            // "GET /api/app-7/0 HTTP/1.1": the path names the container.
            let path = r.body.split_whitespace().nth(6).unwrap_or_default();
            let tag = path.split('/').nth(2).unwrap_or_default().to_owned();
            text(r.resource.get("container.name")).as_deref() != Some(tag.as_str())
        })
        .map(|r| r.body)
        .collect();
    let deferred =
        shipd.metric("shipd_file_open_errors_total{component=\"docker\",reason=\"descriptors\"}");
    println!(
        "150 containers under ulimit -n 24: {} lines, {deferred} opens deferred",
        expected.len()
    );
    assert!(
        unnamed.is_empty(),
        "{} lines without their container's name, e.g. {:?}",
        unnamed.len(),
        unnamed.first()
    );
    assert!(
        !shipd.log().contains("container config unreadable"),
        "{}",
        shipd.log()
    );
    assert_eq!(shipd.terminate(), Some(0));
}
