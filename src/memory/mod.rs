//! How shipd's memory is kept and bounded: the heap settings below, the
//! budgets that hold whatever arrives ([`ByteBudget`]; their defaults for
//! this machine in [`budgets`]), and giving memory back when idle.
//!
//! The heap: by default glibc hands the top of its heap
//! back to the kernel as soon as 128 KiB of it are free, so the memory of
//! every processed batch (a 256 KiB read of 300-byte JSON lines parses into
//! about a megabyte of values) is returned and then faulted in and zeroed
//! again for the next batch: a quarter of the processing time measured in
//! `benches/lang.rs`. shipd lets each of its [`budgets::ARENAS`] allocator
//! arenas keep [`Budgets::keep_freed`] bytes of freed heap while it works
//! and gives free memory back [`RELEASE_INTERVAL`] after work, so an idle
//! agent is as small as before; with nothing to give back the wait doubles
//! up to [`RELEASE_INTERVAL_IDLE`]. Other C libraries (musl) have no such
//! setting; there this does nothing.
//!
//! The OTLP receiver holds at most its message size + its request memory
//! for the requests it is receiving, decoding and journaling; an accepted
//! request then moves through the pipeline's byte-bounded channels (which
//! count every event's own size, not only its payload; a batch larger than
//! a channel is let in alone, so a stage holds at most one request's
//! records beyond its budget) and the sink's batches. A request that would
//! need more is refused, never half-taken; the RAM journal is read back
//! after a crash under the same per-request budget.

pub mod budgets;

pub use budgets::{budgets, Budgets};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// How soon after work free memory is given back to the kernel.
pub const RELEASE_INTERVAL: Duration = Duration::from_secs(10);

/// The longest wait between releases of an agent with nothing to release.
pub const RELEASE_INTERVAL_IDLE: Duration = Duration::from_secs(640);

/// Work (bytes processed) after which a release is due within
/// [`RELEASE_INTERVAL`], however long the idle wait has grown.
const RELEASE_AFTER_BYTES: usize = 1 << 20;

/// Default number of OTLP requests received and decoded at once; further
/// requests wait for a slot (at most the receiver's `accept_timeout`).
pub const OTLP_MAX_CONCURRENT_REQUESTS: usize = 4;

/// The most one batch of a source without its own budget (host metrics,
/// scrapes) may take when its RAM journal is read back after a crash; a
/// larger one is set aside rather than decoded.
pub const MAX_BATCH_MEMORY: usize = 16 << 20;

/// What the OTLP requests being received and decoded hold at once, at
/// most: one request's body (compressed and decompressed) and then its
/// decoded records beside the body or their journal encoding, so a request
/// within the per-request limits always fits alone.
pub fn otlp_intake_budget(max_message_bytes: usize, max_request_memory: usize) -> usize {
    max_message_bytes
        .max(max_request_memory)
        .saturating_add(max_request_memory)
}

/// A budget of bytes shared by everything that holds memory for one
/// purpose (the requests of one OTLP receiver). Holders take a
/// [`Reservation`] that grows and shrinks with what they hold; growing
/// waits for others to release, in order of arrival, up to a deadline.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    units: Arc<Semaphore>,
    total: usize,
}

/// Budgets are kept in KiB so that any size fits a semaphore.
const UNIT: usize = 1024;

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

/// A [`Reservation`] could not grow before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoRoom {
    /// More than the whole budget: it would never fit.
    #[error("more than the whole budget")]
    Never,
    /// Others hold the rest until after the deadline.
    #[error("the budget stayed in use")]
    NotNow,
}

impl ByteBudget {
    pub fn new(total_bytes: usize) -> Self {
        let total = units(total_bytes).clamp(1, Semaphore::MAX_PERMITS);
        ByteBudget {
            units: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> usize {
        self.total * UNIT
    }

    /// Bytes currently reserved.
    pub fn in_use(&self) -> usize {
        (self.total - self.units.available_permits().min(self.total)) * UNIT
    }

    /// An empty reservation.
    pub fn reserve(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: 0,
        }
    }
}

/// Bytes held against a [`ByteBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: ByteBudget,
    /// Units held.
    held: usize,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.held * UNIT
    }

    /// Holds at least `bytes`, waiting until `deadline` for others to
    /// release what is missing.
    pub async fn grow_to(&mut self, bytes: usize, deadline: Instant) -> Result<(), NoRoom> {
        let want = units(bytes);
        if want <= self.held {
            return Ok(());
        }
        if want > self.budget.total {
            return Err(NoRoom::Never);
        }
        let more = u32::try_from(want - self.held).map_err(|_| NoRoom::Never)?;
        let acquire = self.budget.units.acquire_many(more);
        match tokio::time::timeout_at(deadline.into(), acquire).await {
            Ok(Ok(permit)) => {
                permit.forget();
                self.held = want;
                Ok(())
            }
            Ok(Err(_)) | Err(_) => Err(NoRoom::NotNow),
        }
    }

    /// [`grow_to`](Self::grow_to) from a thread outside the runtime
    /// (`spawn_blocking`), through `runtime`.
    pub fn grow_to_blocking(
        &mut self,
        runtime: &tokio::runtime::Handle,
        bytes: usize,
        deadline: Instant,
    ) -> Result<(), NoRoom> {
        if units(bytes) <= self.held {
            return Ok(());
        }
        if let Some(more) = units(bytes)
            .checked_sub(self.held)
            .and_then(|n| u32::try_from(n).ok())
        {
            if let Ok(permit) = self.budget.units.try_acquire_many(more) {
                permit.forget();
                self.held += more as usize;
                return Ok(());
            }
        }
        runtime.block_on(self.grow_to(bytes, deadline))
    }

    /// Holds no more than `bytes` (rounded up to the unit), giving the rest back.
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = units(bytes);
        if keep < self.held {
            self.budget.units.add_permits(self.held - keep);
            self.held = keep;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

/// Sets the heap thresholds; call once at start, before any thread.
/// Returns whether the C library took them.
pub fn keep_freed_heap() -> bool {
    imp::keep_freed_heap()
}

/// Gives free heap memory back to the kernel (cheap on a small heap);
/// whether any was given back.
pub fn release_freed_heap() -> bool {
    imp::release_freed_heap()
}

/// Work done since the heap was last released, and the wake-up of the
/// releaser once it passes [`RELEASE_AFTER_BYTES`].
struct WorkMeter {
    bytes: AtomicUsize,
    passed: Notify,
}

impl WorkMeter {
    const fn new() -> Self {
        WorkMeter {
            bytes: AtomicUsize::new(0),
            passed: Notify::const_new(),
        }
    }

    fn add(&self, bytes: usize) {
        let before = self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if before < RELEASE_AFTER_BYTES && before.saturating_add(bytes) >= RELEASE_AFTER_BYTES {
            self.passed.notify_one();
        }
    }

    fn reset(&self) {
        self.bytes.store(0, Ordering::Relaxed);
    }
}

static WORK: WorkMeter = WorkMeter::new();

/// Tells the heap releaser that `bytes` of data were handled (a processed
/// batch, a received request): the memory that took is given back within
/// [`RELEASE_INTERVAL`] once a megabyte has passed. Two atomic operations.
pub fn note_work(bytes: usize) {
    WORK.add(bytes)
}

/// The wait before the next release: [`RELEASE_INTERVAL`] after a release
/// that gave memory back, doubling up to [`RELEASE_INTERVAL_IDLE`] while
/// releases find nothing, so an idle agent wakes for this a few times an
/// hour instead of six times a minute.
fn next_release_wait(previous: Duration, released: bool) -> Duration {
    if released {
        RELEASE_INTERVAL
    } else {
        previous.saturating_mul(2).min(RELEASE_INTERVAL_IDLE)
    }
}

/// Whether the next release also sheds the program's text (see
/// [`shed_program_text`]): at start and after each reload.
static SHED_TEXT: AtomicBool = AtomicBool::new(true);

/// Asks the heap releaser to shed the program text again at its next
/// release (after a reload compiled and started a new pipeline).
pub fn note_started() {
    SHED_TEXT.store(true, Ordering::Relaxed);
    WORK.passed.notify_one();
}

/// Releases free heap memory, forever: [`RELEASE_INTERVAL`] after work
/// (see [`note_work`]), and at a growing interval while there is none; the
/// first release after a start or reload also sheds the program text.
pub async fn release_periodically() {
    let mut wait = RELEASE_INTERVAL;
    loop {
        // Work cuts a long idle wait short (then waits one interval more,
        // so a burst is released once, after it).
        let idle_wait = tokio::time::sleep(wait);
        tokio::select! {
            _ = idle_wait => {}
            _ = WORK.passed.notified() => tokio::time::sleep(RELEASE_INTERVAL).await,
        }
        WORK.reset();
        wait = next_release_wait(wait, release_freed_heap());
        if SHED_TEXT.swap(false, Ordering::Relaxed) {
            match tokio::task::spawn_blocking(shed_program_text).await {
                Ok(Ok(bytes)) => tracing::debug!(bytes, "program text shed"),
                Ok(Err(e)) => tracing::debug!(error = %e, "program text not shed"),
                Err(_) => {}
            }
        }
    }
}

/// Gives the kernel back the pages of shipd's own program (code and
/// read-only data) that this process maps, returning how many bytes of
/// mappings it asked about. Starting and loading a pipeline touch most of
/// the binary, once, and the kernel maps its pages 64 KiB at a time: they
/// would stay resident (about 7 MiB of an idle agent's 11) though idle work
/// needs a fraction. `MADV_PAGEOUT` drops the clean pages only this process
/// maps; those still in use come back from the page cache on their next
/// use. Writable mappings (relocated data) are left alone.
pub fn shed_program_text() -> std::io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut shed = 0usize;
    for (start, end) in program_mappings(&maps, &exe.to_string_lossy()) {
        let len = end - start;
        imp::page_out(start, len)?;
        shed += len;
    }
    Ok(shed)
}

/// The read-only (not writable) mappings of `exe` in a `/proc/PID/maps`
/// text, as address ranges.
fn program_mappings(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            if path != exe || perms.as_bytes().get(1) != Some(&b'-') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (end > start).then_some((start, end))
        })
        .collect()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::budgets::{budgets, ARENAS};

    /// Allocations from this size get their own mapping (given back at
    /// once when freed): above any batch or request body at default sizes.
    const OWN_MAPPING_FROM: libc::c_int = 8 << 20;

    pub fn keep_freed_heap() -> bool {
        let keep = libc::c_int::try_from(budgets().keep_freed).unwrap_or(libc::c_int::MAX);
        let arenas = libc::c_int::try_from(ARENAS).unwrap_or(2);
        // SAFETY: mallopt takes plain integers and only changes allocator
        // parameters; it is not thread-safe, so shipd calls it before it
        // starts any thread.
        unsafe {
            let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, keep) == 1;
            // 32-bit glibc caps the mmap threshold (at 512 KiB): take that.
            if libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_FROM) != 1 {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 10);
            }
            libc::mallopt(libc::M_ARENA_MAX, arenas);
            trim
        }
    }

    pub fn release_freed_heap() -> bool {
        // SAFETY: malloc_trim takes a plain integer and only returns free
        // pages to the kernel; it is thread-safe.
        unsafe { libc::malloc_trim(0) == 1 }
    }

    pub fn page_out(start: usize, len: usize) -> std::io::Result<()> {
        // SAFETY: the range is a read-only file mapping of this process
        // (from /proc/self/maps); MADV_PAGEOUT only drops its clean pages,
        // which fault back in unchanged: no memory the program holds changes.
        let r = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub fn keep_freed_heap() -> bool {
        false
    }

    pub fn release_freed_heap() -> bool {
        false
    }

    pub fn page_out(_start: usize, _len: usize) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_mappings_are_the_read_only_ones_of_the_executable() {
        let maps = "5600-5800 r--p 00000000 fe:00 7 /usr/bin/shipd\n\
                    5800-6000 r-xp 00200000 fe:00 7 /usr/bin/shipd\n\
                    6000-6100 rw-p 00a00000 fe:00 7 /usr/bin/shipd\n\
                    7000-7100 r-xp 00000000 fe:00 9 /usr/lib/libc.so.6\n\
                    8000-9000 rw-p 00000000 00:00 0 [heap]\n";
        assert_eq!(
            program_mappings(maps, "/usr/bin/shipd"),
            [(0x5600, 0x5800), (0x5800, 0x6000)]
        );
    }

    #[test]
    fn shedding_the_program_text_lowers_the_resident_set_and_the_code_still_runs() {
        let rss_file = || {
            std::fs::read_to_string("/proc/self/smaps_rollup")
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find(|l| l.starts_with("Rss:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        let before = rss_file();
        let shed = shed_program_text().unwrap_or(0);
        let after = rss_file();
        assert!(shed > 0, "the test binary has read-only mappings");
        // The ARM builds run under qemu-user here, whose madvise does not
        // reach the host's pages: only a native run can see the drop.
        if cfg!(target_arch = "x86_64") {
            assert!(after < before, "{before} kB then {after} kB");
        }
        // Code of the shed pages runs as before (it faults back in).
        assert_eq!(next_release_wait(RELEASE_INTERVAL, true), RELEASE_INTERVAL);
    }

    #[test]
    fn the_release_wait_doubles_while_nothing_is_released_and_resets_when_something_is() {
        let mut wait = RELEASE_INTERVAL;
        let mut waits = Vec::new();
        for _ in 0..8 {
            wait = next_release_wait(wait, false);
            waits.push(wait.as_secs());
        }
        assert_eq!(waits, [20, 40, 80, 160, 320, 640, 640, 640]);
        assert_eq!(next_release_wait(wait, true), RELEASE_INTERVAL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_megabyte_of_work_cuts_a_long_idle_wait_short_once_until_reset() {
        static METER: WorkMeter = WorkMeter::new();
        let wait = || async {
            let start = tokio::time::Instant::now();
            tokio::select! {
                _ = tokio::time::sleep(RELEASE_INTERVAL_IDLE) => None,
                _ = METER.passed.notified() => Some(start.elapsed()),
            }
        };
        let woke = tokio::spawn(wait());
        tokio::task::yield_now().await;
        METER.add(RELEASE_AFTER_BYTES / 2);
        tokio::time::advance(Duration::from_secs(1)).await;
        METER.add(RELEASE_AFTER_BYTES / 2);
        let woke = woke.await.ok().flatten();
        assert_eq!(
            woke,
            Some(Duration::from_secs(1)),
            "woken by the second half"
        );
        // More work before the release wakes no one again...
        METER.add(RELEASE_AFTER_BYTES);
        assert_eq!(wait().await, None, "slept the whole idle wait");
        // ...after it, the next megabyte does.
        METER.reset();
        METER.add(RELEASE_AFTER_BYTES);
        assert_eq!(wait().await, Some(Duration::ZERO));
    }

    #[tokio::test]
    async fn reservations_wait_for_each_other_and_give_back_when_dropped() {
        let budget = ByteBudget::new(10 * UNIT);
        let soon = || Instant::now() + Duration::from_millis(50);
        let mut a = budget.reserve();
        a.grow_to(6 * UNIT, soon()).await.unwrap();
        let mut b = budget.reserve();
        assert_eq!(b.grow_to(5 * UNIT, soon()).await, Err(NoRoom::NotNow));
        assert_eq!(b.grow_to(11 * UNIT, soon()).await, Err(NoRoom::Never));
        a.shrink_to(UNIT + 1);
        assert_eq!(a.bytes(), 2 * UNIT, "rounded up to whole units");
        b.grow_to(5 * UNIT, soon()).await.unwrap();
        assert_eq!(budget.in_use(), 7 * UNIT);
        drop(a);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocking_thread_waits_through_the_runtime() {
        let budget = ByteBudget::new(4 * UNIT);
        let mut first = budget.reserve();
        first
            .grow_to(4 * UNIT, Instant::now() + Duration::from_millis(10))
            .await
            .unwrap();
        let handle = tokio::runtime::Handle::current();
        let waiter = tokio::task::spawn_blocking({
            let budget = budget.clone();
            move || {
                let mut r = budget.reserve();
                r.grow_to_blocking(&handle, 2 * UNIT, Instant::now() + Duration::from_secs(5))
                    .map(|()| r.bytes())
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        assert_eq!(waiter.await.unwrap(), Ok(2 * UNIT));
    }
}
