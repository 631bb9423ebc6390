//! The environment a pipeline is loaded in: what `env("X")` and the
//! `SHIPD_*` fallbacks of the settings read. The agent and `shipctl check`
//! read the process environment; `shipctl test` loads with a fixed one (its
//! `--env` values and a test's own `env { ... }` block), so the shell's
//! variables never change what a test proves. It never writes the process
//! environment.

use std::collections::BTreeMap;

/// Where environment variables come from while loading a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Environment {
    /// The process's own environment.
    #[default]
    Process,
    /// Exactly these variables, nothing else.
    Fixed(BTreeMap<String, String>),
}

impl Environment {
    /// An environment with no variables at all.
    pub fn empty() -> Self {
        Environment::Fixed(BTreeMap::new())
    }

    /// An environment holding only `vars`.
    pub fn fixed<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        Environment::Fixed(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// The value of `var`; the language treats an empty value as unset.
    pub fn get(&self, var: &str) -> Option<String> {
        match self {
            Environment::Process => std::env::var(var).ok(),
            Environment::Fixed(vars) => vars.get(var).cloned(),
        }
        .filter(|v| !v.is_empty())
    }

    /// Whether `env("var")` yields a value.
    pub fn is_set(&self, var: &str) -> bool {
        self.get(var).is_some()
    }

    /// This environment with `vars` added (replacing variables of the same
    /// name); adding to the process environment copies it first.
    pub fn with(&self, vars: &[(String, String)]) -> Environment {
        let mut all = match self {
            Environment::Process => std::env::vars().collect(),
            Environment::Fixed(v) => v.clone(),
        };
        for (k, v) in vars {
            all.insert(k.clone(), v.clone());
        }
        Environment::Fixed(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_environment_sees_only_its_own_variables() {
        let env = Environment::fixed([("A", "1"), ("EMPTY", "")]);
        assert_eq!(env.get("A").as_deref(), Some("1"));
        assert_eq!(env.get("EMPTY"), None, "empty counts as unset");
        assert_eq!(env.get("PATH"), None, "the process environment stays out");
        let more = env.with(&[("B".into(), "2".into()), ("A".into(), "3".into())]);
        assert_eq!(more.get("A").as_deref(), Some("3"));
        assert_eq!(more.get("B").as_deref(), Some("2"));
    }
}
