//! Wall-clock time as Bazaar stores it: milliseconds since the Unix epoch.
//!
//! [`now_ms`] is the one reading of the system clock. Code whose decisions
//! depend on how much time passed (a reservation's expiry, a lease) reads
//! it through a [`Clock`] instead, which the server hands to its service:
//! the system's in production, a manual one in tests, which move it
//! forward with [`Clock::advance`] instead of sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Milliseconds since the Unix epoch, now, from the system clock.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Where "now" comes from: the system clock, or a manual one that only
/// moves when told to. Clones share one clock.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock standing at the system's now until [`Clock::advance`]d.
    pub fn manual() -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(now_ms()))),
        }
    }

    /// Milliseconds since the Unix epoch, by this clock.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(at) => at.load(Ordering::SeqCst),
            None => now_ms(),
        }
    }

    /// Moves a manual clock forward by `by`.
    ///
    /// # Panics
    /// On the system clock, which nobody moves.
    pub fn advance(&self, by: Duration) {
        let at = self
            .manual
            .as_ref()
            .expect("only a manual clock can be advanced");
        at.fetch_add(
            i64::try_from(by.as_millis()).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            Some(at) => write!(f, "Clock::manual({})", at.load(Ordering::SeqCst)),
            None => f.write_str("Clock::system"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = Clock::manual();
        let start = clock.now_ms();
        let shared = clock.clone();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now_ms(), start);
        shared.advance(Duration::from_secs(600));
        assert_eq!(clock.now_ms(), start + 600_000);
    }

    #[test]
    fn the_system_clock_is_now() {
        let before = now_ms();
        let read = Clock::system().now_ms();
        assert!(read >= before && read <= now_ms());
    }
}
