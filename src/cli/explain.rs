//! `shipctl explain`: everything that decides what happens to an event of
//! a loaded pipeline, in the order it happens — each source with its
//! options (as written, with the environment variables they read as they
//! are now; secrets never: secret options hidden, URLs without
//! credentials, secret variables only as "set"), each step with the sources it applies to, its `where`, its
//! `on_error` and its statements, the routes with the sink that is in
//! effect and the stream (computed ones as their expression), the
//! `dead_letter` route, the sinks and the routing settings. It reads the
//! pipeline text and the loaded [`Program`]; it changes nothing.

use crate::lang::ast::{self, Item, OnError, Opt};
use crate::lang::option_range::env_vars;
use crate::lang::{parse, Environment, Program};
use std::fmt::Write;

/// The text of `span` on one line: its lines trimmed and joined with a space.
fn text(src: &str, span: crate::lang::diagnostics::Span) -> String {
    src.get(span.start..span.end)
        .unwrap_or("?")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a name (option or variable) holds a secret: its value is never shown.
fn secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "token", "secret", "key"]
        .iter()
        .any(|s| name.contains(s))
}

/// `key = written`, then the environment variables it reads as they are
/// now (secrets only as "set", URLs without credentials).
fn option_line(out: &mut String, src: &str, env: &Environment, opt: &Opt) {
    let written = if secret(&opt.key.name) {
        "(hidden)".to_owned()
    } else {
        without_userinfo(&text(src, opt.value.span))
    };
    let _ = write!(out, "    {} = {written}", opt.key.name);
    let vars: Vec<String> = env_vars(&opt.value)
        .into_iter()
        .map(|var| match env.get(&var) {
            None => format!("{var} unset"),
            Some(_) if secret(&var) || secret(&opt.key.name) => format!("{var} set"),
            Some(v) if v.contains("://") => {
                format!("{var}={:?}", crate::credentials::redact_url(&v))
            }
            Some(v) => format!("{var}={v:?}"),
        })
        .collect();
    if !vars.is_empty() {
        let _ = write!(out, "   ({})", vars.join(", "));
    }
    out.push('\n');
}

/// `text` with the `user:password@` of every URL in it taken out.
fn without_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '"' || c.is_whitespace())
            .unwrap_or(tail.len());
        rest = match tail[..authority_end].rfind('@') {
            Some(userinfo_end) => &tail[userinfo_end + 1..],
            None => tail,
        };
    }
    out.push_str(rest);
    out
}

fn policy(on_error: Option<(OnError, crate::lang::diagnostics::Span)>) -> &'static str {
    match on_error.map(|(p, _)| p) {
        None => "dead_letter (default): a failed event goes to the dead_letter route, or is dropped and counted when there is none",
        Some(OnError::Abort) => "dead_letter: a failed event goes to the dead_letter route, or is dropped and counted when there is none",
        Some(OnError::Keep) => "keep: the step's writes are undone and the event goes on",
        Some(OnError::Drop) => "drop: the event is dropped and counted",
        Some(OnError::Tag) => "tag: the step's writes are undone, shipd.error is set and the event goes on",
    }
}

/// The explanation of `program`, loaded from `src`.
pub fn explain(src: &str, program: &Program) -> String {
    let env = Environment::Process;
    let (file, _) = parse::parse(src);
    let running_sources: Vec<&str> = program.agent.sources.iter().map(|s| s.name()).collect();
    let mut out = String::new();

    out.push_str("sources:\n");
    for item in &file.items {
        let Item::Source(c) = item else { continue };
        let state = if running_sources.contains(&c.name.name.as_str()) {
            ""
        } else {
            ", not running (disabled or unavailable)"
        };
        let _ = writeln!(out, "  {} ({}{state})", c.name.name, c.kind.name);
        for opt in &c.options {
            option_line(&mut out, src, &env, opt);
        }
    }

    out.push_str("steps, in order (an event goes through each step of its source):\n");
    for item in &file.items {
        let Item::Step(step) = item else { continue };
        let on = if step.sources.is_empty() {
            "every source".to_owned()
        } else {
            step.sources
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "  {} on {on}", step.name.name);
        match &step.condition {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "    where {} (other events skip the step)",
                    text(src, c.span)
                );
            }
            None => out.push_str("    where: every event of those sources\n"),
        }
        let _ = writeln!(out, "    on_error {}", policy(step.on_error));
        for stmt in &step.body {
            let span = match stmt {
                ast::Stmt::Assign { span, .. }
                | ast::Stmt::Drop { span, .. }
                | ast::Stmt::Let { span, .. } => *span,
                ast::Stmt::Expr(e) => e.span,
            };
            let _ = writeln!(out, "    | {}", text(src, span));
        }
    }

    out.push_str("routes, first match wins:\n");
    for r in &program.routes {
        let _ = writeln!(out, "  {r}");
    }
    if !program.routes.iter().any(|r| r.starts_with("dead_letter ")) {
        out.push_str("  (no dead_letter route: events of failed steps are dropped and counted)\n");
    }

    out.push_str("sinks:\n");
    for item in &file.items {
        let Item::Sink(c) = item else { continue };
        let state = if program.sink_names.contains(&c.name.name) {
            ""
        } else {
            ", disabled: its routes fall through to the next sink named"
        };
        let _ = writeln!(out, "  {} ({}{state})", c.name.name, c.kind.name);
        for opt in &c.options {
            option_line(&mut out, src, &env, opt);
        }
    }

    let settings: Vec<&Opt> = file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Settings(opts, _) => Some(opts.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    if !settings.is_empty() {
        out.push_str("settings:\n");
        for opt in settings {
            option_line(&mut out, src, &env, opt);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = r#"
source web = files { include = ["/var/log/web.log"], multiline.start = /^\S/ }
step parse on web where .message != "" on_error tag {
  .http = parse_nginx(.message)
  drop where .http.path == "/healthz"
  .http = map_values(.http, |v| if is_string(v) {
    redact(v, [email])
  } else { v })
}
step enrich {
  .level = "info"
}
sink o2 = openobserve { url = "http://root:pw1@o2:5080/x", password = env("EXPLAIN_TEST_SECRET") ?? "hunter2", enabled = false }
sink out = console {}
route {
  .level == "error" => o2 or out stream "errors"
  else => out stream "web_" + (.http.method ?? "none")
}
test "t" { input web { message = "x" } expect { .level == "info" } }
"#;

    #[test]
    fn explain_shows_conditions_policies_options_and_computed_streams() {
        let program = crate::lang::load(PIPELINE).unwrap();
        let text = explain(PIPELINE, &program);
        for want in [
            "  web (files)\n    include = [\"/var/log/web.log\"]\n    multiline.start = /^\\S/\n",
            "  parse on web\n    where .message != \"\" (other events skip the step)\n    on_error tag:",
            "    | .http = parse_nginx(.message)\n    | drop where .http.path == \"/healthz\"\n",
            "    | .http = map_values(.http, |v| if is_string(v) { redact(v, [email]) } else { v })\n",
            "  enrich on every source\n    where: every event of those sources\n    on_error dead_letter (default)",
            ".level == \"error\" => out stream \"errors\"",
            "else => out stream \"web_\" + (.http.method ?? \"none\")",
            "(no dead_letter route",
            "  o2 (openobserve, disabled",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(!text.contains("(computed)"), "{text}");
        assert!(
            text.contains("    password = (hidden)   (EXPLAIN_TEST_SECRET unset)\n"),
            "{text}"
        );
        assert!(text.contains("    url = \"http://o2:5080/x\"\n"), "{text}");
        assert!(!text.contains("hunter2") && !text.contains("pw1"), "{text}");
    }
}
