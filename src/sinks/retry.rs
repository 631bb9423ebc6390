//! Retry timing: exponential backoff with full jitter, and a slow lane for
//! failures only an operator can fix (bad credentials).

use std::time::Duration;

/// Backoff bounds.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Fixed-ish wait for authentication failures.
    pub auth: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            auth: Duration::from_secs(30),
        }
    }
}

/// The state of one retry sequence.
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Self {
        Backoff { policy, attempt: 0 }
    }

    /// How long to wait before the next attempt: uniformly random in
    /// `[ceiling/2, ceiling]`, the ceiling doubling from `initial` up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .policy
            .initial
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.policy.max);
        self.attempt += 1;
        jitter(ceiling)
    }

    /// The wait after an authentication failure.
    pub fn auth_delay(&mut self) -> Duration {
        jitter(self.policy.auth)
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

fn jitter(ceiling: Duration) -> Duration {
    let half = ceiling / 2;
    half + half.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_and_stay_under_the_cap() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            auth: Duration::from_secs(10),
        };
        let mut b = Backoff::new(policy);
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(2));
        }
        assert!(
            b.next_delay() >= Duration::from_secs(1),
            "ceiling reached the cap"
        );
    }
}
