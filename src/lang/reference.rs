//! The language reference, `docs/reference.md`, rendered from what the code
//! holds: every function of the registry ([`functions::FUNCTIONS`] and the
//! [`functions::SPECIAL`] forms) with its signature, fallibility,
//! description and tested [`examples`](functions::examples::EXAMPLES), and
//! every component kind of the option schema ([`components::KINDS`]) with
//! each option's type, whether it is required, its range and description.
//! It only renders: it knows no function or option of its own, so the file
//! can list nothing the code lacks and miss nothing it has
//! (`tests/reference.rs` compares the file with [`markdown`]).

use super::components::{KindSpec, OptSpec, OptTy, Role, KINDS};
use super::functions::examples::{Example, EXAMPLES};
use super::functions::{Function, SpecialForm, FUNCTIONS, SPECIAL};
use std::fmt::Write;

/// The command that rewrites `docs/reference.md` from the code.
pub const BLESS: &str = "SHIPD_BLESS=1 cargo test --test reference";

/// The whole reference, as `docs/reference.md` holds it.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "<!-- Generated from the function registry (src/lang/functions/mod.rs, \
         examples.rs) and the component schemas (src/lang/components.rs) by \
         src/lang/reference.rs: do not edit by hand. Regenerate with `{BLESS}`. -->\n\n"
    ));
    out.push_str(
        "# Pipeline language reference\n\n\
         Every standard function and every component kind with its options, \
         generated from the code (a test fails when this file and the code \
         differ). The [language guide](pipeline-language.md) explains how \
         they fit together; the [cookbook](cookbook.md) has tested recipes.\n\n\
         - [Functions](#functions)\n\
         - [Sources](#sources)\n\
         - [Sinks](#sinks)\n\
         - [Settings](#settings)\n\n",
    );
    functions(&mut out);
    components(&mut out);
    out
}

fn functions(out: &mut String) {
    out.push_str(
        "## Functions\n\n\
         A function marked *can fail* must be handled where it is called: \
         `f!(...)` fails the step when it fails, `f(...) ?? fallback` gives \
         the fallback, or the step declares `on_error`; `shipctl check` \
         refuses an unhandled call. `[name: type]` is an optional parameter; \
         arguments may also be given by name (`parse_csv!(.message, \
         delimiter: \";\")`). Each example call gives the value on its right: \
         every one runs as a test through the real compiler and evaluator.\n\n",
    );
    let mut names: Vec<&str> = FUNCTIONS
        .iter()
        .map(|f| f.name)
        .chain(SPECIAL.iter().map(|s| s.name))
        .collect();
    names.sort_unstable();
    let index: Vec<String> = names.iter().map(|n| format!("[`{n}`](#{n})")).collect();
    let _ = writeln!(out, "{}\n", index.join(" · "));
    for f in FUNCTIONS {
        function(out, f);
    }
    for s in SPECIAL {
        special(out, s);
    }
}

fn function(out: &mut String, f: &Function) {
    let _ = writeln!(out, "### {}\n", f.name);
    let _ = writeln!(out, "`{}`\n", super::compile::signature(f));
    let _ = writeln!(out, "{}\n", prose(f.doc));
    let at_load: Vec<String> = f
        .params
        .iter()
        .filter(|p| p.at_load)
        .map(|p| format!("`{}`", p.name))
        .collect();
    if !at_load.is_empty() {
        let _ = writeln!(
            out,
            "{} is read once, when the pipeline loads: write it as a literal.\n",
            at_load.join(", ")
        );
    }
    examples(out, f.name);
}

fn special(out: &mut String, s: &SpecialForm) {
    let _ = writeln!(out, "### {}\n", s.name);
    let _ = writeln!(
        out,
        "`{}({}) -> {}{}`\n",
        s.name,
        s.params,
        s.returns.describe(),
        if s.fallible { ", can fail" } else { "" }
    );
    let _ = writeln!(out, "{}\n", prose(s.doc));
    examples(out, s.name);
}

fn examples(out: &mut String, name: &str) {
    let rows: Vec<String> = EXAMPLES
        .iter()
        .filter(|e| e.function == name)
        .map(example_row)
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push_str("| call | gives |\n|---|---|\n");
    for row in rows {
        out.push_str(&row);
        out.push('\n');
    }
    out.push('\n');
}

/// The table row of one tested example: `` | `call` | `result` | ``.
pub fn example_row(e: &Example) -> String {
    format!("| `{}` | `{}` |", code_cell(e.call), code_cell(e.result))
}

/// Prose made safe inside a table cell.
fn cell(text: &str) -> String {
    code_cell(&prose(text))
}

/// `text` made safe inside a table cell, even in a code span: a `|` would
/// end the cell.
fn code_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `text` as Markdown shows it: a `<` outside code spans is escaped, so
/// `<id>` reads as text instead of vanishing as an HTML tag.
fn prose(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 0 {
                part.replace('<', "&lt;")
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

fn components(out: &mut String) {
    for (role, title, intro) in [
        (
            Role::Source,
            "Sources",
            "`source NAME = KIND { option = value, ... }`.",
        ),
        (
            Role::Sink,
            "Sinks",
            "`sink NAME = KIND { option = value, ... }`. Routes send events to sinks by name.",
        ),
        (
            Role::Settings,
            "Settings",
            "`settings { option = value, ... }`, at most once per file.",
        ),
    ] {
        let _ = writeln!(out, "## {title}\n\n{intro}\n");
        if role == Role::Source {
            out.push_str(
                "Option values are evaluated once, when the pipeline loads. \
                 `batch = { timeout = 1s }` is the same as `batch.timeout = 1s`. \
                 A range includes its bounds; a value outside it is refused \
                 at load, never clamped.\n\n",
            );
        }
        for kind in KINDS.iter().filter(|k| k.role == role) {
            component(out, kind);
        }
    }
}

fn component(out: &mut String, kind: &KindSpec) {
    match kind.role {
        Role::Settings => {}
        Role::Source => {
            let _ = writeln!(out, "### {} (source)\n", kind.name);
        }
        Role::Sink => {
            let _ = writeln!(out, "### {} (sink)\n", kind.name);
        }
    }
    let _ = writeln!(out, "{}\n", prose(kind.doc));
    out.push_str("| option | type | required | range | description |\n|---|---|---|---|---|\n");
    for opt in kind.options {
        option_row(out, opt);
    }
    out.push('\n');
}

fn option_row(out: &mut String, opt: &OptSpec) {
    let range = opt.range.map(|r| r.describe()).unwrap_or_default();
    let _ = writeln!(
        out,
        "| `{}` | {} | {} | {} | {} |",
        opt.name,
        option_type(opt.ty),
        if opt.required { "yes" } else { "" },
        range,
        cell(opt.doc)
    );
}

/// The type of an option as written in a pipeline.
fn option_type(ty: OptTy) -> String {
    match ty {
        OptTy::Str => "string".into(),
        OptTy::Strings => "list of strings".into(),
        OptTy::Int => "integer".into(),
        OptTy::Bool => "boolean".into(),
        OptTy::Duration => "duration".into(),
        OptTy::Size => "size".into(),
        OptTy::Regex => "regex".into(),
        OptTy::Choice(choices) => {
            let quoted: Vec<String> = choices.iter().map(|c| format!("`\"{c}\"`")).collect();
            quoted.join(", ")
        }
        OptTy::Map => "map".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_option_and_example_is_rendered() {
        let md = markdown();
        for f in FUNCTIONS {
            assert!(md.contains(&format!("\n### {}\n", f.name)), "{}", f.name);
        }
        for s in SPECIAL {
            assert!(md.contains(&format!("\n### {}\n", s.name)), "{}", s.name);
        }
        for e in EXAMPLES {
            assert!(md.contains(&example_row(e)), "{}", e.call);
        }
        for kind in KINDS {
            for opt in kind.options {
                assert!(md.contains(&format!("| `{}` |", opt.name)), "{}", opt.name);
            }
        }
    }

    #[test]
    fn a_pipe_inside_a_cell_is_escaped_and_code_is_kept() {
        let e = Example {
            function: "x",
            call: "a | b",
            result: "/(?<c>x)/",
        };
        assert_eq!(example_row(&e), "| `a \\| b` | `/(?<c>x)/` |");
    }

    #[test]
    fn an_angle_bracket_outside_code_is_escaped() {
        assert_eq!(prose("a <id> `b<c>`"), "a &lt;id> `b<c>`");
    }

    #[test]
    fn a_range_and_a_required_option_show_in_their_columns() {
        let md = markdown();
        assert!(md.contains("| `include` | list of strings | yes |  | globs of files to tail |"));
        assert!(md.contains("| `max_open_files` | integer |  | 1 to 65_536 |"));
        assert!(md.contains("| `read_from` | `\"beginning\"`, `\"end\"` |"));
    }
}
