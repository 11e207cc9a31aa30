//! Exponential backoff, the one formula every retry in Bazaar waits by: a
//! base delay doubling per attempt up to a ceiling, optionally with full
//! jitter (uniform between zero and that), so callers that failed together
//! do not come back together.

use std::time::Duration;

/// `base · 2^n`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// Doubling from `base` up to `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The delay before retry number `retry` (0 for the first):
    /// `base · 2^retry`, at most `max`; never overflows.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A wait uniform in `[0, delay(retry)]` ("full jitter").
    pub fn jittered(&self, retry: u32) -> Duration {
        jitter(self.delay(retry), &mut fastrand::Rng::new())
    }

    /// The delay after `current` for a loop that keeps its own: twice as
    /// long, at most `max`.
    pub fn after(&self, current: Duration) -> Duration {
        current.saturating_mul(2).min(self.max)
    }
}

/// Uniform in `[0, ceiling]`.
pub fn jitter(ceiling: Duration, rng: &mut fastrand::Rng) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_then_caps_without_overflow() {
        let b = Backoff::new(50 * MS, 1000 * MS);
        let delays: Vec<Duration> = (0..7).map(|n| b.delay(n)).collect();
        assert_eq!(
            delays,
            [50, 100, 200, 400, 800, 1000, 1000].map(|ms| ms * MS)
        );
        assert_eq!(b.delay(u32::MAX), 1000 * MS);
        assert_eq!(b.after(300 * MS), 600 * MS);
        assert_eq!(b.after(900 * MS), 1000 * MS);
        assert_eq!(b.after(Duration::MAX), 1000 * MS);
    }

    #[test]
    fn full_jitter_stays_within_the_delay_and_spreads() {
        let b = Backoff::new(50 * MS, 1000 * MS);
        for retry in 0..6 {
            let ceiling = b.delay(retry);
            let samples: Vec<Duration> = (0..2_000).map(|_| b.jittered(retry)).collect();
            assert!(samples.iter().all(|d| *d <= ceiling), "retry {retry}");
            assert!(
                samples.iter().any(|d| *d < ceiling / 4),
                "retry {retry}: nothing low"
            );
            assert!(
                samples.iter().any(|d| *d > ceiling * 3 / 4),
                "retry {retry}: nothing high"
            );
        }
        let mut rng = fastrand::Rng::with_seed(7);
        assert_eq!(jitter(Duration::ZERO, &mut rng), Duration::ZERO);
    }
}
