//! The per-endpoint circuit breaker (passive outlier ejection): a pure state
//! machine over `tokio::time::Instant`, so tests drive it with paused time.
//!
//! Consecutive failures eject an endpoint for [`BreakerPolicy::open_for`];
//! each failed probe after that doubles the ejection, up to
//! [`BreakerPolicy::open_max`]. A good probe, or an active health check that
//! sees the endpoint ready again ([`Breaker::readmit`]), closes it at once.

use std::time::Duration;

use tokio::time::Instant;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long a breaker that just opened rejects calls before admitting
    /// one probe.
    pub open_for: Duration,
    /// Cap on the open period, which doubles with every failed probe.
    pub open_max: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failures: 5,
            open_for: Duration::from_secs(1),
            open_max: Duration::from_secs(30),
        }
    }
}

impl BreakerPolicy {
    /// The open period after `ejections` openings in a row (1 for the first).
    pub fn ejection(&self, ejections: u32) -> Duration {
        let doublings = ejections.saturating_sub(1).min(20);
        self.open_for
            .saturating_mul(1 << doublings)
            .min(self.open_max.max(self.open_for))
    }
}

/// What a breaker currently does with calls, as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused until the open period ends.
    Open,
    /// One probe call is in flight; its result closes or re-opens the breaker.
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, ejections: u32 },
    HalfOpen { ejections: u32 },
}

/// How a call got through the breaker; a probe's result decides the state,
/// an ordinary call's result only counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Normal,
    Probe,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    state: State,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: State::Closed { failures: 0 },
        }
    }
}

impl Breaker {
    /// Whether [`Breaker::admit`] would let a call through now, without taking the probe slot.
    pub(crate) fn admits(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until, .. } => now >= until,
            State::HalfOpen { .. } => false,
        }
    }

    pub(crate) fn admit(&mut self, now: Instant) -> Option<Admission> {
        match self.state {
            State::Closed { .. } => Some(Admission::Normal),
            State::Open { until, ejections } if now >= until => {
                self.state = State::HalfOpen { ejections };
                Some(Admission::Probe)
            }
            State::Open { .. } | State::HalfOpen { .. } => None,
        }
    }

    /// Records an answer from the endpoint; returns the new state if it changed.
    pub(crate) fn on_success(&mut self, admission: Admission) -> Option<BreakerState> {
        match (admission, self.state) {
            (Admission::Probe, State::HalfOpen { .. }) => {
                self.state = State::Closed { failures: 0 };
                Some(BreakerState::Closed)
            }
            (Admission::Normal, State::Closed { .. }) => {
                self.state = State::Closed { failures: 0 };
                None
            }
            // A call admitted before the breaker opened says nothing about now.
            _ => None,
        }
    }

    /// Records a failure of the endpoint; returns the new state if it changed.
    pub(crate) fn on_failure(
        &mut self,
        admission: Admission,
        now: Instant,
        policy: &BreakerPolicy,
    ) -> Option<BreakerState> {
        match (admission, self.state) {
            (Admission::Probe, State::HalfOpen { ejections }) => {
                let ejections = ejections.saturating_add(1);
                self.state = State::Open {
                    until: now + policy.ejection(ejections),
                    ejections,
                };
                Some(BreakerState::Open)
            }
            (Admission::Normal, State::Closed { failures }) => {
                let failures = failures.saturating_add(1);
                if failures >= policy.failures.max(1) {
                    self.state = State::Open {
                        until: now + policy.ejection(1),
                        ejections: 1,
                    };
                    Some(BreakerState::Open)
                } else {
                    self.state = State::Closed { failures };
                    None
                }
            }
            _ => None,
        }
    }

    /// A call ended without a verdict (its caller gave up): a probe must not
    /// hold the half-open slot forever, so the next call may probe at once.
    pub(crate) fn on_abandon(&mut self, admission: Admission, now: Instant) {
        if admission == Admission::Probe
            && let State::HalfOpen { ejections } = self.state
        {
            self.state = State::Open {
                until: now,
                ejections,
            };
        }
    }

    /// An active health check found the endpoint ready: calls pass again
    /// at once, however long the ejection was to last. Returns the new
    /// state if it changed.
    pub(crate) fn readmit(&mut self) -> Option<BreakerState> {
        match self.state {
            State::Closed { .. } => None,
            State::Open { .. } | State::HalfOpen { .. } => {
                self.state = State::Closed { failures: 0 };
                Some(BreakerState::Closed)
            }
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures: 3,
            open_for: Duration::from_secs(5),
            open_max: Duration::from_secs(20),
        }
    }

    fn fail_normal(breaker: &mut Breaker) -> Option<BreakerState> {
        let admission = breaker
            .admit(Instant::now())
            .expect("closed breaker admits");
        breaker.on_failure(admission, Instant::now(), &policy())
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let mut breaker = Breaker::default();
        assert_eq!(fail_normal(&mut breaker), None);
        assert_eq!(fail_normal(&mut breaker), None);
        // A success in between resets the count: failures must be consecutive.
        let admission = breaker.admit(Instant::now()).unwrap();
        breaker.on_success(admission);
        assert_eq!(fail_normal(&mut breaker), None);
        assert_eq!(fail_normal(&mut breaker), None);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(fail_normal(&mut breaker), Some(BreakerState::Open));
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.admits(Instant::now()));
        assert_eq!(breaker.admit(Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_one_probe_and_success_closes() {
        let mut breaker = Breaker::default();
        for _ in 0..3 {
            fail_normal(&mut breaker);
        }
        tokio::time::advance(Duration::from_millis(4_999)).await;
        assert_eq!(
            breaker.admit(Instant::now()),
            None,
            "still open before open_for"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.admits(Instant::now()));
        assert_eq!(breaker.admit(Instant::now()), Some(Admission::Probe));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(
            breaker.admit(Instant::now()),
            None,
            "only one probe at a time"
        );
        assert_eq!(
            breaker.on_success(Admission::Probe),
            Some(BreakerState::Closed)
        );
        assert_eq!(breaker.admit(Instant::now()), Some(Admission::Normal));
        // Closed again with a fresh count.
        assert_eq!(fail_normal(&mut breaker), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_for_another_period() {
        let mut breaker = Breaker::default();
        for _ in 0..3 {
            fail_normal(&mut breaker);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = breaker.admit(Instant::now()).unwrap();
        assert_eq!(
            breaker.on_failure(probe, Instant::now(), &policy()),
            Some(BreakerState::Open)
        );
        // The second ejection lasts twice as long as the first.
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert_eq!(breaker.admit(Instant::now()), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(breaker.admit(Instant::now()), Some(Admission::Probe));
    }

    #[test]
    fn ejections_double_up_to_the_cap() {
        let lengths: Vec<u64> = (1..=5).map(|n| policy().ejection(n).as_secs()).collect();
        assert_eq!(lengths, [5, 10, 20, 20, 20]);
        assert_eq!(policy().ejection(u32::MAX), Duration::from_secs(20));
        assert_eq!(BreakerPolicy::default().ejection(1), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn readmission_closes_at_once_and_forgets_past_ejections() {
        let mut breaker = Breaker::default();
        for _ in 0..3 {
            fail_normal(&mut breaker);
        }
        assert_eq!(breaker.readmit(), Some(BreakerState::Closed));
        assert_eq!(breaker.readmit(), None, "already closed");
        assert_eq!(breaker.admit(Instant::now()), Some(Admission::Normal));
        // Ejected again, it starts from the first period, not a doubled one.
        for _ in 0..3 {
            fail_normal(&mut breaker);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(breaker.admit(Instant::now()), Some(Admission::Probe));
        // A probe in flight when the check readmits: its late failure is ignored.
        assert_eq!(breaker.readmit(), Some(BreakerState::Closed));
        assert_eq!(
            breaker.on_failure(Admission::Probe, Instant::now(), &policy()),
            None
        );
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_results_do_not_move_an_open_breaker() {
        let mut breaker = Breaker::default();
        let early = breaker.admit(Instant::now()).unwrap();
        for _ in 0..3 {
            fail_normal(&mut breaker);
        }
        // A call admitted before the breaker opened comes back fine: still open.
        assert_eq!(breaker.on_success(early), None);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_probe_frees_the_slot() {
        let mut breaker = Breaker::default();
        for _ in 0..3 {
            fail_normal(&mut breaker);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = breaker.admit(Instant::now()).unwrap();
        assert_eq!(breaker.admit(Instant::now()), None);
        breaker.on_abandon(probe, Instant::now());
        assert_eq!(breaker.admit(Instant::now()), Some(Admission::Probe));
    }
}
