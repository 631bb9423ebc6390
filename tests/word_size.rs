//! What must hold on the Pis' 32-bit CPUs as on 64-bit ones (this file also
//! runs under qemu-arm for armv7, see cross-test.sh): file offsets past
//! 4 GiB, timestamps past 2038, counters past `u32::MAX`, sizes that do not
//! depend on the word size where the wire or the disk sees them.

mod common;

use common::*;
use prost::Message;
use std::io::Write;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// 2040-01-01T00:00:00Z in ns since the epoch: past i32 seconds (2038).
const Y2040_NS: i64 = 2_208_988_800_000_000_000;

#[test]
fn a_file_grown_past_4_gib_is_read_checkpointed_and_resumed_at_its_real_offset() {
    let rt = runtime();
    let receiver = http_receiver(&rt, always_accept());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap();
    let path = input.join("big.log");
    // A sparse 5 GiB file: no disk used, every offset past u32::MAX.
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(5 << 30).unwrap();
    drop(file);

    let glob = input.join("*.log").display().to_string();
    let start = || {
        let mut env = ship_env(&receiver, "http", &glob, &dir.path().join("data"));
        env.push(("SHIPD_READ_FROM", "end".to_owned()));
        env.push(("SHIPD_CHECKPOINT_INTERVAL", "1s".to_owned()));
        let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
        assert!(
            shipd.wait_log("file source started", WAIT),
            "shipd did not start:\n{}",
            shipd.log()
        );
        shipd
    };

    let shipd = start();
    // Give the source time to find the file and settle at its end.
    std::thread::sleep(Duration::from_secs(2));
    let first = nginx_lines("past4g-a", 50);
    append(&path, &first);
    assert_eq!(
        receiver.wait_for(first.len(), WAIT),
        first.len(),
        "{}",
        shipd.log()
    );
    // Delivered positions reach the checkpoint before the stop.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(shipd.terminate(), Some(0));

    let second = nginx_lines("past4g-b", 50);
    append(&path, &second);
    let shipd = start();
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    receiver.wait_for(all.len(), WAIT);
    std::thread::sleep(Duration::from_millis(700));
    let t = tally(&receiver.bodies(), &all);
    assert!(
        t.missing == 0 && t.duplicates == 0 && t.unexpected == 0,
        "{} written, {} received: {} missing, {} duplicates, {} unexpected\n{}",
        all.len(),
        receiver.count(),
        t.missing,
        t.duplicates,
        t.unexpected,
        shipd.log()
    );
    assert!(
        std::fs::metadata(&path).unwrap().len() > u64::from(u32::MAX),
        "the test's file really is past 4 GiB"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

fn append(path: &std::path::Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let mut text = lines.join("\n");
    text.push('\n');
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn timestamps_past_2038_parse_format_and_reach_the_wire_whole() {
    let src = r#"
source app = files { include = ["/nonexistent/*.log"] }
step stamp on app {
  .timestamp = parse_timestamp!(.message)
  .ns = to_int!(.timestamp)
  .text = to_string(.timestamp)
}
sink out = console {}
route { else => out }
test "2040 is past 2038" {
  input app { message = "2040-01-01T00:00:00Z" }
  expect { .ns == 2208988800000000000, .text == "2040-01-01T00:00:00.000000000Z" }
}
"#;
    let no_env = shipd::lang::Environment::empty();
    let reports = shipd::lang::testing::run_source(src, &no_env).expect("the pipeline loads");
    assert_eq!(reports.len(), 1);
    assert!(reports[0].passed(), "{:?}", reports[0].failures);

    // The OTLP writer keeps all 64 bits of the time.
    let resource = std::sync::Arc::new(shipd::event::Resource::default());
    let mut record = shipd::event::LogRecord::new(shipd::event::Value::from("late"), resource);
    record.time_unix_nano = Y2040_NS as u64;
    let mut wire = Vec::new();
    shipd::sinks::otlp_wire::write_logs_request(&[shipd::event::Event::Log(record)], &mut wire);
    let decoded =
        opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(
            &wire[..],
        )
        .unwrap();
    let got = &decoded.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(got.time_unix_nano, Y2040_NS as u64);
}

#[test]
fn counters_do_not_wrap_at_32_bits() {
    let c = shipd::telemetry::counter("shipd_word_size_test_total", &[("component", "t")]);
    c.add(u64::from(u32::MAX));
    c.add(u64::from(u32::MAX));
    c.inc();
    let value = shipd::telemetry::snapshot()
        .into_iter()
        .find(|(name, _, _)| *name == "shipd_word_size_test_total")
        .map(|(_, _, v)| v);
    assert_eq!(value, Some(2 * u64::from(u32::MAX) + 1));
}
