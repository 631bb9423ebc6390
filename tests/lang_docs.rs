//! The language guide documents every standard function and multiline
//! option, the generated reference shows every tested example, and every
//! example pipeline passes its own tests.

#[test]
fn every_standard_function_is_in_the_reference() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/pipeline-language.md"
    ))
    .unwrap();
    for name in shipd::lang::functions::names() {
        assert!(
            doc.contains(&format!("`{name}(")),
            "docs/pipeline-language.md lacks `{name}`"
        );
    }
}

#[test]
fn every_example_pipeline_checks_without_warnings_and_passes_its_tests() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines")).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        // The tests see only their own environment, whatever the shell's.
        let no_env = shipd::lang::Environment::empty();
        let reports = shipd::lang::testing::run_source(&src, &no_env).unwrap_or_else(|d| {
            panic!(
                "{}",
                shipd::lang::render(&path.display().to_string(), &src, &d)
            )
        });
        assert!(!reports.is_empty(), "{} has tests", path.display());
        // An example shows good practice: `check` has nothing to warn about.
        let program = shipd::lang::load_in(&src, no_env.clone()).unwrap_or_else(|d| {
            panic!(
                "{}",
                shipd::lang::render(&path.display().to_string(), &src, &d)
            )
        });
        assert!(
            program.warnings.is_empty(),
            "{}",
            shipd::lang::render_warnings(&path.display().to_string(), &src, &program.warnings)
        );
        for report in reports {
            assert!(
                report.passed(),
                "{}: {}: {:?}",
                path.display(),
                report.name,
                report.failures
            );
        }
    }
}

#[test]
fn every_multiline_option_and_preset_is_in_the_reference() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/pipeline-language.md"
    ))
    .unwrap();
    let section = doc
        .split("### Multiline")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("docs/pipeline-language.md has a Multiline section");
    for kind in shipd::lang::components::KINDS {
        for opt in kind
            .options
            .iter()
            .filter(|o| o.name.starts_with("multiline."))
        {
            assert!(
                section.contains(&format!("`{}`", opt.name)),
                "the Multiline section lacks `{}` (of `{}`)",
                opt.name,
                kind.name
            );
        }
    }
    for preset in shipd::sources::file::MULTILINE_PRESETS {
        assert!(
            section.contains(&format!("| `{preset}` |")),
            "the presets table lacks `{preset}`"
        );
    }
}

/// The generated reference (docs/reference.md) shows every tested example
/// (they run as tests in `shipd::lang::functions::examples`) with its result.
#[test]
fn every_function_example_is_in_the_reference() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference.md")).unwrap();
    let missing: Vec<String> = shipd::lang::functions::examples::EXAMPLES
        .iter()
        .map(shipd::lang::reference::example_row)
        .filter(|row| !doc.contains(row.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/reference.md lacks these example rows (regenerate it with `{}`):\n{}",
        shipd::lang::reference::BLESS,
        missing.join("\n")
    );
}
