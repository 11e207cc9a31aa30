//! Starting inventory (and an identity for its tokens) on port 0 against a
//! fresh database, feeding it catalog events, calling it as clients would
//! and reading what it published.

use std::time::Duration;

use bazaar_bus::Envelope;
use bazaar_events::catalog::{ProductCreated, ProductDeleted};
use bazaar_platform::clock::Clock;
use bazaar_platform::config::Config;
use bazaar_platform::db::Migrations;
use bazaar_platform::server::{Context, Routes, Service};
use bazaar_proto::inventory::v1 as pb;
use bazaar_proto::inventory::v1::inventory_client::InventoryClient;
use bazaar_testkit::{Engine, Running, User};
use serde_json::Value;
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

/// One running inventory, with its identity.
pub struct App {
    pub base: String,
    pub http: reqwest::Client,
    pub grpc: InventoryClient<Channel>,
    pub config: Config,
    pub engine: Engine,
    inventory: Running,
    identity: Running,
    _dir: TempDir,
}

/// One inventory per engine.
pub async fn apps() -> Vec<App> {
    apps_of::<Standard>().await
}

/// One inventory `S` per engine.
pub async fn apps_of<S: Service>() -> Vec<App> {
    let mut apps = Vec::new();
    for engine in bazaar_testkit::engines() {
        apps.push(spawn::<S>(engine).await);
    }
    apps
}

/// One inventory `S` per engine, each on a manual clock of its own
/// (`app.config.clock`), so a test moves time instead of sleeping.
pub async fn apps_on_manual_clocks<S: Service>() -> Vec<App> {
    let mut apps = Vec::new();
    for engine in bazaar_testkit::engines() {
        apps.push(spawn_on::<S>(engine, Clock::manual()).await);
    }
    apps
}

/// A fresh identity and inventory `S` on `engine`, sharing an event log.
pub async fn spawn<S: Service>(engine: Engine) -> App {
    spawn_on::<S>(engine, Clock::system()).await
}

/// [`spawn`], with inventory reading "now" from `clock`.
pub async fn spawn_on<S: Service>(engine: Engine, clock: Clock) -> App {
    let dir = tempfile::tempdir().expect("temporary directory");
    let identity = bazaar_testkit::identity(dir.path()).await;
    let mut config = bazaar_testkit::config("inventory", dir.path(), &engine);
    config.clock = clock;
    bazaar_testkit::upstream(&mut config, "identity", &identity);
    let inventory = bazaar_testkit::start::<S>(config.clone()).await;
    let grpc = InventoryClient::connect(inventory.base.clone())
        .await
        .expect("gRPC channel to inventory");
    App {
        base: inventory.base.clone(),
        http: reqwest::Client::new(),
        grpc,
        config,
        engine,
        inventory,
        identity,
        _dir: dir,
    }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        self.inventory.url(path)
    }

    /// What this instance's engine is, for assertion messages.
    pub fn on(&self) -> &'static str {
        self.engine.name()
    }

    /// A new account of `role` at identity, signed in.
    pub async fn user(&self, role: &str) -> User {
        bazaar_testkit::user(&self.http, &self.identity, role).await
    }

    /// Publishes `envelope` into the event log inventory consumes.
    pub async fn publish(&self, envelope: &Envelope) {
        bazaar_testkit::publish(&self.config.event_log, envelope).await;
    }

    /// Announces a new product of `seller` with `initial_stock` units, as
    /// catalog would, and waits until inventory shows it.
    pub async fn product(&self, seller: &User, initial_stock: i64) -> Uuid {
        let product = Uuid::now_v7();
        let event = ProductCreated {
            product_id: product,
            seller_id: seller.uuid(),
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
            seller_id: seller.uuid(),
        };
        let envelope =
            Envelope::new("catalog", Some(&product.to_string()), &event).expect("envelope");
        self.publish(&envelope).await;
    }

    /// Polls `condition` until it holds; panics naming `what` (and the
    /// engine) after a while.
    pub async fn eventually<F, Fut>(&self, what: &str, condition: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        bazaar_testkit::eventually(&format!("{what} on {}", self.on()), condition).await;
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
    /// holds for what was read (or after a while, to show what was there).
    pub async fn events(
        &self,
        topic: &str,
        subject: &str,
        until: impl Fn(&[Envelope]) -> bool,
    ) -> Vec<Envelope> {
        bazaar_testkit::events(&self.config.event_log, &[topic], Some(subject), until).await
    }

    /// The value of `inventory_reservations_total` for `outcome` in
    /// `/metrics` (0 when not counted yet).
    pub async fn reservations_counted(&self, outcome: &str) -> u64 {
        bazaar_testkit::scrape(&self.http, &self.base)
            .await
            .sum("inventory_reservations_total", &[("outcome", outcome)]) as u64
    }

    /// Stops both servers, draining them.
    pub async fn stop(self) {
        self.inventory.stop().await;
        self.identity.stop().await;
    }
}

pub use bazaar_testkit::problem;
