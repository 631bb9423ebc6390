//! The heap settings of `shipd::memory`: freed memory stays for reuse
//! until it is released. Its own test binary, so no other test's memory
//! moves the numbers.

fn resident_kib() -> u64 {
    shipd::cli::bench::process::snapshot(std::process::id())
        .map(|s| s.rss / 1024)
        .unwrap_or(0)
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn freed_memory_stays_for_reuse_until_released() {
    use shipd::memory::{keep_freed_heap, release_freed_heap};
    assert!(keep_freed_heap(), "glibc refused the thresholds");
    let before = resident_kib();
    // 4 MiB in small blocks, as parsed events are.
    let blocks: Vec<Vec<u8>> = (0..65_536).map(|i| vec![i as u8; 48]).collect();
    let with_blocks = resident_kib();
    drop(blocks);
    let after_free = resident_kib();
    release_freed_heap();
    let after_release = resident_kib();
    eprintln!("VmRSS KiB: before {before}, with blocks {with_blocks}, freed {after_free}, released {after_release}");
    assert!(
        with_blocks > before + 4096,
        "the blocks did not show: {before} -> {with_blocks}"
    );
    assert!(
        after_free + 1024 > with_blocks,
        "freed memory went back at once: {with_blocks} -> {after_free} KiB"
    );
    assert!(
        after_release + 3072 < after_free,
        "release gave back too little: {after_free} -> {after_release} KiB"
    );
}
