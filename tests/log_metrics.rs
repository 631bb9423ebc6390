//! The `log_metrics` source in the real `shipd` binary: nginx lines
//! appended to a file are counted by status and their request time
//! observed in a histogram by a step; after the interval the series arrive
//! at an in-process OpenObserve stand-in as OTLP metric points (a monotonic
//! cumulative counter, explicit-bucket histogram), while the lines
//! themselves arrive as logs. Only routes naming the metric sources lead
//! to the receiver, so the points prove `source == NAME` matches them. A label with more values than the source's
//! `max_series` is capped and counted.

mod common;
#[path = "support/otlp_receiver.rs"]
mod fault;

use common::{append_lines, runtime, Shipd};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn pipeline(dir: &Path, o2: &str, log: &Path) -> PathBuf {
    let path = dir.join("pipeline.ship");
    std::fs::write(
        &path,
        format!(
            r#"settings {{ data_dir = "{data}" }}
source access = files {{ include = ["{log}"], read_from = "beginning", poll_interval = 50ms, glob_interval = 200ms }}
source requests = log_metrics {{ every = 300ms }}
source paths = log_metrics {{ every = 300ms, max_series = 2 }}
step request_metrics on access {{
  .http = parse_nginx!(.message, "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_time")
  count(requests, "http_requests_total", {{ status: to_string(.http.status ?? 0) }})
  observe(requests, "http_request_duration_seconds", to_float(.http.request_time) ?? 0.0, buckets: [0.1, 1])
  count(paths, "requests_by_path_total", {{ path: to_string(.http.path ?? "") }})
}}
sink o2 = openobserve {{
  url = "{o2}", org = "pis", user = "root@example.com", password = "pw",
  batch.timeout = 100ms, retry_max = 500ms
}}
sink out = console {{}}
route {{
  source == requests => o2 stream "nginx_metrics"
  source == paths => o2 stream "nginx_paths"
  source == access => o2 stream "nginx_access"
  else => out
}}
"#,
            data = dir.join("data").display(),
            log = log.display(),
        ),
    )
    .unwrap();
    path
}

fn line(path: &str, status: u16, seconds: &str) -> String {
    format!("10.0.0.7 - - [25/Nov/2026:10:00:00 +0000] \"GET {path} HTTP/1.1\" {status} 12 \"-\" \"curl/8.5.0\" {seconds}")
}

#[test]
fn appended_lines_arrive_as_a_counter_by_status_and_a_latency_histogram() {
    let rt = runtime();
    let o2 = fault::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let config = pipeline(dir.path(), &o2.url(), &log);
    let shipd = Shipd::start_with_args(
        &["--config", config.to_str().unwrap()],
        &[],
        &dir.path().join("shipd.log"),
    );
    let lines: Vec<String> = [
        ("/a", 200, "0.050"),
        ("/b", 200, "0.100"),
        ("/c", 404, "0.300"),
        ("/d", 500, "2.000"),
        ("/e", 200, "0.020"),
        ("/f", 200, "0.020"),
    ]
    .iter()
    .map(|(p, s, t)| line(p, *s, t))
    .collect();
    append_lines(&log, &lines, 2, Duration::from_millis(50));

    let settled = |points: &[fault::Point]| {
        let total = |status: &str| {
            points
                .iter()
                .filter(|p| p.name == "http_requests_total" && p.label("status") == Some(status))
                .map(|p| p.value)
                .fold(0.0, f64::max)
        };
        total("200") == 4.0 && total("404") == 1.0 && total("500") == 1.0
    };
    assert!(
        o2.wait_points(Duration::from_secs(20), settled),
        "{:?}\n{}",
        o2.points(),
        shipd.log()
    );
    assert_eq!(
        o2.wait_for_lines(&lines, Duration::from_secs(10)),
        0,
        "the lines go on as logs"
    );

    let points = o2.points();
    let ok = points
        .iter()
        .filter(|p| p.name == "http_requests_total" && p.label("status") == Some("200"))
        .max_by(|a, b| a.value.total_cmp(&b.value))
        .unwrap();
    assert_eq!(ok.labels, ["status=200"]);
    assert!(
        ok.start_time_unix_nano > 0 && ok.start_time_unix_nano <= ok.time_unix_nano,
        "a cumulative series starts at its first point: {ok:?}"
    );
    let latency = points
        .iter()
        .filter(|p| p.name == "http_request_duration_seconds")
        .max_by_key(|p| p.histogram.as_ref().map(|h| h.0))
        .unwrap();
    let (count, bounds, buckets) = latency.histogram.clone().unwrap();
    assert_eq!(count, 6);
    assert_eq!(bounds, [0.1, 1.0]);
    assert_eq!(buckets, [4, 1, 1], "0.1 falls in le=0.1");
    assert!((latency.value - 2.49).abs() < 1e-9, "sum {}", latency.value);

    // Six paths, room for two series: /a and /b are counted, the rest
    // capped and counted.
    let mut paths: Vec<String> = points
        .iter()
        .filter(|p| p.name == "requests_by_path_total")
        .map(|p| p.labels.join(","))
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths, ["path=/a", "path=/b"]);
    assert_eq!(
        shipd
            .metric("shipd_metric_points_dropped_total{component=\"paths\",reason=\"max_series\"}"),
        4
    );
    assert!(shipd.log().contains("a new series would pass max_series"));
    assert_eq!(shipd.terminate(), Some(0));
}
