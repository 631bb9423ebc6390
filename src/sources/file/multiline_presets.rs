//! Built-in multiline presets for common stack traces and multi-line log
//! formats: `java`, `python`, `go`, `php` and `mariadb_slow`. Each is an
//! ordinary [`MultilineMode`] (patterns or state rules), documented in
//! docs/pipeline-language.md; this module only names and builds them.

use super::multiline::{Boundaries, MultilineMode};
use super::multiline_rules::{RuleSpec, StateRules};
use regex::bytes::Regex;

/// The names `multiline.preset` accepts.
pub const PRESET_NAMES: [&str; 5] = ["java", "python", "go", "mariadb_slow", "php"];

/// Frame, `... N more`, `Caused by:`, `Suppressed:` and exception lines
/// continue the event.
const JAVA_CONTINUE: &str = r"^(\s+at |\s+\.\.\. \d+ (more|common frames omitted)|Caused by: |\s+Suppressed: |[\w$.]+(Exception|Error|Throwable)(: |$))";

/// `Stack trace:`, `#N` frames, `thrown in`, chained `Next` lines and the
/// blank line PHP writes before `Next` continue the event (also with the
/// CLI's `PHP ` prefix).
const PHP_CONTINUE: &str = r"^(PHP )?(Stack trace:$|#\d+ |\s+\d+\. |\s+thrown in |Next [\w\\]+|$)";

const PY_TRACEBACK: &str = r"^Traceback \(most recent call last\):$";
const PY_CHAIN: &str = r"^(During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)$";

/// Everything a Go panic or fatal error prints: blank lines, the signal
/// line, goroutine headers, function and file lines, `created by`,
/// elided frames, nested panics and `exit status`.
const GO_PANIC_LINE: &str = r"^(\s*$|\[signal |goroutine \d+.*\]:$|\t|created by |[\w./*()\[\]{}%$-]+\(.*\)$|\.\.\.|exit status \d+$|panic: |fatal error: )";

/// Lines that begin something else in a MariaDB slow log: an entry, or the
/// header written when the server (re)opens the log.
const MARIADB_NOT_ENTRY: &str =
    r"^(# Time: |# User@Host: |\S+, Version: .*started with:$|Tcp port: |Time\s+Id\s+Command)";

/// The rules of preset `name`, if there is one.
pub fn preset(name: &str) -> Option<MultilineMode> {
    let mode = match name {
        "java" => MultilineMode::Patterns(Boundaries::continues(compiled(JAVA_CONTINUE))),
        "php" => MultilineMode::Patterns(Boundaries::continues(compiled(PHP_CONTINUE))),
        "python" => states(vec![
            (
                "start_state",
                vec![
                    RuleSpec::pattern(PY_TRACEBACK, "frames"),
                    RuleSpec::pattern(r"^.", "message"),
                ],
            ),
            ("message", vec![RuleSpec::pattern(PY_TRACEBACK, "frames")]),
            (
                "frames",
                vec![
                    RuleSpec::pattern(r"^\s", "frames"),
                    RuleSpec::pattern(r"^[A-Za-z_][\w.]*(: .*)?$", "exception"),
                ],
            ),
            ("exception", vec![RuleSpec::pattern(r"^$", "gap")]),
            ("gap", vec![RuleSpec::pattern(PY_CHAIN, "chained")]),
            (
                "chained",
                vec![
                    RuleSpec::pattern(r"^$", "chained"),
                    RuleSpec::pattern(PY_TRACEBACK, "frames"),
                ],
            ),
        ]),
        "go" => states(vec![
            (
                "start_state",
                vec![RuleSpec::pattern(r"^(panic: |fatal error: )", "panic")],
            ),
            ("panic", vec![RuleSpec::pattern(GO_PANIC_LINE, "panic")]),
        ]),
        "mariadb_slow" => states(vec![
            (
                "start_state",
                vec![
                    RuleSpec::pattern(r"^# Time: ", "time"),
                    RuleSpec::pattern(r"^# User@Host: ", "entry"),
                ],
            ),
            ("time", vec![RuleSpec::pattern(r"^# User@Host: ", "entry")]),
            ("entry", vec![RuleSpec::unless(MARIADB_NOT_ENTRY, "entry")]),
        ]),
        _ => return None,
    };
    Some(mode)
}

/// A preset's pattern: fixed text, proven to compile by the tests.
fn compiled(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("preset pattern {pattern:?}: {e}"))
}

/// A preset's state rules: fixed text, proven to build by the tests.
fn states(states: Vec<(&str, Vec<RuleSpec>)>) -> MultilineMode {
    let named = states.into_iter().map(|(n, r)| (n.to_owned(), r)).collect();
    match StateRules::build(named) {
        Ok(rules) => MultilineMode::States(rules),
        Err(e) => panic!("preset rules: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::multiline::tests::events;
    use super::*;

    fn grouped(name: &str, text: &str) -> Vec<String> {
        events(preset(name).expect("a preset"), text)
    }

    #[test]
    fn every_preset_name_builds() {
        for name in PRESET_NAMES {
            assert!(preset(name).is_some(), "{name}");
        }
        assert!(preset("cobol").is_none());
    }

    #[test]
    fn java_preset_keeps_caused_by_and_elided_frames_in_one_event() {
        let trace = "2026-12-05 03:40:01.123 ERROR [http-nio-8080-exec-3] o.a.c.c.C.[.[.[/].[dispatcherServlet] : Servlet.service() threw exception
org.springframework.dao.DataAccessResourceFailureException: could not open connection
\tat org.springframework.orm.jpa.vendor.HibernateJpaDialect.convertHibernateAccessException(HibernateJpaDialect.java:277)
\tat shop.OrderService.place(OrderService.java:88)
Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30000ms.
\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)
\t... 12 more
\tSuppressed: java.lang.IllegalStateException: pool closing
\t\tat com.zaxxer.hikari.pool.HikariPool.shutdown(HikariPool.java:420)
\t\t... 3 common frames omitted";
        let text = format!(
            "2026-12-05 03:40:00.001 INFO  [main] shop.Application : Started in 4.2 s\n{trace}\n2026-12-05 03:40:02.000 INFO  [main] shop.Health : ok\n"
        );
        assert_eq!(
            grouped("java", &text),
            [
                "2026-12-05 03:40:00.001 INFO  [main] shop.Application : Started in 4.2 s",
                trace,
                "2026-12-05 03:40:02.000 INFO  [main] shop.Health : ok",
            ]
        );
    }

    #[test]
    fn python_preset_joins_a_chained_traceback_to_its_log_message() {
        let trace = "ERROR:app.worker:job 42 failed
Traceback (most recent call last):
  File \"/srv/app/worker.py\", line 31, in run
    payload = json.loads(body)
              ^^^^^^^^^^^^^^^^
  File \"/usr/lib/python3.11/json/__init__.py\", line 346, in loads
    return _default_decoder.decode(s)
json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"/srv/app/worker.py\", line 35, in run
    raise JobError(job_id) from None
app.errors.JobError: 42";
        let text = format!("INFO:app.worker:job 41 done\n{trace}\nINFO:app.worker:job 43 done\n");
        assert_eq!(
            grouped("python", &text),
            [
                "INFO:app.worker:job 41 done",
                trace,
                "INFO:app.worker:job 43 done"
            ]
        );
    }

    #[test]
    fn go_preset_takes_a_panic_with_all_its_goroutines() {
        let panic = "panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x6b2f4e]

goroutine 42 [running]:
main.(*Store).Get(0x0, {0xc0001a2000, 0x5})
\t/src/kv/store.go:57 +0x2e
net/http.HandlerFunc.ServeHTTP(0xc000118000?, {0x7d1e48?, 0xc0001c0000?}, 0x0?)
\t/usr/local/go/src/net/http/server.go:2220 +0x29
created by net/http.(*Server).Serve in goroutine 1
\t/usr/local/go/src/net/http/server.go:3285 +0x4b4

goroutine 1 [IO wait]:
internal/poll.runtime_pollWait(0x7f2a3c4e0e28, 0x72)
\t/usr/local/go/src/runtime/netpoll.go:351 +0x85
...additional frames elided...
exit status 2";
        let text = format!(
            "2026/12/05 03:40:01 listening on :8080\n{panic}\n2026/12/05 03:40:03 starting kv v1.4.2\n"
        );
        assert_eq!(
            grouped("go", &text),
            [
                "2026/12/05 03:40:01 listening on :8080",
                panic,
                "2026/12/05 03:40:03 starting kv v1.4.2"
            ]
        );
    }

    #[test]
    fn php_preset_joins_a_fatal_error_and_its_stack_trace() {
        let fatal = "[05-Dec-2026 03:40:01 UTC] PHP Fatal error:  Uncaught PDOException: SQLSTATE[HY000] [2002] Connection refused in /var/www/shop/src/Db.php:14
Stack trace:
#0 /var/www/shop/src/Db.php(14): PDO->__construct('mysql:host=db;d...', 'shop', Object(SensitiveParameterValue))
#1 /var/www/shop/public/index.php(9): Shop\\Db::connect()
#2 {main}

Next RuntimeException: database unavailable in /var/www/shop/src/Db.php:16
Stack trace:
#0 {main}
  thrown in /var/www/shop/src/Db.php on line 16";
        let text = format!(
            "[05-Dec-2026 03:40:00 UTC] PHP Warning:  Undefined variable $cart in /var/www/shop/public/cart.php on line 3\n{fatal}\n"
        );
        assert_eq!(
            grouped("php", &text),
            [
                "[05-Dec-2026 03:40:00 UTC] PHP Warning:  Undefined variable $cart in /var/www/shop/public/cart.php on line 3",
                fatal,
            ]
        );
    }

    const SLOW_HEADER: &str =
        "/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-0+deb12u1-log (Debian 12). started with:
Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock
Time\t\t    Id Command\tArgument";

    /// Two entries in the same second: MariaDB writes `# Time:` once.
    pub(crate) const SLOW_ENTRIES: [&str; 3] = [
        "# Time: 261205  3:40:01
# User@Host: shop[shop] @ localhost []
# Thread_id: 35  Schema: shop  QC_hit: No
# Query_time: 2.000436  Lock_time: 0.000102  Rows_sent: 1  Rows_examined: 0
# Rows_affected: 0  Bytes_sent: 64
SET timestamp=1796442001;
SELECT SLEEP(2);",
        "# User@Host: shop[shop] @ localhost []
# Thread_id: 36  Schema: shop  QC_hit: No
# Query_time: 1.503118  Lock_time: 0.000051  Rows_sent: 12  Rows_examined: 120345
# Rows_affected: 0  Bytes_sent: 1830
# Tmp_tables: 1  Tmp_disk_tables: 0  Tmp_table_sizes: 253952
SET timestamp=1796442001;
SELECT c.id, c.email
  FROM customers c
 WHERE c.created > NOW() - INTERVAL 1 DAY;",
        "# Time: 261205  3:40:07
# User@Host: report[report] @ 10.0.0.7 [10.0.0.7]
# Thread_id: 41  Schema: shop  QC_hit: No
# Query_time: 6.010002  Lock_time: 0.000090  Rows_sent: 0  Rows_examined: 4000000
# Rows_affected: 4000000  Bytes_sent: 52
use shop;
SET timestamp=1796442007;
UPDATE orders SET archived = 1 WHERE placed < '2025-01-01';",
    ];

    #[test]
    fn mariadb_slow_preset_starts_entries_at_time_or_at_user_host_without_one() {
        let text = format!("{SLOW_HEADER}\n{}\n", SLOW_ENTRIES.join("\n"));
        let mut expected: Vec<&str> = SLOW_HEADER.lines().collect();
        expected.extend(SLOW_ENTRIES);
        assert_eq!(grouped("mariadb_slow", &text), expected);
    }

    #[test]
    fn mariadb_slow_preset_without_any_time_line_splits_at_user_host() {
        let entries: Vec<&str> = SLOW_ENTRIES
            .iter()
            .map(|e| {
                e.strip_prefix("# Time: ")
                    .map_or(*e, |rest| &rest[rest.find('\n').unwrap_or(0) + 1..])
            })
            .collect();
        assert!(entries.iter().all(|e| e.starts_with("# User@Host:")));
        let text = format!("{}\n", entries.join("\n"));
        assert_eq!(grouped("mariadb_slow", &text), entries);
    }
}
