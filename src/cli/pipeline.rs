//! Pipeline file commands: `check` (all diagnostics at once), `test` (the
//! file's own tests), `fmt` (canonical formatting) and `explain` (the
//! compiled topology).

use crate::lang::{self, testing};
use std::io::Write;
use std::path::Path;

/// Exit code for diagnostics or failed tests.
pub const FAILED: i32 = 1;
/// Exit code for unreadable input.
pub const UNUSABLE: i32 = 2;

fn read(path: &Path, err: &mut dyn Write) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Some(s),
        Err(e) => {
            let _ = writeln!(err, "{}: cannot read: {e}", path.display());
            None
        }
    }
}

/// Loads a file, printing its diagnostics on failure.
pub fn load(path: &Path, err: &mut dyn Write) -> Option<lang::Program> {
    load_with_text(path, err).map(|(p, _)| p)
}

/// [`load`], also giving the file's text.
fn load_with_text(path: &Path, err: &mut dyn Write) -> Option<(lang::Program, String)> {
    let src = read(path, err)?;
    match lang::load_file(&path.display().to_string(), &src) {
        Ok(p) => Some((p, src)),
        Err(d) => {
            let _ = write!(
                err,
                "{}",
                lang::render(&path.display().to_string(), &src, &d)
            );
            let _ = writeln!(err, "{}: {} error(s)", path.display(), d.len());
            None
        }
    }
}

/// `shipctl check FILE...`.
pub fn check(files: &[std::path::PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut code = 0;
    for f in files {
        match load_with_text(f, err) {
            Some((p, src)) => {
                let name = f.display().to_string();
                let _ = write!(err, "{}", lang::render_warnings(&name, &src, &p.warnings));
                let warnings = match p.warnings.len() {
                    0 => String::new(),
                    n => format!(", {n} warning(s)"),
                };
                let _ = writeln!(
                    out,
                    "{}: ok ({} sources, {} steps, {} sinks, {} tests{warnings})",
                    f.display(),
                    p.sources.len(),
                    p.steps.len(),
                    p.sink_names.len(),
                    p.tests.len()
                );
            }
            None => code = FAILED,
        }
    }
    code
}

/// `NAME=value` of `shipctl test --env`.
pub fn parse_env_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}`: write NAME=value")),
    }
}

/// `shipctl test [--env NAME=value]... FILE...`: the tests see only `env`
/// and their own `env { ... }` blocks.
pub fn test(
    files: &[std::path::PathBuf],
    env: &[(String, String)],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let env = lang::Environment::fixed(env.iter().cloned());
    let (mut passed, mut failed) = (0, 0);
    let mut code = 0;
    for f in files {
        let Some(src) = read(f, err) else {
            code = UNUSABLE;
            continue;
        };
        let reports = match testing::run_source(&src, &env) {
            Ok(reports) => reports,
            Err(d) => {
                let _ = write!(err, "{}", lang::render(&f.display().to_string(), &src, &d));
                let _ = writeln!(err, "{}: {} error(s)", f.display(), d.len());
                code = FAILED;
                continue;
            }
        };
        for report in reports {
            if report.passed() {
                passed += 1;
                let _ = writeln!(out, "ok    {}: {}", f.display(), report.name);
            } else {
                failed += 1;
                code = FAILED;
                let _ = writeln!(out, "FAIL  {}: {}", f.display(), report.name);
                for failure in &report.failures {
                    let _ = writeln!(out, "      {failure}");
                }
            }
        }
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    code
}

/// `shipctl fmt [--check] FILE...`.
pub fn fmt(
    files: &[std::path::PathBuf],
    check_only: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut code = 0;
    for f in files {
        let Some(src) = read(f, err) else {
            code = UNUSABLE;
            continue;
        };
        match lang::fmt::format(&src) {
            Ok(formatted) if formatted == src => {}
            Ok(formatted) if check_only => {
                let _ = writeln!(out, "{}: not formatted", f.display());
                let _ = formatted;
                code = FAILED;
            }
            Ok(formatted) => {
                if let Err(e) = std::fs::write(f, formatted) {
                    let _ = writeln!(err, "{}: cannot write: {e}", f.display());
                    code = UNUSABLE;
                } else {
                    let _ = writeln!(out, "{}: formatted", f.display());
                }
            }
            Err(d) => {
                let _ = write!(err, "{}", lang::render(&f.display().to_string(), &src, &d));
                code = FAILED;
            }
        }
    }
    code
}

/// `shipctl explain FILE`: see [`super::explain`].
pub fn explain(file: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some(src) = read(file, err) else {
        return UNUSABLE;
    };
    let Some(p) = load(file, err) else {
        return FAILED;
    };
    let _ = write!(out, "{}", super::explain::explain(&src, &p));
    0
}
