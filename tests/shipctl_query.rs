//! `shipctl query` (the real binary) and `tail --openobserve` against an
//! in-process server answering OpenObserve's documented `_search` shapes
//! (`{took, hits: [{_timestamp, ...}], total}`; errors `{code, message}`),
//! filtering by the request's time range like OpenObserve does.

mod common;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use serde_json::{json, Value};
use shipd::cli::openobserve_search::SearchError;
use shipd::cli::query::{tail_openobserve, OpenObserveTailArgs, QueryError};
use shipd::cli::table::Format;
use shipd::sinks::openobserve::OpenObserveConfig;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const USER: &str = "root@example.com";
const PASSWORD: &str = "Complexpass#123";

/// The fake OpenObserve: its records and the requests it saw.
#[derive(Default)]
struct Search {
    records: Mutex<Vec<Value>>,
    /// (org, endpoint, body) of every authorised request.
    requests: Mutex<Vec<(String, String, Value)>>,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

async fn search(
    State(s): State<Arc<Search>>,
    Path((org, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let json_type = [("content-type", "application/json")];
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            json_type,
            json!({"code": 401, "message": "Unauthorized Access"}).to_string(),
        );
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    s.requests
        .lock()
        .unwrap()
        .push((org, endpoint.clone(), body.clone()));
    let q = &body["query"];
    let sql = q["sql"].as_str().unwrap();
    if sql.contains("nosuch") {
        return (
            StatusCode::BAD_REQUEST,
            json_type,
            json!({"code": 400, "message": "Search stream not found: nosuch"}).to_string(),
        );
    }
    let (start, end) = (
        q["start_time"].as_i64().unwrap(),
        q["end_time"].as_i64().unwrap(),
    );
    let (from, size) = (
        q["from"].as_u64().unwrap() as usize,
        q["size"].as_u64().unwrap() as usize,
    );
    let mut matching: Vec<Value> = s
        .records
        .lock()
        .unwrap()
        .iter()
        .filter(|r| (start..end).contains(&r["_timestamp"].as_i64().unwrap()))
        .cloned()
        .collect();
    matching.sort_by_key(|r| r["_timestamp"].as_i64().unwrap());
    let total = matching.len();
    let hits: Vec<Value> = matching.into_iter().skip(from).take(size).collect();
    if endpoint == "_search_stream" {
        let text = format!(
            "event: search_response_metadata\ndata: {}\n\nevent: search_response_hits\ndata: {}\n\ndata: [[DONE]]\n\n",
            json!({"results": {"total": total, "took": 4}}),
            json!({"hits": hits})
        );
        return (
            StatusCode::OK,
            [("content-type", "text/event-stream")],
            text,
        );
    }
    let answer = json!({"took": 7, "hits": hits, "total": total, "from": from, "size": size, "scan_size": 1});
    (StatusCode::OK, json_type, answer.to_string())
}

fn start(rt: &tokio::runtime::Runtime) -> (SocketAddr, Arc<Search>) {
    let state = Arc::new(Search::default());
    let app = axum::Router::new()
        .route("/api/{org}/{endpoint}", axum::routing::post(search))
        .with_state(Arc::clone(&state));
    let addr = common::serve_http(rt, app);
    (addr, state)
}

fn seed(s: &Search) {
    let t = now_us() - 60_000_000;
    *s.records.lock().unwrap() = vec![
        json!({"_timestamp": t, "body": "disk full, again", "host_name": "pi-1", "severity": "ERROR"}),
        json!({"_timestamp": t + 1_000_000, "body": "say \"hi\"", "host_name": "pi-2", "severity": "INFO"}),
        // Outside the default hour: OpenObserve would not return it.
        json!({"_timestamp": t - 7_200_000_000i64, "body": "old news", "host_name": "pi-3"}),
    ];
}

fn shipctl(addr: SocketAddr, password: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .env_clear()
        .env("OPENOBSERVE_URL", format!("http://{addr}"))
        .env("OPENOBSERVE_ORG", "pis")
        .env("OPENOBSERVE_USER", USER)
        .env("OPENOBSERVE_PASSWORD", password)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SQL: &str = "SELECT * FROM \"default\"";

#[test]
fn query_prints_hits_as_json_lines_csv_and_a_table() {
    let rt = common::runtime();
    let (addr, server) = start(&rt);
    seed(&server);

    let out = shipctl(addr, PASSWORD, &["query", SQL, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let records = server.records.lock().unwrap().clone();
    assert_eq!(rows, records[..2].to_vec());
    assert!(
        stderr(&out).contains("2 of 2 rows (7 ms)"),
        "{}",
        stderr(&out)
    );

    // The request: the documented body, µs times spanning the last hour.
    let (org, endpoint, body) = server.requests.lock().unwrap()[0].clone();
    assert_eq!((org.as_str(), endpoint.as_str()), ("pis", "_search"));
    let q = &body["query"];
    assert_eq!(q["sql"], SQL);
    assert_eq!(
        (q["from"].as_u64(), q["size"].as_u64()),
        (Some(0), Some(100))
    );
    let span = q["end_time"].as_i64().unwrap() - q["start_time"].as_i64().unwrap();
    assert_eq!(span, 3_600_000_000);
    assert!((now_us() - q["end_time"].as_i64().unwrap()).abs() < 30_000_000);

    let out = shipctl(addr, PASSWORD, &["query", SQL, "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = stdout(&out);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "_timestamp,body,host_name,severity");
    assert_eq!(
        lines[1],
        format!(
            "{},\"disk full, again\",pi-1,ERROR",
            records[0]["_timestamp"]
        )
    );
    assert_eq!(
        lines[2],
        format!("{},\"say \"\"hi\"\"\",pi-2,INFO", records[1]["_timestamp"])
    );
    assert_eq!(lines.len(), 3);

    let out = shipctl(addr, PASSWORD, &["query", SQL]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("_timestamp"), "{table}");
    assert!(lines[0].contains("body") && lines[0].contains("host_name"));
    assert!(lines[1].starts_with("----"));
    assert!(lines[2].contains("disk full, again") && lines[2].contains("pi-1"));
    assert!(
        lines[2].contains('T') && lines[2].contains('Z'),
        "RFC 3339 time: {}",
        lines[2]
    );
    let body_col = lines[0].find("body").unwrap();
    assert_eq!(
        lines[3].find("say").unwrap(),
        body_col,
        "columns aligned:\n{table}"
    );
}

#[test]
fn query_time_range_limit_and_search_stream_are_sent_as_asked() {
    let rt = common::runtime();
    let (addr, server) = start(&rt);
    seed(&server);
    let out = shipctl(
        addr,
        PASSWORD,
        &[
            "query",
            SQL,
            "--since",
            "2026-11-25T00:00:00Z",
            "--until",
            "2026-11-25T01:00:00Z",
            "--limit",
            "5",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "nothing in that range");
    let q = server.requests.lock().unwrap()[0].2["query"].clone();
    assert_eq!(q["start_time"], 1_795_564_800_000_000i64);
    assert_eq!(q["end_time"], 1_795_568_400_000_000i64);
    assert_eq!(q["size"], 5);

    let out = shipctl(
        addr,
        PASSWORD,
        &["query", SQL, "--stream", "--format", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2);
    assert!(
        stderr(&out).contains("2 of 2 rows (4 ms)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.requests.lock().unwrap()[1].1, "_search_stream");
}

#[test]
fn query_with_wrong_password_fails_with_openobserves_401_message() {
    let rt = common::runtime();
    let (addr, server) = start(&rt);
    seed(&server);
    let out = shipctl(addr, "wrong", &["query", SQL]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("401") && err.contains("Unauthorized Access"),
        "{err}"
    );
    assert!(
        err.contains("OPENOBSERVE_PASSWORD"),
        "says what to check: {err}"
    );
    assert_eq!(stdout(&out), "");

    // The agent's OPENOBSERVE_PASSWORD_FILE works too (trailing newline ignored).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .env_clear()
        .env("OPENOBSERVE_URL", format!("http://{addr}"))
        .env("OPENOBSERVE_ORG", "pis")
        .env("OPENOBSERVE_USER", USER)
        .env("OPENOBSERVE_PASSWORD_FILE", &file)
        .args(["query", SQL, "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2);
}

#[test]
fn query_with_bad_sql_fails_with_openobserves_400_message() {
    let rt = common::runtime();
    let (addr, _server) = start(&rt);
    let out = shipctl(addr, PASSWORD, &["query", "SELECT * FROM nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("refused the query (400): Search stream not found: nosuch"),
        "{err}"
    );
}

#[test]
fn query_without_openobserve_url_or_with_a_bad_time_is_unusable() {
    let out = Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .env_clear()
        .args(["query", SQL])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("OPENOBSERVE_URL is not set"),
        "{}",
        stderr(&out)
    );
    let rt = common::runtime();
    let (addr, _server) = start(&rt);
    let out = shipctl(addr, PASSWORD, &["query", SQL, "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`last tuesday` is neither"),
        "{}",
        stderr(&out)
    );
}

fn config(addr: SocketAddr, password: &str) -> OpenObserveConfig {
    let mut cfg = OpenObserveConfig::new("test", format!("http://{addr}"));
    cfg.org = "pis".into();
    cfg.user = Some(USER.into());
    cfg.password = Some(password.into());
    cfg
}

fn tail_args(limit: u64) -> OpenObserveTailArgs {
    OpenObserveTailArgs {
        stream: Some("node_logs".into()),
        condition: Some("severity = 'ERROR'".into()),
        format: Format::Json,
        since: Duration::from_secs(60),
        every: Duration::from_millis(100),
        overlap: Duration::from_secs(30),
        limit: Some(limit),
    }
}

#[test]
fn tail_follows_new_records_prints_each_once_and_catches_late_arrivals() {
    let rt = common::runtime();
    let (addr, server) = start(&rt);
    let t0 = now_us();
    server.records.lock().unwrap().extend([
        json!({"_timestamp": t0 - 10_000_000, "body": "r1"}),
        json!({"_timestamp": t0 - 5_000_000, "body": "r2"}),
        // Before `--since`: never printed.
        json!({"_timestamp": t0 - 120_000_000i64, "body": "too old"}),
    ]);
    let feeder = {
        let server = Arc::clone(&server);
        std::thread::spawn(move || {
            for (k, late) in [(3, false), (4, true), (5, false), (6, false)] {
                std::thread::sleep(Duration::from_millis(300));
                // A late record carries a time before the newest one printed.
                let ts = if late { t0 - 7_000_000 } else { now_us() - 1 };
                server
                    .records
                    .lock()
                    .unwrap()
                    .push(json!({"_timestamp": ts, "body": format!("r{k}")}));
            }
        })
    };
    let mut out = Vec::new();
    let printed = rt
        .block_on(async {
            let stop = tokio::time::sleep(Duration::from_secs(30));
            tail_openobserve(
                &config(addr, PASSWORD),
                &tail_args(6),
                &mut out,
                &mut Vec::new(),
                stop,
            )
            .await
        })
        .unwrap();
    feeder.join().unwrap();
    assert_eq!(printed, 6);
    let bodies: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["body"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(bodies, ["r1", "r2", "r3", "r4", "r5", "r6"]);
    let requests = server.requests.lock().unwrap();
    assert!(requests.len() >= 4, "polled {} times", requests.len());
    assert_eq!(
        requests[0].2["query"]["sql"],
        "SELECT * FROM \"node_logs\" WHERE (severity = 'ERROR') ORDER BY _timestamp ASC"
    );
}

#[test]
fn tail_stops_on_401_with_the_message_and_when_told_to() {
    let rt = common::runtime();
    let (addr, _server) = start(&rt);
    let mut out = Vec::new();
    let err = rt
        .block_on(tail_openobserve(
            &config(addr, "wrong"),
            &tail_args(1),
            &mut out,
            &mut Vec::new(),
            std::future::pending(),
        ))
        .unwrap_err();
    match err {
        QueryError::Search(SearchError::Unauthorized { message }) => {
            assert_eq!(message, "Unauthorized Access")
        }
        other => panic!("{other:?}"),
    }
    let printed = rt
        .block_on(async {
            let stop = tokio::time::sleep(Duration::from_millis(500));
            tail_openobserve(
                &config(addr, PASSWORD),
                &tail_args(10),
                &mut out,
                &mut Vec::new(),
                stop,
            )
            .await
        })
        .unwrap();
    assert_eq!(
        printed, 0,
        "nothing to print; the stop future ends the tail"
    );
}

#[test]
fn shipctl_tail_openobserve_prints_the_streams_recent_records_as_json() {
    let rt = common::runtime();
    let (addr, server) = start(&rt);
    let t = now_us();
    *server.records.lock().unwrap() = vec![
        json!({"_timestamp": t - 10_000_000, "body": "disk full", "severity": "ERROR"}),
        json!({"_timestamp": t - 5_000_000, "body": "disk full again", "severity": "ERROR"}),
        // Older than the minute a tail starts with.
        json!({"_timestamp": t - 600_000_000i64, "body": "old news", "severity": "ERROR"}),
    ];
    let out = shipctl(
        addr,
        PASSWORD,
        &[
            "tail",
            "--openobserve",
            "--stream",
            "web",
            "--where",
            "severity = 'ERROR'",
            "--limit",
            "2",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let records = server.records.lock().unwrap().clone();
    // The last minute holds the two recent records; the old one stays out.
    assert_eq!(rows, records[..2].to_vec());
    assert!(!stdout(&out).contains("old news"));
    let (_, _, body) = server.requests.lock().unwrap()[0].clone();
    let sql = body["query"]["sql"].as_str().unwrap().to_owned();
    assert!(sql.contains("web"), "{sql}");
    assert!(sql.contains("severity = 'ERROR'"), "{sql}");
}
