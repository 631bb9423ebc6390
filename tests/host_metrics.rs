//! Host metrics over fixture /proc and /sys trees: a Raspberry Pi layout
//! written from the kernel's documented formats (every point checked) and
//! files captured from a Linux VM; counter wraps, resets, devices that
//! disappear and come back, CPU utilization and health level changes.
//! USER_HZ is 100 on every Linux ABI shipd runs on.

use shipd::event::{MetricKind, MetricPoint};
use shipd::sources::host_metrics::{
    Collection, FsStats, HealthThresholds, HostMetrics, HostMetricsConfig, Levels, StatFs,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KIB: f64 = 1024.0;
const PI_BOOT_NS: u64 = 1_764_000_000 * 1_000_000_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Known filesystem numbers per mount point below the fixture root.
struct FixtureStatFs {
    root: PathBuf,
}

impl StatFs for FixtureStatFs {
    fn stat(&self, path: &Path) -> std::io::Result<FsStats> {
        let rel = path
            .strip_prefix(&self.root)
            .map_err(std::io::Error::other)?;
        let s = |total, free, available, total_inodes, free_inodes| FsStats {
            total_bytes: total,
            free_bytes: free,
            available_bytes: available,
            total_inodes,
            free_inodes,
        };
        match rel.to_str() {
            Some("") => Ok(s(
                30_000_000_000,
                9_000_000_000,
                7_500_000_000,
                1_900_000,
                1_500_000,
            )),
            Some("run") => Ok(s(400_000_000, 390_000_000, 390_000_000, 100_000, 99_000)),
            Some("boot/firmware") => Ok(s(500_000_000, 400_000_000, 400_000_000, 0, 0)),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    }
}

fn collector(root: &Path, thresholds: HealthThresholds) -> HostMetrics {
    let mut cfg = HostMetricsConfig::new("host");
    cfg.root = root.to_path_buf();
    cfg.thresholds = thresholds;
    HostMetrics::with_statfs(
        cfg,
        "pi-node-1",
        Box::new(FixtureStatFs {
            root: root.to_path_buf(),
        }),
    )
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `name{k=v,...}` with labels sorted, for exact comparisons.
fn series(p: &MetricPoint) -> String {
    let mut labels: Vec<String> = p
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?")))
        .collect();
    labels.sort();
    format!("{}{{{}}}", p.name, labels.join(","))
}

fn by_series(c: &Collection) -> BTreeMap<String, &MetricPoint> {
    let mut map = BTreeMap::new();
    for p in &c.points {
        assert!(
            map.insert(series(p), p).is_none(),
            "duplicate series {}",
            series(p)
        );
    }
    map
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    l.sort();
    format!("{name}{{{}}}", l.join(","))
}

/// Every point the Pi fixture must produce on a first collection:
/// series → (value, kind).
fn pi_expected() -> BTreeMap<String, (f64, MetricKind)> {
    let counter = MetricKind::Sum { monotonic: true };
    let updown = MetricKind::Sum { monotonic: false };
    let gauge = MetricKind::Gauge;
    let mut e = BTreeMap::new();
    let mut put = |name: &str, labels: &[(&str, &str)], v: f64, k: MetricKind| {
        e.insert(key(name, labels), (v, k));
    };
    let states = [
        "user",
        "nice",
        "system",
        "idle",
        "wait",
        "interrupt",
        "softirq",
        "steal",
    ];
    let cpu_ticks: [[u64; 8]; 4] = [
        [250, 5, 75, 12500, 10, 0, 3, 0],
        [250, 5, 75, 12500, 10, 0, 2, 0],
        [250, 5, 75, 12500, 10, 0, 3, 0],
        [250, 5, 75, 12500, 10, 0, 2, 0],
    ];
    for (i, ticks) in cpu_ticks.iter().enumerate() {
        let cpu = format!("cpu{i}");
        for (state, t) in states.iter().zip(ticks) {
            put(
                "system.cpu.time",
                &[("cpu", &cpu), ("state", state)],
                *t as f64 / 100.0,
                counter,
            );
        }
    }
    put("system.cpu.load_average.1m", &[], 0.42, gauge);
    put("system.cpu.load_average.5m", &[], 0.35, gauge);
    put("system.cpu.load_average.15m", &[], 0.30, gauge);
    put("system.uptime", &[], 86400.5, gauge);
    put(
        "system.processes.count",
        &[("status", "running")],
        2.0,
        updown,
    );
    put(
        "system.processes.count",
        &[("status", "blocked")],
        1.0,
        updown,
    );
    put("system.processes.created", &[], 4321.0, counter);

    let total = 3_884_000.0 * KIB;
    put("system.memory.limit", &[], total, updown);
    for (state, kib) in [
        ("used", 934_000.0),
        ("free", 2_000_000.0),
        ("buffered", 100_000.0),
        ("cached", 800_000.0),
        ("slab_reclaimable", 50_000.0),
        ("slab_unreclaimable", 30_000.0),
    ] {
        put(
            "system.memory.usage",
            &[("state", state)],
            kib * KIB,
            updown,
        );
        put(
            "system.memory.utilization",
            &[("state", state)],
            kib * KIB / total,
            gauge,
        );
    }
    put(
        "system.paging.usage",
        &[("state", "used")],
        10_000.0 * KIB,
        updown,
    );
    put(
        "system.paging.usage",
        &[("state", "free")],
        92_396.0 * KIB,
        updown,
    );
    put(
        "system.paging.utilization",
        &[("state", "used")],
        10_000.0 / 102_396.0,
        gauge,
    );
    put(
        "system.paging.utilization",
        &[("state", "free")],
        92_396.0 / 102_396.0,
        gauge,
    );
    put(
        "system.paging.operations",
        &[("direction", "page_in")],
        12.0,
        counter,
    );
    put(
        "system.paging.operations",
        &[("direction", "page_out")],
        34.0,
        counter,
    );
    put("system.paging.faults", &[("type", "major")], 250.0, counter);
    put(
        "system.paging.faults",
        &[("type", "minor")],
        99_750.0,
        counter,
    );

    // device: reads, merged, sectors, ms | writes, merged, sectors, ms | io ms
    for (dev, r, w, io_ms) in [
        (
            "mmcblk0",
            [9000, 100, 720_000, 5000],
            [20_000, 3000, 1_600_000, 90_000],
            60_000,
        ),
        ("mmcblk0p1", [100, 0, 8000, 50], [2, 0, 16, 1], 40),
        (
            "mmcblk0p2",
            [8900, 100, 712_000, 4950],
            [19_998, 3000, 1_599_984, 89_999],
            59_960,
        ),
        ("mmcblk1", [10, 0, 80, 1], [5, 0, 40, 2], 3),
    ] {
        for (direction, f) in [("read", r), ("write", w)] {
            let l = [("device", dev), ("direction", direction)];
            put("system.disk.operations", &l, f[0] as f64, counter);
            put("system.disk.merged", &l, f[1] as f64, counter);
            put("system.disk.io", &l, f[2] as f64 * 512.0, counter);
            put(
                "system.disk.operation_time",
                &l,
                f[3] as f64 / 1000.0,
                counter,
            );
        }
        put(
            "system.disk.io_time",
            &[("device", dev)],
            io_ms as f64 / 1000.0,
            counter,
        );
    }

    for (dev, mount, fs, stats) in [
        (
            "/dev/mmcblk0p2",
            "/",
            "ext4",
            (30e9, 9e9, 7.5e9, 1_900_000.0, 1_500_000.0),
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            (4e8, 3.9e8, 3.9e8, 100_000.0, 99_000.0),
        ),
        (
            "/dev/mmcblk0p1",
            "/boot/firmware",
            "vfat",
            (5e8, 4e8, 4e8, 0.0, 0.0),
        ),
    ] {
        let (total, free, avail, inodes, free_inodes) = stats;
        let base = [
            ("device", dev),
            ("mountpoint", mount),
            ("type", fs),
            ("mode", "rw"),
        ];
        let with = |state| {
            let mut l = base.to_vec();
            l.push(("state", state));
            l
        };
        let used = total - free;
        put("system.filesystem.usage", &with("used"), used, updown);
        put("system.filesystem.usage", &with("free"), avail, updown);
        put(
            "system.filesystem.usage",
            &with("reserved"),
            free - avail,
            updown,
        );
        put(
            "system.filesystem.utilization",
            &base,
            used / (used + avail),
            gauge,
        );
        if inodes > 0.0 {
            put(
                "system.filesystem.inodes.usage",
                &with("used"),
                inodes - free_inodes,
                updown,
            );
            put(
                "system.filesystem.inodes.usage",
                &with("free"),
                free_inodes,
                updown,
            );
        }
    }

    for (dev, rx, tx) in [
        ("lo", [1000, 10, 0, 0], [1000, 10, 0, 0]),
        (
            "eth0",
            [123_456_789, 98_765, 1, 2],
            [98_765_432, 87_654, 3, 4],
        ),
        ("wlan0", [0, 0, 0, 0], [0, 0, 0, 0]),
    ] {
        for (direction, c) in [("receive", rx), ("transmit", tx)] {
            let l = [("device", dev), ("direction", direction)];
            put("system.network.io", &l, c[0] as f64, counter);
            put("system.network.packets", &l, c[1] as f64, counter);
            put("system.network.errors", &l, c[2] as f64, counter);
            put("system.network.dropped", &l, c[3] as f64, counter);
        }
    }

    put(
        "hw.temperature",
        &[("hw.id", "thermal_zone0"), ("hw.name", "cpu-thermal")],
        52.078,
        gauge,
    );
    for (cpu, khz) in [
        ("cpu0", 1_500_000.0),
        ("cpu1", 1_500_000.0),
        ("cpu2", 600_000.0),
        ("cpu3", 1_800_000.0),
    ] {
        put("system.cpu.frequency", &[("cpu", cpu)], khz * 1000.0, gauge);
    }
    // 0x50005: under-voltage and throttled, now and since boot.
    for (flag, on) in [
        ("under_voltage", 1.0),
        ("arm_frequency_capped", 0.0),
        ("throttled", 1.0),
        ("soft_temperature_limit", 0.0),
    ] {
        put(
            "rpi.throttled",
            &[("flag", flag), ("period", "current")],
            on,
            gauge,
        );
        put(
            "rpi.throttled",
            &[("flag", flag), ("period", "since_boot")],
            on,
            gauge,
        );
    }
    put(
        "rpi.mmc.life_time_estimate",
        &[("device", "mmcblk0"), ("type", "A")],
        2.0,
        gauge,
    );
    put(
        "rpi.mmc.life_time_estimate",
        &[("device", "mmcblk0"), ("type", "B")],
        1.0,
        gauge,
    );
    put("rpi.mmc.pre_eol", &[("device", "mmcblk0")], 1.0, gauge);
    put(
        "rpi.mmc.written",
        &[("device", "mmcblk0"), ("media", "MMC")],
        1_600_000.0 * 512.0,
        counter,
    );
    put(
        "rpi.mmc.written",
        &[("device", "mmcblk1"), ("media", "SD")],
        40.0 * 512.0,
        counter,
    );

    // No CPU share on a first collection; everything else is healthy.
    for check in ["overall", "memory", "disk", "load", "temperature"] {
        put("shipd.node.health", &[("check", check)], 0.0, gauge);
    }
    e
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn raspberry_pi_fixture_yields_every_expected_point_and_no_other() {
    let root = fixture("raspberry-pi");
    let mut host = collector(&root, HealthThresholds::default());
    let now = 1_764_086_400;
    let c = host.collect(at(now));
    let got = by_series(&c);
    let expected = pi_expected();
    let missing: Vec<&String> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    for (series, (value, kind)) in &expected {
        let p = got[series];
        assert!(
            close(p.value, *value),
            "{series}: got {} want {value}",
            p.value
        );
        assert_eq!(p.kind, *kind, "{series}");
        assert_eq!(p.time_unix_nano, now * 1_000_000_000, "{series}");
        if let MetricKind::Sum { monotonic: true } = kind {
            assert_eq!(
                p.start_time_unix_nano, PI_BOOT_NS,
                "{series} starts at boot"
            );
        }
    }
    let unit = |name: &str| {
        c.points
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.unit.as_str())
    };
    assert_eq!(unit("system.cpu.time"), Some("s"));
    assert_eq!(unit("system.memory.usage"), Some("By"));
    assert_eq!(unit("hw.temperature"), Some("Cel"));
    assert_eq!(unit("system.cpu.frequency"), Some("Hz"));
    assert!(c.logs.is_empty(), "healthy start logs nothing");
    let resource = &c.points[0].resource.attributes;
    assert_eq!(resource[0].1.as_str(), Some("pi-node-1"));
}

/// A writable copy of a fixture tree.
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn net_dev(lines: &[&str]) -> String {
    let mut text =
        String::from("Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n");
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    text
}

#[test]
fn counters_survive_a_32_bit_wrap_restart_on_reset_and_vanished_devices_start_anew() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("raspberry-pi"), dir.path());
    let dev = dir.path().join("proc/net/dev");
    let diskstats = dir.path().join("proc/diskstats");
    let original_disks = std::fs::read_to_string(&diskstats).unwrap();
    std::fs::write(
        &dev,
        net_dev(&[
            "eth0: 4294967290 10 0 0 0 0 0 0 98765432 20 0 0 0 0 0 0",
            "wlan0: 500 5 0 0 0 0 0 0 600 6 0 0 0 0 0 0",
        ]),
    )
    .unwrap();
    let mut host = collector(dir.path(), HealthThresholds::default());
    let (t1, t2, t3) = (1_764_086_400, 1_764_086_415, 1_764_086_430);
    let first = host.collect(at(t1));
    let rx = key(
        "system.network.io",
        &[("device", "eth0"), ("direction", "receive")],
    );
    let tx = key(
        "system.network.io",
        &[("device", "eth0"), ("direction", "transmit")],
    );
    let wlan = key(
        "system.network.io",
        &[("device", "wlan0"), ("direction", "receive")],
    );
    let sd = key(
        "system.disk.io",
        &[("device", "mmcblk1"), ("direction", "write")],
    );
    assert_eq!(by_series(&first)[&rx].value, 4_294_967_290.0);

    // eth0 receive wraps past 2^32 (from the upper half of the 32-bit
    // range); transmit drops from the lower half, which is a reset (a
    // re-created interface); wlan0 and the SD card disappear.
    std::fs::write(&dev, net_dev(&["eth0: 10 12 0 0 0 0 0 0 5 21 0 0 0 0 0 0"])).unwrap();
    std::fs::write(
        &diskstats,
        original_disks
            .lines()
            .filter(|l| !l.contains("mmcblk1"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let second = host.collect(at(t2));
    let got = by_series(&second);
    assert_eq!(got[&rx].value, 4_294_967_296.0 + 10.0, "wrap added back");
    assert_eq!(
        got[&rx].start_time_unix_nano, PI_BOOT_NS,
        "a wrap keeps the series"
    );
    assert_eq!(got[&tx].value, 5.0, "reset restarts from the raw value");
    assert_eq!(
        got[&tx].start_time_unix_nano,
        t1 * 1_000_000_000,
        "reset starts at the previous collection"
    );
    assert!(
        !got.contains_key(&wlan),
        "vanished interface is not reported"
    );
    assert!(!got.contains_key(&sd), "vanished disk is not reported");

    // Both come back: new series starting at the previous collection.
    std::fs::write(
        &dev,
        net_dev(&[
            "eth0: 20 13 0 0 0 0 0 0 6 22 0 0 0 0 0 0",
            "wlan0: 7 1 0 0 0 0 0 0 8 1 0 0 0 0 0 0",
        ]),
    )
    .unwrap();
    std::fs::write(&diskstats, &original_disks).unwrap();
    let third = host.collect(at(t3));
    let got = by_series(&third);
    assert_eq!(got[&rx].value, 4_294_967_296.0 + 20.0);
    assert_eq!(got[&wlan].value, 7.0);
    assert_eq!(got[&wlan].start_time_unix_nano, t2 * 1_000_000_000);
    assert_eq!(got[&sd].value, 40.0 * 512.0);
    assert_eq!(got[&sd].start_time_unix_nano, t2 * 1_000_000_000);
}

#[test]
fn cpu_utilization_comes_from_the_change_between_collections() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("raspberry-pi"), dir.path());
    let mut host = collector(dir.path(), HealthThresholds::default());
    let first = host.collect(at(1_764_086_400));
    assert!(!first
        .points
        .iter()
        .any(|p| p.name == "system.cpu.utilization"));
    let stat = dir.path().join("proc/stat");
    let text = std::fs::read_to_string(&stat)
        .unwrap()
        .replace("cpu  1000 20 300 50000", "cpu  1240 20 300 50160")
        .replace("cpu0 250 5 75 12500", "cpu0 310 5 75 12540");
    std::fs::write(&stat, text).unwrap();
    let second = host.collect(at(1_764_086_415));
    let got = by_series(&second);
    let util = |cpu: &str, state: &str| {
        got[&key("system.cpu.utilization", &[("cpu", cpu), ("state", state)])].value
    };
    assert!(close(util("cpu0", "user"), 0.6));
    assert!(close(util("cpu0", "idle"), 0.4));
    assert!(close(util("cpu0", "system"), 0.0));
    assert!(
        !got.contains_key(&key(
            "system.cpu.utilization",
            &[("cpu", "cpu1"), ("state", "user")]
        )),
        "no ticks passed on cpu1"
    );
    // All CPUs: 240 busy of 400 ticks = 60 %, healthy under 80 %.
    assert_eq!(
        got[&key("shipd.node.health", &[("check", "cpu")])].value,
        0.0
    );
}

#[test]
fn crossing_a_configured_threshold_sets_the_level_and_logs_the_change_once() {
    let root = fixture("raspberry-pi");
    let thresholds = HealthThresholds {
        temperature: Levels::new(50.0, 60.0),
        disk: Levels::new(70.0, 99.0),
        ..HealthThresholds::default()
    };
    let mut host = collector(&root, thresholds);
    let c = host.collect(at(1_764_086_400));
    let got = by_series(&c);
    let level = |check: &str| got[&key("shipd.node.health", &[("check", check)])].value;
    assert_eq!(level("temperature"), 1.0);
    assert_eq!(level("disk"), 1.0, "/ is 73.7 % used");
    assert_eq!(level("memory"), 0.0);
    assert_eq!(level("overall"), 1.0);
    assert_eq!(c.logs.len(), 1);
    let log = &c.logs[0];
    assert_eq!(log.severity_text.as_deref(), Some("WARN"));
    assert_eq!(
        log.body.as_str(),
        Some("node health changed from healthy to warning: disk on / 73.7 % >= 70, temperature 52.1 °C >= 50")
    );
    let again = host.collect(at(1_764_086_415));
    assert!(
        again.logs.is_empty(),
        "an unchanged level is not logged again"
    );
}

#[test]
fn captured_linux_host_reads_its_values_and_reports_no_pi_metrics() {
    let root = fixture("linux-host");
    let mut cfg = HostMetricsConfig::new("host");
    cfg.root = root.clone();
    let mut host =
        HostMetrics::with_statfs(cfg, "vm", Box::new(FixtureStatFs { root: root.clone() }));
    let c = host.collect(at(1_795_647_000));
    let got = by_series(&c);
    let v = |name: &str, labels: &[(&str, &str)]| {
        got.get(&key(name, labels))
            .unwrap_or_else(|| panic!("{name} {labels:?} missing"))
            .value
    };
    assert!(close(
        v("system.cpu.time", &[("cpu", "cpu0"), ("state", "user")]),
        1008.99
    ));
    assert!(close(
        v("system.cpu.time", &[("cpu", "cpu1"), ("state", "steal")]),
        14.35
    ));
    assert_eq!(
        c.points
            .iter()
            .filter(|p| p.name == "system.cpu.time")
            .count(),
        16
    );
    assert_eq!(v("system.cpu.load_average.1m", &[]), 9.02);
    assert_eq!(v("system.uptime", &[]), 2649.32);
    assert_eq!(v("system.processes.count", &[("status", "running")]), 9.0);
    assert_eq!(v("system.memory.limit", &[]), 24_683_656.0 * KIB);
    assert_eq!(
        v("system.memory.usage", &[("state", "free")]),
        10_970_432.0 * KIB
    );
    assert_eq!(
        v("system.memory.usage", &[("state", "used")]),
        (24_683_656.0 - 10_970_432.0 - 41_860.0 - 11_841_488.0 - 479_460.0) * KIB
    );
    assert_eq!(v("system.paging.usage", &[("state", "used")]), 0.0);
    assert!(
        !got.keys()
            .any(|k| k.starts_with("system.paging.utilization")),
        "no swap, no share"
    );
    assert_eq!(
        v(
            "system.network.io",
            &[("device", "eth0"), ("direction", "receive")]
        ),
        221_705_726.0
    );
    assert_eq!(
        v(
            "system.network.io",
            &[("device", "lo"), ("direction", "transmit")]
        ),
        16_494_694.0
    );
    assert_eq!(
        v(
            "system.disk.io",
            &[("device", "vda"), ("direction", "read")]
        ),
        10_546_570.0 * 512.0
    );
    assert_eq!(v("system.disk.io_time", &[("device", "vda")]), 54.692);
    assert!(got.keys().any(|k| k.contains("device=zram0")));
    assert!(
        !got.keys().any(|k| k.contains("device=loop")),
        "loop devices excluded"
    );
    let mounts: Vec<&str> = c
        .points
        .iter()
        .filter(|p| p.name == "system.filesystem.utilization")
        .filter_map(|p| p.label("mountpoint"))
        .collect();
    assert_eq!(
        mounts,
        ["/"],
        "pseudo filesystems and /dev, /sys mounts excluded"
    );
    assert!(
        !c.points.iter().any(|p| p.name.starts_with("rpi.")
            || p.name.starts_with("hw.")
            || p.name == "system.cpu.frequency"),
        "no Pi metrics where the files are absent"
    );
}

#[test]
fn a_missing_proc_file_is_skipped_and_the_rest_still_collected() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("raspberry-pi"), dir.path());
    std::fs::remove_file(dir.path().join("proc/diskstats")).unwrap();
    let mut host = collector(dir.path(), HealthThresholds::default());
    let c = host.collect(at(1_764_086_400));
    assert!(!c.points.iter().any(|p| p.name.starts_with("system.disk.")));
    assert!(c.points.iter().any(|p| p.name == "system.network.io"));
    assert!(c.points.iter().any(|p| p.name == "rpi.mmc.written"));
}
