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
    /// Calls in flight to this upstream at once (a bulkhead: a hung upstream
    /// holds only its own permits); further calls wait for a permit until
    /// their deadline. Zero is treated as one.
    pub concurrency: usize,
    /// Retries may add at most this many percent to the calls made...
    pub retry_budget_percent: u32,
    /// ...plus this many retries per second, so a quiet client can still
    /// retry. With both at zero nothing is retried.
    pub retry_budget_floor: u32,
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
            retry_budget_percent: 20,
            retry_budget_floor: 10,
        }
    }
}

/// The deadlines of the two classes of call a client makes while somebody
/// waits: reads, which are cheap to repeat elsewhere, and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// A read (GET, HEAD) in all, every attempt and pause included.
    pub read: Duration,
    /// One attempt of a read, so an instance that hangs leaves time to ask another.
    pub read_attempt: Duration,
    /// A write in all.
    pub write: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            read: Duration::from_secs(3),
            read_attempt: Duration::from_secs(1),
            write: Duration::from_secs(10),
        }
    }
}

/// One `T` for reads and one for writes, each call taking the one its
/// method says: reads are GET and HEAD, everything else writes. Callers that
/// wait (the gateway, the storefront) keep a stack of each over the same
/// instances, so slow writes cannot take the permits reads need.
#[derive(Debug, Clone)]
pub struct ByClass<T> {
    /// For GET and HEAD.
    pub reads: T,
    /// For every other method.
    pub writes: T,
}

impl<T> ByClass<T> {
    /// The one for a request with `method`.
    pub fn for_method(&self, method: &http::Method) -> &T {
        if matches!(*method, http::Method::GET | http::Method::HEAD) {
            &self.reads
        } else {
            &self.writes
        }
    }
}

impl Policy {
    /// The policy for reads: a short deadline, each attempt bounded.
    pub fn read(deadlines: &Deadlines) -> Self {
        Self {
            deadline: deadlines.read,
            attempt_timeout: Some(deadlines.read_attempt.min(deadlines.read)),
            ..Self::default()
        }
    }

    /// The policy for writes: a longer deadline; an attempt may use all of
    /// it, since a write that may have arrived is not repeated.
    pub fn write(deadlines: &Deadlines) -> Self {
        Self {
            deadline: deadlines.write,
            ..Self::default()
        }
    }

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
                open_for: Duration::from_secs(1),
                open_max: Duration::from_secs(30),
            }
        );
        assert_eq!(policy.concurrency, 256);
        assert_eq!(
            (policy.retry_budget_percent, policy.retry_budget_floor),
            (20, 10)
        );
        let deadlines = Deadlines::default();
        let read = Policy::read(&deadlines);
        assert_eq!(read.deadline, Duration::from_secs(3));
        assert_eq!(read.attempt_timeout, Some(Duration::from_secs(1)));
        let write = Policy::write(&deadlines);
        assert_eq!(write.deadline, Duration::from_secs(10));
        assert_eq!(write.attempt_timeout, None);
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
