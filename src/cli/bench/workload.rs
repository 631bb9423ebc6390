//! Workload generators for the bench: deterministic, realistic nginx
//! "combined" access-log lines (about 100–250 bytes, average ≈ 160), JSON
//! application log lines, journald export entries, and latency probe lines.
//! Pure: they fill buffers, the caller writes them.

use super::receiver::PROBE_MARKER;

/// An endless, seeded generator of nginx combined-format lines.
pub struct NginxLines {
    state: u64,
    /// Seconds since 2025-03-01 00:00:00 UTC.
    clock: u64,
}
const IPS: u64 = 240;
const METHODS: &[&str] = &[
    "GET", "GET", "GET", "GET", "GET", "GET", "POST", "POST", "PUT", "HEAD",
];
const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/api/v1/items",
    "/api/v1/items/",
    "/api/v1/orders/",
    "/api/v1/users/",
    "/static/js/app.8f3c2a.js",
    "/static/css/main.41d9.css",
    "/images/products/",
    "/healthz",
    "/metrics",
    "/login",
    "/search?q=",
    "/cart",
    "/checkout",
];
const STATUSES: &[u16] = &[
    200, 200, 200, 200, 200, 200, 200, 200, 304, 304, 301, 404, 404, 401, 500, 502,
];
const REFERERS: &[&str] = &[
    "-",
    "-",
    "https://shop.example.com/",
    "https://shop.example.com/catalog",
    "https://www.google.com/",
    "https://shop.example.com/cart",
];
const AGENTS: &[&str] = &[
    "curl/8.5.0",
    "kube-probe/1.29",
    "Prometheus/2.51.0",
    "Go-http-client/1.1",
    "python-requests/2.31.0",
    "Mozilla/5.0 (X11; Linux aarch64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.3 Safari/605.1.15",
];
const MONTHS: &[&str] = &[
    "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl NginxLines {
    pub fn new(seed: u64) -> Self {
        NginxLines {
            state: seed,
            clock: 0,
        }
    }

    /// splitmix64.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Appends one line (without its newline) to `out`.
    pub fn next_line(&mut self, out: &mut String) {
        use std::fmt::Write;
        // About 20 requests a second.
        if self.below(20) == 0 {
            self.clock += 1;
        }
        let ip = self.below(IPS);
        let (day, secs) = (self.clock / 86_400, self.clock % 86_400);
        let (month, mday) = (MONTHS[(day / 30) as usize % MONTHS.len()], day % 30 + 1);
        let method = self.pick(METHODS);
        let path = self.pick(PATHS);
        let status = self.pick(STATUSES);
        let size = if status == 304 {
            0
        } else {
            200 + self.below(48_000)
        };
        let referer = self.pick(REFERERS);
        let agent = self.pick(AGENTS);
        let _ = write!(
            out,
            "10.{}.{}.{} - - [{:02}/{}/2025:{:02}:{:02}:{:02} +0000] \"{} {}",
            ip / 64,
            (ip * 7) % 256,
            ip % 250 + 2,
            mday,
            month,
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            method,
            path,
        );
        if path.ends_with('/') && path.len() > 1 {
            let _ = write!(out, "{}", self.below(100_000));
        } else if path.ends_with('=') {
            let _ = write!(out, "pi+{}", self.below(1000));
        }
        let _ = write!(out, " HTTP/1.1\" {status} {size} \"{referer}\" \"{agent}\"");
    }
}

/// Appends one JSON application log line (without newline) to `out`, for
/// service number `service`; `probe_ns`, when set, embeds a latency probe.
pub fn json_app_line(
    gen: &mut NginxLines,
    service: usize,
    probe_ns: Option<u64>,
    out: &mut String,
) {
    use std::fmt::Write;
    const LEVELS: &[&str] = &["info", "info", "info", "info", "debug", "warn", "error"];
    const MESSAGES: &[&str] = &[
        "request handled",
        "cache miss, loading from database",
        "user session refreshed",
        "payment provider answered slowly",
        "job finished",
        "retrying upstream call",
    ];
    let level = gen.pick(LEVELS);
    let msg = gen.pick(MESSAGES);
    let _ = write!(
        out,
        r#"{{"level":"{level}","service":"svc-{service:04}","msg":"{msg}","request_id":"{:016x}","duration_ms":{}"#,
        gen.next_u64(),
        gen.below(2000)
    );
    if let Some(t) = probe_ns {
        let _ = write!(out, r#","probe":"{PROBE_MARKER}{t}""#);
    }
    out.push('}');
}

/// A latency probe line written at `t_ns` (ns since the epoch).
pub fn probe_line(t_ns: u64, seq: u64) -> String {
    format!("{PROBE_MARKER}{t_ns} seq={seq}\n")
}

const UNITS: [&str; 5] = [
    "nginx.service",
    "ssh.service",
    "k3s.service",
    "cron.service",
    "systemd-networkd.service",
];

/// `n` journald entries in the export format (as `systemd-journal-remote`
/// reads them), shaped like a Pi's system journal: mostly one-line messages
/// of five units, every 50th a two-line stack trace. Returns the stream and
/// the bytes of all `MESSAGE` fields.
pub fn journal_export(n: usize, base_us: u64) -> (Vec<u8>, u64) {
    let mut out = Vec::with_capacity(n * 600);
    let mut message_bytes = 0;
    let mut gen = NginxLines::new(0x10a7);
    let mut line = String::new();
    for i in 0..n {
        let unit = UNITS[i % UNITS.len()];
        let realtime = (base_us + i as u64 * 10).to_string();
        let monotonic = (5_000_000 + i as u64 * 10).to_string();
        let pid = (400 + i % 50).to_string();
        let priority = (3 + i % 4).to_string();
        line.clear();
        if i % 50 == 0 {
            line.push_str(&format!(
                "request {i} failed:\n  at handler (app.js:{})",
                i % 300
            ));
        } else {
            gen.next_line(&mut line);
        }
        message_bytes += line.len() as u64;
        let name = unit.trim_end_matches(".service");
        crate::sources::journald::export::write_entry(
            &mut out,
            &[
                ("__REALTIME_TIMESTAMP", realtime.as_bytes()),
                ("__MONOTONIC_TIMESTAMP", monotonic.as_bytes()),
                ("_BOOT_ID", b"5f1b2c3d4e5f60718293a4b5c6d7e8f9"),
                ("PRIORITY", priority.as_bytes()),
                ("SYSLOG_FACILITY", b"3"),
                ("SYSLOG_IDENTIFIER", name.as_bytes()),
                ("_PID", pid.as_bytes()),
                ("_UID", b"33"),
                ("_GID", b"33"),
                ("_COMM", name.as_bytes()),
                ("_TRANSPORT", b"stdout"),
                ("_SYSTEMD_UNIT", unit.as_bytes()),
                ("_HOSTNAME", b"pi-node-03"),
                ("MESSAGE", line.as_bytes()),
            ],
        );
    }
    (out, message_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_realistic() {
        let (mut a, mut b) = (NginxLines::new(7), NginxLines::new(7));
        let (mut la, mut lb) = (String::new(), String::new());
        for _ in 0..1000 {
            a.next_line(&mut la);
            la.push('\n');
            b.next_line(&mut lb);
            lb.push('\n');
        }
        assert_eq!(la, lb);
        let avg = la.len() / 1000;
        assert!((100..=250).contains(&avg), "average line {avg} bytes");
        let mut json = String::new();
        json_app_line(&mut a, 3, Some(42), &mut json);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["service"], "svc-0003");
        assert_eq!(v["probe"], format!("{PROBE_MARKER}42"));
    }

    #[test]
    fn journal_export_has_one_message_per_entry() {
        let (stream, bytes) = journal_export(100, 1_764_000_000_000_000);
        let mut parser = crate::sources::journald::export::ExportParser::new(1 << 20);
        parser.push(&stream);
        let mut n = 0;
        while let Ok(Some(_)) = parser.next_entry() {
            n += 1;
        }
        assert_eq!(n, 100);
        assert!(bytes > 100 * 50);
    }
}
