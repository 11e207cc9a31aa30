//! Starting identity on port 0 against a fresh database, calling it as a
//! client would, and reading what it published.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bazaar_bus::{Broker as _, Envelope};
use bazaar_identity::Identity;
use bazaar_platform::Problem;
use bazaar_platform::config::{Config, DatabaseConfig, Secret};
use bazaar_platform::server::{Server, Service};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Which database a test instance uses.
#[derive(Debug, Clone)]
pub enum Engine {
    Sqlite,
    Postgres(url::Url),
}

/// SQLite always; PostgreSQL too when `BAZAAR_TEST_POSTGRES_URL` is set,
/// each call a new database of its own.
pub fn engines() -> Vec<Engine> {
    let mut engines = vec![Engine::Sqlite];
    match std::env::var("BAZAAR_TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => {
            let mut url = url::Url::parse(&base).expect("BAZAAR_TEST_POSTGRES_URL is a URL");
            url.set_path(&format!("/bazaar_test_{}", uuid::Uuid::now_v7().simple()));
            engines.push(Engine::Postgres(url));
        }
        _ => eprintln!("PostgreSQL part skipped: BAZAAR_TEST_POSTGRES_URL is unset"),
    }
    engines
}

/// The configuration of a test instance in `dir` on `engine`.
pub fn config(dir: &std::path::Path, engine: &Engine) -> Config {
    let mut config = Config::for_test("identity", dir);
    if let Engine::Postgres(url) = engine {
        config.database = DatabaseConfig::Postgres(Secret::new(url.clone()));
    }
    config
}

/// One running identity.
pub struct App {
    pub base: String,
    pub http: reqwest::Client,
    pub config: Config,
    pub engine: Engine,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: Arc<TempDir>,
}

/// One identity per engine.
pub async fn apps() -> Vec<App> {
    let mut apps = Vec::new();
    for engine in engines() {
        apps.push(spawn(engine).await);
    }
    apps
}

/// A fresh identity on `engine`.
pub async fn spawn(engine: Engine) -> App {
    let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
    let config = config(dir.path(), &engine);
    start(config, engine, dir).await
}

/// Starts identity with `config`; `dir` is kept alive as long as the app.
pub async fn start(config: Config, engine: Engine, dir: Arc<TempDir>) -> App {
    start_as::<Identity>(config, engine, dir).await
}

/// As [`start`], with the service `S` (identity built with settings of a
/// test's own).
pub async fn start_as<S: Service>(config: Config, engine: Engine, dir: Arc<TempDir>) -> App {
    bazaar_platform::telemetry::init_for_tests();
    let server = Server::build::<S>(config.clone())
        .await
        .expect("identity builds");
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    App {
        base,
        http: reqwest::Client::new(),
        config,
        engine,
        stop: Some(tx),
        done: Some(done),
        dir,
    }
}

/// A token pair from login or refresh.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: i64,
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What this instance's engine is, for assertion messages.
    pub fn on(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "sqlite",
            Engine::Postgres(_) => "postgres",
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// `method path` with `token` as bearer, if any.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    /// Registers an account, asserting 201; returns the answer.
    pub async fn register(&self, email: &str, password: &str, role: Option<&str>) -> Value {
        let mut body = json!({"email": email, "password": password, "name": "Test User"});
        if let Some(role) = role {
            body["role"] = json!(role);
        }
        let res = self.post("/api/v1/auth/register", &body).await;
        assert_eq!(res.status(), 201, "register {email} on {}", self.on());
        res.json().await.expect("user JSON")
    }

    /// Signs in, asserting 200.
    pub async fn login(&self, email: &str, password: &str) -> Tokens {
        let res = self
            .post(
                "/api/v1/auth/login",
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(res.status(), 200, "login {email} on {}", self.on());
        res.json().await.expect("tokens JSON")
    }

    /// A new account signed in: its id and tokens.
    pub async fn user(&self, role: &str) -> (String, Tokens) {
        let email = format!("{role}-{}@example.com", uuid::Uuid::now_v7().simple());
        let user = self.register(&email, "password123", Some(role)).await;
        let tokens = self.login(&email, "password123").await;
        (user["id"].as_str().expect("id").to_owned(), tokens)
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// Stops the server (draining it) and hands back what restarts it.
    pub async fn stop(mut self) -> (Config, Engine, Arc<TempDir>) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            done.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        (self.config.clone(), self.engine.clone(), self.dir.clone())
    }

    /// Every event of `topics` this instance published, once `until` holds
    /// for what was read (or after 15 s, to show what was there).
    pub async fn events(
        &self,
        topics: &[&str],
        until: impl Fn(&[Envelope]) -> bool,
    ) -> Vec<Envelope> {
        let log = bazaar_bus::embedded::EmbeddedLog::open(&self.config.event_log)
            .await
            .expect("the embedded log");
        // A new group replays the log from its beginning.
        let group = format!("test-{}", uuid::Uuid::now_v7().simple());
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let mut consumer = log.consume(&group, &topics).await.expect("consume");
        let mut seen = Vec::new();
        let started = Instant::now();
        while !until(&seen) && started.elapsed() < Duration::from_secs(15) {
            if let Some(delivery) = consumer
                .next(Duration::from_millis(100))
                .await
                .expect("next event")
            {
                delivery.acker.ack().await.expect("ack");
                seen.push(delivery.envelope);
            }
        }
        seen
    }
}

/// Reads a problem+json answer, asserting its media type and status.
pub async fn problem(res: reqwest::Response, status: u16) -> Problem {
    assert_eq!(res.status(), status, "status");
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "not a problem document"
    );
    res.json().await.expect("problem JSON")
}
