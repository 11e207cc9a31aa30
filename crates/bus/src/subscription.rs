//! The consumer side: a [`Subscription`] runs a handler for every event of
//! its topics, exactly once in effect.
//!
//! For each delivery, in one transaction of the service's own database:
//! record the event id in the inbox (a redelivery finds it there, is acked
//! and changes nothing), run the handler's writes, commit; only then ack.
//! A failing handler rolls back and the event comes again with capped
//! backoff, for as long as it takes: a database or a neighbour that blinks
//! only makes the group lag. Poison alone (an event that cannot be decoded,
//! or that the handler rejects for good with [`Poison`]) is published to the
//! group's dead-letter topic at once and acked, so it cannot stop the
//! others. A group may also opt into giving up after
//! [`Subscription::max_attempts`] deliveries.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Transaction};
use tracing::Instrument as _;

use crate::backoff::Backoff;
use crate::metrics::BusMetrics;
use crate::schema::now_millis;
use crate::{Broker, BusError, Delivery, Envelope, Event};

/// Reacts to one event inside the service's database transaction.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles `event`; every write goes through `tx`, which commits only if
    /// this returns `Ok`.
    async fn handle(&self, tx: &mut Transaction<'_, Any>, event: &Envelope) -> anyhow::Result<()>;
}

/// A consumer group of a service: which topics, which handler, how patient.
#[derive(Clone)]
pub struct Subscription {
    /// Group name, e.g. `notifications`; instances of a service share it.
    pub group: String,
    /// Topics handled.
    pub topics: Vec<String>,
    /// What to do with each event.
    pub handler: Arc<dyn Handler>,
    /// Deliveries of a failing event before it is dead-lettered; `None`
    /// (the default) retries a transient failure for ever.
    pub max_attempts: Option<u32>,
    /// First redelivery delay; doubles per attempt up to `backoff_max`.
    pub backoff_base: Duration,
    /// Longest redelivery delay.
    pub backoff_max: Duration,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// `group` handling `topics` with `handler`; transient failures retried
    /// without limit, 100 ms…10 s backoff.
    pub fn new(group: &str, topics: &[&str], handler: impl Handler) -> Self {
        Self {
            group: group.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            handler: Arc::new(handler),
            max_attempts: None,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }

    /// Gives up on a failing event after `n` deliveries (dead-letters it)
    /// instead of retrying it for ever.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }

    /// Changes the redelivery backoff.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    fn delay(&self, attempt: u32) -> Duration {
        Backoff::new(self.backoff_base, self.backoff_max).delay(attempt.saturating_sub(1).min(16))
    }
}

/// A handler's verdict that retrying cannot help: the event is malformed or
/// forbidden for good. Return it (`Err(Poison::new(..).into())`) and the
/// event goes to the dead-letter topic on its first delivery.
#[derive(Debug, Clone, thiserror::Error)]
#[error("poison event: {0}")]
pub struct Poison(pub String);

impl Poison {
    /// A poison verdict saying why.
    pub fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

/// Whether `error` says the event itself is bad: [`Poison`], or an event
/// that does not decode as its contract anywhere in the chain.
pub fn is_poison(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<Poison>()
            || matches!(
                cause.downcast_ref::<BusError>(),
                Some(BusError::Decode(_) | BusError::WrongContract { .. })
            )
    })
}

/// Waits between attempts to join (or rejoin) a consumer group.
const REJOIN: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// The topic where a group's poison events go.
pub fn dead_letter_topic(group: &str) -> String {
    format!("deadletter.{group}.event")
}

/// What a dead-letter event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The consumer group that gave up.
    pub group: String,
    /// Deliveries made.
    pub attempts: u32,
    /// The handler's last error.
    pub error: String,
    /// The event itself, untouched.
    pub event: Envelope,
}

/// A dead letter is read back with [`Envelope`] fields, not [`Event`]
/// decoding, since its topic varies with the group; this is its contract.
impl Event for DeadLetter {
    const TOPIC: &'static str = "deadletter.any.event";
    const VERSION: u32 = 1;
}

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled and committed, then acked.
    Handled,
    /// Already in the inbox: acked, nothing changed.
    Duplicate,
    /// The handler failed; it will come again.
    Retried,
    /// Poison, or out of attempts: moved to the dead-letter topic.
    DeadLettered,
}

/// Handles one delivery: inbox, handler and commit in one transaction, then
/// ack; or nack; or dead-letter.
pub async fn process(
    sub: &Subscription,
    pool: &AnyPool,
    broker: &dyn Broker,
    metrics: &BusMetrics,
    delivery: Delivery,
) -> Result<Outcome, BusError> {
    let Delivery {
        envelope,
        attempt,
        acker,
    } = delivery;
    metrics.delivered(&sub.group, attempt);
    let span = tracing::info_span!(
        "event",
        group = %sub.group,
        topic = %envelope.topic,
        event_id = %envelope.id,
        attempt,
        traceparent = envelope.traceparent.as_deref().unwrap_or(""),
    );

    let mut tx = pool.begin().await?;
    let fresh = sqlx::query(
        "INSERT INTO bazaar_inbox (consumer, event_id, handled_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&sub.group)
    .bind(&envelope.id)
    .bind(now_millis())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        tx.rollback().await?;
        acker.ack().await?;
        metrics.duplicate(&sub.group);
        tracing::debug!(parent: &span, "already handled; acked");
        return Ok(Outcome::Duplicate);
    }
    let handled = sub
        .handler
        .handle(&mut tx, &envelope)
        .instrument(span.clone())
        .await;
    match handled {
        Ok(()) => {
            tx.commit().await?;
            acker.ack().await?;
            metrics.acked(&sub.group);
            Ok(Outcome::Handled)
        }
        Err(error) => {
            tx.rollback().await?;
            let poison = is_poison(&error);
            if poison || sub.max_attempts.is_some_and(|max| attempt >= max) {
                let letter = DeadLetter {
                    group: sub.group.clone(),
                    attempts: attempt,
                    error: format!("{error:#}"),
                    event: envelope.clone(),
                };
                let mut dead = Envelope::new(&sub.group, Some(&envelope.id), &letter)?;
                dead.topic = dead_letter_topic(&sub.group);
                dead.traceparent.clone_from(&envelope.traceparent);
                broker.publish(&dead).await?;
                acker.ack().await?;
                metrics.dead_lettered(&sub.group);
                tracing::error!(parent: &span, error = %format!("{error:#}"), poison, "handler gave up on the event; moved to {}", dead.topic);
                Ok(Outcome::DeadLettered)
            } else {
                let delay = sub.delay(attempt);
                acker.nack(delay).await?;
                tracing::warn!(parent: &span, error = %format!("{error:#}"), retry_in = ?delay, "handler failed; the event will come again until it succeeds");
                Ok(Outcome::Retried)
            }
        }
    }
}

/// Runs `sub` until `shutdown` resolves: joins the group, handles every
/// delivery, keeps the lag gauge fresh, and rejoins after broker errors.
pub async fn run(
    sub: Subscription,
    pool: AnyPool,
    broker: Arc<dyn Broker>,
    metrics: BusMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut backoff = REJOIN.base;
    let mut last_lag = tokio::time::Instant::now() - Duration::from_secs(60);
    'join: loop {
        let mut consumer = tokio::select! {
            () = &mut shutdown => return,
            joined = broker.consume(&sub.group, &sub.topics) => match joined {
                Ok(c) => c,
                Err(error) => {
                    tracing::warn!(group = %sub.group, error = %error, "cannot join the consumer group; retrying");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = REJOIN.after(backoff);
                    continue 'join;
                }
            },
        };
        loop {
            if last_lag.elapsed() >= Duration::from_secs(5) {
                last_lag = tokio::time::Instant::now();
                if let Ok(lag) = broker.lag(&sub.group, &sub.topics).await {
                    metrics.set_lag(&sub.group, lag);
                }
            }
            let next = tokio::select! {
                () = &mut shutdown => return,
                next = consumer.next(Duration::from_millis(500)) => next,
            };
            match next {
                Ok(None) => {}
                Ok(Some(delivery)) => {
                    backoff = Duration::from_millis(100);
                    // Finish the delivery in hand even if shutdown comes now.
                    if let Err(error) =
                        process(&sub, &pool, broker.as_ref(), &metrics, delivery).await
                    {
                        tracing::warn!(group = %sub.group, error = %error, "delivery not settled; it will come again");
                    }
                }
                Err(error) => {
                    tracing::warn!(group = %sub.group, error = %error, "consumer failed; rejoining");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = REJOIN.after(backoff);
                    continue 'join;
                }
            }
        }
    }
}
