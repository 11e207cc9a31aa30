//! A whole checkout fleet in this process, every service real: identity
//! (tokens), catalog (products, created over its REST as a seller),
//! inventory (stock, fed by catalog's events through the shared log),
//! cart, payments and orders, on port 0. Orders' own database is the
//! engine under test; the others use SQLite.

use std::time::Duration;

use bazaar_bus::Envelope;
use bazaar_platform::Service;
use bazaar_platform::config::Config;
use bazaar_platform::db::{Db, Migrations};
use bazaar_platform::server::{Context, Routes};
use bazaar_testkit::{Engine, Running, User};
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

/// The approving test card.
pub const GOOD_CARD: &str = "4242 4242 4242 4242";
/// Declined by the issuer.
pub const DECLINED_CARD: &str = "4000000000000002";
/// Declined for insufficient funds.
pub const BROKE_CARD: &str = "4000000000009995";
/// Fails transiently, every time.
pub const FLAKY_CARD: &str = "4000000000000119";

/// Test orders: quick polls and backoffs, a 1 s lease.
pub const QUICK: u8 = 0;
/// As [`QUICK`], with a 1 s saga deadline.
pub const SHORT_DEADLINE: u8 = 1;

/// Orders with the settings of profile `P`.
pub struct Orders<const P: u8>;

/// The settings of profile `p`.
pub fn settings(p: u8) -> bazaar_orders::Settings {
    let quick = bazaar_orders::Settings {
        saga_deadline: Duration::from_secs(60),
        lease: Duration::from_secs(1),
        poll_interval: Duration::from_millis(100),
        saga_concurrency: 16,
        retry_backoff: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(200),
        call_timeout: Duration::from_secs(10),
    };
    match p {
        SHORT_DEADLINE => bazaar_orders::Settings {
            saga_deadline: Duration::from_secs(1),
            ..quick
        },
        _ => quick,
    }
}

impl<const P: u8> Service for Orders<P> {
    const NAME: &'static str = "orders";
    type Settings = ();

    fn migrations() -> Option<&'static Migrations> {
        bazaar_orders::Orders::migrations()
    }

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        bazaar_orders::build(ctx, settings(P)).await
    }
}

/// Payments whose simulated processor takes `MS` milliseconds a call.
pub struct Payments<const MS: u64>;

impl<const MS: u64> Service for Payments<MS> {
    const NAME: &'static str = "payments";
    type Settings = ();

    fn migrations() -> Option<&'static Migrations> {
        bazaar_payments::Payments::migrations()
    }

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        let settings = bazaar_payments::Settings {
            processor_latency: Duration::from_millis(MS),
            ..bazaar_payments::Settings::default()
        };
        bazaar_payments::build(ctx, settings).await
    }
}

/// Whether a service of the fleet runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Up {
    /// Started.
    Yes,
    /// Not started: its address refuses connections.
    No,
}

/// One fleet.
pub struct Fleet {
    pub engine: Engine,
    pub http: reqwest::Client,
    pub identity: Running,
    pub catalog: Running,
    pub inventory: Running,
    pub cart: Option<Running>,
    pub payments: Option<Running>,
    pub orders: Option<Running>,
    pub orders_config: Config,
    pub seller: User,
    pub dir: TempDir,
}

/// Adds `running` (or, when it is not, an address that refuses
/// connections) as upstream `name` of `config`.
fn upstream_or_dead(config: &mut Config, name: &str, running: Option<&Running>) {
    match running {
        Some(running) => bazaar_testkit::upstream(config, name, running),
        None => {
            config
                .upstreams
                .insert(name.to_owned(), vec![bazaar_testkit::refused_url("http")]);
        }
    }
}

/// The standard fleet: every service up, quick orders.
pub async fn fleet(engine: Engine) -> Fleet {
    fleet_with::<Orders<QUICK>, Payments<0>>(engine, Up::Yes, Up::Yes).await
}

/// A fleet with orders `O` and payments `P` (or none) and cart (or none).
pub async fn fleet_with<O: Service, P: Service>(engine: Engine, payments: Up, cart: Up) -> Fleet {
    let dir = tempfile::tempdir().expect("temporary directory");
    let http = reqwest::Client::new();
    // With an admin account, for the tests of what admins may read.
    let identity = bazaar_testkit::identity_with_admin(dir.path()).await;
    let with_identity = |name: &str| {
        let mut config = bazaar_testkit::config(name, dir.path(), &Engine::Sqlite);
        bazaar_testkit::upstream(&mut config, "identity", &identity);
        config
    };
    let catalog = bazaar_testkit::start::<bazaar_catalog::Catalog>(with_identity("catalog")).await;
    let inventory =
        bazaar_testkit::start::<bazaar_inventory::Inventory>(with_identity("inventory")).await;
    let cart = match cart {
        Up::Yes => Some(bazaar_testkit::start::<bazaar_cart::Cart>(with_identity("cart")).await),
        Up::No => None,
    };
    let payments = match payments {
        Up::Yes => Some(bazaar_testkit::start::<P>(with_identity("payments")).await),
        Up::No => None,
    };
    let mut orders_config = bazaar_testkit::config("orders", dir.path(), &engine);
    bazaar_testkit::upstream(&mut orders_config, "identity", &identity);
    bazaar_testkit::upstream(&mut orders_config, "catalog", &catalog);
    bazaar_testkit::upstream(&mut orders_config, "inventory", &inventory);
    upstream_or_dead(&mut orders_config, "cart", cart.as_ref());
    upstream_or_dead(&mut orders_config, "payments", payments.as_ref());
    let orders = bazaar_testkit::start::<O>(orders_config.clone()).await;
    let seller = bazaar_testkit::user(&http, &identity, "seller").await;
    Fleet {
        engine,
        http,
        identity,
        catalog,
        inventory,
        cart,
        payments,
        orders: Some(orders),
        orders_config,
        seller,
        dir,
    }
}

/// A body for `POST /api/v1/orders` of `items` (none: the cart) paid with `card`.
pub fn order(items: Option<&[(Uuid, i64)]>, card: &str) -> Value {
    let mut body = json!({
        "payment": {"card_number": card, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        "shipping_address": {
            "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London",
            "postal_code": "SW1Y 4JH", "country": "GB"
        }
    });
    if let Some(items) = items {
        body["items"] = items
            .iter()
            .map(|(p, q)| json!({"product_id": p.to_string(), "quantity": q}))
            .collect();
    }
    body
}

/// The steps of an order's timeline.
pub fn steps(order: &Value) -> Vec<String> {
    order["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|e| e["step"].as_str().expect("a step").to_owned())
        .collect()
}

impl Fleet {
    /// Which engine orders runs on, for messages.
    pub fn on(&self) -> &'static str {
        self.engine.name()
    }

    /// The running orders.
    pub fn orders(&self) -> &Running {
        self.orders.as_ref().expect("orders runs")
    }

    /// A new signed-in customer.
    pub async fn customer(&self) -> User {
        bazaar_testkit::user(&self.http, &self.identity, "customer").await
    }

    /// The fleet's admin, signed in.
    pub async fn admin(&self) -> User {
        bazaar_testkit::admin(&self.http, &self.identity).await
    }

    /// `GET /api/v1/orders?query` as `user`, whatever the answer.
    pub async fn list_raw(&self, user: &User, query: &str) -> reqwest::Response {
        self.http
            .get(self.orders().url(&format!("/api/v1/orders{query}")))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("GET orders")
    }

    /// A product of the fleet's seller at `price` cents (EUR) with
    /// `stock` units, once inventory has its stock.
    pub async fn product(&self, title: &str, price: i64, stock: i64) -> Uuid {
        self.product_in(title, price, "EUR", stock).await
    }

    /// As [`Fleet::product`] in `currency`.
    pub async fn product_in(&self, title: &str, price: i64, currency: &str, stock: i64) -> Uuid {
        let res = self
            .http
            .post(self.catalog.url("/api/v1/products"))
            .bearer_auth(&self.seller.token)
            .json(&json!({
                "title": title, "description": "For tests.",
                "price": {"amount": price, "currency": currency},
                "category": "home-kitchen", "initial_stock": stock
            }))
            .send()
            .await
            .expect("POST product");
        assert_eq!(res.status(), 201, "product created");
        let product: Value = res.json().await.expect("product JSON");
        let id = Uuid::parse_str(product["id"].as_str().expect("id")).expect("a UUID");
        bazaar_testkit::eventually(&format!("stock of {title}"), || async {
            self.stock(id).await == Some((stock, 0))
        })
        .await;
        id
    }

    /// Deletes `product` in the catalog.
    pub async fn delete_product(&self, product: Uuid) {
        let res = self
            .http
            .delete(self.catalog.url(&format!("/api/v1/products/{product}")))
            .bearer_auth(&self.seller.token)
            .send()
            .await
            .expect("DELETE product");
        assert_eq!(res.status(), 204, "product deleted");
    }

    /// `(available, reserved)` of `product`, if inventory knows it.
    pub async fn stock(&self, product: Uuid) -> Option<(i64, i64)> {
        let res = self
            .http
            .get(self.inventory.url(&format!("/api/v1/inventory/{product}")))
            .send()
            .await
            .expect("GET stock");
        if res.status() != 200 {
            return None;
        }
        let body: Value = res.json().await.expect("stock JSON");
        Some((
            body["available"].as_i64().expect("available"),
            body["reserved"].as_i64().expect("reserved"),
        ))
    }

    /// `POST /api/v1/orders` as `user` with `key` (none: no header).
    pub async fn place(&self, user: &User, key: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.orders().url("/api/v1/orders"))
            .bearer_auth(&user.token)
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("POST order")
    }

    /// Places `body` under a new key, asserting 202; the order.
    pub async fn accepted(&self, user: &User, body: &Value) -> Value {
        let key = Uuid::now_v7().to_string();
        let res = self.place(user, Some(&key), body).await;
        assert_eq!(res.status(), 202, "order accepted on {}", self.on());
        let location = res.headers()["location"]
            .to_str()
            .expect("Location")
            .to_owned();
        let order: Value = res.json().await.expect("order JSON");
        assert_eq!(
            location,
            format!("/api/v1/orders/{}", order["id"].as_str().expect("id"))
        );
        order
    }

    /// `GET /api/v1/orders/{id}` as `user`.
    pub async fn get(&self, user: &User, id: &str) -> reqwest::Response {
        self.http
            .get(self.orders().url(&format!("/api/v1/orders/{id}")))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("GET order")
    }

    /// `user`'s order `id`, asserting 200.
    pub async fn order(&self, user: &User, id: &str) -> Value {
        let res = self.get(user, id).await;
        assert_eq!(res.status(), 200, "GET order on {}", self.on());
        res.json().await.expect("order JSON")
    }

    /// `user`'s order `id` once it is no longer pending.
    pub async fn settled(&self, user: &User, id: &str) -> Value {
        bazaar_testkit::eventually(&format!("order {id} settles on {}", self.on()), || async {
            self.order(user, id).await["status"] != "pending"
        })
        .await;
        self.order(user, id).await
    }

    /// `user`'s order `id` once its timeline has `step`.
    pub async fn reached(&self, user: &User, id: &str, step: &str) -> Value {
        bazaar_testkit::eventually(
            &format!("order {id} reaches {step} on {}", self.on()),
            || async { steps(&self.order(user, id).await).iter().any(|s| s == step) },
        )
        .await;
        self.order(user, id).await
    }

    /// `GET /api/v1/orders?query` as `user`, asserting 200.
    pub async fn list(&self, user: &User, query: &str) -> Value {
        let res = self
            .http
            .get(self.orders().url(&format!("/api/v1/orders{query}")))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("GET orders");
        assert_eq!(res.status(), 200, "list orders on {}", self.on());
        res.json().await.expect("page JSON")
    }

    /// Payments' record of `order`, as its buyer reads it.
    pub async fn payments_of(&self, user: &User, order: &str) -> Vec<Value> {
        let payments = self.payments.as_ref().expect("payments runs");
        let res = self
            .http
            .get(payments.url(&format!("/api/v1/payments?order_id={order}")))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("GET payments");
        assert_eq!(res.status(), 200, "payments of the order");
        let body: Value = res.json().await.expect("payments JSON");
        body.as_array().cloned().unwrap_or_default()
    }

    /// Puts `quantity` of `product` in `user`'s cart.
    pub async fn cart_put(&self, user: &User, product: Uuid, quantity: i64) {
        let cart = self.cart.as_ref().expect("cart runs");
        let res = self
            .http
            .put(cart.url(&format!("/api/v1/cart/items/{product}")))
            .bearer_auth(&user.token)
            .json(&json!({"quantity": quantity}))
            .send()
            .await
            .expect("PUT cart item");
        assert_eq!(res.status(), 200, "cart item put");
    }

    /// `user`'s cart lines as `(product_id, quantity)`.
    pub async fn cart_of(&self, user: &User) -> Vec<(String, i64)> {
        let cart = self.cart.as_ref().expect("cart runs");
        let res = self
            .http
            .get(cart.url("/api/v1/cart"))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("GET cart");
        assert_eq!(res.status(), 200, "cart read");
        let body: Value = res.json().await.expect("cart JSON");
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["product_id"].as_str().expect("product_id").to_owned(),
                    i["quantity"].as_i64().expect("quantity"),
                )
            })
            .collect()
    }

    /// Every event of `topic` in the fleet's log, read until `until` holds.
    pub async fn events(&self, topic: &str, until: impl Fn(&[Envelope]) -> bool) -> Vec<Envelope> {
        bazaar_testkit::events(
            &bazaar_testkit::event_log(self.dir.path()),
            &[topic],
            None,
            until,
        )
        .await
    }

    /// Orders' own database, opened beside the service.
    pub async fn orders_db(&self) -> Db {
        Db::connect(&self.orders_config.database)
            .await
            .expect("orders' database")
    }

    /// `orders_sagas_total{outcome}` of the running orders.
    pub async fn sagas_counted(&self, outcome: &str) -> f64 {
        bazaar_testkit::scrape(&self.http, &self.orders().base)
            .await
            .sum("orders_sagas_total", &[("outcome", outcome)])
    }

    /// Kills orders without a drain, as a crash would.
    pub fn crash_orders(&mut self) {
        self.orders.take().expect("orders runs").abort();
    }

    /// Starts orders `O` again on the same database.
    pub async fn start_orders<O: Service>(&mut self) {
        self.orders = Some(bazaar_testkit::start::<O>(self.orders_config.clone()).await);
    }

    /// Stops every service, draining.
    pub async fn stop(self) {
        if let Some(orders) = self.orders {
            orders.stop().await;
        }
        if let Some(payments) = self.payments {
            payments.stop().await;
        }
        if let Some(cart) = self.cart {
            cart.stop().await;
        }
        self.inventory.stop().await;
        self.catalog.stop().await;
        self.identity.stop().await;
    }
}
