//! Starting payments (and an identity for its tokens) on port 0 against a
//! fresh database, calling it as orders and buyers would, and reading what
//! it recorded and published.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bazaar_bus::{Envelope, Event as _};
use bazaar_events::payments::{
    PaymentAuthorized, PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentVoided,
};
use bazaar_platform::config::Config;
use bazaar_platform::db::{Db, Migrations};
use bazaar_platform::server::{Context, Routes, Service};
use bazaar_proto::payments::v1 as pb;
use bazaar_proto::payments::v1::payments_client::PaymentsClient;
use bazaar_testkit::{Engine, Running, User};
use sqlx::Row as _;
use tempfile::TempDir;
use tonic::transport::Channel;
use uuid::Uuid;

/// Payments whose simulated processor takes `LATENCY_MS` per call and fails
/// `FAILURE_PERMILLE` of them, whatever the environment says.
pub struct Tuned<const LATENCY_MS: u64, const FAILURE_PERMILLE: u32>;

impl<const LATENCY_MS: u64, const FAILURE_PERMILLE: u32> Service
    for Tuned<LATENCY_MS, FAILURE_PERMILLE>
{
    const NAME: &'static str = "payments";
    type Settings = ();

    fn migrations() -> Option<&'static Migrations> {
        bazaar_payments::Payments::migrations()
    }

    async fn build(ctx: Context) -> anyhow::Result<Routes> {
        let settings = bazaar_payments::Settings {
            processor_latency: Duration::from_millis(LATENCY_MS),
            processor_failure_rate: f64::from(FAILURE_PERMILLE) / 1000.0,
        };
        bazaar_payments::build(ctx, settings).await
    }
}

/// A processor that answers at once and never fails by chance.
pub type Standard = Tuned<0, 0>;
/// A processor that fails every call.
pub type Broken = Tuned<0, 1000>;

/// The cards of shared/API.md.
pub const APPROVED: &str = "4242424242424242";
pub const DECLINED: &str = "4000000000000002";
pub const NO_FUNDS: &str = "4000000000009995";
pub const FLAKY: &str = "4000000000000119";

/// Every topic payments publishes.
pub const TOPICS: [&str; 5] = [
    PaymentAuthorized::TOPIC,
    PaymentCaptured::TOPIC,
    PaymentVoided::TOPIC,
    PaymentRefunded::TOPIC,
    PaymentDeclined::TOPIC,
];

/// One running payments, with its identity.
pub struct App {
    pub payments: Running,
    pub identity: Running,
    pub grpc: PaymentsClient<Channel>,
    pub http: reqwest::Client,
    pub config: Config,
    pub engine: Engine,
    pub dir: TempDir,
}

/// One standard payments per engine.
pub async fn apps() -> Vec<App> {
    let mut apps = Vec::new();
    for engine in bazaar_testkit::engines() {
        apps.push(spawn::<Standard>(engine).await);
    }
    apps
}

/// A fresh identity and payments `S` on `engine`, sharing an event log.
pub async fn spawn<S: Service>(engine: Engine) -> App {
    logs();
    let dir = tempfile::tempdir().expect("temporary directory");
    let identity = bazaar_testkit::identity(dir.path()).await;
    let mut config = bazaar_testkit::config("payments", dir.path(), &engine);
    bazaar_testkit::upstream(&mut config, "identity", &identity);
    let payments = bazaar_testkit::start::<S>(config.clone()).await;
    let grpc = PaymentsClient::connect(payments.base.clone())
        .await
        .expect("gRPC channel to payments");
    App {
        payments,
        identity,
        grpc,
        http: reqwest::Client::new(),
        config,
        engine,
        dir,
    }
}

/// Everything logged in this test binary, by every test, at TRACE for our
/// crates and sqlx (DEBUG for the HTTP/2 stack), kept in memory for
/// [`crate::secrecy`]; also shown with `TEST_LOG` set.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// All of it so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The binary's log capture, installed as the process-wide subscriber
/// before any service starts (so the platform's test subscriber, which
/// would log nothing, is not).
pub fn logs() -> &'static Logs {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};

    static LOGS: OnceLock<(Logs, opentelemetry_sdk::trace::SdkTracerProvider)> = OnceLock::new();
    let (logs, _) = LOGS.get_or_init(|| {
        let logs = Logs::default();
        // Spans reach OpenTelemetry as in the platform's own subscriber,
        // so events carry the trace of the call that caused them.
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let spans = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("bazaar-payments-tests"))
            .with_filter(LevelFilter::INFO);
        let capture = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer({
                let logs = logs.clone();
                move || logs.clone()
            })
            .with_filter(EnvFilter::new(
                "trace,h2=debug,hyper=debug,hyper_util=debug,tower=debug,reqwest=debug",
            ));
        let show = std::env::var_os("TEST_LOG").map(|_| {
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(EnvFilter::new("debug,h2=info,hyper=info,tower=info"))
        });
        tracing_subscriber::registry()
            .with(spans)
            .with(capture)
            .with(show)
            .try_init()
            .expect("the first subscriber of the test binary");
        (logs, provider)
    });
    logs
}

/// An authorization of `amount` EUR on `number` (good through 2099).
pub fn request(order: Uuid, user: Uuid, amount: i64, number: &str) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        order_id: order.to_string(),
        user_id: user.to_string(),
        amount,
        currency: "EUR".into(),
        card: Some(pb::Card {
            number: number.into(),
            exp_month: 12,
            exp_year: 2099,
            cvc: "123".into(),
        }),
    }
}

impl App {
    /// What this instance's engine is, for assertion messages.
    pub fn on(&self) -> &'static str {
        self.engine.name()
    }

    /// A new customer at identity, signed in.
    pub async fn user(&self) -> User {
        bazaar_testkit::user(&self.http, &self.identity, "customer").await
    }

    /// Another payments `S` on the same database and event log: a replica
    /// with other settings.
    pub async fn replica<S: Service>(&self) -> (Running, PaymentsClient<Channel>) {
        let running = bazaar_testkit::start::<S>(self.config.clone()).await;
        let grpc = PaymentsClient::connect(running.base.clone())
            .await
            .expect("gRPC channel to the replica");
        (running, grpc)
    }

    /// `Authorize(request)`.
    pub async fn authorize_with(
        &self,
        request: pb::AuthorizeRequest,
    ) -> Result<pb::Payment, tonic::Status> {
        self.grpc
            .clone()
            .authorize(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// `Authorize` of `amount` EUR on `number` for `order` of `user`.
    pub async fn authorize(
        &self,
        order: Uuid,
        user: Uuid,
        amount: i64,
        number: &str,
    ) -> Result<pb::Payment, tonic::Status> {
        self.authorize_with(request(order, user, amount, number))
            .await
    }

    /// `Capture(order)`.
    pub async fn capture(&self, order: impl ToString) -> Result<pb::Payment, tonic::Status> {
        self.grpc
            .clone()
            .capture(order_ref(order))
            .await
            .map(tonic::Response::into_inner)
    }

    /// `Void(order)`.
    pub async fn void(&self, order: impl ToString) -> Result<pb::Payment, tonic::Status> {
        self.grpc
            .clone()
            .void(order_ref(order))
            .await
            .map(tonic::Response::into_inner)
    }

    /// `Refund(order)`.
    pub async fn refund(&self, order: impl ToString) -> Result<pb::Payment, tonic::Status> {
        self.grpc
            .clone()
            .refund(order_ref(order))
            .await
            .map(tonic::Response::into_inner)
    }

    /// `GET /api/v1/payments` with `query`, as `user` if any.
    pub async fn list(&self, query: &str, user: Option<&User>) -> reqwest::Response {
        let mut request = self
            .http
            .get(self.payments.url(&format!("/api/v1/payments{query}")));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        request.send().await.expect("GET /api/v1/payments")
    }

    /// The payments database, opened beside the service.
    pub async fn db(&self) -> Db {
        Db::connect(&self.config.database)
            .await
            .expect("the payments database")
    }

    /// Rows of the payments database answering `sql` (a `SELECT COUNT(*)`
    /// with `order` as `$1`).
    pub async fn count(&self, sql: &str, order: Uuid) -> i64 {
        let db = self.db().await;
        let n = sqlx::query(sql)
            .bind(order.to_string())
            .fetch_one(db.pool())
            .await
            .expect("count")
            .get(0);
        db.close().await;
        n
    }

    /// All the rows of `table` in the payments database.
    pub async fn total(&self, table: &str) -> i64 {
        let db = self.db().await;
        let n = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(db.pool())
            .await
            .expect("count")
            .get(0);
        db.close().await;
        n
    }

    /// The ledger rows of `order`'s payment, as their kinds in the order
    /// they were written.
    pub async fn ledger(&self, order: Uuid) -> Vec<String> {
        let db = self.db().await;
        let rows = sqlx::query(
            "SELECT l.kind FROM ledger l JOIN payments p ON p.id = l.payment_id \
             WHERE p.order_id = $1 ORDER BY l.id",
        )
        .bind(order.to_string())
        .fetch_all(db.pool())
        .await
        .expect("ledger rows");
        db.close().await;
        rows.iter().map(|r| r.get::<String, _>(0)).collect()
    }

    /// Every payments event published so far. Made certain by a sentinel:
    /// a new authorization, whose event the relay publishes after every
    /// event committed before it; the sentinel's own event is left out.
    pub async fn published(&self) -> Vec<Envelope> {
        let sentinel = Uuid::now_v7();
        self.authorize(sentinel, Uuid::now_v7(), 1, APPROVED)
            .await
            .expect("the sentinel authorization");
        let sentinel = sentinel.to_string();
        let is_sentinel = |e: &Envelope| e.subject.as_deref() == Some(sentinel.as_str());
        let mut seen = bazaar_testkit::events(&self.config.event_log, &TOPICS, None, |seen| {
            seen.iter().any(is_sentinel)
        })
        .await;
        let Some(at) = seen.iter().position(is_sentinel) else {
            panic!(
                "the sentinel event was not published on {}; saw {seen:?}",
                self.on()
            );
        };
        seen.truncate(at);
        seen
    }

    /// The value of `payments_operations_total` for `op` and `outcome`.
    pub async fn counted(&self, op: &str, outcome: &str) -> f64 {
        counted_at(&self.http, &self.payments.base, op, outcome).await
    }

    /// Stops both servers, draining them.
    pub async fn stop(self) {
        self.stop_keeping_files().await;
    }

    /// Stops both servers, draining them, and hands over their directory
    /// (deleted when dropped) to look at what they left.
    pub async fn stop_keeping_files(self) -> TempDir {
        self.payments.stop().await;
        self.identity.stop().await;
        self.dir
    }
}

/// The value of `payments_operations_total` for `op` and `outcome` in the
/// metrics of the instance at `base` (0 when not counted yet).
pub async fn counted_at(http: &reqwest::Client, base: &str, op: &str, outcome: &str) -> f64 {
    bazaar_testkit::scrape(http, base).await.sum(
        "payments_operations_total",
        &[("op", op), ("outcome", outcome)],
    )
}

fn order_ref(order: impl ToString) -> pb::OrderRef {
    pb::OrderRef {
        order_id: order.to_string(),
    }
}

/// The events of `order` among `events`, as `(topic, data)`.
pub fn of_order(events: &[Envelope], order: Uuid) -> Vec<(String, serde_json::Value)> {
    let subject = order.to_string();
    events
        .iter()
        .filter(|e| e.subject.as_deref() == Some(subject.as_str()))
        .map(|e| (e.topic.clone(), e.data.clone()))
        .collect()
}

/// The state of a payment as the proto enum.
pub fn state(p: &pb::Payment) -> pb::PaymentState {
    p.state()
}
