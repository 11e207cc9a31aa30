//! The inventory service: stock per product and the reservations orders
//! hold on it (shared/API.md, "Inventory"). It owns stock levels and
//! reservations, in its own database.
//!
//! # Stock
//!
//! Each product has `on_hand` units, of which `reserved` are held by
//! orders; `available = on_hand - reserved`, never negative. Stock rows are
//! created from `catalog.product.created` (with its `initial_stock` and the
//! seller who owns the product) and disabled by `catalog.product.deleted`;
//! inventory never asks the catalog. `GET /api/v1/inventory/{product_id}`
//! is public; `PUT` sets `on_hand` and only the product's seller may.
//!
//! # Reservations
//!
//! Over gRPC (`bazaar.inventory.v1.Inventory`, for orders): `Reserve` holds
//! every item of an order or none, `Commit` takes the held units out of
//! stock, `Release` gives them back. Each is idempotent by order id. A
//! reservation is held for `BAZAAR_INVENTORY_RESERVATION_TTL` (10 minutes
//! by default; see [`VARS`]); then it expires and its units are available
//! again, so an order service that never comes back cannot hold stock
//! forever. Expiry is done by a sweeper, a background task of the server
//! (`Context::spawn`): it runs every quarter of the TTL (at most every
//! 30 s) and stops with the server, after its sweep at hand. A `Commit` that finds its reservation expired
//! expires it on the spot instead of committing.
//!
//! Concurrent reservations never oversell: units are held by one
//! conditional `UPDATE` per product (`… WHERE on_hand - reserved >= $q`)
//! inside one transaction that rolls back if any product is short. On
//! PostgreSQL the updated rows are locked; on SQLite write transactions
//! begin `IMMEDIATE`, taking the single writer lock (waiting for it up to
//! the busy timeout) before they read.
//!
//! # Events
//!
//! `inventory.stock.low` (`bazaar_events::inventory::StockLow`) through the
//! outbox, in the transaction of the change: when a commit or a new
//! on-hand count leaves fewer than `BAZAAR_INVENTORY_LOW_STOCK` units
//! available (5 by default), once per crossing.
//!
//! # Metrics
//!
//! Beside the platform's: `inventory_reservations_total{outcome}`, where
//! outcome is `reserved`, `out_of_stock`, `unknown_product`, `committed`,
//! `released` or `expired`.

mod consumer;
pub mod domain;
mod grpc;
mod http;
mod metrics;
mod reservations;
mod settings;
mod store;

use bazaar_platform::db::Migrations;
use bazaar_platform::events::Subscription;
use bazaar_platform::server::{Context, Routes, Service};
use bazaar_proto::inventory::v1::inventory_server::InventoryServer;

pub use settings::{LOW_STOCK, RESERVATION_TTL, Settings, VARS};

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// The inventory service, tuned by its variables ([`VARS`]).
#[derive(Debug)]
pub struct Inventory;

impl Service for Inventory {
    const NAME: &'static str = "inventory";
    type Settings = Settings;

    fn migrations() -> Option<&'static Migrations> {
        Some(&MIGRATIONS)
    }

    async fn build(ctx: Context<Settings>) -> anyhow::Result<Routes> {
        let (ctx, settings) = ctx.split();
        build(ctx, settings).await
    }
}

/// Builds inventory's routes with explicit `settings` (what
/// [`Inventory`] does with the environment's); for a [`Service`] of tests
/// that need, say, a short reservation TTL.
///
/// # Errors
/// When the context has no database or no address of identity.
pub async fn build(ctx: Context, settings: Settings) -> anyhow::Result<Routes> {
    let ledger = reservations::Ledger {
        db: ctx.db()?,
        events: ctx.events()?,
        ttl: settings.reservation_ttl,
        low_stock: settings.low_stock,
        metrics: metrics::InventoryMetrics::registered(ctx.metrics()),
        clock: ctx.clock().clone(),
    };
    tracing::info!(
        reservation_ttl = ?settings.reservation_ttl,
        low_stock = settings.low_stock,
        "inventory settings"
    );
    ctx.spawn("reservation sweeper", |shutdown| {
        ledger.clone().sweep_until(shutdown)
    });
    let grpc = InventoryServer::new(grpc::Grpc {
        ledger: ledger.clone(),
    });
    Ok(Routes::new(http::router(ledger, ctx.verifier()?))
        .grpc(grpc)
        .subscribe(Subscription::new(
            Inventory::NAME,
            consumer::TOPICS,
            consumer::CatalogEvents,
        ))
        .openapi(http::openapi()))
}
