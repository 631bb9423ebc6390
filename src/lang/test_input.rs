//! What a `test` block declares besides its expectations: its environment
//! (`env { NAME = "value" }`) and its raw-line inputs
//! (`input SOURCE lines [...] [from "PATH"]`), which go through the named
//! source's own framing ([`crate::sources::file::framing`]: docker/CRI
//! decoding, multiline joining) so a test sees the events the source would
//! make; `from` gives them the resource the source derives from a file's
//! path (the pod and namespace of a CRI log, say).

use super::ast::{Expr, Ident, Opt};
use super::compile::Compiler;
use super::components::const_value;
use super::diagnostics::Diagnostic;
use crate::config::SourceConfig;
use crate::event::{Event, Resource, Value};
use crate::sources::file::{file_resource_attributes, framing};
use std::path::Path;
use std::sync::Arc;

/// The variables of a test's `env` blocks, each a string.
pub fn environment(c: &mut Compiler, opts: &[Opt]) -> Vec<(String, String)> {
    let mut vars = Vec::with_capacity(opts.len());
    for opt in opts {
        match const_value(c, &opt.value) {
            Ok(Value::String(s)) => vars.push((opt.key.name.clone(), s.to_string())),
            Ok(Value::Bytes(b)) => vars.push((
                opt.key.name.clone(),
                String::from_utf8_lossy(&b).into_owned(),
            )),
            Ok(_) => c.diagnostics.push(
                Diagnostic::new(
                    opt.value.span,
                    format!("environment variable `{}` must be a string", opt.key.name),
                )
                .hint("write `NAME = \"value\"`"),
            ),
            Err(msg) if msg.is_empty() => {}
            Err(msg) => c.diagnostics.push(Diagnostic::new(
                opt.value.span,
                format!("environment variable `{}`: {msg}", opt.key.name),
            )),
        }
    }
    vars
}

/// The events `source` makes of the raw `lines` (an array of strings), read
/// from the file at `path` when one is given.
pub fn framed_events(
    c: &mut Compiler,
    source: &Ident,
    lines: &Expr,
    path: Option<&Expr>,
    configs: &[SourceConfig],
) -> Vec<Event> {
    let path = match path.map(|p| (p, const_value(c, p))) {
        None => None,
        Some((_, Ok(Value::String(s)))) => Some(s.to_string()),
        Some((p, Ok(_))) => {
            c.diagnostics.push(
                Diagnostic::new(p.span, "`from` takes the path of the file as a string")
                    .hint("write `input SOURCE lines [\"...\"] from \"/var/log/app.log\"`"),
            );
            return Vec::new();
        }
        Some((p, Err(msg))) => {
            if !msg.is_empty() {
                c.diagnostics
                    .push(Diagnostic::new(p.span, format!("input path: {msg}")));
            }
            return Vec::new();
        }
    };
    let text = match const_value(c, lines) {
        Ok(Value::Array(items)) => {
            let mut text = Vec::new();
            for item in &items {
                match item {
                    Value::String(s) => text.extend_from_slice(s.as_bytes()),
                    Value::Bytes(b) => text.extend_from_slice(b),
                    _ => {
                        c.diagnostics.push(
                            Diagnostic::new(lines.span, "every input line must be a string")
                                .hint("write `lines [\"first line\", \"second line\"]`"),
                        );
                        return Vec::new();
                    }
                }
                text.push(b'\n');
            }
            text
        }
        Ok(_) => {
            c.diagnostics.push(
                Diagnostic::new(lines.span, "`lines` takes an array of strings")
                    .hint("write `input SOURCE lines [\"first line\", \"second line\"]`"),
            );
            return Vec::new();
        }
        Err(msg) => {
            if !msg.is_empty() {
                c.diagnostics
                    .push(Diagnostic::new(lines.span, format!("input lines: {msg}")));
            }
            return Vec::new();
        }
    };
    match configs.iter().find(|s| s.name() == source.name) {
        Some(SourceConfig::File(cfg)) => {
            let (mut records, _) = framing::frame_text(cfg, text.into());
            if let Some(path) = path {
                let resource = Arc::new(Resource {
                    attributes: file_resource_attributes(cfg, Path::new(&path)),
                });
                for r in &mut records {
                    r.resource = Arc::clone(&resource);
                }
            }
            if records.is_empty() {
                c.diagnostics.push(
                    Diagnostic::new(lines.span, "these lines make no event").hint(
                        "the source leaves empty lines out; give it at least one non-empty line",
                    ),
                );
            }
            records.into_iter().map(Event::Log).collect()
        }
        Some(_) => {
            c.diagnostics.push(
                Diagnostic::new(
                    source.span,
                    format!("source `{}` reads no lines", source.name),
                )
                .hint("`lines` inputs go through the framing of a `files`, `docker` or `cri` source; give this source an event: `input SOURCE { message = \"...\" }`"),
            );
            Vec::new()
        }
        // An unknown source is reported by the caller; a disabled one has no framing.
        None => Vec::new(),
    }
}
