//! Starting catalog on port 0 against a fresh database, with a real
//! identity beside it for tokens (and the JWKS that verifies them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bazaar_bus::{Broker as _, Envelope};
use bazaar_catalog::Catalog;
use bazaar_identity::Identity;
use bazaar_platform::config::{Config, DatabaseConfig, Secret};
use bazaar_platform::server::Server;
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

/// A running server and what stops it.
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn run<S: bazaar_platform::Service>(config: Config) -> (String, Running) {
    let server = Server::build::<S>(config).await.expect("service builds");
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    (base, Running { stop: Some(tx) })
}

/// A catalog and the identity it trusts.
pub struct App {
    pub base: String,
    pub identity: String,
    pub http: reqwest::Client,
    pub config: Config,
    pub engine: Engine,
    _servers: Vec<Running>,
    _dir: Arc<TempDir>,
}

/// One catalog per engine.
pub async fn apps() -> Vec<App> {
    let mut apps = Vec::new();
    for engine in engines() {
        apps.push(spawn(engine).await);
    }
    apps
}

/// A fresh catalog on `engine`, with a fresh identity (SQLite).
pub async fn spawn(engine: Engine) -> App {
    bazaar_platform::telemetry::init_for_tests();
    let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
    let identity_config = Config::for_test("identity", dir.path().join("identity"));
    let (identity, identity_server) = run::<Identity>(identity_config).await;
    let mut config = Config::for_test("catalog", dir.path().join("catalog"));
    if let Engine::Postgres(url) = &engine {
        config.database = DatabaseConfig::Postgres(Secret::new(url.clone()));
    }
    config.upstreams.insert(
        "identity".to_owned(),
        vec![url::Url::parse(&identity).expect("identity URL")],
    );
    let (base, catalog_server) = run::<Catalog>(config.clone()).await;
    App {
        base,
        identity,
        http: reqwest::Client::new(),
        config,
        engine,
        _servers: vec![catalog_server, identity_server],
        _dir: dir,
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub token: String,
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

    /// A new account of `role`, registered and signed in at identity.
    pub async fn user(&self, role: &str) -> Caller {
        let email = format!("{role}-{}@example.com", uuid::Uuid::now_v7().simple());
        let res = self
            .http
            .post(format!("{}/api/v1/auth/register", self.identity))
            .json(&json!({"email": email, "password": "password123", "name": "Test", "role": role}))
            .send()
            .await
            .expect("register");
        assert_eq!(res.status(), 201, "register");
        let user: Value = res.json().await.expect("user");
        let res = self
            .http
            .post(format!("{}/api/v1/auth/login", self.identity))
            .json(&json!({"email": email, "password": "password123"}))
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), 200, "login");
        let tokens: Value = res.json().await.expect("tokens");
        Caller {
            id: user["id"].as_str().expect("id").to_owned(),
            token: tokens["access_token"].as_str().expect("token").to_owned(),
        }
    }

    /// `method path` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.call(reqwest::Method::GET, path, None, None).await
    }

    /// Creates a product as `seller`, asserting 201; returns it.
    pub async fn create(&self, seller: &Caller, body: &Value) -> Value {
        let res = self
            .call(
                reqwest::Method::POST,
                "/api/v1/products",
                Some(&seller.token),
                Some(body),
            )
            .await;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(status, 201, "create on {}: {text}", self.on());
        serde_json::from_str(&text).expect("product JSON")
    }

    /// GET `path`, asserting 200; the JSON.
    pub async fn ok(&self, path: &str) -> Value {
        let res = self.get(path).await;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(status, 200, "GET {path} on {}: {text}", self.on());
        serde_json::from_str(&text).expect("JSON")
    }

    /// Every event of `topics` this catalog published, once `until` holds
    /// for what was read (or after 15 s, to show what was there).
    pub async fn events(
        &self,
        topics: &[&str],
        until: impl Fn(&[Envelope]) -> bool,
    ) -> Vec<Envelope> {
        let log = bazaar_bus::embedded::EmbeddedLog::open(&self.config.event_log)
            .await
            .expect("the embedded log");
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

/// A valid product body with `title`.
pub fn product(title: &str, category: &str, amount: i64) -> Value {
    json!({
        "title": title,
        "description": format!("A fine {title} for every day."),
        "price": {"amount": amount, "currency": "EUR"},
        "category": category,
    })
}

/// Reads a problem+json answer, asserting its media type and status.
pub async fn problem(res: reqwest::Response, status: u16) -> Value {
    let got = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(got, status, "status: {text}");
    assert_eq!(content_type, "application/problem+json", "{text}");
    serde_json::from_str(&text).expect("problem JSON")
}
