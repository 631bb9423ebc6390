//! Every duration, size and count option has a valid range: a value outside
//! it is refused by `shipctl check` and by the start of the real `shipd`,
//! quickly and with a message naming the environment variable it came from;
//! the values at both edges of every range start and run. The reference
//! (docs/pipeline-language.md) lists every range of the option schema.

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::{runtime, serve_http, Shipd};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use shipd::lang::ast::{ExprKind, Item};
use shipd::lang::components::KINDS;
use shipd::lang::option_range::env_vars;
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_PIPELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/default.ship");

/// `shipctl check pipelines/default.ship` under `env` (and nothing else of
/// this process's environment): exit code and stderr.
fn shipctl_check(env: &[(&str, String)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .args(["check", DEFAULT_PIPELINE])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHIPD_JOURNALD", "off")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts shipd on the default pipeline and waits (bounded) for it to exit:
/// its exit code, how long it ran, its log.
fn shipd_exit(env: &[(&str, String)], dir: &Path) -> (Option<i32>, Duration, String) {
    let mut env = env.to_vec();
    env.push(("SHIPD_DATA_DIR", dir.join("data").display().to_string()));
    let started = Instant::now();
    let mut shipd = Shipd::start(&env, &dir.join("shipd.log"));
    let deadline = started + Duration::from_secs(15);
    loop {
        if let Some(status) = shipd.child.try_wait().unwrap() {
            return (status.code(), started.elapsed(), shipd.log());
        }
        assert!(
            Instant::now() < deadline,
            "shipd still runs after 15 s with {env:?}:\n{}",
            shipd.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `VAR=value` (with the sources it belongs to enabled through `enable`) is
/// refused by shipctl check and by shipd, both naming VAR and the range.
fn refused(var: &str, value: &str, enable: &[(&'static str, &str)], range: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(&str, String)> = enable.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.push((var, value.to_owned()));

    let (code, text) = shipctl_check(&env);
    assert_eq!(code, 1, "shipctl check accepts {var}={value}:\n{text}");
    assert!(
        text.contains(&format!("{var}={value}")) && text.contains(range),
        "shipctl check names neither {var}={value} nor {range}:\n{text}"
    );

    let (code, ran, log) = shipd_exit(&env, dir.path());
    assert_eq!(code, Some(2), "shipd exit code with {var}={value}:\n{log}");
    assert!(
        ran < Duration::from_secs(5),
        "shipd took {ran:?} to refuse {var}={value}"
    );
    assert!(
        log.contains(&format!("{var}={value}")) && log.contains(range),
        "shipd's refusal names neither {var}={value} nor {range}:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("not starting"), "{log}");
    println!("{var}={value}: refused in {ran:?}");
}

fn files_on(dir: &str) -> (&'static str, &str) {
    ("SHIPD_LOG_FILES", dir)
}

#[test]
fn zero_checkpoint_interval_is_refused_naming_the_variable() {
    refused("SHIPD_CHECKPOINT_INTERVAL", "0s", &[], "100ms to 1h");
}

#[test]
fn zero_max_line_bytes_is_refused_naming_the_variable() {
    refused(
        "SHIPD_MAX_LINE_BYTES",
        "0",
        &[files_on("/nonexistent-shipd-test/*.log")],
        "1KiB to 64MiB",
    );
}

#[test]
fn zero_request_timeout_is_refused_naming_the_variable() {
    refused(
        "SHIPD_REQUEST_TIMEOUT",
        "0s",
        &[("OPENOBSERVE_URL", "http://127.0.0.1:9")],
        "1s to 10m",
    );
}

#[test]
fn zero_poll_interval_is_refused_naming_the_variable() {
    refused(
        "SHIPD_POLL_INTERVAL",
        "0s",
        &[files_on("/nonexistent-shipd-test/*.log")],
        "10ms to 1h",
    );
}

#[test]
fn zero_glob_interval_is_refused_naming_the_variable() {
    refused(
        "SHIPD_GLOB_INTERVAL",
        "0s",
        &[files_on("/nonexistent-shipd-test/*.log")],
        "100ms to 1d",
    );
}

#[test]
fn zero_scrape_interval_is_refused_naming_the_variable() {
    refused(
        "SHIPD_SCRAPE_INTERVAL",
        "0s",
        &[("SHIPD_SCRAPE_URLS", "http://127.0.0.1:9/metrics")],
        "1s to 1d",
    );
}

#[test]
fn zero_in_flight_is_refused_naming_the_variable_not_raised_to_one() {
    refused(
        "SHIPD_IN_FLIGHT",
        "0",
        &[("OPENOBSERVE_URL", "http://127.0.0.1:9")],
        "1 to 64",
    );
}

#[test]
fn values_above_the_maximum_and_negative_counts_are_refused_too() {
    for (var, value, range) in [
        ("SHIPD_IN_FLIGHT", "65", "1 to 64"),
        ("SHIPD_BATCH_MAX_EVENTS", "-5", "1 to 1_000_000"),
        ("SHIPD_CHECKPOINT_INTERVAL", "2h", "100ms to 1h"),
        ("SHIPD_CHANNEL_BYTES", "2GiB", "16KiB to 1GiB"),
        ("SHIPD_METRICS_INTERVAL", "0s", "100ms to 1d"),
    ] {
        let env = [
            (var, value.to_owned()),
            ("OPENOBSERVE_URL", "http://127.0.0.1:9".to_owned()),
        ];
        let (code, text) = shipctl_check(&env);
        assert_eq!(code, 1, "{var}={value} accepted:\n{text}");
        assert!(
            text.contains(&format!("{var}={value}")) && text.contains(range),
            "{text}"
        );
    }
}

#[test]
fn a_value_of_the_wrong_type_names_its_variable_without_echoing_it() {
    let env = [
        ("SHIPD_IN_FLIGHT", "four-secret".to_owned()),
        ("OPENOBSERVE_URL", "http://127.0.0.1:9".to_owned()),
    ];
    let (code, text) = shipctl_check(&env);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("option `in_flight` must be an integer (from SHIPD_IN_FLIGHT)"),
        "{text}"
    );
    assert!(!text.contains("four-secret"), "{text}");
}

#[test]
fn a_bad_listening_address_names_its_variable() {
    for (var, value, message) in [
        (
            "SHIPD_FORWARD",
            "1.2.3.4:99999",
            "option `address` (from SHIPD_FORWARD) is not an address",
        ),
        (
            "SHIPD_SYSLOG",
            "udp://nowhere",
            "option `listen` (from SHIPD_SYSLOG): ",
        ),
        (
            "SHIPD_API_ADDR",
            "localhost",
            "`api_addr` (from SHIPD_API_ADDR) is not an address",
        ),
    ] {
        let (code, text) = shipctl_check(&[(var, value.to_owned())]);
        assert_eq!(code, 1, "{var}: {text}");
        assert!(text.contains(message), "{var}: {text}");
    }
}

/// The default pipeline's variables at one edge of their ranges.
fn edge_env(min: bool) -> Vec<(&'static str, &'static str)> {
    let pick = |lo, hi| if min { lo } else { hi };
    vec![
        ("SHIPD_CHECKPOINT_INTERVAL", pick("100ms", "1h")),
        ("SHIPD_CHECKPOINT_DISK_INTERVAL", pick("1s", "1d")),
        ("SHIPD_DRAIN_TIMEOUT", pick("0s", "1h")),
        ("SHIPD_CHANNEL_BYTES", pick("16KiB", "1GiB")),
        ("SHIPD_MAX_LINE_BYTES", pick("1KiB", "64MiB")),
        ("SHIPD_POLL_INTERVAL", pick("10ms", "1h")),
        ("SHIPD_GLOB_INTERVAL", pick("100ms", "1d")),
        ("SHIPD_ROTATE_WAIT", pick("100ms", "1d")),
        ("SHIPD_MULTILINE_TIMEOUT", pick("10ms", "1h")),
        ("SHIPD_METRICS_INTERVAL", pick("100ms", "1d")),
        ("SHIPD_SCRAPE_INTERVAL", pick("1s", "1d")),
        ("SHIPD_SCRAPE_TIMEOUT", pick("100ms", "10m")),
        ("SHIPD_BATCH_MAX_EVENTS", pick("1", "1000000")),
        ("SHIPD_BATCH_MAX_BYTES", pick("1KiB", "64MiB")),
        ("SHIPD_BATCH_TIMEOUT", pick("10ms", "10m")),
        ("SHIPD_IN_FLIGHT", pick("1", "64")),
        ("SHIPD_REQUEST_TIMEOUT", pick("1s", "10m")),
        ("SHIPD_RETRY_MAX", pick("100ms", "1h")),
        ("SHIPD_RETRY_AUTH", pick("100ms", "1h")),
        ("SHIPD_BUFFER_MAX_SIZE", pick("1MiB", "64GiB")),
        ("SHIPD_BUFFER_SEGMENT_SIZE", pick("64KiB", "256MiB")),
        ("SHIPD_BUFFER_SYNC_INTERVAL", pick("100ms", "1h")),
    ]
}

/// Peak resident memory of a process, from /proc/PID/status.
fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What the stand-in OpenObserve received: log record bodies, metric names.
#[derive(Default)]
struct Received {
    log_bodies: Mutex<Vec<String>>,
    metric_names: Mutex<HashSet<String>>,
    requests: Mutex<usize>,
}

fn decompress(headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    match headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
    {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Some("zstd") => zstd::decode_all(body).unwrap(),
        _ => body.to_vec(),
    }
}

/// A stand-in OpenObserve accepting `/api/{org}/v1/logs` and `/v1/metrics`.
fn openobserve(rt: &tokio::runtime::Runtime) -> (String, Arc<Received>) {
    let received = Arc::new(Received::default());
    let logs = {
        let received = Arc::clone(&received);
        move |headers: HeaderMap, body: Bytes| async move {
            let raw = decompress(&headers, &body);
            let request = ExportLogsServiceRequest::decode(&raw[..]).unwrap();
            *received.requests.lock().unwrap() += 1;
            let mut bodies = received.log_bodies.lock().unwrap();
            bodies.extend(common::records_of(&request).into_iter().map(|r| r.body));
            StatusCode::OK
        }
    };
    let metrics = {
        let received = Arc::clone(&received);
        move |headers: HeaderMap, body: Bytes| async move {
            let raw = decompress(&headers, &body);
            let request = ExportMetricsServiceRequest::decode(&raw[..]).unwrap();
            *received.requests.lock().unwrap() += 1;
            let mut names = received.metric_names.lock().unwrap();
            for rm in &request.resource_metrics {
                for sm in &rm.scope_metrics {
                    names.extend(sm.metrics.iter().map(|m| m.name.clone()));
                }
            }
            StatusCode::OK
        }
    };
    let app = axum::Router::new()
        .route("/api/{org}/v1/logs", axum::routing::post(logs))
        .route("/api/{org}/v1/metrics", axum::routing::post(metrics));
    (format!("http://{}", serve_http(rt, app)), received)
}

/// Waits (bounded) until `done` holds.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// shipd on the default pipeline with every variable at one edge, tailing a
/// file, collecting host metrics and scraping a target into a stand-in
/// OpenObserve: it starts, reports healthy, (at the minimum edge) delivers
/// every line, metric and scrape, and stops cleanly.
fn starts_and_runs_at_the_edge(min: bool) {
    let edge = if min { "minimum" } else { "maximum" };
    let rt = runtime();
    let (url, received) = openobserve(&rt);
    let target = serve_http(
        &rt,
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(|| async { "# TYPE edge_up gauge\nedge_up 1\n" }),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("app.log");
    let lines: Vec<String> = (0..30).map(|i| format!("edge line {i}")).collect();
    let mut text = lines.join("\n");
    text.push('\n');
    text.push_str(&"x".repeat(3000));
    text.push('\n');
    std::fs::write(&log_file, text).unwrap();

    let mut env: Vec<(&str, String)> = edge_env(min)
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
    env.extend([
        ("SHIPD_LOG_FILES", log_file.display().to_string()),
        ("SHIPD_READ_FROM", "beginning".to_owned()),
        (
            "SHIPD_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("SHIPD_SCRAPE_URLS", format!("http://{target}/metrics")),
        ("OPENOBSERVE_URL", url),
        ("OPENOBSERVE_ORG", "pis".to_owned()),
        ("OPENOBSERVE_USER", "root@example.com".to_owned()),
        ("OPENOBSERVE_PASSWORD", "Complexpass#123".to_owned()),
    ]);
    let (code, text) = shipctl_check(&env);
    assert_eq!(code, 0, "shipctl check refuses a {edge} value:\n{text}");

    let started = Instant::now();
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert!(
        shipd.wait_log("shipd started", Duration::from_secs(20)),
        "shipd did not start at the {edge} edge:\n{}",
        shipd.log()
    );
    println!("{edge} edge: started in {:?}", started.elapsed());
    if min {
        let mut expected = lines.clone();
        expected.push("x".repeat(1024));
        let all_lines = wait_until(Duration::from_secs(20), || {
            let bodies = received.log_bodies.lock().unwrap();
            expected.iter().all(|l| bodies.contains(l))
        });
        let bodies = received.log_bodies.lock().unwrap().clone();
        assert!(
            all_lines,
            "lines missing at the minimum edge; got lengths {:?}",
            bodies.iter().map(String::len).collect::<Vec<_>>()
        );
        let both_metrics = wait_until(Duration::from_secs(20), || {
            let names = received.metric_names.lock().unwrap();
            names.contains("edge_up") && names.contains("system.cpu.time")
        });
        assert!(both_metrics, "{:?}", received.metric_names.lock().unwrap());
        let tally = common::tally(&bodies, &expected);
        println!(
            "minimum edge: {} lines delivered (the long one cut to 1KiB), {} duplicates, {} requests",
            expected.len(),
            tally.duplicates,
            received.requests.lock().unwrap()
        );
    }
    let healthy = wait_until(Duration::from_secs(10), || {
        common::http_get(shipd.api, "/health").0 == 200
    });
    assert!(
        healthy,
        "{edge} edge: {:?}",
        common::http_get(shipd.api, "/health")
    );
    let hwm = vm_hwm_kib(shipd.child.id());
    println!("{edge} edge: VmHWM {hwm} KiB");
    assert!(hwm < 64 * 1024, "VmHWM {hwm} KiB");
    let log = shipd.log();
    let stopping = Instant::now();
    assert_eq!(shipd.terminate(), Some(0), "{log}");
    println!("{edge} edge: stopped in {:?}", stopping.elapsed());
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn every_minimum_value_starts_and_delivers() {
    starts_and_runs_at_the_edge(true);
}

#[test]
fn every_maximum_value_starts_and_stops_cleanly() {
    starts_and_runs_at_the_edge(false);
}

#[test]
fn the_reference_lists_every_range_and_its_default_pipeline_variable() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/pipeline-language.md"
    ))
    .unwrap();
    let default = std::fs::read_to_string(DEFAULT_PIPELINE).unwrap();
    let (file, errors) = shipd::lang::parse::parse(&default);
    assert!(errors.is_empty(), "{errors:?}");
    // (kind, option) -> variables the default pipeline reads for it.
    let mut vars_of = std::collections::HashMap::new();
    for item in &file.items {
        let (kind, options) = match item {
            Item::Source(c) | Item::Sink(c) => (c.kind.name.as_str(), &c.options),
            Item::Settings(options, _) => ("settings", options),
            _ => continue,
        };
        for opt in options {
            let entries: Vec<(String, &shipd::lang::ast::Expr)> = match &opt.value.kind {
                ExprKind::Map(entries) => entries
                    .iter()
                    .map(|(k, v)| (format!("{}.{k}", opt.key.name), v))
                    .collect(),
                _ => vec![(opt.key.name.clone(), &opt.value)],
            };
            for (name, value) in entries {
                vars_of.insert((kind.to_owned(), name), env_vars(value));
            }
        }
    }
    let mut missing = Vec::new();
    for kind in KINDS {
        for opt in kind.options {
            let Some(range) = opt.range else { continue };
            let prefix = format!("| `{}` | `{}` | {} ", kind.name, opt.name, range.describe());
            let alt = format!("| `{}` | `{}` | {},", kind.name, opt.name, range.describe());
            let Some(row) = doc
                .lines()
                .find(|l| l.starts_with(&prefix) || l.starts_with(&alt))
            else {
                missing.push(format!("{prefix}| ... |"));
                continue;
            };
            for var in vars_of
                .get(&(kind.name.to_owned(), opt.name.to_owned()))
                .into_iter()
                .flatten()
            {
                assert!(row.contains(&format!("`{var}`")), "{row} lacks {var}");
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/pipeline-language.md, \"Valid ranges\", lacks:\n{}",
        missing.join("\n")
    );
}
