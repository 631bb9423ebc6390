//! What the file source may spend in file descriptors, and what it does when
//! the process has none left.
//!
//! A failed `open`, `opendir` or `stat` is classified by [`OpenFailure`]:
//! only [`OpenFailure::Missing`] (ENOENT, ENOTDIR) may ever mean that a file
//! went away. Running out of descriptors (EMFILE, ENFILE) is an episode of
//! [`DescriptorPressure`]: one WARN naming the limit (rate-limited across
//! episodes), opens deferred with a growing backoff, every file kept at its
//! identity and offset, and one INFO when opens succeed again. When they run
//! out the source gives back half of what it holds (its ceiling: sockets and
//! checkpoints need some too) and reads its files in turns within that; the
//! ceiling goes back to the budget once the globs' directories can be listed
//! again. This module never opens anything itself.

use crate::sinks::log_limit::LogLimit;
use crate::telemetry::{self, Metric};
use std::time::{Duration, Instant};

/// Why opening, listing or looking up a path failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailure {
    /// ENOENT or ENOTDIR: the name leads nowhere. The only failure that may
    /// mean a file was removed or renamed away.
    Missing,
    /// EMFILE or ENFILE: no descriptor left in the process or the system.
    Descriptors,
    /// EACCES or EPERM.
    Permission,
    /// ELOOP: a symlink loop.
    SymlinkLoop,
    /// Anything else (EIO, ESTALE, ...).
    Io,
}

impl OpenFailure {
    pub fn of(error: &std::io::Error) -> OpenFailure {
        match error.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => OpenFailure::Missing,
            Some(libc::EMFILE | libc::ENFILE) => OpenFailure::Descriptors,
            Some(libc::EACCES | libc::EPERM) => OpenFailure::Permission,
            Some(libc::ELOOP) => OpenFailure::SymlinkLoop,
            _ if error.kind() == std::io::ErrorKind::NotFound => OpenFailure::Missing,
            _ => OpenFailure::Io,
        }
    }

    /// The `reason` label of the error counters.
    pub fn label(self) -> &'static str {
        match self {
            OpenFailure::Missing => "missing",
            OpenFailure::Descriptors => "descriptors",
            OpenFailure::Permission => "permission",
            OpenFailure::SymlinkLoop => "symlink_loop",
            OpenFailure::Io => "io",
        }
    }
}

/// One counter per failure reason (a missing file is not an error).
pub struct FailureCounters {
    descriptors: Metric,
    permission: Metric,
    symlink_loop: Metric,
    io: Metric,
}

impl FailureCounters {
    /// `name{component, reason}` for every reason but `missing`.
    pub fn new(name: &'static str, component: &str) -> Self {
        let c = |reason: OpenFailure| {
            telemetry::counter(
                name,
                &[("component", component), ("reason", reason.label())],
            )
        };
        FailureCounters {
            descriptors: c(OpenFailure::Descriptors),
            permission: c(OpenFailure::Permission),
            symlink_loop: c(OpenFailure::SymlinkLoop),
            io: c(OpenFailure::Io),
        }
    }

    pub fn count(&self, failure: OpenFailure) {
        match failure {
            OpenFailure::Missing => {}
            OpenFailure::Descriptors => self.descriptors.inc(),
            OpenFailure::Permission => self.permission.inc(),
            OpenFailure::SymlinkLoop => self.symlink_loop.inc(),
            OpenFailure::Io => self.io.inc(),
        }
    }
}

/// RLIMIT_NOFILE of this process: (soft, hard), `None` for unlimited.
pub fn descriptor_limit() -> (Option<u64>, Option<u64>) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    (limit.current, limit.maximum)
}

/// The number of files one source holds open: `configured`, but at most
/// half the soft descriptor limit, so sockets, checkpoints and the other
/// sources keep room. Never below 1.
pub fn open_file_budget(configured: usize, soft_limit: Option<u64>) -> usize {
    let half = soft_limit.map_or(usize::MAX, |l| usize::try_from(l / 2).unwrap_or(usize::MAX));
    configured.min(half).max(1)
}

/// The first pause before opening again after running out of descriptors.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// At most one WARN about exhaustion per this period, however many episodes.
const WARN_PERIOD: Duration = Duration::from_secs(60);

/// An ongoing shortage of descriptors.
struct Episode {
    since: Instant,
    failures: u64,
    /// Its start was logged (so its end is too).
    logged: bool,
}

/// Tracks running out of descriptors: how many the source may hold now,
/// when opens may be tried again, and the one WARN per episode.
pub struct DescriptorPressure {
    source: String,
    /// Held at most ([`open_file_budget`]).
    budget: usize,
    /// Held at most now: the budget, or what was held when descriptors ran out.
    ceiling: usize,
    episode: Option<Episode>,
    retry_at: Option<Instant>,
    backoff: Duration,
    warn: LogLimit,
}

impl DescriptorPressure {
    pub fn new(source: &str, budget: usize) -> Self {
        let budget = budget.max(1);
        DescriptorPressure {
            source: source.to_owned(),
            budget,
            ceiling: budget,
            episode: None,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            warn: LogLimit::new(WARN_PERIOD),
        }
    }

    /// Descriptors the source may hold at most.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Descriptors the source may hold now: past it, a file is opened only
    /// in exchange for another one's.
    pub fn ceiling(&self) -> usize {
        self.ceiling
    }

    /// Whether opening may be tried now.
    pub fn may_open(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|t| now >= t)
    }

    /// When opening may be tried again, during an episode.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// An open (or listing) failed for want of descriptors while the source
    /// held `held`: at the start of an episode it is to give back half, then
    /// to hold no more than it does, until [`listed`](Self::listed).
    pub fn exhausted(&mut self, error: &std::io::Error, held: usize) {
        let now = Instant::now();
        let allowed = if self.episode.is_none() {
            held / 2
        } else {
            held
        };
        self.ceiling = self.ceiling.min(allowed).max(1);
        let episode = self.episode.get_or_insert(Episode {
            since: now,
            failures: 0,
            logged: false,
        });
        episode.failures += 1;
        if episode.failures == 1 {
            if let Some(suppressed) = self.warn.allow() {
                episode.logged = true;
                let (soft, hard) = descriptor_limit();
                tracing::warn!(
                    source = %self.source,
                    error = %error,
                    limit_nofile_soft = soft,
                    limit_nofile_hard = hard,
                    held_by_source = held,
                    max_open_files = self.budget,
                    earlier_episodes_not_logged = suppressed,
                    "out of file descriptors: every file keeps its position and is opened again when descriptors free up (raise LimitNOFILE / ulimit -n, or lower max_open_files)"
                );
            }
        }
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// The globs' directories could be listed: descriptors are to be had,
    /// the source may hold its whole budget again.
    pub fn listed(&mut self) {
        self.ceiling = self.budget;
        self.relieved();
    }

    /// An open succeeded: an ongoing episode is over.
    pub fn relieved(&mut self) {
        self.retry_at = None;
        self.backoff = FIRST_BACKOFF;
        if let Some(episode) = self.episode.take() {
            if episode.logged {
                tracing::info!(
                    source = %self.source,
                    lasted = ?episode.since.elapsed(),
                    deferred_opens = episode.failures,
                    "file descriptors available again; deferred files are being read"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os_error(code: i32) -> std::io::Error {
        std::io::Error::from_raw_os_error(code)
    }

    #[test]
    fn only_enoent_and_enotdir_mean_missing() {
        for (errno, failure) in [
            (libc::ENOENT, OpenFailure::Missing),
            (libc::ENOTDIR, OpenFailure::Missing),
            (libc::EMFILE, OpenFailure::Descriptors),
            (libc::ENFILE, OpenFailure::Descriptors),
            (libc::EACCES, OpenFailure::Permission),
            (libc::EPERM, OpenFailure::Permission),
            (libc::ELOOP, OpenFailure::SymlinkLoop),
            (libc::EIO, OpenFailure::Io),
        ] {
            assert_eq!(OpenFailure::of(&os_error(errno)), failure, "errno {errno}");
        }
    }

    #[test]
    fn budget_leaves_half_the_descriptor_limit_to_the_rest_of_the_process() {
        assert_eq!(open_file_budget(256, Some(1024)), 256);
        assert_eq!(open_file_budget(4096, Some(1024)), 512);
        assert_eq!(open_file_budget(256, None), 256);
        assert_eq!(open_file_budget(0, Some(1024)), 1);
        assert_eq!(open_file_budget(256, Some(1)), 1);
    }

    #[test]
    fn exhaustion_backs_off_and_an_open_ends_the_episode() {
        let mut p = DescriptorPressure::new("files", 256);
        let now = Instant::now();
        assert!(p.may_open(now));
        assert_eq!(p.ceiling(), 256);
        p.exhausted(&os_error(libc::EMFILE), 20);
        let first = p.retry_at().unwrap();
        assert!(!p.may_open(Instant::now()));
        assert_eq!(p.ceiling(), 10, "half of what was held is given back");
        p.exhausted(&os_error(libc::EMFILE), 9);
        assert!(p.retry_at().unwrap() > first, "the pause grows");
        assert_eq!(p.ceiling(), 9, "then no more than held");
        assert_eq!(p.episode.as_ref().unwrap().failures, 2);
        p.relieved();
        assert!(p.may_open(Instant::now()));
        assert!(p.episode.is_none());
        assert_eq!(p.backoff, FIRST_BACKOFF);
        assert_eq!(
            p.ceiling(),
            9,
            "an open in exchange proves no spare descriptor"
        );
        p.exhausted(&os_error(libc::EMFILE), 1);
        assert_eq!(p.ceiling(), 1, "one file at a time at least");
        p.listed();
        assert_eq!(p.ceiling(), 256, "listing a directory does");
    }
}
