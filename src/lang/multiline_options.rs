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

#[cfg(test)]
mod tests {
    use crate::config::SourceConfig;
    use crate::lang::components::{kind, OptTy, Role};
    use crate::sources::file::{join_lines, MultilineConfig, MULTILINE_PRESETS};

    fn pipeline(kind: &str, options: &str) -> String {
        let required = if kind == "files" {
            "include = [\"/nonexistent-shipd-test/*.log\"], "
        } else {
            ""
        };
        format!(
            "source s = {kind} {{ {required}{options} }}\nsink out = console {{}}\nroute {{ else => out }}\n"
        )
    }

    fn multiline_of(kind: &str, options: &str) -> Option<MultilineConfig> {
        let program = crate::lang::load(&pipeline(kind, options)).unwrap_or_else(|d| {
            panic!(
                "{options}: {:?}",
                d.iter().map(|d| &d.message).collect::<Vec<_>>()
            )
        });
        match program.agent.sources.into_iter().next() {
            Some(SourceConfig::File(f)) => f.multiline,
            other => panic!("not a file source: {other:?}"),
        }
    }

    fn errors_of(options: &str) -> Vec<String> {
        match crate::lang::load(&pipeline("files", options)) {
            Ok(_) => Vec::new(),
            Err(d) => d.into_iter().map(|d| d.message).collect(),
        }
    }

    fn group(cfg: MultilineConfig, text: &str) -> Vec<String> {
        join_lines(cfg, text.lines())
    }

    const SLOW: &str = "# Time: 261205  3:40:01\n# User@Host: a[a] @ localhost []\nSELECT 1;\n# User@Host: b[b] @ localhost []\nSELECT 2;\n";

    #[test]
    fn state_rules_written_in_the_pipeline_group_a_slow_log() {
        let rules = r#"multiline.rules = {
            start_state: [ { pattern: /^# Time:/, next: "time" }, { pattern: /^# User@Host:/, next: "entry" } ],
            time: [ { pattern: /^# User@Host:/, next: "entry" } ],
            entry: [ { unless: /^# (Time|User@Host):/, next: "entry" } ]
        }, multiline.timeout = 2s"#;
        let cfg = multiline_of("files", rules).expect("multiline on");
        assert_eq!(cfg.timeout, std::time::Duration::from_secs(2));
        assert_eq!(
            group(cfg, SLOW),
            [
                "# Time: 261205  3:40:01\n# User@Host: a[a] @ localhost []\nSELECT 1;",
                "# User@Host: b[b] @ localhost []\nSELECT 2;"
            ]
        );
    }

    #[test]
    fn preset_on_a_container_source_sets_its_rules() {
        for kind in ["docker", "cri"] {
            let cfg = multiline_of(
                kind,
                "multiline.preset = \"mariadb_slow\", multiline.max_lines = 3",
            )
            .expect("multiline on");
            assert_eq!(cfg.max_lines, 3);
            assert_eq!(group(cfg, SLOW).len(), 2, "{kind}");
        }
    }

    #[test]
    fn start_continue_and_end_are_accepted_together() {
        let cfg = multiline_of(
            "files",
            "multiline.start = /^BEGIN/, multiline.continue = /^\\s/, multiline.end = /^\\s+END$/",
        )
        .expect("multiline on");
        assert_eq!(
            group(cfg, "BEGIN\n  a\n  END\n  b\n"),
            ["BEGIN\n  a\n  END", "  b"]
        );
        assert!(
            multiline_of("files", "multiline.timeout = 2s").is_none(),
            "limits alone turn nothing on"
        );
    }

    #[test]
    fn a_preset_with_patterns_or_rules_is_refused() {
        let errors = errors_of("multiline.preset = \"java\", multiline.start = /^x/");
        assert!(
            errors.iter().any(|e| e.contains("not several")),
            "{errors:?}"
        );
        let errors = errors_of("multiline.rules = { start_state: [{ pattern: /x/, next: \"start_state\" }] }, multiline.end = /y/");
        assert!(
            errors.iter().any(|e| e.contains("not several")),
            "{errors:?}"
        );
        assert!(errors_of("multiline.start = /^x/, multiline.continue = /^y/").is_empty());
    }

    #[test]
    fn malformed_rules_are_refused_with_what_is_wrong() {
        let cases = [
            (
                "{ entry: [{ pattern: /x/, next: \"entry\" }] }",
                "start_state",
            ),
            (
                "{ start_state: [{ pattern: /x/, next: \"nowhere\" }] }",
                "`nowhere`, which is not a state",
            ),
            ("{ start_state: [{ pattern: /x/ }] }", "needs `next`"),
            (
                "{ start_state: [{ next: \"start_state\" }] }",
                "needs `pattern` or `unless`",
            ),
            (
                "{ start_state: [{ patern: /x/, next: \"start_state\" }] }",
                "unknown key `patern`",
            ),
            (
                "{ start_state: { pattern: /x/ } }",
                "must be a list of rules",
            ),
            ("{ start_state: [\"x\"] }", "must be a map"),
            (
                "{ start_state: [{ pattern: \"(\", next: \"start_state\" }] }",
                "invalid regex",
            ),
        ];
        for (rules, wanted) in cases {
            let errors = errors_of(&format!("multiline.rules = {rules}"));
            assert!(
                errors.iter().any(|e| e.contains(wanted)),
                "{rules}: wanted `{wanted}` in {errors:?}"
            );
        }
    }

    #[test]
    fn preset_choices_are_the_built_in_presets() {
        for source in ["files", "docker", "cri"] {
            let spec = kind(source, Role::Source).expect("a source kind");
            let preset = spec.options.iter().find(|o| o.name == "multiline.preset");
            match preset.map(|o| o.ty) {
                Some(OptTy::Choice(choices)) => assert_eq!(choices, MULTILINE_PRESETS, "{source}"),
                other => panic!("{source}: multiline.preset is {other:?}"),
            }
        }
    }
}
