//! Pipeline language throughput (events/s per core) through the real
//! processing stage (steps + routes):
//! (a) setting two fields, (b) parse_json of a 300-byte object,
//! (c) an nginx combined line through parse_regex + to_int + a route (with
//! a backtracking-prone and a one-pass regex), (d) the same line through the
//! built-in `parse_nginx` and through `parse_nginx` with the combined format
//! written as a custom `log_format` (which must be no slower).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shipd::event::{Event, EventBatch, LogRecord, Resource, Value};
use std::sync::Arc;

/// Events per batch: about what one read of the file source (256 KiB) makes
/// of 300-byte lines, so the heap churns as it does in shipd.
const N: usize = 1_000;

fn pipeline(steps: &str) -> shipd::config::AgentConfig {
    let src = format!(
        "source app = files {{ include = [\"/nonexistent/*.log\"] }}\nsink out = console {{}}\n{steps}\n"
    );
    match shipd::lang::load(&src) {
        Ok(p) => p.agent,
        Err(d) => panic!("{}", shipd::lang::render("bench.ship", &src, &d)),
    }
}

fn batch(line: &str) -> EventBatch {
    let resource = Arc::new(Resource::default());
    let source: Arc<str> = Arc::from("app");
    let mut b = EventBatch::from_source(&source, N);
    for _ in 0..N {
        b.push(Event::Log(LogRecord::new(
            Value::Bytes(Bytes::copy_from_slice(line.as_bytes())),
            Arc::clone(&resource),
        )));
    }
    b
}

fn bench(c: &mut Criterion, name: &str, steps: &str, line: &str) {
    let mut agent = pipeline(steps);
    let input = batch(line);
    let mut group = c.benchmark_group("lang");
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

fn lang(c: &mut Criterion) {
    // The heap as shipd keeps it.
    shipd::memory::keep_freed_heap();
    bench(
        c,
        "a_set_two_fields",
        "step s on app { .env = \"prod\"\n .node = 3 }\nroute { else => out }",
        "hello world",
    );
    let json = r#"{"level":"info","ts":"2026-11-25T10:00:00Z","msg":"request served","method":"GET","path":"/api/v1/items/42","status":200,"duration_ms":12.5,"user":"alice","req_id":"7f1c2a9e-3b4d-4e5f-8a6b-0c1d2e3f4a5b","tags":["web","edge"],"bytes":5123}"#;
    bench(
        c,
        "b_parse_json_300b",
        "step s on app { .fields = parse_json!(.message) }\nroute { else => out }",
        json,
    );
    bench(
        c,
        "c_nginx_regex_to_int_route",
        r#"step s on app {
  .http = parse_regex!(.message, /^(?<client>\S+) \S+ \S+ \[[^\]]+\] "(?<method>\S+) (?<path>\S+)[^"]*" (?<status>\d{3}) (?<bytes>\d+)/)
  .http.status = to_int!(.http.status)
}
route {
  .http.status >= 500 => out stream "errors"
  else => out stream "access"
}"#,
        NGINX_LINE,
    );
    // The same fields with a regex where every byte has one reading (the
    // path stops at a space or quote): the regex engine can then use its
    // one-pass matcher for the captures.
    bench(
        c,
        "c_nginx_onepass_regex_to_int_route",
        r#"step s on app {
  .http = parse_regex!(.message, /^(?<client>\S+) \S+ \S+ \[[^\]]+\] "(?<method>\S+) (?<path>[^ "]+)(?: [^"]*)?" (?<status>\d{3}) (?<bytes>\d+)/)
  .http.status = to_int!(.http.status)
}
route {
  .http.status >= 500 => out stream "errors"
  else => out stream "access"
}"#,
        NGINX_LINE,
    );
    bench(
        c,
        "d_parse_nginx_builtin_combined",
        "step s on app { .http = parse_nginx!(.message) }\nroute { else => out }",
        NGINX_LINE,
    );
    bench(
        c,
        "d_parse_nginx_custom_log_format",
        r#"step s on app { .http = parse_nginx!(.message, "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"") }
route { else => out }"#,
        NGINX_LINE,
    );
    // A custom format with the timings operators append.
    bench(
        c,
        "d_parse_nginx_custom_with_timings",
        r#"step s on app { .http = parse_nginx!(.message, "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_time $upstream_response_time") }
route { else => out }"#,
        NGINX_TIMED_LINE,
    );
}

const NGINX_TIMED_LINE: &str = r#"192.168.1.20 - - [25/Nov/2026:10:00:00 +0100] "GET /api/items?id=3 HTTP/1.1" 200 157 "-" "Mozilla/5.0 (X11; Linux aarch64)" 0.012 0.010"#;

const NGINX_LINE: &str = r#"192.168.1.20 - - [25/Nov/2026:10:00:00 +0100] "GET /api/items?id=3 HTTP/1.1" 200 157 "-" "Mozilla/5.0 (X11; Linux aarch64)""#;

criterion_group!(benches, lang);
criterion_main!(benches);
