//! What the contract tests stand on: the adapters under test, service
//! databases, and a payload type.

use std::sync::Arc;
use std::time::Duration;

use bazaar_bus::embedded::EmbeddedLog;
use bazaar_bus::nats::NatsBroker;
use bazaar_bus::{Broker, Consumer, Envelope, Event, outbox, schema};
use bazaar_testkit::NatsStream;
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

/// The test payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub n: u32,
}

impl Event for Item {
    const TOPIC: &'static str = "test.item.changed";
    const VERSION: u32 = 1;
}

impl Item {
    pub fn topic() -> String {
        Self::TOPIC.to_owned()
    }
    pub fn envelope(subject: &str, n: u32) -> Envelope {
        Envelope::new("test", Some(subject), &Item { n }).unwrap()
    }
}

/// One adapter under test, with a fresh log of its own.
pub struct Under {
    pub name: &'static str,
    pub broker: Arc<dyn Broker>,
    /// The NATS stream to delete afterwards, so test runs leave nothing
    /// behind on a shared server.
    _nats_stream: Option<NatsStream>,
    _dir: tempfile::TempDir,
}

/// How long a delivery stays with a consumer that neither acks nor nacks.
pub const LEASE: Duration = Duration::from_secs(1);

/// The embedded log always; NATS JetStream when `BAZAAR_TEST_NATS_URL` is set.
pub async fn brokers() -> Vec<Under> {
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedLog::open(&dir.path().join("events.db"))
        .await
        .unwrap()
        .with_lease(LEASE);
    let mut all = vec![Under {
        name: "embedded",
        broker: Arc::new(embedded),
        _nats_stream: None,
        _dir: dir,
    }];
    if let Some(url) = bazaar_testkit::nats_url() {
        let stream = NatsStream::new(&url);
        let nats = NatsBroker::connect(&url, &stream.name)
            .await
            .unwrap()
            .with_ack_wait(LEASE);
        all.push(Under {
            name: "nats",
            broker: Arc::new(nats),
            _nats_stream: Some(stream),
            _dir: tempfile::tempdir().unwrap(),
        });
    }
    all
}

/// Receives exactly `n` deliveries (acking them if asked), failing the test
/// if they do not come.
pub async fn receive(consumer: &mut dyn Consumer, n: usize, ack: bool) -> Vec<Envelope> {
    let mut got = Vec::new();
    while got.len() < n {
        let d = consumer
            .next(Duration::from_secs(15))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("only {} of {n} events arrived", got.len()));
        if ack {
            d.acker.ack().await.unwrap();
        }
        got.push(d.envelope);
    }
    got
}

/// A service's own database with the backbone's tables and an `effects`
/// table without a unique constraint (so double handling would show).
pub struct ServiceDb {
    pub name: &'static str,
    pub pool: AnyPool,
    _dir: Option<tempfile::TempDir>,
}

const EFFECTS: &str = "CREATE TABLE effects (event_id TEXT NOT NULL)";

/// SQLite always; PostgreSQL too when `BAZAAR_TEST_POSTGRES_URL` is set.
pub async fn service_dbs() -> Vec<ServiceDb> {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("svc.db").display());
    // As the platform opens a service's SQLite database: WAL, a busy timeout.
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(
                    &mut *conn,
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000",
                )
                .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .unwrap();
    let mut all = vec![ServiceDb {
        name: "sqlite",
        pool,
        _dir: Some(dir),
    }];
    if let Ok(base) = std::env::var("BAZAAR_TEST_POSTGRES_URL") {
        let name = format!("bazaar_test_{}", uuid::Uuid::now_v7().simple());
        let admin = AnyPool::connect(&base).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let mut url = url::Url::parse(&base).unwrap();
        url.set_path(&format!("/{name}"));
        let pool = AnyPool::connect(url.as_str()).await.unwrap();
        all.push(ServiceDb {
            name: "postgres",
            pool,
            _dir: None,
        });
    } else {
        eprintln!("PostgreSQL part skipped: BAZAAR_TEST_POSTGRES_URL is unset");
    }
    for db in &all {
        schema::ensure(&db.pool).await.unwrap();
        sqlx::query(EFFECTS).execute(&db.pool).await.unwrap();
        sqlx::query("CREATE TABLE state (n BIGINT NOT NULL)")
            .execute(&db.pool)
            .await
            .unwrap();
    }
    all
}

impl ServiceDb {
    /// A state change and its event, in one transaction; returns the event id.
    pub async fn produce(&self, n: u32) -> String {
        let mut tx = self.pool.begin().await.unwrap();
        sqlx::query("INSERT INTO state (n) VALUES ($1)")
            .bind(i64::from(n))
            .execute(&mut *tx)
            .await
            .unwrap();
        let e = outbox::append(&mut tx, "test", Some(&format!("s{}", n % 4)), &Item { n })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        e.id
    }

    /// How many times the event's effect was recorded.
    pub async fn effects(&self, id: &str) -> i64 {
        sqlx::query("SELECT COUNT(*) FROM effects WHERE event_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
            .get(0)
    }

    /// How many distinct events have effects.
    pub async fn distinct_effects(&self) -> i64 {
        sqlx::query("SELECT COUNT(DISTINCT event_id) FROM effects")
            .fetch_one(&self.pool)
            .await
            .unwrap()
            .get(0)
    }

    /// Events committed and not yet published.
    pub async fn outbox_len(&self) -> i64 {
        sqlx::query("SELECT COUNT(*) FROM bazaar_outbox")
            .fetch_one(&self.pool)
            .await
            .unwrap()
            .get(0)
    }
}

pub use bazaar_testkit::{free_port, nats_server_binary, start_nats};

/// A subscription running in a task of its own until [`Running::stop`].
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Runs `sub` on `pool` and `broker` (as a service's server would).
    pub fn start(
        sub: bazaar_bus::subscription::Subscription,
        pool: &AnyPool,
        broker: &Arc<dyn Broker>,
        metrics: bazaar_bus::metrics::BusMetrics,
    ) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bazaar_bus::subscription::run(
            sub,
            pool.clone(),
            broker.clone(),
            metrics,
            async move {
                let _ = stopped.await;
            },
        ));
        Self { stop, task }
    }

    /// Stops the subscription and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("the subscription task");
    }
}
