//! The Debian package (`./package.sh`, cargo-deb, `[package.metadata.deb]`):
//! its contents, maintainer scripts and unit, and its whole life on this
//! machine: `apt-get install`, an upgrade over an edited `shipd.env`,
//! `apt-get purge`.
//!
//! The amd64 package is `SHIPD_DEB` when set, else built here with
//! `./package.sh --profile package-ci amd64` (minutes the first time, seconds
//! once built). The install test needs root, dpkg and apt-get, and a machine
//! without shipd (package, user, /etc/shipd, /var/lib/shipd); it purges the
//! package again when it ends, also on failure. The architectures of the arm64
//! and armhf packages are checked when `./package.sh` built them (or they are
//! in `SHIPD_DEB_DIR`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command; panics with its output when it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

fn have(tool: &str) -> bool {
    succeeds(Command::new("sh").args(["-c", &format!("command -v {tool}")]))
}

/// Debian's version of this crate: cargo-deb adds the revision "-1".
fn deb_version() -> String {
    format!("{}-1", env!("CARGO_PKG_VERSION"))
}

fn deb_name(arch: &str) -> String {
    format!("shipd_{}_{arch}.deb", deb_version())
}

/// The amd64 package: `SHIPD_DEB`, or built once per test run by package.sh.
fn amd64_deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        if let Some(deb) = std::env::var_os("SHIPD_DEB") {
            let deb = PathBuf::from(deb);
            assert!(deb.is_file(), "SHIPD_DEB={} is not a file", deb.display());
            return deb;
        }
        // package.sh lints too: it fails on any lintian error.
        let out = Command::new(repo().join("package.sh"))
            .args(["--profile", "package-ci", "amd64"])
            .current_dir(repo())
            .output()
            .expect("package.sh runs");
        assert!(
            out.status.success(),
            "./package.sh --profile package-ci amd64: {}",
            text(&out)
        );
        let deb = repo().join("target/debian").join(deb_name("amd64"));
        assert!(deb.is_file(), "package.sh did not write {}", deb.display());
        deb
    })
}

fn field(deb: &Path, name: &str) -> String {
    run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
        .trim()
        .to_owned()
}

/// One file of the package's data (`./usr/bin/shipd`) or control archive (`postinst`).
fn data_file(deb: &Path, path: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir.path()));
    std::fs::read_to_string(dir.path().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn control_file(deb: &Path, name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(dir.path()));
    std::fs::read_to_string(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `(mode, owner/group, path)` of every entry of the package.
fn contents(deb: &Path) -> Vec<(String, String, String)> {
    run(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[5].trim_start_matches('.').to_owned(),
            )
        })
        .collect()
}

fn tools_for_inspection() -> bool {
    if have("dpkg-deb") {
        return true;
    }
    eprintln!("SKIPPED: dpkg-deb is not installed (not a Debian machine)");
    false
}

#[test]
fn changelog_names_the_version_cargo_builds() {
    let changelog = std::fs::read_to_string(repo().join("deploy/debian/changelog")).unwrap();
    let first = changelog.lines().next().unwrap();
    assert_eq!(
        first.split_whitespace().take(2).collect::<Vec<_>>(),
        vec!["shipd".to_owned(), format!("({})", deb_version())],
        "deploy/debian/changelog must begin with an entry for {} (Cargo.toml's version): {first}",
        deb_version()
    );
}

#[test]
fn deb_holds_both_binaries_the_unit_the_settings_as_conffile_and_computed_depends() {
    if !tools_for_inspection() {
        return;
    }
    let deb = amd64_deb();
    assert_eq!(field(deb, "Package"), "shipd");
    assert_eq!(field(deb, "Version"), deb_version());
    assert_eq!(field(deb, "Architecture"), "amd64");
    let depends = field(deb, "Depends");
    assert!(depends.starts_with("libc6 (>= "), "Depends: {depends}");

    let entries = contents(deb);
    let entry = |path: &str| {
        entries
            .iter()
            .find(|(_, _, p)| p == path)
            .unwrap_or_else(|| panic!("{path} not in the package: {entries:?}"))
    };
    for (path, mode) in [
        ("/usr/bin/shipd", "-rwxr-xr-x"),
        ("/usr/bin/shipctl", "-rwxr-xr-x"),
        ("/usr/lib/systemd/system/shipd.service", "-rw-r--r--"),
        ("/etc/shipd/shipd.env", "-rw-r-----"),
        ("/usr/share/doc/shipd/copyright", "-rw-r--r--"),
        ("/usr/share/doc/shipd/changelog.Debian.gz", "-rw-r--r--"),
    ] {
        let (m, owner, _) = entry(path);
        assert_eq!((m.as_str(), owner.as_str()), (mode, "0/0"), "{path}");
    }
    assert!(
        !entries.iter().any(|(_, _, p)| p.starts_with("/usr/local")),
        "a package does not install into /usr/local"
    );
    assert_eq!(
        control_file(deb, "conffiles").trim(),
        "/etc/shipd/shipd.env"
    );
    assert_eq!(
        data_file(deb, "etc/shipd/shipd.env"),
        std::fs::read_to_string(repo().join("deploy/shipd.env")).unwrap()
    );
}

/// `Key=value` lines of a unit, comments left out.
fn unit_settings(unit: &str) -> Vec<String> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn packaged_unit_is_the_repository_unit_running_usr_bin_shipd() {
    if !tools_for_inspection() {
        return;
    }
    let packaged = data_file(amd64_deb(), "usr/lib/systemd/system/shipd.service");
    let repository = std::fs::read_to_string(repo().join("deploy/systemd/shipd.service"))
        .unwrap()
        .replace("ExecStart=/usr/local/bin/shipd", "ExecStart=/usr/bin/shipd");
    assert_eq!(unit_settings(&packaged), unit_settings(&repository));
    assert!(packaged.lines().any(|l| l == "ExecStart=/usr/bin/shipd"));
}

#[test]
fn maintainer_scripts_enable_the_unit_but_start_it_only_on_upgrade_when_it_ran() {
    if !tools_for_inspection() {
        return;
    }
    let postinst = control_file(amd64_deb(), "postinst");
    assert!(!postinst.contains("#DEBHELPER#"), "token not replaced");
    assert!(postinst.contains("deb-systemd-helper enable shipd.service"));
    // The only service action: try-restart (restarts a running shipd, never
    // starts a stopped one), and only on an upgrade ("$2" is the old version).
    let actions: Vec<&str> = postinst
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("deb-systemd-invoke")
                || l.starts_with("invoke-rc.d")
                || (l.starts_with("systemctl") && l.contains("start"))
        })
        .collect();
    assert_eq!(
        actions,
        vec!["deb-systemd-invoke try-restart shipd.service >/dev/null || true"],
        "{postinst}"
    );
    assert!(postinst.contains("if [ -n \"$2\" ]; then"));

    let postrm = control_file(amd64_deb(), "postrm");
    assert!(!postrm.contains("#DEBHELPER#"), "token not replaced");
    assert!(postrm.contains("deb-systemd-helper purge shipd.service"));
    for removed in ["rm -rf /etc/shipd /var/lib/shipd", "userdel shipd"] {
        assert!(postrm.contains(removed), "postrm purge lacks {removed}");
    }
}

#[test]
fn debs_of_every_architecture_say_their_architecture_and_hold_its_binaries() {
    if !tools_for_inspection() {
        return;
    }
    let dir = std::env::var_os("SHIPD_DEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/debian"));
    let mut checked = Vec::new();
    for arch in ["amd64", "arm64", "armhf"] {
        let deb = dir.join(deb_name(arch));
        if !deb.is_file() {
            eprintln!(
                "SKIPPED for {arch}: {} not built (./package.sh {arch})",
                deb.display()
            );
            continue;
        }
        assert_eq!(field(&deb, "Architecture"), arch, "{}", deb.display());
        assert_eq!(field(&deb, "Version"), deb_version());
        // The binaries are for that architecture (readelf-free: the ELF e_machine).
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.path()));
        for bin in ["shipd", "shipctl"] {
            let elf = std::fs::read(dir.path().join("usr/bin").join(bin)).unwrap();
            let machine = u16::from_le_bytes([elf[18], elf[19]]);
            let want = match arch {
                "amd64" => 62,  // EM_X86_64
                "arm64" => 183, // EM_AARCH64
                _ => 40,        // EM_ARM
            };
            assert_eq!(machine, want, "{arch} package's {bin}");
        }
        // And they run there (here under qemu, when it and the cross libc are installed).
        let (qemu, sysroot) = match arch {
            "arm64" => ("qemu-aarch64-static", "/usr/aarch64-linux-gnu"),
            "armhf" => ("qemu-arm-static", "/usr/arm-linux-gnueabihf"),
            _ => ("", ""),
        };
        if !qemu.is_empty() && have(qemu) && Path::new(sysroot).is_dir() {
            let version = run(Command::new(qemu)
                .arg("-L")
                .arg(sysroot)
                .arg(dir.path().join("usr/bin/shipd"))
                .arg("--version"));
            assert_eq!(
                version.trim(),
                format!("shipd {}", env!("CARGO_PKG_VERSION"))
            );
        }
        checked.push(arch);
    }
    eprintln!("checked {checked:?}");
}

// --- installing it on this machine ------------------------------------------

/// Only one test at a time changes this machine's packages.
static MACHINE: Mutex<()> = Mutex::new(());

/// dpkg knows the package: installed, or removed with its settings kept.
fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", "shipd"])
        .output()
        .map(|o| o.status.success() && !o.stdout.is_empty() && o.stdout != b"not-installed")
        .unwrap_or(false)
}

/// What a purge must have removed.
fn assert_purged(traces_before: &[String]) {
    assert!(!installed(), "dpkg still knows shipd after purge");
    for gone in [
        "/usr/bin/shipd",
        "/usr/bin/shipctl",
        "/usr/lib/systemd/system/shipd.service",
        "/etc/shipd",
        "/var/lib/shipd",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left after purge");
    }
    assert_eq!(getent("passwd", "shipd"), None, "user shipd is left");
    assert_eq!(getent("group", "shipd"), None, "group shipd is left");
    assert_eq!(systemd_traces(), traces_before, "systemd state is left");
}

fn apt_get(args: &[&str]) -> String {
    run(Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=300", "-y"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Purges the package when the test ends, passed or failed.
struct PurgeOnDrop;

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        if installed() {
            let _ = Command::new("dpkg")
                .args(["--force-all", "--purge", "shipd"])
                .status();
        }
        // The Ansible role's copy of the package (absent before: can_install_here).
        let _ = std::fs::remove_dir_all("/var/cache/shipd");
    }
}

fn getent(db: &str, key: &str) -> Option<String> {
    let out = Command::new("getent").args([db, key]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `(mode, owner, group)` of a path, by name.
fn stat(path: &str) -> (String, String, String) {
    let out = run(Command::new("stat").args(["-c", "%a %U %G", path]));
    let f: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    (f[0].clone(), f[1].clone(), f[2].clone())
}

/// Processes running /usr/bin/shipd (a started service would be one).
fn packaged_shipd_processes() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_link(e.path().join("exe"))
                .is_ok_and(|exe| exe == Path::new("/usr/bin/shipd"))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Files deb-systemd-helper and systemd keep about shipd.service.
fn systemd_traces() -> Vec<String> {
    let out = Command::new("sh")
        .args([
            "-c",
            "find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
             /var/lib/systemd/deb-systemd-helper-masked -name 'shipd*' 2>/dev/null; true",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// This machine can take the package and give it back as it was.
fn can_install_here() -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root".to_owned());
    }
    for tool in ["dpkg", "apt-get", "dpkg-deb", "getent", "useradd"] {
        if !have(tool) {
            missing.push(tool.to_owned());
        }
    }
    if !missing.is_empty() {
        eprintln!("SKIPPED: installing the package needs {missing:?}");
        return false;
    }
    let mut present = Vec::new();
    if installed() {
        present.push("the shipd package".to_owned());
    }
    if getent("passwd", "shipd").is_some() {
        present.push("a user shipd".to_owned());
    }
    for dir in [
        "/etc/shipd",
        "/var/lib/shipd",
        "/usr/bin/shipd",
        "/usr/local/bin/shipd",
        "/etc/systemd/system/shipd.service",
        "/var/cache/shipd",
    ] {
        if Path::new(dir).exists() {
            present.push(dir.to_owned());
        }
    }
    if !present.is_empty() {
        // Purging at the end would remove what was there before the test.
        eprintln!("SKIPPED: this machine already has {present:?}; the test would purge it");
        return false;
    }
    true
}

/// A copy of `deb` with a higher version whose shipd.env differs: an upgrade
/// that ships a changed conffile.
fn upgraded_copy(deb: &Path, dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    let control = tree.join("DEBIAN/control");
    let body = std::fs::read_to_string(&control).unwrap().replace(
        &format!("Version: {}\n", deb_version()),
        &format!("Version: {}+upgrade1\n", deb_version()),
    );
    std::fs::write(&control, body).unwrap();
    let env = tree.join("etc/shipd/shipd.env");
    let mut settings = std::fs::read_to_string(&env).unwrap();
    settings.push_str("# a new setting of the next version\n");
    std::fs::write(&env, settings).unwrap();
    let out = dir.join("upgrade.deb");
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "-b"])
        .arg(&tree)
        .arg(&out));
    out
}

#[test]
fn deb_installs_enabled_not_started_keeps_edited_settings_on_upgrade_and_purges_clean() {
    let _machine = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    if !can_install_here() {
        return;
    }
    let deb = amd64_deb();
    let traces_before = systemd_traces();
    let groups: Vec<&str> = ["systemd-journal", "adm"]
        .into_iter()
        .filter(|g| {
            let exists = getent("group", g).is_some();
            if !exists {
                eprintln!("group {g} does not exist here: shipd is not put in it");
            }
            exists
        })
        .collect();

    let _purge = PurgeOnDrop;
    // No systemd runs here: the maintainer scripts must not fail without it.
    let log = apt_get(&["install", &deb.display().to_string()]);
    assert!(installed(), "{log}");

    // Both binaries run from /usr/bin.
    let version = run(Command::new("/usr/bin/shipd").arg("--version"));
    assert_eq!(
        version.trim(),
        format!("shipd {}", env!("CARGO_PKG_VERSION"))
    );
    let version = run(Command::new("/usr/bin/shipctl").arg("--version"));
    assert_eq!(
        version.trim(),
        format!("shipctl {}", env!("CARGO_PKG_VERSION"))
    );

    // The system user, in the groups that read the journal and /var/log.
    let user = getent("passwd", "shipd").expect("user shipd");
    let fields: Vec<&str> = user.split(':').collect();
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "not a system user: {user}"
    );
    assert_eq!(fields[5], "/var/lib/shipd");
    assert_eq!(fields[6], "/usr/sbin/nologin");
    let memberships = run(Command::new("id").args(["-nG", "shipd"]));
    let memberships: Vec<&str> = memberships.split_whitespace().collect();
    assert!(memberships.contains(&"shipd"), "{memberships:?}");
    for g in &groups {
        assert!(
            memberships.contains(g),
            "shipd is not in {g}: {memberships:?}"
        );
    }
    for g in ["systemd-journal", "adm"] {
        if !groups.contains(&g) {
            assert!(getent("group", g).is_none(), "postinst created group {g}");
        }
    }

    // Directories and settings.
    assert_eq!(
        stat("/var/lib/shipd"),
        ("750".into(), "shipd".into(), "shipd".into())
    );
    assert_eq!(
        stat("/etc/shipd"),
        ("750".into(), "root".into(), "shipd".into())
    );
    assert_eq!(
        stat("/etc/shipd/shipd.env"),
        ("640".into(), "root".into(), "shipd".into())
    );
    let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "shipd"]));
    assert!(
        conffiles
            .lines()
            .any(|l| l.trim().starts_with("/etc/shipd/shipd.env ")),
        "shipd.env is not a conffile: {conffiles:?}"
    );

    // The unit: installed, enabled (deb-systemd-helper makes the link without
    // a running systemd), and nothing started shipd.
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/shipd.service").unwrap();
    assert!(unit.lines().any(|l| l == "ExecStart=/usr/bin/shipd"));
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants/shipd.service");
    // (deb-systemd-helper links /lib/systemd/system/..., the same file on a
    // merged /usr.)
    assert!(wants.is_symlink(), "shipd.service is not enabled");
    assert_eq!(
        std::fs::canonicalize(wants).unwrap(),
        std::fs::canonicalize("/usr/lib/systemd/system/shipd.service").unwrap()
    );
    assert!(packaged_shipd_processes().is_empty(), "shipd was started");

    // The operator edits the settings; an upgrade whose shipd.env changed
    // keeps the edit (--force-confold), so do going back and a reinstall.
    let edited = std::fs::read_to_string("/etc/shipd/shipd.env").unwrap()
        + "OPENOBSERVE_URL=https://pi-obs.lan\n";
    std::fs::write("/etc/shipd/shipd.env", &edited).unwrap();
    let work = tempfile::tempdir().unwrap();
    let upgrade = upgraded_copy(deb, work.path());
    for (what, package) in [("upgrade", upgrade.as_path()), ("downgrade", deb)] {
        // dpkg -i --force-confold, through apt-get (which waits for the lock).
        apt_get(&[
            "install",
            "--allow-downgrades",
            "-o",
            "Dpkg::Options::=--force-confold",
            &package.display().to_string(),
        ]);
        assert_eq!(
            std::fs::read_to_string("/etc/shipd/shipd.env").unwrap(),
            edited,
            "{what} replaced the edited shipd.env"
        );
        assert_eq!(
            stat("/etc/shipd/shipd.env"),
            ("640".into(), "root".into(), "shipd".into())
        );
        assert!(wants.is_symlink(), "{what} disabled shipd.service");
        assert!(
            packaged_shipd_processes().is_empty(),
            "{what} started shipd"
        );
    }
    apt_get(&["install", "--reinstall", &deb.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string("/etc/shipd/shipd.env").unwrap(),
        edited
    );

    // State shipd made and a password the operator added go with the purge.
    std::fs::write("/var/lib/shipd/checkpoints", "x").unwrap();
    std::fs::write("/etc/shipd/openobserve-password", "secret\n").unwrap();
    apt_get(&["purge", "shipd"]);
    assert_purged(&traces_before);
}

/// deploy/install.sh's output; panics when it fails.
fn install_sh(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(repo().join("deploy/install.sh"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh {args:?}: {}", text(&out));
    text(&out)
}

#[test]
fn install_sh_replaces_a_binary_install_with_the_deb_of_this_architecture_and_purges_it() {
    let _machine = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    if !can_install_here() {
        return;
    }
    let arch = run(Command::new("dpkg").arg("--print-architecture"));
    if arch.trim() != "amd64" {
        eprintln!(
            "SKIPPED: this machine is {}, the package built here amd64",
            arch.trim()
        );
        return;
    }
    let deb = amd64_deb();
    let traces_before = systemd_traces();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(deb, dir.path().join(deb.file_name().unwrap())).unwrap();
    // Another architecture's package is not taken (nor even read).
    std::fs::write(dir.path().join(deb_name("arm64")), "not this node's").unwrap();
    let deb_dir = dir.path().display().to_string();

    let _purge = PurgeOnDrop;
    // First the binaries (/usr/local/bin, the unit in /etc/systemd/system),
    // and the operator edits the settings.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_shipd")).parent().unwrap();
    install_sh(&["--bin-dir", &bin_dir.display().to_string()]);
    assert!(Path::new("/usr/local/bin/shipd").is_file());
    let edited = std::fs::read_to_string("/etc/shipd/shipd.env").unwrap()
        + "OPENOBSERVE_URL=https://pi-obs.lan\n";
    std::fs::write("/etc/shipd/shipd.env", &edited).unwrap();

    let first = install_sh(&["--deb-dir", &deb_dir]);
    assert!(
        first.contains(&format!("installed package shipd {}", deb_version())),
        "{first}"
    );
    assert!(installed());
    assert!(Path::new("/usr/bin/shipd").is_file());
    // What would shadow the package is gone; the settings stay as edited.
    for gone in [
        "/usr/local/bin/shipd",
        "/usr/local/bin/shipctl",
        "/etc/systemd/system/shipd.service",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left: {first}");
    }
    assert_eq!(
        std::fs::read_to_string("/etc/shipd/shipd.env").unwrap(),
        edited
    );
    assert_eq!(
        stat("/var/lib/shipd"),
        ("750".into(), "shipd".into(), "shipd".into())
    );
    assert!(packaged_shipd_processes().is_empty(), "shipd was started");

    let second = install_sh(&["--deb-dir", &deb_dir]);
    assert!(second.contains("done, 0 changed"), "{second}");

    let purged = install_sh(&["--uninstall", "--purge"]);
    assert!(purged.contains("purged package shipd"), "{purged}");
    assert_purged(&traces_before);
}

#[test]
fn ansible_role_installs_the_deb_for_the_node_architecture_with_its_settings() {
    let _machine = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    if !can_install_here() {
        return;
    }
    if !have("ansible-playbook") {
        eprintln!("SKIPPED: ansible-playbook is not installed (./test.sh installs it)");
        return;
    }
    let deb = amd64_deb();
    let traces_before = systemd_traces();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(
        w.join("inventory.yml"),
        "web:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n",
    )
    .unwrap();
    let playbook = || {
        let out = Command::new("ansible-playbook")
            .current_dir(repo().join("deploy/ansible"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCAL_TEMP", w.join("ansible-tmp"))
            .arg("-i")
            .arg(w.join("inventory.yml"))
            .arg("site.yml")
            .args([
                "-e",
                &format!("shipd_deb_dir={}", deb.parent().unwrap().display()),
            ])
            // No systemd runs here; no vault either.
            .args(["-e", "shipd_manage_service=false"])
            .args(["-e", "shipd_openobserve_url=https://pi-obs.lan"])
            .args(["-e", "shipd_openobserve_user=ops@example.com"])
            .args(["-e", "shipd_openobserve_password=s3cret"])
            .output()
            .unwrap();
        assert!(out.status.success(), "ansible-playbook: {}", text(&out));
        text(&out)
    };

    let _purge = PurgeOnDrop;
    let first = playbook();
    assert!(
        first.contains("TASK [shipd : Install the package]"),
        "{first}"
    );
    assert!(installed(), "{first}");
    assert!(Path::new("/usr/bin/shipd").is_file());
    assert!(
        !Path::new("/usr/local/bin/shipd").exists(),
        "binaries copied too"
    );
    assert!(!Path::new("/etc/systemd/system/shipd.service").exists());
    let env = std::fs::read_to_string("/etc/shipd/shipd.env").unwrap();
    assert!(
        env.lines()
            .any(|l| l == "OPENOBSERVE_URL=https://pi-obs.lan"),
        "{env}"
    );
    assert_eq!(
        stat("/etc/shipd/shipd.env"),
        ("640".into(), "root".into(), "shipd".into())
    );
    assert_eq!(
        stat("/etc/shipd/openobserve-password"),
        ("640".into(), "root".into(), "shipd".into())
    );
    let memberships = run(Command::new("id").args(["-nG", "shipd"]));
    assert!(memberships.split_whitespace().any(|g| g == "shipd"));

    let again = playbook();
    let recap = again
        .lines()
        .find(|l| l.starts_with("localhost") && l.contains("changed="))
        .unwrap_or_else(|| panic!("no recap in {again}"));
    assert!(
        recap.contains("changed=0 "),
        "a second run changed something: {again}"
    );

    apt_get(&["purge", "shipd"]);
    std::fs::remove_dir_all("/var/cache/shipd").unwrap();
    assert_purged(&traces_before);
}
