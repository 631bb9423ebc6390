//! Multiline rules in the real `shipd` binary: a MariaDB slow log (entries
//! that begin at `# Time:` or, when none precedes them, at `# User@Host:`)
//! yields the same events whether it is read as a backlog or tailed live
//! as MariaDB writes it, line by line with pauses.

mod common;

use common::{always_accept, http_receiver, runtime, Receiver, Shipd};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

const HEADER: [&str; 3] = [
    "/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-0+deb12u1-log (Debian 12). started with:",
    "Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock",
    "Time\t\t    Id Command\tArgument",
];

/// `n` slow-log entries; MariaDB writes `# Time:` only when the second
/// changed since the previous entry, so every third entry has none.
fn slow_entries(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let time = if i % 3 == 1 {
                String::new()
            } else {
                format!("# Time: 261205  3:{:02}:{:02}\n", 40 + i / 60, i % 60)
            };
            let query = if i % 2 == 0 {
                format!("SELECT SLEEP({});", 1 + i % 3)
            } else {
                format!("SELECT o.id, o.total\n  FROM orders o\n WHERE o.customer_id = {i}\n ORDER BY o.placed DESC;")
            };
            format!(
                "{time}# User@Host: shop[shop] @ localhost []\n# Thread_id: {}  Schema: shop  QC_hit: No\n# Query_time: 2.{i:06}  Lock_time: 0.000102  Rows_sent: 1  Rows_examined: {}\n# Rows_affected: 0  Bytes_sent: 64\nSET timestamp={};\n{query}",
                30 + i,
                i * 1000,
                1_796_442_001 + i
            )
        })
        .collect()
}

/// A pipeline tailing `log` from its beginning with the `mariadb_slow`
/// preset, shipping to `receiver`.
fn pipeline(dir: &Path, log: &Path, receiver: &Receiver) -> PathBuf {
    let path = dir.join("pipeline.ship");
    std::fs::write(
        &path,
        format!(
            r#"settings {{ data_dir = "{data}" }}
source slow = files {{
  include = ["{log}"], read_from = "beginning", poll_interval = 50ms,
  multiline.preset = "mariadb_slow", multiline.timeout = 3s
}}
sink o2 = openobserve {{
  url = "{url}", org = "pis", user = "root@example.com", password = "pw",
  batch.timeout = 100ms, retry_max = 500ms
}}
route {{
  else => o2
}}
"#,
            data = dir.join("data").display(),
            log = log.display(),
            url = receiver.url(),
        ),
    )
    .unwrap();
    path
}

fn start(config: &Path, dir: &Path) -> Shipd {
    let shipd = Shipd::start_with_args(
        &["--config", config.to_str().unwrap()],
        &[],
        &dir.join("shipd.log"),
    );
    assert!(
        shipd.wait_log("tailing file", WAIT),
        "shipd did not start tailing:\n{}",
        shipd.log()
    );
    shipd
}

/// Waits for `n` events, then a little longer to see any extra one.
fn delivered(receiver: &Receiver, n: usize) -> Vec<String> {
    receiver.wait_for(n, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    receiver.bodies()
}

#[test]
fn mariadb_slow_log_yields_the_same_events_as_a_backlog_and_tailed_live() {
    let rt = runtime();
    let entries = slow_entries(12);
    let mut expected: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    expected.extend(entries.iter().cloned());
    let text: String = expected.iter().map(|e| format!("{e}\n")).collect();

    // The whole log already written when shipd starts.
    let backlog_dir = tempfile::tempdir().unwrap();
    let backlog_receiver = http_receiver(&rt, always_accept());
    let backlog_log = backlog_dir.path().join("mariadb-slow.log");
    std::fs::write(&backlog_log, &text).unwrap();
    let backlog = start(
        &pipeline(backlog_dir.path(), &backlog_log, &backlog_receiver),
        backlog_dir.path(),
    );

    // The same log written line by line while shipd tails it; each line is
    // read on its own, so every entry is split across reads.
    let live_dir = tempfile::tempdir().unwrap();
    let live_receiver = http_receiver(&rt, always_accept());
    let live_log = live_dir.path().join("mariadb-slow.log");
    std::fs::write(&live_log, b"").unwrap();
    let live = start(
        &pipeline(live_dir.path(), &live_log, &live_receiver),
        live_dir.path(),
    );
    let mut writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&live_log)
        .unwrap();
    for (i, line) in text.lines().enumerate() {
        writer.write_all(format!("{line}\n").as_bytes()).unwrap();
        writer.flush().unwrap();
        // Longer pauses now and then, as between queries; all shorter than
        // the multiline timeout, which only ends the last entry.
        let pause = if i % 9 == 8 { 300 } else { 60 };
        std::thread::sleep(Duration::from_millis(pause));
    }

    let from_backlog = delivered(&backlog_receiver, expected.len());
    let from_live = delivered(&live_receiver, expected.len());
    assert_eq!(
        from_backlog,
        expected,
        "backlog: one event per entry, header lines alone\nlog:\n{}",
        backlog.log()
    );
    assert_eq!(
        from_live,
        from_backlog,
        "tailed live: the same events\nlog:\n{}",
        live.log()
    );
    assert_eq!(backlog.terminate(), Some(0));
    assert_eq!(live.terminate(), Some(0));
}
