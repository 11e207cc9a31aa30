//! Starting inventory (and an identity for its tokens) on port 0 against a
//! fresh database, feeding it catalog events, calling it as clients would
//! and reading what it published.

use std::time::{Duration, Instant};

use bazaar_bus::{Broker as _, Envelope};
use bazaar_events::catalog::{ProductCreated, ProductDeleted};
use bazaar_platform::Problem;
use bazaar_platform::config::{Config, DatabaseConfig, Secret};
use bazaar_platform::db::Migrations;
use bazaar_platform::server::{Context, Routes, Server, Service};
use bazaar_proto::inventory::v1 as pb;
use bazaar_proto::inventory::v1::inventory_client::InventoryClient;
use serde_json::{Value, json};
use tempfile::TempDir;
use tonic::transport::Channel;
use uuid::Uuid;

/// Inventory with a reservation TTL of `TTL_MS` milliseconds and a low
/// stock threshold of 5, whatever the environment says.
pub struct Tuned<const TTL_MS: u64>;

impl<const TTL_MS: u64> Service for Tuned<TTL_MS> {
    const NAME: &'static str = "inventory";
    type Settings = ();

    fn migrations() -> Option<&'static Migrations> {
        bazaar_inventory::Inventory::migrations()
    }

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        let settings = bazaar_inventory::Settings {
            reservation_ttl: Duration::from_millis(TTL_MS),
            low_stock: 5,
        };
        bazaar_inventory::build(ctx, settings).await
    }
}

/// The default: reservations held 10 minutes.
pub type Standard = Tuned<600_000>;

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
            url.set_path(&format!("/bazaar_test_{}", Uuid::now_v7().simple()));
            engines.push(Engine::Postgres(url));
        }
        _ => eprintln!("PostgreSQL part skipped: BAZAAR_TEST_POSTGRES_URL is unset"),
    }
    engines
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn run<S: Service>(config: Config) -> (String, Running) {
    let server = Server::build::<S>(config)
        .await
        .unwrap_or_else(|e| panic!("{} builds: {e:#}", S::NAME));
    let base = format!("http://{}", server.local_addr());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    (base, Running { stop, done })
}

/// One running inventory, with its identity.
pub struct App {
    pub base: String,
    pub identity: String,
    pub http: reqwest::Client,
    pub grpc: InventoryClient<Channel>,
    pub config: Config,
    pub engine: Engine,
    servers: Vec<Running>,
    _dir: TempDir,
}

/// One inventory per engine.
pub async fn apps() -> Vec<App> {
    apps_of::<Standard>().await
}

/// One inventory `S` per engine.
pub async fn apps_of<S: Service>() -> Vec<App> {
    let mut apps = Vec::new();
    for engine in engines() {
        apps.push(spawn::<S>(engine).await);
    }
    apps
}

/// A fresh identity and inventory `S` on `engine`, sharing an event log.
pub async fn spawn<S: Service>(engine: Engine) -> App {
    bazaar_platform::telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("temporary directory");
    let event_log = dir.path().join("events.db");

    let mut identity_config = Config::for_test("identity", dir.path().join("identity"));
    identity_config.event_log = event_log.clone();
    let (identity, identity_running) = run::<bazaar_identity::Identity>(identity_config).await;

    let mut config = Config::for_test("inventory", dir.path().join("inventory"));
    config.event_log = event_log;
    config.upstreams.insert(
        "identity".to_owned(),
        vec![url::Url::parse(&identity).expect("identity URL")],
    );
    if let Engine::Postgres(url) = &engine {
        config.database = DatabaseConfig::Postgres(Secret::new(url.clone()));
    }
    let (base, running) = run::<S>(config.clone()).await;
    let grpc = InventoryClient::connect(base.clone())
        .await
        .expect("gRPC channel to inventory");
    App {
        base,
        identity,
        http: reqwest::Client::new(),
        grpc,
        config,
        engine,
        servers: vec![running, identity_running],
        _dir: dir,
    }
}

/// A signed-in user: id and access token.
#[derive(Debug, Clone)]
pub struct User {
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

    /// A new account of `role` at identity, signed in.
    pub async fn user(&self, role: &str) -> User {
        let email = format!("{role}-{}@example.com", Uuid::now_v7().simple());
        let res = self
            .http
            .post(format!("{}/api/v1/auth/register", self.identity))
            .json(&json!({"email": email, "password": "password123", "name": "Test", "role": role}))
            .send()
            .await
            .expect("register");
        assert_eq!(res.status(), 201, "register");
        let user: Value = res.json().await.expect("user JSON");
        let res = self
            .http
            .post(format!("{}/api/v1/auth/login", self.identity))
            .json(&json!({"email": email, "password": "password123"}))
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), 200, "login");
        let tokens: Value = res.json().await.expect("tokens JSON");
        User {
            id: user["id"].as_str().expect("id").to_owned(),
            token: tokens["access_token"].as_str().expect("token").to_owned(),
        }
    }

    /// Publishes `envelope` into the event log inventory consumes.
    pub async fn publish(&self, envelope: &Envelope) {
        let log = bazaar_bus::embedded::EmbeddedLog::open(&self.config.event_log)
            .await
            .expect("the embedded log");
        log.publish(envelope).await.expect("publish");
    }

    /// Announces a new product of `seller` with `initial_stock` units, as
    /// catalog would, and waits until inventory shows it.
    pub async fn product(&self, seller: &User, initial_stock: i64) -> Uuid {
        let product = Uuid::now_v7();
        let event = ProductCreated {
            product_id: product,
            seller_id: Uuid::parse_str(&seller.id).expect("seller id"),
            title: "Kettle".into(),
            price_amount: 2999,
            currency: "EUR".into(),
            category: "home-kitchen".into(),
            initial_stock,
        };
        let envelope =
            Envelope::new("catalog", Some(&product.to_string()), &event).expect("envelope");
        self.publish(&envelope).await;
        self.eventually(&format!("stock of {product}"), || async {
            self.get(product).await.status() == 200
        })
        .await;
        product
    }

    /// Announces that `product` of `seller` was deleted.
    pub async fn delete_product(&self, seller: &User, product: Uuid) {
        let event = ProductDeleted {
            product_id: product,
            seller_id: Uuid::parse_str(&seller.id).expect("seller id"),
        };
        let envelope =
            Envelope::new("catalog", Some(&product.to_string()), &event).expect("envelope");
        self.publish(&envelope).await;
    }

    /// Polls `condition` until it holds; panics after 15 s.
    pub async fn eventually<F, Fut>(&self, what: &str, condition: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while !condition().await {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{what}: not within 15 s on {}",
                self.on()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `GET /api/v1/inventory/{product}`.
    pub async fn get(&self, product: impl std::fmt::Display) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/api/v1/inventory/{product}")))
            .send()
            .await
            .expect("GET")
    }

    /// The stock of `product` as `(available, reserved)`, asserting 200.
    pub async fn stock(&self, product: Uuid) -> (i64, i64) {
        let res = self.get(product).await;
        assert_eq!(res.status(), 200, "GET stock on {}", self.on());
        let body: Value = res.json().await.expect("stock JSON");
        assert_eq!(body["product_id"], product.to_string());
        (
            body["available"].as_i64().expect("available"),
            body["reserved"].as_i64().expect("reserved"),
        )
    }

    /// `PUT /api/v1/inventory/{product}` with `body`, as `user` if any.
    pub async fn put(
        &self,
        product: impl std::fmt::Display,
        body: &Value,
        user: Option<&User>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .put(self.url(&format!("/api/v1/inventory/{product}")))
            .json(body);
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        request.send().await.expect("PUT")
    }

    /// `Reserve(order, items)`.
    pub async fn reserve(
        &self,
        order: Uuid,
        items: &[(Uuid, i64)],
    ) -> Result<pb::Reservation, tonic::Status> {
        self.grpc
            .clone()
            .reserve(pb::ReserveRequest {
                order_id: order.to_string(),
                items: items
                    .iter()
                    .map(|(product, quantity)| pb::Item {
                        product_id: product.to_string(),
                        quantity: *quantity,
                    })
                    .collect(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// `Commit(order)`.
    pub async fn commit(&self, order: Uuid) -> Result<pb::Reservation, tonic::Status> {
        self.grpc
            .clone()
            .commit(pb::CommitRequest {
                order_id: order.to_string(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// `Release(order)`.
    pub async fn release(&self, order: Uuid) -> Result<pb::Reservation, tonic::Status> {
        self.grpc
            .clone()
            .release(pb::ReleaseRequest {
                order_id: order.to_string(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Every event of `topic` about `subject` in the log, once `until`
    /// holds for what was read (or after 15 s, to show what was there).
    pub async fn events(
        &self,
        topic: &str,
        subject: &str,
        until: impl Fn(&[Envelope]) -> bool,
    ) -> Vec<Envelope> {
        let log = bazaar_bus::embedded::EmbeddedLog::open(&self.config.event_log)
            .await
            .expect("the embedded log");
        // A new group replays the log from its beginning.
        let group = format!("test-{}", Uuid::now_v7().simple());
        let mut consumer = log
            .consume(&group, &[topic.to_owned()])
            .await
            .expect("consume");
        let mut seen = Vec::new();
        let started = Instant::now();
        while !until(&seen) && started.elapsed() < Duration::from_secs(15) {
            if let Some(delivery) = consumer
                .next(Duration::from_millis(100))
                .await
                .expect("next event")
            {
                delivery.acker.ack().await.expect("ack");
                if delivery.envelope.subject.as_deref() == Some(subject) {
                    seen.push(delivery.envelope);
                }
            }
        }
        seen
    }

    /// The value of `inventory_reservations_total` for `outcome` in
    /// `/metrics` (0 when not counted yet).
    pub async fn reservations_counted(&self, outcome: &str) -> u64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        let label = format!("outcome=\"{outcome}\"");
        text.lines()
            .find(|l| l.starts_with("inventory_reservations_total{") && l.contains(&label))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |v| v.parse().expect("a counter value"))
    }

    /// Stops both servers, draining them.
    pub async fn stop(self) {
        for running in self.servers {
            let _ = running.stop.send(());
            running
                .done
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
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
