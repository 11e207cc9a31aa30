//! What the cart tests share: every store the environment offers (SQLite
//! always, PostgreSQL with `BAZAAR_TEST_POSTGRES_URL`, Redis with
//! `BAZAAR_TEST_REDIS_URL`), the running service on each, and calls to it
//! as clients (REST) and orders (gRPC) make them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use bazaar_cart::store::{CartStore, RedisStore, SqlStore};
use bazaar_platform::config::{DatabaseConfig, Secret};
use bazaar_platform::db::{Db, Migrations};
use bazaar_platform::server::{Context, Routes, Service};
use bazaar_proto::cart::v1 as pb;
use bazaar_proto::cart::v1::cart_client::CartClient;
use bazaar_testkit::{Engine, Running, User};
use serde_json::Value;
use tempfile::TempDir;
use tonic::transport::Channel;
use uuid::Uuid;

/// A key prefix of its own in the test Redis (`test:<uuid>:`), so runs and
/// tests never share carts; its keys are deleted when it is dropped, even
/// when the test fails.
pub struct RedisKeys {
    url: url::Url,
    pub prefix: String,
}

impl RedisKeys {
    pub fn new(url: url::Url) -> Self {
        Self {
            url,
            prefix: format!("test:{}:", Uuid::now_v7()),
        }
    }

    /// A connection of the test's own, to look at keys.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("a Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("a connection to the test Redis")
    }

    /// `TTL key`, in seconds (-2 when there is no such key).
    pub async fn ttl(&self, key: &str) -> i64 {
        redis::cmd("TTL")
            .arg(key)
            .query_async(&mut self.connection().await)
            .await
            .expect("TTL")
    }

    /// `HGETALL key`, as pairs.
    pub async fn hash(&self, key: &str) -> BTreeMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.connection().await)
            .await
            .expect("HGETALL")
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let deleted = (|| -> redis::RedisResult<()> {
            let mut connection = redis::Client::open(self.url.as_str())?.get_connection()?;
            let mut cursor = 0_u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(&mut connection)?;
                if !keys.is_empty() {
                    redis::cmd("DEL").arg(&keys).query::<i64>(&mut connection)?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        })();
        if let Err(e) = deleted {
            eprintln!("could not delete the test keys {pattern}: {e}");
        }
    }
}

/// A store under test, with what it needs kept alive.
pub struct TestStore {
    pub store: Arc<dyn CartStore>,
    pub redis: Option<RedisKeys>,
    _dir: TempDir,
}

fn migrations() -> &'static Migrations {
    <bazaar_cart::Cart as Service>::migrations().expect("the cart has migrations")
}

/// A [`SqlStore`] on a fresh, migrated database of `engine`.
pub async fn sql_store(engine: &Engine) -> TestStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = match engine {
        Engine::Sqlite => DatabaseConfig::Sqlite(dir.path().join("cart.db")),
        Engine::Postgres(url) => DatabaseConfig::Postgres(Secret::new(url.clone())),
    };
    let db = Db::connect(&config).await.expect("the test database");
    db.migrate(migrations()).await.expect("migrations");
    TestStore {
        store: Arc::new(SqlStore::new(db)),
        redis: None,
        _dir: dir,
    }
}

/// A [`RedisStore`] at `url` under a prefix of its own.
pub async fn redis_store(url: url::Url) -> (TestStore, RedisStore) {
    let keys = RedisKeys::new(url.clone());
    let store = RedisStore::connect(url.as_str(), keys.prefix.clone())
        .await
        .expect("the test Redis");
    let test = TestStore {
        store: Arc::new(store.clone()),
        redis: Some(keys),
        _dir: tempfile::tempdir().expect("temporary directory"),
    };
    (test, store)
}

/// Where a running cart keeps carts.
#[derive(Debug, Clone)]
pub enum Backend {
    Sql(Engine),
    Redis(url::Url),
}

/// SQLite always; PostgreSQL and Redis when the environment names them.
pub fn backends() -> Vec<Backend> {
    let mut backends: Vec<Backend> = bazaar_testkit::engines()
        .into_iter()
        .map(Backend::Sql)
        .collect();
    backends.extend(bazaar_testkit::redis_url().map(Backend::Redis));
    backends
}

/// Redis prefixes of the carts started by [`spawn`], by data directory:
/// how [`RedisCart`] (built by the platform from a `Context` only) learns
/// its test's prefix.
static PREFIXES: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());

/// The cart with the Redis key prefix its test chose.
pub struct RedisCart;

impl Service for RedisCart {
    const NAME: &'static str = "cart";
    type Settings = ();

    fn migrations() -> Option<&'static Migrations> {
        Some(migrations())
    }

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        let prefix = PREFIXES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ctx.config().data_dir)
            .cloned()
            .expect("the test registered its prefix");
        let settings = bazaar_cart::Settings {
            redis_prefix: prefix,
        };
        bazaar_cart::build(ctx, settings).await
    }
}

/// One running cart, with an identity for its tokens.
pub struct App {
    pub cart: Running,
    pub identity: Running,
    pub http: reqwest::Client,
    pub grpc: CartClient<Channel>,
    /// `sqlite`, `postgres` or `redis`, for assertion messages.
    pub on: &'static str,
    pub redis: Option<RedisKeys>,
    _dir: TempDir,
}

/// One cart per backend.
pub async fn apps() -> Vec<App> {
    let mut apps = Vec::new();
    for backend in backends() {
        apps.push(spawn(backend).await);
    }
    apps
}

/// A fresh identity and cart keeping carts in `backend`.
pub async fn spawn(backend: Backend) -> App {
    let dir = tempfile::tempdir().expect("temporary directory");
    let identity = bazaar_testkit::identity(dir.path()).await;
    let engine = match &backend {
        Backend::Sql(engine) => engine.clone(),
        Backend::Redis(_) => Engine::Sqlite,
    };
    let mut config = bazaar_testkit::config("cart", dir.path(), &engine);
    bazaar_testkit::upstream(&mut config, "identity", &identity);
    let (cart, on, redis) = match backend {
        Backend::Sql(engine) => (
            bazaar_testkit::start::<bazaar_cart::Cart>(config).await,
            engine.name(),
            None,
        ),
        Backend::Redis(url) => {
            let keys = RedisKeys::new(url.clone());
            PREFIXES
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(config.data_dir.clone(), keys.prefix.clone());
            config.redis_url = Some(Secret::new(url));
            (
                bazaar_testkit::start::<RedisCart>(config).await,
                "redis",
                Some(keys),
            )
        }
    };
    let grpc = CartClient::connect(cart.base.clone())
        .await
        .expect("gRPC channel to the cart");
    App {
        cart,
        identity,
        http: reqwest::Client::new(),
        grpc,
        on,
        redis,
        _dir: dir,
    }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        self.cart.url(path)
    }

    /// A new customer, signed in.
    pub async fn user(&self) -> User {
        bazaar_testkit::user(&self.http, &self.identity, "customer").await
    }

    /// `GET /api/v1/cart`, as `user` if any.
    pub async fn get(&self, user: Option<&User>) -> reqwest::Response {
        let mut request = self.http.get(self.url("/api/v1/cart"));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        request.send().await.expect("GET")
    }

    /// `PUT /api/v1/cart/items/{product}` with `body` (JSON when it is a
    /// value, sent as is when it is text), as `user` if any.
    pub async fn put(
        &self,
        user: Option<&User>,
        product: impl std::fmt::Display,
        body: &Value,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .put(self.url(&format!("/api/v1/cart/items/{product}")))
            .json(body);
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        request.send().await.expect("PUT")
    }

    /// `DELETE /api/v1/cart/items/{product}`, as `user` if any.
    pub async fn remove(
        &self,
        user: Option<&User>,
        product: impl std::fmt::Display,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .delete(self.url(&format!("/api/v1/cart/items/{product}")));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        request.send().await.expect("DELETE item")
    }

    /// `DELETE /api/v1/cart`, as `user` if any.
    pub async fn clear(&self, user: Option<&User>) -> reqwest::Response {
        let mut request = self.http.delete(self.url("/api/v1/cart"));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        request.send().await.expect("DELETE cart")
    }

    /// `user`'s cart as `(product, quantity)` pairs, asserting 200.
    pub async fn items(&self, user: &User) -> Vec<(Uuid, i64)> {
        let res = self.get(Some(user)).await;
        assert_eq!(res.status(), 200, "GET cart on {}", self.on);
        items(res).await
    }

    /// Puts `quantity` of `product` in `user`'s cart, asserting 200.
    pub async fn add(&self, user: &User, product: Uuid, quantity: i64) -> Vec<(Uuid, i64)> {
        let res = self
            .put(
                Some(user),
                product,
                &serde_json::json!({ "quantity": quantity }),
            )
            .await;
        assert_eq!(res.status(), 200, "PUT on {}", self.on);
        items(res).await
    }

    /// `GetCart(user_id)`.
    pub async fn get_cart(&self, user_id: &str) -> Result<pb::CartContents, tonic::Status> {
        self.grpc
            .clone()
            .get_cart(pb::GetCartRequest {
                user_id: user_id.to_owned(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// `ClearCart(user_id, only_items)`.
    pub async fn clear_cart(
        &self,
        user_id: &str,
        only_items: &[(&str, i64)],
    ) -> Result<pb::ClearCartResponse, tonic::Status> {
        self.grpc
            .clone()
            .clear_cart(pb::ClearCartRequest {
                user_id: user_id.to_owned(),
                only_items: only_items
                    .iter()
                    .map(|(product, quantity)| pb::Item {
                        product_id: (*product).to_owned(),
                        quantity: *quantity,
                    })
                    .collect(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Stops the cart and its identity, draining them; the test's Redis
    /// keys go when the app is dropped.
    pub async fn stop(self) {
        self.cart.stop().await;
        self.identity.stop().await;
    }
}

/// The `items` of a cart answer as `(product, quantity)` pairs, checking
/// the answer has nothing else.
pub async fn items(res: reqwest::Response) -> Vec<(Uuid, i64)> {
    let body: Value = res.json().await.expect("cart JSON");
    let object = body.as_object().expect("a cart is an object");
    assert_eq!(object.len(), 1, "a cart has only items: {body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            assert_eq!(item.as_object().map(|o| o.len()), Some(2), "{item}");
            (
                Uuid::parse_str(item["product_id"].as_str().expect("product_id")).expect("a UUID"),
                item["quantity"].as_i64().expect("quantity"),
            )
        })
        .collect()
}

/// The `(product, quantity)` pairs of gRPC items.
pub fn pairs(items: &[pb::Item]) -> Vec<(Uuid, i64)> {
    items
        .iter()
        .map(|i| (Uuid::parse_str(&i.product_id).expect("a UUID"), i.quantity))
        .collect()
}
