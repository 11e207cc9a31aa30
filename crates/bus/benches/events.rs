//! The event path, measured end to end for each broker adapter, next to the
//! ceiling of raw NATS JetStream.
//!
//! Every adapter run goes through what a service does: a state change's
//! transaction appends to the outbox of a producer database (SQLite, as the
//! platform opens it), a running `outbox::Relay` publishes, a running
//! `subscription::run` in a separate consumer database records each event
//! in its inbox and calls a handler that stamps the instant it got the
//! event. Producer and consumer hold separate broker handles, as two
//! processes would (so the embedded log's consumer polls the file instead of
//! being woken in-process).
//!
//! * latency: events produced at a fixed rate; from the start of the
//!   producer's transaction to the handler, p50 and p99;
//! * throughput: a burst of N events committed in one transaction; N over
//!   the time from the commit until the handler saw the last one.
//!
//! The ceiling is async-nats alone, with the same message size: publish
//! and await the stream's ack, then a pull consumer loop that acks.
//!
//! `cargo bench -p bazaar-bus --bench events [-- --quick]`; NATS runs when
//! `BAZAAR_BENCH_NATS_URL` or `BAZAAR_TEST_NATS_URL` is set.
//! `BAZAAR_BENCH_QUICK=1` is the same as `--quick`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream;
use async_trait::async_trait;
use bazaar_bus::embedded::EmbeddedLog;
use bazaar_bus::metrics::BusMetrics;
use bazaar_bus::nats::NatsBroker;
use bazaar_bus::outbox::{self, Relay, RelayOptions};
use bazaar_bus::subscription::{self, Handler, Subscription};
use bazaar_bus::{Broker, Envelope, Event, schema};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Executor as _, Transaction};
use tokio::sync::{mpsc, oneshot};

/// How much to measure.
#[derive(Clone, Copy)]
struct Plan {
    /// Events per second in the latency phase.
    rate: u32,
    /// Length of the latency phase.
    seconds: u32,
    /// Events in the throughput burst.
    burst: usize,
}

const FULL: Plan = Plan {
    rate: 200,
    seconds: 5,
    burst: 5_000,
};
const QUICK: Plan = Plan {
    rate: 200,
    seconds: 2,
    burst: 1_000,
};
/// Events sent first and not measured: connections, durable consumers and
/// SQLite caches are set up by then.
const WARM_UP: usize = 20;
/// A run that has not seen every event by then has lost some.
const PATIENCE: Duration = Duration::from_secs(60);

/// The benchmark's payload; its padding makes an envelope of a typical size.
#[derive(Serialize, Deserialize)]
struct Sample {
    n: u64,
    note: String,
}

impl Event for Sample {
    const TOPIC: &'static str = "bench.sample.created";
    const VERSION: u32 = 1;
}

fn sample(n: u64) -> Sample {
    Sample {
        n,
        note: "x".repeat(200),
    }
}

/// The handler: tells the benchmark when each event reached it.
struct Stamp(mpsc::UnboundedSender<(String, Instant)>);

#[async_trait]
impl Handler for Stamp {
    async fn handle(&self, _tx: &mut Transaction<'_, Any>, event: &Envelope) -> anyhow::Result<()> {
        let _ = self.0.send((event.id.clone(), Instant::now()));
        Ok(())
    }
}

/// What one run measured.
struct Measured {
    p50: Duration,
    p99: Duration,
    events_per_sec: f64,
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("BAZAAR_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let plan = if quick { QUICK } else { FULL };
    let nats_url = std::env::var("BAZAAR_BENCH_NATS_URL")
        .or_else(|_| std::env::var("BAZAAR_TEST_NATS_URL"))
        .ok();
    sqlx::any::install_default_drivers();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(plan, nats_url))
}

async fn run(plan: Plan, nats_url: Option<String>) -> anyhow::Result<()> {
    let size = Envelope::new("bench", Some("s0"), &sample(0))?
        .to_json()
        .len();
    println!(
        "event path: {} events at {}/s for latency, a burst of {} for throughput, envelopes of {size} bytes",
        plan.rate * plan.seconds,
        plan.rate,
        plan.burst
    );
    let mut rows: Vec<(&str, Measured)> = Vec::new();

    let dir = tempfile::tempdir()?;
    let log = dir.path().join("events.db");
    let producer_side: Arc<dyn Broker> = Arc::new(EmbeddedLog::open(&log).await?);
    let consumer_side: Arc<dyn Broker> = Arc::new(EmbeddedLog::open(&log).await?);
    println!("running: embedded log ...");
    rows.push((
        "embedded log (SQLite)",
        through_services(dir.path(), producer_side, consumer_side, plan).await?,
    ));

    let raw = match &nats_url {
        None => {
            println!(
                "NATS skipped: set BAZAAR_BENCH_NATS_URL (or BAZAAR_TEST_NATS_URL) to include it"
            );
            None
        }
        Some(url) => {
            let stream = format!("BENCH{}", uuid::Uuid::now_v7().simple()).to_uppercase();
            let dir = tempfile::tempdir()?;
            let producer_side: Arc<dyn Broker> = Arc::new(NatsBroker::connect(url, &stream).await?);
            let consumer_side: Arc<dyn Broker> = Arc::new(NatsBroker::connect(url, &stream).await?);
            println!("running: NATS JetStream adapter ...");
            let measured = through_services(dir.path(), producer_side, consumer_side, plan).await;
            delete_stream(url, &stream).await;
            rows.push(("NATS JetStream adapter", measured?));
            println!("running: raw async-nats ...");
            Some(raw_nats(url, plan, size).await?)
        }
    };

    print_table(&rows, raw.as_ref());
    Ok(())
}

/// Opens a service database as the platform does: WAL, a busy timeout,
/// `synchronous = NORMAL`.
async fn service_db(path: &Path) -> anyhow::Result<AnyPool> {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL")
                    .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    schema::ensure(&pool).await?;
    Ok(pool)
}

/// A running relay and how to stop it.
struct RunningRelay {
    wake: Arc<tokio::sync::Notify>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start_relay(pool: &AnyPool, broker: Arc<dyn Broker>) -> RunningRelay {
    let relay = Relay::new(
        pool.clone(),
        broker,
        BusMetrics::default(),
        RelayOptions::default(),
    );
    let wake = relay.waker();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async move {
        let _ = stopped.await;
    }));
    RunningRelay { wake, stop, task }
}

impl RunningRelay {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// One event in its own transaction, as a request handler would commit it;
/// then the relay is woken, as the platform does after a commit.
async fn produce(pool: &AnyPool, wake: &tokio::sync::Notify, n: u64) -> anyhow::Result<String> {
    let mut tx = pool.begin().await?;
    let event = outbox::append(&mut tx, "bench", Some(&format!("s{}", n % 16)), &sample(n)).await?;
    tx.commit().await?;
    wake.notify_one();
    Ok(event.id)
}

/// Waits until every id of `expected` was stamped; returns the stamps.
async fn stamped(
    stamps: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    expected: impl IntoIterator<Item = String>,
) -> anyhow::Result<HashMap<String, Instant>> {
    let mut wanted: HashMap<String, Option<Instant>> =
        expected.into_iter().map(|id| (id, None)).collect();
    let mut missing = wanted.len();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while missing > 0 {
        let Ok(Some((id, at))) = tokio::time::timeout_at(deadline, stamps.recv()).await else {
            bail!(
                "{missing} of {} events never reached the handler",
                wanted.len()
            );
        };
        if let Some(slot @ None) = wanted.get_mut(&id) {
            *slot = Some(at);
            missing -= 1;
        }
    }
    Ok(wanted
        .into_iter()
        .filter_map(|(id, at)| Some((id, at?)))
        .collect())
}

/// Latency at a fixed rate, then the throughput of a burst, through the
/// outbox, a relay, `producer_side`, `consumer_side` and a subscription.
async fn through_services(
    dir: &Path,
    producer_side: Arc<dyn Broker>,
    consumer_side: Arc<dyn Broker>,
    plan: Plan,
) -> anyhow::Result<Measured> {
    let producer = service_db(&dir.join("producer.db")).await?;
    let consumer = service_db(&dir.join("consumer.db")).await?;
    let (stamp, mut stamps) = mpsc::unbounded_channel();
    let sub = Subscription::new("bench", &[Sample::TOPIC], Stamp(stamp));
    let (stop_sub, sub_stopped) = oneshot::channel::<()>();
    let runner = tokio::spawn(subscription::run(
        sub,
        consumer,
        consumer_side,
        BusMetrics::default(),
        async move {
            let _ = sub_stopped.await;
        },
    ));
    let relay = start_relay(&producer, producer_side.clone());

    let mut warm = Vec::new();
    for n in 0..WARM_UP {
        warm.push(produce(&producer, &relay.wake, n as u64).await?);
    }
    stamped(&mut stamps, warm).await.context("warm-up")?;

    // Latency at a fixed rate. A late tick is caught up at once (the
    // interval's default), so the rate holds on average.
    let total = u64::from(plan.rate * plan.seconds);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / plan.rate);
    let mut started = Vec::with_capacity(total as usize);
    for n in 0..total {
        tick.tick().await;
        let t0 = Instant::now();
        started.push((produce(&producer, &relay.wake, n).await?, t0));
    }
    let handled = stamped(&mut stamps, started.iter().map(|(id, _)| id.clone()))
        .await
        .context("latency phase")?;
    let mut latencies: Vec<Duration> = started
        .iter()
        .map(|(id, t0)| handled[id].duration_since(*t0))
        .collect();
    let (p50, p99) = percentiles(&mut latencies);

    // Throughput: the whole burst commits in one transaction, so the
    // running relay finds all of it at once; the clock runs from the commit
    // to the last event handled.
    let mut tx = producer.begin().await?;
    let mut burst = Vec::with_capacity(plan.burst);
    for n in 0..plan.burst as u64 {
        let event =
            outbox::append(&mut tx, "bench", Some(&format!("s{}", n % 16)), &sample(n)).await?;
        burst.push(event.id);
    }
    let start = Instant::now();
    tx.commit().await?;
    relay.wake.notify_one();
    let handled = stamped(&mut stamps, burst)
        .await
        .context("throughput phase")?;
    let last = handled.values().max().copied().unwrap_or(start);
    let events_per_sec = plan.burst as f64 / last.duration_since(start).as_secs_f64();

    relay.stop().await;
    let _ = stop_sub.send(());
    let _ = runner.await;
    Ok(Measured {
        p50,
        p99,
        events_per_sec,
    })
}

/// async-nats alone: publish with an awaited ack, a pull consumer loop that
/// acks, messages of `size` bytes.
async fn raw_nats(url: &str, plan: Plan, size: usize) -> anyhow::Result<Measured> {
    let name = format!("RAWBENCH{}", uuid::Uuid::now_v7().simple()).to_uppercase();
    let subject = format!("{}.bench.sample.created", name.to_ascii_lowercase());
    let publisher = jetstream::new(async_nats::connect(url).await?);
    let receiver = jetstream::new(async_nats::connect(url).await?);
    publisher
        .create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{}.>", name.to_ascii_lowercase())],
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let consumer: jetstream::consumer::PullConsumer = receiver
        .get_stream(&name)
        .await?
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let (stamp, mut stamps) = mpsc::unbounded_channel();
    let mut messages = consumer.messages().await?;
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            let at = Instant::now();
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            if message.ack().await.is_err() {
                break;
            }
            let _ = stamp.send((id, at));
        }
    });
    let raw_subject: async_nats::Subject = subject.as_str().into();
    let body = vec![b'x'; size];
    let publish = |n: u64| {
        let publisher = publisher.clone();
        let subject = raw_subject.clone();
        let body = body.clone();
        async move {
            let mut headers = async_nats::HeaderMap::new();
            let id = n.to_string();
            headers.insert("Nats-Msg-Id", id.as_str());
            publisher
                .publish_with_headers(subject, headers, body.into())
                .await?
                .await?;
            anyhow::Ok(id)
        }
    };

    let mut warm = Vec::new();
    for n in 0..WARM_UP as u64 {
        warm.push(publish(1_000_000 + n).await?);
    }
    stamped(&mut stamps, warm).await.context("raw warm-up")?;

    let total = u64::from(plan.rate * plan.seconds);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / plan.rate);
    let mut started = Vec::with_capacity(total as usize);
    for n in 0..total {
        tick.tick().await;
        let t0 = Instant::now();
        started.push((publish(n).await?, t0));
    }
    let handled = stamped(&mut stamps, started.iter().map(|(id, _)| id.clone()))
        .await
        .context("raw latency")?;
    let mut latencies: Vec<Duration> = started
        .iter()
        .map(|(id, t0)| handled[id].duration_since(*t0))
        .collect();
    let (p50, p99) = percentiles(&mut latencies);

    // The burst as the relay sends it: one publish after the other, each
    // ack awaited, while the consumer loop runs.
    let start = Instant::now();
    let mut burst = Vec::with_capacity(plan.burst);
    for n in 0..plan.burst as u64 {
        burst.push(publish(2_000_000 + n).await?);
    }
    let handled = stamped(&mut stamps, burst)
        .await
        .context("raw throughput")?;
    let last = handled.values().max().copied().unwrap_or(start);
    let events_per_sec = plan.burst as f64 / last.duration_since(start).as_secs_f64();

    reader.abort();
    let _ = publisher.delete_stream(&name).await;
    Ok(Measured {
        p50,
        p99,
        events_per_sec,
    })
}

/// Benchmark streams are not left on the server.
async fn delete_stream(url: &str, name: &str) {
    if let Ok(client) = async_nats::connect(url).await {
        let _ = jetstream::new(client).delete_stream(name).await;
    }
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    samples.sort_unstable();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.50), at(0.99))
}

fn print_table(rows: &[(&str, Measured)], raw: Option<&Measured>) {
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    println!();
    println!(
        "{:<24} {:>9} {:>9} {:>12}   {:>16}",
        "path", "p50 ms", "p99 ms", "events/s", "vs raw NATS"
    );
    let mut all: Vec<(&str, &Measured)> = rows.iter().map(|(n, m)| (*n, m)).collect();
    if let Some(raw) = raw {
        all.push(("raw async-nats (ceiling)", raw));
    }
    for (name, m) in all {
        let ratio = raw.map_or_else(
            || "-".to_owned(),
            |r| {
                format!(
                    "x{:.1} / x{:.1} / {:.0}%",
                    m.p50.as_secs_f64() / r.p50.as_secs_f64(),
                    m.p99.as_secs_f64() / r.p99.as_secs_f64(),
                    100.0 * m.events_per_sec / r.events_per_sec
                )
            },
        );
        println!(
            "{name:<24} {:>9} {:>9} {:>12.0}   {ratio:>16}",
            ms(m.p50),
            ms(m.p99),
            m.events_per_sec
        );
    }
    if raw.is_some() {
        println!("(vs raw NATS: p50 latency ratio / p99 latency ratio / share of raw throughput)");
    }
}
