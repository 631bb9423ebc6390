//! The options of the shipping sinks (`openobserve`, `otlp`), mapped onto
//! [`OtlpSinkConfig`]: one mapping of what they share (transport,
//! compression, batch, concurrency, timeouts, retries, spill buffer, TLS),
//! and each kind's own (OpenObserve's organisation and ingest window; a
//! generic receiver's paths and headers). Never puts an option's value into
//! a diagnostic, since headers and URLs may carry secrets.

use super::ast::Opt;
use super::compile::Compiler;
use super::components::{OptVal, Options};
use super::connection_options;
use super::diagnostics::{Diagnostic, Span};
use crate::sinks::batcher::BatchLimits;
use crate::sinks::elasticsearch::ElasticsearchConfig;
use crate::sinks::openobserve::base_url::UrlRole;
use crate::sinks::openobserve::{default_grpc_url, OpenObserveConfig};
use crate::sinks::otlp::{check_headers, OtlpSinkConfig, TransportKind};

/// An `openobserve` sink from its options; `None` without a `url`.
pub fn openobserve(
    c: &mut Compiler,
    name: &str,
    opts: &Options,
    written: &[Opt],
    at: Span,
) -> Option<OpenObserveConfig> {
    let url = opts.str("url")?;
    // A refused URL fails the load; the sink is still declared, so routes
    // to it raise no second, misleading error.
    connection_options::openobserve_urls(c, opts, written, at);
    let creds = connection_options::credentials(c, opts, url.trim_end_matches('/'), at);
    let mut o2 = OpenObserveConfig::new(name, creds.url);
    o2.grpc_url = opts
        .str("grpc_url")
        .map(|u| crate::credentials::redact_url(&u))
        .unwrap_or_else(|| default_grpc_url(&o2.url));
    o2.org = opts.str("org").unwrap_or_else(|| "default".into());
    o2.user = creds.user;
    o2.password = creds.password;
    if let Some(policy) = opts.str("too_old") {
        o2.too_old = policy.parse().unwrap_or(o2.too_old);
    }
    shared(c, opts, at, &mut o2.sink);
    Some(o2)
}

/// An `otlp` sink from its options: `url` for HTTP, `grpc_url` for gRPC
/// (one of them is needed, the one of the transport), custom paths and
/// headers. `None` when the needed URL is missing (reported).
pub fn otlp(
    c: &mut Compiler,
    name: &str,
    opts: &Options,
    written: &[Opt],
    at: Span,
) -> Option<OtlpSinkConfig> {
    let grpc = opts.str("transport").as_deref() == Some("grpc");
    let url = opts.str("url");
    let grpc_url = opts.str("grpc_url");
    let needed = if grpc {
        ("grpc_url", &grpc_url)
    } else {
        ("url", &url)
    };
    if needed.1.is_none() {
        c.diagnostics.push(
            Diagnostic::new(at, format!("`otlp` needs the option `{}`", needed.0)).hint(
                "url is the OTLP/HTTP base (e.g. http://collector:4318); grpc_url the OTLP/gRPC endpoint (e.g. http://collector:4317) when transport = \"grpc\"",
            ),
        );
        return None;
    }
    connection_options::checked_urls(
        c,
        opts,
        written,
        at,
        &[("url", UrlRole::Prefix), ("grpc_url", UrlRole::Grpc)],
    );
    let base = url.as_deref().or(grpc_url.as_deref()).unwrap_or_default();
    let creds = connection_options::credentials(c, opts, base.trim_end_matches('/'), at);
    let mut sink = OtlpSinkConfig::new(name, creds.url);
    if let Some(u) = grpc_url {
        sink.grpc_url = crate::credentials::redact_url(&u);
    }
    if url.is_none() {
        sink.url = sink.grpc_url.clone();
    }
    sink.user = creds.user;
    sink.password = creds.password;
    for (option, path) in [
        ("logs_path", &mut sink.logs_path),
        ("metrics_path", &mut sink.metrics_path),
    ] {
        let Some(given) = opts.str(option) else {
            continue;
        };
        if !given.starts_with('/') || given.contains(['?', '#']) {
            c.diagnostics.push(
                Diagnostic::new(
                    opts.span(option).unwrap_or(at),
                    format!(
                        "option `{option}` must be a path starting with `/`, without `?` or `#`"
                    ),
                )
                .hint("e.g. /v1/logs, or /otlp/v1/logs behind a prefix"),
            );
        }
        *path = given;
    }
    sink.headers = headers(c, opts);
    if sink.user.is_some()
        && sink
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        c.diagnostics.push(
            Diagnostic::new(
                opts.span("headers").unwrap_or(at),
                "both `user` (Basic auth) and an `authorization` header are set",
            )
            .hint("keep one: user/password for Basic, headers = { authorization = \"Bearer ...\" } for a token"),
        );
    }
    if let Some(header) = opts.str("stream_header") {
        if let Err(e) = check_headers(&[(header.clone(), "stream".into())]) {
            c.diagnostics.push(
                Diagnostic::new(opts.span("stream_header").unwrap_or(at), e.to_string())
                    .hint("a header name, e.g. stream-name (OpenObserve) or x-stream"),
            );
        }
        sink.stream_header = Some(header);
    }
    shared(c, opts, at, &mut sink);
    Some(sink)
}

/// An `elasticsearch` sink from its options; `None` without a `url`.
pub fn elasticsearch(
    c: &mut Compiler,
    name: &str,
    opts: &Options,
    written: &[Opt],
    at: Span,
) -> Option<ElasticsearchConfig> {
    let url = opts.str("url")?;
    connection_options::checked_urls(c, opts, written, at, &[("url", UrlRole::Prefix)]);
    let creds = connection_options::credentials(c, opts, url.trim_end_matches('/'), at);
    let mut es = ElasticsearchConfig::new(name, creds.url);
    es.user = creds.user;
    es.password = creds.password;
    es.headers = headers(c, opts);
    if let Some(index) = opts.str("index") {
        if index.is_empty() || index.contains(['\n', '"']) {
            c.diagnostics.push(
                Diagnostic::new(
                    opts.span("index").unwrap_or(at),
                    "option `index` must be a non-empty name without quotes or newlines",
                )
                .hint("e.g. index = \"logs-shipd\"; leave it out to use each route's stream"),
            );
        }
        es.index = Some(index);
    }
    shared(c, opts, at, &mut es.sink);
    Some(es)
}

/// `headers`: a map of header names to string values, checked for both
/// transports.
fn headers(c: &mut Compiler, opts: &Options) -> Vec<(String, String)> {
    let Some((OptVal::Map(map), span)) = opts.values.get("headers") else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map.iter() {
        match super::functions::text_of(value) {
            Some(text) => out.push((name.to_string(), text.into_owned())),
            None => c.diagnostics.push(
                Diagnostic::new(*span, format!("header `{name}` must be a string"))
                    .hint("e.g. headers = { \"x-scope-orgid\" = \"tenant-1\" }"),
            ),
        }
    }
    if let Err(e) = check_headers(&out) {
        c.diagnostics.push(Diagnostic::new(*span, e.to_string()).hint(
            "names are HTTP header names (sent lowercased as gRPC metadata), values printable ASCII; shipd sets content-type, content-encoding and grpc-* itself",
        ));
    }
    out
}

/// What every shipping sink shares.
fn shared(c: &mut Compiler, opts: &Options, at: Span, sink: &mut OtlpSinkConfig) {
    sink.tls = connection_options::client_tls(c, opts, at);
    if let Some(t) = opts.str("transport") {
        sink.transport = if t == "grpc" {
            TransportKind::Grpc
        } else {
            TransportKind::Http
        };
    }
    if let Some(comp) = opts.str("compression") {
        sink.compression = comp.parse().unwrap_or(sink.compression);
    }
    sink.batch = BatchLimits {
        max_events: opts
            .count("batch.max_events")
            .unwrap_or(sink.batch.max_events),
        max_bytes: opts
            .bytes("batch.max_bytes")
            .unwrap_or(sink.batch.max_bytes),
        timeout: opts.duration("batch.timeout").unwrap_or(sink.batch.timeout),
    };
    sink.in_flight = opts.count("in_flight").unwrap_or(sink.in_flight);
    sink.request_timeout = opts
        .duration("request_timeout")
        .unwrap_or(sink.request_timeout);
    sink.retry.max = opts.duration("retry_max").unwrap_or(sink.retry.max);
    sink.retry.auth = opts.duration("retry_auth").unwrap_or(sink.retry.auth);
    let spill = &mut sink.buffer;
    spill.max_bytes = opts.size("buffer.max_size").unwrap_or(spill.max_bytes);
    spill.segment_bytes = opts
        .size("buffer.segment_size")
        .unwrap_or(spill.segment_bytes);
    spill.sync_interval = opts
        .duration("buffer.sync_interval")
        .unwrap_or(spill.sync_interval);
    if let Some(policy) = opts.str("buffer.when_full") {
        spill.when_full = policy.parse().unwrap_or(spill.when_full);
    }
}
