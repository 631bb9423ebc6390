//! Rate-limited logging: a repeated failure is logged at most once per period,
//! with the number of occurrences suppressed since the last line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one log line through per `period`.
#[derive(Debug)]
pub struct LogLimit {
    period: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl LogLimit {
    pub const fn new(period: Duration) -> Self {
        LogLimit {
            period,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed_since_last)` when a line may be logged now.
    pub fn allow(&self) -> Option<u64> {
        self.allow_for(1)
    }

    /// Like [`LogLimit::allow`] for `n` occurrences at once (a batch's
    /// failures): when a line may be logged, one of them is its subject and
    /// the rest count as suppressed.
    pub fn allow_for(&self, n: u64) -> Option<u64> {
        if n == 0 {
            return None;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.period) {
            self.suppressed.fetch_add(n, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(n - 1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_line_within_period_is_suppressed_and_counted() {
        let limit = LogLimit::new(Duration::from_secs(60));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.suppressed.load(Ordering::Relaxed), 2);
    }
}
