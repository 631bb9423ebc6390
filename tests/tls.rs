//! TLS with the real binaries: shipd ships a tailed file (and a scraped
//! Prometheus target) through Debian's nginx terminating TLS in front of the
//! in-process receivers, with certificates made by a private CA inside the
//! test. A private CA, mutual TLS, gRPC over TLS and "insecure" deliver
//! every line; an unknown CA, an expired certificate, a wrong host name and
//! a missing client certificate are named in the log, `GET /health` and
//! `shipctl status` with nothing delivered, and the lines held back by an
//! unknown CA (fixed by a SIGHUP reload) or a missing client certificate
//! (fixed by a restart) all arrive once fixed; no password (nor its
//! Basic-auth encoding) shows anywhere, even at trace.
//!
//! nginx is required (test.sh installs it): without it these tests fail
//! saying so, they do not skip.

mod common;
#[path = "support/nginx_tls.rs"]
mod nginx_tls;
#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use base64::Engine;
use common::*;
use nginx_tls::{Certs, Nginx, Upstreams, PROBE_METRIC, PROBE_VALUE};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
const LINES: usize = 200;

/// One test's world: certificates, receivers and nginx in front of them.
/// nginx is declared first so it stops before the directory goes.
struct World {
    nginx: Nginx,
    receiver: Receiver,
    grpc: Option<Receiver>,
    certs: Certs,
    dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

impl World {
    fn new(with_grpc: bool) -> World {
        World::with_script(with_grpc, always_accept())
    }

    fn with_script(with_grpc: bool, script: Script) -> World {
        let rt = runtime();
        let receiver = http_receiver(&rt, script);
        let grpc = with_grpc.then(|| grpc_receiver(&rt, always_accept()));
        let dir = tempfile::tempdir().unwrap();
        let certs = Certs::generate(&dir.path().join("certs"));
        let nginx = Nginx::start(
            &dir.path().join("nginx"),
            &certs,
            Upstreams {
                http: receiver.addr,
                grpc: grpc.as_ref().map(|g| g.addr),
            },
        );
        World {
            nginx,
            receiver,
            grpc,
            certs,
            dir,
            _rt: rt,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A file holding `LINES` lines tagged `tag`, written before shipd
    /// starts, in a directory of its own (shipd watches the file's
    /// directory: its own log there would feed its trace log back to it).
    fn lines_file(&self, tag: &str) -> (PathBuf, Vec<String>) {
        let input = self.path("input");
        std::fs::create_dir_all(&input).unwrap();
        let file = input.join(format!("{tag}.log"));
        let lines = nginx_lines(tag, LINES);
        append_lines(&file, &lines, LINES, Duration::ZERO);
        (file, lines)
    }

    /// shipd's environment: the default pipeline tailing `file` from the
    /// beginning and shipping it to `url` (over gRPC when `transport` says so).
    fn env(&self, transport: &str, url: String, file: &Path) -> Vec<(&'static str, String)> {
        let receiver = match transport {
            "grpc" => self.grpc.as_ref().expect("a world with a gRPC receiver"),
            _ => &self.receiver,
        };
        let mut env = ship_env(
            receiver,
            transport,
            &file.display().to_string(),
            &self.path("data"),
        );
        let key = match transport {
            "grpc" => "OPENOBSERVE_GRPC_URL",
            _ => "OPENOBSERVE_URL",
        };
        set(&mut env, key, url);
        set(&mut env, "SHIPD_READ_FROM", "beginning".to_owned());
        set(&mut env, "SHIPD_DRAIN_TIMEOUT", "2s".to_owned());
        env
    }

    /// shipd shipping a fresh file of lines over HTTPS to nginx's `port`,
    /// trusting the private CA, with `extra` environment on top.
    fn start_trusting_ca(
        &self,
        port: u16,
        tag: &str,
        extra: &[(&'static str, &str)],
    ) -> (Shipd, Vec<String>) {
        let (file, lines) = self.lines_file(tag);
        let mut env = self.env("http", self.nginx.url(port), &file);
        env.push(("OPENOBSERVE_CA_FILE", self.ca()));
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        (Shipd::start(&env, &self.path("shipd.log")), lines)
    }

    fn ca(&self) -> String {
        self.certs.ca.display().to_string()
    }

    fn failure_context(&self, shipd: &Shipd) -> String {
        format!(
            "--- shipd log\n{}\n{}--- nginx access.log\n{}",
            shipd.log(),
            self.nginx.diagnostics(),
            self.nginx.access_log()
        )
    }

    /// Every line of `lines` arrived at `receiver`, none twice, nothing else.
    fn assert_delivered(&self, receiver: &Receiver, lines: &[String], shipd: &Shipd) {
        let missing = receiver.wait_for_all(lines, WAIT);
        std::thread::sleep(Duration::from_millis(300));
        let t = tally(&receiver.bodies(), lines);
        assert!(
            missing == 0 && t.missing == 0 && t.duplicates == 0 && t.unexpected == 0,
            "{} of {} lines lost, {} duplicates, {} unexpected\n{}",
            t.missing,
            lines.len(),
            t.duplicates,
            t.unexpected,
            self.failure_context(shipd)
        );
    }

    /// shipd names the failure `needle` in its log, in `GET /health` and
    /// in `shipctl status --json`, and nothing reached `receiver`.
    fn assert_named_failure(&self, shipd: &Shipd, needle: &str, receiver: &Receiver) {
        assert!(
            shipd.wait_log(needle, WAIT),
            "shipd never logged {needle:?}\n{}",
            self.failure_context(shipd)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let health = loop {
            let (status, body) = http_get(shipd.api, "/health");
            let named = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["failing"].as_array().cloned())
                .is_some_and(|failing| {
                    failing
                        .iter()
                        .any(|f| f["reason"].as_str().is_some_and(|r| r.contains(needle)))
                });
            if status == 503 && named {
                break body;
            }
            assert!(
                Instant::now() < deadline,
                "GET /health never named {needle:?}: {status} {body}\n{}",
                self.failure_context(shipd)
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let status = status_json(&shipd.control_socket);
        let named = status["components"].as_array().is_some_and(|components| {
            components.iter().any(|c| {
                c["failing"] == true && c["last_error"].as_str().is_some_and(|e| e.contains(needle))
            })
        });
        assert!(
            named,
            "shipctl status --json does not name {needle:?}: {status}"
        );
        assert_eq!(
            receiver.count(),
            0,
            "records arrived although the handshake fails; /health: {health}"
        );
    }
}

/// Sets `key` in `env`, replacing an earlier value.
fn set(env: &mut Vec<(&'static str, String)>, key: &'static str, value: String) {
    env.retain(|(k, _)| *k != key);
    env.push((key, value));
}

fn shipctl(socket: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipctl"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHIPD_CONTROL_SOCKET", socket);
    cmd
}

/// `shipctl status --json` (its exit code says healthy or not; both print JSON).
fn status_json(socket: &Path) -> serde_json::Value {
    let out = shipctl(socket).args(["status", "--json"]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "shipctl status --json printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn harness_nginx_terminates_tls_with_each_certificate_in_front_of_the_receiver() {
    let w = World::new(false);
    let rt = runtime();
    let pem = |p: &Path| std::fs::read(p).unwrap();
    let client = |identity: bool| {
        let mut b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem(&w.certs.ca)).unwrap());
        if identity {
            let both = [pem(&w.certs.client.cert), pem(&w.certs.client.key)].concat();
            b = b.identity(reqwest::Identity::from_pem(&both).unwrap());
        }
        b.build().unwrap()
    };
    let body = |tag: &str| {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(tag.to_owned())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    };
    let post = |client: &reqwest::Client, port: u16, tag: &str| {
        rt.block_on(
            client
                .post(format!("https://localhost:{port}/api/pis/v1/logs"))
                .header("content-type", "application/x-protobuf")
                .body(body(tag))
                .send(),
        )
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
    };
    let n = &w.nginx;
    let diag = || n.diagnostics();
    assert_eq!(post(&client(false), n.good, "good"), Ok(200), "{}", diag());
    assert_eq!(post(&client(true), n.mtls, "mtls"), Ok(200), "{}", diag());
    assert_eq!(
        post(&client(false), n.mtls, "no-client-cert"),
        Ok(400),
        "nginx answers 400 without a client certificate\n{}",
        diag()
    );
    let expired = post(&client(false), n.expired, "expired").unwrap_err();
    assert!(expired.contains("Expired"), "{expired}");
    let wrong = post(&client(false), n.wrong_name, "wrong").unwrap_err();
    assert!(wrong.contains("NotValidForName"), "{wrong}");
    let untrusted = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem(&w.certs.client.cert)).unwrap())
        .build()
        .unwrap();
    let unknown = post(&untrusted, n.good, "unknown").unwrap_err();
    assert!(unknown.contains("UnknownIssuer"), "{unknown}");
    let metrics = rt
        .block_on(async {
            client(false)
                .get(format!("https://127.0.0.1:{}/metrics", n.good))
                .send()
                .await?
                .text()
                .await
        })
        .unwrap();
    assert!(
        metrics.contains(&format!("{PROBE_METRIC} {PROBE_VALUE}")),
        "{metrics}"
    );
    assert_eq!(w.receiver.bodies(), ["good", "mtls"]);
}

#[test]
fn a_private_ca_file_delivers_every_line_over_https() {
    let w = World::new(false);
    let (shipd, lines) = w.start_trusting_ca(w.nginx.good, "https-ca", &[]);
    w.assert_delivered(&w.receiver, &lines, &shipd);
    assert!(
        w.nginx.access_log().contains("POST /api/pis/v1/logs"),
        "the records went through nginx"
    );
    assert_eq!(shipd.terminate(), Some(0), "SIGTERM exits 0");
}

#[test]
fn a_private_ca_file_delivers_every_line_over_grpc_through_nginx_grpc_pass() {
    let w = World::new(true);
    let (file, lines) = w.lines_file("grpc-ca");
    let port = w.nginx.grpc.unwrap();
    let mut env = w.env("grpc", w.nginx.url(port), &file);
    env.push(("OPENOBSERVE_CA_FILE", w.ca()));
    let shipd = Shipd::start(&env, &w.path("shipd.log"));
    let grpc = w.grpc.as_ref().unwrap();
    w.assert_delivered(grpc, &lines, &shipd);
    assert!(
        w.nginx
            .access_log()
            .contains("/opentelemetry.proto.collector.logs"),
        "the records went through nginx's grpc_pass\n{}",
        w.nginx.access_log()
    );
    assert_eq!(shipd.terminate(), Some(0), "SIGTERM exits 0");
}

#[test]
fn grpc_without_the_ca_reports_unknown_certificate_authority() {
    let w = World::new(true);
    let (file, _) = w.lines_file("grpc-no-ca");
    let port = w.nginx.grpc.unwrap();
    let env = w.env("grpc", w.nginx.url(port), &file);
    let shipd = Shipd::start(&env, &w.path("shipd.log"));
    w.assert_named_failure(
        &shipd,
        "unknown certificate authority",
        w.grpc.as_ref().unwrap(),
    );
}

/// A pipeline file tailing `file` from the beginning into an openobserve
/// sink at `url`, with `tls` (a `tls = { ... }` line, or nothing).
fn pipeline(file: &Path, data: &Path, url: &str, tls: &str) -> String {
    format!(
        r#"settings {{ data_dir = "{data}", checkpoint_interval = 1s, drain_timeout = 2s }}
source app = files {{
  include = ["{file}"], read_from = "beginning", poll_interval = 50ms, glob_interval = 200ms
}}
sink o2 = openobserve {{
  url = "{url}", org = "pis", user = "root@example.com", password = "pw",
  stream = "tls", batch.timeout = 200ms, retry_max = 1s
  {tls}
}}
route {{
  else => o2
}}
"#,
        data = data.display(),
        file = file.display(),
    )
}

#[test]
fn without_the_ca_unknown_certificate_authority_is_named_then_adding_ca_file_and_sighup_delivers_every_line(
) {
    let w = World::new(false);
    let (file, lines) = w.lines_file("reload-ca");
    let url = format!("https://localhost:{}", w.nginx.good);
    let config = w.path("pipeline.ship");
    let data = w.path("data");
    std::fs::write(&config, pipeline(&file, &data, &url, "")).unwrap();
    let shipd = Shipd::start_with_args(
        &["--config", config.to_str().unwrap()],
        &[],
        &w.path("shipd.log"),
    );
    w.assert_named_failure(&shipd, "unknown certificate authority", &w.receiver);

    let tls = format!(r#"tls = {{ ca_file: "{}" }}"#, w.ca());
    std::fs::write(&config, pipeline(&file, &data, &url, &tls)).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &shipd.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        shipd.wait_log("pipeline reloaded", WAIT),
        "{}",
        w.failure_context(&shipd)
    );
    w.assert_delivered(&w.receiver, &lines, &shipd);
    let (status, body) = http_get(shipd.api, "/health");
    assert_eq!(status, 200, "healthy again once delivering: {body}");
}

#[test]
fn an_expired_server_certificate_is_named_certificate_expired_and_nothing_is_delivered() {
    let w = World::new(false);
    let (shipd, _) = w.start_trusting_ca(w.nginx.expired, "expired", &[]);
    w.assert_named_failure(&shipd, "certificate expired", &w.receiver);
}

#[test]
fn a_certificate_for_another_host_is_named_wrong_host_name_and_nothing_is_delivered() {
    let w = World::new(false);
    let (shipd, _) = w.start_trusting_ca(w.nginx.wrong_name, "wrong-name", &[]);
    w.assert_named_failure(&shipd, "wrong host name", &w.receiver);
}

#[test]
fn tls_server_name_accepts_the_certificate_of_that_name_and_delivers_every_line() {
    let w = World::new(false);
    let (shipd, lines) = w.start_trusting_ca(
        w.nginx.wrong_name,
        "server-name",
        &[("OPENOBSERVE_TLS_SERVER_NAME", "other.example")],
    );
    w.assert_delivered(&w.receiver, &lines, &shipd);
}

#[test]
fn mutual_tls_with_a_client_certificate_delivers_every_line() {
    let w = World::new(false);
    let (file, lines) = w.lines_file("mtls");
    let mut env = w.env("http", w.nginx.url(w.nginx.mtls), &file);
    env.push(("OPENOBSERVE_CA_FILE", w.ca()));
    env.push((
        "OPENOBSERVE_CERT_FILE",
        w.certs.client.cert.display().to_string(),
    ));
    env.push((
        "OPENOBSERVE_KEY_FILE",
        w.certs.client.key.display().to_string(),
    ));
    let shipd = Shipd::start(&env, &w.path("shipd.log"));
    w.assert_delivered(&w.receiver, &lines, &shipd);
    assert_eq!(shipd.terminate(), Some(0), "SIGTERM exits 0");
}

/// nginx answers 400 ("No required SSL certificate was sent") when a client
/// certificate is demanded and none comes: named, retried, never dropped as
/// a rejected batch, so a restart with the certificate delivers every line.
#[test]
fn without_a_client_certificate_client_certificate_required_is_named_and_no_line_is_lost() {
    let w = World::new(false);
    let (file, lines) = w.lines_file("mtls-missing");
    let mut env = w.env("http", w.nginx.url(w.nginx.mtls), &file);
    env.push(("OPENOBSERVE_CA_FILE", w.ca()));
    let shipd = Shipd::start(&env, &w.path("shipd.log"));
    w.assert_named_failure(&shipd, "client certificate required", &w.receiver);
    assert_eq!(
        shipd.metric("shipd_events_dropped_total{component=\"openobserve\",reason=\"rejected\"}"),
        0,
        "the 400 of a missing client certificate is not a rejected batch\n{}",
        shipd.metrics()
    );
    shipd.terminate();

    env.push((
        "OPENOBSERVE_CERT_FILE",
        w.certs.client.cert.display().to_string(),
    ));
    env.push((
        "OPENOBSERVE_KEY_FILE",
        w.certs.client.key.display().to_string(),
    ));
    let shipd = Shipd::start(&env, &w.path("shipd-with-cert.log"));
    w.assert_delivered(&w.receiver, &lines, &shipd);
}

#[test]
fn tls_insecure_delivers_against_an_unknown_ca_and_warns_that_verification_is_disabled() {
    let w = World::new(false);
    let (file, lines) = w.lines_file("insecure");
    let mut env = w.env("http", w.nginx.url(w.nginx.good), &file);
    env.push(("OPENOBSERVE_TLS_INSECURE", "true".to_owned()));
    let shipd = Shipd::start(&env, &w.path("shipd.log"));
    w.assert_delivered(&w.receiver, &lines, &shipd);
    let log = shipd.log();
    let warned = log.lines().any(|l| {
        l.contains("certificate verification is disabled")
            && serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["level"] == "WARN")
    });
    assert!(
        warned,
        "no WARN saying certificate verification is disabled:\n{log}"
    );
}

/// Starts shipd scraping nginx's `/metrics` over https, shipping to a
/// receiver that records metric points; waits for the probe's point.
fn scrape_delivers_the_probe(scrape_tls: &[(&'static str, String)], sink_through_nginx: bool) {
    let rt = runtime();
    let receiver = otlp_receiver::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(&dir.path().join("certs"));
    let nginx = Nginx::start(
        &dir.path().join("nginx"),
        &certs,
        Upstreams {
            http: receiver.addr,
            grpc: None,
        },
    );
    let sink_url = if sink_through_nginx {
        nginx.url(nginx.good)
    } else {
        receiver.url()
    };
    let mut env: Vec<(&str, String)> = vec![
        ("OPENOBSERVE_URL", sink_url),
        ("OPENOBSERVE_ORG", "pis".to_owned()),
        ("OPENOBSERVE_CA_FILE", certs.ca.display().to_string()),
        (
            "SHIPD_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        (
            "SHIPD_SCRAPE_URLS",
            format!("https://127.0.0.1:{}/metrics", nginx.good),
        ),
        ("SHIPD_SCRAPE_INTERVAL", "1s".to_owned()),
        ("SHIPD_SCRAPE_TIMEOUT", "5s".to_owned()),
        ("SHIPD_BATCH_TIMEOUT", "200ms".to_owned()),
        ("SHIPD_RETRY_MAX", "1s".to_owned()),
    ];
    for (k, v) in scrape_tls {
        env.push((k, v.replace("{ca}", &certs.ca.display().to_string())));
    }
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    let arrived = receiver.wait_points(WAIT, |points| {
        points
            .iter()
            .any(|p| p.name == PROBE_METRIC && p.value == PROBE_VALUE)
    });
    assert!(
        arrived,
        "no {PROBE_METRIC} point arrived; points: {:?}\n--- shipd log\n{}\n{}",
        receiver
            .points()
            .iter()
            .map(|p| p.key())
            .collect::<Vec<_>>(),
        shipd.log(),
        nginx.diagnostics()
    );
    assert!(
        nginx.access_log().contains("GET /metrics"),
        "scraped through nginx"
    );
}

#[test]
fn an_https_prometheus_target_is_scraped_with_the_scrape_ca_file() {
    scrape_delivers_the_probe(&[("SHIPD_SCRAPE_CA_FILE", "{ca}".to_owned())], true);
}

#[test]
fn scrape_tls_insecure_scrapes_an_https_target_of_an_unknown_ca() {
    scrape_delivers_the_probe(&[("SHIPD_SCRAPE_TLS_INSECURE", "true".to_owned())], false);
}

const USER: &str = "shipper";
const PASSWORD: &str = "S3cret-Pass-xyz";

/// shipd with RUST_LOG=trace, stdout and stderr both into `log_path`.
fn start_tracing(env: &[(&str, String)], log_path: &Path) -> Shipd {
    let api = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap()
    };
    let control_socket = log_path.with_extension("sock");
    let child = Command::new(env!("CARGO_BIN_EXE_shipd"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "trace")
        .env("SHIPD_API_ADDR", api.to_string())
        .env("SHIPD_HOSTNAME", "test-node")
        .env("SHIPD_JOURNALD", "off")
        .env("SHIPD_METRICS_INTERVAL", "off")
        .env("SHIPD_CONTROL_SOCKET", &control_socket)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .stdout(open())
        .stderr(open())
        .spawn()
        .expect("shipd starts");
    Shipd {
        child,
        log_path: log_path.to_path_buf(),
        api,
        control_socket,
    }
}

/// Ships over TLS with the credentials in `env` while the receiver first
/// answers 401 then 503 (so failures are reported), then accepts; the
/// password, its base64 and the Basic-auth token appear nowhere shipd
/// speaks: its trace log (stdout and stderr), /health, /metrics, shipctl.
fn no_secret_appears(credentials: impl FnOnce(&mut Vec<(&'static str, String)>, u16)) {
    let script: Script = std::sync::Arc::new(|n, since| {
        if since < Duration::from_secs(3) {
            Reply::Fail(if n == 0 { 401 } else { 503 })
        } else {
            Reply::Accept
        }
    });
    let w = World::with_script(false, script);
    let (file, lines) = w.lines_file("secret");
    let mut env = w.env("http", String::new(), &file);
    env.retain(|(k, _)| {
        !matches!(
            *k,
            "OPENOBSERVE_URL" | "OPENOBSERVE_USER" | "OPENOBSERVE_PASSWORD"
        )
    });
    env.push(("OPENOBSERVE_CA_FILE", w.ca()));
    env.push(("SHIPD_RETRY_AUTH", "500ms".to_owned()));
    credentials(&mut env, w.nginx.good);
    let shipd = start_tracing(&env, &w.path("shipd.log"));

    let mut spoken: Vec<(String, String)> = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(shipd.api, "/health");
        if status == 503 {
            spoken.push(("GET /health while failing".into(), body));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/health never reported the 401/503 failures\n{}",
            w.failure_context(&shipd)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = |label: &str, spoken: &mut Vec<(String, String)>| {
        for args in [&["status", "--json"][..], &["status"][..]] {
            let out = shipctl(&shipd.control_socket).args(args).output().unwrap();
            spoken.push((
                format!("shipctl {} {label}", args.join(" ")),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ));
        }
    };
    status("while failing", &mut spoken);
    spoken.push(("GET /metrics while failing".into(), shipd.metrics()));

    w.assert_delivered(&w.receiver, &lines, &shipd);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for captured in w.receiver.captured() {
        assert_eq!(
            captured.headers.get("authorization"),
            Some(&format!("Basic {basic}")),
            "the credentials are sent to the server"
        );
    }
    spoken.push(("GET /health".into(), http_get(shipd.api, "/health").1));
    spoken.push(("GET /metrics".into(), shipd.metrics()));
    status("after delivery", &mut spoken);
    shipd.terminate();
    let log = std::fs::read_to_string(w.path("shipd.log")).unwrap();
    assert!(
        log.contains("TRACE"),
        "shipd logged at trace:\n{}",
        &log[..log.len().min(2000)]
    );
    spoken.push(("shipd's log at RUST_LOG=trace".into(), log));

    let secrets = [
        PASSWORD.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(PASSWORD),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(PASSWORD),
        basic.clone(),
        basic.trim_end_matches('=').to_owned(),
    ];
    for (what, text) in &spoken {
        for secret in &secrets {
            if let Some(at) = text.find(secret.as_str()) {
                let from = at.saturating_sub(200);
                let to = (at + secret.len() + 200).min(text.len());
                let excerpt = String::from_utf8_lossy(&text.as_bytes()[from..to]);
                panic!("{what} carries the secret {secret:?}: …{excerpt}…");
            }
        }
    }
}

#[test]
fn no_secret_appears_in_log_health_metrics_or_status_with_openobserve_password() {
    no_secret_appears(|env, port| {
        env.push(("OPENOBSERVE_URL", format!("https://127.0.0.1:{port}")));
        env.push(("OPENOBSERVE_USER", USER.to_owned()));
        env.push(("OPENOBSERVE_PASSWORD", PASSWORD.to_owned()));
    });
}

#[test]
fn no_secret_appears_in_log_health_metrics_or_status_with_the_password_in_the_url() {
    no_secret_appears(|env, port| {
        env.push((
            "OPENOBSERVE_URL",
            format!("https://{USER}:{PASSWORD}@127.0.0.1:{port}"),
        ));
    });
}

/// A one-connection-at-a-time HTTP CONNECT proxy on 127.0.0.1 that tunnels
/// to whatever it is asked for and remembers the targets.
fn connect_proxy() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for client in listener.incoming().take(50) {
            let Ok(mut client) = client else { continue };
            let record = std::sync::Arc::clone(&record);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap() <= 2 {
                        break;
                    }
                }
                let target = request.split_whitespace().nth(1).unwrap_or("").to_owned();
                record.lock().unwrap().push(request.trim().to_owned());
                let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let mut up_read = upstream.try_clone().unwrap();
                let mut client_write = client.try_clone().unwrap();
                let down = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_read, &mut client_write);
                    let _ = client_write.shutdown(std::net::Shutdown::Write);
                });
                let mut up_write = upstream;
                let _ = std::io::copy(&mut reader, &mut up_write);
                let _ = up_write.shutdown(std::net::Shutdown::Write);
                let _ = down.join();
            });
        }
    });
    (port, seen)
}

#[test]
fn https_proxy_carries_the_https_requests_and_no_proxy_bypasses_it() {
    let w = World::new(false);
    let (port, seen) = connect_proxy();
    let (file, lines) = w.lines_file("via-proxy");
    let mut env = w.env("http", w.nginx.url(w.nginx.good), &file);
    env.push(("OPENOBSERVE_CA_FILE", w.ca()));
    env.push(("HTTPS_PROXY", format!("http://127.0.0.1:{port}")));
    let shipd = Shipd::start(&env, &w.path("shipd.log"));
    w.assert_delivered(&w.receiver, &lines, &shipd);
    let tunnels = seen.lock().unwrap().clone();
    assert!(
        tunnels.iter().any(|t| t.starts_with("CONNECT ")),
        "shipd tunnelled through HTTPS_PROXY: {tunnels:?}"
    );
    assert_eq!(shipd.terminate(), Some(0));

    // NO_PROXY names the host: straight to nginx, the proxy sees nothing new.
    let before = seen.lock().unwrap().len();
    let w2 = World::new(false);
    let (file, lines) = w2.lines_file("no-proxy");
    let mut env = w2.env("http", w2.nginx.url(w2.nginx.good), &file);
    env.push(("OPENOBSERVE_CA_FILE", w2.ca()));
    env.push(("HTTPS_PROXY", format!("http://127.0.0.1:{port}")));
    env.push(("NO_PROXY", "localhost,127.0.0.1".to_owned()));
    let shipd = Shipd::start(&env, &w2.path("shipd.log"));
    w2.assert_delivered(&w2.receiver, &lines, &shipd);
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "NO_PROXY bypassed the proxy"
    );
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn an_unreadable_password_file_refuses_start_naming_the_variable_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-password");
    let out = Command::new(env!("CARGO_BIN_EXE_shipd"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHIPD_DATA_DIR", dir.path().join("data"))
        .env("SHIPD_API_ADDR", "off")
        .env("SHIPD_CONTROL_SOCKET", dir.path().join("c.sock"))
        .env("SHIPD_JOURNALD", "off")
        .env("OPENOBSERVE_URL", "https://127.0.0.1:9")
        .env("OPENOBSERVE_USER", USER)
        .env("OPENOBSERVE_PASSWORD_FILE", &missing)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "shipd refused to start: {text}");
    assert!(text.contains("OPENOBSERVE_PASSWORD_FILE"), "{text}");
    assert!(text.contains(&missing.display().to_string()), "{text}");
}

#[test]
fn basic_auth_over_plain_http_to_another_host_warns_once_in_the_log_health_and_status() {
    let dir = tempfile::tempdir().unwrap();
    // No source runs, so nothing is ever sent: 192.0.2.1 (TEST-NET-1) is
    // only named, never contacted.
    let env = vec![
        (
            "SHIPD_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("OPENOBSERVE_URL", "http://192.0.2.1:5080".to_owned()),
        ("OPENOBSERVE_USER", USER.to_owned()),
        ("OPENOBSERVE_PASSWORD", PASSWORD.to_owned()),
    ];
    let shipd = Shipd::start(&env, &dir.path().join("shipd.log"));
    assert!(shipd.wait_log("shipd started", WAIT), "{}", shipd.log());
    let log = shipd.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("credentials sent in cleartext"))
        .collect();
    assert_eq!(warnings.len(), 1, "one WARN at start:\n{log}");
    assert!(warnings[0].contains("\"WARN\""), "{}", warnings[0]);
    let (_, health) = http_get(shipd.api, "/health");
    assert!(health.contains("credentials sent in cleartext"), "{health}");
    let status = status_json(&shipd.control_socket);
    assert!(
        status.to_string().contains("credentials sent in cleartext"),
        "{status}"
    );
    assert!(!log.contains(PASSWORD) && !health.contains(PASSWORD));
    assert_eq!(shipd.terminate(), Some(0));
}

#[test]
fn a_tls_insecure_value_that_is_not_a_boolean_refuses_start_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shipd"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHIPD_DATA_DIR", dir.path().join("data"))
        .env("SHIPD_API_ADDR", "off")
        .env("SHIPD_CONTROL_SOCKET", dir.path().join("c.sock"))
        .env("SHIPD_JOURNALD", "off")
        .env("OPENOBSERVE_URL", "https://127.0.0.1:9")
        .env("OPENOBSERVE_TLS_INSECURE", "maybe")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a doubtful security switch is refused: {text}"
    );
    assert!(text.contains("OPENOBSERVE_TLS_INSECURE"), "{text}");
    assert!(text.contains("insecure_skip_verify"), "{text}");
}
