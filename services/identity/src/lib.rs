//! The identity service: accounts, sign-in, tokens and follows of sellers
//! (shared/API.md, "Identity"). It owns users, password hashes, refresh
//! tokens and follows, in its own database.
//!
//! # Passwords
//!
//! Hashed with **argon2id** (v1.3), m = 19456 KiB (19 MiB), t = 2, p = 1,
//! a 16-byte random salt and a 32-byte output — the first configuration
//! OWASP's Password Storage Cheat Sheet recommends. Hashes are stored as PHC
//! strings, so they name their parameters; a sign-in that finds older
//! parameters stores a new hash. A sign-in with an unknown e-mail verifies
//! against a dummy hash, so it costs as long as a wrong password and the
//! answer's timing does not tell whether an account exists. E-mails are
//! trimmed and lower-cased before anything else, and unique.
//!
//! # Tokens
//!
//! Access tokens are JWTs signed with EdDSA (Ed25519) through
//! `bazaar_platform::auth::TokenSigner`, valid 15 minutes, with claims
//! `sub`, `role`, `exp`, `iat`, `jti`, `iss`, `aud`. Every service verifies
//! them itself with the public keys at `GET /api/v1/auth/jwks.json`, where
//! each key carries its id (`kid`, a thumbprint), so a new key can be
//! published beside the old one.
//!
//! Refresh tokens are 32 random bytes (base64url), stored only as their
//! SHA-256, valid 30 days and good for one use: redeeming one marks it used
//! and issues the next of the same *family* (the chain started by one
//! sign-in). Presenting a used or revoked one means a copy is in someone
//! else's hands, so the whole family is revoked: the thief's token and the
//! user's newer one both stop working, and the user signs in again.
//!
//! # The signing key
//!
//! See [`VARS`]: `BAZAAR_IDENTITY_SIGNING_KEY` or
//! `BAZAAR_IDENTITY_SIGNING_KEY_FILE`. In development, without either, a key
//! is generated into `<data dir>/signing-key.dev` (mode 0600) and reused on
//! every start. With `BAZAAR_ENV=production` the service refuses to start
//! without an explicit key, or with one equal to that generated file.
//!
//! # The admin account
//!
//! Nobody can register as an admin. With `BAZAAR_IDENTITY_ADMIN_PASSWORD`
//! (or `BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE`) set, identity makes sure at
//! start that an account with `BAZAAR_IDENTITY_ADMIN_EMAIL` (default
//! `admin@bazaar.local`) exists, creating it with the role `admin` if it
//! does not; an existing account with that e-mail is never changed. See
//! [`Settings`].
//!
//! # Events
//!
//! Through the outbox, in the transaction of the change they announce
//! (contracts in `bazaar_events::identity`): `identity.user.registered`,
//! and `identity.seller.followed` / `identity.seller.unfollowed` only when a
//! follow actually began or ended.

mod admin;
pub mod domain;
mod error;
mod http;
mod keys;
mod metrics;
mod password;
mod store;
pub mod throttle;
mod tokens;

use std::sync::Arc;

use anyhow::Context as _;
use bazaar_platform::auth::Jwks;
use bazaar_platform::db::Migrations;
use bazaar_platform::server::{Context, Routes, Service};

pub use admin::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_PASSWORD_FILE, Admin, DEFAULT_ADMIN_EMAIL, Settings,
    generate_password,
};
pub use keys::{DEV_KEY_FILE, VARS};
pub use password::{M_COST_KIB, P_COST, T_COST};
pub use tokens::{ACCESS_TTL_SECONDS, REFRESH_TTL_SECONDS};

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// The identity service.
#[derive(Debug)]
pub struct Identity;

impl Service for Identity {
    const NAME: &'static str = "identity";
    type Settings = Settings;

    fn migrations() -> Option<&'static Migrations> {
        Some(&MIGRATIONS)
    }

    async fn build(ctx: Context<Settings>) -> anyhow::Result<Routes> {
        let (ctx, settings) = ctx.split();
        build(ctx, settings).await
    }
}

/// Builds identity's routes with explicit `settings` (what [`Identity`]
/// does with the environment's); for a [`Service`] of tests that need an
/// admin account. Settings read from variables without a signing key use
/// the development key.
///
/// # Errors
/// When the context has no database, the signing key is refused, or the
/// admin account cannot be ensured.
pub async fn build(ctx: Context, settings: Settings) -> anyhow::Result<Routes> {
    let signer = settings.signing_key.signer(ctx.config())?;
    let hasher = password::Hasher::new()
        .await
        .context("cannot prepare password hashing")?;
    tracing::info!(kid = signer.kid(), "signing access tokens");
    let state = http::AppState {
        db: ctx.db()?,
        events: ctx.events()?,
        jwks: Arc::new(Jwks {
            keys: vec![signer.jwk()],
        }),
        signer,
        hasher,
        metrics: metrics::IdentityMetrics::registered(ctx.metrics()),
    };
    if let Some(admin) = &settings.admin {
        admin::ensure(&state.db, &state.events, &state.hasher, admin)
            .await
            .context("cannot ensure the admin account")?;
    }
    Ok(Routes::new(http::router(state)).openapi(http::openapi()))
}
