//! The prometheus_scrape source against a real local HTTP server: fixture
//! exposition text with malformed lines, a target that answers too slowly,
//! one that answers 500, and the running source sending batches.

mod common;

use axum::http::{header, StatusCode};
use shipd::event::{Distribution, Event, MetricKind, MetricPoint};
use shipd::pipeline::channel::batch_channel;
use shipd::pipeline::checkpoint::Checkpointer;
use shipd::sources::file::SourceContext;
use shipd::sources::prometheus::scrape::Target;
use shipd::sources::prometheus::{PrometheusScrapeConfig, PrometheusScrapeSource};
use std::net::SocketAddr;

use std::time::Duration;

const EXPOSITION: &str = "\
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1234.5
node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 99.25
this line is garbage
# TYPE node_load1 gauge
node_load1 0.42
node_load1{broken=\"yes\" 3
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{verb=\"GET\",le=\"0.05\"} 10
apiserver_request_duration_seconds_bucket{verb=\"GET\",le=\"0.1\"} 15
apiserver_request_duration_seconds_bucket{verb=\"GET\",le=\"+Inf\"} 17
apiserver_request_duration_seconds_sum{verb=\"GET\"} 1.5
apiserver_request_duration_seconds_count{verb=\"GET\"} 17
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile=\"0.5\"} 0.0001
go_gc_duration_seconds{quantile=\"1\"} 0.003
go_gc_duration_seconds_sum 0.25
go_gc_duration_seconds_count 400
process_start_time_seconds{job=\"kubelet\"} 1.7e9
value_without_number NaNish
";

fn serve(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    EXPOSITION,
                )
            }),
        )
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late 1\n"
            }),
        )
        .route(
            "/broken",
            axum::routing::get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        );
    common::serve_http(rt, app)
}

fn config(urls: Vec<String>) -> PrometheusScrapeConfig {
    let mut cfg = PrometheusScrapeConfig::new("k3s", urls);
    cfg.timeout = Duration::from_millis(300);
    cfg.interval = Duration::from_millis(100);
    cfg
}

fn find<'a>(points: &'a [MetricPoint], name: &str, label: (&str, &str)) -> &'a MetricPoint {
    points
        .iter()
        .find(|p| p.name == name && p.label(label.0) == Some(label.1))
        .unwrap_or_else(|| panic!("{name} with {label:?} missing"))
}

#[test]
fn exposition_is_mapped_and_malformed_lines_are_skipped_and_counted() {
    let rt = common::runtime();
    let addr = serve(&rt);
    let url = format!("http://{addr}/metrics");
    let cfg = config(vec![url.clone()]);
    let mut target = Target::new(&cfg, &url, "pi1").unwrap();
    let client = reqwest::Client::new();
    let report = rt.block_on(target.scrape(&client, cfg.timeout));
    assert!(report.up, "{:?}", report.error);
    assert_eq!(report.malformed, 3);
    let p = &report.points;
    let instance = addr.to_string();

    let idle = find(p, "node_cpu_seconds_total", ("mode", "idle"));
    assert_eq!(idle.value, 1234.5);
    assert_eq!(idle.kind, MetricKind::Sum { monotonic: true });
    assert!(idle.start_time_unix_nano > 0);
    assert_eq!(idle.label("job"), Some("k3s"));
    assert_eq!(idle.label("instance"), Some(instance.as_str()));
    assert_eq!(idle.label("cpu"), Some("0"));

    let load = find(p, "node_load1", ("job", "k3s"));
    assert_eq!((load.value, load.kind), (0.42, MetricKind::Gauge));

    let hist = find(p, "apiserver_request_duration_seconds", ("verb", "GET"));
    assert_eq!(hist.kind, MetricKind::Histogram);
    assert_eq!(
        hist.distribution.as_deref(),
        Some(&Distribution::Histogram {
            count: 17,
            sum: 1.5,
            bounds: vec![0.05, 0.1],
            bucket_counts: vec![10, 5, 2],
        })
    );
    assert!(hist.label("le").is_none(), "le is folded into the buckets");

    let summary = find(p, "go_gc_duration_seconds", ("job", "k3s"));
    assert_eq!(
        summary.distribution.as_deref(),
        Some(&Distribution::Summary {
            count: 400,
            sum: 0.25,
            quantiles: vec![(0.5, 0.0001), (1.0, 0.003)],
        })
    );

    // honor_labels = false: the exposed job is kept as exported_job.
    let start = find(p, "process_start_time_seconds", ("exported_job", "kubelet"));
    assert_eq!(start.label("job"), Some("k3s"));

    assert_eq!(find(p, "up", ("job", "k3s")).value, 1.0);
    assert_eq!(find(p, "scrape_samples_scraped", ("job", "k3s")).value, 6.0);
    assert_eq!(
        find(p, "scrape_samples_malformed", ("job", "k3s")).value,
        3.0
    );
    assert!(find(p, "scrape_duration_seconds", ("job", "k3s")).value < 0.3);
}

#[test]
fn a_slow_target_times_out_and_a_failing_one_reports_up_zero() {
    let rt = common::runtime();
    let addr = serve(&rt);
    let client = reqwest::Client::new();
    for (path, expect) in [("/slow", "timed out"), ("/broken", "HTTP 500")] {
        let url = format!("http://{addr}{path}");
        let cfg = config(vec![url.clone()]);
        let mut target = Target::new(&cfg, &url, "pi1").unwrap();
        let report = rt.block_on(target.scrape(&client, cfg.timeout));
        assert!(!report.up);
        let error = report.error.unwrap_or_default();
        assert!(error.contains(expect), "{path}: {error}");
        let names: Vec<&str> = report.points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "up",
                "scrape_duration_seconds",
                "scrape_samples_scraped",
                "scrape_samples_malformed"
            ]
        );
        assert_eq!(report.points[0].value, 0.0);
        if path == "/slow" {
            assert!(
                report.duration < Duration::from_secs(2),
                "bounded by the timeout"
            );
        }
    }
}

#[test]
fn running_source_scrapes_every_target_on_its_interval_until_cancelled() {
    let rt = common::runtime();
    let addr = serve(&rt);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(vec![
        format!("http://{addr}/metrics"),
        format!("http://{addr}/broken"),
    ]);
    let (tx, mut rx) = batch_channel(1 << 20);
    let cancel = tokio_util::sync::CancellationToken::new();
    let ctx = SourceContext {
        unreplayable: shipd::buffer::journal::JournaledSender::new(tx.clone(), None),
        out: tx,
        checkpointer: Checkpointer::open(
            dir.path(),
            &shipd::pipeline::checkpoint::CheckpointSettings::disk_only(Duration::from_secs(5)),
        )
        .unwrap(),
        cancel: cancel.clone(),
        host_name: "pi1".into(),
    };
    let _guard = rt.enter();
    let handle = PrometheusScrapeSource::new(cfg, ctx).spawn().unwrap();
    let ups = rt.block_on(async {
        let mut ups: Vec<(String, f64)> = Vec::new();
        while ups.len() < 4 {
            let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("a batch within 5 s")
                .expect("source running");
            for e in &batch.item.events {
                if let Event::Metric(m) = e {
                    if m.name == "up" {
                        ups.push((m.label("instance").unwrap_or("").to_owned(), m.value));
                    }
                }
            }
        }
        ups
    });
    assert!(ups.iter().any(|(_, v)| *v == 1.0), "{ups:?}");
    assert!(ups.iter().any(|(_, v)| *v == 0.0), "{ups:?}");
    cancel.cancel();
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), handle).await })
        .expect("source stops when cancelled")
        .unwrap();
}
