//! Starting identity on port 0 against a fresh database, calling it as a
//! client would, and reading what it published.

use std::sync::Arc;

use bazaar_bus::Envelope;
use bazaar_identity::Identity;
use bazaar_platform::config::Config;
use bazaar_platform::server::Service;
use bazaar_testkit::Running;
use serde_json::{Value, json};
use tempfile::TempDir;

pub use bazaar_testkit::{Engine, engines, problem};

/// The configuration of a test instance in `dir` on `engine`.
pub fn config(dir: &std::path::Path, engine: &Engine) -> Config {
    let mut config = Config::for_test("identity", dir);
    engine.configure(&mut config);
    config
}

/// One running identity.
pub struct App {
    pub http: reqwest::Client,
    pub config: Config,
    pub engine: Engine,
    running: Running,
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
    App {
        running: bazaar_testkit::start::<S>(config.clone()).await,
        http: reqwest::Client::new(),
        config,
        engine,
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
        self.running.url(path)
    }

    /// What this instance's engine is, for assertion messages.
    pub fn on(&self) -> &'static str {
        self.engine.name()
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
    pub async fn stop(self) -> (Config, Engine, Arc<TempDir>) {
        self.running.stop().await;
        (self.config, self.engine, self.dir)
    }

    /// Every event of `topics` this instance published, once `until` holds
    /// for what was read (or after a while, to show what was there).
    pub async fn events(
        &self,
        topics: &[&str],
        until: impl Fn(&[Envelope]) -> bool,
    ) -> Vec<Envelope> {
        bazaar_testkit::events(&self.config.event_log, topics, None, until).await
    }
}
