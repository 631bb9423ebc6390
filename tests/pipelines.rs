//! The example pipelines run in the real daemon: `shipd --config` starts on
//! them and stops cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn runs(pipeline: &str) {
    runs_with(pipeline, &[]);
}

/// Like [`runs`], with `env` set for the daemon.
fn runs_with(pipeline: &str, env: &[(&str, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shipd.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shipd"))
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/").to_owned() + pipeline)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHIPD_DATA_DIR", dir.path().join("data"))
        .env("SHIPD_API_ADDR", "off")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("shipd started")
    {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{pipeline}: shipd exited with {status}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{pipeline}: shipd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{pipeline}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn shipd_runs_the_pi_node_pipeline() {
    runs("pi-node.ship");
}

#[test]
fn shipd_runs_the_nginx_lb_pipeline() {
    runs("nginx-lb.ship");
}

#[test]
fn shipd_runs_the_compose_sidecar_and_k3s_pipelines() {
    runs("compose-sidecar.ship");
    runs("k3s-node.ship");
}

#[test]
fn shipd_runs_the_compose_fluentd_pipeline() {
    // A free port rather than fluentd's 24224, which this machine may use.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    runs_with(
        "compose-fluentd.ship",
        &[("SHIPD_FORWARD", format!("127.0.0.1:{port}"))],
    );
}

/// The cookbook's recipes (docs/cookbook.md) start as they are, not only
/// pass their tests: their globs may match nothing and the sinks fall back
/// to the console.
#[test]
fn shipd_runs_the_cookbook_pipelines() {
    for pipeline in [
        "pm2-pino.ship",
        "mariadb.ship",
        "privacy.ship",
        "nginx-custom.ship",
        "nginx-metrics.ship",
    ] {
        runs(pipeline);
    }
}
