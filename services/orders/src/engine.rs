//! Drives sagas: one tokio task per saga (at most `saga_concurrency` at
//! once), each holding a lease on its order, renewed while it runs; a
//! poller that resumes pending orders nobody holds; and the steps, each
//! stored before it is taken and recorded in one transaction with its
//! outcome (and, at the end, the outbox event).
//!
//! The tasks are the server's (`Context::spawn`): when it stops (drained,
//! or dropped), every saga task and the poller stop at their next await,
//! each saga where a restart resumes it, and the server awaits them
//! before it closes the database.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bazaar_events::orders::{OrderCancelled, OrderConfirmed, OrderLine};
use bazaar_platform::backoff::Backoff;
use bazaar_platform::client::CallError;
use bazaar_platform::db::Db;
use bazaar_platform::events::Events;
use bazaar_platform::tasks::{Shutdown, Tasks};
use sqlx::{Any, Transaction};
use tokio::sync::Semaphore;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::domain::{Cancel, CancelCode, Lines, Money, Status};
use crate::metrics::OrdersMetrics;
use crate::saga::{self, Stage, Undo};
use crate::settings::Settings;
use crate::store::{self, Saga};
use crate::upstream::{Authorization, Commit, Release, Reserve, Upstreams, Void};

/// What runs sagas in this process.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) db: Db,
    events: Events,
    pub(crate) upstreams: Upstreams,
    settings: Settings,
    metrics: OrdersMetrics,
    /// This process's name on leases: the instance and a fresh id, so a
    /// restarted process never mistakes its predecessor's leases for its own.
    owner: String,
    permits: Arc<Semaphore>,
    running: Mutex<HashSet<Uuid>>,
    /// Where saga tasks run: the server's, so they stop with it.
    tasks: Tasks,
    shutdown: Shutdown,
}

/// Why a saga task stopped before its saga ended.
#[derive(Debug, thiserror::Error)]
enum Halt {
    /// The server is stopping; the saga is resumed after a restart.
    #[error("the server is stopping")]
    Stopped,
    /// Another process holds the order's lease now.
    #[error("the lease was lost")]
    LostLease,
    /// The database or the outbox failed; the saga is retried.
    #[error("{0}")]
    Failed(String),
}

impl From<sqlx::Error> for Halt {
    fn from(e: sqlx::Error) -> Self {
        Self::Failed(format!("database: {e}"))
    }
}

impl From<bazaar_bus::BusError> for Halt {
    fn from(e: bazaar_bus::BusError) -> Self {
        Self::Failed(format!("outbox: {e}"))
    }
}

/// How a saga ended, for what comes after it.
enum Ended {
    /// Confirmed from the cart: these lines leave the cart.
    FromCart(Uuid, Lines),
    /// Anything else.
    Done,
}

/// Removes an order from the running set when its task ends, however.
struct Running(Arc<Engine>, Uuid);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running().remove(&self.1);
    }
}

fn lost() -> Halt {
    Halt::LostLease
}

impl Engine {
    /// An engine whose tasks run in `tasks`.
    pub(crate) fn new(
        db: Db,
        events: Events,
        upstreams: Upstreams,
        settings: Settings,
        metrics: OrdersMetrics,
        instance: &str,
        tasks: Tasks,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            events,
            upstreams,
            metrics,
            owner: format!("{instance}/{}", Uuid::now_v7()),
            permits: Arc::new(Semaphore::new(settings.saga_concurrency.max(1))),
            running: Mutex::default(),
            shutdown: tasks.shutdown(),
            tasks,
            settings,
        })
    }

    /// The name this process holds leases under.
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// Until when a lease taken now lasts.
    pub(crate) fn lease_until(&self, now: i64) -> i64 {
        now.saturating_add(i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX))
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_stopped(&self) -> bool {
        self.shutdown.is_requested() || self.db.pool().is_closed()
    }

    /// `work`, unless the server stops first.
    async fn unless_stopped<F: Future>(&self, work: F) -> Result<F::Output, Halt> {
        self.shutdown
            .unless_requested(work)
            .await
            .ok_or(Halt::Stopped)
    }

    /// Sleeps `d`, unless the server stops first.
    async fn pause(&self, d: Duration) -> Result<(), Halt> {
        self.unless_stopped(tokio::time::sleep(d)).await
    }

    /// The pause before retry number `retry` (0 for the first): uniform in
    /// `[0, min(base · 2^retry, max)]`.
    fn backoff(&self, retry: u32) -> Duration {
        Backoff::new(self.settings.retry_backoff, self.settings.retry_backoff_max).jittered(retry)
    }

    /// Whether `saga` is past its deadline while the deadline still applies.
    fn overdue(&self, saga: &Saga) -> bool {
        let deadline = i64::try_from(self.settings.saga_deadline.as_millis()).unwrap_or(i64::MAX);
        saga.stage.before_pivot() && store::now_ms() > saga.created_at.saturating_add(deadline)
    }

    fn timed_out(&self) -> Cancel {
        Cancel::new(
            CancelCode::TimedOut,
            format!(
                "The order could not be completed within {}; nothing was charged.",
                saga::human(self.settings.saga_deadline)
            ),
        )
    }

    /// Starts driving order `id` in this process, unless it already does
    /// (or is stopping). The task waits for one of the concurrency permits,
    /// then claims the order's lease; if another process holds it, it ends.
    pub(crate) fn start(self: &Arc<Self>, id: Uuid) {
        if self.is_stopped() || !self.running().insert(id) {
            return;
        }
        let engine = self.clone();
        let span = tracing::info_span!(parent: None, "saga", order_id = %id);
        span.follows_from(tracing::Span::current());
        self.tasks.spawn("saga", move |_| {
            async move {
                let _running = Running(engine.clone(), id);
                let permits = engine.permits.clone();
                let Ok(Ok(_permit)) = engine.unless_stopped(permits.acquire_owned()).await else {
                    return Ok(());
                };
                engine.run(id).await;
                Ok(())
            }
            .instrument(span)
        });
    }

    /// Looks for pending orders nobody holds a lease on, at once (so a
    /// restarted process resumes its predecessor's sagas whose leases
    /// expired) and then every poll interval, until the server stops.
    pub(crate) fn spawn_poller(self: &Arc<Self>) {
        let engine = self.clone();
        self.tasks.spawn("saga poller", move |_| async move {
            let limit = i64::try_from(engine.settings.saga_concurrency).unwrap_or(i64::MAX);
            loop {
                if engine.is_stopped() {
                    break;
                }
                match store::unclaimed(&engine.db, store::now_ms(), limit).await {
                    Ok(ids) => {
                        for id in ids {
                            engine.start(id);
                        }
                    }
                    Err(e) if engine.is_stopped() => {
                        tracing::debug!(error = %e, "saga poller stops with the database");
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot look for pending orders"),
                }
                let now = store::now_ms();
                match store::claim_cart_clears(&engine.db, now, engine.lease_until(now), limit)
                    .await
                {
                    Ok(due) => {
                        // Each its own task: a cart that is down must not
                        // hold up the resumption of sagas.
                        for (order, user, lines) in due {
                            let engine = engine.clone();
                            engine
                                .tasks
                                .clone()
                                .spawn("cart clear", move |_| async move {
                                    engine.clear_cart(order, user, &lines, 1).await;
                                    Ok(())
                                });
                        }
                    }
                    Err(_) if engine.is_stopped() => break,
                    Err(e) => tracing::warn!(error = %e, "cannot look for carts to clear"),
                }
                if engine.pause(engine.settings.poll_interval).await.is_err() {
                    break;
                }
            }
            tracing::debug!("saga poller stopped");
            Ok(())
        });
    }

    /// Claims `id` and drives its saga to its end, renewing the lease
    /// meanwhile; then clears the cart of a confirmed cart order.
    async fn run(self: &Arc<Self>, id: Uuid) {
        let now = store::now_ms();
        let saga = match store::claim(&self.db, id, &self.owner, now, self.lease_until(now)).await {
            Ok(Some(saga)) => saga,
            Ok(None) => return,
            Err(e) => {
                if !self.is_stopped() {
                    tracing::warn!(error = %e, "cannot claim the order's saga");
                }
                return;
            }
        };
        let outcome = tokio::select! {
            ended = self.drive(saga) => ended,
            lost = self.keep_lease(id) => lost,
        };
        match outcome {
            Ok(Ended::FromCart(user, lines)) => self.clear_cart(id, user, &lines, 5).await,
            Ok(Ended::Done) => {}
            Err(Halt::Stopped) => tracing::debug!("saga paused: the server is stopping"),
            Err(Halt::LostLease) => tracing::info!("another process drives this saga now"),
            Err(Halt::Failed(error)) if self.is_stopped() => {
                tracing::debug!(%error, "saga paused: the server is stopping");
            }
            Err(Halt::Failed(error)) => {
                tracing::warn!(%error, "saga step failed; it will be resumed");
                if let Err(e) = store::let_go(&self.db, id, &self.owner).await {
                    tracing::warn!(error = %e, "cannot give the saga's lease up");
                }
            }
        }
    }

    /// Renews the lease every third of its length; ends only when it is
    /// lost (a saga that just ended gives its lease up: that is not a loss,
    /// and the drive is left to finish).
    async fn keep_lease(&self, id: Uuid) -> Result<Ended, Halt> {
        loop {
            self.pause(self.settings.lease / 3).await?;
            let now = store::now_ms();
            match store::renew(&self.db, id, &self.owner, self.lease_until(now)).await {
                Ok(true) => {}
                Ok(false) => {
                    let ended = matches!(store::saga(&self.db, id).await, Ok(Some(s)) if s.stage.is_final());
                    if ended {
                        std::future::pending::<()>().await;
                    }
                    return Err(Halt::LostLease);
                }
                Err(e) if self.is_stopped() => return Err(Halt::Failed(e.to_string())),
                Err(e) => tracing::warn!(error = %e, "cannot renew the saga's lease"),
            }
        }
    }

    /// Takes `saga`, as claimed, from its stage to its end. It is read
    /// from the database only then: each step updates this copy once its
    /// write has committed. Every write is fenced (the stage it moves from,
    /// the lease owner), so the copy is what the database holds while the
    /// lease is ours; once it is not, the next write fails (`LostLease`)
    /// and nothing is stored from a stale copy (a call made meanwhile is
    /// idempotent, as after any lost lease).
    async fn drive(&self, mut saga: Saga) -> Result<Ended, Halt> {
        let mut first = true;
        loop {
            let resumed = std::mem::replace(&mut first, false);
            match saga.stage {
                Stage::Pricing => self.price(&mut saga).await?,
                Stage::Reserving => self.reserve(&mut saga).await?,
                Stage::Authorizing => self.authorize(&mut saga, resumed).await?,
                Stage::Committing => self.commit(&mut saga).await?,
                Stage::Capturing => return self.capture(&saga).await,
                Stage::Compensating => return self.compensate(&mut saga).await,
                Stage::Confirmed | Stage::Cancelled => return Ok(Ended::Done),
            }
        }
    }

    /// Moves `saga` on to its next stage with a timeline entry.
    async fn advance(&self, saga: &mut Saga, step: &str, detail: &str) -> Result<(), Halt> {
        let to = saga.stage.next().ok_or_else(lost)?;
        let now = store::now_ms();
        let mut tx = self.db.begin_write().await?;
        if !store::advance(&mut tx, saga.id, &self.owner, saga.stage, to, now).await? {
            return Err(Halt::LostLease);
        }
        store::append(&mut tx, saga.id, step, detail, now).await?;
        tx.commit().await?;
        saga.stage = to;
        Ok(())
    }

    /// Adds a timeline entry without moving, if the saga is still ours.
    async fn note(&self, saga: &Saga, step: &str, detail: &str) -> Result<(), Halt> {
        let now = store::now_ms();
        let mut tx = self.db.begin_write().await?;
        if !store::advance(&mut tx, saga.id, &self.owner, saga.stage, saga.stage, now).await? {
            return Err(Halt::LostLease);
        }
        store::append(&mut tx, saga.id, step, detail, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives up at the saga's stage: stores the cancellation and what to
    /// undo, forgets the card, all in one transaction.
    async fn give_up(&self, saga: &mut Saga, cancel: Cancel, definite: bool) -> Result<(), Halt> {
        let Some(undo) = Undo::after(saga.stage, definite) else {
            return Err(Halt::Failed(format!(
                "a saga at {} cannot be cancelled",
                saga.stage.as_str()
            )));
        };
        tracing::info!(
            reason_code = cancel.code.as_str(),
            stage = saga.stage.as_str(),
            "cancelling the order"
        );
        let now = store::now_ms();
        let mut tx = self.db.begin_write().await?;
        if !store::compensate(
            &mut tx,
            saga.id,
            &self.owner,
            saga.stage,
            &cancel,
            undo,
            now,
        )
        .await?
        {
            return Err(Halt::LostLease);
        }
        store::delete_card(&mut tx, saga.id).await?;
        store::append(&mut tx, saga.id, "cancelling", &cancel.reason, now).await?;
        tx.commit().await?;
        saga.stage = Stage::Compensating;
        saga.cancel = Some(cancel);
        saga.undo = undo;
        Ok(())
    }

    /// Logs a failed call the step will retry.
    fn retrying(what: &str, error: &CallError) {
        if error.retryable() {
            tracing::warn!(%error, "{what} failed; retrying");
        } else {
            tracing::error!(%error, "{what} got an unexpected answer; retrying");
        }
    }

    #[tracing::instrument(skip_all, fields(order_id = %saga.id))]
    async fn price(&self, saga: &mut Saga) -> Result<(), Halt> {
        let lines = saga.order_lines();
        let mut retry = 0;
        loop {
            if self.overdue(saga) {
                return self.give_up(saga, self.timed_out(), false).await;
            }
            match self.unless_stopped(self.upstreams.products(&lines)).await? {
                Ok(answer) => {
                    let priced = match saga::price(&lines, &answer) {
                        Ok(priced) => priced,
                        Err(cancel) => return self.give_up(saga, cancel, true).await,
                    };
                    let now = store::now_ms();
                    let mut tx = self.db.begin_write().await?;
                    if !store::priced(
                        &mut tx,
                        saga.id,
                        &self.owner,
                        Stage::Pricing,
                        Stage::Reserving,
                        &priced,
                        now,
                    )
                    .await?
                    {
                        return Err(Halt::LostLease);
                    }
                    let units = lines.units();
                    let detail = format!(
                        "{units} item{} priced at {} in all.",
                        if units == 1 { "" } else { "s" },
                        priced.total
                    );
                    store::append(&mut tx, saga.id, "priced", &detail, now).await?;
                    tx.commit().await?;
                    saga.set_prices(&priced);
                    saga.stage = Stage::Reserving;
                    return Ok(());
                }
                Err(e) => Self::retrying("GetProducts", &e),
            }
            self.pause(self.backoff(retry)).await?;
            retry += 1;
        }
    }

    fn titles(saga: &Saga) -> std::collections::HashMap<Uuid, String> {
        saga.lines
            .iter()
            .filter_map(|l| Some((l.product_id, l.title.clone()?)))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(order_id = %saga.id))]
    async fn reserve(&self, saga: &mut Saga) -> Result<(), Halt> {
        let lines = saga.order_lines();
        let mut retry = 0;
        loop {
            if self.overdue(saga) {
                return self.give_up(saga, self.timed_out(), false).await;
            }
            match self
                .unless_stopped(self.upstreams.reserve(saga.id, &lines))
                .await?
            {
                Ok(Reserve::Held) => {
                    return self
                        .advance(saga, "reserved", "The stock is held for the order.")
                        .await;
                }
                Ok(Reserve::OutOfStock(shortages)) => {
                    let cancel = saga::out_of_stock(&shortages, &Self::titles(saga));
                    return self.give_up(saga, cancel, true).await;
                }
                Ok(Reserve::Unknown(products)) => {
                    let cancel = saga::no_stock_record(&products, &Self::titles(saga));
                    return self.give_up(saga, cancel, true).await;
                }
                Ok(Reserve::Settled) => {
                    let cancel = Cancel::new(
                        CancelCode::TimedOut,
                        "The stock reservation expired before the order went through; nothing was charged.",
                    );
                    return self.give_up(saga, cancel, true).await;
                }
                Err(e) => Self::retrying("Reserve", &e),
            }
            self.pause(self.backoff(retry)).await?;
            retry += 1;
        }
    }

    /// `resumed` when this task did not itself move the saga here.
    #[tracing::instrument(skip_all, fields(order_id = %saga.id, resumed))]
    async fn authorize(&self, saga: &mut Saga, resumed: bool) -> Result<(), Halt> {
        let Some(card) = store::card(&self.db, saga.id).await? else {
            tracing::error!("no card is held for an order to authorize");
            let cancel = Cancel::new(
                CancelCode::PaymentUnavailable,
                "The card could not be charged; nothing was charged.",
            );
            return self.give_up(saga, cancel, false).await;
        };
        let (Some(amount), Some(currency)) = (saga.total, saga.currency.clone()) else {
            return Err(Halt::Failed("an order to authorize has no total".into()));
        };
        let total = Money { amount, currency };
        // Whether money may be held without our knowing: always when the
        // saga was resumed here (a predecessor may have asked), else once
        // an attempt may have reached payments unanswered.
        let mut may_have_held = resumed;
        // Payments unavailable, timing out or restarting is no answer:
        // Authorize is asked again until the saga's deadline. Only a
        // definite answer (approved, declined) or the deadline ends it.
        let mut attempt: u32 = 0;
        loop {
            if self.overdue(saga) {
                let cancel = if attempt == 0 {
                    self.timed_out()
                } else {
                    Cancel::new(
                        CancelCode::TimedOut,
                        format!(
                            "The payment service did not answer within {} ({attempt} attempts); nothing was charged.",
                            saga::human(self.settings.saga_deadline)
                        ),
                    )
                };
                return self.give_up(saga, cancel, !may_have_held).await;
            }
            attempt += 1;
            let call = self
                .upstreams
                .authorize(saga.id, saga.user_id, &total, &card);
            match self.unless_stopped(call).await? {
                Ok(Authorization::Approved) => {
                    let now = store::now_ms();
                    let mut tx = self.db.begin_write().await?;
                    if !store::advance(
                        &mut tx,
                        saga.id,
                        &self.owner,
                        Stage::Authorizing,
                        Stage::Committing,
                        now,
                    )
                    .await?
                    {
                        return Err(Halt::LostLease);
                    }
                    // The card is no longer needed: forgotten with the answer.
                    store::delete_card(&mut tx, saga.id).await?;
                    let detail = format!("{total} held on the card ending {}.", saga.card_last4);
                    store::append(&mut tx, saga.id, "authorized", &detail, now).await?;
                    tx.commit().await?;
                    saga.stage = Stage::Committing;
                    return Ok(());
                }
                Ok(Authorization::Declined(code)) => {
                    let reason = match code {
                        CancelCode::InsufficientFunds => {
                            "The card was declined: insufficient funds."
                        }
                        CancelCode::InvalidCard => "The card was declined as invalid or expired.",
                        _ => "The card was declined by its issuer.",
                    };
                    return self.give_up(saga, Cancel::new(code, reason), true).await;
                }
                Err(failed) => {
                    may_have_held |= failed.may_have_held;
                    tracing::warn!(
                        error = %failed.error,
                        may_have_held = failed.may_have_held,
                        attempt,
                        "Authorize failed; asking again until the saga's deadline"
                    );
                    // The timeline says so on the 1st, 2nd, 4th, 8th ... try,
                    // not on every one of a long outage.
                    if attempt.is_power_of_two() {
                        let detail = format!(
                            "The payment service is unavailable (attempt {attempt}); trying again."
                        );
                        self.note(saga, "retrying", &detail).await?;
                    }
                    self.pause(self.backoff(attempt - 1)).await?;
                }
            }
        }
    }

    /// The pivot: once inventory commits, the saga only goes forward; if
    /// it answers that the reservation is gone, the saga goes back. Until
    /// it answers either, it is asked again (no deadline).
    #[tracing::instrument(skip_all, fields(order_id = %saga.id))]
    async fn commit(&self, saga: &mut Saga) -> Result<(), Halt> {
        let mut retry = 0;
        loop {
            match self.unless_stopped(self.upstreams.commit(saga.id)).await? {
                Ok(Commit::Committed) => {
                    return self
                        .advance(saga, "committed", "The stock is taken for the order.")
                        .await;
                }
                Ok(Commit::Gone) => {
                    let cancel = Cancel::new(
                        CancelCode::TimedOut,
                        "The stock reservation expired before the payment went through; nothing was charged.",
                    );
                    return self.give_up(saga, cancel, true).await;
                }
                Err(e) => Self::retrying("Commit", &e),
            }
            self.pause(self.backoff(retry)).await?;
            retry += 1;
        }
    }

    /// Past the pivot: captured however long it takes, then confirmed.
    #[tracing::instrument(skip_all, fields(order_id = %saga.id))]
    async fn capture(&self, saga: &Saga) -> Result<Ended, Halt> {
        let mut retry = 0;
        loop {
            match self.unless_stopped(self.upstreams.capture(saga.id)).await? {
                Ok(()) => return self.confirm(saga).await,
                Err(e) => Self::retrying("Capture", &e),
            }
            self.pause(self.backoff(retry)).await?;
            retry += 1;
        }
    }

    /// Ends the saga confirmed: status, timeline and the outbox event in
    /// one transaction.
    async fn confirm(&self, saga: &Saga) -> Result<Ended, Halt> {
        let (Some(amount), Some(currency)) = (saga.total, saga.currency.clone()) else {
            return Err(Halt::Failed("a captured order has no total".into()));
        };
        let total = Money { amount, currency };
        let mut items = Vec::with_capacity(saga.lines.len());
        for line in &saga.lines {
            let (Some(title), Some(seller_id), Some(unit)) =
                (line.title.clone(), line.seller_id, line.unit_amount)
            else {
                return Err(Halt::Failed("a captured order has an unpriced line".into()));
            };
            items.push(OrderLine {
                product_id: line.product_id,
                seller_id,
                title,
                quantity: line.quantity.get(),
                unit_price: Money {
                    amount: unit,
                    currency: total.currency.clone(),
                },
            });
        }
        let event = OrderConfirmed {
            order_id: saga.id,
            user_id: saga.user_id,
            items,
            total: total.clone(),
        };
        let now = store::now_ms();
        let mut tx = self.db.begin_write().await?;
        if !store::finish(
            &mut tx,
            saga.id,
            &self.owner,
            Stage::Capturing,
            Stage::Confirmed,
            Status::Confirmed,
            now,
        )
        .await?
        {
            return Err(Halt::LostLease);
        }
        let captured = format!("{total} charged to the card ending {}.", saga.card_last4);
        store::append_all(
            &mut tx,
            saga.id,
            &[
                ("captured", &captured),
                ("confirmed", "The order is confirmed."),
            ],
            now,
        )
        .await?;
        self.events
            .append(&mut tx, Some(&saga.id.to_string()), &event)
            .await?;
        if saga.from_cart {
            // Cleared at once by this task; if it crashes or the cart is
            // down, the poller tries again once this is due.
            store::cart_clear_due(&mut tx, saga.id, self.lease_until(now)).await?;
        }
        tx.commit().await?;
        self.events.committed();
        self.ended(saga, "confirmed", now);
        tracing::info!("order confirmed");
        Ok(if saga.from_cart {
            Ended::FromCart(saga.user_id, saga.order_lines())
        } else {
            Ended::Done
        })
    }

    fn ended(&self, saga: &Saga, outcome: &'static str, now: i64) {
        #[allow(clippy::cast_precision_loss)]
        let seconds = (now - saga.created_at) as f64 / 1000.0;
        self.metrics.ended(outcome, seconds);
    }

    /// Undoes what the saga did, in reverse (void, then release), each
    /// asked until it is done or there is nothing to undo; then ends the
    /// saga cancelled with its event in one transaction.
    #[tracing::instrument(skip_all, fields(order_id = %saga.id))]
    async fn compensate(&self, saga: &mut Saga) -> Result<Ended, Halt> {
        let Some(cancel) = saga.cancel.clone() else {
            return Err(Halt::Failed(
                "a compensating order has no cancel reason".into(),
            ));
        };
        if saga.undo.void {
            self.note(saga, "voiding", "Letting go of the payment authorization.")
                .await?;
            let detail = self.void(saga.id).await?;
            self.undone(saga, true, "voided", detail).await?;
        }
        if saga.undo.release {
            self.note(saga, "releasing", "Giving the reserved stock back.")
                .await?;
            let detail = self.release(saga.id).await?;
            self.undone(saga, false, "released", detail).await?;
        }
        let event = OrderCancelled {
            order_id: saga.id,
            user_id: saga.user_id,
            reason_code: cancel.code.as_str().to_owned(),
            reason: cancel.reason.clone(),
        };
        let now = store::now_ms();
        let mut tx = self.db.begin_write().await?;
        if !store::finish(
            &mut tx,
            saga.id,
            &self.owner,
            Stage::Compensating,
            Stage::Cancelled,
            Status::Cancelled,
            now,
        )
        .await?
        {
            return Err(Halt::LostLease);
        }
        store::delete_card(&mut tx, saga.id).await?;
        store::append(&mut tx, saga.id, "cancelled", &cancel.reason, now).await?;
        self.events
            .append(&mut tx, Some(&saga.id.to_string()), &event)
            .await?;
        tx.commit().await?;
        self.events.committed();
        self.ended(saga, cancel.code.as_str(), now);
        tracing::info!(reason_code = cancel.code.as_str(), "order cancelled");
        Ok(Ended::Done)
    }

    async fn undone(
        &self,
        saga: &mut Saga,
        void: bool,
        step: &str,
        detail: &str,
    ) -> Result<(), Halt> {
        let now = store::now_ms();
        let mut tx = self.db.begin_write().await?;
        if !store::undone(&mut tx, saga.id, &self.owner, void, now).await? {
            return Err(Halt::LostLease);
        }
        store::append(&mut tx, saga.id, step, detail, now).await?;
        tx.commit().await?;
        if void {
            saga.undo.void = false;
        } else {
            saga.undo.release = false;
        }
        Ok(())
    }

    /// Voids `order`'s authorization until payments says nothing is held.
    async fn void(&self, order: Uuid) -> Result<&'static str, Halt> {
        let mut retry = 0;
        loop {
            match self.unless_stopped(self.upstreams.void(order)).await? {
                Ok(Void::Voided) => {
                    return Ok("The payment authorization was let go; nothing was charged.");
                }
                Ok(Void::Nothing) => return Ok("No payment was held."),
                Ok(Void::Captured) => {
                    // Cannot happen before the pivot; if it did, give it back.
                    tracing::error!("the payment was captured while compensating; refunding it");
                    self.refund(order).await?;
                    return Ok("The payment was refunded.");
                }
                Err(e) => Self::retrying("Void", &e),
            }
            self.pause(self.backoff(retry)).await?;
            retry += 1;
        }
    }

    async fn refund(&self, order: Uuid) -> Result<(), Halt> {
        let mut retry = 0;
        loop {
            match self.unless_stopped(self.upstreams.refund(order)).await? {
                Ok(()) => return Ok(()),
                Err(e) => Self::retrying("Refund", &e),
            }
            self.pause(self.backoff(retry)).await?;
            retry += 1;
        }
    }

    /// Releases `order`'s reservation until inventory says nothing is held.
    async fn release(&self, order: Uuid) -> Result<&'static str, Halt> {
        let mut retry = 0;
        loop {
            match self.unless_stopped(self.upstreams.release(order)).await? {
                Ok(Release::Released) => return Ok("The reserved stock is available again."),
                Ok(Release::Nothing) => return Ok("No stock was held."),
                Ok(Release::Committed) => {
                    // Cannot happen before the pivot; nothing can be given back.
                    tracing::error!("the reservation was committed while compensating");
                    return Ok("The stock had been taken already.");
                }
                Err(e) => Self::retrying("Release", &e),
            }
            self.pause(self.backoff(retry)).await?;
            retry += 1;
        }
    }

    /// After the fact: removes what a confirmed order took from the cart,
    /// in up to `tries` tries. A failure is only logged (the order stands);
    /// the order stays due for clearing, and the poller tries again.
    async fn clear_cart(&self, order: Uuid, user: Uuid, lines: &Lines, tries: u32) {
        for retry in 0..tries {
            let Ok(result) = self
                .unless_stopped(self.upstreams.clear_cart(user, lines))
                .await
            else {
                return;
            };
            match result {
                Ok(()) => {
                    if let Err(e) = self.cart_cleared(order).await {
                        tracing::warn!(%order, error = %e, "cannot note that the cart was cleared");
                    }
                    return;
                }
                Err(e) => tracing::warn!(%order, error = %e, "cannot clear the cart"),
            }
            if retry + 1 < tries && self.pause(self.backoff(retry)).await.is_err() {
                return;
            }
        }
        tracing::warn!(%order, "the ordered items stay in the cart for now; the poller tries again");
    }

    async fn cart_cleared(&self, order: Uuid) -> Result<(), sqlx::Error> {
        let mut tx: Transaction<'_, Any> = self.db.begin_write().await?;
        store::cart_clear_done(&mut tx, order).await?;
        store::append(
            &mut tx,
            order,
            "cart_cleared",
            "The ordered items left the cart.",
            store::now_ms(),
        )
        .await?;
        tx.commit().await
    }
}
