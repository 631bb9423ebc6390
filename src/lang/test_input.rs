//! What a `test` block declares besides its expectations: its environment
//! (`env { NAME = "value" }`) and its raw-line inputs
//! (`input SOURCE lines [...]`), which go through the named source's own
//! framing ([`crate::sources::file::framing`]: docker/CRI decoding,
//! multiline joining) so a test sees the events the source would make.

use super::ast::{Expr, Ident, Opt};
use super::compile::Compiler;
use super::components::const_value;
use super::diagnostics::Diagnostic;
use crate::config::SourceConfig;
use crate::event::{Event, Value};
use crate::sources::file::framing;

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

/// The events `source` makes of the raw `lines` (an array of strings).
pub fn framed_events(
    c: &mut Compiler,
    source: &Ident,
    lines: &Expr,
    configs: &[SourceConfig],
) -> Vec<Event> {
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
            let (records, _) = framing::frame_text(cfg, text.into());
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
