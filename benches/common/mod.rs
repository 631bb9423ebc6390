//! Shared by the benches: deterministic, realistic nginx "combined" access
//! log lines (about 100–250 bytes each, average ≈ 160), the same generator
//! the end-to-end harness (`shipctl bench`) uses.

pub use shipd::cli::bench::workload::NginxLines;
