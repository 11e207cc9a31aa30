//! The cart service: a customer's cart (shared/API.md, "Cart"), which
//! orders reads and clears over gRPC when it checks the cart out. It owns
//! carts and nothing else; it never asks the catalog whether a product
//! exists (orders prices and checks the products at checkout).
//!
//! # Carts
//!
//! A cart is per user (the `sub` of the access token; every route needs
//! one): at most [`MAX_LINES`](domain::MAX_LINES) lines (50), each a
//! product and a [`Quantity`](domain::Quantity) from 1 to 99, listed in the
//! order the products were first added. `PUT` sets a line's quantity (a
//! new product goes last; a 51st is refused with 409 and changes nothing),
//! `DELETE` of a line or of the cart removes. Over gRPC
//! (`bazaar.cart.v1.Cart`): `GetCart`, and `ClearCart`, which with
//! `only_items` removes only the lines still holding at most the quantity
//! the order took, so a line raised while the order ran stays.
//!
//! # Where carts are kept
//!
//! Chosen at start by the platform's configuration, never by a code fork:
//!
//! * **Redis** when `BAZAAR_REDIS_URL` is set (`bazaar up --redis`, or at
//!   scale): [`store::RedisStore`], each cart one hash under
//!   `BAZAAR_CART_REDIS_PREFIX` (default `bazaar:cart:`, see [`VARS`]),
//!   every change one atomic Lua script. A cart **expires 30 days after its
//!   last change** ([`store::REDIS_TTL`]). The service then fails to start
//!   if Redis cannot be reached, and `/readyz` checks Redis (a `PING` over
//!   the store's own connection), since without it no cart can be read.
//! * **Otherwise the service's own database**: [`store::SqlStore`], SQLite
//!   by default or PostgreSQL when `BAZAAR_DATABASE_URL` says so, tables
//!   from the migrations run at start. Carts there do not expire.
//!
//! Either way the database is opened and migrated (the platform does it
//! for every service that declares migrations), so switching to Redis and
//! back needs no other change; carts are not moved between the two.
//!
//! # Metrics
//!
//! Beside the platform's: `cart_operations_total{op, outcome}`, where op is
//! `get`, `put`, `remove`, `clear` or `clear_items` and outcome is `ok`,
//! `full` or `failed`.

mod carts;
pub mod domain;
mod error;
mod grpc;
mod http;
mod metrics;
mod settings;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use bazaar_platform::db::Migrations;
use bazaar_platform::ready::Check;
use bazaar_platform::server::{Context, Routes, Service};
use bazaar_proto::cart::v1::cart_server::CartServer;

pub use settings::{DEFAULT_REDIS_PREFIX, REDIS_PREFIX, Settings, VARS};

use crate::store::{CartStore, RedisStore, SqlStore};

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// The cart service, tuned by its variables ([`VARS`]).
#[derive(Debug)]
pub struct Cart;

impl Service for Cart {
    const NAME: &'static str = "cart";
    type Settings = Settings;

    fn migrations() -> Option<&'static Migrations> {
        Some(&MIGRATIONS)
    }

    async fn build(ctx: Context<Settings>) -> anyhow::Result<Routes> {
        let (ctx, settings) = ctx.split();
        build(ctx, settings).await
    }
}

/// Builds the cart's routes with explicit `settings` (what [`Cart`] does
/// with the environment's); for a [`Service`] of tests that need, say, a
/// Redis key prefix of their own.
///
/// # Errors
/// When the context has no database or no address of identity, or Redis is
/// configured but cannot be reached.
pub async fn build(ctx: Context, settings: Settings) -> anyhow::Result<Routes> {
    let mut checks = Vec::new();
    let store: Arc<dyn CartStore> = match &ctx.config().redis_url {
        Some(url) => {
            let url = url.expose();
            let at = format!(
                "{}:{}",
                url.host_str().unwrap_or("?"),
                url.port().unwrap_or(6379)
            );
            let redis = RedisStore::connect(url.as_str(), settings.redis_prefix.clone())
                .await
                .with_context(|| format!("cannot connect to Redis at {at} for carts"))?;
            let probe = redis.clone();
            checks.push(Check::new("redis", move || {
                let redis = probe.clone();
                async move { redis.ping().await.map_err(|e| e.to_string()) }
            }));
            tracing::info!(redis = %at, prefix = %settings.redis_prefix, "carts are kept in Redis");
            Arc::new(redis)
        }
        None => {
            let sql = SqlStore::new(ctx.db()?);
            tracing::info!(store = sql.kind(), "carts are kept in the database");
            Arc::new(sql)
        }
    };
    let carts = carts::Carts::new(store, metrics::CartMetrics::registered(ctx.metrics()));
    let grpc = CartServer::new(grpc::Grpc {
        carts: carts.clone(),
    });
    let mut routes = Routes::new(http::router(carts, ctx.verifier()?))
        .grpc(grpc)
        .openapi(http::openapi());
    for check in checks {
        routes = routes.ready_check(check);
    }
    Ok(routes)
}
