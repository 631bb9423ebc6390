//! End-to-end delivery: the real shipd binary tails a file and ships it to an
//! in-process OTLP receiver, over HTTP and over gRPC.

mod common;

use common::*;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(60);

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Starts shipd on an existing empty file and waits until it tails it.
fn start_on_empty_file(
    receiver: &Receiver,
    transport: &str,
    dir: &std::path::Path,
) -> (Shipd, std::path::PathBuf) {
    let file = dir.join("app.log");
    std::fs::write(&file, b"").unwrap();
    let data = dir.join("data");
    let env = ship_env(receiver, transport, &file.display().to_string(), &data);
    let shipd = Shipd::start(&env, &dir.join("shipd.log"));
    assert!(
        shipd.wait_log("tailing file", WAIT),
        "shipd never tailed the file:\n{}",
        shipd.log()
    );
    (shipd, file)
}

fn assert_exactly_once(bodies: &[String], expected: &[String]) {
    let got: HashSet<&String> = bodies.iter().collect();
    assert_eq!(bodies.len(), got.len(), "duplicates delivered");
    let want: HashSet<&String> = expected.iter().collect();
    assert_eq!(got, want, "delivered set differs from written set");
}

fn appended_lines_arrive_exactly_once(transport: &str) {
    let rt = runtime();
    let receiver = match transport {
        "grpc" => grpc_receiver(&rt, always_accept()),
        _ => http_receiver(&rt, always_accept()),
    };
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_on_empty_file(&receiver, transport, dir.path());
    let before = now_ns();
    let lines = nginx_lines(transport, 10_000);
    append_lines(&file, &lines, 500, Duration::from_millis(20));
    let got = receiver.wait_for(lines.len(), WAIT);
    let after = now_ns();
    assert_eq!(got, lines.len(), "log:\n{}", shipd.log());
    std::thread::sleep(Duration::from_millis(500));
    let records = receiver.records();
    assert_exactly_once(&receiver.bodies(), &lines);
    for r in &records {
        assert!(
            r.time_unix_nano >= before && r.time_unix_nano <= after,
            "timestamp outside the test window"
        );
        assert_eq!(r.attr_str("log.record.uid").map(|u| u.len()), Some(32));
    }
    let uids: HashSet<String> = records
        .iter()
        .filter_map(|r| r.attr_str("log.record.uid"))
        .collect();
    assert_eq!(uids.len(), records.len(), "uids are unique per position");
    let resource = &records[0].resource;
    for key in ["host.name", "service.name", "shipd.source"] {
        assert!(resource.contains_key(key), "resource lacks {key}");
    }
    for captured in receiver.captured() {
        let h = &captured.headers;
        assert_eq!(h.get("stream-name").map(String::as_str), Some("node_logs"));
        assert_eq!(
            h.get("authorization").map(String::as_str),
            Some("Basic cm9vdEBleGFtcGxlLmNvbTpDb21wbGV4cGFzcyMxMjM=")
        );
        if transport == "grpc" {
            assert_eq!(h.get("organization").map(String::as_str), Some("pis"));
            assert_eq!(h.get("grpc-encoding").map(String::as_str), Some("gzip"));
        } else {
            assert_eq!(
                h.get("content-type").map(String::as_str),
                Some("application/x-protobuf")
            );
            assert_eq!(h.get("content-encoding").map(String::as_str), Some("zstd"));
            assert_eq!(
                &captured.wire[..4],
                &[0x28, 0xb5, 0x2f, 0xfd],
                "body is zstd (the default over HTTP)"
            );
        }
    }
    assert_eq!(shipd.terminate(), Some(0), "SIGTERM exits 0");
}

#[test]
fn http_appended_lines_arrive_exactly_once_with_headers_and_zstd() {
    appended_lines_arrive_exactly_once("http");
}

#[test]
fn grpc_appended_lines_arrive_exactly_once_with_metadata_and_gzip() {
    appended_lines_arrive_exactly_once("grpc");
}

fn outage_then_recovery_loses_nothing(transport: &str, fail_code: u16) {
    let rt = runtime();
    let script: Script = std::sync::Arc::new(move |_, since| {
        if since < Duration::from_secs(5) {
            Reply::Fail(fail_code)
        } else {
            Reply::Accept
        }
    });
    let receiver = match transport {
        "grpc" => grpc_receiver(&rt, script),
        _ => http_receiver(&rt, script),
    };
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_on_empty_file(&receiver, transport, dir.path());
    let lines = nginx_lines("outage", 3_000);
    append_lines(&file, &lines, 300, Duration::from_millis(100));
    assert_eq!(
        receiver.wait_for(lines.len(), WAIT),
        lines.len(),
        "log:\n{}",
        shipd.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let bodies = receiver.bodies();
    assert_exactly_once(&bodies, &lines);
    assert!(
        shipd.metric("shipd_retries_total{component=\"openobserve\"}") > 0,
        "retries counted"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn http_503_for_five_seconds_then_recovery_delivers_every_line() {
    outage_then_recovery_loses_nothing("http", 503);
}

#[test]
fn grpc_unavailable_for_five_seconds_then_recovery_delivers_every_line() {
    outage_then_recovery_loses_nothing("grpc", 503);
}

#[test]
fn http_429_storm_then_recovery_delivers_every_line() {
    outage_then_recovery_loses_nothing("http", 429);
}

/// A 429 with `Retry-After: 2` is retried after two seconds (the OTLP/HTTP
/// rule), although the backoff alone would retry within 1 s.
#[test]
fn http_429_with_retry_after_is_retried_no_sooner_than_asked() {
    let rt = runtime();
    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let script: Script = {
        let arrivals = std::sync::Arc::clone(&arrivals);
        std::sync::Arc::new(move |n, since| {
            arrivals.lock().unwrap().push(since);
            if n == 0 {
                Reply::Throttle(429, 2)
            } else {
                Reply::Accept
            }
        })
    };
    let receiver = http_receiver(&rt, script);
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_on_empty_file(&receiver, "http", dir.path());
    let lines = nginx_lines("throttled", 100);
    append_lines(&file, &lines, 100, Duration::ZERO);
    assert_eq!(receiver.wait_for(lines.len(), WAIT), lines.len());
    assert_exactly_once(&receiver.bodies(), &lines);
    let arrivals = arrivals.lock().unwrap().clone();
    println!("requests arrived at {arrivals:?}");
    assert!(
        arrivals[1] >= Duration::from_millis(1_950),
        "retried {:?} after the 429 that asked for 2 s",
        arrivals[1]
    );
    assert!(shipd.log().contains("Retry-After"), "the wait is logged");
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn http_400_batch_is_counted_as_rejected_and_later_batches_are_delivered() {
    let rt = runtime();
    let receiver = http_receiver(
        &rt,
        std::sync::Arc::new(|n, _| {
            if n == 0 {
                Reply::Fail(400)
            } else {
                Reply::Accept
            }
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_on_empty_file(&receiver, "http", dir.path());
    let first = nginx_lines("rejected", 100);
    append_lines(&file, &first, 100, Duration::ZERO);
    let deadline = std::time::Instant::now() + WAIT;
    while receiver
        .log
        .attempts
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "no request made");
        std::thread::sleep(Duration::from_millis(20));
    }
    let later = nginx_lines("later", 1_000);
    append_lines(&file, &later, 200, Duration::from_millis(50));
    assert_eq!(receiver.wait_for(later.len(), WAIT), later.len());
    std::thread::sleep(Duration::from_millis(500));
    assert_exactly_once(&receiver.bodies(), &later);
    let rejected =
        shipd.metric("shipd_events_dropped_total{component=\"openobserve\",reason=\"rejected\"}");
    assert_eq!(rejected, 100, "the refused batch is counted");
    assert!(
        shipd.log().contains("batch rejected by OpenObserve"),
        "reason logged:\n{}",
        shipd.log()
    );
    assert!(shipd.log().contains("HTTP 400"), "status logged");
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn partial_success_rejected_count_is_logged_and_counted() {
    let rt = runtime();
    let receiver = http_receiver(
        &rt,
        std::sync::Arc::new(|n, _| {
            if n == 0 {
                Reply::Partial(7, "log records older than 5 hours".into())
            } else {
                Reply::Accept
            }
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_on_empty_file(&receiver, "http", dir.path());
    append_lines(&file, &nginx_lines("partial", 50), 50, Duration::ZERO);
    assert_eq!(receiver.wait_for(50, WAIT), 50);
    assert!(
        shipd.wait_log("partial success", Duration::from_secs(10)),
        "{}",
        shipd.log()
    );
    let log = shipd.log();
    assert!(
        // shipd logs JSON when stderr is not a terminal.
        (log.contains("rejected=7") || log.contains("\"rejected\":7"))
            && log.contains("older than 5 hours"),
        "{log}"
    );
    assert_eq!(
        shipd.metric(
            "shipd_events_dropped_total{component=\"openobserve\",reason=\"partial_success\"}"
        ),
        7
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn healthy_sink_leaves_only_the_checkpoint_file_in_the_data_directory() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_on_empty_file(&receiver, "http", dir.path());
    let lines = nginx_lines("disk", 5_000);
    append_lines(&file, &lines, 1_000, Duration::from_millis(10));
    assert_eq!(receiver.wait_for(lines.len(), WAIT), lines.len());
    assert_eq!(shipd.terminate(), Some(0));
    let listing: Vec<(String, u64)> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    println!(
        "data directory after shipping {} lines: {listing:?}",
        lines.len()
    );
    assert_eq!(listing.len(), 1, "only the checkpoint file: {listing:?}");
    assert_eq!(listing[0].0, "checkpoints.state");
    assert!(
        listing[0].1 <= 4096,
        "checkpoint file stays within one page"
    );
    let state =
        String::from_utf8_lossy(&std::fs::read(dir.path().join("data/checkpoints.state")).unwrap())
            .into_owned();
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(
        state.contains(&format!("\"offset\":{size}")),
        "final checkpoint at end of file: {state}"
    );
}

#[test]
fn health_endpoint_reports_a_failing_sink_and_recovers() {
    let rt = runtime();
    let script: Script = std::sync::Arc::new(|_, since| {
        if since < Duration::from_secs(3) {
            Reply::Fail(500)
        } else {
            Reply::Accept
        }
    });
    let receiver = http_receiver(&rt, script);
    let dir = tempfile::tempdir().unwrap();
    let (shipd, file) = start_on_empty_file(&receiver, "http", dir.path());
    assert_eq!(
        http_get(shipd.api, "/health").0,
        200,
        "idle sink is healthy"
    );
    append_lines(&file, &nginx_lines("health", 10), 10, Duration::ZERO);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut saw_failing = false;
    while std::time::Instant::now() < deadline && !saw_failing {
        let (status, body) = http_get(shipd.api, "/health");
        saw_failing = status == 503 && body.contains("HTTP 500");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saw_failing, "503 with the reason while the sink fails");
    assert_eq!(receiver.wait_for(10, WAIT), 10);
    assert_eq!(
        shipd.wait_healthy(Duration::from_secs(10)),
        200,
        "healthy again after delivery"
    );
    assert_eq!(shipd.terminate(), Some(0));
}
