//! The deployment artefacts under `deploy/`: the systemd unit (and the
//! daemon's side of `Type=notify`, observed on a NOTIFY_SOCKET this test
//! owns), the container image and compose file, the Ansible role run into a
//! temporary root, install.sh in a temporary root, the OpenObserve
//! dashboards. Python's PyYAML parses the YAML; ansible-core, ansible-lint
//! and hadolint come from PyPI (./test.sh installs them).

mod common;

use common::{free_port, Shipd};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Parses a YAML file with PyYAML into JSON.
fn yaml(rel: &str) -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(repo().join(rel))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "PyYAML cannot parse {rel} (./test.sh installs PyYAML): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A tool the test needs; ./test.sh installs it.
fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(found, "{name} is not installed; run ./test.sh once");
    Command::new(name)
}

/// Every `SHIPD_*` / `OPENOBSERVE_*` variable the agent reads: the embedded
/// default pipeline's `env("...")` calls and the settings defaults of the loader.
fn agent_variables() -> BTreeSet<String> {
    let src = read("pipelines/default.ship") + &read("src/lang/program.rs");
    let mut vars = BTreeSet::new();
    for piece in src.split('"').skip(1).step_by(2) {
        let is_var = (piece.starts_with("SHIPD_") || piece.starts_with("OPENOBSERVE_"))
            && piece
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if is_var {
            vars.insert(piece.to_owned());
        }
    }
    assert!(
        vars.len() > 20,
        "found only {vars:?} in the default pipeline"
    );
    vars
}

/// Variables of design §5 (and this deployment) that later sources read; the
/// deploy files may name them before the default pipeline does. Also those
/// that libraries read rather than the pipeline: the log filter and the
/// proxy of HTTP connections.
const PLANNED_VARIABLES: [&str; 6] = [
    "SHIPD_METRICS_INTERVAL",
    "SHIPD_CONTROL_SOCKET",
    "SHIPD_HOST_ROOT",
    "RUST_LOG",
    "HTTPS_PROXY",
    "NO_PROXY",
];

/// `VAR` of every `VAR=...` or `#VAR=...` line of an env file.
fn env_file_variables(body: &str) -> BTreeSet<String> {
    body.lines()
        .map(|l| l.trim().trim_start_matches('#').trim_start())
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

/// `Key=value` lines of a systemd unit (all sections), in order.
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn unit_is_type_notify_with_watchdog_reload_dedicated_user_and_hardening() {
    let unit = read("deploy/systemd/shipd.service");
    let settings = unit_settings(&unit);
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (key, want) in [
        ("Type", "notify"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("EnvironmentFile", "/etc/shipd/shipd.env"),
        ("User", "shipd"),
        ("SupplementaryGroups", "systemd-journal adm"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/shipd"),
        ("StateDirectory", "shipd"),
        ("RuntimeDirectory", "shipd"),
        ("RuntimeDirectoryPreserve", "restart"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(get(key), vec![want], "{key}");
    }
    assert!(get("Environment").contains(&"MALLOC_ARENA_MAX=2"));
    let watchdog = humantime::parse_duration(get("WatchdogSec")[0]).unwrap();
    let stop = humantime::parse_duration(get("TimeoutStopSec")[0]).unwrap();
    assert!(watchdog >= Duration::from_secs(10), "watchdog {watchdog:?}");
    assert!(
        stop > Duration::from_secs(10),
        "TimeoutStopSec must exceed the default drain timeout (10s)"
    );
    let memory_max = shipd::config::parse_size(get("MemoryMax")[0]).unwrap();
    assert!(
        (64 << 20..=512 << 20).contains(&memory_max),
        "MemoryMax {memory_max} is not sized for a Pi"
    );
    assert_eq!(get("ExecStart"), vec!["/usr/local/bin/shipd"]);
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let found = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED: systemd-analyze is not installed on this machine");
        return;
    }
    // verify insists the ExecStart binary exists: point it at the one built here.
    let dir = tempfile::tempdir().unwrap();
    let unit = read("deploy/systemd/shipd.service").replace(
        "ExecStart=/usr/local/bin/shipd",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_shipd")),
    );
    let path = dir.path().join("shipd.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    // verify exits 0 on unknown keys and bad values too, so its output must be empty.
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&out)
    );
}

#[test]
fn every_agent_variable_is_in_the_env_template_and_nothing_unknown_is() {
    let template = env_file_variables(&read("deploy/shipd.env"));
    let agent = agent_variables();
    let missing: Vec<_> = agent.difference(&template).collect();
    assert!(missing.is_empty(), "deploy/shipd.env lacks {missing:?}");
    let unknown: Vec<_> = template
        .iter()
        .filter(|v| !agent.contains(*v) && !PLANNED_VARIABLES.contains(&v.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "deploy/shipd.env names variables shipd does not read: {unknown:?}"
    );
}

#[test]
fn compose_wires_the_agent_environment_and_mounts_host_sources_read_only() {
    let compose = yaml("deploy/docker-compose.yml");
    let shipd = &compose["services"]["shipd"];
    assert_eq!(shipd["profiles"], serde_json::json!(["node"]));
    assert_eq!(shipd["env_file"], serde_json::json!(["shipd.env"]));

    let env = shipd["environment"].as_object().unwrap();
    let mut wired: BTreeSet<String> = env.keys().cloned().collect();
    wired.extend(env_file_variables(&read("deploy/shipd.env")));
    let missing: Vec<_> = agent_variables().difference(&wired).cloned().collect();
    assert!(missing.is_empty(), "compose lacks {missing:?}");
    for var in [
        "OPENOBSERVE_URL",
        "OPENOBSERVE_GRPC_URL",
        "OPENOBSERVE_ORG",
        "OPENOBSERVE_USER",
        "OPENOBSERVE_PASSWORD_FILE",
        "OPENOBSERVE_TRANSPORT",
        "OPENOBSERVE_STREAM",
        "SHIPD_DATA_DIR",
        "SHIPD_API_ADDR",
        "SHIPD_CONTROL_SOCKET",
        "SHIPD_LOG_FILES",
        "SHIPD_METRICS_INTERVAL",
    ] {
        assert!(env.contains_key(var), "design §5 variable {var} not set");
    }
    let password = env["OPENOBSERVE_PASSWORD_FILE"].as_str().unwrap();
    let secret = shipd["secrets"][0].as_str().unwrap();
    assert_eq!(password, format!("/run/secrets/{secret}"));
    assert!(compose["secrets"][secret]["file"].is_string());

    let volumes: Vec<&str> = shipd["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for host in [
        "/var/lib/docker/containers",
        "/var/log/journal",
        "/proc",
        "/sys",
    ] {
        let mount = volumes
            .iter()
            .find(|v| v.starts_with(&format!("{host}:")))
            .unwrap_or_else(|| panic!("{host} not mounted"));
        assert!(mount.ends_with(":ro"), "{mount} is not read-only");
    }
    let root = env["SHIPD_HOST_ROOT"].as_str().unwrap();
    assert!(volumes.contains(&format!("/proc:{root}/proc:ro").as_str()));
    assert!(volumes.contains(&format!("/sys:{root}/sys:ro").as_str()));
    assert_eq!(
        env["SHIPD_DOCKER_LOGS"].as_str(),
        Some("on"),
        "the sidecar reads container logs"
    );
    let docker_dir = env["SHIPD_DOCKER_DIR"].as_str().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v.starts_with(&format!("{docker_dir}:"))),
        "{docker_dir} is mounted"
    );

    let data_dir = env["SHIPD_DATA_DIR"].as_str().unwrap();
    let data = volumes
        .iter()
        .find(|v| v.ends_with(&format!(":{data_dir}")))
        .expect("a volume on SHIPD_DATA_DIR");
    let volume_name = data.split(':').next().unwrap();
    assert!(compose["volumes"]
        .as_object()
        .unwrap()
        .contains_key(volume_name));
    assert_eq!(shipd["read_only"], true);
    assert_eq!(shipd["cap_drop"], serde_json::json!(["ALL"]));

    // The agent ships to the OpenObserve of the observability profile.
    let o2 = &compose["services"]["openobserve"];
    assert_eq!(o2["profiles"], serde_json::json!(["observability"]));
    let ports: Vec<&str> = o2["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(ports.contains(&"5080:5080") && ports.contains(&"5081:5081"));
    assert!(env["OPENOBSERVE_URL"].as_str().unwrap().contains(":5080}"));
    assert!(o2["environment"]["ZO_ROOT_USER_PASSWORD"].is_string());
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_a_healthcheck_and_lints_clean() {
    let dockerfile = read("deploy/docker/Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<_> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "not multi-stage: {froms:?}");
    assert!(dockerfile.contains("COPY --from=build"));
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {user} is not a numeric non-root uid"
    );
    let healthcheck = runtime
        .split("HEALTHCHECK")
        .nth(1)
        .expect("HEALTHCHECK in the runtime stage");
    assert!(healthcheck.contains("shipctl\", \"health\""));
    assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/shipd\"]"));

    let out = tool("hadolint")
        .args(["--no-color", "--failure-threshold", "info"])
        .arg(repo().join("deploy/docker/Dockerfile"))
        .output()
        .unwrap();
    assert!(out.status.success(), "hadolint: {}", text(&out));
}

#[test]
fn shipctl_health_exits_0_when_healthy_and_1_when_failing_or_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let health = |addr: &str| {
        Command::new(env!("CARGO_BIN_EXE_shipctl"))
            .args(["health", "--timeout", "2s", "--addr", addr])
            .env_remove("SHIPD_API_ADDR")
            .output()
            .unwrap()
    };

    let shipd = Shipd::start(
        &[("SHIPD_DATA_DIR", dir.path().join("a").display().to_string())],
        &dir.path().join("a.log"),
    );
    assert!(shipd.wait_log("shipd started", Duration::from_secs(30)));
    let ok = health(&shipd.api.to_string());
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).starts_with("200 "));
    assert_eq!(shipd.terminate(), Some(0));

    let nobody = health(&format!("127.0.0.1:{}", free_port()));
    assert_eq!(nobody.status.code(), Some(1));
    assert!(text(&nobody).contains("shipctl health:"));

    // A sink that cannot deliver makes /health answer 503, and shipctl exit 1.
    let log = dir.path().join("app.log");
    std::fs::write(&log, "one line\n").unwrap();
    let failing = Shipd::start(
        &[
            ("SHIPD_DATA_DIR", dir.path().join("b").display().to_string()),
            ("SHIPD_LOG_FILES", log.display().to_string()),
            ("SHIPD_READ_FROM", "beginning".into()),
            (
                "OPENOBSERVE_URL",
                format!("http://127.0.0.1:{}", free_port()),
            ),
        ],
        &dir.path().join("b.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let out = health(&failing.api.to_string());
        if out.status.code() == Some(1) && text(&out).starts_with("503 ") {
            break out;
        }
        assert!(Instant::now() < deadline, "never unhealthy: {}", text(&out));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(text(&answer).contains("failing"));
}

/// Datagrams received on `socket` until `until` (or the deadline).
fn receive_until(
    socket: &UnixDatagram,
    deadline: Duration,
    mut until: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let end = Instant::now() + deadline;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        socket
            .set_read_timeout(Some(
                end.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
                let done = until(&msg);
                got.push(msg);
                if done {
                    break;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("recv: {e} ({:?})", e.kind()),
        }
    }
    got
}

fn start_notifying_shipd(dir: &Path, watchdog_usec: Option<u64>) -> (UnixDatagram, Shipd) {
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut env = vec![
        ("SHIPD_DATA_DIR", dir.join("data").display().to_string()),
        ("NOTIFY_SOCKET", socket_path.display().to_string()),
    ];
    if let Some(usec) = watchdog_usec {
        env.push(("WATCHDOG_USEC", usec.to_string()));
    }
    let shipd = Shipd::start(&env, &dir.join("shipd.log"));
    (socket, shipd)
}

#[test]
fn shipd_notifies_ready_pings_the_watchdog_survives_sighup_and_notifies_stopping() {
    let dir = tempfile::tempdir().unwrap();
    // 400 ms watchdog: shipd should ping every 200 ms.
    let (socket, shipd) = start_notifying_shipd(dir.path(), Some(400_000));
    let first = receive_until(&socket, Duration::from_secs(30), |m| m == "READY=1");
    assert_eq!(
        first.last().map(String::as_str),
        Some("READY=1"),
        "{first:?}"
    );
    assert!(shipd.log().contains("shipd started"));

    let window = Duration::from_secs(3);
    let pings = receive_until(&socket, window, |_| false);
    let count = pings.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(
        pings.iter().all(|m| m == "WATCHDOG=1"),
        "unexpected {pings:?}"
    );
    // Nominally 15 in 3 s; loose bounds, as the machine may be busy.
    assert!(
        (5..=40).contains(&count),
        "{count} watchdog pings in {window:?}"
    );

    // systemctl reload sends SIGHUP: shipd must stay up and keep pinging.
    let hup = Command::new("kill")
        .args(["-HUP", &shipd.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(shipd.wait_log("reload requested", Duration::from_secs(10)));
    let after_hup = receive_until(&socket, Duration::from_secs(2), |_| false);
    assert!(
        after_hup.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2,
        "no pings after SIGHUP: {after_hup:?}"
    );

    let pid = shipd.child.id();
    let stopper = std::thread::spawn(move || shipd.terminate());
    let last = receive_until(&socket, Duration::from_secs(30), |m| m == "STOPPING=1");
    assert_eq!(
        last.last().map(String::as_str),
        Some("STOPPING=1"),
        "after SIGTERM to {pid}: {last:?}"
    );
    assert_eq!(stopper.join().unwrap(), Some(0));
}

#[test]
fn without_watchdog_usec_shipd_sends_ready_and_no_pings() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, shipd) = start_notifying_shipd(dir.path(), None);
    let first = receive_until(&socket, Duration::from_secs(30), |m| m == "READY=1");
    assert_eq!(first.last().map(String::as_str), Some("READY=1"));
    let quiet = receive_until(&socket, Duration::from_millis(1500), |_| false);
    assert!(quiet.is_empty(), "{quiet:?}");
    assert_eq!(shipd.terminate(), Some(0));
}

/// A temporary root with the account files useradd needs.
fn seeded_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    for (file, body) in [
        ("passwd", "root:x:0:0:root:/root:/bin/bash\n"),
        ("group", "root:x:0:\nadm:x:4:\nsystemd-journal:x:101:\n"),
        ("shadow", "root:*:19000:0:99999:7:::\n"),
        ("gshadow", "root:*::\nadm:*::\nsystemd-journal:!::\n"),
    ] {
        std::fs::write(etc.join(file), body).unwrap();
    }
    root
}

fn install_sh(root: &Path, args: &[&str]) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_shipd")).parent().unwrap();
    let out = Command::new("bash")
        .arg(repo().join("deploy/install.sh"))
        .arg("--root")
        .arg(root)
        .arg("--bin-dir")
        .arg(bin_dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh {args:?}: {}", text(&out));
    text(&out)
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn install_sh_installs_once_changes_nothing_twice_and_uninstalls() {
    let root = seeded_root();
    let r = root.path();
    let first = install_sh(r, &[]);
    assert!(first.contains("created user shipd"), "{first}");
    assert!(first.contains("not touching systemd"), "{first}");
    let passwd = std::fs::read_to_string(r.join("etc/passwd")).unwrap();
    assert!(passwd.contains("shipd:x:") && passwd.contains(":/usr/sbin/nologin"));
    let group = std::fs::read_to_string(r.join("etc/group")).unwrap();
    assert!(group.contains("adm:x:4:shipd") && group.contains("systemd-journal:x:101:shipd"));
    assert_eq!(
        std::fs::read(r.join("usr/local/bin/shipd")).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_shipd")).unwrap()
    );
    assert_eq!(mode(&r.join("usr/local/bin/shipctl")), 0o755);
    assert_eq!(
        std::fs::read_to_string(r.join("etc/systemd/system/shipd.service")).unwrap(),
        read("deploy/systemd/shipd.service")
    );
    assert_eq!(mode(&r.join("etc/shipd")), 0o750);
    assert_eq!(mode(&r.join("var/lib/shipd")), 0o750);
    assert_eq!(mode(&r.join("etc/shipd/shipd.env")), 0o640);

    // An operator's edit survives a re-run, and a re-run changes nothing.
    let env_path = r.join("etc/shipd/shipd.env");
    std::fs::write(&env_path, "OPENOBSERVE_URL=http://mine:5080\n").unwrap();
    let second = install_sh(r, &[]);
    assert!(second.contains("done, 0 changed"), "{second}");
    assert_eq!(
        std::fs::read_to_string(&env_path).unwrap(),
        "OPENOBSERVE_URL=http://mine:5080\n"
    );
    let passwd_again = std::fs::read_to_string(r.join("etc/passwd")).unwrap();
    assert_eq!(
        passwd_again
            .lines()
            .filter(|l| l.starts_with("shipd:"))
            .count(),
        1
    );

    // A changed unit is put back.
    std::fs::write(r.join("etc/systemd/system/shipd.service"), "stale").unwrap();
    let third = install_sh(r, &[]);
    assert!(third.contains("done, 1 changed"), "{third}");

    let removed = install_sh(r, &["--uninstall"]);
    assert!(removed.contains("kept /etc/shipd"), "{removed}");
    assert!(!r.join("usr/local/bin/shipd").exists());
    assert!(!r.join("etc/systemd/system/shipd.service").exists());
    assert!(env_path.exists() && r.join("var/lib/shipd").exists());

    install_sh(r, &["--uninstall", "--purge"]);
    assert!(!r.join("etc/shipd").exists() && !r.join("var/lib/shipd").exists());
    let passwd_purged = std::fs::read_to_string(r.join("etc/passwd")).unwrap();
    assert!(!passwd_purged.contains("shipd:"), "{passwd_purged}");
}

#[test]
fn install_sh_takes_the_binaries_when_no_package_fits_and_refuses_a_deb_under_root() {
    let root = seeded_root();
    let r = root.path();
    // --deb-dir without a package for this node (or under --root, where apt
    // cannot install): the binaries, as without it.
    let debs = tempfile::tempdir().unwrap();
    let out = install_sh(r, &["--deb-dir", debs.path().to_str().unwrap()]);
    assert!(out.contains("installing the binaries from"), "{out}");
    assert!(out.contains("created user shipd"), "{out}");
    assert_eq!(mode(&r.join("usr/local/bin/shipd")), 0o755);

    // An explicit package cannot go under --root.
    let deb = debs.path().join("shipd_0.1.0-1_arm64.deb");
    std::fs::write(&deb, "a package").unwrap();
    let out = Command::new("bash")
        .arg(repo().join("deploy/install.sh"))
        .arg("--root")
        .arg(r)
        .arg("--deb")
        .arg(&deb)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not under --root"), "{}", text(&out));
}

#[test]
fn install_sh_installs_a_ca_and_a_client_certificate_and_points_shipd_env_at_them() {
    let root = seeded_root();
    let r = root.path();
    let pems = tempfile::tempdir().unwrap();
    let pem = |name: &str, kind: &str| {
        let path = pems.path().join(name);
        std::fs::write(
            &path,
            format!("-----BEGIN {kind}-----\nMIIBfake\n-----END {kind}-----\n"),
        )
        .unwrap();
        path.display().to_string()
    };
    let ca = pem("ca.pem", "CERTIFICATE");
    let cert = pem("web1.pem", "CERTIFICATE");
    let key = pem("web1.key", "EC PRIVATE KEY");
    let args = [
        "--ca-file",
        ca.as_str(),
        "--client-cert",
        cert.as_str(),
        "--client-key",
        key.as_str(),
    ];
    let first = install_sh(r, &args);
    assert!(
        first.contains("set OPENOBSERVE_CA_FILE=/etc/shipd/ca.pem"),
        "{first}"
    );
    assert_eq!(
        std::fs::read(r.join("etc/shipd/ca.pem")).unwrap(),
        std::fs::read(&ca).unwrap()
    );
    assert_eq!(mode(&r.join("etc/shipd/ca.pem")), 0o644);
    assert_eq!(mode(&r.join("etc/shipd/client.pem")), 0o644);
    let key_path = r.join("etc/shipd/client.key");
    assert_eq!(mode(&key_path), 0o640);
    let group = std::fs::read_to_string(r.join("etc/group")).unwrap();
    let shipd_gid: u32 = group
        .lines()
        .find_map(|l| l.strip_prefix("shipd:x:"))
        .and_then(|rest| rest.split(':').next())
        .and_then(|gid| gid.parse().ok())
        .expect("group shipd");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&key_path).unwrap().gid(), shipd_gid);

    // The template's commented lines are switched on, once each.
    let env_path = r.join("etc/shipd/shipd.env");
    let env = std::fs::read_to_string(&env_path).unwrap();
    for line in [
        "OPENOBSERVE_CA_FILE=/etc/shipd/ca.pem",
        "OPENOBSERVE_CERT_FILE=/etc/shipd/client.pem",
        "OPENOBSERVE_KEY_FILE=/etc/shipd/client.key",
    ] {
        assert_eq!(
            env.lines().filter(|l| *l == line).count(),
            1,
            "{line}: {env}"
        );
        let commented = format!("#{}", line.split('=').next().unwrap());
        assert!(!env.lines().any(|l| l.starts_with(&commented)), "{env}");
    }
    let second = install_sh(r, &args);
    assert!(second.contains("done, 0 changed"), "{second}");

    // An operator's own CA path is kept; a line is appended when none exists.
    std::fs::write(
        &env_path,
        "OPENOBSERVE_URL=https://pi-obs.lan\nOPENOBSERVE_CA_FILE=/etc/ssl/mine.pem",
    )
    .unwrap();
    let kept = install_sh(r, &args);
    assert!(
        kept.contains("kept OPENOBSERVE_CA_FILE=/etc/ssl/mine.pem"),
        "{kept}"
    );
    assert_eq!(
        std::fs::read_to_string(&env_path).unwrap(),
        "OPENOBSERVE_URL=https://pi-obs.lan\nOPENOBSERVE_CA_FILE=/etc/ssl/mine.pem\n\
         OPENOBSERVE_CERT_FILE=/etc/shipd/client.pem\nOPENOBSERVE_KEY_FILE=/etc/shipd/client.key\n"
    );

    // Half a client pair, or a file that is not PEM, is refused before anything changes.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_shipd")).parent().unwrap();
    for bad in [
        vec!["--client-cert", cert.as_str()],
        vec!["--ca-file", key.as_str()],
    ] {
        let out = Command::new("bash")
            .arg(repo().join("deploy/install.sh"))
            .arg("--root")
            .arg(r)
            .arg("--bin-dir")
            .arg(bin_dir)
            .args(&bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
    }
}

fn ansible_dir() -> PathBuf {
    repo().join("deploy/ansible")
}

/// Runs site.yml against localhost (connection local) into `root`.
fn run_playbook(work: &Path, root: &Path, extra: &[&str]) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_shipd")).parent().unwrap();
    let out = tool("ansible-playbook")
        .current_dir(ansible_dir())
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCAL_TEMP", work.join("ansible-tmp"))
        .arg("-i")
        .arg(work.join("inventory.yml"))
        .arg("site.yml")
        .arg("--vault-password-file")
        .arg(work.join("vault-pass"))
        .arg("-e")
        .arg(format!("@{}", work.join("vault.yml").display()))
        .args(["-e", &format!("shipd_root={}", root.display())])
        .args([
            "-e",
            "shipd_manage_user=false",
            "-e",
            "shipd_manage_service=false",
        ])
        .args(["-e", &format!("shipd_binary_dir={}", bin_dir.display())])
        .args(["-e", "shipd_openobserve_url=http://pi-obs:5080"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "ansible-playbook: {}", text(&out));
    text(&out)
}

fn recap_changed(output: &str) -> usize {
    let line = output
        .lines()
        .find(|l| l.starts_with("localhost") && l.contains("changed="))
        .unwrap_or_else(|| panic!("no recap in {output}"));
    line.split("changed=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[test]
fn ansible_role_installs_into_a_temporary_root_with_vault_credentials_and_restarts_on_change() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let root = w.join("root");
    std::fs::write(
        w.join("inventory.yml"),
        "web:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n",
    )
    .unwrap();
    std::fs::write(w.join("vault-pass"), "test-vault-pass\n").unwrap();
    std::fs::write(
        w.join("vault.yml"),
        "vault_openobserve_user: ops@example.com\nvault_openobserve_password: s3cret-from-the-vault\n",
    )
    .unwrap();
    let encrypted = tool("ansible-vault")
        .arg("encrypt")
        .arg("--vault-password-file")
        .arg(w.join("vault-pass"))
        .arg(w.join("vault.yml"))
        .output()
        .unwrap();
    assert!(encrypted.status.success(), "{}", text(&encrypted));
    assert!(std::fs::read_to_string(w.join("vault.yml"))
        .unwrap()
        .starts_with("$ANSIBLE_VAULT"));

    let first = run_playbook(w, &root, &[]);
    assert!(recap_changed(&first) >= 5, "{first}");
    assert!(first.contains("RUNNING HANDLER [shipd : Restart shipd]"));
    assert!(
        !first.contains("s3cret-from-the-vault"),
        "the password leaked into the output"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/shipd/openobserve-password")).unwrap(),
        "s3cret-from-the-vault\n"
    );
    assert_eq!(mode(&root.join("etc/shipd/openobserve-password")), 0o640);
    let env = std::fs::read_to_string(root.join("etc/shipd/shipd.env")).unwrap();
    for line in [
        "OPENOBSERVE_URL=http://pi-obs:5080",
        "OPENOBSERVE_USER=ops@example.com",
        "OPENOBSERVE_PASSWORD_FILE=/etc/shipd/openobserve-password",
        "SHIPD_LOG_FILES=/var/log/nginx/*.log,/var/log/app/*.log",
        "SHIPD_HOSTNAME=localhost",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} not in {env}");
    }
    let agent = agent_variables();
    for var in env_file_variables(&env) {
        assert!(
            agent.contains(&var) || PLANNED_VARIABLES.contains(&var.as_str()),
            "the role writes {var}, which shipd does not read"
        );
    }
    assert_eq!(
        std::fs::read_to_string(root.join("etc/systemd/system/shipd.service")).unwrap(),
        read("deploy/systemd/shipd.service")
    );
    assert_eq!(mode(&root.join("usr/local/bin/shipd")), 0o755);

    let again = run_playbook(w, &root, &[]);
    assert_eq!(recap_changed(&again), 0, "{again}");
    assert!(!again.contains("RUNNING HANDLER"), "{again}");

    let changed = run_playbook(w, &root, &["-e", "shipd_openobserve_stream=pis"]);
    assert_eq!(recap_changed(&changed), 1, "{changed}");
    assert!(changed.contains("RUNNING HANDLER [shipd : Restart shipd]"));
    let env = std::fs::read_to_string(root.join("etc/shipd/shipd.env")).unwrap();
    assert!(env.lines().any(|l| l == "OPENOBSERVE_STREAM=pis"));
}

#[test]
fn ansible_role_makes_a_private_ca_and_installs_ca_server_and_client_certificates() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let root = w.join("root");
    let tls = w.join("tls");
    std::fs::write(
        w.join("inventory.yml"),
        "web:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n",
    )
    .unwrap();
    std::fs::write(w.join("vault-pass"), "test-vault-pass\n").unwrap();
    std::fs::write(
        w.join("vault.yml"),
        "vault_openobserve_user: ops@example.com\nvault_openobserve_password: s3cret\n",
    )
    .unwrap();
    let tls_dir = format!("shipd_tls_dir={}", tls.display());
    let args = [
        "-e",
        "shipd_tls_create_ca=true",
        "-e",
        "shipd_tls_create_client_certs=true",
        "-e",
        tls_dir.as_str(),
        "-e",
        "shipd_tls_server_host=localhost",
    ];
    let first = run_playbook(w, &root, &args);
    assert!(first.contains("RUNNING HANDLER [shipd : Restart shipd]"));
    assert!(!first.contains("PRIVATE KEY-----"), "a key leaked: {first}");

    // The CA key stays on the controller; nodes get the CA certificate.
    assert_eq!(mode(&tls), 0o700);
    assert!(tls.join("ca.key").exists());
    assert_eq!(
        std::fs::read(root.join("etc/shipd/ca.pem")).unwrap(),
        std::fs::read(tls.join("ca.pem")).unwrap()
    );
    assert!(!root.join("etc/shipd/ca.key").exists() && !root.join("etc/nginx/tls/ca.key").exists());
    assert_eq!(mode(&root.join("etc/shipd/client.key")), 0o640);
    assert_eq!(mode(&root.join("etc/nginx/tls/localhost.key")), 0o600);
    let env = std::fs::read_to_string(root.join("etc/shipd/shipd.env")).unwrap();
    for line in [
        "OPENOBSERVE_CA_FILE=/etc/shipd/ca.pem",
        "OPENOBSERVE_CERT_FILE=/etc/shipd/client.pem",
        "OPENOBSERVE_KEY_FILE=/etc/shipd/client.key",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} not in {env}");
    }
    let agent = agent_variables();
    for var in env_file_variables(&env) {
        assert!(
            agent.contains(&var) || PLANNED_VARIABLES.contains(&var.as_str()),
            "the role writes {var}, which shipd does not read"
        );
    }

    // The CA signed a server certificate for the URL's host and a client one.
    let ca = tls.join("ca.pem");
    for (purpose, cert) in [
        ("sslserver", root.join("etc/nginx/tls/localhost.pem")),
        ("sslclient", root.join("etc/shipd/client.pem")),
    ] {
        let verify = tool("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile"])
            .arg(&ca)
            .arg(&cert)
            .output()
            .unwrap();
        assert!(verify.status.success(), "{}", text(&verify));
    }
    let san = tool("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(root.join("etc/nginx/tls/localhost.pem"))
        .output()
        .unwrap();
    assert!(text(&san).contains("DNS:pi-obs"), "{}", text(&san));

    let again = run_playbook(w, &root, &args);
    assert_eq!(recap_changed(&again), 0, "{again}");
}

#[test]
fn ansible_playbook_checks_and_lints_clean() {
    let syntax = tool("ansible-playbook")
        .current_dir(ansible_dir())
        .env("ANSIBLE_NOCOLOR", "1")
        .args(["--syntax-check", "site.yml"])
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{}", text(&syntax));
    let inventory = tool("ansible-inventory")
        .current_dir(ansible_dir())
        .args(["--list"])
        .output()
        .unwrap();
    assert!(inventory.status.success(), "{}", text(&inventory));
    let hosts: Value = serde_json::from_slice(&inventory.stdout).unwrap();
    for (group, members) in [
        ("lb", vec!["lb"]),
        ("web", vec!["web1", "web2"]),
        ("db", vec!["db"]),
        ("observability", vec!["pi-obs"]),
    ] {
        assert_eq!(
            hosts[group]["hosts"],
            serde_json::json!(members),
            "group {group}"
        );
    }
    let lint = tool("ansible-lint")
        .current_dir(ansible_dir())
        .env("ANSIBLE_NOCOLOR", "1")
        .args(["--offline", "--nocolor"])
        .output()
        .unwrap();
    assert!(lint.status.success(), "ansible-lint: {}", text(&lint));
}

/// Streams the dashboards may query: OpenTelemetry host metrics (`.` → `_`),
/// the Raspberry Pi readings, shipd's own counters, and the log stream.
const KNOWN_STREAMS: [&str; 22] = [
    "system_cpu_utilization",
    "system_cpu_load_average_1m",
    "system_cpu_frequency",
    "system_memory_utilization",
    "system_paging_usage",
    "system_filesystem_utilization",
    "system_disk_io",
    "system_network_io",
    "system_network_errors",
    "system_uptime",
    "shipd_node_health",
    "hw_temperature",
    "rpi_throttled",
    "rpi_mmc_life_time_estimate",
    "rpi_mmc_written",
    "shipd_events_in_total",
    "shipd_events_out_total",
    "shipd_events_dropped_total",
    "shipd_retries_total",
    "shipd_disk_bytes_written_total",
    "shipd_fsync_total",
    "default",
];

fn json_files(rel: &str) -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(repo().join(rel))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let body = std::fs::read_to_string(&p).unwrap();
            let value: Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.display().to_string(), value)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

fn streams_in(sql: &str) -> Vec<String> {
    sql.split("FROM \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn dashboards_and_alerts_query_only_known_streams() {
    // shipd's own metric names, as /metrics renders them (README).
    let readme = read("README.md");
    for own in KNOWN_STREAMS
        .iter()
        .filter(|s| s.starts_with("shipd_events"))
    {
        assert!(readme.contains(own), "{own} is not one of shipd's metrics");
    }
    let dashboards = json_files("deploy/openobserve/dashboards");
    assert_eq!(dashboards.len(), 2);
    let mut panels = 0;
    let mut queried = BTreeSet::new();
    for (path, d) in &dashboards {
        assert_eq!(d["version"], 8, "{path}");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
        for tab in d["tabs"].as_array().unwrap() {
            let mut ids = BTreeSet::new();
            for panel in tab["panels"].as_array().unwrap() {
                panels += 1;
                assert!(ids.insert(panel["id"].as_str().unwrap().to_owned()));
                let query = &panel["queries"][0];
                let sql = query["query"].as_str().unwrap();
                let stream = query["fields"]["stream"].as_str().unwrap();
                assert_eq!(streams_in(sql), vec![stream.to_owned()], "{path}: {sql}");
                assert!(KNOWN_STREAMS.contains(&stream), "{path}: unknown {stream}");
                let kind = query["fields"]["stream_type"].as_str().unwrap();
                assert_eq!(kind == "logs", stream == "default", "{path}: {stream}");
                queried.insert(stream.to_owned());
            }
        }
    }
    assert!(panels >= 20, "{panels} panels");
    for must in [
        "system_cpu_utilization",
        "system_memory_utilization",
        "hw_temperature",
        "rpi_throttled",
        "system_filesystem_utilization",
        "rpi_mmc_life_time_estimate",
        "system_network_io",
        "default",
        "shipd_events_out_total",
    ] {
        assert!(queried.contains(must), "no panel shows {must}");
    }

    let alerts = json_files("deploy/openobserve/alerts");
    let names: BTreeSet<_> = alerts
        .iter()
        .map(|(_, a)| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains("node_critical") && names.contains("shipd_not_delivering"));
    for (path, a) in &alerts {
        let stream = a["stream_name"].as_str().unwrap();
        assert!(KNOWN_STREAMS.contains(&stream), "{path}: {stream}");
        let sql = a["query_condition"]["sql"].as_str().unwrap();
        assert_eq!(streams_in(sql), vec![stream.to_owned()], "{path}");
        assert!(a["trigger_condition"]["period"].as_u64().unwrap() > 0);
        assert!(!a["destinations"].as_array().unwrap().is_empty());
    }
}
