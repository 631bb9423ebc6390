//! The `otlp` sink against OTLP receivers that are not OpenObserve: its
//! custom paths and headers reach the receiver (HTTP headers, or gRPC
//! metadata), nothing of OpenObserve's (`stream-name`, `organization`, the
//! `/api/{org}` paths) does, and what it sends decodes with Python's
//! official `opentelemetry-proto` classes.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// A pipeline tailing `file` into the `otlp` sink written as `sink`.
fn pipeline(dir: &Path, file: &Path, sink: &str) -> std::path::PathBuf {
    let path = dir.join("otlp.ship");
    std::fs::write(
        &path,
        format!(
            r#"settings {{ data_dir = "{data}", api_addr = "off", control_socket = "off" }}
source app = files {{ include = ["{file}"], read_from = "beginning", poll_interval = 50ms, glob_interval = 200ms }}
sink collector = otlp {{
  {sink},
  batch.timeout = 200ms, retry_max = 1s
}}
route {{
  else => collector stream "edge_logs"
}}
"#,
            data = dir.join("data").display(),
            file = file.display(),
        ),
    )
    .unwrap();
    path
}

/// Ships `lines` through the pipeline of `sink` into `receiver`, then
/// stops shipd cleanly.
fn ship(receiver: &Receiver, dir: &Path, sink: &str, lines: &[String]) {
    let file = dir.join("app.log");
    append_lines(&file, lines, 500, Duration::ZERO);
    let config = pipeline(dir, &file, sink);
    let shipd = Shipd::start_with_args(
        &["--config", config.to_str().unwrap()],
        &[],
        &dir.join("shipd.log"),
    );
    assert_eq!(
        receiver.wait_for(lines.len(), Duration::from_secs(60)),
        lines.len(),
        "{}",
        shipd.log()
    );
    assert_eq!(shipd.terminate(), Some(0));
}

/// What Python's opentelemetry-proto reads from the captured bodies.
fn python_decode(receiver: &Receiver, dir: &Path) -> serde_json::Value {
    let captures = dir.join("captures");
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
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_every_line_decoded_once(report: &serde_json::Value, lines: &[String]) {
    assert_eq!(report["records"], lines.len());
    let mut bodies: Vec<String> = report["bodies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_owned())
        .collect();
    bodies.sort();
    let mut want = lines.to_vec();
    want.sort();
    assert_eq!(bodies, want);
    let keys = report["resource_keys"].to_string();
    for key in ["host.name", "service.name"] {
        assert!(keys.contains(key), "{key} missing in {keys}");
    }
}

#[test]
fn http_requests_go_to_the_custom_logs_path_with_the_custom_headers() {
    let rt = runtime();
    // `url` carries a path prefix (Loki serves OTLP under /otlp); the logs
    // path is not the OTLP default either.
    let receiver = http_receiver_at(&rt, "/otlp/ingest/logs", always_accept());
    let dir = tempfile::tempdir().unwrap();
    let lines = nginx_lines("otlp-http", 1_500);
    let sink = format!(
        r#"url = "{url}/otlp", logs_path = "/ingest/logs",
  headers = {{ "X-Scope-OrgID" = "pis", authorization = "Bearer t0ken" }},
  stream_header = "x-stream", compression = "gzip""#,
        url = receiver.url()
    );
    ship(&receiver, dir.path(), &sink, &lines);

    let captured = receiver.captured();
    assert!(!captured.is_empty());
    for request in &captured {
        let h = &request.headers;
        assert_eq!(h.get("x-scope-orgid").map(String::as_str), Some("pis"));
        assert_eq!(
            h.get("authorization").map(String::as_str),
            Some("Bearer t0ken")
        );
        assert_eq!(h.get("x-stream").map(String::as_str), Some("edge_logs"));
        assert_eq!(
            h.get("content-type").map(String::as_str),
            Some("application/x-protobuf")
        );
        assert_eq!(h.get("content-encoding").map(String::as_str), Some("gzip"));
        assert!(
            !h.contains_key("stream-name") && !h.contains_key("organization"),
            "nothing of OpenObserve's: {h:?}"
        );
    }
    let report = python_decode(&receiver, dir.path());
    assert_every_line_decoded_once(&report, &lines);
}

#[test]
fn grpc_calls_carry_the_custom_headers_as_metadata() {
    let rt = runtime();
    let receiver = grpc_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let lines = nginx_lines("otlp-grpc", 1_500);
    let sink = format!(
        r#"transport = "grpc", grpc_url = "{url}",
  headers = {{ "X-Scope-OrgID" = "pis", "x-api-key" = "k3y" }},
  user = "shipper", password = "pw""#,
        url = receiver.url()
    );
    ship(&receiver, dir.path(), &sink, &lines);

    let captured = receiver.captured();
    assert!(!captured.is_empty());
    for request in &captured {
        let md = &request.headers;
        assert_eq!(md.get("x-scope-orgid").map(String::as_str), Some("pis"));
        assert_eq!(md.get("x-api-key").map(String::as_str), Some("k3y"));
        // Basic base64("shipper:pw")
        assert_eq!(
            md.get("authorization").map(String::as_str),
            Some("Basic c2hpcHBlcjpwdw==")
        );
        assert!(
            !md.contains_key("stream-name") && !md.contains_key("organization"),
            "nothing of OpenObserve's: {md:?}"
        );
    }
    let report = python_decode(&receiver, dir.path());
    assert_every_line_decoded_once(&report, &lines);
}

/// The diagnostics of loading `sink` as an `otlp` sink.
fn load_errors(sink: &str) -> String {
    let src = format!("sink collector = otlp {{ {sink} }}\nroute {{ else => collector }}\n");
    match shipd::lang::load(&src) {
        Ok(_) => String::new(),
        Err(diagnostics) => shipd::lang::render("t.ship", &src, &diagnostics),
    }
}

#[test]
fn bad_headers_paths_and_missing_urls_are_refused_when_the_pipeline_loads() {
    let reserved =
        load_errors(r#"url = "http://c:4318", headers = { "content-type" = "application/json" }"#);
    assert!(
        reserved.contains("header `content-type` is set by shipd itself"),
        "{reserved}"
    );
    let secret = load_errors(r#"url = "http://c:4318", headers = { "x-token" = "s3cret\n" }"#);
    let message = secret.lines().next().unwrap_or_default();
    assert!(message.contains("`x-token`"), "{secret}");
    assert!(
        !message.contains("s3cret"),
        "a value is never shown: {secret}"
    );
    let both = load_errors(
        r#"url = "http://c:4318", user = "u", password = "p", headers = { authorization = "Bearer x" }"#,
    );
    assert!(both.contains("both `user`"), "{both}");
    let path = load_errors(r#"url = "http://c:4318", logs_path = "v1/logs""#);
    assert!(path.contains("must be a path starting with `/`"), "{path}");
    let grpc = load_errors(r#"transport = "grpc", url = "http://c:4318""#);
    assert!(grpc.contains("needs the option `grpc_url`"), "{grpc}");
    assert_eq!(
        load_errors(r#"url = "http://c:3100/otlp", logs_path = "/v1/logs""#),
        "",
        "a path prefix is fine"
    );
}
