//! State-machine multiline rules: named states, each an ordered list of
//! rules (a pattern a line must match and/or one it must not, and the state
//! to go to). `start_state` decides which lines begin an event; the other
//! states decide which lines continue it. Built once when the pipeline
//! loads; matching a line never allocates. This module owns the rules only:
//! [`super::multiline::Aggregator`] applies them.

use regex::bytes::{Regex, RegexBuilder};

/// Why a set of rules was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RulesError {
    #[error("the rules need a `start_state` state (the lines that begin an event)")]
    NoStartState,
    #[error("state `{0}` is defined twice")]
    DuplicateState(String),
    #[error("state `{0}` has no rules")]
    EmptyState(String),
    #[error("a rule of state `{0}` needs `pattern` or `unless`")]
    NoPattern(String),
    #[error("a rule of state `{state}` goes to `{next}`, which is not a state")]
    UnknownNext { state: String, next: String },
    #[error("a rule of state `{state}` has an invalid regex: {error}")]
    BadRegex { state: String, error: String },
}

/// One rule as written: regex texts and the name of the next state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// The line must match this.
    pub pattern: Option<String>,
    /// The line must not match this.
    pub unless: Option<String>,
    pub next: String,
}

impl RuleSpec {
    /// Lines matching `pattern` go to `next`.
    pub fn pattern(pattern: &str, next: &str) -> Self {
        RuleSpec {
            pattern: Some(pattern.into()),
            unless: None,
            next: next.into(),
        }
    }

    /// Lines not matching `unless` go to `next`.
    pub fn unless(unless: &str, next: &str) -> Self {
        RuleSpec {
            pattern: None,
            unless: Some(unless.into()),
            next: next.into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Option<Regex>,
    unless: Option<Regex>,
    next: usize,
}

impl Rule {
    fn takes(&self, line: &[u8]) -> bool {
        self.pattern.as_ref().is_none_or(|re| re.is_match(line))
            && !self.unless.as_ref().is_some_and(|re| re.is_match(line))
    }
}

/// Compiled state rules; states are numbered, `start_state` is
/// [`StateRules::START`].
#[derive(Debug, Clone)]
pub struct StateRules {
    states: Vec<Vec<Rule>>,
}

impl StateRules {
    /// The number of `start_state`.
    pub const START: usize = 0;
    /// The state's name in the rules.
    pub const START_NAME: &'static str = "start_state";

    /// Compiles named states; rule order within a state is match order.
    pub fn build(states: Vec<(String, Vec<RuleSpec>)>) -> Result<StateRules, RulesError> {
        let mut names: Vec<&str> = Vec::with_capacity(states.len());
        let start = states
            .iter()
            .position(|(name, _)| name == Self::START_NAME)
            .ok_or(RulesError::NoStartState)?;
        names.push(Self::START_NAME);
        for (i, (name, _)) in states.iter().enumerate() {
            if i == start {
                continue;
            }
            if names.contains(&name.as_str()) {
                return Err(RulesError::DuplicateState(name.clone()));
            }
            names.push(name);
        }
        let mut compiled = vec![Vec::new(); states.len()];
        for (name, specs) in &states {
            if specs.is_empty() {
                return Err(RulesError::EmptyState(name.clone()));
            }
            let index = names
                .iter()
                .position(|n| *n == name.as_str())
                .unwrap_or(Self::START);
            for spec in specs {
                compiled[index].push(compile_rule(name, spec, &names)?);
            }
        }
        Ok(StateRules { states: compiled })
    }

    /// The state a line in `state` leads to, if a rule of `state` takes it.
    pub fn next_state(&self, state: usize, line: &[u8]) -> Option<usize> {
        self.states
            .get(state)?
            .iter()
            .find(|rule| rule.takes(line))
            .map(|rule| rule.next)
    }
}

fn compile_rule(state: &str, spec: &RuleSpec, names: &[&str]) -> Result<Rule, RulesError> {
    if spec.pattern.is_none() && spec.unless.is_none() {
        return Err(RulesError::NoPattern(state.into()));
    }
    let next =
        names
            .iter()
            .position(|n| *n == spec.next)
            .ok_or_else(|| RulesError::UnknownNext {
                state: state.into(),
                next: spec.next.clone(),
            })?;
    let regex = |p: &Option<String>| -> Result<Option<Regex>, RulesError> {
        p.as_deref()
            .map(|p| {
                RegexBuilder::new(p)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| RulesError::BadRegex {
                        state: state.into(),
                        error: e.to_string(),
                    })
            })
            .transpose()
    };
    Ok(Rule {
        pattern: regex(&spec.pattern)?,
        unless: regex(&spec.unless)?,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(states: &[(&str, Vec<RuleSpec>)]) -> Result<StateRules, RulesError> {
        StateRules::build(
            states
                .iter()
                .map(|(n, r)| (n.to_string(), r.clone()))
                .collect(),
        )
    }

    #[test]
    fn first_matching_rule_of_the_state_decides_the_next_state() {
        let rules = build(&[
            ("body", vec![RuleSpec::unless("^H", "body")]),
            (
                "start_state",
                vec![
                    RuleSpec::pattern("^HX", "start_state"),
                    RuleSpec::pattern("^H", "body"),
                ],
            ),
        ])
        .unwrap();
        assert_eq!(rules.next_state(StateRules::START, b"HX"), Some(0));
        assert_eq!(rules.next_state(StateRules::START, b"H1"), Some(1));
        assert_eq!(rules.next_state(StateRules::START, b"x"), None);
        assert_eq!(rules.next_state(1, b"x"), Some(1));
        assert_eq!(rules.next_state(1, b"H2"), None);
    }

    #[test]
    fn malformed_rules_are_refused_with_the_reason() {
        let no_start = build(&[("a", vec![RuleSpec::pattern("x", "a")])]);
        assert_eq!(no_start.unwrap_err(), RulesError::NoStartState);
        let unknown = build(&[("start_state", vec![RuleSpec::pattern("x", "nowhere")])]);
        assert_eq!(
            unknown.unwrap_err(),
            RulesError::UnknownNext {
                state: "start_state".into(),
                next: "nowhere".into()
            }
        );
        let empty = build(&[("start_state", vec![])]);
        assert_eq!(
            empty.unwrap_err(),
            RulesError::EmptyState("start_state".into())
        );
        let bare = RuleSpec {
            pattern: None,
            unless: None,
            next: "start_state".into(),
        };
        let no_pattern = build(&[("start_state", vec![bare])]);
        assert_eq!(
            no_pattern.unwrap_err(),
            RulesError::NoPattern("start_state".into())
        );
        let bad = build(&[("start_state", vec![RuleSpec::pattern("(", "start_state")])]);
        assert!(matches!(bad, Err(RulesError::BadRegex { .. })));
        let twice = build(&[
            ("start_state", vec![RuleSpec::pattern("x", "a")]),
            ("a", vec![RuleSpec::pattern("x", "a")]),
            ("a", vec![RuleSpec::pattern("y", "a")]),
        ]);
        assert_eq!(twice.unwrap_err(), RulesError::DuplicateState("a".into()));
    }
}
