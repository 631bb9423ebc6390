//! What taps cost the processing stage (events/s per core, 10,000 events
//! through three steps and a route): (a) nobody tapping, the normal case,
//! which must cost nothing but one atomic load per point; (b) a reader
//! tapping a component elsewhere; (c) a reader tapping a step here whose
//! queue is full (every event dropped for it, never waited on).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shipd::control::tap::{self, TapRequest};
use shipd::event::{Event, EventBatch, LogRecord, Resource, Value};
use std::sync::Arc;

const N: usize = 10_000;

const PIPELINE: &str = r#"
source app = files { include = ["/nonexistent/*.log"] }
sink out = console {}
step a on app { .env = "prod" }
step b on app { .node = 3 }
step c on app { .zone = "rack-1" }
route { else => out }
"#;

fn batch() -> EventBatch {
    let resource = Arc::new(Resource::default());
    let source: Arc<str> = Arc::from("app");
    let mut b = EventBatch::from_source(&source, N);
    let line =
        r#"10.0.0.1 - - [25/Nov/2026:10:00:00 +0000] "GET /api/x HTTP/1.1" 200 512 "-" "curl/8.0""#;
    for _ in 0..N {
        b.push(Event::Log(LogRecord::new(
            Value::Bytes(Bytes::copy_from_slice(line.as_bytes())),
            Arc::clone(&resource),
        )));
    }
    b
}

fn run(c: &mut Criterion, name: &str) {
    let mut agent = match shipd::lang::load(PIPELINE) {
        Ok(p) => p.agent,
        Err(d) => panic!("{}", shipd::lang::render("bench.ship", PIPELINE, &d)),
    };
    let input = batch();
    let mut group = c.benchmark_group("tap");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);
    group.bench_function(name, |b| {
        b.iter_batched(
            || EventBatch {
                events: input.events.clone(),
                bytes: input.bytes,
                source: Arc::clone(&input.source),
            },
            |batch| agent.processor.process(batch),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn taps(c: &mut Criterion) {
    run(c, "a_nobody_tapping");
    let elsewhere = tap::subscribe(TapRequest {
        components: tap::globs(&["other".into()]).expect("glob"),
        filter: None,
        rate_per_second: 0,
        queue: 1,
    });
    run(c, "b_tapping_another_component");
    drop(elsewhere);
    let _full = tap::subscribe(TapRequest {
        components: tap::globs(&["b".into()]).expect("glob"),
        filter: None,
        rate_per_second: 0,
        queue: 1,
    });
    run(c, "c_tapping_a_step_with_a_full_queue");
}

criterion_group!(benches, taps);
criterion_main!(benches);
