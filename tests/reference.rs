//! docs/reference.md is exactly what the function registry and the component
//! schemas hold: regenerated here and compared, so the reference lists no
//! function or option the code lacks and misses none it has.
//! `SHIPD_BLESS=1 cargo test --test reference` rewrites it after a change.

use shipd::lang::components::KINDS;
use shipd::lang::functions::{names, FUNCTIONS};
use std::collections::BTreeSet;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference.md");

fn on_disk() -> String {
    std::fs::read_to_string(PATH).unwrap_or_default()
}

/// Where two texts first differ: the line number and both lines.
fn first_difference(expected: &str, found: &str) -> String {
    let mut expected_lines = expected.lines();
    let mut found_lines = found.lines();
    for n in 1.. {
        match (expected_lines.next(), found_lines.next()) {
            (None, None) => break,
            (e, f) if e != f => {
                return format!(
                    "line {n}:\n  generated: {}\n  in file:   {}",
                    e.unwrap_or("(end of text)"),
                    f.unwrap_or("(end of file)")
                )
            }
            _ => {}
        }
    }
    "only in trailing whitespace".into()
}

#[test]
fn the_reference_is_what_the_registry_and_schemas_hold() {
    let generated = shipd::lang::reference::markdown();
    let file = on_disk();
    if generated == file {
        return;
    }
    if std::env::var_os("SHIPD_BLESS").is_some() {
        std::fs::write(PATH, &generated).unwrap();
        return;
    }
    panic!(
        "docs/reference.md differs from what the code holds, first at {}\n\
         Regenerate it with `{}` and commit the result.",
        first_difference(&generated, &file),
        shipd::lang::reference::BLESS
    );
}

/// Function names of the file's `### name` headings under `## Functions`.
fn documented_functions(doc: &str) -> BTreeSet<String> {
    let section = doc
        .split("\n## Functions\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap_or_default();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(str::to_owned)
        .collect()
}

/// (kind heading, option) of every option row in the file.
fn documented_options(doc: &str) -> BTreeSet<(String, String)> {
    let mut kind = String::new();
    let mut out = BTreeSet::new();
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            kind = heading.to_owned();
        } else if line == "## Settings" {
            kind = "settings".into();
        } else if let Some(rest) = line.strip_prefix("| `") {
            if let Some((name, _)) = rest.split_once("` |") {
                // Example rows start with a call, option rows with a name.
                if !name.contains('(') {
                    out.insert((kind.clone(), name.to_owned()));
                }
            }
        }
    }
    out
}

/// Both directions, read from the file as committed: every function and
/// option of the code is documented, and nothing else is.
#[test]
fn the_reference_lists_every_function_and_option_and_nothing_else() {
    // While blessing, the file is being rewritten from the generated text.
    let doc = if std::env::var_os("SHIPD_BLESS").is_some() {
        shipd::lang::reference::markdown()
    } else {
        on_disk()
    };
    let code_functions: BTreeSet<String> = names().map(str::to_owned).collect();
    let doc_functions = documented_functions(&doc);
    let missing: Vec<_> = code_functions.difference(&doc_functions).collect();
    let extra: Vec<_> = doc_functions.difference(&code_functions).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "functions missing from docs/reference.md: {missing:?}; documented but not in the code: {extra:?}"
    );
    assert!(FUNCTIONS.len() < code_functions.len(), "special forms too");

    let code_options: BTreeSet<(String, String)> = KINDS
        .iter()
        .flat_map(|k| {
            let heading = match k.role {
                shipd::lang::components::Role::Source => format!("{} (source)", k.name),
                shipd::lang::components::Role::Sink => format!("{} (sink)", k.name),
                shipd::lang::components::Role::Settings => k.name.to_owned(),
            };
            k.options
                .iter()
                .map(move |o| (heading.clone(), o.name.to_owned()))
        })
        .collect();
    let doc_options = documented_options(&doc);
    let missing: Vec<_> = code_options.difference(&doc_options).collect();
    let extra: Vec<_> = doc_options.difference(&code_options).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "options missing from docs/reference.md: {missing:?}; documented but not in the code: {extra:?}"
    );
}

#[test]
fn a_difference_is_shown_at_its_first_line() {
    assert_eq!(
        first_difference("a\nb\nc", "a\nx\nc"),
        "line 2:\n  generated: b\n  in file:   x"
    );
    assert!(first_difference("a\nb", "a").contains("(end of file)"));
}
