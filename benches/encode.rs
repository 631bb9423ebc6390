//! OTLP encoding and body compression of 100,000 nginx access-log records,
//! the CPU work the OpenObserve HTTP sink does per record (`encode_logs`,
//! then `HttpTransport::prepare` = `encode_to_vec` + `Compression::compress`).
//!
//! The records are cut into requests exactly as the sink cuts them, by
//! `StreamBatcher` with the default `BatchLimits` (≤ 5000 events, ≤ 1 MiB
//! estimated), so buffer sizes and compression windows are the real ones.
//!
//! Run with `cargo bench --bench encode`.

mod common;

use bytes::Bytes;
use common::NginxLines;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use prost::Message;
use shipd::event::{Event, LogRecord, Position, Resource, Value};
use shipd::sinks::batcher::{BatchLimits, StreamBatcher};
use shipd::sinks::compression::Compression;
use shipd::sinks::otlp_encode::encode_logs;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const RECORDS: usize = 100_000;

/// 100,000 records as the file source produces them: bodies are slices of
/// one shared buffer, one shared resource, a position on every record.
fn records() -> (Vec<Event>, usize) {
    let mut gen = NginxLines::new(0x5eed);
    let mut text = String::with_capacity(RECORDS * 200);
    let mut spans = Vec::with_capacity(RECORDS);
    for _ in 0..RECORDS {
        let start = text.len();
        gen.next_line(&mut text);
        spans.push(start..text.len());
        text.push('\n');
    }
    let raw_bytes = text.len();
    let text = Bytes::from(text);
    let resource = Arc::new(Resource {
        attributes: vec![
            ("host.name".into(), Value::from("pi-node-03")),
            ("service.name".into(), Value::from("files")),
            ("shipd.source".into(), Value::from("files")),
            (
                "log.file.path".into(),
                Value::from("/var/log/nginx/access.log"),
            ),
        ],
    });
    let origin = xxhash_rust::xxh3::xxh3_64(b"files|2049:1311");
    let events = spans
        .into_iter()
        .map(|span| {
            let offset = span.start as u64;
            let mut record = LogRecord::new(Value::Bytes(text.slice(span)), Arc::clone(&resource));
            record.position = Some(Position { origin, offset });
            Event::Log(record)
        })
        .collect();
    (events, raw_bytes)
}

/// The records cut into requests by the sink's own batcher.
fn batches() -> (Vec<Vec<Event>>, usize) {
    let (events, raw_bytes) = records();
    let mut batcher = StreamBatcher::new(BatchLimits::default());
    let stream: Arc<str> = Arc::from("default");
    let mut out = Vec::new();
    batcher.push(&stream, events, &mut out);
    batcher.drain(&mut out);
    (out.into_iter().map(|b| b.events).collect(), raw_bytes)
}

/// Encodes every batch, compresses it with `compression` (if any) and
/// returns the total body size.
fn encode_all(batches: &[Vec<Event>], compression: Option<Compression>) -> usize {
    let mut total = 0;
    for batch in batches {
        let raw = encode_logs(batch).encode_to_vec();
        total += match compression {
            Some(c) => c.compress(&raw).expect("compression into memory").len(),
            None => raw.len(),
        };
    }
    total
}

fn bench_encode(c: &mut Criterion) {
    let (batches, raw_bytes) = batches();
    let mb = |n: usize| n as f64 / 1e6;
    let protobuf = encode_all(&batches, None);
    let gzip = encode_all(&batches, Some(Compression::Gzip));
    let zstd = encode_all(&batches, Some(Compression::Zstd));
    eprintln!(
        "encode: {RECORDS} records in {} requests; raw log {:.2} MB (avg line {:.0} B), OTLP protobuf {:.2} MB \
         ({:.2}x raw), gzip {:.2} MB (protobuf/gzip {:.2}x, raw/gzip {:.2}x), zstd {:.2} MB (protobuf/zstd {:.2}x, \
         raw/zstd {:.2}x); zstd body = {:.0}% of gzip body",
        batches.len(),
        mb(raw_bytes),
        (raw_bytes - RECORDS) as f64 / RECORDS as f64,
        mb(protobuf),
        protobuf as f64 / raw_bytes as f64,
        mb(gzip),
        protobuf as f64 / gzip as f64,
        raw_bytes as f64 / gzip as f64,
        mb(zstd),
        protobuf as f64 / zstd as f64,
        raw_bytes as f64 / zstd as f64,
        100.0 * zstd as f64 / gzip as f64,
    );

    let mut group = c.benchmark_group("otlp_100k_records");
    group
        .throughput(Throughput::Elements(RECORDS as u64))
        .sampling_mode(SamplingMode::Flat);
    // Building the OTLP structs alone, to split (a) into its two halves.
    group.bench_function("encode_logs_only", |b| {
        b.iter(|| {
            for batch in &batches {
                black_box(encode_logs(black_box(batch)));
            }
        })
    });
    group.bench_function("encode", |b| {
        b.iter(|| encode_all(black_box(&batches), None))
    });
    group.bench_function("encode_gzip", |b| {
        b.iter(|| encode_all(black_box(&batches), Some(Compression::Gzip)))
    });
    group.bench_function("encode_zstd", |b| {
        b.iter(|| encode_all(black_box(&batches), Some(Compression::Zstd)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench_encode
}
criterion_main!(benches);
