//! One service process: a [`Service`] describes its routes, gRPC services
//! and migrations; [`Server`] does the rest.
//!
//! One port serves both HTTP/1.1 and HTTP/2 (h2c): REST routes and gRPC
//! services share an axum router, gRPC by its `/package.Service/` paths.
//! Every process also answers `/healthz`, `/readyz`, `/metrics`, the gRPC
//! health protocol and `bazaar.platform.v1.Instance`.
//!
//! ```text
//! Server::build::<S>(config) → .local_addr() → .run_until(shutdown)
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::server::NamedService;
use tower::ServiceExt as _;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use url::Url;

use bazaar_proto::platform::v1 as pb;

use crate::config::{Config, FromEnv};
use crate::db::{Db, Migrations};
use crate::events::{self, Events, Subscription};
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::ready::{Check, Readiness};
use crate::tasks::{Shutdown, Stopper, Tasks};
use crate::{metrics, problem, ready, shutdown, telemetry};
use bazaar_bus::metrics::BusMetrics;
use bazaar_bus::outbox::{Relay, RelayOptions};
use std::sync::Arc;

/// The header in which the gateway tells a service its client's address
/// (as the gateway decided it, `X-Forwarded-For` from trusted proxies
/// included); the gateway overwrites whatever a client sent in it.
pub const CLIENT_ADDRESS: &str = "x-bazaar-client-address";

/// Default limit on a request body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// What a service crate provides: its name, its settings, its migrations
/// and how to build its routes. Everything else comes from the platform.
pub trait Service: Send + 'static {
    /// The service's name, e.g. `catalog`.
    const NAME: &'static str;

    /// The service's own settings, read from its variables before the
    /// server touches anything; `()` for a service without any.
    type Settings: FromEnv;

    /// The service's migrations; `None` for a service that owns no database.
    fn migrations() -> Option<&'static Migrations> {
        None
    }

    /// Builds the service's routes from its context.
    fn build(ctx: Context<Self::Settings>) -> impl Future<Output = anyhow::Result<Routes>> + Send;
}

/// What a service gets to build its routes with: the platform's handles
/// and the service's own settings `S`.
#[derive(Debug, Clone)]
pub struct Context<S = ()> {
    config: Config,
    db: Option<Db>,
    events: Option<Events>,
    metrics: Metrics,
    tasks: Tasks,
    settings: S,
}

impl<S> Context<S> {
    /// The service's own settings, read before any I/O.
    pub fn settings(&self) -> &S {
        &self.settings
    }

    /// The settings, and the context without them (for code that takes
    /// them apart, e.g. a `build` function tests call with their own).
    pub fn split(self) -> (Context, S) {
        let Self {
            config,
            db,
            events,
            metrics,
            tasks,
            settings,
        } = self;
        let ctx = Context {
            config,
            db,
            events,
            metrics,
            tasks,
            settings: (),
        };
        (ctx, settings)
    }

    /// Runs `task` in the background for as long as the server runs: it is
    /// given a [`Shutdown`] that resolves once requests have drained, and
    /// `run_until` awaits it (see [`crate::tasks`]). No service spawns a
    /// task of its own.
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, task: F)
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks.spawn(name, task);
    }

    /// The server's task set, for code that starts tasks later (per
    /// request, on reconnect).
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// The clock the service reads "now" from for decisions that depend on
    /// elapsed time (so tests can move it instead of sleeping).
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.config.clock
    }

    /// The process's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The service's own database.
    ///
    /// # Errors
    /// When the service declared no migrations, so it has no database.
    pub fn db(&self) -> anyhow::Result<Db> {
        self.db
            .clone()
            .context("this service declares no migrations, so it has no database")
    }

    /// The service's outbox, to publish events in its own transactions.
    ///
    /// # Errors
    /// When the service has no database (the outbox lives there).
    pub fn events(&self) -> anyhow::Result<Events> {
        self.events
            .clone()
            .context("events need the service's own database: declare migrations")
    }

    /// A verifier of access tokens against identity's public keys
    /// (`BAZAAR_UPSTREAM_IDENTITY`); add it to the router as an `Extension`
    /// so handlers can take a [`crate::auth::User`].
    ///
    /// # Errors
    /// When this process was not told where identity is.
    pub fn verifier(&self) -> anyhow::Result<crate::auth::Verifier> {
        let identity = self.upstream("identity");
        anyhow::ensure!(
            !identity.is_empty(),
            "verifying tokens needs identity's address: set BAZAAR_UPSTREAM_IDENTITY"
        );
        Ok(crate::auth::Verifier::remote(identity.to_vec()))
    }

    /// The metrics registry, for the service's own metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The instances of `service` this process was told about
    /// (`BAZAAR_UPSTREAM_<SERVICE>`); empty when none.
    pub fn upstream(&self, service: &str) -> &[Url] {
        self.config
            .upstreams
            .get(service)
            .map_or(&[], Vec::as_slice)
    }
}

/// A service's HTTP routes, gRPC services and extra readiness checks.
pub struct Routes {
    router: Router,
    checks: Vec<Check>,
    subscriptions: Vec<Subscription>,
    openapi: Option<utoipa::openapi::OpenApi>,
    body_limit: usize,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("checks", &self.checks)
            .field("subscriptions", &self.subscriptions)
            .field("openapi", &self.openapi.is_some())
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl Routes {
    /// The service's REST routes.
    pub fn new(http: Router) -> Self {
        Self {
            router: http,
            checks: Vec::new(),
            subscriptions: Vec::new(),
            openapi: None,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Adds a tonic gRPC service, served on the same port.
    pub fn grpc<S>(mut self, svc: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Error = Infallible,
                Response = http::Response<tonic::body::Body>,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.router = self.router.route_service(
            &format!("/{}/{{*rest}}", S::NAME),
            svc.map_request(|req: Request| req.map(tonic::body::Body::new)),
        );
        self
    }

    /// Adds a readiness check (a dependency this service cannot work without).
    pub fn ready_check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// Runs `subscription`'s handler for every event of its topics, in the
    /// service's own database transactions (inbox, dead-lettering: see
    /// `bazaar_bus::subscription`).
    pub fn subscribe(mut self, subscription: Subscription) -> Self {
        self.subscriptions.push(subscription);
        self
    }

    /// The service's OpenAPI description (generated with utoipa), served at
    /// `GET /openapi.json` for the gateway to merge into the public one.
    pub fn openapi(mut self, spec: utoipa::openapi::OpenApi) -> Self {
        self.openapi = Some(spec);
        self
    }

    /// Changes the largest request body accepted (413 above it).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

/// A built service, bound to its port(s), ready to run.
#[derive(Debug)]
pub struct Server {
    config: Config,
    listeners: Vec<TcpListener>,
    app: Router,
    readiness: Readiness,
    health: tonic_health::server::HealthReporter,
    db: Option<Db>,
    events: Option<Events>,
    subscriptions: Vec<Subscription>,
    tasks: Stopper,
}

impl Server {
    /// Reads the service's settings, binds the port, opens and migrates the
    /// database, and builds the service's routes with the platform's around
    /// them.
    ///
    /// # Errors
    /// A setting that cannot be used (before anything else is touched), a
    /// port taken, a database that does not answer or migrate, or the
    /// service's own `build` failing.
    pub async fn build<S: Service>(config: Config) -> anyhow::Result<Self> {
        // First: a bad value stops the process before it binds, connects or
        // migrates anything.
        let settings = S::Settings::from_env(&config.env)?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
        let mut listeners = vec![
            TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?,
        ];
        if let Some(shared) = config.shared_listen {
            listeners.push(
                bind_shared(shared)
                    .with_context(|| format!("cannot listen on {shared} (SO_REUSEPORT)"))?,
            );
        }

        let metrics = Metrics::new(&config.service, &config.instance);
        let mut readiness = Readiness::default();
        let (db, events) = match S::migrations() {
            Some(migrations) => {
                let db = Db::connect(&config.database).await?;
                db.migrate(migrations).await?;
                bazaar_bus::schema::ensure(db.writer()).await?;
                let probe = db.clone();
                readiness.add(Check::new("database", move || {
                    let db = probe.clone();
                    async move { db.ping().await.map_err(|e| e.to_string()) }
                }));
                let broker = events::connect(&config).await?;
                let probe = broker.clone();
                readiness.add(Check::new("events", move || {
                    let broker = probe.clone();
                    async move { broker.ping().await.map_err(|e| e.to_string()) }
                }));
                let bus_metrics = BusMetrics::default();
                metrics.register_with(|r| bus_metrics.register(r));
                (Some(db), Some(Events::new(S::NAME, broker, bus_metrics)))
            }
            None => (None, None),
        };

        let (tasks, stopper) = Tasks::new();
        let ctx = Context {
            config: config.clone(),
            db: db.clone(),
            events: events.clone(),
            metrics: metrics.clone(),
            tasks,
            settings,
        };
        let routes = S::build(ctx)
            .await
            .with_context(|| format!("cannot build the {} service", S::NAME))?;
        for check in routes.checks {
            readiness.add(check);
        }
        if !routes.subscriptions.is_empty() && events.is_none() {
            anyhow::bail!(
                "{} subscribes to events but has no database for its inbox: declare migrations",
                S::NAME
            );
        }
        let subscriptions = routes.subscriptions;

        let (health, health_service) = tonic_health::server::health_reporter();
        let instance = pb::instance_server::InstanceServer::new(InstanceInfo {
            service: config.service.clone(),
            instance: config.instance.clone(),
            started: Instant::now(),
            restarts: restarts(config.env.get(RESTARTS)),
        });
        let mut platform = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready::handler).with_state(readiness.clone()))
            .route(
                "/metrics",
                get(metrics::handler).with_state(metrics.clone()),
            );
        if let Some(spec) = routes.openapi {
            let spec = Arc::new(spec);
            platform = platform.route(
                "/openapi.json",
                get(move || {
                    let spec = spec.clone();
                    async move { axum::Json(spec.as_ref().clone()) }
                }),
            );
        }
        let app = Routes::new(platform.merge(routes.router))
            .grpc(health_service)
            .grpc(instance)
            .router
            .fallback(problem::not_found_fallback)
            .method_not_allowed_fallback(problem::method_not_allowed_fallback)
            .layer(DefaultBodyLimit::max(routes.body_limit))
            .layer(RequestBodyTimeoutLayer::new(
                config.limits.body_read_timeout,
            ))
            .layer(CatchPanicLayer::custom(answer_panic))
            .layer(from_fn_with_state(metrics, metrics::record))
            .layer(from_fn(trace_request));

        Ok(Self {
            config,
            listeners,
            app,
            readiness,
            health,
            db,
            events,
            subscriptions,
            tasks: stopper,
        })
    }

    /// The address HTTP and gRPC are served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners[0]
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets
    /// in-flight requests finish (up to the configured drain time), stops
    /// and awaits the service's background tasks (as long again at most),
    /// stops the event side and closes the database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            config,
            listeners,
            app,
            readiness,
            health,
            db,
            events,
            subscriptions,
            tasks,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        // The gRPC health service follows /readyz.
        let health_task = tokio::spawn(async move {
            loop {
                let status = if readiness.is_ready().await {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                health.set_service_status("", status).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });

        // The event side stops after HTTP has drained, so what requests
        // committed is still published before exit.
        let (events_stop_tx, events_stop_rx) = watch::channel(false);
        let mut background = Vec::new();
        if let (Some(db), Some(events)) = (&db, &events) {
            let relay = Relay::new(
                db.writer().clone(),
                events.broker().clone(),
                events.metrics().clone(),
                RelayOptions::default(),
            );
            let wake = events.waker();
            let relay_wake = relay.waker();
            // Services wake their Events handle; forward it to the relay.
            background.push(tokio::spawn({
                let stop = stopped(events_stop_rx.clone());
                async move {
                    tokio::pin!(stop);
                    loop {
                        tokio::select! {
                            () = &mut stop => break,
                            () = wake.notified() => relay_wake.notify_one(),
                        }
                    }
                }
            }));
            background.push(tokio::spawn(relay.run(stopped(events_stop_rx.clone()))));
            for mut sub in subscriptions {
                sub.handler = Arc::new(events::Traced(sub.handler));
                background.push(tokio::spawn(bazaar_bus::subscription::run(
                    sub,
                    db.writer().clone(),
                    events.broker().clone(),
                    events.metrics().clone(),
                    stopped(events_stop_rx.clone()),
                )));
            }
        }

        let serving = futures_util::future::join_all(listeners.into_iter().map(|listener| {
            crate::listen::serve(
                listener,
                app.clone(),
                config.limits,
                stopped(stop_rx.clone()),
            )
        }));
        let drain_deadline = async {
            stopped(stop_rx.clone()).await;
            tokio::time::sleep(config.shutdown_timeout).await;
        };
        tokio::select! {
            _ = serving => {}
            () = drain_deadline => {
                tracing::warn!(timeout = ?config.shutdown_timeout, "in-flight requests did not finish in time; exiting anyway");
            }
        };
        health_task.abort();
        // Before the event side: what the tasks commit is still published.
        tasks.stop(config.shutdown_timeout).await;
        let _ = events_stop_tx.send(true);
        let settle = futures_util::future::join_all(background);
        if tokio::time::timeout(Duration::from_secs(5), settle)
            .await
            .is_err()
        {
            tracing::warn!("event tasks did not stop in time");
        }
        if let Some(db) = db {
            db.close().await;
        }
        Ok(())
    }
}

/// Runs one service process to completion: telemetry, build, serve until
/// SIGTERM/SIGINT (or stdin closing, when the launcher asked for that),
/// drain, exit.
pub async fn serve<S: Service>(config: Config) -> anyhow::Result<()> {
    let _telemetry = telemetry::init(&config)?;
    let watch_stdin = config.exit_on_stdin_close;
    let server = Server::build::<S>(config.clone()).await?;
    tracing::info!(
        service = S::NAME,
        instance = %config.instance,
        addr = %server.local_addr(),
        shared = ?config.shared_listen,
        "listening for HTTP and gRPC"
    );
    server
        .run_until(async move {
            let why = shutdown::signal(watch_stdin).await;
            tracing::info!(reason = why, "shutting down: draining in-flight requests");
        })
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Binds with SO_REUSEPORT so several processes share one port and the
/// kernel spreads connections across them.
fn bind_shared(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Opens a span per request carrying the trace id (from an incoming W3C
/// `traceparent`, or new) and a request id, so every log line written while
/// handling it names both; echoes `X-Request-Id` on the response.
async fn trace_request(mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route,
        trace_id = tracing::field::Empty,
        request_id = %request_id,
    );
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        // Handlers and proxies pass it on to whatever they call.
        req.headers_mut().insert("x-request-id", value);
    }
    let _ = span.set_parent(telemetry::extract_http(req.headers()));
    span.record("trace_id", telemetry::trace_id(&span));
    let mut response = next.run(req).instrument(span.clone()).await;
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status();
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), "request done");
        }
    });
    response
}

/// A panicking handler answers 500 instead of dropping the connection
/// (the handler of tower-http's `CatchPanicLayer`).
fn answer_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    Problem::internal(&*anyhow::anyhow!("handler panicked: {message}")).into_response()
}

/// How many times this instance was restarted before, as its supervisor
/// (`bazaar up`) says; documented in [`crate::config::VARS`].
const RESTARTS: &str = "BAZAAR_RESTARTS";

/// The value of [`RESTARTS`]: `None` when absent or not a count (nobody
/// counts this process's restarts).
fn restarts(value: Option<&str>) -> Option<u32> {
    value.and_then(|v| v.trim().parse().ok())
}

/// `bazaar.platform.v1.Instance`, served by every process.
struct InstanceInfo {
    service: String,
    instance: String,
    started: Instant,
    /// [`RESTARTS`], read once at start.
    restarts: Option<u32>,
}

#[tonic::async_trait]
impl pb::instance_server::Instance for InstanceInfo {
    async fn describe(
        &self,
        _request: tonic::Request<pb::DescribeRequest>,
    ) -> Result<tonic::Response<pb::DescribeResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::DescribeResponse {
            service: self.service.clone(),
            instance: self.instance.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: self.started.elapsed().as_secs(),
            pid: std::process::id(),
            restarts: self.restarts,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::instance_server::Instance as _;

    #[test]
    fn restarts_are_a_count_or_unknown() {
        assert_eq!(restarts(None), None);
        assert_eq!(restarts(Some("3")), Some(3));
        assert_eq!(restarts(Some(" 12\n")), Some(12));
        for bad in ["", "-1", "two", "4294967296", "1.5"] {
            assert_eq!(restarts(Some(bad)), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn describe_answers_the_restarts() {
        let info = InstanceInfo {
            service: "notes".into(),
            instance: "notes-1".into(),
            started: Instant::now(),
            restarts: Some(2),
        };
        let answer = info
            .describe(tonic::Request::new(pb::DescribeRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.instance, "notes-1");
        assert_eq!(answer.restarts, Some(2));
        assert_eq!(answer.pid, std::process::id());
    }
}
