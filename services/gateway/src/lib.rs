//! The API gateway: the one door in. It routes the public REST API
//! (`/api/v1/...`) to the service that owns each resource, balancing over
//! that service's instances with the platform's call stack (power of two
//! choices, per-instance circuit breakers, deadlines), and reports the
//! fleet's health at `GET /api/v1/status`.
//!
//! On the way in, every request passes the edge: security headers and CORS
//! for browsers, a check of its access token against identity's keys, and a
//! per-client rate limit (in memory, or in Redis shared by every replica).
//! `GET /api/v1/openapi.json` describes the whole public API, merged from
//! the services' own descriptions.
//!
//! It owns no data. Which instances exist comes from its configuration
//! (`BAZAAR_UPSTREAM_<SERVICE>`), handed out by the launcher locally and by
//! the deployment at scale; its own settings are `BAZAAR_GATEWAY_*` ([`VARS`]).

mod cors;
mod edge;
mod limit;
mod openapi;
mod proxy;
mod routes;
mod settings;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{any, get};
use bazaar_platform::auth::Verifier;
use bazaar_platform::client::{ByClass, Deadlines, Endpoints, Policy, Stack};
use bazaar_platform::problem::Problem;
use bazaar_platform::server::DEFAULT_BODY_LIMIT;
use bazaar_platform::server::{Context, Routes, Service};
use prometheus_client::metrics::counter::Counter;

pub use routes::{PAGES, ROUTES, route};
pub use settings::{IpNet, RateLimit, Settings, VARS};

/// The gateway service.
#[derive(Debug)]
pub struct Gateway;

/// What every gateway handler shares.
#[derive(Clone, Debug)]
struct State {
    /// The call stacks of every upstream service, by service name.
    upstreams: Arc<BTreeMap<String, Upstream>>,
    /// Plain HTTP/1.1 client with a connection pool, for proxying.
    http: proxy::HttpClient,
    /// Largest request body passed on.
    body_limit: usize,
    /// gRPC channels per instance URL, for `/api/v1/status`.
    channels: status::Channels,
    /// The public API's description, assembled on demand.
    specs: openapi::Specs,
    /// Proxies whose `X-Forwarded-For` is believed.
    trusted: Arc<[IpNet]>,
}

/// The calls to one upstream service: reads and writes have deadlines and
/// permits of their own, over the same instances and breakers.
type Upstream = ByClass<Stack>;

fn upstream(name: &str, urls: Vec<url::Url>, deadlines: &Deadlines) -> Upstream {
    let endpoints = Endpoints::new(name, urls);
    let reads = if name == routes::PAGES {
        // A page gathers other services' answers, up to two rounds of the
        // storefront's own read deadline.
        Policy {
            deadline: deadlines.read.saturating_mul(2),
            max_retries: 0,
            ..Policy::write(deadlines)
        }
    } else {
        Policy::read(deadlines)
    };
    ByClass {
        reads: Stack::new(endpoints.clone(), reads),
        writes: Stack::new(endpoints, Policy::write(deadlines)),
    }
}

impl Service for Gateway {
    const NAME: &'static str = "gateway";
    type Settings = Settings;

    async fn build(ctx: Context<Settings>) -> anyhow::Result<Routes> {
        let (ctx, settings) = ctx.split();
        Self::routes(ctx, settings).await
    }
}

impl Gateway {
    /// Builds the gateway with explicit settings instead of reading them
    /// from the environment (tests use it).
    pub async fn routes(ctx: Context, settings: Settings) -> anyhow::Result<Routes> {
        let deadlines = ctx.config().calls;
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
            .map(|(name, urls)| (name.clone(), upstream(name, urls.clone(), &deadlines)))
            .collect();
        let trusted: Arc<[IpNet]> = settings.trusted_proxies.clone().into();
        let own_spec = openapi::own();
        let state = State {
            upstreams: Arc::new(upstreams),
            http: proxy::client(),
            body_limit: DEFAULT_BODY_LIMIT,
            channels: status::Channels::default(),
            specs: openapi::Specs::new(own_spec.clone()),
            trusted: trusted.clone(),
        };

        let identity = ctx.upstream("identity");
        let verifier = (!identity.is_empty()).then(|| Verifier::remote(identity.to_vec()));
        let limiter = match (settings.rate_limit, &ctx.config().redis_url) {
            (None, _) => limit::Limiter::Off,
            (Some(rate), None) => limit::Limiter::Memory(Arc::new(limit::Memory::new(rate))),
            (Some(rate), Some(url)) => {
                let client = redis::Client::open(url.expose().as_str())?;
                let fail_open = Counter::default();
                ctx.metrics().register(
                    "gateway_rate_limit_fail_open",
                    "Requests let through unchecked because Redis did not answer the rate limiter",
                    fail_open.clone(),
                );
                // No readiness check on Redis: the limiter fails open, and a
                // check would take every replica out of service at once when
                // Redis blinks. The fail-open counter is how an outage shows.
                limit::Limiter::Redis(
                    limit::Shared::connect(
                        client,
                        rate,
                        settings.redis_prefix.clone(),
                        fail_open,
                        ctx.tasks(),
                    )
                    .await,
                )
            }
        };
        let edge = edge::Edge {
            verifier,
            limiter,
            trusted,
            limited: Counter::default(),
            refused: Counter::default(),
        };
        ctx.metrics().register(
            "gateway_rate_limited",
            "Requests refused with 429 because their client was over its rate limit",
            edge.limited.clone(),
        );
        ctx.metrics().register(
            "gateway_tokens_refused",
            "Requests refused at the edge because of their access token",
            edge.refused.clone(),
        );
        let cors = cors::Cors::new(&settings.cors_origins)?;

        // Layers run outside in: security headers, CORS, then the edge, so
        // even a 401 or 429 is readable by an allowed page and carries the
        // headers. /healthz, /readyz and /metrics are the platform's routes,
        // outside these layers, so they are never limited. The gateway's own
        // routes answer other methods themselves, because the platform's 405
        // would be outside the layers too (no CORS preflight, no headers).
        let router = Router::new()
            .route("/api/v1/status", get(status::handler).fallback(only_get))
            .route(
                "/api/v1/openapi.json",
                get(openapi::handler).fallback(only_get),
            )
            .route("/api/v1/{*rest}", any(proxy::handler))
            .route("/api/v1", any(proxy::handler))
            // Every other path is a web page of the storefront. Claiming
            // them here keeps them inside the layers (the platform's
            // fallback would answer without them).
            .route("/", any(pages))
            .route("/{*rest}", any(pages))
            .with_state(state)
            .layer(from_fn_with_state(edge, edge::guard))
            .layer(from_fn_with_state(cors, cors::layer))
            .layer(from_fn(cors::security_headers));
        Ok(Routes::new(router).openapi(own_spec))
    }
}

/// A web page: the storefront's, when it is deployed; otherwise there is
/// nothing outside `/api/`.
async fn pages(
    state: axum::extract::State<State>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if state.upstreams.contains_key(routes::PAGES) {
        proxy::handler(state, req).await
    } else {
        not_found(req.uri().clone()).await.into_response()
    }
}

async fn not_found(uri: http::Uri) -> Problem {
    Problem::not_found(format!("There is nothing at {}.", uri.path()))
}

async fn only_get(method: http::Method, uri: http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let problem = Problem::new(
        http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method}.", uri.path()),
    );
    ([(http::header::ALLOW, "GET, HEAD")], problem).into_response()
}
