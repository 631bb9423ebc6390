//! `shipctl query --type`, `shipctl query --promql` and `shipctl streams`
//! (the real binary) against an in-process server answering as OpenObserve's
//! search API (`POST /api/{org}/_search?type=...`), its stream list (`GET
//! /api/{org}/streams?type=...`: `{list: [{name, stream_type, stats}]}`) and
//! its Prometheus-compatible API (`GET /api/{org}/prometheus/api/v1/query`
//! and `query_range`: `{status, data: {resultType, result}}`, errors
//! `{status: "error", errorType, error}`). Each test checks the request
//! shipctl sent (path, query string, body, Authorization) and what it printed.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const USER: &str = "root@example.com";
const PASSWORD: &str = "Complexpass#123";

/// One request the fake OpenObserve saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    authorization: Option<String>,
    body: Option<Value>,
}

#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<Seen>>,
}

fn json_answer(
    status: StatusCode,
    v: Value,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
}

/// Answers as OpenObserve does for the org `pis`: metric streams exist only
/// with `type=metrics`, PromQL `broken(` is a parse error, the expression
/// `slow` never answers in time, another org is 404.
async fn openobserve(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let query: HashMap<String, String> = uri.query().map(url_pairs).unwrap_or_default();
    let seen = Seen {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: query.clone(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body).ok(),
    };
    fake.seen.lock().unwrap().push(seen.clone());
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    if seen.authorization.as_deref() != Some(want.as_str()) {
        return json_answer(
            StatusCode::UNAUTHORIZED,
            json!({"code": 401, "message": "Unauthorized Access"}),
        );
    }
    let Some(rest) = uri.path().strip_prefix("/api/pis/") else {
        return json_answer(
            StatusCode::NOT_FOUND,
            json!({"code": 404, "message": "organization not found"}),
        );
    };
    let stream_type = query.get("type").map(String::as_str).unwrap_or("logs");
    match (method, rest) {
        (Method::POST, "_search") => {
            let sql = seen
                .body
                .as_ref()
                .and_then(|b| b["query"]["sql"].as_str())
                .unwrap_or("");
            if sql.contains("system_cpu_time") && stream_type != "metrics" {
                return json_answer(
                    StatusCode::BAD_REQUEST,
                    json!({"code": 400, "message": "Search stream not found: system_cpu_time"}),
                );
            }
            let hits = json!([{"_timestamp": 1_700_000_000_000_000i64, "host_name": "pi-1", "state": "idle", "value": 1234.5}]);
            json_answer(StatusCode::OK, json!({"took": 3, "hits": hits, "total": 1}))
        }
        (Method::GET, "streams") => {
            let list = match stream_type {
                "metrics" => json!([
                    {"name": "system_cpu_time", "stream_type": "metrics", "storage_type": "disk",
                     "stats": {"doc_time_min": 1_700_000_000_000_000i64, "doc_time_max": 1_700_003_600_000_000i64, "doc_num": 86400, "file_num": 3, "storage_size": 12.5, "compressed_size": 0.75}},
                    {"name": "hw_temperature", "stream_type": "metrics", "storage_type": "disk",
                     "stats": {"doc_time_min": 1_700_000_000_000_000i64, "doc_time_max": 1_700_000_060_000_000i64, "doc_num": 240, "file_num": 1, "storage_size": 0.1, "compressed_size": 0.01}}
                ]),
                _ => {
                    json!([{"name": "default", "stream_type": "logs", "storage_type": "disk", "stats": {"doc_num": 5}}])
                }
            };
            json_answer(StatusCode::OK, json!({"list": list}))
        }
        (Method::GET, "prometheus/api/v1/query" | "prometheus/api/v1/query_range") => {
            let expr = query.get("query").cloned().unwrap_or_default();
            if expr == "slow" {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            if expr.contains("broken(") {
                return json_answer(
                    StatusCode::BAD_REQUEST,
                    json!({"status": "error", "errorType": "bad_data", "error": "parse error: unclosed left parenthesis"}),
                );
            }
            let metric =
                json!({"__name__": "system_cpu_time", "host_name": "pi-1", "state": "idle"});
            let data = if rest.ends_with("query_range") {
                json!({"resultType": "matrix", "result": [{"metric": metric, "values": [[1_700_000_000, "0.25"], [1_700_000_060, "0.5"]]}]})
            } else {
                json!({"resultType": "vector", "result": [{"metric": metric, "value": [1_700_000_000, "0.25"]}]})
            };
            json_answer(StatusCode::OK, json!({"status": "success", "data": data}))
        }
        _ => json_answer(
            StatusCode::NOT_FOUND,
            json!({"code": 404, "message": "not found"}),
        ),
    }
}

/// `a=1&b=x%20y` decoded.
fn url_pairs(q: &str) -> HashMap<String, String> {
    let url = reqwest::Url::parse(&format!("http://x/?{q}")).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn start(rt: &tokio::runtime::Runtime) -> (SocketAddr, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let app = axum::Router::new()
        .fallback(openobserve)
        .with_state(Arc::clone(&fake));
    (common::serve_http(rt, app), fake)
}

fn shipctl(addr: SocketAddr, org: &str, password: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .env_clear()
        .env("OPENOBSERVE_URL", format!("http://{addr}"))
        .env("OPENOBSERVE_ORG", org)
        .env("OPENOBSERVE_USER", USER)
        .env("OPENOBSERVE_PASSWORD", password)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn last(fake: &Fake) -> Seen {
    fake.seen.lock().unwrap().last().cloned().unwrap()
}

#[test]
fn sql_on_metric_streams_sends_type_metrics() {
    let rt = common::runtime();
    let (addr, fake) = start(&rt);
    let sql = "SELECT * FROM \"system_cpu_time\"";
    let out = shipctl(
        addr,
        "pis",
        PASSWORD,
        &["query", sql, "--type", "metrics", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let seen = last(&fake);
    assert_eq!(
        (seen.method, seen.path.as_str()),
        (Method::POST, "/api/pis/_search")
    );
    assert_eq!(seen.query.get("type").map(String::as_str), Some("metrics"));
    assert_eq!(seen.body.as_ref().unwrap()["query"]["sql"], sql);
    let row: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(
        (row["state"].as_str(), row["value"].as_f64()),
        (Some("idle"), Some(1234.5))
    );
    assert!(
        text(&out.stderr).contains("1 of 1 rows"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn sql_on_a_metric_stream_as_logs_fails_with_a_hint_about_types_and_names() {
    let rt = common::runtime();
    let (addr, fake) = start(&rt);
    let out = shipctl(
        addr,
        "pis",
        PASSWORD,
        &["query", "SELECT * FROM system_cpu_time"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        last(&fake).query.get("type").map(String::as_str),
        Some("logs")
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("Search stream not found: system_cpu_time"),
        "{err}"
    );
    assert!(err.contains("--type metrics"), "{err}");
    assert!(err.contains("system_cpu_time"), "{err}");
}

#[test]
fn promql_instant_query_prints_a_table_of_series() {
    let rt = common::runtime();
    let (addr, fake) = start(&rt);
    let out = shipctl(
        addr,
        "pis",
        PASSWORD,
        &[
            "query",
            "--promql",
            "rate(system_cpu_time[5m])",
            "--until",
            "2023-11-14T22:13:20Z",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let seen = last(&fake);
    assert_eq!(
        (seen.method, seen.path.as_str()),
        (Method::GET, "/api/pis/prometheus/api/v1/query")
    );
    assert_eq!(
        seen.query.get("query").map(String::as_str),
        Some("rate(system_cpu_time[5m])")
    );
    assert_eq!(
        seen.query.get("time").map(String::as_str),
        Some("1700000000")
    );
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    assert_eq!(seen.authorization.as_deref(), Some(want.as_str()));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("series") && lines[0].contains("time") && lines[0].ends_with("value"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("system_cpu_time{host_name=\"pi-1\",state=\"idle\"}"),
        "{stdout}"
    );
    assert!(
        lines[2].contains("2023-11-14T22:13:20.000Z") && lines[2].ends_with("0.25"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("1 samples (vector)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn promql_range_query_sends_since_until_and_step_and_json_prints_the_data() {
    let rt = common::runtime();
    let (addr, fake) = start(&rt);
    let out = shipctl(
        addr,
        "pis",
        PASSWORD,
        &[
            "query",
            "--promql",
            "system_cpu_time",
            "--since",
            "2023-11-14T22:13:20Z",
            "--until",
            "2023-11-14T23:13:20Z",
            "--step",
            "1m",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let seen = last(&fake);
    assert_eq!(seen.path, "/api/pis/prometheus/api/v1/query_range");
    let q = |k: &str| seen.query.get(k).cloned().unwrap_or_default();
    assert_eq!(
        (q("start"), q("end"), q("step")),
        ("1700000000".into(), "1700003600".into(), "60".into())
    );
    let data: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(data["resultType"], "matrix");
    assert_eq!(data["result"][0]["values"][1][1], "0.5");
}

#[test]
fn promql_parse_errors_show_openobserves_message_and_a_step_needs_promql() {
    let rt = common::runtime();
    let (addr, fake) = start(&rt);
    let out = shipctl(addr, "pis", PASSWORD, &["query", "--promql", "sum(broken("]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("refused the query (400)") && err.contains("unclosed left parenthesis"),
        "{err}"
    );
    let asked = fake.seen.lock().unwrap().len();
    let out = shipctl(
        addr,
        "pis",
        PASSWORD,
        &["query", "SELECT 1", "--step", "1m"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--step is for PromQL"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(fake.seen.lock().unwrap().len(), asked, "nothing sent");
}

#[test]
fn streams_lists_metric_streams_with_counts_sorted_by_name() {
    let rt = common::runtime();
    let (addr, fake) = start(&rt);
    let out = shipctl(addr, "pis", PASSWORD, &["streams", "--type", "metrics"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let seen = last(&fake);
    assert_eq!(
        (seen.method, seen.path.as_str()),
        (Method::GET, "/api/pis/streams")
    );
    assert_eq!(seen.query.get("type").map(String::as_str), Some("metrics"));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with("name") && lines[0].contains("records"),
        "{stdout}"
    );
    let row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(
        row,
        [
            "system_cpu_time",
            "metrics",
            "86400",
            "2023-11-14T22:13:20Z",
            "2023-11-14T23:13:20Z",
            "12.50",
            "0.75"
        ],
        "{stdout}"
    );
    assert!(lines[2].starts_with("hw_temperature"), "{stdout}");
    assert!(text(&out.stderr).contains("2 metrics streams"));

    let out = shipctl(addr, "pis", PASSWORD, &["streams", "--format", "json"]);
    let row: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(
        (row["name"].as_str(), row["records"].as_u64()),
        (Some("default"), Some(5))
    );
    assert_eq!(
        last(&fake).query.get("type").map(String::as_str),
        Some("logs")
    );
}

#[test]
fn wrong_password_unknown_org_and_a_slow_answer_are_explained() {
    let rt = common::runtime();
    let (addr, _) = start(&rt);
    let out = shipctl(addr, "pis", "wrong", &["streams"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("refused the credentials (401): Unauthorized Access")
            && err.contains("OPENOBSERVE_PASSWORD"),
        "{err}"
    );

    let out = shipctl(addr, "nosuch", PASSWORD, &["query", "--promql", "up"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("404")
            && err.contains("organization not found")
            && err.contains("OPENOBSERVE_ORG"),
        "{err}"
    );

    let out = shipctl(
        addr,
        "pis",
        PASSWORD,
        &["query", "--promql", "slow", "--timeout", "300ms"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("did not answer") && err.contains("within 300ms") && err.contains("--timeout"),
        "{err}"
    );
}
