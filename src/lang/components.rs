//! Component blocks: the option schema of every source and sink kind (and of
//! `settings`), evaluation of option values when the pipeline loads, and the
//! mapping onto the typed configuration the agent runs. Every duration, size
//! and count option carries its valid range ([`super::option_range`]). Option
//! values are never echoed in diagnostics, since they may hold secrets, except
//! a number refused for its range.

use super::ast::{Component, Expr, ExprKind, Lit, Opt};
use super::compile::{Compiler, Scope};
use super::diagnostics::{suggest, Diagnostic, Span};
use super::eval::Ctx;
use super::option_range::{days, env_origin, hours, mins, ms, origin_note, secs, OptRange};
use super::option_range::{GIB, KIB, MIB};
use crate::event::{Event, LogRecord, Resource, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The type an option accepts.
#[derive(Debug, Clone, Copy)]
pub enum OptTy {
    Str,
    Strings,
    Int,
    Bool,
    Duration,
    Size,
    Regex,
    Choice(&'static [&'static str]),
    Map,
}

impl OptTy {
    fn describe(self) -> String {
        match self {
            OptTy::Str => "a string".into(),
            OptTy::Strings => "a list of strings".into(),
            OptTy::Int => "an integer".into(),
            OptTy::Bool => "true or false".into(),
            OptTy::Duration => "a duration like 15s".into(),
            OptTy::Size => "a size like 1MiB".into(),
            OptTy::Regex => "a regex literal like /^\\S/".into(),
            OptTy::Choice(c) => format!("one of {}", c.join(", ")),
            OptTy::Map => "a map".into(),
        }
    }
}

/// One option of a component kind.
#[derive(Debug)]
pub struct OptSpec {
    pub name: &'static str,
    pub ty: OptTy,
    pub required: bool,
    pub doc: &'static str,
    /// The values accepted: every duration, size and count option has one
    /// (a test holds this), checked when the pipeline loads.
    pub range: Option<OptRange>,
}

impl OptSpec {
    /// This option, accepting only values within `range`.
    const fn within(self, range: OptRange) -> OptSpec {
        OptSpec {
            range: Some(range),
            ..self
        }
    }
}

const fn o(name: &'static str, ty: OptTy, doc: &'static str) -> OptSpec {
    OptSpec {
        name,
        ty,
        required: false,
        doc,
        range: None,
    }
}

const fn r(name: &'static str, ty: OptTy, doc: &'static str) -> OptSpec {
    OptSpec {
        name,
        ty,
        required: true,
        doc,
        range: None,
    }
}

/// Whether a kind is a source or a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Sink,
    Settings,
}

/// A component kind and its options.
#[derive(Debug)]
pub struct KindSpec {
    pub name: &'static str,
    pub role: Role,
    pub options: &'static [OptSpec],
    pub doc: &'static str,
}

pub static KINDS: &[KindSpec] = &[
    KindSpec {
        name: "files",
        role: Role::Source,
        doc: "Tails files matching globs, across rotation (rename or copytruncate), with optional multiline joining.",
        options: &[
            r("include", OptTy::Strings, "globs of files to tail"),
            o("exclude", OptTy::Strings, "globs of paths never tailed"),
            o("read_from", OptTy::Choice(&["beginning", "end"]), "start of files without a checkpoint at the source's first start (default end)"),
            o("max_open_files", OptTy::Int, "descriptors held open at most (and at most half the process's descriptor limit); more files are read in turns (default 256)").within(OptRange::int(1, 65_536)),
            o("max_line_bytes", OptTy::Size, "longer lines are truncated and marked (default 256KiB)").within(OptRange::size(KIB, 64 * MIB)),
            o("poll_interval", OptTy::Duration, "re-check every file this often besides inotify (default 1s; with inotify watching every directory on a local file system, with each re-glob)").within(OptRange::duration(ms(10), hours(1))),
            o("glob_interval", OptTy::Duration, "re-scan the globs this often besides inotify (default 10s)").within(OptRange::duration(ms(100), days(1))),
            o("rotate_wait", OptTy::Duration, "how long a rotated-away file is still read (default 30s)").within(OptRange::duration(ms(100), days(1))),
            o("read_compressed", OptTy::Bool, "read *.gz files the globs match (default false)"),
            o("format", OptTy::Choice(&["plain", "docker", "cri"]), "line format (default plain)"),
            o("multiline.start", OptTy::Regex, "lines matching start a new event; others continue it"),
            o("multiline.continue", OptTy::Regex, "lines matching continue the previous event; with start, lines matching neither stand alone"),
            o("multiline.end", OptTy::Regex, "a line matching ends its event at once"),
            o("multiline.rules", OptTy::Map, "state rules: { start_state: [{ pattern: /re/, unless: /re/, next: \"state\" }], state: [...] }"),
            o("multiline.preset", OptTy::Choice(&["java", "python", "go", "mariadb_slow", "php"]), "built-in rules for a format"),
            o("multiline.timeout", OptTy::Duration, "emit a held event after this long without lines (default 1s)").within(OptRange::duration(ms(10), hours(1))),
            o("multiline.max_lines", OptTy::Int, "lines per event at most (default 500)").within(OptRange::int(1, 100_000)),
            o("multiline.max_bytes", OptTy::Size, "bytes per event at most (default 256KiB)").within(OptRange::size(KIB, 64 * MIB)),
            o("service", OptTy::Str, "service.name of the records (default: the source name)"),
            o("enabled", OptTy::Bool, "false leaves the source out"),
        ],
    },
    KindSpec {
        name: "docker",
        role: Role::Source,
        doc: "Docker json-file container logs, enriched from each container's config.v2.json (name, image, compose project and service).",
        options: &[
            o("directory", OptTy::Str, "docker's containers directory (default /var/lib/docker/containers)"),
            o("read_from", OptTy::Choice(&["beginning", "end"]), "start of logs without a checkpoint (default end)"),
            o("max_open_files", OptTy::Int, "descriptors held open at most (and at most half the process's descriptor limit); more files are read in turns (default 256)").within(OptRange::int(1, 65_536)),
            o("multiline.start", OptTy::Regex, "lines matching start a new event; others continue it"),
            o("multiline.continue", OptTy::Regex, "lines matching continue the previous event; with start, lines matching neither stand alone"),
            o("multiline.end", OptTy::Regex, "a line matching ends its event at once"),
            o("multiline.rules", OptTy::Map, "state rules: { start_state: [{ pattern: /re/, unless: /re/, next: \"state\" }], state: [...] }"),
            o("multiline.preset", OptTy::Choice(&["java", "python", "go", "mariadb_slow", "php"]), "built-in rules for a format"),
            o("multiline.timeout", OptTy::Duration, "emit a held event after this long without lines (default 1s)").within(OptRange::duration(ms(10), hours(1))),
            o("multiline.max_lines", OptTy::Int, "lines per event at most (default 500)").within(OptRange::int(1, 100_000)),
            o("multiline.max_bytes", OptTy::Size, "bytes per event at most (default 256KiB)").within(OptRange::size(KIB, 64 * MIB)),
            o("enabled", OptTy::Bool, "false leaves the source out"),
        ],
    },
    KindSpec {
        name: "cri",
        role: Role::Source,
        doc: "CRI container logs (containerd, K3s) under /var/log/pods, with partial lines joined and pod metadata from the path.",
        options: &[
            o("directory", OptTy::Str, "the pods log directory (default /var/log/pods)"),
            o("read_from", OptTy::Choice(&["beginning", "end"]), "start of logs without a checkpoint (default end)"),
            o("max_open_files", OptTy::Int, "descriptors held open at most (and at most half the process's descriptor limit); more files are read in turns (default 256)").within(OptRange::int(1, 65_536)),
            o("multiline.start", OptTy::Regex, "lines matching start a new event; others continue it"),
            o("multiline.continue", OptTy::Regex, "lines matching continue the previous event; with start, lines matching neither stand alone"),
            o("multiline.end", OptTy::Regex, "a line matching ends its event at once"),
            o("multiline.rules", OptTy::Map, "state rules: { start_state: [{ pattern: /re/, unless: /re/, next: \"state\" }], state: [...] }"),
            o("multiline.preset", OptTy::Choice(&["java", "python", "go", "mariadb_slow", "php"]), "built-in rules for a format"),
            o("multiline.timeout", OptTy::Duration, "emit a held event after this long without lines (default 1s)").within(OptRange::duration(ms(10), hours(1))),
            o("multiline.max_lines", OptTy::Int, "lines per event at most (default 500)").within(OptRange::int(1, 100_000)),
            o("multiline.max_bytes", OptTy::Size, "bytes per event at most (default 256KiB)").within(OptRange::size(KIB, 64 * MIB)),
            o("enabled", OptTy::Bool, "false leaves the source out"),
        ],
    },
    KindSpec {
        name: "journald",
        role: Role::Source,
        doc: "Reads the systemd journal through journalctl (export format), resuming from the delivered cursor.",
        options: &[
            o("directory", OptTy::Str, "read the journal files of this directory (--directory) instead of the system journal"),
            o("files", OptTy::Strings, "read these journal files (--file)"),
            o("units", OptTy::Strings, "only these units (bare names mean .service; globs allowed)"),
            o("exclude_units", OptTy::Strings, "never these units (globs)"),
            o("matches", OptTy::Strings, "journalctl field matches, FIELD=value"),
            o("current_boot_only", OptTy::Bool, "only the current boot (default false)"),
            o("read_from", OptTy::Choice(&["beginning", "end"]), "where to start without a checkpoint (default end)"),
            o("journalctl", OptTy::Str, "the journalctl program (default: journalctl on PATH)"),
            o("only_when_available", OptTy::Bool, "leave the source out when no system journal is readable (default false)"),
            o("enabled", OptTy::Bool, "false leaves the source out"),
        ],
    },
    KindSpec {
        name: "host_metrics",
        role: Role::Source,
        doc: "Node metrics from /proc and /sys (OpenTelemetry host-metrics names), Raspberry Pi health, and a shipd.node.health level.",
        options: &[
            o("every", OptTy::Duration, "collection interval (default 15s)").within(OptRange::duration(ms(100), days(1))),
            o("root", OptTy::Str, "where the host's /proc and /sys are (default /)"),
            o("exclude_interfaces", OptTy::Strings, "network interfaces never reported"),
            o("exclude_mount_points", OptTy::Strings, "mount points never reported"),
            o("health", OptTy::Map, "warning/critical thresholds, e.g. { cpu: [80, 95], memory: [85, 95], disk: [80, 90], load: [4, 8], temperature: [70, 80] }"),
            o("enabled", OptTy::Bool, "false leaves the source out"),
        ],
    },
    KindSpec {
        name: "log_metrics",
        role: Role::Source,
        doc: "Metrics that steps derive from events with count(...), observe(...) and set_gauge(...), aggregated in memory per series and shipped every interval as cumulative points, like host metrics.",
        options: &[
            o("every", OptTy::Duration, "how often every series is shipped (default 15s)").within(OptRange::duration(ms(100), days(1))),
            o("max_series", OptTy::Int, "series (a metric and its label values) held at most; a point of a further series is dropped and counted in shipd_metric_points_dropped_total (default 1000)").within(OptRange::int(1, 1_000_000)),
            o("enabled", OptTy::Bool, "false leaves the source out"),
        ],
    },
    KindSpec {
        name: "prometheus_scrape",
        role: Role::Source,
        doc: "Scrapes Prometheus text exposition (0.0.4, OpenMetrics where easy) from URLs.",
        options: &[
            r("urls", OptTy::Strings, "targets, e.g. [\"http://127.0.0.1:9100/metrics\"]"),
            o("every", OptTy::Duration, "scrape interval (default 15s)").within(OptRange::duration(secs(1), days(1))),
            o("timeout", OptTy::Duration, "per scrape (default 10s)").within(OptRange::duration(ms(100), mins(10))),
            o("job", OptTy::Str, "the job label (default: the source name)"),
            o("honor_labels", OptTy::Bool, "keep the target's job/instance labels on conflict (default false)"),
            o("max_body_bytes", OptTy::Size, "a longer exposition fails the scrape (up 0, counted), never read past it (default 16MiB)").within(OptRange::size(4 * KIB, GIB)),
            o("max_series", OptTy::Int, "more sample lines (every line not blank or a comment: each histogram bucket counts) fail the scrape (default 100000)").within(OptRange::int(1, 10_000_000)),
            o("tls.ca_file", OptTy::Str, "CA certificate (PEM) trusted for https targets besides the system roots"),
            o("tls.cert_file", OptTy::Str, "client certificate (PEM) for targets that demand one; with tls.key_file"),
            o("tls.key_file", OptTy::Str, "the client certificate's private key (PEM)"),
            o("tls.server_name", OptTy::Str, "the name the targets' certificates must carry (default: each URL's host)"),
            o("tls.insecure_skip_verify", OptTy::Bool, "accept any certificate (logged as a WARN, shown in status; default false)"),
            o("enabled", OptTy::Bool, "false leaves the source out"),
        ],
    },
    KindSpec {
        name: "exec",
        role: Role::Source,
        doc: "Runs a command (argv, no shell) every interval and ships its standard output as log lines or as Prometheus metrics; killed with its whole process group past its timeout.",
        options: &[
            r("command", OptTy::Strings, "program and arguments, e.g. [\"vcgencmd\", \"measure_temp\"]; no shell unless you write [\"sh\", \"-c\", \"...\"]"),
            o("every", OptTy::Duration, "run interval; a run that outlasts it delays the next (default 60s)").within(OptRange::duration(ms(100), days(1))),
            o("timeout", OptTy::Duration, "a run still going after this is killed with its process group (counted, logged; default 10s)").within(OptRange::duration(ms(10), hours(1))),
            o("format", OptTy::Choice(&["lines", "prometheus"]), "lines: one log record per line (default); prometheus: standard output is a text exposition, shipped as metrics"),
            o("max_output_bytes", OptTy::Size, "standard output past this is cut and its pipe closed (counted, logged; default 1MiB)").within(OptRange::size(KIB, 16 * MIB)),
            o("enabled", OptTy::Bool, "false leaves the source out"),
        ],
    },
    KindSpec {
        name: "otlp",
        role: Role::Source,
        doc: "Receives OTLP logs and metrics that local apps push over gRPC and HTTP (protobuf, gzip or zstd); refuses with RESOURCE_EXHAUSTED / 429 while the pipeline is full or the receiver busy, and with RESOURCE_EXHAUSTED / 413 a request over max_message_bytes or max_request_memory.",
        options: &[
            o("grpc_address", OptTy::Str, "OTLP/gRPC listen address, or \"off\" (default 127.0.0.1:4317)"),
            o("http_address", OptTy::Str, "OTLP/HTTP listen address (POST /v1/logs, /v1/metrics), or \"off\" (default 127.0.0.1:4318)"),
            o("max_message_bytes", OptTy::Size, "largest request, compressed and decompressed (default 16MiB with 256 MiB of memory or more; less in proportion under a smaller limit, down to an eighth)").within(OptRange::size(KIB, 64 * MIB)),
            o("max_request_memory", OptTy::Size, "the most one request's records may take in memory once decoded; larger requests are refused with 413 / RESOURCE_EXHAUSTED (default 8MiB with 256 MiB of memory or more; less in proportion under a smaller limit, down to an eighth)").within(OptRange::size(64 * KIB, GIB)),
            o("max_concurrent_requests", OptTy::Int, "requests received and decoded at once; others wait up to accept_timeout (default 4)").within(OptRange::int(1, 256)),
            o("max_connections", OptTy::Int, "connections held open at once, both protocols together; more are closed at once and counted in shipd_connections_refused_total (default 256)").within(OptRange::int(1, 65_536)),
            o("accept_timeout", OptTy::Duration, "how long a request waits for room in the pipeline before it is refused (default 1s)").within(OptRange::duration(secs(0), mins(1))),
            o("retry_after", OptTy::Duration, "Retry-After advice of a refused HTTP request (default 1s)").within(OptRange::duration(secs(1), hours(1))),
            o("tls.cert_file", OptTy::Str, "serve both protocols over TLS with this certificate chain (PEM); with tls.key_file"),
            o("tls.key_file", OptTy::Str, "the private key (PEM) of tls.cert_file"),
            o("enabled", OptTy::Bool, "false leaves the source out"),
        ],
    },
    KindSpec {
        name: "forward",
        role: Role::Source,
        doc: "Receives the Fluentd forward protocol over TCP (Docker's fluentd log driver, fluent-logger apps, Fluent Bit and Fluentd out_forward): Message, Forward, PackedForward and gzip CompressedPackedForward modes, chunk acknowledgements once events are in the pipeline, optional shared-key handshake.",
        options: &[
            o("address", OptTy::Str, "TCP listen address (default 127.0.0.1:24224)"),
            o("max_message_bytes", OptTy::Size, "largest message, on the wire and inflated; a larger one closes its connection, counted (default 8MiB with 256 MiB of memory or more; less in proportion under a smaller limit, down to an eighth)").within(OptRange::size(KIB, 64 * MIB)),
            o("max_memory", OptTy::Size, "memory every connection's buffered and decoded messages share; at least what one max_message_bytes message needs (3 x max_message_bytes + 2MiB) is used (default 32MiB with 256 MiB of memory or more; less in proportion under a smaller limit, down to an eighth)").within(OptRange::size(64 * KIB, GIB)),
            o("max_connections", OptTy::Int, "connections served at once; more are closed at once, counted (default 256)").within(OptRange::int(1, 65_536)),
            o("shared_key", OptTy::Str, "require the forward protocol's shared-key handshake with this key"),
            o("self_hostname", OptTy::Str, "the server's name in the handshake (default the node's host name)"),
            o("enabled", OptTy::Bool, "false leaves the source out"),
        ],
    },
    KindSpec {
        name: "syslog",
        role: Role::Source,
        doc: "Receives syslog (RFC 5424 and RFC 3164) over UDP, TCP (octet counting or newline framing) and unix datagram sockets; messages that do not parse are kept whole and counted.",
        options: &[
            r("listen", OptTy::Strings, "addresses: udp://IP:PORT, tcp://IP:PORT, unix:///path (at least one)"),
            o("max_message_bytes", OptTy::Size, "longer messages are truncated and marked (default 64KiB)").within(OptRange::size(KIB, 16 * MIB)),
            o("max_connections", OptTy::Int, "TCP connections served at once; more are closed and counted (default 256)").within(OptRange::int(1, 65_536)),
            o("enabled", OptTy::Bool, "false leaves the source out"),
        ],
    },
    KindSpec {
        name: "openobserve",
        role: Role::Sink,
        doc: "Ships OTLP to OpenObserve over HTTP (default) or gRPC.",
        options: &[
            r("url", OptTy::Str, "HTTP base URL, e.g. http://pi-obs:5080"),
            o("grpc_url", OptTy::Str, "gRPC URL (default: same host, port 5081)"),
            o("org", OptTy::Str, "organisation (default `default`)"),
            o("user", OptTy::Str, "user for Basic auth"),
            o("password", OptTy::Str, "password for Basic auth (use env(...)); user:password in the URL works too and is never printed"),
            o("password_file", OptTy::Str, "read the password from this file (trailing newline removed) when `password` is unset; a missing or unreadable file refuses start"),
            o("transport", OptTy::Choice(&["http", "grpc"]), "default http"),
            o("compression", OptTy::Choice(&["gzip", "zstd", "none"]), "default gzip"),
            o("stream", OptTy::Str, "stream for routes that name none (default `default`)"),
            o("batch.max_events", OptTy::Int, "events per request (default 5000)").within(OptRange::int(1, 1_000_000)),
            o("batch.max_bytes", OptTy::Size, "uncompressed bytes per request (default 1MiB with 256 MiB of memory or more; less in proportion under a smaller limit, down to an eighth)").within(OptRange::size(KIB, 64 * MIB)),
            o("batch.timeout", OptTy::Duration, "longest wait of an event in a batch (default 1s)").within(OptRange::duration(ms(10), mins(10))),
            o("in_flight", OptTy::Int, "concurrent requests (default 2; 1 under a memory limit below 128 MiB)").within(OptRange::int(1, 64)),
            o("request_timeout", OptTy::Duration, "per request (default 30s)").within(OptRange::duration(secs(1), mins(10))),
            o("retry_max", OptTy::Duration, "longest backoff between retries (default 30s)").within(OptRange::duration(ms(100), hours(1))),
            o("retry_auth", OptTy::Duration, "wait after a 401/403 before trying again (default 30s)").within(OptRange::duration(ms(100), hours(1))),
            o("tls.ca_file", OptTy::Str, "CA certificate (PEM) trusted besides the system roots, e.g. a private CA on the observability Pi"),
            o("tls.cert_file", OptTy::Str, "client certificate (PEM) for mutual TLS; with tls.key_file"),
            o("tls.key_file", OptTy::Str, "the client certificate's private key (PEM)"),
            o("tls.server_name", OptTy::Str, "the name OpenObserve's certificate must carry (default: the URL's host)"),
            o("tls.insecure_skip_verify", OptTy::Bool, "accept any certificate (logged as a WARN, shown in status; default false)"),
            o("too_old", OptTy::Choice(&["drop", "restamp", "keep"]), "log records older than OpenObserve's 5 h ingest window: drop (counted, logged; default), restamp (time now, original in shipd.original_timestamp) or keep (sent unchanged)"),
            o("buffer.max_size", OptTy::Size, "spill buffer cap on disk for data that cannot be re-read (metrics, OTLP received); default 256MiB, at least 1MiB").within(OptRange::size(crate::buffer::queue::MIN_MAX_BYTES, 64 * GIB)),
            o("buffer.when_full", OptTy::Choice(&["block", "drop_oldest"]), "when the spill buffer is full: block (backpressure; default) or drop_oldest (counted)"),
            o("buffer.segment_size", OptTy::Size, "spill segment file size (default 8MiB, at most a quarter of max_size)").within(OptRange::size(64 * KIB, 256 * MIB)),
            o("buffer.sync_interval", OptTy::Duration, "fsync the segment being written at most this often (default 5s; always on segment close)").within(OptRange::duration(ms(100), hours(1))),
            o("enabled", OptTy::Bool, "false leaves the sink out (routes fall through to the next sink of `a or b`)"),
        ],
    },
    KindSpec {
        name: "otlp",
        role: Role::Sink,
        doc: "Ships OTLP to any OTLP/HTTP or OTLP/gRPC receiver (OpenTelemetry Collector, Grafana Alloy, Loki), with custom paths and headers.",
        options: &[
            o("url", OptTy::Str, "OTLP/HTTP base URL, e.g. http://collector:4318 (needed for transport http); its path is kept as a prefix"),
            o("grpc_url", OptTy::Str, "OTLP/gRPC URL, e.g. http://collector:4317 (needed for transport grpc; default: url's host, port 4317)"),
            o("logs_path", OptTy::Str, "path of log requests after url (default /v1/logs)"),
            o("metrics_path", OptTy::Str, "path of metric requests after url (default /v1/metrics)"),
            o("headers", OptTy::Map, "headers of every request (gRPC metadata, lowercased), e.g. { authorization = \"Bearer ...\", \"x-scope-orgid\" = \"pis\" }"),
            o("stream_header", OptTy::Str, "a header naming each request's stream (e.g. stream-name); default none"),
            o("user", OptTy::Str, "user for Basic auth"),
            o("password", OptTy::Str, "password for Basic auth (use env(...)); user:password in the URL works too and is never printed"),
            o("password_file", OptTy::Str, "read the password from this file (trailing newline removed) when `password` is unset; a missing or unreadable file refuses start"),
            o("transport", OptTy::Choice(&["http", "grpc"]), "default http"),
            o("compression", OptTy::Choice(&["gzip", "zstd", "none"]), "default gzip"),
            o("stream", OptTy::Str, "stream for routes that name none (default `default`)"),
            o("batch.max_events", OptTy::Int, "events per request (default 5000)").within(OptRange::int(1, 1_000_000)),
            o("batch.max_bytes", OptTy::Size, "uncompressed bytes per request (default 1MiB with 256 MiB of memory or more; less in proportion under a smaller limit, down to an eighth)").within(OptRange::size(KIB, 64 * MIB)),
            o("batch.timeout", OptTy::Duration, "longest wait of an event in a batch (default 1s)").within(OptRange::duration(ms(10), mins(10))),
            o("in_flight", OptTy::Int, "concurrent requests (default 2; 1 under a memory limit below 128 MiB)").within(OptRange::int(1, 64)),
            o("request_timeout", OptTy::Duration, "per request (default 30s)").within(OptRange::duration(secs(1), mins(10))),
            o("retry_max", OptTy::Duration, "longest backoff between retries (default 30s)").within(OptRange::duration(ms(100), hours(1))),
            o("retry_auth", OptTy::Duration, "wait after a 401/403 before trying again (default 30s)").within(OptRange::duration(ms(100), hours(1))),
            o("tls.ca_file", OptTy::Str, "CA certificate (PEM) trusted besides the system roots"),
            o("tls.cert_file", OptTy::Str, "client certificate (PEM) for mutual TLS; with tls.key_file"),
            o("tls.key_file", OptTy::Str, "the client certificate's private key (PEM)"),
            o("tls.server_name", OptTy::Str, "the name the receiver's certificate must carry (default: the URL's host)"),
            o("tls.insecure_skip_verify", OptTy::Bool, "accept any certificate (logged as a WARN, shown in status; default false)"),
            o("buffer.max_size", OptTy::Size, "spill buffer cap on disk for data that cannot be re-read (metrics, OTLP received); default 256MiB, at least 1MiB").within(OptRange::size(crate::buffer::queue::MIN_MAX_BYTES, 64 * GIB)),
            o("buffer.when_full", OptTy::Choice(&["block", "drop_oldest"]), "when the spill buffer is full: block (backpressure; default) or drop_oldest (counted)"),
            o("buffer.segment_size", OptTy::Size, "spill segment file size (default 8MiB, at most a quarter of max_size)").within(OptRange::size(64 * KIB, 256 * MIB)),
            o("buffer.sync_interval", OptTy::Duration, "fsync the segment being written at most this often (default 5s; always on segment close)").within(OptRange::duration(ms(100), hours(1))),
            o("enabled", OptTy::Bool, "false leaves the sink out (routes fall through to the next sink of `a or b`)"),
        ],
    },
    KindSpec {
        name: "elasticsearch",
        role: Role::Sink,
        doc: "Ships to the _bulk API of Elasticsearch, OpenSearch or OpenObserve (url .../api/{org}): one JSON document per event, refused documents counted, 429/5xx documents retried alone.",
        options: &[
            r("url", OptTy::Str, "base URL; requests go to {url}/_bulk, e.g. http://es:9200 or http://pi-obs:5080/api/default"),
            o("index", OptTy::Str, "the index (or data stream) of every document (default: the route's stream name)"),
            o("headers", OptTy::Map, "headers of every request, e.g. { authorization = \"ApiKey ...\" }"),
            o("user", OptTy::Str, "user for Basic auth"),
            o("password", OptTy::Str, "password for Basic auth (use env(...)); user:password in the URL works too and is never printed"),
            o("password_file", OptTy::Str, "read the password from this file (trailing newline removed) when `password` is unset; a missing or unreadable file refuses start"),
            o("compression", OptTy::Choice(&["gzip", "none"]), "default gzip"),
            o("stream", OptTy::Str, "stream for routes that name none (default `default`)"),
            o("batch.max_events", OptTy::Int, "events per request (default 5000)").within(OptRange::int(1, 1_000_000)),
            o("batch.max_bytes", OptTy::Size, "uncompressed bytes per request (default 1MiB with 256 MiB of memory or more; less in proportion under a smaller limit, down to an eighth)").within(OptRange::size(KIB, 64 * MIB)),
            o("batch.timeout", OptTy::Duration, "longest wait of an event in a batch (default 1s)").within(OptRange::duration(ms(10), mins(10))),
            o("in_flight", OptTy::Int, "concurrent requests (default 2; 1 under a memory limit below 128 MiB)").within(OptRange::int(1, 64)),
            o("request_timeout", OptTy::Duration, "per request (default 30s)").within(OptRange::duration(secs(1), mins(10))),
            o("retry_max", OptTy::Duration, "longest backoff between retries (default 30s)").within(OptRange::duration(ms(100), hours(1))),
            o("retry_auth", OptTy::Duration, "wait after a 401/403 before trying again (default 30s)").within(OptRange::duration(ms(100), hours(1))),
            o("tls.ca_file", OptTy::Str, "CA certificate (PEM) trusted besides the system roots"),
            o("tls.cert_file", OptTy::Str, "client certificate (PEM) for mutual TLS; with tls.key_file"),
            o("tls.key_file", OptTy::Str, "the client certificate's private key (PEM)"),
            o("tls.server_name", OptTy::Str, "the name the receiver's certificate must carry (default: the URL's host)"),
            o("tls.insecure_skip_verify", OptTy::Bool, "accept any certificate (logged as a WARN, shown in status; default false)"),
            o("buffer.max_size", OptTy::Size, "spill buffer cap on disk for data that cannot be re-read (metrics, OTLP received); default 256MiB, at least 1MiB").within(OptRange::size(crate::buffer::queue::MIN_MAX_BYTES, 64 * GIB)),
            o("buffer.when_full", OptTy::Choice(&["block", "drop_oldest"]), "when the spill buffer is full: block (backpressure; default) or drop_oldest (counted)"),
            o("buffer.segment_size", OptTy::Size, "spill segment file size (default 8MiB, at most a quarter of max_size)").within(OptRange::size(64 * KIB, 256 * MIB)),
            o("buffer.sync_interval", OptTy::Duration, "fsync the segment being written at most this often (default 5s; always on segment close)").within(OptRange::duration(ms(100), hours(1))),
            o("enabled", OptTy::Bool, "false leaves the sink out (routes fall through to the next sink of `a or b`)"),
        ],
    },
    KindSpec {
        name: "console",
        role: Role::Sink,
        doc: "Prints one line per event on standard output.",
        options: &[o("enabled", OptTy::Bool, "false leaves the sink out")],
    },
    KindSpec {
        name: "settings",
        role: Role::Settings,
        doc: "Agent-wide settings.",
        options: &[
            o("data_dir", OptTy::Str, "checkpoints and buffers (default $SHIPD_DATA_DIR or /var/lib/shipd)"),
            o("runtime_dir", OptTy::Str, "RAM-backed directory (tmpfs) where metrics and received data are journaled until delivered, so a crash of the process loses none of them, and where checkpoints are saved within checkpoint_interval of every acknowledgement without wearing the storage (not RAM: a warning in /health and shipctl status), or \"off\" (default $SHIPD_RUNTIME_DIR, else $RUNTIME_DIRECTORY/journal, else /dev/shm/shipd-<id of data_dir>)"),
            o("api_addr", OptTy::Str, "address of /health and /metrics, or \"off\" (default $SHIPD_API_ADDR or 127.0.0.1:9717)"),
            o("control_socket", OptTy::Str, "unix socket of the control API (shipctl tail, status, reload), or \"off\" (default $SHIPD_CONTROL_SOCKET or /run/shipd/control.sock)"),
            o("checkpoint_interval", OptTy::Duration, "how long a delivered position may wait before it is saved to the RAM copy in runtime_dir, which a crash or restart of the process keeps: every acknowledgement wakes the writer, and writes are coalesced to at most one per interval (default 250ms; without a RAM runtime_dir positions go to disk only, every checkpoint_disk_interval)").within(OptRange::duration(ms(100), hours(1))),
            o("checkpoint_disk_interval", OptTy::Duration, "how often the checkpoint copy on disk, which a reboot keeps, is brought up to date: at most one write per interval plus one per newly seen file or journal, each costing one or two 4 KiB pages of flash (the data, and the inode's new mtime) (default 120s)").within(OptRange::duration(secs(1), days(1))),
            o("drain_timeout", OptTy::Duration, "how long shutdown waits for in-flight batches (default 10s)").within(OptRange::duration(secs(0), hours(1))),
            o("hostname", OptTy::Str, "host.name of every record (default: the kernel's)"),
            o("max_streams", OptTy::Int, "distinct computed stream names before overflow (default 100)").within(OptRange::int(1, 10_000)),
            o("overflow_stream", OptTy::Str, "where events go past max_streams (default `overflow`)"),
            o("channel_bytes", OptTy::Size, "byte budget between stages (default 2MiB with 256 MiB of memory or more; less in proportion under a smaller limit, down to an eighth)").within(OptRange::size(16 * KIB, GIB)),
        ],
    },
];

/// Looks up a component kind.
pub fn kind(name: &str, role: Role) -> Option<&'static KindSpec> {
    KINDS.iter().find(|k| k.name == name && k.role == role)
}

/// An evaluated option value.
#[derive(Debug, Clone, PartialEq)]
pub enum OptVal {
    Str(String),
    Strings(Vec<String>),
    Int(i64),
    Bool(bool),
    Duration(Duration),
    Size(u64),
    Regex(String),
    Map(crate::event::Map),
}

/// Evaluated options of one component, by name.
#[derive(Debug, Default)]
pub struct Options {
    pub values: BTreeMap<String, (OptVal, Span)>,
    /// The environment variables each option's value came from (set ones).
    pub env: BTreeMap<String, Vec<String>>,
}

impl Options {
    /// ` (from VAR)` when option `k` came from an environment variable: for
    /// a refusal found after evaluation (an address), so it names what to fix.
    pub fn origin(&self, env: &super::environment::Environment, k: &str) -> String {
        self.env
            .get(k)
            .map(|vars| origin_note(env, vars, false))
            .unwrap_or_default()
    }

    pub fn str(&self, k: &str) -> Option<String> {
        match self.values.get(k) {
            Some((OptVal::Str(s), _)) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn strings(&self, k: &str) -> Option<Vec<String>> {
        match self.values.get(k) {
            Some((OptVal::Strings(s), _)) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn int(&self, k: &str) -> Option<i64> {
        match self.values.get(k) {
            Some((OptVal::Int(i), _)) => Some(*i),
            _ => None,
        }
    }
    pub fn bool(&self, k: &str) -> Option<bool> {
        match self.values.get(k) {
            Some((OptVal::Bool(b), _)) => Some(*b),
            _ => None,
        }
    }
    pub fn duration(&self, k: &str) -> Option<Duration> {
        match self.values.get(k) {
            Some((OptVal::Duration(d), _)) => Some(*d),
            _ => None,
        }
    }
    pub fn size(&self, k: &str) -> Option<u64> {
        match self.values.get(k) {
            Some((OptVal::Size(s), _)) => Some(*s),
            _ => None,
        }
    }
    pub fn regex(&self, k: &str) -> Option<String> {
        match self.values.get(k) {
            Some((OptVal::Regex(s), _)) => Some(s.clone()),
            _ => None,
        }
    }
    /// A count option as a `usize` (its range keeps it positive).
    pub fn count(&self, k: &str) -> Option<usize> {
        self.int(k).and_then(|i| usize::try_from(i).ok())
    }
    /// A size option as a `usize` (its range keeps it addressable on 32 bits).
    pub fn bytes(&self, k: &str) -> Option<usize> {
        self.size(k).and_then(|s| usize::try_from(s).ok())
    }
    pub fn span(&self, k: &str) -> Option<Span> {
        self.values.get(k).map(|(_, s)| s.to_owned())
    }
}

/// Expands `batch = { timeout = 1s }` into `batch.timeout` (unless the kind
/// takes a map under that name).
fn flatten<'a>(spec: &KindSpec, options: &'a [Opt]) -> Vec<(String, Span, &'a Expr)> {
    let mut out = Vec::new();
    for opt in options {
        let takes_map = spec
            .options
            .iter()
            .any(|o| o.name == opt.key.name && matches!(o.ty, OptTy::Map));
        match &opt.value.kind {
            ExprKind::Map(entries) if !entries.is_empty() && !takes_map => {
                for (k, v) in entries {
                    out.push((format!("{}.{k}", opt.key.name), opt.key.span.to(v.span), v));
                }
            }
            _ => out.push((opt.key.name.clone(), opt.key.span, &opt.value)),
        }
    }
    out
}

/// Evaluates an expression that may only use literals, `env`, `file` and operators.
pub fn const_value(c: &mut Compiler, e: &Expr) -> Result<Value, String> {
    let scope = Scope {
        sources: &[],
        step_handles_errors: false,
        paths: false,
        records: false,
    };
    let before = c.diagnostics.len();
    // A failure here is reported when the pipeline loads, so calls count as handled.
    let t = c.expr(e, &scope, true);
    if c.diagnostics.len() > before {
        return Err(String::new());
    }
    let mut event = Event::Log(LogRecord::new(Value::Null, Arc::new(Resource::default())));
    let mut ctx = Ctx::new(&mut event, "");
    t.expr.eval(&mut ctx).map_err(|e| e.0)
}

fn convert(ty: OptTy, e: &Expr, v: Value) -> Option<OptVal> {
    let text = |v: &Value| super::functions::text_of(v).map(|t| t.into_owned());
    match ty {
        OptTy::Str => text(&v).map(OptVal::Str),
        OptTy::Strings => match v {
            Value::Array(items) => items.iter().map(text).collect::<Option<Vec<_>>>().map(|v| {
                OptVal::Strings(
                    v.into_iter()
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }),
            other => text(&other).map(|s| OptVal::Strings(vec![s])),
        },
        OptTy::Int => match v {
            Value::Int(i) => Some(OptVal::Int(i)),
            other => text(&other)
                .and_then(|t| t.trim().parse().ok())
                .map(OptVal::Int),
        },
        OptTy::Bool => match v {
            Value::Bool(b) => Some(OptVal::Bool(b)),
            other => match text(&other).as_deref().map(str::trim) {
                Some("true") => Some(OptVal::Bool(true)),
                Some("false") => Some(OptVal::Bool(false)),
                _ => None,
            },
        },
        OptTy::Duration => match (&e.kind, v) {
            (ExprKind::Lit(Lit::Duration(d)), _) => Some(OptVal::Duration(*d)),
            (_, Value::Int(ns)) if ns >= 0 => {
                Some(OptVal::Duration(Duration::from_nanos(ns as u64)))
            }
            (_, other) => text(&other)
                .and_then(|t| humantime::parse_duration(&t).ok())
                .map(OptVal::Duration),
        },
        OptTy::Size => match (&e.kind, v) {
            (ExprKind::Lit(Lit::Size(s)), _) => Some(OptVal::Size(*s)),
            (_, Value::Int(n)) if n >= 0 => Some(OptVal::Size(n as u64)),
            (_, other) => text(&other)
                .and_then(|t| crate::config::parse_size(&t).ok())
                .map(|s| OptVal::Size(s as u64)),
        },
        OptTy::Regex => match (&e.kind, v) {
            (ExprKind::Lit(Lit::Regex(r)), _) => Some(OptVal::Regex(r.clone())),
            (_, other) => text(&other)
                .filter(|t| super::functions::compile_regex(t).is_ok())
                .map(OptVal::Regex),
        },
        OptTy::Choice(choices) => text(&v)
            .filter(|t| choices.contains(&t.as_str()))
            .map(OptVal::Str),
        OptTy::Map => match v {
            Value::Map(m) => Some(OptVal::Map(m)),
            _ => None,
        },
    }
}

/// Checks and evaluates the options of `kind`.
pub fn evaluate(c: &mut Compiler, spec: &KindSpec, options: &[Opt], at: Span) -> Options {
    let mut out = Options::default();
    for (name, span, expr) in flatten(spec, options) {
        let Some(opt) = spec.options.iter().find(|o| o.name == name) else {
            let hint = suggest(&name, spec.options.iter().map(|o| o.name), || {
                let names: Vec<&str> = spec.options.iter().map(|o| o.name).collect();
                format!("`{}` takes: {}", spec.name, names.join(", "))
            });
            c.diagnostics.push(
                Diagnostic::new(span, format!("unknown option `{name}` for `{}`", spec.name))
                    .hint(hint),
            );
            continue;
        };
        if out.values.contains_key(&name) {
            c.diagnostics.push(
                Diagnostic::new(span, format!("option `{name}` is set twice")).hint("keep one"),
            );
            continue;
        }
        let value = match const_value(c, expr) {
            // `null` leaves the option unset (its default applies).
            Ok(Value::Null) => continue,
            Ok(v) => v,
            Err(msg) if msg.is_empty() => continue,
            Err(msg) => {
                c.diagnostics.push(
                    Diagnostic::new(expr.span, format!("option `{name}`: {msg}"))
                        .hint("give a fallback with `?? value`, e.g. env(\"X\") ?? \"default\""),
                );
                continue;
            }
        };
        if let (OptTy::Regex, ExprKind::Lit(Lit::Regex(p))) = (opt.ty, &expr.kind) {
            if let Err(e) = super::functions::compile_regex(p) {
                c.diagnostics.push(
                    Diagnostic::new(expr.span, format!("option `{name}`: {e}"))
                        .hint("regexes use Rust `regex` syntax"),
                );
                continue;
            }
        }
        let mut vars = env_origin(&c.env, expr);
        vars.extend(c.let_env_origin(expr));
        match convert(opt.ty, expr, value) {
            Some(v) => match opt.range {
                Some(range) if !range.contains(&v) => c.diagnostics.push(out_of_range(
                    &c.env, &name, opt, range, &v, &vars, expr.span,
                )),
                _ => {
                    if !vars.is_empty() {
                        out.env.insert(name.clone(), vars);
                    }
                    out.values.insert(name, (v, span));
                }
            },
            None => c.diagnostics.push(
                Diagnostic::new(
                    expr.span,
                    format!(
                        "option `{name}` must be {}{}",
                        opt.ty.describe(),
                        origin_note(&c.env, &vars, false)
                    ),
                )
                .hint(opt.doc),
            ),
        }
    }
    for opt in spec.options.iter().filter(|o| o.required) {
        if !out.values.contains_key(opt.name) {
            c.diagnostics.push(
                Diagnostic::new(
                    at,
                    format!("`{}` needs the option `{}`", spec.name, opt.name),
                )
                .hint(format!("{}: {}", opt.name, opt.doc)),
            );
        }
    }
    out
}

/// The refusal of `value` for option `name`: the value, where it came from
/// and the range, so a user of the default pipeline knows which variable to fix.
fn out_of_range(
    env: &super::environment::Environment,
    name: &str,
    opt: &OptSpec,
    range: OptRange,
    value: &OptVal,
    vars: &[String],
    at: Span,
) -> Diagnostic {
    let shown = super::option_range::format_value(value).unwrap_or_default();
    let message = format!(
        "option `{name}` is {shown}{}, outside its range {}",
        origin_note(env, vars, true),
        range.describe()
    );
    let hint = match vars {
        [] => format!("{name}: {}", opt.doc),
        vars => format!(
            "set {} to a value from {}, or unset it for the default",
            vars.join(" or "),
            range.describe()
        ),
    };
    Diagnostic::new(at, message).hint(hint)
}

/// Checks a component's kind; `None` after reporting an unknown kind.
pub fn kind_of(c: &mut Compiler, comp: &Component, role: Role) -> Option<&'static KindSpec> {
    match kind(&comp.kind.name, role) {
        Some(k) => Some(k),
        None => {
            let names: Vec<&str> = KINDS
                .iter()
                .filter(|k| k.role == role)
                .map(|k| k.name)
                .collect();
            let hint = suggest(&comp.kind.name, names.iter().copied(), || {
                format!("known kinds: {}", names.join(", "))
            });
            let what = if role == Role::Source {
                "source"
            } else {
                "sink"
            };
            c.diagnostics.push(
                Diagnostic::new(
                    comp.kind.span,
                    format!("unknown {what} kind `{}`", comp.kind.name),
                )
                .hint(hint),
            );
            None
        }
    }
}
