//! How shipd's heap is kept. By default glibc hands the top of its heap
//! back to the kernel as soon as 128 KiB of it are free, so the memory of
//! every processed batch (a 256 KiB read of 300-byte JSON lines parses into
//! about a megabyte of values) is returned and then faulted in and zeroed
//! again for the next batch: a quarter of the processing time measured in
//! `benches/lang.rs`. shipd lets up to [`KEEP_FREED`] bytes of freed heap
//! stay while it works and gives free memory back every
//! [`RELEASE_INTERVAL`], so an idle agent is as small as before.
//! Other C libraries (musl) have no such setting; there this does nothing.

use std::time::Duration;

/// Freed memory kept at the top of the heap before glibc trims it; also
/// the size from which an allocation gets its own mapping.
pub const KEEP_FREED: usize = 8 << 20;

/// How often free memory is given back to the kernel.
pub const RELEASE_INTERVAL: Duration = Duration::from_secs(10);

/// Sets the heap thresholds; call once at start, before any thread.
/// Returns whether the C library took them.
pub fn keep_freed_heap() -> bool {
    imp::keep_freed_heap()
}

/// Gives free heap memory back to the kernel (cheap on a small heap).
pub fn release_freed_heap() {
    imp::release_freed_heap()
}

/// Releases free heap memory every [`RELEASE_INTERVAL`], forever.
pub async fn release_periodically() {
    let mut tick = tokio::time::interval(RELEASE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        release_freed_heap();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::KEEP_FREED;

    pub fn keep_freed_heap() -> bool {
        let keep = libc::c_int::try_from(KEEP_FREED).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt takes plain integers and only changes allocator
        // parameters; it is not thread-safe, so shipd calls it before it
        // starts any thread.
        unsafe {
            let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, keep) == 1;
            // 32-bit glibc caps the mmap threshold (at 512 KiB): take that.
            if libc::mallopt(libc::M_MMAP_THRESHOLD, keep) != 1 {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 10);
            }
            trim
        }
    }

    pub fn release_freed_heap() {
        // SAFETY: malloc_trim takes a plain integer and only returns free
        // pages to the kernel; it is thread-safe.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub fn keep_freed_heap() -> bool {
        false
    }

    pub fn release_freed_heap() {}
}
