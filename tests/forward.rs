//! End to end: the real shipd binary, with the default pipeline's
//! `SHIPD_FORWARD=127.0.0.1:PORT`, receives the Fluentd forward protocol
//! from real clients — Python's `fluent-logger` (PyPI) and a msgpack client
//! shaped like Docker's fluentd log driver (tests/python/forward_client.py:
//! Forward mode, EventTime, chunk acknowledgements) — and ships the events
//! to an OpenObserve-shaped receiver with their fields mapped. Also: no
//! acknowledged chunk is lost across `kill -9` (mid-stream, and while
//! OpenObserve is down so acknowledged events wait in the RAM journal),
//! PackedForward and gzip, the shared-key handshake, the compose example
//! pipeline routing real records, and hostile clients (too many
//! connections, oversized messages, garbage, a message malformed after a
//! good entry) refused and counted while memory stays bounded and others
//! are still delivered.

mod common;

use common::{
    always_accept, free_port, http_receiver, runtime, ship_env, tally, Receiver, Reply, Shipd,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PYTHON_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python");

/// shipd on the default pipeline with the forward source on a free port.
fn start(receiver: &Receiver, dir: &Path, port: u16, extra: &[(&'static str, String)]) -> Shipd {
    let mut env = ship_env(receiver, "http", "", &dir.join("data"));
    env.push(("SHIPD_FORWARD", format!("127.0.0.1:{port}")));
    env.extend(extra.iter().cloned());
    let shipd = Shipd::start(&env, &dir.join("shipd.log"));
    assert!(
        shipd.wait_log("forward source listening", Duration::from_secs(30)),
        "{}",
        shipd.log()
    );
    shipd
}

fn python(script: &str, args: &[String]) -> Output {
    let out = Command::new("python3")
        .arg(format!("{PYTHON_DIR}/{script}"))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{script} failed (python3 -m pip install fluent-logger msgpack): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("the client prints one JSON line")
}

/// The docker-driver-shaped client's arguments.
fn client_args(port: u16, mode: &str, count: usize, batch: usize, prefix: &str) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--mode",
        mode,
        "--count",
        &count.to_string(),
        "--batch",
        &batch.to_string(),
        "--prefix",
        prefix,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix} {i}")).collect()
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn fluent_logger_and_docker_driver_records_arrive_with_mapped_fields() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let shipd = start(&receiver, dir.path(), port, &[]);

    let emitted = report(&python(
        "fluent_logger_emit.py",
        &[port.to_string(), "50".into()],
    ));
    assert_eq!(emitted["emitted"], 50);
    let mut args = client_args(port, "forward", 40, 8, "web says");
    args.push("--ack".into());
    let driver = report(&python("forward_client.py", &args));
    assert_eq!(driver["acked"], 5, "{driver}");

    assert_eq!(receiver.wait_for(90, Duration::from_secs(30)), 90);
    let records = receiver.records();
    let order = records
        .iter()
        .find(|r| r.body == "order 7")
        .expect("fluent-logger's record delivered");
    assert_eq!(order.attr_str("fluent.tag").as_deref(), Some("app.orders"));
    assert_eq!(order.attr_str("level").as_deref(), Some("warn"));
    assert!(order.attributes.contains_key("order"), "{order:?}");
    assert!(
        order.time_unix_nano > 1_600_000_000_000_000_000,
        "event time kept"
    );

    let web = records
        .iter()
        .find(|r| r.body == "web says 3")
        .expect("driver record delivered");
    assert_eq!(web.attr_str("fluent.tag").as_deref(), Some("docker.web"));
    assert_eq!(web.attr_str("log.iostream").as_deref(), Some("stderr"));
    let res = |k: &str| match web.resource.get(k) {
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("resource {k}: {other:?}"),
    };
    assert_eq!(res("container.name"), "shop-web-1");
    assert_eq!(res("container.id"), "4f1c2a9b8d7e");
    assert_eq!(res("service.name"), "shop-web-1");
    assert_eq!(res("host.name"), "test-node");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(
        now.abs_diff(web.time_unix_nano) < 3_600_000_000_000,
        "EventTime kept"
    );
    assert_eq!(
        shipd.metric("shipd_events_in_total{component=\"forward\"}"),
        90
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn packed_forward_and_gzip_compressed_packed_forward_arrive_whole() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let shipd = start(&receiver, dir.path(), port, &[]);
    let mut want = Vec::new();
    for mode in ["packed", "gzip"] {
        let mut args = client_args(port, mode, 1_000, 100, mode);
        args.push("--ack".into());
        let out = report(&python("forward_client.py", &args));
        assert_eq!(out["acked"], 10, "{mode}: {out}");
        want.extend(lines(mode, 1_000));
    }
    assert_eq!(receiver.wait_for_all(&want, Duration::from_secs(30)), 0);
    let t = tally(&receiver.bodies(), &want);
    assert_eq!((t.missing, t.duplicates, t.unexpected), (0, 0, 0));
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn acknowledged_chunks_survive_kill_9_and_the_client_resends_the_rest() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let shipd = start(&receiver, dir.path(), port, &[]);
    let n = 3_000;
    let mut args = client_args(port, "forward", n, 10, "acked");
    args.extend(["--ack", "--pause", "0.003", "--ack-timeout", "2"].map(String::from));
    let client = Command::new("python3")
        .arg(format!("{PYTHON_DIR}/forward_client.py"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    // Kill while the client is mid-stream.
    let got = receiver.wait_for(n / 4, Duration::from_secs(60));
    assert!(got >= n / 4 && got < n, "mid-stream at {got}");
    shipd.kill9();
    let shipd = start(&receiver, dir.path(), port, &[]);
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success());
    let out = report(&out);
    assert_eq!(
        out["acked"],
        n / 10,
        "every chunk acknowledged in the end: {out}"
    );
    assert!(out["reconnects"].as_u64().unwrap() >= 1, "{out}");
    let want = lines("acked", n);
    assert_eq!(receiver.wait_for_all(&want, Duration::from_secs(60)), 0);
    let t = tally(&receiver.bodies(), &want);
    println!(
        "kill -9 mid-stream: {n} events, {} lost, {} duplicates, client reconnects {}",
        t.missing, t.duplicates, out["reconnects"]
    );
    assert_eq!(t.missing, 0);
    assert_eq!(t.unexpected, 0);
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn the_shared_key_handshake_admits_the_right_key_and_refuses_a_wrong_one() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let shipd = start(
        &receiver,
        dir.path(),
        port,
        &[("SHIPD_FORWARD_SHARED_KEY", "pi-cluster-secret".into())],
    );
    let mut args = client_args(port, "forward", 20, 10, "trusted");
    args.extend(["--ack", "--shared-key", "pi-cluster-secret"].map(String::from));
    let out = report(&python("forward_client.py", &args));
    assert_eq!(
        (out["auth"].as_str(), out["acked"].as_u64()),
        (Some("ok"), Some(2))
    );

    let mut args = client_args(port, "forward", 20, 10, "intruder");
    args.extend(["--ack", "--shared-key", "guessed"].map(String::from));
    let out = report(&python("forward_client.py", &args));
    assert_eq!(out["auth"], "shared_key mismatch", "{out}");
    assert_eq!(out["acked"], 0);

    // Events without a handshake are refused too.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut helo = [0u8; 256];
    assert!(raw.read(&mut helo).unwrap() > 0, "HELO first");
    raw.write_all(&[0x93, 0xa1, b't', 0x01, 0x80]).unwrap();
    assert_eq!(read_to_close(&mut raw), "closed");

    assert_eq!(receiver.wait_for(20, Duration::from_secs(30)), 20);
    std::thread::sleep(Duration::from_millis(500));
    assert!(receiver.bodies().iter().all(|b| b.starts_with("trusted")));
    assert_eq!(
        shipd.metric("shipd_forward_refused_total{component=\"forward\",reason=\"auth\"}"),
        2,
        "{}",
        shipd.metrics()
    );
    assert!(
        shipd.log().contains("shared_key mismatch"),
        "{}",
        shipd.log()
    );
    assert_eq!(shipd.terminate(), Some(0));
}

/// Reads until the server closes ("closed") or 10 s pass ("open").
fn read_to_close(stream: &mut TcpStream) -> &'static str {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return "closed",
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return "closed",
            Err(_) => return "open",
        }
    }
}

#[test]
fn hostile_clients_are_refused_and_counted_while_others_are_delivered_in_bounded_memory() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let shipd = start(
        &receiver,
        dir.path(),
        port,
        &[
            ("SHIPD_FORWARD_MAX_CONNECTIONS", "8".into()),
            ("SHIPD_FORWARD_MAX_MESSAGE_BYTES", "1MiB".into()),
            ("SHIPD_FORWARD_MAX_MEMORY", "8MiB".into()),
            // As the systemd unit and the container image run it.
            ("MALLOC_ARENA_MAX", "2".into()),
        ],
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    // Eight idle connections hold every slot: the ninth is closed at once.
    let idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut ninth = TcpStream::connect(addr).unwrap();
    assert_eq!(read_to_close(&mut ninth), "closed");
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));

    // A message announcing 100 MiB, sent in part: refused before it is held.
    let mut big = TcpStream::connect(addr).unwrap();
    let mut head = vec![0x92, 0xa1, b't', 0xc6];
    head.extend((100u32 << 20).to_be_bytes());
    head.extend(vec![0u8; 64 << 10]);
    let _ = big.write_all(&head);
    assert_eq!(read_to_close(&mut big), "closed");

    // Oversized messages arriving whole, from several connections at once.
    let blasts: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let mut msg = vec![0x92, 0xa1, b't', 0xc6];
                msg.extend((3u32 << 20).to_be_bytes());
                let _ = s.write_all(&msg);
                let _ = s.write_all(&vec![0x41; 3 << 20]);
                read_to_close(&mut s)
            })
        })
        .collect();
    for b in blasts {
        assert_eq!(b.join().unwrap(), "closed");
    }

    // Good messages, then garbage on the same connection: the good ones are
    // kept, the connection is closed.
    let mut mixed = TcpStream::connect(addr).unwrap();
    // [ "g", now as uint32, {"log": "kept N"} ]; a time within OpenObserve's window.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let good = |i: u8| {
        let mut m = vec![0x93, 0xa1, b'g', 0xce];
        m.extend(now.to_be_bytes());
        m.extend([
            0x81,
            0xa3,
            b'l',
            b'o',
            b'g',
            0xa6,
            b'k',
            b'e',
            b'p',
            b't',
            b' ',
            b'0' + i,
        ]);
        m
    };
    let mut bytes = good(1);
    bytes.extend(good(2));
    bytes.extend([0xc1, 0xff, 0x00, 0x13, 0x37]);
    mixed.write_all(&bytes).unwrap();
    assert_eq!(read_to_close(&mut mixed), "closed");

    // A message that is msgpack but not forward: a good entry, then an
    // entry whose record is a number. Refused whole: its good entry stays
    // out too (its chunk is never acknowledged, the client resends it).
    let mut half = vec![0x92, 0xa1, b'h', 0x92, 0x92, 0xce];
    half.extend(now.to_be_bytes());
    half.extend([
        0x81, 0xa3, b'l', b'o', b'g', 0xa6, b'h', b'a', b'l', b'f', b' ', b'1',
    ]);
    half.extend([0x92, 0xce]);
    half.extend(now.to_be_bytes());
    half.push(0x05);
    let mut refused = TcpStream::connect(addr).unwrap();
    refused.write_all(&half).unwrap();
    assert_eq!(read_to_close(&mut refused), "closed");

    println!(
        "peak before the burst: {} KiB",
        vm_hwm_kib(shipd.child.id())
    );
    // Well-behaved clients deliver everything: one steady, and six at once
    // sending near-limit PackedForward messages (some 700 KiB each) that
    // together need more than the 8 MiB budget, so some wait for memory.
    let burst: Vec<_> = (0..6)
        .map(|k| {
            let mut args = client_args(
                port,
                "packed",
                9_000,
                4_500,
                &format!("burst{k} {}", "x".repeat(120)),
            );
            args.push("--ack".into());
            std::thread::spawn(move || report(&python("forward_client.py", &args)))
        })
        .collect();
    let mut args = client_args(port, "forward", 500, 50, "polite");
    args.push("--ack".into());
    let out = report(&python("forward_client.py", &args));
    assert_eq!(out["acked"], 10, "{out}");
    for b in burst {
        let out = b.join().unwrap();
        let log = shipd.log();
        assert_eq!(
            out["acked"],
            2,
            "{out}\n{}",
            &log[log.len().saturating_sub(4000)..]
        );
    }
    let mut want = lines("polite", 500);
    for k in 0..6 {
        want.extend(lines(&format!("burst{k} {}", "x".repeat(120)), 9_000));
    }
    want.extend(["kept 1".to_owned(), "kept 2".to_owned()]);
    assert_eq!(receiver.wait_for_all(&want, Duration::from_secs(60)), 0);

    let metric = |reason: &str| {
        shipd.metric(&format!(
            "shipd_forward_refused_total{{component=\"forward\",reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(metric("too_large"), 7, "{}", shipd.metrics());
    assert_eq!(metric("malformed"), 2, "{}", shipd.metrics());
    assert!(!receiver.bodies().contains(&"half 1".to_owned()));
    assert!(
        shipd.metric("shipd_connections_refused_total{component=\"forward\"}") >= 1,
        "{}",
        shipd.metrics()
    );
    let hwm = vm_hwm_kib(shipd.child.id());
    println!("peak RSS under hostile forward clients: {} KiB", hwm);
    assert!(hwm < 64 << 10, "VmHWM {hwm} KiB is over 64 MiB");
    let log = shipd.log();
    assert!(log.contains("exceeds max_message_bytes"), "{log}");
    assert!(log.contains("not a msgpack forward message"), "{log}");
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn the_compose_example_routes_real_forward_records_by_tag_and_container() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = ship_env(&receiver, "http", "", &dir.path().join("data"));
    env.push(("SHIPD_FORWARD", format!("127.0.0.1:{port}")));
    let pipeline = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/compose-fluentd.ship"
    );
    let shipd =
        Shipd::start_with_args(&["--config", pipeline], &env, &dir.path().join("shipd.log"));
    assert!(
        shipd.wait_log("forward source listening", Duration::from_secs(30)),
        "{}",
        shipd.log()
    );
    python("fluent_logger_emit.py", &[port.to_string(), "3".into()]);
    let mut db = client_args(port, "forward", 4, 4, "checkpoint");
    db.extend(
        [
            "--ack",
            "--container-name",
            "shop-db-1",
            "--tag",
            "docker.shop-db-1",
        ]
        .map(String::from),
    );
    python("forward_client.py", &db);
    let mut api = client_args(port, "message", 2, 1, "served");
    api.extend(
        [
            "--ack",
            "--container-name",
            "shop-api-1",
            "--tag",
            "docker.shop-api-1",
        ]
        .map(String::from),
    );
    python("forward_client.py", &api);
    assert_eq!(receiver.wait_for(9, Duration::from_secs(30)), 9);
    let mut streams: Vec<(String, usize)> = Vec::new();
    for c in receiver.captured() {
        let stream = c.headers.get("stream-name").cloned().unwrap_or_default();
        let n: usize = common::records_of(&c.request).len();
        match streams.iter_mut().find(|(s, _)| *s == stream) {
            Some((_, count)) => *count += n,
            None => streams.push((stream, n)),
        }
    }
    streams.sort();
    assert_eq!(
        streams,
        vec![
            ("app_app_orders".to_owned(), 3),
            ("compose_shop_api_1".to_owned(), 2),
            ("database".to_owned(), 4),
        ]
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn acknowledged_events_wait_in_the_ram_journal_through_kill_9_while_openobserve_is_down() {
    let rt = runtime();
    let down = Arc::new(AtomicBool::new(true));
    let script: common::Script = {
        let down = Arc::clone(&down);
        Arc::new(move |_, _| {
            if down.load(Ordering::SeqCst) {
                Reply::Fail(503)
            } else {
                Reply::Accept
            }
        })
    };
    let receiver = http_receiver(&rt, script);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let shipd = start(&receiver, dir.path(), port, &[]);
    // Every chunk is acknowledged although nothing is delivered yet.
    let mut args = client_args(port, "forward", 400, 20, "journaled");
    args.push("--ack".into());
    let out = report(&python("forward_client.py", &args));
    assert_eq!(out["acked"], 20, "{out}");
    assert_eq!(receiver.count(), 0);
    shipd.kill9();
    down.store(false, Ordering::SeqCst);
    let shipd = start(&receiver, dir.path(), port, &[]);
    let want = lines("journaled", 400);
    assert_eq!(receiver.wait_for_all(&want, Duration::from_secs(60)), 0);
    let t = tally(&receiver.bodies(), &want);
    println!(
        "acked while OpenObserve was down, then kill -9: {} lost, {} duplicates",
        t.missing, t.duplicates
    );
    assert_eq!((t.missing, t.unexpected), (0, 0));
    assert_eq!(shipd.terminate(), Some(0));
}
