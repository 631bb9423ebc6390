//! Whether a system journal is there to read (for the default pipeline).

use std::path::PathBuf;

/// Where the system journal lives when it is persistent or volatile.
pub const SYSTEM_JOURNAL_DIRS: [&str; 2] = ["/var/log/journal", "/run/log/journal"];

/// `name` found in the directories of `path` (a `PATH` value).
pub fn find_program(name: &str, path: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// True when `dir` holds a journal file, directly or one level down
/// (`/var/log/journal/<machine-id>/system.journal`).
pub fn has_journal_files(dir: &std::path::Path) -> bool {
    let is_journal = |p: &std::path::Path| {
        p.extension()
            .is_some_and(|e| e == "journal" || e == "journal~")
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        is_journal(&p)
            || std::fs::read_dir(&p)
                .map(|inner| inner.flatten().any(|f| is_journal(&f.path())))
                .unwrap_or(false)
    })
}

/// True when `journalctl` is on `PATH` and a system journal has files:
/// what the default pipeline's `only_when_available` asks.
pub fn system_journal_available() -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    find_program("journalctl", &path).is_some()
        && SYSTEM_JOURNAL_DIRS
            .iter()
            .any(|d| has_journal_files(std::path::Path::new(d)))
}
