//! The `multiline.*` options of the files, docker and cri sources, mapped
//! onto a [`MultilineConfig`]: start/continue/end patterns, state rules
//! (`multiline.rules`) or a preset, plus the timeout and size limits. Every
//! problem becomes a diagnostic pointing at the option; nothing here runs
//! per event.

use super::compile::Compiler;
use super::components::{OptVal, Options};
use super::diagnostics::{Diagnostic, Span};
use crate::event::{Map, Value};
use crate::sources::file::{
    multiline_preset, Boundaries, MultilineConfig, MultilineMode, RuleSpec, StateRules,
};

const RULES_HINT: &str = "e.g. multiline.rules = { start_state: [{ pattern: /^# Time:/, next: \"entry\" }], entry: [{ unless: /^# Time:/, next: \"entry\" }] }";

/// The multiline settings `opts` ask for, if any (`None` also when they are
/// wrong: a diagnostic then says why).
pub fn multiline(c: &mut Compiler, opts: &Options, at: Span) -> Option<MultilineConfig> {
    let patterns = ["multiline.start", "multiline.continue", "multiline.end"];
    let given: Vec<&str> = ["multiline.preset", "multiline.rules"]
        .into_iter()
        .chain(patterns)
        .filter(|k| opts.values.contains_key(*k))
        .collect();
    let exclusive = given
        .iter()
        .filter(|k| !patterns.contains(k))
        .chain(given.iter().find(|k| patterns.contains(k)))
        .count();
    if exclusive > 1 {
        let last = given.last().copied().unwrap_or("multiline.rules");
        c.diagnostics.push(
            Diagnostic::new(
                opts.span(last).unwrap_or(at),
                format!("set one of `multiline.preset`, `multiline.rules` or patterns (`multiline.start`/`continue`/`end`), not several: found {}", given.join(", ")),
            )
            .hint("a preset is a ready set of rules; write rules or patterns instead to change it"),
        );
        return None;
    }
    let mode = if let Some(name) = opts.str("multiline.preset") {
        // The option's choices are the preset names, checked already.
        multiline_preset(&name)?
    } else if let Some((value, span)) = opts.values.get("multiline.rules") {
        let OptVal::Map(map) = value else {
            return None;
        };
        match rules(map).and_then(|specs| StateRules::build(specs).map_err(|e| e.to_string())) {
            Ok(rules) => MultilineMode::States(rules),
            Err(msg) => {
                c.diagnostics.push(
                    Diagnostic::new(*span, format!("option `multiline.rules`: {msg}"))
                        .hint(RULES_HINT),
                );
                return None;
            }
        }
    } else {
        let mut regex = |key: &str| match opts.regex(key) {
            None => Ok(None),
            Some(p) => match regex::bytes::RegexBuilder::new(&p)
                .size_limit(1 << 20)
                .build()
            {
                Ok(re) => Ok(Some(re)),
                Err(e) => {
                    c.diagnostics.push(
                        Diagnostic::new(
                            opts.span(key).unwrap_or(at),
                            format!("option `{key}`: {e}"),
                        )
                        .hint("regexes use Rust `regex` syntax"),
                    );
                    Err(())
                }
            },
        };
        let b = Boundaries {
            start: regex("multiline.start").ok()?,
            continues: regex("multiline.continue").ok()?,
            end: regex("multiline.end").ok()?,
        };
        if b.start.is_none() && b.continues.is_none() && b.end.is_none() {
            return None;
        }
        MultilineMode::Patterns(b)
    };
    let mut m = MultilineConfig::new(mode);
    m.timeout = opts.duration("multiline.timeout").unwrap_or(m.timeout);
    m.max_lines = opts.count("multiline.max_lines").unwrap_or(m.max_lines);
    m.max_bytes = opts.bytes("multiline.max_bytes").unwrap_or(m.max_bytes);
    Some(m)
}

/// `{ state: [ { pattern, unless, next }, ... ], ... }` as rule specs.
fn rules(map: &Map) -> Result<Vec<(String, Vec<RuleSpec>)>, String> {
    map.iter()
        .map(|(state, rules)| {
            let Value::Array(rules) = rules else {
                return Err(format!("state `{state}` must be a list of rules"));
            };
            let specs = rules
                .iter()
                .map(|rule| rule_spec(state, rule))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((state.to_string(), specs))
        })
        .collect()
}

fn rule_spec(state: &str, rule: &Value) -> Result<RuleSpec, String> {
    let Value::Map(rule) = rule else {
        return Err(format!(
            "a rule of state `{state}` must be a map {{ pattern: /regex/, next: \"state\" }}"
        ));
    };
    let mut spec = RuleSpec {
        pattern: None,
        unless: None,
        next: String::new(),
    };
    for (key, value) in rule.iter() {
        let Value::String(text) = value else {
            return Err(format!(
                "`{key}` in a rule of state `{state}` must be a regex or a string"
            ));
        };
        let text = text.to_string();
        match &**key {
            "pattern" => spec.pattern = Some(text),
            "unless" => spec.unless = Some(text),
            "next" => spec.next = text,
            other => {
                return Err(format!(
                    "unknown key `{other}` in a rule of state `{state}` (rules take pattern, unless, next)"
                ))
            }
        }
    }
    if spec.next.is_empty() {
        return Err(format!(
            "a rule of state `{state}` needs `next` (the state after the line, `{}` ends the event)",
            StateRules::START_NAME
        ));
    }
    Ok(spec)
}
