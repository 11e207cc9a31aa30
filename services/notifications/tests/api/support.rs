//! What the tests stand on: a world of one test (its directory, an identity
//! for tokens, the broker its events travel through, the database engine),
//! notifications started in it (killable like a crashed process, too), the
//! events other services would publish, and its live stream opened.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bazaar_bus::embedded::EmbeddedLog;
use bazaar_bus::nats::NatsBroker;
use bazaar_bus::{Broker, Envelope, Event};
use bazaar_events::catalog::ProductCreated;
use bazaar_events::identity::{Role, SellerFollowed, SellerUnfollowed, UserRegistered};
use bazaar_events::inventory::StockLow;
use bazaar_events::orders::{Money, OrderCancelled, OrderConfirmed, OrderLine};
use bazaar_notifications::{Notifications, Settings};
use bazaar_platform::config::Config;
use bazaar_platform::db::Migrations;
use bazaar_platform::server::{Context, Routes, Server, Service};
use bazaar_testkit::{Engine, NatsStream, Running, Sse, User};
use serde_json::Value;
use tempfile::TempDir;
use uuid::Uuid;

/// How long the slow paths (a crash's leases running out) may take.
pub const LONG: Duration = Duration::from_secs(90);

tokio::task_local! {
    /// The settings the notifications being built in this task get.
    static SETTINGS: Settings;
}

/// Notifications with the settings of the task that builds it, rather
/// than the environment's.
pub struct Tuned;

impl Service for Tuned {
    const NAME: &'static str = "notifications";
    type Settings = ();

    fn migrations() -> Option<&'static Migrations> {
        Notifications::migrations()
    }

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        bazaar_notifications::build(ctx, SETTINGS.with(Settings::clone)).await
    }
}

/// Settings for tests: the defaults, with a storefront URL of our own.
pub fn settings() -> Settings {
    Settings {
        public_url: "http://shop.test".to_owned(),
        ..Settings::default()
    }
}

/// Which broker a test's events travel through.
#[derive(Debug, Clone)]
pub enum BrokerKind {
    /// The embedded log (a SQLite file in the test's directory).
    Embedded,
    /// NATS JetStream at this URL, a stream of the test's own.
    Nats(String),
}

impl BrokerKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Nats(_) => "nats",
        }
    }
}

/// The embedded log always; NATS too when `BAZAAR_TEST_NATS_URL` is set.
pub fn brokers() -> Vec<BrokerKind> {
    let mut all = vec![BrokerKind::Embedded];
    all.extend(bazaar_testkit::nats_url().map(BrokerKind::Nats));
    all
}

/// The broker of one test, as the other services' relays would use it.
pub struct Bus {
    pub kind: BrokerKind,
    broker: Arc<dyn Broker>,
    /// The NATS stream of the test's own, deleted when the bus is dropped.
    stream: Option<NatsStream>,
    log: PathBuf,
}

impl Bus {
    async fn open(kind: BrokerKind, dir: &std::path::Path) -> Self {
        let log = bazaar_testkit::event_log(dir);
        match &kind {
            BrokerKind::Embedded => Self {
                broker: Arc::new(EmbeddedLog::open(&log).await.expect("the embedded log")),
                kind,
                stream: None,
                log,
            },
            BrokerKind::Nats(url) => {
                let stream = NatsStream::new(url);
                let broker = NatsBroker::connect(url, &stream.name)
                    .await
                    .expect("NATS at BAZAAR_TEST_NATS_URL");
                Self {
                    broker: Arc::new(broker),
                    stream: Some(stream),
                    kind,
                    log,
                }
            }
        }
    }

    /// Points a service's `config` at this broker.
    pub fn configure(&self, config: &mut Config) {
        config.event_log = self.log.clone();
        if let Some(stream) = &self.stream {
            let url = format!("{}/{}", stream.url.trim_end_matches('/'), stream.name);
            config.nats_url = Some(url::Url::parse(&url).expect("a NATS URL"));
        }
    }

    /// Publishes `envelope` as its producer's relay would.
    pub async fn publish(&self, envelope: &Envelope) {
        self.broker.publish(envelope).await.expect("publish");
    }
}

/// One test's world: a directory, an identity (its own event log, so its
/// events never reach notifications: tests publish what they need), a
/// database engine for notifications and a broker.
pub struct World {
    pub http: reqwest::Client,
    pub engine: Engine,
    pub bus: Bus,
    pub identity: Running,
    pub dir: TempDir,
    _identity_dir: TempDir,
}

impl World {
    pub async fn new(engine: Engine, broker: BrokerKind) -> Self {
        bazaar_platform::telemetry::init_for_tests();
        let dir = tempfile::tempdir().expect("temporary directory");
        let identity_dir = tempfile::tempdir().expect("temporary directory");
        let identity = bazaar_testkit::identity(identity_dir.path()).await;
        let bus = Bus::open(broker, dir.path()).await;
        Self {
            http: reqwest::Client::new(),
            engine,
            bus,
            identity,
            dir,
            _identity_dir: identity_dir,
        }
    }

    /// `engine/broker`, for assertion messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.engine.name(), self.bus.kind.name())
    }

    /// The configuration of notifications instance `instance` in this
    /// world: replicas share the database, the data dir and the broker.
    pub fn config(&self, instance: &str) -> Config {
        let mut config = bazaar_testkit::config("notifications", self.dir.path(), &self.engine);
        config.instance = instance.to_owned();
        config.shutdown_timeout = Duration::from_secs(1);
        self.bus.configure(&mut config);
        bazaar_testkit::upstream(&mut config, "identity", &self.identity);
        config
    }

    /// Where `.eml` files are written.
    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("notifications").join("mail")
    }

    /// Starts instance `notifications-0` with the test settings.
    pub async fn start(&self) -> Running {
        self.start_with("notifications-0", settings()).await
    }

    /// Starts instance `instance` with `settings`.
    pub async fn start_with(&self, instance: &str, settings: Settings) -> Running {
        SETTINGS
            .scope(
                settings,
                bazaar_testkit::start::<Tuned>(self.config(instance)),
            )
            .await
    }

    /// A signed-in user of `role`.
    pub async fn user(&self, role: &str) -> User {
        bazaar_testkit::user(&self.http, &self.identity, role).await
    }
}

/// Notifications in a runtime of its own, so it can die as a killed
/// process does: every task (server, relay, subscriptions, mail worker)
/// stops at once, whatever it was doing, and its connections drop.
pub struct Killable {
    pub base: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Killable {
    pub async fn start(config: Config, settings: Settings) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let base = runtime
            .spawn(async move {
                let server = SETTINGS
                    .scope(settings, Server::build::<Tuned>(config))
                    .await
                    .unwrap_or_else(|e| panic!("notifications builds: {e:#}"));
                let base = format!("http://{}", server.local_addr());
                tokio::spawn(server.run_until(std::future::pending()));
                base
            })
            .await
            .expect("started");
        Self {
            base,
            runtime: Some(runtime),
        }
    }

    /// Kills it.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Killable {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

// ---- the events other services publish ----

fn envelope<E: Event>(service: &str, subject: Uuid, event: &E) -> Envelope {
    Envelope::new(service, Some(&subject.to_string()), event).expect("an envelope")
}

pub fn registered(user: &User, name: &str) -> Envelope {
    envelope(
        "identity",
        user.uuid(),
        &UserRegistered {
            user_id: user.uuid(),
            email: user.email.clone(),
            name: name.to_owned(),
            role: Role::Customer,
        },
    )
}

pub fn followed(follower: Uuid, seller: Uuid) -> Envelope {
    envelope(
        "identity",
        seller,
        &SellerFollowed {
            follower_id: follower,
            seller_id: seller,
        },
    )
}

pub fn unfollowed(follower: Uuid, seller: Uuid) -> Envelope {
    envelope(
        "identity",
        seller,
        &SellerUnfollowed {
            follower_id: follower,
            seller_id: seller,
        },
    )
}

pub fn product_created(product: Uuid, seller: Uuid, title: &str) -> Envelope {
    envelope(
        "catalog",
        product,
        &ProductCreated {
            product_id: product,
            seller_id: seller,
            title: title.to_owned(),
            price_amount: 2999,
            currency: "EUR".to_owned(),
            category: "home-kitchen".to_owned(),
            initial_stock: 10,
        },
    )
}

pub fn stock_low(product: Uuid, seller: Uuid, available: i64) -> Envelope {
    envelope(
        "inventory",
        product,
        &StockLow {
            product_id: product,
            seller_id: seller,
            available,
        },
    )
}

pub fn confirmed(order: Uuid, user: Uuid) -> Envelope {
    envelope(
        "orders",
        order,
        &OrderConfirmed {
            order_id: order,
            user_id: user,
            items: vec![OrderLine {
                product_id: Uuid::now_v7(),
                seller_id: Uuid::now_v7(),
                title: "Cast iron teapot".to_owned(),
                quantity: 2,
                unit_price: Money {
                    amount: 2450,
                    currency: "EUR".to_owned(),
                },
            }],
            total: Money {
                amount: 4900,
                currency: "EUR".to_owned(),
            },
        },
    )
}

pub fn cancelled(order: Uuid, user: Uuid, reason: &str) -> Envelope {
    envelope(
        "orders",
        order,
        &OrderCancelled {
            order_id: order,
            user_id: user,
            reason_code: "card_declined".to_owned(),
            reason: reason.to_owned(),
        },
    )
}

// ---- the feed, as a client reads it ----

/// One page of `user`'s feed at `base`.
pub async fn feed(http: &reqwest::Client, base: &str, user: &User, query: &str) -> Value {
    let res = http
        .get(format!("{base}/api/v1/notifications{query}"))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("GET /api/v1/notifications");
    assert_eq!(res.status(), 200, "GET /api/v1/notifications{query}");
    res.json().await.expect("a page")
}

/// Every notification of `user` (up to 1000), newest first.
pub async fn all(http: &reqwest::Client, base: &str, user: &User) -> Vec<Value> {
    let mut items = Vec::new();
    for page in 1..=10 {
        let body = feed(http, base, user, &format!("?limit=100&page={page}")).await;
        let got = body["items"].as_array().expect("items").clone();
        let done = got.len() < 100;
        items.extend(got);
        if done {
            break;
        }
    }
    items
}

/// Polls `user`'s feed until `done` holds for it; panics naming `what`
/// after `patience`.
pub async fn wait_for(
    http: &reqwest::Client,
    base: &str,
    user: &User,
    what: &str,
    patience: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let items = all(http, base, user).await;
        if done(&items) {
            return items;
        }
        assert!(
            started.elapsed() < patience,
            "{what}: not within {patience:?}; the feed has {items:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The notifications of `items` of `kind`.
pub fn of_kind<'a>(items: &'a [Value], kind: &str) -> Vec<&'a Value> {
    items.iter().filter(|i| i["kind"] == kind).collect()
}

// ---- Server-Sent Events ----

pub use bazaar_testkit::Open;

/// Opens `user`'s stream at `url` as `how` says (the response, when it is
/// not 200), past the `: connected` comment the service sends before
/// anything else.
pub async fn connect(
    http: &reqwest::Client,
    url: &str,
    how: Open<'_>,
) -> Result<Sse, reqwest::Response> {
    let mut sse = Sse::open(http, url, how).await?;
    let first = sse
        .frame(Duration::from_secs(10))
        .await
        .expect("the stream's first frame");
    assert_eq!(first.comments, ["connected"], "{first:?}");
    Ok(sse)
}
