//! `shipctl check` warnings: a file that runs but would lose events unseen
//! passes with a located warning; correct files stay quiet.

use std::process::Command;

/// Exit code, stdout and stderr of `shipctl check NAME` on `src`.
fn check(name: &str, src: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), src).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shipctl"))
        .arg("check")
        .arg(name)
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HEADER: &str = "source web = files { include = [\"/var/log/nginx/*.log\"] }\nsink out = console {}\nsink dead = console {}\n";

#[test]
fn a_step_that_can_fail_without_a_dead_letter_route_is_a_warning_not_an_error() {
    let src = format!(
        "{HEADER}step parse on web {{\n  .n = to_int!(.message)\n}}\nstep ms on web {{\n  .ms = (.n ?? 0) * 1000\n}}\nstep quiet on web {{\n  .seen = true\n}}\nroute {{ else => out }}\n"
    );
    let (code, out, err) = check("lossy.ship", &src);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 warning(s)"), "{out}");
    insta::assert_snapshot!(err);
}

#[test]
fn a_dead_letter_route_or_on_error_silences_the_warning() {
    let failing = "step parse on web {\n  .n = to_int!(.message)\n}\n";
    let with_dead_letter =
        format!("{HEADER}{failing}route {{\n  else => out\n  dead_letter => dead\n}}\n");
    let handled = format!(
        "{HEADER}step parse on web on_error tag {{\n  .n = to_int(.message)\n}}\nroute {{ else => out }}\n"
    );
    for (name, src) in [
        ("dead_letter.ship", with_dead_letter),
        ("handled.ship", handled),
    ] {
        let (code, out, err) = check(name, &src);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(err.is_empty(), "{name} warned: {err}");
        assert!(!out.contains("warning"), "{out}");
    }
}
