//! What Bazaar's service tests share, so each service's `tests/api/support.rs`
//! holds only what is its own: a fresh database per engine (SQLite always,
//! PostgreSQL when `BAZAAR_TEST_POSTGRES_URL` is set), services started on
//! port 0 and stopped with a drain, an identity to sign users in, the event
//! log read back, problem+json answers checked, `/metrics` read
//! ([`metrics`]) and event streams followed ([`sse`]); and the other
//! backends a test may use (Redis, NATS) when the environment names them.
//!
//! A dev-dependency only: nothing in a service's library uses it.

pub mod metrics;
pub mod sse;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bazaar_bus::{Broker as _, Envelope};
use bazaar_platform::Problem;
use bazaar_platform::config::{Config, DatabaseConfig, Secret};
use bazaar_platform::server::{Server, Service};
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

pub use metrics::{Metrics, scrape};
pub use sse::{Frame, Open, Sse};

/// How long [`eventually`] and [`events`] wait before giving up.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Which database a test instance uses.
#[derive(Debug, Clone)]
pub enum Engine {
    /// A SQLite file in the instance's data directory.
    Sqlite,
    /// A database of its own on the test PostgreSQL server.
    Postgres(url::Url),
}

impl Engine {
    /// `sqlite` or `postgres`, for assertion messages.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres(_) => "postgres",
        }
    }

    /// Points `config` at this engine (a new PostgreSQL database each call
    /// of [`engines`]; SQLite stays where `Config::for_test` put it).
    pub fn configure(&self, config: &mut Config) {
        if let Engine::Postgres(url) = self {
            config.database = DatabaseConfig::Postgres(Secret::new(url.clone()));
        }
    }
}

/// SQLite always; PostgreSQL too when `BAZAAR_TEST_POSTGRES_URL` is set,
/// each call a new database of its own (created by the service on start).
pub fn engines() -> Vec<Engine> {
    let mut engines = vec![Engine::Sqlite];
    if let Some(url) = postgres_database() {
        engines.push(Engine::Postgres(url));
    }
    engines
}

/// A URL of a new, not yet created database on the test PostgreSQL server,
/// if `BAZAAR_TEST_POSTGRES_URL` is set.
pub fn postgres_database() -> Option<url::Url> {
    match std::env::var("BAZAAR_TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => {
            let mut url = url::Url::parse(&base).expect("BAZAAR_TEST_POSTGRES_URL is a URL");
            url.set_path(&format!("/bazaar_test_{}", Uuid::now_v7().simple()));
            Some(url)
        }
        _ => {
            eprintln!("PostgreSQL part skipped: BAZAAR_TEST_POSTGRES_URL is unset");
            None
        }
    }
}

/// The test Redis, if `BAZAAR_TEST_REDIS_URL` is set (else says so).
pub fn redis_url() -> Option<url::Url> {
    match std::env::var("BAZAAR_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url.parse().expect("BAZAAR_TEST_REDIS_URL is a URL")),
        _ => {
            eprintln!("Redis part skipped: BAZAAR_TEST_REDIS_URL is unset");
            None
        }
    }
}

/// The test NATS server, if `BAZAAR_TEST_NATS_URL` is set (else says so).
pub fn nats_url() -> Option<String> {
    match std::env::var("BAZAAR_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("NATS part skipped: BAZAAR_TEST_NATS_URL is unset");
            None
        }
    }
}

/// A JetStream stream of a test's own on the NATS server at `url`, deleted
/// when this is dropped (even when the test fails), so runs leave nothing
/// behind on a shared server.
#[derive(Debug)]
pub struct NatsStream {
    /// The server.
    pub url: String,
    /// The stream's name (`T<uuid>`).
    pub name: String,
}

impl NatsStream {
    /// A new stream name on `url` (the broker creates the stream).
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: format!("T{}", Uuid::now_v7().simple()).to_uppercase(),
        }
    }
}

impl Drop for NatsStream {
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), self.name.clone());
        // Drop cannot await; a short-lived runtime on its own thread can.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = async_nats::connect(&url).await {
                    let _ = async_nats::jetstream::new(client)
                        .delete_stream(&stream)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Serves `router` on a free port of 127.0.0.1 for the rest of the test: a
/// stand-in for an upstream (identity's JWKS, an instance's `/readyz`).
/// Its base URL.
pub async fn serve(router: axum::Router) -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let url = url::Url::parse(&format!(
        "http://{}",
        listener.local_addr().expect("an address")
    ))
    .expect("a URL");
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// A local port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port()
}

/// `scheme://127.0.0.1:PORT` on a [`free_port`]: an address that refuses
/// connections, for a dependency that is down.
pub fn refused_url(scheme: &str) -> url::Url {
    url::Url::parse(&format!("{scheme}://127.0.0.1:{}", free_port())).expect("a URL")
}

/// `nats-server` from PATH, or Debian's /usr/sbin/nats-server.
pub fn nats_server_binary() -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let sbin = std::path::PathBuf::from("/usr/sbin/nats-server");
        sbin.is_file().then_some(sbin)
    })
}

/// Starts a private JetStream server on `port` storing in `dir`, and waits
/// until it accepts connections.
pub async fn start_nats(
    binary: &std::path::Path,
    port: u16,
    dir: &std::path::Path,
) -> tokio::process::Child {
    let child = tokio::process::Command::new(binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server starts");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nats-server did not start on port {port}");
}

/// A service running in this process until [`Running::stop`].
pub struct Running {
    /// `http://127.0.0.1:PORT`: REST and gRPC.
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The directory of a service started by [`start_alone`].
    _dir: Option<TempDir>,
}

impl Running {
    /// `base` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops it, draining in-flight requests; panics if it did not stop
    /// cleanly.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.done
            .await
            .expect("server task")
            .expect("server stopped cleanly");
    }

    /// Stops it without a drain, as a crash would (the task is aborted).
    pub fn abort(self) {
        self.done.abort();
    }
}

/// Starts `S` with `config` on the port it names (0 for any).
///
/// # Panics
/// When the service does not build.
pub async fn start<S: Service>(config: Config) -> Running {
    bazaar_platform::telemetry::init_for_tests();
    let server = Server::build::<S>(config)
        .await
        .unwrap_or_else(|e| panic!("{} builds: {e:#}", S::NAME));
    let base = format!("http://{}", server.local_addr());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    Running {
        base,
        stop,
        done,
        _dir: None,
    }
}

/// Starts `S` alone in a temporary directory of its own (kept while it
/// runs: its SQLite database and event log), with the configuration of
/// [`Config::for_test`] changed by `edit`.
pub async fn start_alone<S: Service>(edit: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = Config::for_test(S::NAME, dir.path());
    edit(&mut config);
    Running {
        _dir: Some(dir),
        ..start::<S>(config).await
    }
}

/// The configuration of service `name` for a test: port 0, data under
/// `dir/name`, the event log `dir/events.db` (shared by every service of
/// the test), the database of `engine`.
pub fn config(name: &str, dir: &Path, engine: &Engine) -> Config {
    let mut config = Config::for_test(name, dir.join(name));
    config.event_log = event_log(dir);
    engine.configure(&mut config);
    config
}

/// The event log shared by the services of a test started in `dir`.
pub fn event_log(dir: &Path) -> PathBuf {
    dir.join("events.db")
}

/// Adds `running` as the upstream `name` of `config`.
pub fn upstream(config: &mut Config, name: &str, running: &Running) {
    config.upstreams.insert(
        name.to_owned(),
        vec![url::Url::parse(&running.base).expect("a service URL")],
    );
}

/// An identity on SQLite in `dir`, for tokens: what every service that
/// checks users needs as its `identity` upstream.
pub async fn identity(dir: &Path) -> Running {
    start::<bazaar_identity::Identity>(config("identity", dir, &Engine::Sqlite)).await
}

/// The e-mail of the admin account [`IdentityWithAdmin`] ensures.
pub const ADMIN_EMAIL: &str = bazaar_identity::DEFAULT_ADMIN_EMAIL;
/// The password of the admin account [`IdentityWithAdmin`] ensures.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// Identity that ensures the admin account [`ADMIN_EMAIL`] with
/// [`ADMIN_PASSWORD`] at start (as `BAZAAR_IDENTITY_ADMIN_PASSWORD` would),
/// for tests that need an admin's token: sign in with [`admin`].
#[derive(Debug)]
pub struct IdentityWithAdmin;

impl Service for IdentityWithAdmin {
    const NAME: &'static str = "identity";
    type Settings = ();

    fn migrations() -> Option<&'static bazaar_platform::db::Migrations> {
        bazaar_identity::Identity::migrations()
    }

    async fn build(
        ctx: bazaar_platform::server::Context,
    ) -> anyhow::Result<bazaar_platform::server::Routes> {
        let settings = bazaar_identity::Settings::from_vars([(
            bazaar_identity::ADMIN_PASSWORD.to_owned(),
            ADMIN_PASSWORD.to_owned(),
        )])?;
        bazaar_identity::build(ctx, settings).await
    }
}

/// As [`identity`], with the admin account of [`IdentityWithAdmin`].
pub async fn identity_with_admin(dir: &Path) -> Running {
    start::<IdentityWithAdmin>(config("identity", dir, &Engine::Sqlite)).await
}

/// The admin of an [`IdentityWithAdmin`], signed in.
pub async fn admin(http: &reqwest::Client, identity: &Running) -> User {
    let res = http
        .post(identity.url("/api/v1/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(
        res.status(),
        200,
        "admin login (is it an IdentityWithAdmin?)"
    );
    let tokens: Value = res.json().await.expect("tokens JSON");
    let token = tokens["access_token"].as_str().expect("token").to_owned();
    let res = http
        .get(identity.url("/api/v1/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(res.status(), 200, "admin's me");
    let me: Value = res.json().await.expect("user JSON");
    assert_eq!(me["role"], "admin");
    User {
        id: me["id"].as_str().expect("id").to_owned(),
        token,
        email: ADMIN_EMAIL.to_owned(),
    }
}

/// A signed-in user: id and access token.
#[derive(Debug, Clone)]
pub struct User {
    /// The user's id (UUID).
    pub id: String,
    /// A bearer access token.
    pub token: String,
    /// The e-mail the account was registered with.
    pub email: String,
}

impl User {
    /// The id as a UUID.
    pub fn uuid(&self) -> Uuid {
        Uuid::parse_str(&self.id).expect("a user id is a UUID")
    }
}

/// Registers a new account of `role` (`customer`, `seller`) at `identity`
/// and signs it in.
pub async fn user(http: &reqwest::Client, identity: &Running, role: &str) -> User {
    let email = format!("{role}-{}@example.com", Uuid::now_v7().simple());
    let res = http
        .post(identity.url("/api/v1/auth/register"))
        .json(&json!({"email": email, "password": "password123", "name": "Test", "role": role}))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), 201, "register");
    let account: Value = res.json().await.expect("user JSON");
    let res = http
        .post(identity.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": "password123"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 200, "login");
    let tokens: Value = res.json().await.expect("tokens JSON");
    User {
        id: account["id"].as_str().expect("id").to_owned(),
        token: tokens["access_token"].as_str().expect("token").to_owned(),
        email,
    }
}

/// Polls `condition` until it holds; panics naming `what` after
/// [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Publishes `envelope` into the embedded event log at `path`, as its
/// producer's relay would.
pub async fn publish(path: &Path, envelope: &Envelope) {
    let log = bazaar_bus::embedded::EmbeddedLog::open(path)
        .await
        .expect("the embedded log");
    log.publish(envelope).await.expect("publish");
}

/// Every event of `topics` about `subject` (all subjects when `None`) in
/// the embedded log at `path`, read from its beginning until `until` holds
/// for what was read (or for [`PATIENCE`], to show what was there).
pub async fn events(
    path: &Path,
    topics: &[&str],
    subject: Option<&str>,
    until: impl Fn(&[Envelope]) -> bool,
) -> Vec<Envelope> {
    let log = bazaar_bus::embedded::EmbeddedLog::open(path)
        .await
        .expect("the embedded log");
    // A new group replays the log from its beginning.
    let group = format!("test-{}", Uuid::now_v7().simple());
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    let mut consumer = log.consume(&group, &topics).await.expect("consume");
    let mut seen = Vec::new();
    let started = Instant::now();
    while !until(&seen) && started.elapsed() < PATIENCE {
        if let Some(delivery) = consumer
            .next(Duration::from_millis(100))
            .await
            .expect("next event")
        {
            delivery.acker.ack().await.expect("ack");
            if subject.is_none() || delivery.envelope.subject.as_deref() == subject {
                seen.push(delivery.envelope);
            }
        }
    }
    seen
}

/// An answer read in full (status, media type, text), so that a helper
/// can assert on it with context of its own (an engine, a fleet's output).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// `Content-Type`, empty when absent.
    pub content_type: String,
    /// The body as text (empty when it could not be read).
    pub body: String,
}

impl Answer {
    /// Reads `res` to its end.
    pub async fn read(res: reqwest::Response) -> Self {
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = res.text().await.unwrap_or_default();
        Self {
            status,
            content_type,
            body,
        }
    }

    /// The body as JSON; panics naming `what` when it is not.
    pub fn json(&self, what: &str) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", self.body))
    }

    /// As [`Answer::json`], `null` for an empty body.
    pub fn json_or_null(&self, what: &str) -> Value {
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json(what)
        }
    }
}

/// Reads a problem+json answer, asserting its media type and status (the
/// body shown when either is not what was expected).
pub async fn problem(res: reqwest::Response, status: u16) -> Problem {
    let answer = Answer::read(res).await;
    assert_eq!(answer.status, status, "status: {}", answer.body);
    assert_eq!(
        answer.content_type, "application/problem+json",
        "not a problem document: {}",
        answer.body
    );
    serde_json::from_str(&answer.body).expect("problem JSON")
}
