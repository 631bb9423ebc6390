//! The `elasticsearch` sink against an in-process `_bulk` receiver that
//! answers as Elasticsearch does, item by item: some documents refused for
//! good (400 `mapper_parsing_exception`), some asked to come back (429
//! `es_rejected_execution_exception`, 503) a few times, the rest created.
//! The refused are counted and logged, the retried re-sent alone until
//! created, every other line delivered exactly once; bodies are gzip
//! NDJSON of `create` actions and documents. A retried document holds its
//! checkpoint back: killed while it is pending, shipd sends it again after
//! the restart.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver saw.
#[derive(Default)]
struct Bulk {
    /// Created documents by message.
    created: Mutex<HashMap<String, usize>>,
    /// Every time a message was sent, whatever the answer.
    attempts: Mutex<HashMap<String, usize>>,
    requests: Mutex<usize>,
    /// Problems with a request's shape (asserted empty at the end).
    malformed: Mutex<Vec<String>>,
    /// While set, `busy-forever` lines are answered 429.
    hold: AtomicBool,
}

/// Answers each document per its message: `reject-` 400 for good,
/// `busy-` 429 twice then 201, `down-` 503 once then 201, `busy-forever`
/// 429 while `hold` is set, anything else 201.
async fn bulk(
    State(state): State<Arc<Bulk>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    *state.requests.lock().unwrap() += 1;
    let bad = |why: String| state.malformed.lock().unwrap().push(why);
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-ndjson") {
        bad(format!("content-type {:?}", headers.get("content-type")));
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("ApiKey c2hpcGQ6a2V5") {
        bad("authorization header missing".into());
    }
    let raw = if headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        == Some("gzip")
    {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    } else {
        bad("body not gzip".into());
        body.to_vec()
    };
    let text = String::from_utf8(raw).expect("utf-8 body");
    if !text.ends_with('\n') {
        bad("body does not end in a newline".into());
    }
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    if lines.len() % 2 != 0 {
        bad(format!(
            "{} lines: not action + document pairs",
            lines.len()
        ));
    }
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let action: Value = serde_json::from_str(pair[0]).expect("action line is JSON");
        let index = action["create"]["_index"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if index != "edge_logs" {
            bad(format!("action line {}", pair[0]));
        }
        let doc: Value =
            serde_json::from_str(pair.get(1).copied().unwrap_or("{}")).expect("document is JSON");
        for field in ["@timestamp", "message", "attributes", "resource"] {
            if doc.get(field).is_none() {
                bad(format!("document without {field}: {doc}"));
            }
        }
        if doc["resource"]["host.name"] != "test-node" {
            bad(format!("document without its resource: {doc}"));
        }
        let message = doc["message"].as_str().unwrap_or_default().to_owned();
        let attempt = {
            let mut attempts = state.attempts.lock().unwrap();
            let n = attempts.entry(message.clone()).or_default();
            *n += 1;
            *n
        };
        let (status, error) = if message.contains("reject-") {
            (
                400,
                Some((
                    "mapper_parsing_exception",
                    "failed to parse field [status] of type [long]",
                )),
            )
        } else if (message.contains("busy-forever") && state.hold.load(Ordering::SeqCst))
            || (message.contains("busy-now") && attempt <= 2)
        {
            (
                429,
                Some((
                    "es_rejected_execution_exception",
                    "rejected execution of coordinating operation",
                )),
            )
        } else if message.contains("down-") && attempt <= 1 {
            (
                503,
                Some((
                    "unavailable_shards_exception",
                    "primary shard is not active",
                )),
            )
        } else {
            *state.created.lock().unwrap().entry(message).or_default() += 1;
            (201, None)
        };
        let mut item = json!({ "_index": index, "status": status });
        if let Some((kind, reason)) = error {
            errors = true;
            item["error"] = json!({ "type": kind, "reason": reason });
        } else {
            item["result"] = json!("created");
        }
        items.push(json!({ "create": item }));
    }
    let answer = json!({ "took": 3, "errors": errors, "items": items });
    (StatusCode::OK, answer.to_string())
}

/// Serves `_bulk` under OpenObserve's `/api/{org}` prefix.
fn bulk_receiver(rt: &tokio::runtime::Runtime, state: Arc<Bulk>) -> std::net::SocketAddr {
    let app = axum::Router::new()
        .route("/api/pis/_bulk", axum::routing::post(bulk))
        .with_state(state);
    serve_http(rt, app)
}

fn pipeline(dir: &Path, file: &Path, addr: std::net::SocketAddr) -> std::path::PathBuf {
    let path = dir.join("es.ship");
    std::fs::write(
        &path,
        format!(
            r#"settings {{ data_dir = "{data}", checkpoint_interval = 100ms }}
source app = files {{ include = ["{file}"], read_from = "beginning", poll_interval = 50ms, glob_interval = 200ms }}
sink es = elasticsearch {{
  url = "http://{addr}/api/pis", compression = "gzip",
  headers = {{ authorization = "ApiKey c2hpcGQ6a2V5" }},
  batch.timeout = 200ms, batch.max_events = 100, retry_max = 300ms
}}
route {{
  else => es stream "edge_logs"
}}
"#,
            data = dir.join("data").display(),
            file = file.display(),
        ),
    )
    .unwrap();
    path
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

#[test]
fn rejected_documents_are_counted_retryable_ones_resent_and_the_rest_delivered_once() {
    let rt = runtime();
    let state = Arc::new(Bulk::default());
    let addr = bulk_receiver(&rt, Arc::clone(&state));
    let dir = tempfile::tempdir().unwrap();
    let mut lines = nginx_lines("es", 600);
    for (i, line) in lines.iter_mut().enumerate() {
        match i % 20 {
            3 => line.push_str(" reject-me"),
            7 => line.push_str(" busy-now"),
            11 => line.push_str(" down-now"),
            _ => {}
        }
    }
    let file = dir.path().join("app.log");
    append_lines(&file, &lines, 200, Duration::ZERO);
    let config = pipeline(dir.path(), &file, addr);
    let shipd = Shipd::start_with_args(
        &["--config", config.to_str().unwrap()],
        &[],
        &dir.path().join("shipd.log"),
    );

    let rejected: Vec<&String> = lines.iter().filter(|l| l.contains("reject-")).collect();
    let deliverable: Vec<&String> = lines.iter().filter(|l| !l.contains("reject-")).collect();
    let series = "shipd_events_dropped_total{component=\"es\",reason=\"rejected\"}";
    let settled = wait_until(Duration::from_secs(60), || {
        state.created.lock().unwrap().len() == deliverable.len()
            && shipd.metric(series) == rejected.len() as u64
    });
    assert!(
        settled,
        "created {} of {}, rejected {}: {}",
        state.created.lock().unwrap().len(),
        deliverable.len(),
        shipd.metric(series),
        shipd.log()
    );
    let log = shipd.log();
    assert_eq!(shipd.terminate(), Some(0));

    assert!(
        state.malformed.lock().unwrap().is_empty(),
        "{:?}",
        state.malformed.lock().unwrap()
    );
    let created = state.created.lock().unwrap();
    let attempts = state.attempts.lock().unwrap();
    for line in &deliverable {
        assert_eq!(
            created.get(*line),
            Some(&1),
            "delivered exactly once: {line}"
        );
        let expected = if line.contains("busy-") {
            3
        } else if line.contains("down-") {
            2
        } else {
            1
        };
        assert_eq!(
            attempts.get(*line),
            Some(&expected),
            "sent {expected} times: {line}"
        );
    }
    for line in &rejected {
        assert!(!created.contains_key(*line), "never created: {line}");
        assert_eq!(
            attempts.get(*line),
            Some(&1),
            "a refused document is not sent again: {line}"
        );
    }
    assert!(
        log.contains("mapper_parsing_exception"),
        "the item's error type is logged: {log}"
    );
}

#[test]
fn a_document_still_retried_holds_its_checkpoint_back_across_a_kill() {
    let rt = runtime();
    let state = Arc::new(Bulk::default());
    state.hold.store(true, Ordering::SeqCst);
    let addr = bulk_receiver(&rt, Arc::clone(&state));
    let dir = tempfile::tempdir().unwrap();
    let mut lines = nginx_lines("es-kill", 50);
    lines[10].push_str(" busy-forever");
    let file = dir.path().join("app.log");
    append_lines(&file, &lines, 50, Duration::ZERO);
    let config = pipeline(dir.path(), &file, addr);
    let log_path = dir.path().join("shipd.log");
    let shipd = Shipd::start_with_args(&["--config", config.to_str().unwrap()], &[], &log_path);
    let stuck = lines[10].clone();
    let others_created = wait_until(Duration::from_secs(30), || {
        state.created.lock().unwrap().len() == lines.len() - 1
            && state
                .attempts
                .lock()
                .unwrap()
                .get(&stuck)
                .copied()
                .unwrap_or(0)
                >= 3
    });
    assert!(others_created, "{}", shipd.log());
    // Several checkpoint intervals pass while the document is retried.
    std::thread::sleep(Duration::from_millis(500));
    shipd.kill9();
    assert!(!state.created.lock().unwrap().contains_key(&stuck));

    state.hold.store(false, Ordering::SeqCst);
    let shipd = Shipd::start_with_args(&["--config", config.to_str().unwrap()], &[], &log_path);
    let delivered = wait_until(Duration::from_secs(30), || {
        state.created.lock().unwrap().contains_key(&stuck)
    });
    assert!(
        delivered,
        "the held-back document is sent after the restart: {}",
        shipd.log()
    );
    assert_eq!(shipd.terminate(), Some(0));
    assert!(
        state.malformed.lock().unwrap().is_empty(),
        "{:?}",
        state.malformed.lock().unwrap()
    );
}

/// The diagnostics of loading `sink` as an `elasticsearch` sink.
fn load_errors(sink: &str) -> String {
    let src = format!("sink es = elasticsearch {{ {sink} }}\nroute {{ else => es }}\n");
    match shipd::lang::load(&src) {
        Ok(_) => String::new(),
        Err(diagnostics) => shipd::lang::render("t.ship", &src, &diagnostics),
    }
}

#[test]
fn the_url_is_required_and_bad_indexes_or_compressions_are_refused() {
    let missing = load_errors(r#"index = "logs""#);
    assert!(missing.contains("needs the option `url`"), "{missing}");
    let quoted = load_errors(r#"url = "http://es:9200", index = "a\"b""#);
    assert!(quoted.contains("option `index` must be"), "{quoted}");
    let zstd = load_errors(r#"url = "http://es:9200", compression = "zstd""#);
    assert!(
        zstd.contains("option `compression` must be one of gzip, none"),
        "{zstd}"
    );
    let query = load_errors(r#"url = "http://es:9200?pretty""#);
    assert!(query.contains("query string"), "{query}");
    assert_eq!(
        load_errors(r#"url = "http://pi-obs:5080/api/default", index = "logs-shipd""#),
        "",
        "OpenObserve's /api/{{org}} base is fine"
    );
}

/// What the hostile `_bulk` receiver saw: each document's message, and how
/// many bytes of its answers it handed to shipd's connections.
#[derive(Default)]
struct Flood {
    messages: Mutex<Vec<String>>,
    requests: std::sync::atomic::AtomicU64,
    served: Arc<std::sync::atomic::AtomicU64>,
}

/// The bound the issues set for default settings.
const PEAK_BOUND: u64 = 64 << 20;
/// The length of every hostile answer.
const FLOOD_BYTES: u64 = 1 << 30;

/// Accepts every document, then answers with a 1 GiB body that begins like
/// a successful bulk answer and goes on with `create` items, produced only
/// as shipd reads them.
async fn flooding_bulk(State(state): State<Arc<Flood>>, body: Bytes) -> axum::response::Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let mut raw = Vec::new();
    if flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut raw)
        .is_err()
    {
        raw = body.to_vec();
    }
    let text = String::from_utf8_lossy(&raw);
    for doc in text.split_terminator('\n').skip(1).step_by(2) {
        if let Ok(doc) = serde_json::from_str::<Value>(doc) {
            let message = doc["message"].as_str().unwrap_or_default().to_owned();
            state.messages.lock().unwrap().push(message);
        }
    }
    let prefix = Bytes::from_static(br#"{"took":1,"errors":false,"items":["#);
    let items = Bytes::from(r#"{"create":{"status":201}},"#.repeat(2_500));
    let chunks = FLOOD_BYTES / items.len() as u64;
    let served = Arc::clone(&state.served);
    let answer = std::iter::once(prefix)
        .chain((0..chunks).map(move |_| {
            served.fetch_add(items.len() as u64, Ordering::Relaxed);
            items.clone()
        }))
        .map(Ok::<_, std::convert::Infallible>);
    let stream = tokio_stream::iter(answer);
    axum::response::Response::new(axum::body::Body::from_stream(stream))
}

/// VmHWM of a running shipd, in bytes.
fn peak_rss(shipd: &Shipd) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", shipd.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// A hostile `_bulk` endpoint answering each request with 1 GiB: shipd
/// reads only the start of each answer (enough to see `"errors":false`),
/// acknowledges its documents, delivers every line once and stays under
/// 64 MiB.
#[test]
fn a_1_gib_bulk_answer_is_read_in_part_and_memory_stays_under_64_mib() {
    let rt = runtime();
    let state = Arc::new(Flood::default());
    let app = axum::Router::new()
        .route("/api/pis/_bulk", axum::routing::post(flooding_bulk))
        .with_state(Arc::clone(&state));
    let addr = serve_http(&rt, app);
    let dir = tempfile::tempdir().unwrap();
    let lines = nginx_lines("es-flood", 500);
    let file = dir.path().join("app.log");
    append_lines(&file, &lines, 100, Duration::ZERO);
    let config = pipeline(dir.path(), &file, addr);
    let shipd = Shipd::start_with_args(
        &["--config", config.to_str().unwrap()],
        &[],
        &dir.path().join("shipd.log"),
    );
    let delivered = "shipd_events_out_total{component=\"es\"}";
    let settled = wait_until(Duration::from_secs(60), || {
        shipd.metric(delivered) >= lines.len() as u64
    });
    let peak = peak_rss(&shipd);
    let requests = state.requests.load(Ordering::SeqCst);
    let served = state.served.load(Ordering::Relaxed);
    println!(
        "1 GiB bulk answers: {} lines in {requests} requests, {} KiB of answers handed to shipd; VmHWM {} KiB",
        lines.len(),
        served / 1024,
        peak / 1024
    );
    assert!(
        settled,
        "{} of {} delivered: {}",
        shipd.metric(delivered),
        lines.len(),
        shipd.log()
    );
    let messages = state.messages.lock().unwrap().clone();
    let t = tally(&messages, &lines);
    assert_eq!((t.missing, t.duplicates), (0, 0), "each line once");
    assert!(
        served < requests * (64 << 20),
        "shipd stopped reading each answer early"
    );
    assert!(
        peak > 0 && peak <= PEAK_BOUND,
        "VmHWM {} KiB over 64 MiB",
        peak / 1024
    );
    assert_eq!(shipd.terminate(), Some(0));
}
