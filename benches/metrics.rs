//! Metrics collection costs:
//!
//! - `host_metrics_collect`: CPU time (the bench thread's own CPU clock,
//!   user + kernel) of one host-metrics collection on this machine, steady
//!   state (the collector reused as the running source reuses it). Goal: < 2 ms.
//! - `prometheus_parse_10k`: parsing a 10,000-line exposition (5,000 counter
//!   and 4,000 gauge series, 100 histograms of 8 buckets).
//! - `prometheus_scrape_10k`: fetching that exposition from a local HTTP
//!   server and turning it into metric points (wall time).
//! - `encode_metrics_collection`: OTLP encoding of one host collection.
//!
//! Run with `cargo bench --bench metrics`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shipd::event::Event;
use shipd::sinks::otlp_encode_metrics::encode_metrics;
use shipd::sources::host_metrics::{HostMetrics, HostMetricsConfig};
use shipd::sources::prometheus::scrape::Target;
use shipd::sources::prometheus::text::{parse, Format};
use shipd::sources::prometheus::PrometheusScrapeConfig;
use std::fmt::Write;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn exposition() -> String {
    let mut text = String::with_capacity(1 << 20);
    for family in 0..50 {
        let _ = writeln!(text, "# HELP app_requests_{family}_total Requests.\n# TYPE app_requests_{family}_total counter");
        for series in 0..100 {
            let _ = writeln!(
                text,
                "app_requests_{family}_total{{method=\"GET\",path=\"/api/v1/items/{series}\",code=\"200\"}} {}",
                family * 1000 + series
            );
        }
    }
    for family in 0..40 {
        let _ = writeln!(text, "# TYPE node_gauge_{family} gauge");
        for series in 0..100 {
            let _ = writeln!(
                text,
                "node_gauge_{family}{{device=\"dev{series}\"}} {}.5",
                series
            );
        }
    }
    for family in 0..10 {
        let _ = writeln!(text, "# TYPE rpc_duration_{family}_seconds histogram");
        for series in 0..10 {
            let mut cumulative = 0;
            for le in ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"] {
                cumulative += series + 1;
                let _ = writeln!(text, "rpc_duration_{family}_seconds_bucket{{svc=\"s{series}\",le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(
                text,
                "rpc_duration_{family}_seconds_sum{{svc=\"s{series}\"}} 12.5"
            );
            let _ = writeln!(
                text,
                "rpc_duration_{family}_seconds_count{{svc=\"s{series}\"}} {cumulative}"
            );
        }
    }
    text
}

fn host_metrics(c: &mut Criterion) {
    let mut host = HostMetrics::new(HostMetricsConfig::new("host"), "bench");
    host.collect(SystemTime::now());
    let points = host.collect(SystemTime::now()).points.len();
    eprintln!("one collection on this machine: {points} points");
    c.bench_function("host_metrics_collect_cpu_time", |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu();
            for _ in 0..iters {
                black_box(host.collect(SystemTime::now()));
            }
            thread_cpu() - start
        })
    });
    let events: Vec<Event> = host
        .collect(SystemTime::now())
        .points
        .into_iter()
        .map(Event::Metric)
        .collect();
    c.bench_function("encode_metrics_collection", |b| {
        b.iter(|| black_box(encode_metrics(black_box(&events))))
    });
}

fn prometheus(c: &mut Criterion) {
    let text = exposition();
    assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 10_000);
    let mut group = c.benchmark_group("prometheus");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("parse_10k_lines", |b| {
        b.iter(|| black_box(parse(black_box(&text), Format::Prometheus)))
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let body = text.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("http://{addr}/metrics");
    let cfg = PrometheusScrapeConfig::new("bench", vec![url.clone()]);
    let mut target = Target::new(&cfg, &url, "bench").unwrap();
    let client = reqwest::Client::new();
    let report = rt.block_on(target.scrape(&client, Duration::from_secs(5)));
    assert!(report.up && report.malformed == 0, "{:?}", report.error);
    eprintln!("one scrape: {} points", report.points.len());
    group.bench_function("scrape_and_parse_10k_lines", |b| {
        b.iter(|| black_box(rt.block_on(target.scrape(&client, Duration::from_secs(5)))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = host_metrics, prometheus
}
criterion_main!(benches);
