//! The API gateway: the one door in. It routes the public REST API
//! (`/api/v1/...`) to the service that owns each resource, balancing over
//! that service's instances with the platform's call stack (power of two
//! choices, per-instance circuit breakers, deadlines), and reports the
//! fleet's health at `GET /api/v1/status`.
//!
//! It owns no data. Which instances exist comes from its configuration
//! (`BAZAAR_UPSTREAM_<SERVICE>`), handed out by the launcher locally and by
//! the deployment at scale.

mod proxy;
mod routes;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};
use bazaar_platform::client::{Endpoints, Policy, Stack};
use bazaar_platform::server::DEFAULT_BODY_LIMIT;
use bazaar_platform::server::{Context, Routes, Service};

pub use routes::{ROUTES, route};

/// The gateway service.
#[derive(Debug)]
pub struct Gateway;

/// What every gateway handler shares.
#[derive(Clone, Debug)]
struct State {
    /// One call stack per upstream service, by service name.
    upstreams: Arc<BTreeMap<String, Stack>>,
    /// Plain HTTP/1.1 client with a connection pool, for proxying.
    http: proxy::HttpClient,
    /// Largest request body passed on.
    body_limit: usize,
    /// gRPC channels per instance URL, for `/api/v1/status`.
    channels: status::Channels,
}

impl Service for Gateway {
    const NAME: &'static str = "gateway";

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        let policy = Policy {
            // Proxied calls carry a client's patience, not a service's.
            deadline: std::time::Duration::from_secs(10),
            ..Policy::default()
        };
        let mut instances = ctx.config().upstreams.clone();
        let listen = ctx.config().listen;
        if !instances.contains_key(Self::NAME) && listen.port() != 0 {
            // Run alone, the gateway still reports itself.
            instances.insert(
                Self::NAME.to_owned(),
                vec![format!("http://{listen}").parse()?],
            );
        }
        let upstreams = instances
            .iter()
            .map(|(name, urls)| {
                let stack = Stack::new(Endpoints::new(name, urls.clone()), policy.clone());
                (name.clone(), stack)
            })
            .collect();
        let state = State {
            upstreams: Arc::new(upstreams),
            http: proxy::client(),
            body_limit: DEFAULT_BODY_LIMIT,
            channels: status::Channels::default(),
        };
        let router = Router::new()
            .route("/api/v1/status", get(status::handler))
            .route("/api/v1/{*rest}", any(proxy::handler))
            .route("/api/v1", any(proxy::handler))
            .with_state(state);
        Ok(Routes::new(router))
    }
}
