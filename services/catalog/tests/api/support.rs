//! Starting catalog on port 0 against a fresh database, with a real
//! identity beside it for tokens (and the JWKS that verifies them).

use bazaar_bus::Envelope;
use bazaar_catalog::Catalog;
use bazaar_testkit::{Answer, Engine, Running, User};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A catalog and the identity it trusts.
pub struct App {
    pub base: String,
    pub http: reqwest::Client,
    pub engine: Engine,
    catalog: Running,
    identity: Running,
    dir: TempDir,
}

/// One catalog per engine.
pub async fn apps() -> Vec<App> {
    let mut apps = Vec::new();
    for engine in bazaar_testkit::engines() {
        apps.push(spawn(engine).await);
    }
    apps
}

/// A fresh catalog on `engine`, with a fresh identity (SQLite).
pub async fn spawn(engine: Engine) -> App {
    let dir = tempfile::tempdir().expect("temporary directory");
    let identity = bazaar_testkit::identity(dir.path()).await;
    let mut config = bazaar_testkit::config("catalog", dir.path(), &engine);
    bazaar_testkit::upstream(&mut config, "identity", &identity);
    let catalog = bazaar_testkit::start::<Catalog>(config).await;
    App {
        base: catalog.base.clone(),
        http: reqwest::Client::new(),
        engine,
        catalog,
        identity,
        dir,
    }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        self.catalog.url(path)
    }

    /// What this instance's engine is, for assertion messages.
    pub fn on(&self) -> &'static str {
        self.engine.name()
    }

    /// A new account of `role`, registered and signed in at identity.
    pub async fn user(&self, role: &str) -> User {
        bazaar_testkit::user(&self.http, &self.identity, role).await
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
    pub async fn create(&self, seller: &User, body: &Value) -> Value {
        let res = self
            .call(
                reqwest::Method::POST,
                "/api/v1/products",
                Some(&seller.token),
                Some(body),
            )
            .await;
        let answer = Answer::read(res).await;
        assert_eq!(
            answer.status,
            201,
            "create on {}: {}",
            self.on(),
            answer.body
        );
        answer.json("product")
    }

    /// GET `path`, asserting 200; the JSON.
    pub async fn ok(&self, path: &str) -> Value {
        let answer = Answer::read(self.get(path).await).await;
        assert_eq!(
            answer.status,
            200,
            "GET {path} on {}: {}",
            self.on(),
            answer.body
        );
        answer.json(path)
    }

    /// Every event of `topics` this catalog published, once `until` holds
    /// for what was read (or after a while, to show what was there).
    pub async fn events(
        &self,
        topics: &[&str],
        until: impl Fn(&[Envelope]) -> bool,
    ) -> Vec<Envelope> {
        bazaar_testkit::events(
            &bazaar_testkit::event_log(self.dir.path()),
            topics,
            None,
            until,
        )
        .await
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

/// Reads a problem+json answer, asserting its media type and status; as
/// JSON, for the tests that look at its fields by name.
pub async fn problem(res: reqwest::Response, status: u16) -> Value {
    serde_json::to_value(bazaar_testkit::problem(res, status).await).expect("problem JSON")
}
