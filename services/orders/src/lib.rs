//! The orders service: checkout and order history (shared/API.md,
//! "Orders"), and the orchestrator of the checkout saga (shared/DESIGN.md,
//! "Checkout saga"). It owns orders, their timelines and the sagas' state,
//! in its own database.
//!
//! # Placing an order
//!
//! `POST /api/v1/orders` needs a user's token and an `Idempotency-Key`
//! (400 without one, or with one that is empty, over 200 characters or not
//! visible ASCII). The body is checked whole before anything is stored;
//! every bad field is named in one 422. The same product named twice is
//! merged into one line of the summed quantity (still at most 99). Without
//! `items` the cart is ordered, read over gRPC when the order is accepted
//! (an empty cart is a 422, an unreachable cart service a 503). The order
//! is stored `pending` and answered 202 with a `Location`; its saga starts
//! at once in this process.
//!
//! Keys are per user. The same key again from the same user answers 200
//! with that order as it is now, whatever its status; the same key with a
//! different request answers 422 (`urn:bazaar:problem:idempotency-key-reused`,
//! as the IETF Idempotency-Key draft advises), since the client sent
//! something new that this key cannot stand for. "The same request" is
//! judged by a digest of the normalized request: the merged lines (in any
//! order) or "the cart", the address, and the card's last four digits and
//! expiry.
//!
//! # The saga
//!
//! ```text
//! pricing → reserving → authorizing → committing ═▶ capturing → confirmed
//!    └──────────┴────────────┴─────────────┴──▶ compensating → cancelled
//! ```
//!
//! Each stage names the next call (catalog `GetProducts`, inventory
//! `Reserve`, payments `Authorize`, inventory `Commit`, payments `Capture`)
//! and is stored before that call is made, so a resumed saga repeats it;
//! every call is idempotent by order id. A step's outcome and the move to
//! the next stage are one transaction with its timeline entry. Failures
//! before the pivot cancel with a reason code (`unknown_product`,
//! `not_on_sale`, `currency_mismatch`, `out_of_stock`, `card_declined`,
//! `insufficient_funds`, `invalid_card`, `payment_unavailable`,
//! `timed_out`). A service that is unavailable, times out or restarts gives
//! no answer: the step is asked again with jittered backoff until the saga's
//! deadline (`BAZAAR_ORDERS_SAGA_DEADLINE`), and only a definite answer or
//! the deadline cancels. `Commit` is
//! the pivot: asked until inventory answers; if the reservation is gone the
//! order is compensated, once committed the saga only goes forward and
//! `Capture` is retried until it succeeds. Compensation runs in reverse
//! (void, then release), each asked until done or answered that nothing is
//! left to undo; then status, reason, timeline and the outbox event
//! `orders.order.cancelled` are one transaction, as are `confirmed` and
//! `orders.order.confirmed` (subject: the order id). A confirmed cart
//! order then removes what it took from the cart (`ClearCart` with
//! `only_items`). The confirming transaction marks it due for that
//! (`cart_clear_at`), and only a cleared cart unmarks it: if this process
//! crashes or the cart is down, the poller claims what is due and tries
//! again every lease period, so the cart is cleared in the end.
//!
//! Timeline steps: `accepted`, `priced`, `reserved`, `retrying`,
//! `authorized`, `committed`, `captured`, `confirmed`, `cart_cleared`;
//! when cancelling: `cancelling`, `voiding`, `voided`, `releasing`,
//! `released`, `cancelled`.
//!
//! # Crash safety and replicas
//!
//! A saga is driven under a lease on its order (`lease_owner`,
//! `lease_until`, renewed every third of `BAZAAR_ORDERS_LEASE`); every
//! write names the stage it moves from and the owner, so two replicas never
//! move one saga. A poller (every `BAZAAR_ORDERS_POLL_INTERVAL`, and at
//! start) resumes pending orders nobody holds, at most
//! `BAZAAR_ORDERS_SAGA_CONCURRENCY` at once: a restarted or another replica
//! picks up a dead one's sagas once their leases expire. An order older
//! than `BAZAAR_ORDERS_SAGA_DEADLINE` that has not reached the commit is
//! compensated and cancelled `timed_out`; after it, it keeps going forward.
//! The sagas and the poller are the server's background tasks
//! (`Context::spawn`): they stop when it does (drained, or dropped), a saga
//! where a restart resumes it, and are awaited before the database closes.
//!
//! # Invariant: card data
//!
//! The card (number, expiry, CVC) is needed to authorize after the 202 and
//! after a crash, so it is kept in `order_cards`, apart from the order, and
//! only until Authorize answers (approved or declined) or the order is
//! cancelled: the row is deleted in the very transaction that records that
//! answer or the cancellation. It is never logged (its `Debug` shows only
//! the last four digits), never returned, and never part of an event; the
//! order itself keeps only the last four digits.
//!
//! # Metrics
//!
//! Beside the platform's: `orders_sagas_total{outcome}` (`confirmed` or
//! the cancel reason code) and `orders_saga_duration_seconds`, from
//! acceptance to the saga's end. Order ids are span fields, never labels.

pub mod domain;
mod engine;
mod error;
mod http;
mod metrics;
mod saga;
mod settings;
mod store;
mod upstream;

use bazaar_platform::db::Migrations;
use bazaar_platform::server::{Context, Routes, Service};

pub use settings::{
    CALL_TIMEOUT, LEASE, POLL_INTERVAL, RETRY_BACKOFF, RETRY_BACKOFF_MAX, SAGA_CONCURRENCY,
    SAGA_DEADLINE, Settings, VARS,
};

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// The orders service, tuned by its variables ([`VARS`]).
#[derive(Debug)]
pub struct Orders;

impl Service for Orders {
    const NAME: &'static str = "orders";
    type Settings = Settings;

    fn migrations() -> Option<&'static Migrations> {
        Some(&MIGRATIONS)
    }

    async fn build(ctx: Context<Settings>) -> anyhow::Result<Routes> {
        let (ctx, settings) = ctx.split();
        build(ctx, settings).await
    }
}

/// Builds orders' routes with explicit `settings` (what [`Orders`] does
/// with the environment's), and starts its saga poller, which resumes
/// every pending order nobody drives.
///
/// # Errors
/// When the context has no database, or no address of identity, catalog,
/// inventory, payments or cart.
pub async fn build(ctx: Context, settings: Settings) -> anyhow::Result<Routes> {
    let upstreams = upstream::Upstreams::new(&ctx, &settings)?;
    let verifier = ctx.verifier()?;
    let engine = engine::Engine::new(
        ctx.db()?,
        ctx.events()?,
        upstreams,
        settings,
        metrics::OrdersMetrics::registered(ctx.metrics()),
        &ctx.config().instance,
        ctx.tasks().clone(),
    );
    tracing::info!(
        saga_deadline = ?settings.saga_deadline,
        lease = ?settings.lease,
        saga_concurrency = settings.saga_concurrency,
        "orders settings"
    );
    engine.spawn_poller();
    Ok(Routes::new(http::router(engine, verifier)).openapi(http::openapi()))
}
