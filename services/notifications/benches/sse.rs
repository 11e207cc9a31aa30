//! From an event published to a notification on a client's stream, end to
//! end, for each broker.
//!
//! Each run is what the fleet does: an identity for tokens, notifications
//! (SQLite) consuming from the broker, and a client holding
//! `GET /api/v1/notifications/stream` open — directly, or through a real
//! gateway. The benchmark publishes `orders.order.confirmed` events as
//! orders' relay would (its own broker handle, as another process), at a
//! fixed rate, and measures from just before each publish until the
//! client has read the notification's event: the consumer group's pick-up,
//! the handler's transaction (notification, live event and e-mail in the
//! outbox), the relay, the instance's own live consumer group, the hub and
//! the HTTP stream. p50, p90 and p99.
//!
//! `cargo bench -p bazaar-notifications --bench sse [-- --quick]`; NATS
//! runs when `BAZAAR_BENCH_NATS_URL` or `BAZAAR_TEST_NATS_URL` is set.
//! `BAZAAR_BENCH_QUICK=1` is the same as `--quick`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bazaar_bus::embedded::EmbeddedLog;
use bazaar_bus::nats::NatsBroker;
use bazaar_bus::{Broker, Envelope};
use bazaar_events::identity::{Role, UserRegistered};
use bazaar_events::orders::{Money, OrderConfirmed, OrderLine};
use bazaar_notifications::Notifications;
use bazaar_testkit::Engine;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use uuid::Uuid;

/// How much to measure.
#[derive(Clone, Copy)]
struct Plan {
    /// Events per second.
    rate: u32,
    /// Events measured.
    events: usize,
}

const FULL: Plan = Plan {
    rate: 50,
    events: 500,
};
const QUICK: Plan = Plan {
    rate: 50,
    events: 100,
};
/// Events sent first and not measured: connections, consumer groups and
/// SQLite caches are set up by then.
const WARM_UP: usize = 20;
/// A run that has not seen every event by then has lost some.
const PATIENCE: Duration = Duration::from_secs(60);

/// What one run measured.
struct Measured {
    events: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

/// Which broker, and whether the client goes through the gateway.
#[derive(Clone)]
enum Path {
    Embedded { gateway: bool },
    Nats { url: String },
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("BAZAAR_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let plan = if quick { QUICK } else { FULL };
    let nats_url = std::env::var("BAZAAR_BENCH_NATS_URL")
        .or_else(|_| std::env::var("BAZAAR_TEST_NATS_URL"))
        .ok()
        .filter(|u| !u.is_empty());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(plan, nats_url))
}

async fn run(plan: Plan, nats_url: Option<String>) -> anyhow::Result<()> {
    println!(
        "event published -> notification on the SSE stream: {} events at {}/s per path (after {WARM_UP} not measured)",
        plan.events, plan.rate
    );
    let mut rows: Vec<(&str, Measured)> = Vec::new();
    println!("running: embedded log, client on notifications ...");
    rows.push((
        "embedded log, direct",
        measure(Path::Embedded { gateway: false }, plan).await?,
    ));
    println!("running: embedded log, client through the gateway ...");
    rows.push((
        "embedded log, gateway",
        measure(Path::Embedded { gateway: true }, plan).await?,
    ));
    match nats_url {
        None => println!(
            "NATS skipped: set BAZAAR_BENCH_NATS_URL (or BAZAAR_TEST_NATS_URL) to include it"
        ),
        Some(url) => {
            println!("running: NATS JetStream, client on notifications ...");
            rows.push((
                "NATS JetStream, direct",
                measure(Path::Nats { url }, plan).await?,
            ));
        }
    }
    print_table(&rows);
    Ok(())
}

/// One path, from a fresh directory (and a NATS stream of its own).
async fn measure(path: Path, plan: Plan) -> anyhow::Result<Measured> {
    bazaar_platform::telemetry::init_for_tests();
    let dir = tempfile::tempdir()?;
    let identity_dir = tempfile::tempdir()?;
    let identity = bazaar_testkit::identity(identity_dir.path()).await;
    let mut config = bazaar_testkit::config("notifications", dir.path(), &Engine::Sqlite);
    bazaar_testkit::upstream(&mut config, "identity", &identity);
    let log = bazaar_testkit::event_log(dir.path());
    let stream = format!("BENCH{}", Uuid::now_v7().simple()).to_uppercase();
    let broker: Arc<dyn Broker> = match &path {
        Path::Embedded { .. } => Arc::new(EmbeddedLog::open(&log).await?),
        Path::Nats { url } => {
            config.nats_url = Some(url::Url::parse(&format!(
                "{}/{stream}",
                url.trim_end_matches('/')
            ))?);
            Arc::new(NatsBroker::connect(url, &stream).await?)
        }
    };
    let notifications = bazaar_testkit::start::<Notifications>(config).await;
    let gateway = match &path {
        Path::Embedded { gateway: true } => {
            let mut config = bazaar_testkit::config("gateway", dir.path(), &Engine::Sqlite);
            bazaar_testkit::upstream(&mut config, "identity", &identity);
            bazaar_testkit::upstream(&mut config, "notifications", &notifications);
            Some(bazaar_testkit::start::<bazaar_gateway::Gateway>(config).await)
        }
        _ => None,
    };
    let front = gateway.as_ref().unwrap_or(&notifications);
    let http = reqwest::Client::new();
    let user = bazaar_testkit::user(&http, &identity, "customer").await;
    broker
        .publish(&Envelope::new(
            "identity",
            Some(&user.id),
            &UserRegistered {
                user_id: user.uuid(),
                email: user.email.clone(),
                name: "Bench".to_owned(),
                role: Role::Customer,
            },
        )?)
        .await?;

    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let reader = tokio::spawn(read_stream(
        http.clone(),
        front.url("/api/v1/notifications/stream"),
        user.token.clone(),
        seen_tx,
    ));
    // The reader says it is connected with the stream's first frame.
    let (first, _) = tokio::time::timeout(PATIENCE, seen_rx.recv())
        .await
        .context("the stream did not open")?
        .context("the stream ended")?;
    if first != "connected" {
        bail!("unexpected first frame {first:?}");
    }

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let total = WARM_UP + plan.events;
    let publisher = {
        let broker = broker.clone();
        let sent = sent.clone();
        let user = user.uuid();
        let period = Duration::from_secs(1) / plan.rate;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            for _ in 0..total {
                tick.tick().await;
                let order = Uuid::now_v7();
                let event =
                    Envelope::new("orders", Some(&order.to_string()), &confirmed(order, user))?;
                sent.lock()
                    .expect("not poisoned")
                    .insert(format!("/orders/{order}"), Instant::now());
                broker.publish(&event).await?;
            }
            anyhow::Ok(())
        })
    };

    let mut latencies = Vec::with_capacity(plan.events);
    let mut received = 0;
    let started = Instant::now();
    while received < total {
        let left = PATIENCE.saturating_sub(started.elapsed());
        let (link, at) = tokio::time::timeout(left, seen_rx.recv())
            .await
            .with_context(|| format!("only {received} of {total} notifications arrived"))?
            .context("the stream ended")?;
        if !link.starts_with("/orders/") {
            // The welcome of the user registered above.
            continue;
        }
        let Some(sent_at) = sent.lock().expect("not poisoned").remove(&link) else {
            bail!("a notification nobody published: {link}");
        };
        received += 1;
        if received > WARM_UP {
            latencies.push(at.duration_since(sent_at));
        }
    }
    publisher.await??;
    reader.abort();
    if let Some(gateway) = gateway {
        gateway.stop().await;
    }
    notifications.stop().await;
    identity.stop().await;
    if let Path::Nats { url } = &path
        && let Ok(client) = async_nats::connect(url).await
    {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&stream)
            .await;
    }
    let (p50, p90, p99) = percentiles(&mut latencies);
    Ok(Measured {
        events: latencies.len(),
        p50,
        p90,
        p99,
        max: latencies.last().copied().unwrap_or_default(),
    })
}

fn confirmed(order: Uuid, user: Uuid) -> OrderConfirmed {
    OrderConfirmed {
        order_id: order,
        user_id: user,
        items: vec![OrderLine {
            product_id: Uuid::now_v7(),
            seller_id: Uuid::now_v7(),
            title: "Cast iron teapot".to_owned(),
            quantity: 1,
            unit_price: Money {
                amount: 2450,
                currency: "EUR".to_owned(),
            },
        }],
        total: Money {
            amount: 2450,
            currency: "EUR".to_owned(),
        },
    }
}

/// Reads the stream, reporting `connected` for its first frame, then the
/// link of each notification with the instant it was read.
async fn read_stream(
    http: reqwest::Client,
    url: String,
    token: String,
    seen: mpsc::UnboundedSender<(String, Instant)>,
) -> anyhow::Result<()> {
    let response = http.get(&url).bearer_auth(&token).send().await?;
    if response.status() != 200 {
        bail!("the stream answered {}", response.status());
    }
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    while let Some(chunk) = body.next().await {
        buffer.push_str(std::str::from_utf8(&chunk?)?);
        while let Some(end) = buffer.find("\n\n") {
            let now = Instant::now();
            let block: String = buffer.drain(..end + 2).collect();
            if block.starts_with(": connected") {
                let _ = seen.send(("connected".to_owned(), now));
                continue;
            }
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let value: serde_json::Value = serde_json::from_str(data)?;
            if let Some(link) = value["link"].as_str() {
                let _ = seen.send((link.to_owned(), now));
            }
        }
    }
    Ok(())
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    }
    samples.sort_unstable();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.50), at(0.90), at(0.99))
}

fn print_table(rows: &[(&str, Measured)]) {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    println!();
    println!(
        "{:<24} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "path", "events", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (name, m) in rows {
        println!(
            "{name:<24} {:>7} {:>9} {:>9} {:>9} {:>9}",
            m.events,
            ms(m.p50),
            ms(m.p90),
            ms(m.p99),
            ms(m.max)
        );
    }
}
