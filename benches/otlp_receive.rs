//! The CPU work of the OTLP receiver per record: gunzip the body, then
//! walk the protobuf `ExportLogsServiceRequest` and map it record by record
//! onto shipd's events (`sources::otlp::convert::logs`, which counts the
//! records and bounds their memory first). 100,000 nginx access-log records
//! in requests of 512 records (the OpenTelemetry SDKs' default batch size).
//!
//! Run with `cargo bench --bench otlp_receive`.

mod common;

use common::NginxLines;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use prost::Message;
use shipd::event::{Event, LogRecord, Resource, Value};
use shipd::sinks::compression::Compression;
use shipd::sinks::otlp_encode::encode_logs;
use shipd::sources::otlp::convert::{logs, Origin};
use std::hint::black_box;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

const RECORDS: usize = 100_000;
const PER_REQUEST: usize = 512;

/// Gzip bodies as an app's OTLP exporter sends them.
fn bodies() -> Vec<Vec<u8>> {
    let mut gen = NginxLines::new(0x5eed);
    let resource = Arc::new(Resource {
        attributes: vec![
            ("service.name".into(), Value::from("web")),
            ("service.version".into(), Value::from("2.1.0")),
        ],
    });
    let events: Vec<Event> = (0..RECORDS)
        .map(|_| {
            let mut line = String::new();
            gen.next_line(&mut line);
            let mut r = LogRecord::new(Value::String(line.into()), Arc::clone(&resource));
            r.severity_number = 9;
            r.attributes = vec![("http.route".into(), Value::from("/api/orders"))];
            Event::Log(r)
        })
        .collect();
    events
        .chunks(PER_REQUEST)
        .map(|chunk| {
            Compression::Gzip
                .compress(&encode_logs(chunk).encode_to_vec())
                .expect("compression into memory")
        })
        .collect()
}

fn receive_all(bodies: &[Vec<u8>], origin: &Origin) -> usize {
    let mut n = 0;
    let mut raw = Vec::new();
    for body in bodies {
        raw.clear();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut raw)
            .expect("valid gzip");
        let converted = logs(&raw, origin, usize::MAX, |_| true).expect("valid request");
        n += converted.batch.len();
    }
    n
}

fn bench_receive(c: &mut Criterion) {
    let bodies = bodies();
    let origin = Origin {
        source: Arc::from("otlp"),
        host_name: "pi-node-03".into(),
    };
    eprintln!(
        "otlp_receive: {RECORDS} records in {} gzip requests, {:.2} MB on the wire",
        bodies.len(),
        bodies.iter().map(Vec::len).sum::<usize>() as f64 / 1e6
    );
    let mut group = c.benchmark_group("otlp_receive_100k_records");
    group
        .throughput(Throughput::Elements(RECORDS as u64))
        .sampling_mode(SamplingMode::Flat);
    group.bench_function("gunzip_decode_convert", |b| {
        b.iter(|| receive_all(black_box(&bodies), &origin))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(2));
    targets = bench_receive
}
criterion_main!(benches);
