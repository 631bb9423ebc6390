//! The connection options shared by components that open or accept network
//! connections: `tls.*` onto [`TlsOptions`] (files checked when the pipeline
//! loads, so `shipctl check` and a start report a bad path at its option),
//! and the OpenObserve credentials (`user`/`password`, `password_file`, or
//! userinfo in the URL, which is taken out of the URL here), and the
//! OpenObserve URLs' shape. Never puts a secret into a diagnostic.

use super::ast::Opt;
use super::compile::Compiler;
use super::components::Options;
use super::diagnostics::{Diagnostic, Span};
use super::option_range::{env_origin, origin_note};
use crate::credentials::split_userinfo;
use crate::sinks::openobserve::base_url::{self, UrlRole};
use crate::tls::TlsOptions;
use std::path::PathBuf;

/// `tls.ca_file`, `tls.cert_file`, `tls.key_file`, `tls.server_name` and
/// `tls.insecure_skip_verify`, checked.
pub fn client_tls(c: &mut Compiler, opts: &Options, at: Span) -> TlsOptions {
    let tls = TlsOptions {
        ca_file: opts.str("tls.ca_file").map(Into::into),
        cert_file: opts.str("tls.cert_file").map(Into::into),
        key_file: opts.str("tls.key_file").map(Into::into),
        server_name: opts.str("tls.server_name"),
        insecure_skip_verify: opts.bool("tls.insecure_skip_verify").unwrap_or(false),
    };
    if !tls.is_default() {
        if let Err(e) = tls.validate() {
            c.diagnostics.push(
                Diagnostic::new(tls_span(opts, at), e.to_string()).hint(
                    "tls.ca_file, tls.cert_file and tls.key_file name PEM files shipd can read",
                ),
            );
        }
    }
    tls
}

/// A receiver's `tls.cert_file` + `tls.key_file`, checked; `None` for
/// plain text.
pub fn server_tls(c: &mut Compiler, opts: &Options, at: Span) -> Option<(PathBuf, PathBuf)> {
    let cert = opts.str("tls.cert_file");
    let key = opts.str("tls.key_file");
    let (cert, key): (PathBuf, PathBuf) = match (cert, key) {
        (Some(cert), Some(key)) => (cert.into(), key.into()),
        (None, None) => return None,
        _ => {
            c.diagnostics.push(
                Diagnostic::new(
                    tls_span(opts, at),
                    "tls.cert_file and tls.key_file go together",
                )
                .hint("give both to serve TLS, or neither for plain text"),
            );
            return None;
        }
    };
    if let Err(e) = crate::tls::server_config(&cert, &key, &[]) {
        c.diagnostics.push(
            Diagnostic::new(tls_span(opts, at), e.to_string())
                .hint("a PEM certificate chain and its PEM private key"),
        );
    }
    Some((cert, key))
}

fn tls_span(opts: &Options, at: Span) -> Span {
    opts.values
        .iter()
        .find(|(k, _)| k.starts_with("tls."))
        .map(|(_, (_, span))| *span)
        .unwrap_or(at)
}

/// Basic-auth credentials of a sink and its URL without userinfo.
pub struct Credentials {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// `user`, `password` and `password_file` options, falling back to the
/// userinfo of `url` (which is always taken out of the URL).
pub fn credentials(c: &mut Compiler, opts: &Options, url: &str, at: Span) -> Credentials {
    let split = split_userinfo(url);
    let user = opts.str("user").or(split.user);
    let mut password = opts.str("password").or(split.password);
    if password.is_none() {
        if let Some(path) = opts.str("password_file").filter(|p| !p.trim().is_empty()) {
            match std::fs::read_to_string(&path) {
                Ok(text) => password = Some(text.trim_end_matches(['\n', '\r']).to_owned()),
                Err(e) => c.diagnostics.push(
                    Diagnostic::new(
                        opts.span("password_file").unwrap_or(at),
                        format!("cannot read the password file {path}: {e}"),
                    )
                    .hint("password_file (OPENOBSERVE_PASSWORD_FILE in the default pipeline) must name a file shipd can read"),
                ),
            }
        }
    }
    Credentials {
        url: split.url,
        user,
        password,
    }
}

/// `url` and `grpc_url` of an OpenObserve sink, checked
/// ([`crate::sinks::openobserve::base_url`]): a refusal names the option and
/// the environment variable its value came from.
pub fn openobserve_urls(c: &mut Compiler, opts: &Options, written: &[Opt], at: Span) {
    checked_urls(
        c,
        opts,
        written,
        at,
        &[("url", UrlRole::Http), ("grpc_url", UrlRole::Grpc)],
    );
}

/// Checks each URL option given for its role, as [`openobserve_urls`].
pub fn checked_urls(
    c: &mut Compiler,
    opts: &Options,
    written: &[Opt],
    at: Span,
    roles: &[(&str, UrlRole)],
) {
    for &(option, role) in roles {
        let Some(url) = opts.str(option) else {
            continue;
        };
        if let Err(e) = base_url::check(url.trim(), role) {
            let vars = written
                .iter()
                .find(|o| o.key.name == option)
                .map(|o| env_origin(&c.env, &o.value))
                .unwrap_or_default();
            c.diagnostics.push(
                Diagnostic::new(
                    opts.span(option).unwrap_or(at),
                    format!("option `{option}`{} {e}", origin_note(&c.env, &vars, false)),
                )
                .hint(e.hint()),
            );
        }
    }
}
