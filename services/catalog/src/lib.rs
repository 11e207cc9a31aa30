//! The catalog service: products and categories (shared/API.md, "Catalog").
//! It owns products and categories, in its own database.
//!
//! # Products
//!
//! Anyone browses; only sellers (token role `seller`) create, and only a
//! product's own seller edits or deletes it. Another seller or a customer
//! gets 403, not 404: products are public, so hiding that one exists would
//! protect nothing. A malformed product id answers 404 like an unknown one.
//! Deleting is soft: the row stays with `deleted_at` set, invisible to the
//! REST API but answered over gRPC with `on_sale = false`, so orders can
//! tell "no longer on sale" from "never existed".
//!
//! # Search
//!
//! `GET /api/v1/products?q=` searches title and description, best match
//! first (titles weigh more). The query is reduced to its words (runs of
//! letters and digits) before any engine sees it, so every string is safe
//! and answers 200. SQLite uses an FTS5 external-content table kept in step
//! by triggers, each word a quoted prefix; PostgreSQL a generated, GIN-indexed
//! `tsvector` with `plainto_tsquery('english', …)`. Same answer shape.
//!
//! # Events
//!
//! Through the outbox, in the transaction of the change they announce
//! (contracts in `bazaar_events::catalog`): `catalog.product.created`
//! (carrying `initial_stock`, the only way it reaches inventory),
//! `catalog.product.updated`, `catalog.product.deleted`.
//!
//! # gRPC
//!
//! `bazaar.catalog.v1.Catalog/GetProducts` for orders (see
//! `proto/bazaar/catalog/v1/catalog.proto`).
//!
//! # Caching
//!
//! A product by id and the category counts are cached in process for a
//! short TTL; see [`VARS`] and the `cache` module for what that promises
//! across replicas.

mod cache;
pub mod domain;
mod error;
mod grpc;
mod http;
mod store;

use std::time::Duration;

use bazaar_platform::config::{ConfigError, Env, FromEnv, Var};
use bazaar_platform::db::Migrations;
use bazaar_platform::server::{Context, Routes, Service};

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// The variable that sets the cache's time to live.
const CACHE_TTL_VAR: &str = "BAZAAR_CATALOG_CACHE_TTL";

/// The catalog's own environment variables, beyond the platform's.
pub const VARS: &[Var] = &[Var {
    name: CACHE_TTL_VAR,
    default: "1s",
    help: "How long a product or the category counts stay cached in process (`0` turns the cache off). Other replicas' writes show after at most this long.",
}];

/// What the catalog is tuned with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long a product or the category counts stay cached (zero: off).
    pub cache_ttl: Duration,
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            cache_ttl: env.duration(CACHE_TTL_VAR, Duration::from_secs(1))?,
        })
    }
}

/// The catalog service.
#[derive(Debug)]
pub struct Catalog;

impl Service for Catalog {
    const NAME: &'static str = "catalog";
    type Settings = Settings;

    fn migrations() -> Option<&'static Migrations> {
        Some(&MIGRATIONS)
    }

    async fn build(ctx: Context<Settings>) -> anyhow::Result<Routes> {
        let db = ctx.db()?;
        let state = http::AppState {
            kind: db.kind(),
            db,
            events: ctx.events()?,
            cache: cache::Cache::new(ctx.settings().cache_ttl),
        };
        let verifier = ctx.verifier()?;
        let grpc = grpc::server(state.clone());
        Ok(Routes::new(http::router(state, verifier))
            .grpc(grpc)
            .openapi(http::openapi()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_ttl(value: Option<&str>) -> Result<Duration, ConfigError> {
        let vars = value.map(|v| (CACHE_TTL_VAR.to_owned(), v.to_owned()));
        Settings::from_env(&Env::with_prefix(vars, "BAZAAR_CATALOG_")).map(|s| s.cache_ttl)
    }

    #[test]
    fn cache_ttl_defaults_and_parses() {
        assert_eq!(cache_ttl(None).unwrap(), Duration::from_secs(1));
        assert_eq!(cache_ttl(Some("")).unwrap(), Duration::from_secs(1));
        assert_eq!(
            cache_ttl(Some("250ms")).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(cache_ttl(Some("0")).unwrap(), Duration::ZERO);
        assert!(cache_ttl(Some("soon")).is_err());
    }
}
