//! The storefront: the web shop a person uses, and the ops console for the
//! people who run it. A backend-for-frontend (shared/DESIGN.md): it owns no
//! data; every page is rendered on the server from the other services'
//! public REST APIs, called directly on their instances ([`backend`]), and
//! the gateway sends it every path outside `/api/`.
//!
//! * Pages ([`pages`]) work without JavaScript: links and forms. A small
//!   script of the storefront's own enhances what is live — the
//!   notification bell and an order's status — from `GET /live`, a stream
//!   the storefront relays from notifications with the user's own token.
//! * A page fans out to the services it needs at once, so it costs one
//!   round trip per backend service, never a chain.
//! * The session is the user's identity tokens in `HttpOnly` cookies, and
//!   every form carries a CSRF token ([`session`]).
//! * The ops console (`/ops`, role `admin`) shows the fleet from the
//!   gateway's status and every instance's own `/metrics` ([`ops`]).
//!
//! Its variables are [`VARS`]; it calls every service (`BAZAAR_UPSTREAM_*`).

mod assets;
mod backend;
mod error;
mod layout;
mod ops;
mod pages;
mod session;
mod settings;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::Response;
use axum::routing::{any, get};
use bazaar_platform::auth::Verifier;
use bazaar_platform::server::{Context, Routes, Service};
use http::{HeaderValue, header};

pub use settings::{SECURE_COOKIES, Settings, VARS};

/// The storefront service.
#[derive(Debug)]
pub struct Storefront;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct App {
    /// Clients of the backend services.
    backend: backend::Backend,
    /// Checks the session's access token against identity's keys.
    verifier: Verifier,
    /// The storefront's settings.
    settings: Arc<Settings>,
    /// Renews expired sessions.
    refresher: session::SharedRefresher,
    /// The ops console's state (previous metric samples).
    console: ops::Console,
    /// Opens the notification streams `/live` relays: no overall timeout,
    /// a stream lasts as long as the page.
    live: reqwest::Client,
}

impl Service for Storefront {
    const NAME: &'static str = "storefront";
    type Settings = Settings;

    async fn build(ctx: Context<Settings>) -> anyhow::Result<Routes> {
        let (ctx, settings) = ctx.split();
        build(ctx, settings)
    }
}

/// Builds the storefront's routes with explicit `settings` (tests use it).
///
/// # Errors
/// When the context has no address of identity.
pub fn build(ctx: Context, settings: Settings) -> anyhow::Result<Routes> {
    let backend = backend::Backend::new(&ctx.config().upstreams, &ctx.config().calls);
    let app = App {
        verifier: ctx.verifier()?,
        console: ops::Console::new(backend.clone()),
        backend,
        settings: Arc::new(settings),
        refresher: Arc::default(),
        live: reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .build()?,
    };
    let router = Router::new()
        .merge(pages::routes())
        .merge(ops::routes())
        // A route rather than a fallback: the platform sets its own
        // (problem+json) fallback on the whole router, and a person gets
        // the 404 page.
        .route("/{*path}", any(pages::not_found))
        .layer(from_fn_with_state(app.clone(), session::layer))
        // Assets need no session.
        .route("/assets/{name}", get(assets::serve))
        .with_state(app)
        .layer(from_fn(page_headers));
    Ok(Routes::new(router))
}

/// What every answer of the storefront carries: a strict content security
/// policy (every script and style is the storefront's own) and no caching
/// of pages, which show a person's own data.
async fn page_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Same-origin requests keep their `Origin`, which the session layer
    // checks on every form post; other sites learn nothing.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
