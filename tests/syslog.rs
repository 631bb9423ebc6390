//! End to end: the real shipd binary, with the default pipeline's
//! `SHIPD_SYSLOG`, receives syslog from real clients — util-linux `logger`
//! over UDP, TCP (newline and octet-counted framing) and a unix datagram
//! socket, and Debian's `rsyslogd` forwarding with `omfwd` over TCP with
//! octet counting — and ships every message once, parsed, to an in-process
//! OpenObserve-shaped receiver. Hostile clients (more connections than
//! allowed, an endless line, many huge messages) neither grow shipd's
//! memory past a bound nor keep other senders out.

mod common;

use common::{free_port, http_receiver, runtime, ship_env, Receiver, Reply, Shipd};
use opentelemetry_proto::tonic::common::v1::any_value;
use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any wait below may take.
const WAIT: Duration = Duration::from_secs(30);
const MIB: u64 = 1024 * 1024;

/// One delivered record, with what these tests look at.
#[derive(Debug, Clone)]
struct Rec {
    body: String,
    severity_text: String,
    severity_number: i32,
    time_unix_nano: u64,
    attrs: HashMap<String, String>,
    resource: HashMap<String, String>,
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.clone()) {
        Some(any_value::Value::StringValue(s)) => s,
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::BytesValue(b)) => String::from_utf8_lossy(&b).into_owned(),
        other => format!("{other:?}"),
    }
}

fn records(receiver: &Receiver) -> Vec<Rec> {
    let kv = |attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
        attrs
            .iter()
            .map(|a| (a.key.clone(), text(&a.value)))
            .collect::<HashMap<_, _>>()
    };
    let mut out = Vec::new();
    for captured in receiver.captured() {
        for rl in &captured.request.resource_logs {
            let resource = kv(&rl.resource.clone().unwrap_or_default().attributes);
            for sl in &rl.scope_logs {
                for lr in &sl.log_records {
                    out.push(Rec {
                        body: text(&lr.body),
                        severity_text: lr.severity_text.clone(),
                        severity_number: lr.severity_number,
                        time_unix_nano: lr.time_unix_nano,
                        attrs: kv(&lr.attributes),
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Waits until a record whose body contains each needle arrived; returns
/// the records of each needle (empty for one that never came).
fn wait_for(receiver: &Receiver, needles: &[&str]) -> Vec<Vec<Rec>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let recs = records(receiver);
        let found: Vec<Vec<Rec>> = needles
            .iter()
            .map(|n| {
                recs.iter()
                    .filter(|r| r.body.contains(n))
                    .cloned()
                    .collect()
            })
            .collect();
        if found.iter().all(|f| !f.is_empty()) || Instant::now() > deadline {
            // A late duplicate would show in a second look.
            std::thread::sleep(Duration::from_millis(300));
            let recs = records(receiver);
            return needles
                .iter()
                .map(|n| {
                    recs.iter()
                        .filter(|r| r.body.contains(n))
                        .cloned()
                        .collect()
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where one shipd listens.
struct Ports {
    udp: u16,
    tcp: u16,
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts shipd with the default pipeline receiving syslog on loopback
/// (and the unix socket `sock`, when given), shipping to `receiver`, its
/// RAM journal in `ram` (a directory on tmpfs).
fn start(
    receiver: &Receiver,
    dir: &Path,
    ram: &Path,
    sock: Option<&Path>,
    extra: &[(&'static str, String)],
) -> (Shipd, Ports) {
    let ports = Ports {
        udp: free_udp_port(),
        tcp: free_port(),
    };
    let mut listen = format!(
        "udp://127.0.0.1:{},tcp://127.0.0.1:{}",
        ports.udp, ports.tcp
    );
    if let Some(sock) = sock {
        listen.push_str(&format!(",unix://{}", sock.display()));
    }
    let mut env = ship_env(receiver, "http", "", &dir.join("data"));
    env.push(("SHIPD_SYSLOG", listen));
    env.push(("SHIPD_RUNTIME_DIR", ram.display().to_string()));
    env.extend(extra.iter().cloned());
    let shipd = Shipd::start(&env, &dir.join("shipd.log"));
    assert!(
        shipd.wait_log("syslog listening", WAIT),
        "shipd did not start listening: {}",
        shipd.log()
    );
    // Every listener logs once; wait for the last of them.
    let listeners = if sock.is_some() { 3 } else { 2 };
    let deadline = Instant::now() + WAIT;
    while shipd.log().matches("syslog listening").count() < listeners {
        assert!(Instant::now() < deadline, "{}", shipd.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    (shipd, ports)
}

fn logger(args: &[&str]) {
    let out = Command::new("logger")
        .args(args)
        .output()
        .expect("logger runs");
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn node_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

fn one<'a>(found: &'a [Rec], what: &str) -> &'a Rec {
    assert_eq!(
        found.len(),
        1,
        "{what} arrived {} times: {found:?}",
        found.len()
    );
    &found[0]
}

#[test]
fn logger_over_udp_tcp_octet_counting_and_unix_socket_arrives_once_parsed() {
    let rt = runtime();
    let receiver = http_receiver(&rt, common::always_accept());
    let dir = tempfile::tempdir().unwrap();
    let ram = tempfile::tempdir_in("/dev/shm").unwrap();
    let sock = dir.path().join("syslog.sock");
    let (shipd, ports) = start(&receiver, dir.path(), ram.path(), Some(&sock), &[]);
    let (udp, tcp) = (ports.udp.to_string(), ports.tcp.to_string());
    let server = |transport: &'static str, port: &str| {
        vec!["--server", "127.0.0.1", "--port", port, transport]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let send = |mut base: Vec<String>, more: &[&str]| {
        base.extend(more.iter().map(|s| s.to_string()));
        let args: Vec<&str> = base.iter().map(String::as_str).collect();
        logger(&args);
    };
    send(
        server("--udp", &udp),
        &[
            "--rfc3164",
            "-t",
            "router",
            "-p",
            "local7.warning",
            "m-udp-3164 link down",
        ],
    );
    send(
        server("--udp", &udp),
        &[
            "--rfc5424",
            "-i",
            "-t",
            "app5424",
            "-p",
            "auth.err",
            "--msgid",
            "LOGIN",
            "--sd-id",
            "origin@32473",
            "--sd-param",
            "rack=\"a3\"",
            "m-udp-5424 bad password",
        ],
    );
    send(
        server("--tcp", &tcp),
        &[
            "--rfc5424",
            "-t",
            "tcpnl",
            "-p",
            "daemon.info",
            "m-tcp-newline",
        ],
    );
    send(
        server("--tcp", &tcp),
        &[
            "--rfc5424",
            "--octet-count",
            "-t",
            "tcpoc",
            "-p",
            "user.notice",
            "m-tcp-octet\nsecond line",
        ],
    );
    send(
        server("--tcp", &tcp),
        &["--rfc3164", "-t", "old", "-p", "mail.crit", "m-tcp-3164"],
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o666,
        "every local user may send, as to /dev/log"
    );
    let unix_arg = sock.display().to_string();
    logger(&[
        "--socket",
        &unix_arg,
        "-t",
        "local",
        "-p",
        "cron.debug",
        "m-unix-local",
    ]);
    // Not syslog at all: kept whole, marked, counted.
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"plain garbage, no priority", ("127.0.0.1", ports.udp))
        .unwrap();

    let found = wait_for(
        &receiver,
        &[
            "m-udp-3164",
            "m-udp-5424",
            "m-tcp-newline",
            "m-tcp-octet",
            "m-tcp-3164",
            "m-unix-local",
            "plain garbage",
        ],
    );
    let host = node_hostname();

    let r = one(&found[0], "udp rfc3164");
    assert_eq!(r.body, "m-udp-3164 link down");
    assert_eq!(
        (r.severity_text.as_str(), r.severity_number),
        ("warning", 13)
    );
    assert_eq!(r.attrs["syslog.facility"], "local7");
    assert_eq!(r.attrs["syslog.appname"], "router");
    assert_eq!(r.attrs["network.peer.address"], "127.0.0.1");
    assert_eq!(r.resource["service.name"], "router");
    assert_eq!(r.resource["host.name"], host);
    assert_eq!(r.resource["shipd.source"], "syslog");
    // logger stamps the current time; shipd read it back near now (3164: to the second).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(
        now.abs_diff(r.time_unix_nano) < 600_000_000_000,
        "time {}",
        r.time_unix_nano
    );

    let r = one(&found[1], "udp rfc5424");
    assert_eq!(r.body, "m-udp-5424 bad password");
    assert_eq!((r.severity_text.as_str(), r.severity_number), ("err", 17));
    assert_eq!(r.attrs["syslog.facility"], "auth");
    assert_eq!(r.attrs["syslog.appname"], "app5424");
    assert_eq!(r.attrs["syslog.msgid"], "LOGIN");
    assert_eq!(r.attrs["syslog.sd.origin@32473.rack"], "a3");
    assert_eq!(r.attrs["syslog.version"], "1");
    let procid = &r.attrs["syslog.procid"];
    assert!(
        procid.parse::<u32>().is_ok(),
        "logger -i sends its pid: {procid}"
    );
    assert_eq!(r.resource["host.name"], host);

    let r = one(&found[2], "tcp newline framing");
    assert_eq!(r.body, "m-tcp-newline");
    assert_eq!(
        (
            r.severity_text.as_str(),
            r.attrs["syslog.facility"].as_str()
        ),
        ("info", "daemon")
    );

    let r = one(&found[3], "tcp octet counting");
    assert_eq!(
        r.body, "m-tcp-octet\nsecond line",
        "octet counting keeps the newline"
    );
    assert_eq!(r.attrs["syslog.appname"], "tcpoc");
    assert_eq!(r.severity_text, "notice");

    let r = one(&found[4], "tcp rfc3164");
    assert_eq!(r.body, "m-tcp-3164");
    assert_eq!(
        (
            r.severity_text.as_str(),
            r.attrs["syslog.facility"].as_str()
        ),
        ("crit", "mail")
    );

    let r = one(&found[5], "unix socket");
    assert_eq!(r.body, "m-unix-local");
    assert_eq!(r.attrs["syslog.appname"], "local");
    assert_eq!((r.severity_text.as_str(), r.severity_number), ("debug", 5));
    assert!(!r.attrs.contains_key("network.peer.address"));
    // logger writes no host name to a local socket: the node's name is used.
    assert_eq!(r.resource["host.name"], "test-node");

    let r = one(&found[6], "malformed datagram");
    assert_eq!(r.body, "plain garbage, no priority");
    assert!(r.attrs.contains_key("syslog.malformed"), "{r:?}");
    assert_eq!(r.severity_number, 0);
    assert_eq!(
        shipd.metric("shipd_syslog_malformed_total{component=\"syslog\"}"),
        1
    );
    assert_eq!(
        shipd.metric("shipd_events_in_total{component=\"syslog\"}"),
        7
    );
    assert_eq!(records(&receiver).len(), 7, "nothing else arrived");

    assert_eq!(shipd.terminate(), Some(0));
    assert!(!sock.exists(), "the unix socket is removed at stop");
}

/// rsyslogd, unprivileged flags, in its own directory: imudp on
/// `udp_port`, forwarding everything with omfwd over TCP with `framing`
/// (`octet-counted` or `traditional`, a newline after each message) and
/// the message format `template`.
fn rsyslogd(dir: &Path, udp_port: u16, shipd_tcp: u16, framing: &str, template: &str) -> Child {
    let work = dir.join("rsyslog-work");
    std::fs::create_dir_all(&work).unwrap();
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp_port}")
action(type="omfwd" target="127.0.0.1" port="{shipd_tcp}" protocol="tcp"
       TCP_Framing="{framing}" template="{template}")
"#,
            work = work.display()
        ),
    )
    .unwrap();
    Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("rsyslogd.log")).unwrap())
        .spawn()
        .expect("rsyslogd runs (apt-get install rsyslog)")
}

#[test]
fn rsyslog_forwarding_with_omfwd_octet_counted_rfc5424_arrives_once_parsed() {
    rsyslog_forwarding_arrives_once_parsed("octet-counted", "RSYSLOG_SyslogProtocol23Format");
}

/// rsyslog's traditional forward format: a BSD header with an RFC 3339
/// time, one message per line.
#[test]
fn rsyslog_forwarding_with_omfwd_newline_framed_forward_format_arrives_once_parsed() {
    rsyslog_forwarding_arrives_once_parsed("traditional", "RSYSLOG_ForwardFormat");
}

fn rsyslog_forwarding_arrives_once_parsed(framing: &str, template: &str) {
    let rt = runtime();
    let receiver = http_receiver(&rt, common::always_accept());
    let dir = tempfile::tempdir().unwrap();
    let ram = tempfile::tempdir_in("/dev/shm").unwrap();
    let (shipd, ports) = start(&receiver, dir.path(), ram.path(), None, &[]);
    let rsyslog_udp = free_udp_port();
    let mut rsyslog = rsyslogd(dir.path(), rsyslog_udp, ports.tcp, framing, template);
    // rsyslogd listens once its imudp input is up; until then datagrams are lost.
    let port = rsyslog_udp.to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        logger(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--udp",
            "--rfc3164",
            "-t",
            "probe",
            "probe-ready",
        ]);
        if !wait_probe(&receiver, Duration::from_millis(500)) {
            assert!(
                Instant::now() < deadline,
                "rsyslogd forwarded nothing: {}",
                std::fs::read_to_string(dir.path().join("rsyslogd.log")).unwrap_or_default()
            );
            continue;
        }
        break;
    }
    let n = 20;
    let lines: Vec<String> = (0..n)
        .map(|i| format!("via-rsyslog-{i:02} fan speed high"))
        .collect();
    for line in &lines {
        logger(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--udp",
            "--rfc3164",
            "-t",
            "relayed",
            "-p",
            "daemon.notice",
            line,
        ]);
    }
    let needles: Vec<&str> = lines.iter().map(|l| &l[..15]).collect();
    let found = wait_for(&receiver, &needles);
    let host = node_hostname();
    for (line, found) in lines.iter().zip(&found) {
        let r = one(found, line);
        // rsyslog keeps the space after the tag's colon in %msg%.
        assert_eq!(r.body.trim_start(), line);
        assert_eq!(
            (r.severity_text.as_str(), r.severity_number),
            ("notice", 10)
        );
        assert_eq!(r.attrs["syslog.facility"], "daemon");
        assert_eq!(r.attrs["syslog.appname"], "relayed");
        let rfc5424 = template == "RSYSLOG_SyslogProtocol23Format";
        assert_eq!(r.attrs.contains_key("syslog.version"), rfc5424, "{r:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(now.abs_diff(r.time_unix_nano) < 600_000_000_000, "{r:?}");
        assert_eq!(r.resource["host.name"], host);
        assert_eq!(r.resource["service.name"], "relayed");
    }
    let _ = rsyslog.kill();
    let _ = rsyslog.wait();
    assert_eq!(
        shipd.metric("shipd_syslog_malformed_total{component=\"syslog\"}"),
        0
    );
}

fn wait_probe(receiver: &Receiver, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if records(receiver)
            .iter()
            .any(|r| r.body.contains("probe-ready"))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A `kB` line of `/proc/PID/status`, in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kib * 1024
}

/// With 8 connections allowed and 4 KiB messages: 6 idle connections, one
/// sending a 128 MiB line without a newline and one announcing 200
/// messages of 1 MiB each fill the slots; 20 more connections are refused
/// and counted; a UDP sender is delivered meanwhile, a TCP sender once the
/// hostile ones are gone. shipd's peak RSS stays under 64 MiB (the bound
/// the OTLP receiver keeps too, and less than the endless line alone):
/// nothing of the flood is held beyond one message per connection.
#[test]
fn hostile_tcp_clients_neither_grow_memory_nor_keep_others_out() {
    let rt = runtime();
    let receiver = http_receiver(&rt, common::always_accept());
    let dir = tempfile::tempdir().unwrap();
    let ram = tempfile::tempdir_in("/dev/shm").unwrap();
    let extra = [
        ("SHIPD_SYSLOG_MAX_CONNECTIONS", "8".to_owned()),
        ("SHIPD_SYSLOG_MAX_MESSAGE_BYTES", "4KiB".to_owned()),
    ];
    let (shipd, ports) = start(&receiver, dir.path(), ram.path(), None, &extra);
    let tcp = ("127.0.0.1", ports.tcp);
    let idle: Vec<TcpStream> = (0..6).map(|_| TcpStream::connect(tcp).unwrap()).collect();
    // Stamped now: a fixed time falls out of OpenObserve's 5 h ingest
    // window (and is dropped by the sink) later in the day.
    let stamp = chrono::Local::now().format("%b %e %H:%M:%S").to_string();
    let endless = std::thread::spawn(move || {
        let mut s = TcpStream::connect(tcp).unwrap();
        s.write_all(format!("<13>{stamp} flood endless: ").as_bytes())
            .unwrap();
        let chunk = vec![b'e'; 64 * 1024];
        for _ in 0..2048 {
            s.write_all(&chunk).unwrap();
        }
        s.write_all(b"\n").unwrap();
        // Kept open (its slot held) until the test lets go.
        s
    });
    let huge = std::thread::spawn(move || {
        let mut s = TcpStream::connect(tcp).unwrap();
        let body = vec![b'h'; MIB as usize - 40];
        for i in 0..200 {
            let head = format!("<14>1 - flood huge - - - huge-{i:03} ");
            let len = head.len() + body.len();
            s.write_all(format!("{len} {head}").as_bytes()).unwrap();
            s.write_all(&body).unwrap();
        }
        s
    });
    // Both hostile clients hold their slot while they send.
    let deadline = Instant::now() + WAIT;
    while shipd.metric("shipd_connections_open{component=\"syslog\"}") < 8 {
        assert!(Instant::now() < deadline, "{}", shipd.metrics());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut refused = Vec::new();
    for _ in 0..20 {
        refused.push(TcpStream::connect(tcp).unwrap());
    }
    let port = ports.udp.to_string();
    logger(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--udp",
        "--rfc5424",
        "-t",
        "calm",
        "calm-udp-during-flood",
    ]);
    let found = wait_for(&receiver, &["calm-udp-during-flood"]);
    one(&found[0], "udp during the flood");

    let hostile = [endless.join().unwrap(), huge.join().unwrap()];
    let found = wait_for(&receiver, &["eeeeeeee", "huge-199"]);
    let endless_rec = one(&found[0], "the endless line");
    assert_eq!(endless_rec.attrs["syslog.appname"], "endless");
    assert_eq!(endless_rec.attrs["shipd.truncated"], "true");
    assert!(endless_rec.body.len() < 4096, "cut at max_message_bytes");
    let deadline = Instant::now() + WAIT;
    while records(&receiver)
        .iter()
        .filter(|r| r.body.starts_with("huge-"))
        .count()
        < 200
    {
        assert!(Instant::now() < deadline, "huge messages missing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let huge_recs: Vec<Rec> = records(&receiver)
        .into_iter()
        .filter(|r| r.body.starts_with("huge-"))
        .collect();
    assert_eq!(huge_recs.len(), 200, "each huge message once");
    assert!(huge_recs
        .iter()
        .all(|r| r.attrs.get("shipd.truncated").map(String::as_str) == Some("true")));
    assert_eq!(
        shipd.metric("shipd_syslog_truncated_total{component=\"syslog\"}"),
        201
    );

    drop(refused);
    drop(idle);
    drop(hostile);
    let deadline = Instant::now() + WAIT;
    while shipd.metric("shipd_connections_open{component=\"syslog\"}") > 0 {
        assert!(
            Instant::now() < deadline,
            "slots freed: {}",
            shipd.metrics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let tcp_port = ports.tcp.to_string();
    logger(&[
        "--server",
        "127.0.0.1",
        "--port",
        &tcp_port,
        "--tcp",
        "--rfc5424",
        "-t",
        "calm",
        "calm-tcp-after-flood",
    ]);
    let found = wait_for(&receiver, &["calm-tcp-after-flood"]);
    one(&found[0], "tcp after the flood");
    let refused_metric = "shipd_connections_refused_total{component=\"syslog\"}";
    let deadline = Instant::now() + WAIT;
    while shipd.metric(refused_metric) < 20 {
        assert!(
            Instant::now() < deadline,
            "refusals counted: {}",
            shipd.metrics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused_total = shipd.metric(refused_metric);

    let peak = proc_status_bytes(shipd.child.id(), "VmHWM");
    eprintln!(
        "syslog flood: 128 MiB line + 200 MiB of huge messages; {refused_total} connections refused; VmHWM {} KiB",
        peak / 1024
    );
    assert!(peak <= 64 * MIB, "VmHWM {} KiB over 64 MiB", peak / 1024);
}

/// Received syslog cannot be read again: what shipd took in while
/// OpenObserve refused is journaled in RAM, so a kill -9 loses none of it
/// and the next start delivers each message once.
#[test]
fn syslog_taken_in_survives_kill9_through_the_ram_journal() {
    let rt = runtime();
    let down = Arc::new(AtomicBool::new(true));
    let script: common::Script = {
        let down = Arc::clone(&down);
        Arc::new(move |_, _| {
            if down.load(Ordering::SeqCst) {
                Reply::Fail(503)
            } else {
                Reply::Accept
            }
        })
    };
    let receiver = http_receiver(&rt, script);
    let dir = tempfile::tempdir().unwrap();
    let ram = tempfile::tempdir_in("/dev/shm").unwrap();
    let (shipd, ports) = start(&receiver, dir.path(), ram.path(), None, &[]);
    let port = ports.tcp.to_string();
    let lines: Vec<String> = (0..30).map(|i| format!("journaled-{i:02}")).collect();
    for line in &lines {
        logger(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-t",
            "crash",
            line,
        ]);
    }
    let deadline = Instant::now() + WAIT;
    while shipd.metric("shipd_events_in_total{component=\"syslog\"}") < 30 {
        assert!(Instant::now() < deadline, "{}", shipd.metrics());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(receiver.count(), 0, "OpenObserve refused everything so far");
    let journaled = std::fs::read_dir(ram.path().join("syslog"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "rec"))
            })
            .count()
        })
        .unwrap_or(0);
    assert!(
        journaled > 0,
        "batches journaled in RAM: {:?}",
        walk(ram.path())
    );
    shipd.kill9();

    down.store(false, Ordering::SeqCst);
    let (_shipd, _) = start(&receiver, dir.path(), ram.path(), None, &[]);
    let needles: Vec<&str> = lines.iter().map(String::as_str).collect();
    let found = wait_for(&receiver, &needles);
    for (line, found) in lines.iter().zip(&found) {
        let r = one(found, line);
        assert_eq!(&r.body, line);
        assert_eq!(r.attrs["syslog.appname"], "crash");
    }
}

/// Every path under `dir` (for a failure message).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn a_listen_address_that_is_not_udp_tcp_or_unix_is_refused_at_load() {
    let src = "source s = syslog { listen = [\"udp://0.0.0.0:514\", \"http://0.0.0.0:80\"] }\nsink out = console {}\nroute { else => out }\n";
    let Err(diagnostics) = shipd::lang::load(src) else {
        panic!("loaded a pipeline listening on http://")
    };
    let text = shipd::lang::render("p.ship", src, &diagnostics);
    assert!(
        text.contains("option `listen`: `http://0.0.0.0:80` is not udp://IP:PORT"),
        "{text}"
    );
    let src = "source s = syslog { listen = [] }\nsink out = console {}\nroute { else => out }\n";
    let Err(diagnostics) = shipd::lang::load(src) else {
        panic!("loaded a syslog source listening nowhere")
    };
    let text = shipd::lang::render("p.ship", src, &diagnostics);
    assert!(text.contains("receives nothing"), "{text}");
}
