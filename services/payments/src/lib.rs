//! The payments service: orders' card payments against a simulated card
//! processor (shared/API.md, "Payments"). It owns payments and the ledger of
//! money they moved, in its own database.
//!
//! # Calls
//!
//! Over gRPC (`bazaar.payments.v1.Payments`, for orders): `Authorize` holds
//! an amount on a card, `Capture` takes it, `Void` lets it go, `Refund`
//! gives a captured amount back. Each is idempotent by order id: a repeated
//! call answers what the first one recorded and moves no money again;
//! `Authorize` repeated with another amount, currency or buyer answers
//! ALREADY_EXISTS. A decline is an answer (state DECLINED with a reason); a
//! processor that fails transiently answers ABORTED (not UNAVAILABLE:
//! payments itself is well, and callers' breakers must not count it) and
//! nothing is recorded, so the call can be made again. Over REST,
//! `GET /api/v1/payments?order_id=` lists an order's payments to its buyer.
//!
//! # Money moves once
//!
//! A payment changes state only by a conditional `UPDATE … WHERE state =
//! 'authorized'` (or `'captured'`), and in the same transaction writes a row
//! to the `ledger` table, where `UNIQUE (payment_id, kind)` makes a second
//! capture, void or refund impossible. Of any number of concurrent calls
//! for one order, one records the movement and the others answer what it
//! recorded.
//!
//! # Cards
//!
//! The number and CVC live only in memory on the way to the processor
//! ([`domain::Card`], whose `Debug` shows the last four digits). Nothing
//! stores, logs or publishes more than the last four digits.
//!
//! # The processor
//!
//! A simulator behind a `Processor` trait decides by the card
//! (`4242424242424242` approves, `4000000000000002` is declined,
//! `4000000000009995` lacks funds, `4000000000000119` always fails
//! transiently; any other number that passes the Luhn check and has not
//! expired approves; others are declined as `invalid_card`). It can be made
//! slow and flaky with `BAZAAR_PAYMENTS_PROCESSOR_LATENCY` and
//! `BAZAAR_PAYMENTS_PROCESSOR_FAILURE_RATE` (see [`VARS`]).
//!
//! # Events
//!
//! `payments.payment.authorized|captured|voided|refunded|declined`
//! (`bazaar_events::payments`), subject the order id, through the outbox in
//! the transaction of the change: exactly once per change, never for a
//! repeated call.
//!
//! # Metrics
//!
//! Beside the platform's: `payments_operations_total{op, outcome}`, where
//! op is `authorize`, `capture`, `void` or `refund` and outcome `ok`,
//! `declined`, `repeated`, `unavailable`, `refused`, `invalid` or `error`.

pub mod domain;
mod error;
mod grpc;
mod http;
mod ledger;
mod metrics;
mod processor;
mod settings;
mod store;

use std::sync::Arc;

use bazaar_platform::db::Migrations;
use bazaar_platform::server::{Context, Routes, Service};
use bazaar_proto::payments::v1::payments_server::PaymentsServer;

pub use settings::{PROCESSOR_FAILURE_RATE, PROCESSOR_LATENCY, Settings, VARS};

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// The payments service, tuned by its variables ([`VARS`]).
#[derive(Debug)]
pub struct Payments;

impl Service for Payments {
    const NAME: &'static str = "payments";
    type Settings = Settings;

    fn migrations() -> Option<&'static Migrations> {
        Some(&MIGRATIONS)
    }

    async fn build(ctx: Context<Settings>) -> anyhow::Result<Routes> {
        let (ctx, settings) = ctx.split();
        build(ctx, settings).await
    }
}

/// Builds payments' routes with explicit `settings` (what [`Payments`]
/// does with the environment's); for a [`Service`] of tests that need, say,
/// a processor that always fails.
///
/// # Errors
/// When the context has no database or no address of identity.
pub async fn build(ctx: Context, settings: Settings) -> anyhow::Result<Routes> {
    let ledger = ledger::Ledger {
        db: ctx.db()?,
        events: ctx.events()?,
        processor: Arc::new(processor::Simulator {
            latency: settings.processor_latency,
            failure_rate: settings.processor_failure_rate,
        }),
        metrics: metrics::PaymentsMetrics::registered(ctx.metrics()),
    };
    tracing::info!(
        processor_latency = ?settings.processor_latency,
        processor_failure_rate = settings.processor_failure_rate,
        "payments settings"
    );
    let grpc = PaymentsServer::new(grpc::Grpc {
        ledger: ledger.clone(),
    });
    Ok(Routes::new(http::router(ledger, ctx.verifier()?))
        .grpc(grpc)
        .openapi(http::openapi()))
}
