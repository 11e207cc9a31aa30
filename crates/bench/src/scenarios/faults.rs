//! `faults`: what faults cost the shop's clients, measured from outside.
//!
//! Three runs: the isolation matrix (each service frozen in turn while every
//! public endpoint is asked), then, on a fleet with two catalog replicas,
//! reads while one is frozen and checkouts while random services are killed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::harness::api::{Account, Api};
use crate::harness::fleet::{Fleet, Launch};
use crate::harness::histogram::Histogram;
use crate::harness::proc;
use crate::harness::report::{finish, thousands};

/// The long help of `bazaar bench faults`.
pub const LONG_ABOUT: &str = "\
Measure what faults cost the shop's clients, from outside, through the
gateway (SQLite, the embedded log, the gateway's rate limit off):

0. isolation matrix: on a fleet of one instance per service, each service in
   turn is frozen (SIGSTOP) while every public endpoint (API calls and
   signed-in pages) is asked once; each answer's status and time are
   reported, then whether every endpoint answers 200 again two seconds after
   the service is thawed. Targets: what does not need the frozen service
   answers 200 as fast as usual; what needs it answers a 5xx within its
   deadline; everything answers 200 two seconds after the thaw.

Then on a fleet with two catalog replicas (`--replicas catalog=2`):

1. frozen replica: product reads at a fixed rate while catalog-1 is frozen
   (SIGSTOP) for a while, then thawed. Reported: reads, failed reads, reads
   slower than 1 s, and latency percentiles. Targets: 0 failed, at most 1 %
   over 1 s.
2. chaos: buyers place orders at a fixed rate while a service instance (any
   but the gateway) is SIGKILLed at a fixed interval and the
   launcher restarts it (every instance in turn, each round in a random
   order). Every order is retried with its Idempotency-Key
   until accepted, then followed until it settles. Reported: orders
   accepted, confirmed, cancelled by reason, and the kills. Target: no order
   cancelled for any reason but the card or the stock (the cards are good
   and the stock ample, so: none).";

/// Options of `bazaar bench faults`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Product reads per second in the frozen-replica run
    #[arg(long, value_name = "N", default_value_t = 150, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub read_rate: u32,
    /// How long catalog-1 stays frozen, in seconds
    #[arg(long, value_name = "S", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub freeze: u64,
    /// Orders per second in the chaos run
    #[arg(long, value_name = "N", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub order_rate: u32,
    /// Buyers placing them
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub buyers: u32,
    /// How long the chaos run places orders, in seconds
    #[arg(long, value_name = "S", default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Seconds between kills
    #[arg(long, value_name = "S", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub kill_every: u64,
    /// Print one JSON object instead of tables
    #[arg(long)]
    pub json: bool,
}

/// What the frozen-replica run saw.
#[derive(Debug)]
pub struct Reads {
    /// Reads made.
    pub total: u64,
    /// Answers other than 200, or none.
    pub failed: u64,
    /// Reads that took over a second.
    pub slow: u64,
    /// Their latency.
    pub latency: Histogram,
}

/// What the chaos run saw.
#[derive(Debug, Default)]
pub struct Chaos {
    /// Orders accepted (202), each after as many tries as it took.
    pub accepted: u64,
    /// Orders never accepted.
    pub refused: u64,
    /// Tries of a POST that did not answer 202 (retried with the same key).
    pub post_retries: u64,
    /// Settled orders by status, or `cancelled: <code>`.
    pub outcomes: BTreeMap<String, u64>,
    /// Kills per service.
    pub kills: BTreeMap<String, u64>,
}

/// One endpoint the isolation matrix asks.
struct Probe {
    path: String,
    /// A storefront page (asked with the session cookie), else an API call.
    page: bool,
}

/// One frozen service's row of the isolation matrix.
#[derive(Debug)]
pub struct Frozen {
    /// The service frozen.
    pub service: String,
    /// Each endpoint's status (0: no answer) and time while it was frozen.
    pub answers: Vec<(String, u16, Duration)>,
    /// Endpoints not answering 200 two seconds after the thaw.
    pub after_thaw: Vec<String>,
}

/// The whole report.
#[derive(Debug)]
pub struct Report {
    /// The isolation matrix, a row per frozen service.
    pub matrix: Vec<Frozen>,
    /// The frozen-replica run.
    pub reads: Reads,
    /// The chaos run.
    pub chaos: Chaos,
    /// The arguments, for the table.
    pub freeze: u64,
}

/// Runs the benchmark with the `bazaar` binary and prints its report.
pub fn main(args: &Args, bazaar: &Path) -> ExitCode {
    let result = run(args, bazaar);
    finish(result, args.json, to_json, to_table)
}

fn run(args: &Args, bazaar: &Path) -> anyhow::Result<Report> {
    if cfg!(debug_assertions) {
        eprintln!("note: this is a debug build; its numbers say little (use --release)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    eprintln!("isolation matrix: each service frozen in turn…");
    let matrix = {
        let data = tempfile::tempdir().context("cannot make a data directory")?;
        let launch = Launch {
            isolated: true,
            args: vec!["--no-seed".to_owned()],
            ..Launch::default()
        };
        let mut fleet = Fleet::start(bazaar, data.path(), launch)?;
        fleet.wait_ready()?;
        let result = runtime.block_on(matrix(&fleet));
        let _ = fleet.stop();
        result.with_context(|| format!("fleet output:\n{}", fleet.output()))?
    };
    let data = tempfile::tempdir().context("cannot make a data directory")?;
    let launch = Launch {
        isolated: true,
        args: ["--no-seed", "--replicas", "catalog=2"]
            .map(str::to_owned)
            .to_vec(),
        ..Launch::default()
    };
    let mut fleet = Fleet::start(bazaar, data.path(), launch)?;
    fleet.wait_ready()?;
    let result = runtime.block_on(measure(args, &fleet, matrix));
    let _ = fleet.stop();
    result.with_context(|| format!("fleet output:\n{}", fleet.output()))
}

/// A product with ample stock in `category`, once inventory shows it.
async fn product(api: &Api, seller: &Account, category: &str, i: u32) -> anyhow::Result<String> {
    let fields = json!({
        "title": format!("Fault item {i}"),
        "description": "Made by bazaar bench faults.",
        "price": {"amount": 1500 + i, "currency": "EUR"},
        "category": category,
        "initial_stock": 1_000_000,
    });
    api.product(seller, &fields).await
}

async fn matrix(fleet: &Fleet) -> anyhow::Result<Vec<Frozen>> {
    let api = Api::new(fleet.public)?;
    let tag = std::process::id();
    let seller = api
        .account(format!("seller-{tag}@matrix.example"), "seller")
        .await?;
    let buyer = api
        .account(format!("buyer-{tag}@matrix.example"), "customer")
        .await?;
    let id = product(&api, &seller, &api.first_category().await?, 0).await?;
    // One in the cart, so the cart page needs the catalog.
    api.expect(
        Method::PUT,
        &format!("/api/v1/cart/items/{id}"),
        Some(&buyer.token),
        Some(&json!({"quantity": 1})),
        200,
    )
    .await?;
    let api_probe = |path: String| Probe { path, page: false };
    let page = |path: String| Probe { path, page: true };
    let probes = [
        api_probe("/api/v1/status".to_owned()),
        api_probe("/api/v1/users/me".to_owned()),
        api_probe("/api/v1/products?limit=5".to_owned()),
        api_probe(format!("/api/v1/products/{id}")),
        api_probe(format!("/api/v1/inventory/{id}")),
        api_probe("/api/v1/cart".to_owned()),
        api_probe("/api/v1/orders".to_owned()),
        api_probe(format!("/api/v1/payments?order_id={id}")),
        api_probe("/api/v1/notifications?limit=1".to_owned()),
        page("/".to_owned()),
        page(format!("/products/{id}")),
        page("/cart".to_owned()),
        page("/orders".to_owned()),
        page("/notifications".to_owned()),
    ];
    // Warm every cache and connection first.
    ask_all(&api, &probes, &buyer).await;
    let services: Vec<String> = proc::children_of(fleet.pid())
        .into_iter()
        .filter_map(|c| proc::env_var(c.pid, "BAZAAR_INSTANCE"))
        .filter_map(|i| i.strip_suffix("-0").map(str::to_owned))
        .filter(|s| s != "gateway")
        .collect();
    let mut rows = Vec::new();
    for service in services {
        let pid = pid_of(fleet, &format!("{service}-0")).context("no instance to freeze")?;
        kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).context("cannot freeze")?;
        let frozen = ask_all(&api, &probes, &buyer).await;
        kill(Pid::from_raw(pid as i32), Signal::SIGCONT).context("cannot thaw")?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let thawed = ask_all(&api, &probes, &buyer).await;
        rows.push(Frozen {
            service,
            answers: probes
                .iter()
                .zip(frozen)
                .map(|(p, (status, took))| (p.path.clone(), status, took))
                .collect(),
            after_thaw: probes
                .iter()
                .zip(thawed)
                .filter(|(_, (status, _))| *status != 200)
                .map(|(p, _)| p.path.clone())
                .collect(),
        });
    }
    Ok(rows)
}

/// Asks every probe at once; each one's status (0: no answer) and time.
async fn ask_all(api: &Api, probes: &[Probe], user: &Account) -> Vec<(u16, Duration)> {
    futures_util::future::join_all(probes.iter().map(|probe| async move {
        let started = Instant::now();
        let mut request = api
            .http
            .get(format!("{}{}", api.base, probe.path))
            .timeout(Duration::from_secs(30));
        request = if probe.page {
            request
                .header("cookie", format!("bazaar_access={}", user.token))
                .header("accept", "text/html")
        } else {
            request.bearer_auth(&user.token)
        };
        let status = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                status
            }
            Err(_) => 0,
        };
        (status, started.elapsed())
    }))
    .await
}

async fn measure(args: &Args, fleet: &Fleet, matrix: Vec<Frozen>) -> anyhow::Result<Report> {
    let api = Api::new(fleet.public)?;
    let tag = std::process::id();
    let seller = api
        .account(format!("seller-{tag}@bench.example"), "seller")
        .await?;
    let category = api.first_category().await?;
    let mut products = Vec::new();
    for i in 0..4 {
        products.push(product(&api, &seller, &category, i).await?);
    }
    eprintln!(
        "frozen replica: {} reads/s, catalog-1 frozen for {} s…",
        args.read_rate, args.freeze
    );
    let reads = frozen_replica(args, fleet, &api, &products).await?;
    eprintln!(
        "chaos: {} orders/s from {} buyers for {} s, a kill every {} s…",
        args.order_rate, args.buyers, args.seconds, args.kill_every
    );
    let mut buyers = Vec::new();
    for i in 0..args.buyers {
        buyers.push(
            api.account(format!("buyer-{tag}-{i}@bench.example"), "customer")
                .await?,
        );
    }
    let chaos = chaos(args, fleet, &api, &buyers, &products).await?;
    Ok(Report {
        matrix,
        reads,
        chaos,
        freeze: args.freeze,
    })
}

/// The pid of `instance` (e.g. `catalog-1`) among the launcher's children.
fn pid_of(fleet: &Fleet, instance: &str) -> Option<u32> {
    proc::children_of(fleet.pid())
        .into_iter()
        .find(|c| proc::env_var(c.pid, "BAZAAR_INSTANCE").as_deref() == Some(instance))
        .map(|c| c.pid)
}

async fn frozen_replica(
    args: &Args,
    fleet: &Fleet,
    api: &Api,
    products: &[String],
) -> anyhow::Result<Reads> {
    let victim = pid_of(fleet, "catalog-1").context("no catalog-1 to freeze")?;
    let lead = Duration::from_secs(3);
    let total = lead * 2 + Duration::from_secs(args.freeze);
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.read_rate));
    let results = Arc::new(Mutex::new(Reads {
        total: 0,
        failed: 0,
        slow: 0,
        latency: Histogram::default(),
    }));
    let started = Instant::now();
    let freezer = async {
        tokio::time::sleep(lead).await;
        kill(Pid::from_raw(victim as i32), Signal::SIGSTOP).context("cannot freeze catalog-1")?;
        tokio::time::sleep(Duration::from_secs(args.freeze)).await;
        kill(Pid::from_raw(victim as i32), Signal::SIGCONT).context("cannot thaw catalog-1")?;
        anyhow::Ok(())
    };
    let load = async {
        let mut ticker = tokio::time::interval(interval);
        let mut tasks = tokio::task::JoinSet::new();
        let mut n = 0usize;
        while started.elapsed() < total {
            ticker.tick().await;
            let path = format!("/api/v1/products/{}", products[n % products.len()]);
            n += 1;
            let (api, results) = (api.clone(), results.clone());
            tasks.spawn(async move {
                let sent = Instant::now();
                let ok = matches!(api.call(Method::GET, &path, None, None).await, Ok((200, _)));
                let took = sent.elapsed();
                let mut r = results.lock().await;
                r.total += 1;
                r.failed += u64::from(!ok);
                r.slow += u64::from(took > Duration::from_secs(1));
                r.latency.record(took);
            });
        }
        while tasks.join_next().await.is_some() {}
    };
    let (frozen, ()) = tokio::join!(freezer, load);
    frozen?;
    let results = Arc::try_unwrap(results)
        .map_err(|_| anyhow::anyhow!("a read outlived the run"))?
        .into_inner();
    Ok(results)
}

async fn chaos(
    args: &Args,
    fleet: &Fleet,
    api: &Api,
    buyers: &[Account],
    products: &[String],
) -> anyhow::Result<Chaos> {
    let victims: Vec<String> = proc::children_of(fleet.pid())
        .into_iter()
        .filter_map(|c| proc::env_var(c.pid, "BAZAAR_INSTANCE"))
        .filter(|name| !name.starts_with("gateway"))
        .collect();
    if victims.is_empty() {
        bail!("no service instance to kill");
    }
    let placing = AtomicBool::new(true);
    let report = Mutex::new(Chaos::default());
    let killer = async {
        // Every instance in turn, each round in a new random order, so
        // each service is killed about as often as the others.
        let mut rng = fastrand::Rng::with_seed(u64::from(std::process::id()));
        let mut round: Vec<&String> = Vec::new();
        while placing.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(args.kill_every)).await;
            if round.is_empty() {
                round = victims.iter().collect();
                rng.shuffle(&mut round);
            }
            let Some(victim) = round.pop() else { break };
            if let Some(pid) = pid_of(fleet, victim)
                && kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok()
            {
                let service = victim.rsplit_once('-').map_or(victim.as_str(), |(s, _)| s);
                *report
                    .lock()
                    .await
                    .kills
                    .entry(service.to_owned())
                    .or_default() += 1;
            }
        }
    };
    let orders = async {
        let interval = Duration::from_secs_f64(1.0 / f64::from(args.order_rate));
        let mut ticker = tokio::time::interval(interval);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let mut n = 0usize;
        while started.elapsed() < Duration::from_secs(args.seconds) {
            ticker.tick().await;
            let buyer = buyers[n % buyers.len()].clone();
            let product = products[n % products.len()].clone();
            let key = format!("faults-{}-{n}", std::process::id());
            n += 1;
            let api = api.clone();
            tasks.spawn(async move { place_and_follow(&api, &buyer, &product, &key).await });
        }
        placing.store(false, Ordering::Relaxed);
        let mut outcomes = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            outcomes.push(joined.unwrap_or(Outcome::Refused { tries: 0 }));
        }
        outcomes
    };
    let ((), outcomes) = tokio::join!(killer, orders);
    let mut report = report.into_inner();
    for outcome in outcomes {
        match outcome {
            Outcome::Settled { tries, status } => {
                report.accepted += 1;
                report.post_retries += u64::from(tries - 1);
                *report.outcomes.entry(status).or_default() += 1;
            }
            Outcome::Refused { tries } => {
                report.refused += 1;
                report.post_retries += u64::from(tries);
            }
        }
    }
    Ok(report)
}

/// How one planned order ended.
enum Outcome {
    /// Accepted after `tries` POSTs, then settled as `status`.
    Settled { tries: u32, status: String },
    /// Never accepted.
    Refused { tries: u32 },
}

/// POSTs the order with its key until accepted (as a client would after a
/// 5xx), then polls it until it is no longer pending.
async fn place_and_follow(api: &Api, buyer: &Account, product: &str, key: &str) -> Outcome {
    let body = json!({
        "items": [{"product_id": product, "quantity": 1}],
        "payment": {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2099, "cvc": "123"},
        "shipping_address": {"name": "Bench Buyer", "line1": "1 Test Street", "city": "London", "postal_code": "N1 7AA", "country": "GB"},
    });
    let limit = Instant::now() + Duration::from_secs(120);
    let mut tries = 0;
    let id = loop {
        tries += 1;
        let sent = api
            .request(Method::POST, "/api/v1/orders", Some(&buyer.token))
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await;
        if let Ok(response) = sent
            && matches!(response.status().as_u16(), 200..=202)
            && let Ok(order) = response.json::<Value>().await
            && let Some(id) = order["id"].as_str()
        {
            break id.to_owned();
        }
        if Instant::now() > limit {
            return Outcome::Refused { tries };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let path = format!("/api/v1/orders/{id}");
    let limit = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok((200, order)) = api.call(Method::GET, &path, Some(&buyer.token), None).await {
            match order["status"].as_str() {
                Some("pending") | None => {}
                Some("cancelled") => {
                    let code = order["cancel_code"].as_str().unwrap_or("unknown");
                    return Outcome::Settled {
                        tries,
                        status: format!("cancelled: {code}"),
                    };
                }
                Some(status) => {
                    return Outcome::Settled {
                        tries,
                        status: status.to_owned(),
                    };
                }
            }
        }
        if Instant::now() > limit {
            return Outcome::Settled {
                tries,
                status: "still pending after 5 min".to_owned(),
            };
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn to_json(report: &Report) -> Value {
    let latency = report.reads.latency.summary();
    let matrix: Vec<Value> = report
        .matrix
        .iter()
        .map(|row| {
            json!({
                "frozen": row.service,
                "answers": row.answers.iter().map(|(path, status, took)| json!({
                    "path": path, "status": status, "ms": took.as_secs_f64() * 1000.0,
                })).collect::<Vec<_>>(),
                "not_200_two_seconds_after_thaw": row.after_thaw,
            })
        })
        .collect();
    json!({
        "isolation_matrix": matrix,
        "frozen_replica": {
            "freeze_seconds": report.freeze,
            "reads": report.reads.total,
            "failed": report.reads.failed,
            "over_1s": report.reads.slow,
            "latency_ms": {
                "p50": latency.p50 as f64 / 1e6,
                "p99": latency.p99 as f64 / 1e6,
                "max": latency.max as f64 / 1e6,
            },
        },
        "chaos": {
            "accepted": report.chaos.accepted,
            "refused": report.chaos.refused,
            "post_retries": report.chaos.post_retries,
            "outcomes": report.chaos.outcomes,
            "kills": report.chaos.kills,
        },
    })
}

fn to_table(report: &Report) -> String {
    let mut out = String::from(
        "isolation matrix (status and ms of each endpoint while one service is frozen)\n",
    );
    if let Some(first) = report.matrix.first() {
        out.push_str(&format!("  {:<44}", "endpoint \\ frozen"));
        for row in &report.matrix {
            out.push_str(&format!(" {:>14}", row.service));
        }
        out.push('\n');
        for (i, (path, _, _)) in first.answers.iter().enumerate() {
            let shown: String = path.chars().take(44).collect();
            out.push_str(&format!("  {shown:<44}"));
            for row in &report.matrix {
                let (_, status, took) = &row.answers[i];
                out.push_str(&format!(
                    " {:>14}",
                    format!("{status} {:.0}", took.as_secs_f64() * 1000.0)
                ));
            }
            out.push('\n');
        }
        out.push_str(&format!("  {:<44}", "not 200 two seconds after the thaw"));
        for row in &report.matrix {
            out.push_str(&format!(" {:>14}", row.after_thaw.len()));
        }
        out.push('\n');
    }
    let r = &report.reads;
    let latency = r.latency.summary();
    let share = |n: u64| {
        if r.total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / r.total as f64
        }
    };
    out.push_str(&format!(
        "frozen replica (catalog-1 stopped for {} s)\n  reads {}  failed {} ({:.2} %)  over 1 s {} ({:.2} %)  p50 {:.1} ms  p99 {:.1} ms  max {:.0} ms\n",
        report.freeze,
        thousands(r.total as f64),
        r.failed,
        share(r.failed),
        r.slow,
        share(r.slow),
        latency.p50 as f64 / 1e6,
        latency.p99 as f64 / 1e6,
        latency.max as f64 / 1e6,
    ));
    let c = &report.chaos;
    out.push_str(&format!(
        "chaos\n  orders accepted {}  never accepted {}  POSTs retried {}\n",
        c.accepted, c.refused, c.post_retries
    ));
    for (outcome, n) in &c.outcomes {
        out.push_str(&format!("  {outcome:<32} {n}\n"));
    }
    let kills: Vec<String> = c.kills.iter().map(|(s, n)| format!("{s} {n}")).collect();
    out.push_str(&format!("  kills: {}\n", kills.join(", ")));
    out
}
