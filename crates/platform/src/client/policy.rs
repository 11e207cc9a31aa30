//! How calls to one upstream behave when it is slow or failing.

use std::time::Duration;

use bazaar_bus::backoff::Backoff;

use super::BreakerPolicy;

/// Deadline, retry, breaker and concurrency settings for calls to one upstream service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Budget for the whole call: waiting for a permit, every attempt and every backoff.
    pub deadline: Duration,
    /// Bound on one attempt, so a hung instance leaves time to retry another;
    /// `None` lets an attempt use the rest of the deadline.
    pub attempt_timeout: Option<Duration>,
    /// Retries after the first attempt (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Backoff ceiling before the first retry; it doubles for each further one.
    pub backoff_base: Duration,
    /// Cap on the backoff ceiling.
    pub backoff_max: Duration,
    /// The circuit breaker each endpoint gets.
    pub breaker: BreakerPolicy,
    /// Calls in flight to this upstream at once; further calls wait for a
    /// permit until their deadline. Zero is treated as one.
    pub concurrency: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(2),
            attempt_timeout: None,
            max_retries: 2,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            breaker: BreakerPolicy::default(),
            concurrency: 256,
        }
    }
}

impl Policy {
    /// The longest wait before retry number `retry` (0 for the first):
    /// `backoff_base · 2^retry`, capped at `backoff_max`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        Backoff::new(self.backoff_base, self.backoff_max).delay(retry)
    }

    /// The wait before retry number `retry`: uniform in `[0, ceiling]` ("full
    /// jitter"), so clients that failed together do not retry together.
    pub fn backoff(&self, retry: u32) -> Duration {
        Backoff::new(self.backoff_base, self.backoff_max).jittered(retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let policy = Policy::default();
        assert_eq!(policy.deadline, Duration::from_secs(2));
        assert_eq!(policy.max_retries, 2);
        assert_eq!(policy.backoff_base, Duration::from_millis(50));
        assert_eq!(policy.backoff_max, Duration::from_secs(1));
        assert_eq!(
            policy.breaker,
            BreakerPolicy {
                failures: 5,
                open_for: Duration::from_secs(5)
            }
        );
        assert_eq!(policy.concurrency, 256);
    }

    #[test]
    fn backoff_ceiling_doubles_then_caps() {
        let policy = Policy::default();
        let ceilings: Vec<u64> = (0..7)
            .map(|retry| policy.backoff_ceiling(retry).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(
            policy.backoff_ceiling(u32::MAX),
            Duration::from_secs(1),
            "no overflow"
        );
    }
}
