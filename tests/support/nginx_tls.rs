//! TLS fixtures: a private CA and the certificates it signs (generated with
//! rcgen inside the test), and Debian's nginx run in the foreground from a
//! temporary directory, terminating TLS on 127.0.0.1 in front of the
//! in-process receivers (OTLP/HTTP with `proxy_pass`, OTLP/gRPC with
//! `grpc_pass`), one server block per certificate case.
#![allow(dead_code)]

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The exposition nginx serves at `/metrics` on its TLS ports.
pub const PROBE_METRIC: &str = "tls_probe_value";
pub const PROBE_VALUE: f64 = 42.0;

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every certificate the TLS tests need, written under one directory.
#[derive(Debug, Clone)]
pub struct Certs {
    /// The private CA's certificate (PEM): what a client must trust.
    pub ca: PathBuf,
    /// A server certificate for `localhost` and 127.0.0.1, signed by the CA.
    pub server: Pair,
    /// Like `server`, but its validity ended in 2021.
    pub expired: Pair,
    /// Signed by the CA for `other.example` only.
    pub wrong_name: Pair,
    /// A client certificate (mutual TLS), signed by the CA.
    pub client: Pair,
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "shipd tests");
    dn
}

fn write_pair(dir: &Path, stem: &str, cert: &rcgen::Certificate, key: &KeyPair) -> Pair {
    let pair = Pair {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}-key.pem")),
    };
    std::fs::write(&pair.cert, cert.pem()).unwrap();
    std::fs::write(&pair.key, key.serialize_pem()).unwrap();
    pair
}

impl Certs {
    /// Generates the CA and the certificates it signs into `dir`.
    pub fn generate(dir: &Path) -> Certs {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name = name("shipd test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |stem: &str, sans: &[&str], client: bool, expired: bool| {
            let key = KeyPair::generate().unwrap();
            let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name = name(stem);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![if client {
                ExtendedKeyUsagePurpose::ClientAuth
            } else {
                ExtendedKeyUsagePurpose::ServerAuth
            }];
            params.use_authority_key_identifier_extension = true;
            if expired {
                params.not_before = date_time_ymd(2020, 1, 1);
                params.not_after = date_time_ymd(2021, 1, 1);
            } else {
                params.not_before = date_time_ymd(2024, 1, 1);
                params.not_after = date_time_ymd(2099, 1, 1);
            }
            let cert = params.signed_by(&key, &issuer).unwrap();
            write_pair(dir, stem, &cert, &key)
        };
        Certs {
            server: leaf("server", &["localhost", "127.0.0.1"], false, false),
            expired: leaf("expired", &["localhost", "127.0.0.1"], false, true),
            wrong_name: leaf("wrong-name", &["other.example"], false, false),
            client: leaf("client", &["shipd-client.test"], true, false),
            ca,
        }
    }
}

/// Where nginx is: Debian's package installs it as `/usr/sbin/nginx`.
pub fn nginx_binary() -> PathBuf {
    let candidates = std::iter::once(PathBuf::from("/usr/sbin/nginx")).chain(
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.join("nginx")),
    );
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the TLS tests need nginx (Debian's /usr/sbin/nginx, with the ssl, http_v2 and grpc \
         modules): install it with `apt-get install nginx` (test.sh does) — not skipping"
    );
}

/// Where the TLS server blocks send what they receive.
#[derive(Debug, Clone, Copy)]
pub struct Upstreams {
    /// An OTLP/HTTP receiver (plain HTTP), behind `proxy_pass`.
    pub http: SocketAddr,
    /// An OTLP/gRPC receiver (h2c), behind `grpc_pass`; no gRPC block without it.
    pub grpc: Option<SocketAddr>,
}

/// nginx running in the foreground; killed (with its worker) on drop.
pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
    /// The `localhost` certificate, proxying to the HTTP upstream, and
    /// answering `GET /metrics` itself with [`PROBE_METRIC`].
    pub good: u16,
    /// The `localhost` certificate over HTTP/2, `grpc_pass` to the gRPC upstream.
    pub grpc: Option<u16>,
    /// The expired certificate.
    pub expired: u16,
    /// The certificate for `other.example`.
    pub wrong_name: u16,
    /// The `localhost` certificate, and a client certificate signed by the CA required.
    pub mtls: u16,
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A loopback port that nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn server_block(port: u16, pair: &Pair, extra: &str, locations: &str, http2: bool) -> String {
    // `listen ... http2` (not `http2 on;`, which nginx < 1.25.1 refuses):
    // Debian bookworm ships 1.22, later releases accept it with a warning.
    let h2 = if http2 { " http2" } else { "" };
    format!(
        "    server {{
        listen 127.0.0.1:{port} ssl{h2};
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
{extra}{locations}    }}
",
        cert = pair.cert.display(),
        key = pair.key.display(),
    )
}

impl Nginx {
    /// Writes `dir/nginx.conf` for `certs` and `upstreams`, starts nginx and
    /// waits until every TLS port accepts connections.
    pub fn start(dir: &Path, certs: &Certs, upstreams: Upstreams) -> Nginx {
        let binary = nginx_binary();
        std::fs::create_dir_all(dir).unwrap();
        let (good, expired, wrong_name, mtls) =
            (free_port(), free_port(), free_port(), free_port());
        let grpc = upstreams.grpc.map(|_| free_port());
        let proxy = format!(
            "        location = /metrics {{
            default_type text/plain;
            return 200 \"# TYPE {PROBE_METRIC} gauge\\n{PROBE_METRIC} {PROBE_VALUE}\\n\";
        }}
        location / {{
            proxy_pass http://{};
        }}
",
            upstreams.http
        );
        let mut servers = String::new();
        servers += &server_block(good, &certs.server, "", &proxy, false);
        servers += &server_block(expired, &certs.expired, "", &proxy, false);
        servers += &server_block(wrong_name, &certs.wrong_name, "", &proxy, false);
        let verify_client = format!(
            "        ssl_verify_client on;\n        ssl_client_certificate {};\n",
            certs.ca.display()
        );
        servers += &server_block(mtls, &certs.server, &verify_client, &proxy, false);
        if let (Some(port), Some(upstream)) = (grpc, upstreams.grpc) {
            let locations = format!(
                "        location / {{\n            grpc_pass grpc://{upstream};\n        }}\n"
            );
            servers += &server_block(port, &certs.server, "", &locations, true);
        }
        let d = dir.display();
        let user = if running_as_root() {
            // Workers would run as nobody, who cannot write the temp
            // directories of a root-owned test directory.
            "user root;\n"
        } else {
            ""
        };
        let conf = format!(
            "{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    client_max_body_size 64m;
    proxy_http_version 1.1;
    ssl_protocols TLSv1.2 TLSv1.3;
{servers}}}
"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let output = std::fs::File::create(dir.join("nginx.out")).unwrap();
        let child = Command::new(&binary)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            // Its own process group: the worker goes with the master on drop.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut nginx = Nginx {
            child,
            dir: dir.to_path_buf(),
            good,
            grpc,
            expired,
            wrong_name,
            mtls,
        };
        nginx.wait_ready(Duration::from_secs(20));
        nginx
    }

    fn ports(&self) -> Vec<u16> {
        let mut ports = vec![self.good, self.expired, self.wrong_name, self.mtls];
        ports.extend(self.grpc);
        ports
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut pending = self.ports();
        while !pending.is_empty() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "nginx exited ({status}) before listening:\n{}",
                    self.diagnostics()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nginx never accepted on {pending:?}:\n{}",
                self.diagnostics()
            );
            pending.retain(|port| {
                TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], *port)),
                    Duration::from_millis(200),
                )
                .is_err()
            });
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `https://127.0.0.1:port`.
    pub fn url(&self, port: u16) -> String {
        format!("https://127.0.0.1:{port}")
    }

    /// nginx's error log, its output and its configuration, for failure messages.
    pub fn diagnostics(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "--- nginx error.log\n{}--- nginx output\n{}--- nginx.conf\n{}",
            read("error.log"),
            read("nginx.out"),
            read("nginx.conf")
        )
    }

    /// nginx's access log (one line per proxied request).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signals to the process (group) this guard started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (a worker, a master that hung).
        // SAFETY: as above; the group id is the master's pid.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
