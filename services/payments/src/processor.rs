//! The card processor, behind [`Processor`]: the one boundary where a fake
//! is right. [`Simulator`] is its only implementation; a real acquirer
//! would be a second one, and nothing else in the service would change.
//!
//! Every call names the order it is about, which the processor takes as
//! its idempotency key: a call repeated (a retry, or concurrent calls for
//! one order) moves money at most once per kind of call. That is what lets
//! the ledger call the processor before its own transaction decides which
//! caller records the movement.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{Card, DeclineReason, Money};

/// What the processor said to an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The amount is held on the card.
    Approved,
    /// The card was refused; an answer, not a failure.
    Declined(DeclineReason),
}

/// The processor did not answer (or answered that it failed): nothing
/// happened there, and the same call may be made again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the card processor is unavailable: {0}")]
pub(crate) struct Unavailable(pub(crate) &'static str);

/// A card processor. Each call is idempotent by `order`.
#[async_trait]
pub(crate) trait Processor: Send + Sync + std::fmt::Debug + 'static {
    /// Asks to hold `money` on `card`.
    async fn authorize(
        &self,
        order: Uuid,
        card: &Card,
        money: Money,
    ) -> Result<Decision, Unavailable>;
    /// Takes the amount held for `order`.
    async fn capture(&self, order: Uuid, money: Money) -> Result<(), Unavailable>;
    /// Lets go of the hold of `order`.
    async fn void(&self, order: Uuid, money: Money) -> Result<(), Unavailable>;
    /// Gives the amount captured for `order` back.
    async fn refund(&self, order: Uuid, money: Money) -> Result<(), Unavailable>;
}

/// The test card that always fails transiently.
pub(crate) const FLAKY_CARD: &str = "4000000000000119";
/// The test card the issuer refuses.
const DECLINED_CARD: &str = "4000000000000002";
/// The test card without the funds.
const BROKE_CARD: &str = "4000000000009995";

/// A processor that decides by the card alone (shared/API.md's test cards)
/// and moves no money. It can be made slow and flaky for fault runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Simulator {
    /// How long each call takes.
    pub(crate) latency: Duration,
    /// Fraction of calls that fail transiently, 0.0 to 1.0.
    pub(crate) failure_rate: f64,
}

impl Simulator {
    /// What every call goes through first: the latency, then the dice.
    async fn call(&self) -> Result<(), Unavailable> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        // fastrand::f64() is in [0, 1): a rate of 1 fails every call.
        if self.failure_rate > 0.0 && fastrand::f64() < self.failure_rate {
            return Err(Unavailable("simulated transient failure"));
        }
        Ok(())
    }
}

/// The simulator's verdict on `card` in `month` of `year`.
pub(crate) fn decide(card: &Card, year: i32, month: u8) -> Result<Decision, Unavailable> {
    if card.number.is(FLAKY_CARD) {
        return Err(Unavailable("processor error (test card)"));
    }
    if !card.number.passes_luhn() || card.expiry.is_past(year, month) {
        return Ok(Decision::Declined(DeclineReason::InvalidCard));
    }
    if card.number.is(DECLINED_CARD) {
        return Ok(Decision::Declined(DeclineReason::CardDeclined));
    }
    if card.number.is(BROKE_CARD) {
        return Ok(Decision::Declined(DeclineReason::InsufficientFunds));
    }
    Ok(Decision::Approved)
}

#[async_trait]
impl Processor for Simulator {
    async fn authorize(
        &self,
        _order: Uuid,
        card: &Card,
        _money: Money,
    ) -> Result<Decision, Unavailable> {
        self.call().await?;
        let today = time::OffsetDateTime::now_utc();
        decide(card, today.year(), u8::from(today.month()))
    }

    async fn capture(&self, _order: Uuid, _money: Money) -> Result<(), Unavailable> {
        self.call().await
    }

    async fn void(&self, _order: Uuid, _money: Money) -> Result<(), Unavailable> {
        self.call().await
    }

    async fn refund(&self, _order: Uuid, _money: Money) -> Result<(), Unavailable> {
        self.call().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, CardNumber, Currency, Cvc, Expiry};

    fn card(number: &str, month: i64, year: i64) -> Card {
        Card {
            number: CardNumber::parse(number).unwrap(),
            expiry: Expiry::new(month, year).unwrap(),
            cvc: Cvc::parse("123").unwrap(),
        }
    }

    fn money() -> Money {
        Money {
            amount: Amount::new(2500).unwrap(),
            currency: Currency::parse("EUR").unwrap(),
        }
    }

    #[test]
    fn test_cards_decide_as_documented() {
        let at = |number: &str| decide(&card(number, 12, 2030), 2026, 1);
        assert_eq!(at("4242424242424242"), Ok(Decision::Approved));
        assert_eq!(at("5555555555554444"), Ok(Decision::Approved));
        assert_eq!(
            at("4000000000000002"),
            Ok(Decision::Declined(DeclineReason::CardDeclined))
        );
        assert_eq!(
            at("4000000000009995"),
            Ok(Decision::Declined(DeclineReason::InsufficientFunds))
        );
        assert!(at(FLAKY_CARD).is_err());
        assert_eq!(
            at("4242424242424241"),
            Ok(Decision::Declined(DeclineReason::InvalidCard)),
            "fails the Luhn check"
        );
    }

    #[test]
    fn expired_cards_are_invalid() {
        let c = card("4242424242424242", 6, 2026);
        assert_eq!(decide(&c, 2026, 6), Ok(Decision::Approved));
        assert_eq!(
            decide(&c, 2026, 7),
            Ok(Decision::Declined(DeclineReason::InvalidCard))
        );
    }

    #[tokio::test]
    async fn failure_rate_one_fails_every_call_and_zero_none() {
        let flaky = Simulator {
            latency: Duration::ZERO,
            failure_rate: 1.0,
        };
        let order = Uuid::now_v7();
        let c = card("4242424242424242", 12, 2099);
        for _ in 0..50 {
            assert!(flaky.authorize(order, &c, money()).await.is_err());
            assert!(flaky.capture(order, money()).await.is_err());
            assert!(flaky.void(order, money()).await.is_err());
            assert!(flaky.refund(order, money()).await.is_err());
        }
        let steady = Simulator {
            latency: Duration::ZERO,
            failure_rate: 0.0,
        };
        for _ in 0..50 {
            assert_eq!(
                steady.authorize(order, &c, money()).await,
                Ok(Decision::Approved)
            );
            assert!(steady.capture(order, money()).await.is_ok());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_each_call() {
        let slow = Simulator {
            latency: Duration::from_millis(300),
            failure_rate: 0.0,
        };
        let started = tokio::time::Instant::now();
        slow.capture(Uuid::now_v7(), money()).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }
}
