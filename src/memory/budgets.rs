//! The budgets that set shipd's peak memory, in one place: their sizes,
//! and how they shrink under a small memory limit (a container's
//! `mem_limit` below 256 MiB) instead of letting shipd be killed there.
//!
//! What a busy agent holds, at most, with the defaults (docs/performance.md
//! measures it): the program (~8 MiB resident while working), two pipeline
//! channels of [`Budgets::channel_bytes`] (file or journal reads →
//! processing → each sink), one open batch per stream of
//! [`Budgets::batch_max_bytes`] and [`Budgets::in_flight`] requests with
//! their batches and encoded and compressed bodies, a 256 KiB read buffer
//! per file source, and the
//! freed heap each allocator arena keeps while working
//! ([`Budgets::keep_freed`], at most [`ARENAS`] arenas). The receivers add
//! their own intake budgets ([`Budgets::otlp_max_message_bytes`] and
//! [`Budgets::otlp_max_request_memory`] for OTLP,
//! [`Budgets::forward_max_memory`] for the forward protocol) only while
//! they are being sent data.

use std::sync::OnceLock;

/// Memory from which every budget takes its full size: the systemd unit's
/// `MemoryMax`, and less than any Pi has. At full size the receivers' and
/// the pipeline's budgets together stay under a third of it.
pub const FULL_SIZE_MEMORY: u64 = 256 << 20;

/// The smallest share of the full size a budget is scaled down to.
const MIN_SCALE: f64 = 0.125;

/// Allocator arenas (glibc's default is eight per core: each keeps its own
/// freed memory; two serve shipd's two workers and its blocking threads
/// with no measurable contention).
pub const ARENAS: usize = 2;

/// Default OTLP request body at full size, compressed and decompressed.
pub const OTLP_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Default memory the records of one OTLP request may take once decoded
/// (events, attributes and resources, as [`crate::event::EventBatch`]
/// counts them), at full size: 8 MiB is some 15,000 typical log records,
/// far more than an SDK's batch of 512. An empty log record, 2 bytes on the
/// wire, takes about 160 bytes in memory, so wire bytes alone bound nothing.
pub const OTLP_MAX_REQUEST_MEMORY: usize = 8 << 20;

/// The defaults of the memory budgets for one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Bytes of events each channel between pipeline stages holds
    /// (`channel_bytes`).
    pub channel_bytes: usize,
    /// Bytes of events in one sink batch, before encoding
    /// (`batch.max_bytes`); a sink holds one open batch per stream.
    pub batch_max_bytes: usize,
    /// Requests a sink has in flight at once (`in_flight`), each holding its
    /// batch, the encoded body and the compressed body until answered.
    pub in_flight: usize,
    /// Freed heap an allocator arena keeps while shipd works, rather than
    /// handing it back and faulting it in again for the next batch.
    pub keep_freed: usize,
    /// The OTLP receiver's largest request body (`max_message_bytes`).
    pub otlp_max_message_bytes: usize,
    /// What one OTLP request's records may take once decoded
    /// (`max_request_memory`).
    pub otlp_max_request_memory: usize,
    /// The forward receiver's largest message (`max_message_bytes`).
    pub forward_max_message_bytes: usize,
    /// Memory all forward-protocol connections' messages share
    /// (`max_memory`; raised to what one largest message needs).
    pub forward_max_memory: usize,
}

impl Budgets {
    /// The budgets on a machine with [`FULL_SIZE_MEMORY`] or more.
    pub const FULL: Budgets = Budgets {
        channel_bytes: 2 << 20,
        batch_max_bytes: 1 << 20,
        in_flight: 2,
        keep_freed: 2 << 20,
        otlp_max_message_bytes: OTLP_MAX_MESSAGE_BYTES,
        otlp_max_request_memory: OTLP_MAX_REQUEST_MEMORY,
        forward_max_message_bytes: 8 << 20,
        forward_max_memory: 32 << 20,
    };

    /// The budgets for `memory` bytes (unknown: full size): in proportion
    /// below [`FULL_SIZE_MEMORY`] (half under a 128 MiB limit), never below
    /// an eighth.
    pub fn for_memory(memory: Option<u64>) -> Budgets {
        let scale = memory
            .map(|m| (m as f64 / FULL_SIZE_MEMORY as f64).clamp(MIN_SCALE, 1.0))
            .unwrap_or(1.0);
        let scaled = |full: usize| ((full as f64 * scale) as usize).max(64 << 10);
        let f = Budgets::FULL;
        Budgets {
            channel_bytes: scaled(f.channel_bytes),
            batch_max_bytes: scaled(f.batch_max_bytes),
            in_flight: if scale < 0.5 { 1 } else { f.in_flight },
            keep_freed: scaled(f.keep_freed),
            otlp_max_message_bytes: scaled(f.otlp_max_message_bytes),
            otlp_max_request_memory: scaled(f.otlp_max_request_memory),
            forward_max_message_bytes: scaled(f.forward_max_message_bytes),
            forward_max_memory: scaled(f.forward_max_memory),
        }
    }
}

/// The budgets of this machine (computed once).
pub fn budgets() -> Budgets {
    static BUDGETS: OnceLock<Budgets> = OnceLock::new();
    *BUDGETS.get_or_init(|| Budgets::for_memory(machine_memory()))
}

/// The memory shipd may use: the machine's `MemTotal`, or its control
/// group's limit when that is lower (a container's `mem_limit`, a systemd
/// `MemoryMax=`); `None` when neither can be read.
pub fn machine_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| mem_total(&m));
    let limit = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|l| cgroup_limit(&l));
    match (total, limit) {
        (Some(t), Some(l)) => Some(t.min(l)),
        (t, l) => t.or(l),
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// A cgroup memory limit file (`max` or a byte count; v1 writes a huge
/// number for "no limit", which the caller's `min` with `MemTotal` absorbs).
fn cgroup_limit(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_systemd_unit_a_pi_and_larger_machines_get_the_full_budgets() {
        assert_eq!(Budgets::for_memory(Some(256 << 20)), Budgets::FULL);
        assert_eq!(Budgets::for_memory(Some(1 << 30)), Budgets::FULL);
        assert_eq!(Budgets::for_memory(Some(24 << 30)), Budgets::FULL);
        assert_eq!(Budgets::for_memory(None), Budgets::FULL);
    }

    #[test]
    fn smaller_machines_scale_down_in_proportion_and_never_below_an_eighth() {
        let half = Budgets::for_memory(Some(128 << 20));
        assert_eq!(half.channel_bytes, Budgets::FULL.channel_bytes / 2);
        assert_eq!(
            half.otlp_max_request_memory,
            Budgets::FULL.otlp_max_request_memory / 2
        );
        let tiny = Budgets::for_memory(Some(8 << 20));
        assert_eq!(
            tiny.forward_max_memory,
            Budgets::FULL.forward_max_memory / 8
        );
        assert!(tiny.channel_bytes >= 64 << 10);
    }

    #[test]
    fn meminfo_and_cgroup_limits_are_read() {
        assert_eq!(
            mem_total("MemTotal:        1000 kB\nMemFree: 3 kB\n"),
            Some(1_024_000)
        );
        assert_eq!(mem_total("MemFree: 3 kB\n"), None);
        assert_eq!(cgroup_limit("268435456\n"), Some(256 << 20));
        assert_eq!(cgroup_limit("max\n"), None);
        let here = machine_memory().expect("this machine's memory is readable");
        assert!(here >= 64 << 20, "{here}");
    }
}
