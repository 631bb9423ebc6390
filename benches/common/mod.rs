//! Shared by the benches: deterministic, realistic nginx "combined" access
//! log lines (about 100–250 bytes each, average ≈ 160).

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
