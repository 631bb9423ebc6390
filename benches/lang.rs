//! Pipeline language throughput (events/s per core) through the real
//! processing stage (steps + routes):
//! (a) setting two fields, (b) parse_json of a 300-byte object,
//! (c) an nginx combined line through parse_regex + to_int + a route (with
//! a backtracking-prone and a one-pass regex), (d) the same line through the
//! built-in `parse_nginx` and through `parse_nginx` with the combined format
//! written as a custom `log_format` (which must be no slower);
//! (f) log to metrics: a timed nginx line parsed, with and without a
//! counter and a histogram recorded per event;
//! (e) multiline joining (lines/s per core): a MariaDB slow log through the
//! `mariadb_slow` state rules, a Java log through the `java` preset and
//! through a start pattern;
//! (f) the nginx line parsed, then every string of the parsed map redacted
//! through `map_values` with a closure (compare with (d) builtin: the
//! difference is the iteration and the redaction).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shipd::event::{Event, EventBatch, LogRecord, Resource, Value};
use shipd::sources::file::{
    multiline_preset, Aggregator, Boundaries, Message, MultilineConfig, MultilineMode,
};
use std::sync::Arc;
use std::time::Instant;

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

/// `N` events of `line`, each a slice of one buffer as the file source
/// cuts lines out of what it read: the lines lie one after another,
/// wherever earlier allocations (loading the pipeline) left holes.
fn batch(line: &str) -> EventBatch {
    let resource = Arc::new(Resource::default());
    let source: Arc<str> = Arc::from("app");
    let stride = line.len() + 1;
    let mut read = Vec::with_capacity(N * stride);
    for _ in 0..N {
        read.extend_from_slice(line.as_bytes());
        read.push(b'\n');
    }
    let read = Bytes::from(read);
    let mut b = EventBatch::from_source(&source, N);
    for i in 0..N {
        b.push(Event::Log(LogRecord::new(
            Value::Bytes(read.slice(i * stride..i * stride + line.len())),
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
  (.http.status ?? 0) >= 500 => out stream "errors"
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
  (.http.status ?? 0) >= 500 => out stream "errors"
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
    bench(
        c,
        "f_parse_nginx_map_values_redact",
        r#"step s on app {
  .http = parse_nginx!(.message)
  .http = map_values(.http, |v| if is_string(v) { redact(v, [email]) } else { v })
}
route { else => out }"#,
        NGINX_LINE,
    );
    // Log to metrics: the timed line parsed, then a counter by status and
    // method and a latency histogram recorded per event (an existing series,
    // as on a busy server), against the same step without the recording.
    let parse = r#".http = parse_nginx!(.message, "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_time $upstream_response_time")"#;
    bench(
        c,
        "f_log_metrics_parse_only",
        &format!("source requests = log_metrics {{}}\nstep s on app {{\n {parse}\n}}\nroute {{ else => out }}"),
        NGINX_TIMED_LINE,
    );
    bench(
        c,
        "f_log_metrics_count_and_histogram",
        &format!(
            r#"source requests = log_metrics {{}}
step s on app {{
 {parse}
 count(requests, "http_requests_total", {{ status: to_string(.http.status ?? 0), method: to_string(.http.method ?? "none") }})
 observe(requests, "http_request_duration_seconds", to_float(.http.request_time) ?? 0.0, {{ method: to_string(.http.method ?? "none") }})
}}
route {{ else => out }}"#
        ),
        NGINX_TIMED_LINE,
    );
}

const NGINX_TIMED_LINE: &str = r#"192.168.1.20 - - [25/Nov/2026:10:00:00 +0100] "GET /api/items?id=3 HTTP/1.1" 200 157 "-" "Mozilla/5.0 (X11; Linux aarch64)" 0.012 0.010"#;

const NGINX_LINE: &str = r#"192.168.1.20 - - [25/Nov/2026:10:00:00 +0100] "GET /api/items?id=3 HTTP/1.1" 200 157 "-" "Mozilla/5.0 (X11; Linux aarch64)""#;

/// Joins `text`'s lines with `mode`, as the file source does per read.
fn bench_multiline(c: &mut Criterion, name: &str, mode: MultilineMode, text: &str) {
    let lines: Vec<Bytes> = text
        .lines()
        .map(|l| Bytes::copy_from_slice(l.as_bytes()))
        .collect();
    let cfg = MultilineConfig::new(mode);
    let mut group = c.benchmark_group("multiline");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(20);
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut agg = Aggregator::new(cfg.clone());
            let mut out = Vec::with_capacity(lines.len());
            let now = Instant::now();
            let mut offset = 0;
            for line in &lines {
                let end = offset + line.len() as u64 + 1;
                agg.push(
                    Message::plain(line.clone(), offset, end, false),
                    now,
                    &mut out,
                );
                offset = end;
            }
            out.extend(agg.take());
            out
        })
    });
    group.finish();
}

fn multiline(c: &mut Criterion) {
    let slow: String = (0..1_000)
        .map(|i| {
            let time = if i % 3 == 1 {
                String::new()
            } else {
                format!("# Time: 261205  3:{:02}:{:02}\n", 40 + i / 600, (i / 10) % 60)
            };
            format!("{time}# User@Host: shop[shop] @ localhost []\n# Thread_id: {i}  Schema: shop  QC_hit: No\n# Query_time: 2.000436  Lock_time: 0.000102  Rows_sent: 1  Rows_examined: {i}\n# Rows_affected: 0  Bytes_sent: 64\nSET timestamp={};\nSELECT o.id FROM orders o WHERE o.customer_id = {i};\n", 1_796_442_001 + i)
        })
        .collect();
    let preset = |name| multiline_preset(name).expect("a built-in preset");
    bench_multiline(c, "d_mariadb_slow_rules", preset("mariadb_slow"), &slow);
    let java: String = (0..1_000)
        .map(|i| {
            if i % 10 == 0 {
                format!("2026-12-05 03:40:01.123 ERROR [exec-{i}] shop.Api : request failed\njava.lang.IllegalStateException: bad {i}\n\tat shop.Cart.add(Cart.java:{i})\n\tat shop.Api.handle(Api.java:42)\nCaused by: java.io.IOException: reset\n\t... 12 more\n")
            } else {
                format!("2026-12-05 03:40:01.123 INFO  [exec-{i}] shop.Api : request {i} ok\n")
            }
        })
        .collect();
    bench_multiline(c, "d_java_preset", preset("java"), &java);
    let start = regex::bytes::Regex::new(r"^\d{4}-\d{2}-\d{2} ").expect("a valid regex");
    bench_multiline(
        c,
        "d_java_start_pattern",
        MultilineMode::Patterns(Boundaries::start(start)),
        &java,
    );
}

criterion_group!(benches, lang, multiline);
criterion_main!(benches);
