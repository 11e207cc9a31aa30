//! Authorize, capture, void and refund: what orders asks of payments, each
//! idempotent by order id, each state change one transaction with its
//! ledger row and its event.
//!
//! Every call first reads the order's payment and answers from it when the
//! call was made before (a replay asks the processor nothing). Otherwise it
//! asks the processor — outside any transaction, never holding a lock over
//! a network call — and then records the answer with a conditional write
//! that only one of several concurrent callers can win. The losers read the
//! payment again and answer what the winner recorded. A processor that
//! fails records nothing at all.

use std::sync::Arc;

use bazaar_events::payments::{
    PaymentAuthorized, PaymentCaptured, PaymentChanged, PaymentDeclined, PaymentRefunded,
    PaymentVoided,
};
use bazaar_platform::db::Db;
use bazaar_platform::events::Events;
use sqlx::{Any, Transaction};
use uuid::Uuid;

use crate::domain::{Amount, Card, Currency, Money, State};
use crate::error::Error;
use crate::metrics::PaymentsMetrics;
use crate::processor::{Decision, Processor};
use crate::store::{self, Movement, Payment};

/// What payments work with.
#[derive(Clone, Debug)]
pub(crate) struct Ledger {
    pub(crate) db: Db,
    pub(crate) events: Events,
    pub(crate) processor: Arc<dyn Processor>,
    pub(crate) metrics: PaymentsMetrics,
}

/// An authorization asked for; its `Debug` shows the card's last four
/// digits only.
#[derive(Debug, Clone)]
pub(crate) struct Authorization {
    pub(crate) order_id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) amount: Amount,
    pub(crate) currency: Currency,
    pub(crate) card: Card,
}

/// A payment, and whether this call made it so or found it so.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) payment: Payment,
    /// An earlier call recorded it; this one changed nothing.
    pub(crate) repeated: bool,
}

impl Answer {
    fn fresh(payment: Payment) -> Self {
        Self {
            payment,
            repeated: false,
        }
    }

    fn repeated(payment: Payment) -> Self {
        Self {
            payment,
            repeated: true,
        }
    }
}

/// The calls that move an existing payment on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Capture,
    Void,
    Refund,
}

/// What a step does with a payment in a given state.
enum Plan {
    /// Move it from `from` to `to`.
    Move { from: State, to: State },
    /// Already done (or nothing to do): answer it as it is.
    Done,
    /// Not possible from here.
    Refuse(&'static str),
}

impl Step {
    /// The operation's name, as in metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }

    fn movement(self) -> Movement {
        match self {
            Self::Capture => Movement::Capture,
            Self::Void => Movement::Void,
            Self::Refund => Movement::Refund,
        }
    }

    /// The state rules of payments.proto.
    fn plan(self, state: State) -> Plan {
        use State::{Authorized, Captured, Declined, Refunded, Voided};
        match (self, state) {
            (Self::Capture, Authorized) => Plan::Move {
                from: Authorized,
                to: Captured,
            },
            (Self::Capture, Captured) => Plan::Done,
            (Self::Capture, _) => Plan::Refuse("only an authorized payment can be captured"),
            (Self::Void, Authorized) => Plan::Move {
                from: Authorized,
                to: Voided,
            },
            // A declined payment holds nothing: voiding it has nothing to
            // give back.
            (Self::Void, Voided | Declined) => Plan::Done,
            (Self::Void, _) => Plan::Refuse("a captured payment is refunded, not voided"),
            (Self::Refund, Captured) => Plan::Move {
                from: Captured,
                to: Refunded,
            },
            (Self::Refund, Refunded) => Plan::Done,
            (Self::Refund, _) => Plan::Refuse("only a captured payment can be refunded"),
        }
    }
}

/// Rounds of read-then-write when a concurrent call on the same order
/// changed it in between; each round only moves states forward, so a few
/// are always enough.
const ATTEMPTS: usize = 4;

fn kept_changing() -> Error {
    Error::Db(sqlx::Error::Protocol(
        "the order's payment kept changing".into(),
    ))
}

impl Ledger {
    fn money(p: &Payment) -> Money {
        Money {
            amount: p.amount,
            currency: p.currency,
        }
    }

    /// Holds the amount on the card, or records the decline.
    pub(crate) async fn authorize(&self, ask: Authorization) -> Result<Answer, Error> {
        let money = Money {
            amount: ask.amount,
            currency: ask.currency,
        };
        for _ in 0..ATTEMPTS {
            if let Some(existing) = store::by_order(self.db.pool(), ask.order_id).await? {
                return same_request(existing, &ask).map(Answer::repeated);
            }
            let (state, decline_reason) = match self
                .processor
                .authorize(ask.order_id, &ask.card, money)
                .await?
            {
                Decision::Approved => (State::Authorized, None),
                Decision::Declined(reason) => (State::Declined, Some(reason)),
            };
            let at = store::now();
            let payment = Payment {
                id: Uuid::now_v7(),
                order_id: ask.order_id,
                user_id: ask.user_id,
                amount: ask.amount,
                currency: ask.currency,
                state,
                decline_reason,
                card_last4: ask.card.number.last4().to_owned(),
                created_at: at.clone(),
                updated_at: at.clone(),
            };
            let mut tx = self.db.begin_write().await?;
            if !store::insert(&mut tx, &payment).await? {
                // A concurrent call for the order recorded first: read it.
                tx.rollback().await?;
                continue;
            }
            if state == State::Authorized {
                store::record(&mut tx, &payment, Movement::Authorize, &at).await?;
            }
            self.announce(&mut tx, &payment).await?;
            tx.commit().await?;
            self.events.committed();
            match decline_reason {
                None => tracing::info!(
                    order_id = %payment.order_id,
                    payment_id = %payment.id,
                    card_last4 = %payment.card_last4,
                    amount = payment.amount.get(),
                    currency = payment.currency.as_str(),
                    "payment authorized"
                ),
                Some(reason) => tracing::info!(
                    order_id = %payment.order_id,
                    payment_id = %payment.id,
                    card_last4 = %payment.card_last4,
                    reason = reason.as_str(),
                    "card declined"
                ),
            }
            return Ok(Answer::fresh(payment));
        }
        Err(kept_changing())
    }

    /// Captures, voids or refunds the payment of `order`.
    pub(crate) async fn step(&self, order: Uuid, step: Step) -> Result<Answer, Error> {
        for _ in 0..ATTEMPTS {
            let payment = store::by_order(self.db.pool(), order)
                .await?
                .ok_or(Error::NotFound)?;
            let (from, to) = match step.plan(payment.state) {
                Plan::Done => return Ok(Answer::repeated(payment)),
                Plan::Refuse(wanted) => {
                    return Err(Error::State {
                        state: payment.state,
                        wanted,
                    });
                }
                Plan::Move { from, to } => (from, to),
            };
            let money = Self::money(&payment);
            match step {
                Step::Capture => self.processor.capture(order, money).await?,
                Step::Void => self.processor.void(order, money).await?,
                Step::Refund => self.processor.refund(order, money).await?,
            }
            let at = store::now();
            let mut tx = self.db.begin_write().await?;
            if !store::transition(&mut tx, payment.id, from, to, &at).await? {
                // Another call moved it meanwhile: answer what it did.
                tx.rollback().await?;
                continue;
            }
            let moved = Payment {
                state: to,
                updated_at: at.clone(),
                ..payment
            };
            // Past the conditional update this cannot meet an earlier
            // movement of its kind; if it did, the ledger's UNIQUE refuses
            // it and the whole change rolls back (INTERNAL, logged).
            store::record(&mut tx, &moved, step.movement(), &at).await?;
            self.announce(&mut tx, &moved).await?;
            tx.commit().await?;
            self.events.committed();
            tracing::info!(
                order_id = %order,
                payment_id = %moved.id,
                state = to.as_str(),
                "payment {}",
                to.as_str()
            );
            return Ok(Answer::fresh(moved));
        }
        Err(kept_changing())
    }

    /// The payments of `order` that belong to `user`.
    pub(crate) async fn of_user_order(
        &self,
        order: Uuid,
        user: Uuid,
    ) -> Result<Vec<Payment>, Error> {
        Ok(store::of_user_order(self.db.pool(), order, user).await?)
    }

    /// Appends the event that announces `payment`'s new state to `tx`.
    async fn announce(
        &self,
        tx: &mut Transaction<'_, Any>,
        payment: &Payment,
    ) -> Result<(), Error> {
        let changed = PaymentChanged {
            payment_id: payment.id,
            order_id: payment.order_id,
            user_id: payment.user_id,
            amount: payment.amount.get(),
            currency: payment.currency.as_str().to_owned(),
            status: payment.state.as_str().to_owned(),
            decline_reason: payment.decline_reason.map(|r| r.as_str().to_owned()),
        };
        let subject = payment.order_id.to_string();
        let subject = Some(subject.as_str());
        match payment.state {
            State::Authorized => {
                self.events
                    .append(tx, subject, &PaymentAuthorized(changed))
                    .await?
            }
            State::Captured => {
                self.events
                    .append(tx, subject, &PaymentCaptured(changed))
                    .await?
            }
            State::Voided => {
                self.events
                    .append(tx, subject, &PaymentVoided(changed))
                    .await?
            }
            State::Refunded => {
                self.events
                    .append(tx, subject, &PaymentRefunded(changed))
                    .await?
            }
            State::Declined => {
                self.events
                    .append(tx, subject, &PaymentDeclined(changed))
                    .await?
            }
        };
        Ok(())
    }
}

/// `existing` if `ask` is the request that made it, else ALREADY_EXISTS.
fn same_request(existing: Payment, ask: &Authorization) -> Result<Payment, Error> {
    if existing.amount == ask.amount
        && existing.currency == ask.currency
        && existing.user_id == ask.user_id
    {
        Ok(existing)
    } else {
        Err(Error::AlreadyExists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_rules_follow_the_contract() {
        use State::*;
        let done = |step: Step, state| matches!(step.plan(state), Plan::Done);
        let refused = |step: Step, state| matches!(step.plan(state), Plan::Refuse(_));
        let moves = |step: Step, state, to| matches!(step.plan(state), Plan::Move { from, to: t } if from == state && t == to);
        assert!(moves(Step::Capture, Authorized, Captured));
        assert!(done(Step::Capture, Captured));
        for s in [Voided, Refunded, Declined] {
            assert!(refused(Step::Capture, s), "capture {s:?}");
        }
        assert!(moves(Step::Void, Authorized, Voided));
        assert!(done(Step::Void, Voided));
        assert!(done(Step::Void, Declined));
        for s in [Captured, Refunded] {
            assert!(refused(Step::Void, s), "void {s:?}");
        }
        assert!(moves(Step::Refund, Captured, Refunded));
        assert!(done(Step::Refund, Refunded));
        for s in [Authorized, Voided, Declined] {
            assert!(refused(Step::Refund, s), "refund {s:?}");
        }
    }
}
