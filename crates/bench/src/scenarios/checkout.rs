//! `checkout`: the checkout saga end to end, on the real fleet
//! of `bazaar up`, at fixed order rates.
//!
//! For each backend (SQLite, and PostgreSQL with `--postgres`) the
//! benchmark starts the fleet on a temporary data directory (`--no-seed`,
//! the gateway's rate limit off), creates a seller with products of large
//! stock and a few buyers through the public API, and opens every buyer's
//! notification stream. Then, for each rate, it places orders open loop
//! (order k is due at k/rate, whatever happened to the ones before; each
//! with a fresh `Idempotency-Key`, the buyers and products in turn, one
//! unit of one product, the approving test card) and measures:
//!
//! * **POST**: from the order's intended send time to its 202, on the
//!   client's clock, so a stall cannot hide by delaying the requests that
//!   would have measured it;
//! * **accepted → confirmed**: from the order's own timeline, `confirmed`
//!   minus `accepted`, on the orders service's clock. The service stores
//!   timeline times as whole milliseconds since the epoch, so this is exact
//!   to 1 ms; both ends are taken inside the service (the `accepted` time
//!   before the order's insert, the `confirmed` time before the final
//!   transaction), so it is the saga's own time, with no polling in it. The
//!   timeline's intermediate steps split it by saga step;
//! * **notified**: from the intended send time until the buyer's
//!   notification stream (`/api/v1/notifications/stream`, through the
//!   gateway) delivers the order's notification, on the client's clock:
//!   what a buyer waiting on the page sees, two event hops after the saga
//!   ends (orders' outbox → notifications → its stream).
//!
//! Polling every order until it settles would add a GET per order every
//! few milliseconds, through the gateway to the orders database on the same
//! cores: it would measure its own load. The orders are read once, after
//! the run, for their status and timeline.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bazaar::cli::{PostgresUrl, RedisUrl, SecretParser, parse_nats, parse_postgres, parse_redis};
use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;
use url::Url;

use crate::harness::api::{Account, Api};
use crate::harness::fleet::{Fleet as Launched, Launch};
use crate::harness::histogram::{Histogram, Latency};
use crate::harness::load::WARMUP;
use crate::harness::proc::{self, CpuTicks, MACHINE, cpu_share, load_average};
use crate::harness::process::find_program;
use crate::harness::report::{finish, thousands};
use crate::harness::sse;

/// What `bazaar bench checkout --help` says.
pub const LONG_ABOUT: &str = "\
Measure the checkout saga end to end on the fleet of `bazaar up` (a temporary
data directory, --no-seed, the gateway's rate limit off): on SQLite, and also
on PostgreSQL with --postgres (fresh databases on that server, dropped
afterwards with psql when it is installed).

It creates a seller, products with 1,000,000 units each and several buyers
through the gateway, opens each buyer's notification stream, then for each
rate (--rates) places orders open loop for --duration seconds after 1 s of
warm-up: order k is due at k/rate, each with a fresh Idempotency-Key, one unit
of one product, the approving test card, buyers and products in turn.

Per rate it reports: orders accepted/s and confirmed/s (confirmations, by the
server's clock, inside the measured window), confirmed and cancelled orders,
failed POSTs; POST p50/p99 (from the intended send time to the 202); accepted
→ confirmed p50/p99/max from each order's timeline (confirmed − accepted, the
orders service's clock, 1 ms resolution: the saga's own time, no polling);
notified p50/p99 (intended send time → the buyer's notification stream
delivers the order, client clock); the saga's time per step; CPU of every
process. Target: p99 accepted → confirmed ≤ 50 ms at 100 orders/s on SQLite.

Nothing is pinned: the fleet and this client share the machine's cores; the
client's own CPU is reported.";

/// Options of `bazaar bench checkout`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Orders/s measured, in turn (comma-separated)
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_values_t = DEFAULT_RATES, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub rates: Vec<u32>,
    /// Seconds measured at each rate (each after 1 s of warm-up)
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub duration: u64,
    /// Buyers placing the orders in turn
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub buyers: u16,
    /// Products ordered in turn
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub products: u16,
    /// Also run on this PostgreSQL server (postgres://USER[:PASSWORD]@HOST[:PORT]): each
    /// run gets fresh databases, dropped afterwards with psql when it is installed
    #[arg(long, value_name = "URL", value_parser = SecretParser(parse_postgres))]
    pub postgres: Option<PostgresUrl>,
    /// Events through NATS JetStream in every run (a fresh stream per run): nats://HOST[:PORT]
    #[arg(long, value_name = "URL", value_parser = parse_nats)]
    pub nats: Option<Url>,
    /// Redis for the fleet's shared state in every run: redis://HOST[:PORT]
    #[arg(long, value_name = "URL", value_parser = SecretParser(parse_redis))]
    pub redis: Option<RedisUrl>,
    /// A BAZAAR_* variable for every process of the fleet, to try a setting
    /// (e.g. BAZAAR_ORDERS_SAGA_CONCURRENCY=8); repeatable
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_fleet_env)]
    pub fleet_env: Vec<(String, String)>,
    /// Print one JSON object instead of tables
    #[arg(long)]
    pub json: bool,
}

/// The rates measured unless `--rates` says otherwise, orders/s.
pub const DEFAULT_RATES: [u32; 5] = [25, 50, 100, 150, 200];
/// The target: at this rate, on SQLite…
pub const TARGET_RATE: u32 = 100;
/// … the p99 of accepted → confirmed is at most this.
pub const TARGET_P99: Duration = Duration::from_millis(50);
/// A rate counts as achieved from this share of it.
pub const MIN_ACHIEVED: f64 = 0.95;
/// Units of stock of every product.
pub const STOCK: i64 = 1_000_000;
/// The approving test card (shared/API.md).
const CARD: &str = "4242424242424242";
/// How long the orders of one rate may take to settle after its last POST.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// How long a new product may take to reach inventory.
/// GETs in flight when reading the orders back.
const READ_CONCURRENCY: usize = 8;
/// Access tokens live 15 min; buyers sign in again after this.
const TOKEN_REFRESH: Duration = Duration::from_secs(10 * 60);
/// How long the idle fleet's CPU is measured.
const IDLE: Duration = Duration::from_secs(3);
/// Distinct fleet log messages kept per run.
const MAX_MESSAGES: usize = 40;

/// The saga's steps as the timeline shows them: the step's name in the
/// report and the timeline entry that ends it (each starts where the one
/// before ends, the first at `accepted`).
pub const PHASES: [(&str, &str); 5] = [
    ("pricing", "priced"),
    ("reserving", "reserved"),
    ("authorizing", "authorized"),
    ("committing", "committed"),
    ("capture+confirm", "confirmed"),
];

// ---------------------------------------------------------------------------
// Pure parts: schedule, timestamps, timelines, log lines.

/// When order `k` of an open-loop run at `rate` orders/s is due, after the
/// run's start.
pub fn due_offset(k: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(k as f64 / rate)
}

/// Orders placed in a run of `span` at `rate`: those due before its end.
pub fn orders_in(span: Duration, rate: f64) -> u64 {
    (span.as_secs_f64() * rate).ceil() as u64
}

/// An RFC 3339 time (`2025-01-31T12:00:00.123Z`, any number of fraction
/// digits, `Z` or `±HH:MM`) as milliseconds since the epoch, fractions
/// below a millisecond dropped.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// What an order's timeline says about its saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaTimes {
    /// Accepted → confirmed, ms.
    pub total_ms: i64,
    /// Each of [`PHASES`], ms; `None` when its entry is missing.
    pub phases: [Option<i64>; 5],
    /// `retrying` entries.
    pub retries: u32,
    /// When it was confirmed, ms since the epoch.
    pub confirmed_at: i64,
}

/// The saga times of a confirmed order's `timeline`
/// (`[{at, step, detail}]`, oldest first); `None` without both its
/// `accepted` and `confirmed` entries.
pub fn saga_times(timeline: &Value) -> Option<SagaTimes> {
    let entries: Vec<(&str, i64)> = timeline
        .as_array()?
        .iter()
        .filter_map(|e| Some((e["step"].as_str()?, parse_rfc3339_ms(e["at"].as_str()?)?)))
        .collect();
    let at = |step: &str| entries.iter().find(|(s, _)| *s == step).map(|(_, t)| *t);
    let accepted = at("accepted")?;
    let confirmed = at("confirmed")?;
    let mut phases = [None; 5];
    let mut from = Some(accepted);
    for (slot, (_, entry)) in phases.iter_mut().zip(PHASES) {
        let to = at(entry);
        *slot = from.zip(to).map(|(a, b)| b - a);
        from = to;
    }
    Some(SagaTimes {
        total_ms: confirmed - accepted,
        phases,
        retries: entries.iter().filter(|(s, _)| *s == "retrying").count() as u32,
        confirmed_at: confirmed,
    })
}

/// The order a notification links to (`/orders/{id}`).
pub fn order_of_link(link: &str) -> Option<&str> {
    link.strip_prefix("/orders/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// `--fleet-env NAME=VALUE`: a `BAZAAR_*` variable for every process of
/// the fleet.
pub fn parse_fleet_env(value: &str) -> Result<(String, String), String> {
    let (name, value) = value
        .split_once('=')
        .ok_or("expected NAME=VALUE, e.g. BAZAAR_ORDERS_SAGA_CONCURRENCY=8")?;
    let name = name.trim();
    if !name.starts_with("BAZAAR_")
        || !name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!("{name:?} is not a BAZAAR_* variable"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `orders-0 | text` (the launcher's merged output) → instance and text.
pub fn split_log_line(line: &str) -> Option<(&str, &str)> {
    let (tag, text) = line.split_once(" | ")?;
    let tag = tag.trim();
    (!tag.is_empty() && !tag.contains(' ')).then_some((tag, text))
}

/// A log line's gist: level, message and error of a JSON line, else the
/// text, at most 200 characters.
pub fn gist(text: &str) -> String {
    let gist = match serde_json::from_str::<Value>(text) {
        Ok(v) if v.is_object() => {
            let fields = &v["fields"];
            let mut s = format!(
                "{} {}",
                v["level"].as_str().unwrap_or("?"),
                fields["message"].as_str().unwrap_or("")
            );
            if let Some(error) = fields["error"].as_str() {
                let _ = write!(s, ": {error}");
            }
            s
        }
        _ => text.to_owned(),
    };
    gist.chars().take(200).collect()
}

/// A database prefix of the run's own: `bench_checkout_<pid>_<hex>`.
pub fn unique_prefix(pid: u32, nanos: u32) -> String {
    format!("bench_checkout_{pid}_{nanos:x}")
}

// ---------------------------------------------------------------------------
// The report.

/// Where the services keep their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file per service.
    Sqlite,
    /// A database per service on one PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }

    /// Its key in the JSON report.
    pub fn key(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// One rate.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// Orders/s asked for.
    pub rate: u32,
    /// The measured window (after the warm-up).
    pub window: Duration,
    /// Orders due in the window.
    pub placed: u64,
    /// Of those, answered 202.
    pub accepted: u64,
    /// POSTs that failed, by status or error kind.
    pub errors: BTreeMap<String, u64>,
    /// From the intended send time to the 202.
    pub post: Latency,
    /// 99th percentile of how late POSTs left after their intended time, ns.
    pub send_lag_p99: u64,
    /// Accepted orders that ended confirmed.
    pub confirmed: u64,
    /// Accepted orders that ended cancelled, by reason code.
    pub cancelled: BTreeMap<String, u64>,
    /// Accepted orders still pending when the benchmark gave up waiting.
    pub unsettled: u64,
    /// Confirmations (of this run's orders, warm-up included) whose
    /// timeline time falls inside the window.
    pub confirmed_in_window: u64,
    /// Accepted → confirmed from the timeline, ns (1 ms resolution).
    pub saga: Latency,
    /// Each of [`PHASES`], ns.
    pub phases: Vec<Latency>,
    /// `retrying` entries in the timelines.
    pub retries: u64,
    /// Intended send time → the buyer's stream delivered the order, ns;
    /// `None` when the streams were not used.
    pub notified: Option<Latency>,
    /// Confirmed orders whose notification had not arrived when the orders
    /// were read back.
    pub notified_missing: u64,
    /// CPU of each process over the run (warm-up included), in cores.
    pub cpu: Vec<(String, f64)>,
    /// Lines the fleet logged (at warn or worse) during the run.
    pub warnings: u64,
}

impl Step {
    /// Orders accepted per second of the window.
    pub fn accepted_rate(&self) -> f64 {
        per_second(self.accepted, self.window)
    }

    /// Confirmations per second of the window.
    pub fn confirmed_rate(&self) -> f64 {
        per_second(self.confirmed_in_window, self.window)
    }

    /// Failed POSTs.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Cancelled orders.
    pub fn cancelled_count(&self) -> u64 {
        self.cancelled.values().sum()
    }
}

fn per_second(n: u64, window: Duration) -> f64 {
    if window.is_zero() {
        0.0
    } else {
        n as f64 / window.as_secs_f64()
    }
}

/// A fleet log message and how often it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The instance that logged it (`bazaar` for the launcher).
    pub instance: String,
    /// Its gist.
    pub message: String,
    /// How often.
    pub count: u64,
}

/// One backend's fleet, every rate.
#[derive(Debug, Clone)]
pub struct Run {
    /// Where the data lived.
    pub backend: Backend,
    /// `embedded event log` or `NATS JetStream`.
    pub events: &'static str,
    /// Whether Redis was given.
    pub redis: bool,
    /// `--fleet-env` settings.
    pub env: Vec<(String, String)>,
    /// Whether the notification streams delivered (the `notified` measure).
    pub streams: bool,
    /// CPU of each process of the idle fleet (before the first rate), in cores.
    pub idle_cpu: Vec<(String, f64)>,
    /// The rates, in the order run.
    pub steps: Vec<Step>,
    /// The fleet's most frequent log messages at warn or worse.
    pub warnings: Vec<Warning>,
    /// Anything worth saying about the run (cleanup, leftovers).
    pub notes: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Measured time at each rate.
    pub duration: Duration,
    /// Buyers placing orders in turn.
    pub buyers: u16,
    /// Products ordered in turn.
    pub products: u16,
    /// One per backend.
    pub runs: Vec<Run>,
    /// Cores this process may use.
    pub cores: usize,
    /// The 1-minute load average at the start.
    pub load_average: Option<f64>,
}

/// Whether the target holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Met, with the p99 in ms.
    Met(f64),
    /// Missed: why.
    Missed(Vec<String>),
    /// No SQLite run at the target's rate.
    NotMeasured,
}

/// The target (p99 accepted → confirmed ≤ 50 ms at 100 orders/s on
/// SQLite) judged on `runs`: the rate must also be achieved, every POST
/// accepted and every order confirmed.
pub fn verdict(runs: &[Run]) -> Verdict {
    let Some(step) = runs
        .iter()
        .filter(|r| r.backend == Backend::Sqlite)
        .flat_map(|r| &r.steps)
        .find(|s| s.rate == TARGET_RATE)
    else {
        return Verdict::NotMeasured;
    };
    // Timeline times are whole milliseconds; the histogram's bucket may
    // add a fraction.
    let p99_ms = millis(step.saga.p99).round();
    let limit_ms = millis_of(TARGET_P99);
    let mut why = Vec::new();
    if step.confirmed == 0 {
        why.push("no order was confirmed".to_owned());
    } else if p99_ms > limit_ms {
        why.push(format!(
            "p99 accepted → confirmed {p99_ms:.0} ms > {limit_ms:.0} ms"
        ));
    }
    let rate = f64::from(step.rate);
    if step.accepted_rate() < rate * MIN_ACHIEVED {
        why.push(format!(
            "accepted only {:.1} orders/s",
            step.accepted_rate()
        ));
    }
    if step.failed() > 0 {
        why.push(format!("{} POSTs failed", step.failed()));
    }
    if step.cancelled_count() + step.unsettled > 0 {
        why.push(format!(
            "{} orders cancelled, {} never settled",
            step.cancelled_count(),
            step.unsettled
        ));
    }
    if why.is_empty() {
        Verdict::Met(p99_ms)
    } else {
        Verdict::Missed(why)
    }
}

fn millis(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn millis_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `12.3 ms`.
fn ms1(ns: u64) -> String {
    format!("{:.1} ms", millis(ns))
}

/// `12 ms`: timeline values have 1 ms resolution.
fn ms0(ns: u64) -> String {
    format!("{:.0} ms", millis(ns))
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as tables.
pub fn report_table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bazaar bench checkout: POST /api/v1/orders open loop, through the gateway, on the fleet of \
         `bazaar up` (--no-seed, gateway rate limit off)"
    );
    let _ = writeln!(
        out,
        "{} buyers and {} products (stock {} each) in turn; one unit of one product per order, card \
         {CARD}; a fresh Idempotency-Key per order; each rate {} s warm-up + {} s measured; nothing \
         pinned ({} cores shared by the fleet and this client)",
        r.buyers,
        r.products,
        thousands(STOCK as f64),
        WARMUP.as_secs(),
        r.duration.as_secs(),
        r.cores
    );
    let _ = writeln!(
        out,
        "POST: intended send time → 202 (client clock). accepted → confirmed: the order's timeline, \
         confirmed − accepted (orders' clock; timeline times are whole milliseconds, so 1 ms \
         resolution). notified: intended send time → the buyer's notification stream delivers the \
         order (client clock; two event hops after the saga). confirmed/s: confirmations inside the \
         window (timeline)."
    );
    if let Some(load) = r.load_average {
        let _ = writeln!(
            out,
            "load average at start: {load:.2}{}",
            if load > 0.5 {
                " (the machine was busy: other work on these cores disturbs the numbers)"
            } else {
                ""
            }
        );
    }
    for run in &r.runs {
        let _ = writeln!(
            out,
            "\n{}, {}{}{}{}",
            run.backend.name(),
            run.events,
            if run.redis { ", Redis" } else { "" },
            run.env
                .iter()
                .map(|(k, v)| format!(", {k}={v}"))
                .collect::<String>(),
            if run.streams {
                ""
            } else {
                " (notification streams delivered nothing: no `notified` measure)"
            }
        );
        let _ = writeln!(
            out,
            "  {:>6} {:>9} {:>10} {:>9} {:>9} {:>6} | {:>17} | {:>22} | {:>17}",
            "rate",
            "accepted",
            "confirmed",
            "confirmed",
            "cancelled",
            "failed",
            "POST",
            "accepted → confirmed",
            "notified"
        );
        let _ = writeln!(
            out,
            "  {:>6} {:>9} {:>10} {:>9} {:>9} {:>6} | {:>8} {:>8} | {:>6} {:>6} {:>8} | {:>8} {:>8}",
            "/s", "/s", "/s", "orders", "", "", "p50", "p99", "p50", "p99", "max", "p50", "p99"
        );
        for s in &run.steps {
            let (n50, n99) = s.notified.map_or(("–".to_owned(), "–".to_owned()), |n| {
                (ms1(n.p50), ms1(n.p99))
            });
            let _ = writeln!(
                out,
                "  {:>6} {:>9.1} {:>10.1} {:>9} {:>9} {:>6} | {:>8} {:>8} | {:>6} {:>6} {:>8} | {:>8} {:>8}",
                s.rate,
                s.accepted_rate(),
                s.confirmed_rate(),
                s.confirmed,
                s.cancelled_count(),
                s.failed(),
                ms1(s.post.p50),
                ms1(s.post.p99),
                ms0(s.saga.p50),
                ms0(s.saga.p99),
                ms0(s.saga.max),
                n50,
                n99
            );
        }
        for s in &run.steps {
            let mut problems = Vec::new();
            if !s.errors.is_empty() {
                problems.push(format!("failed POSTs: {}", counts(&s.errors)));
            }
            if !s.cancelled.is_empty() {
                problems.push(format!("cancelled: {}", counts(&s.cancelled)));
            }
            if s.unsettled > 0 {
                problems.push(format!(
                    "{} still pending after {} s",
                    s.unsettled,
                    SETTLE_LIMIT.as_secs()
                ));
            }
            if s.notified_missing > 0 && s.notified.is_some() {
                problems.push(format!(
                    "{} notifications not yet delivered when the orders were read",
                    s.notified_missing
                ));
            }
            if s.retries > 0 {
                problems.push(format!("{} Authorize retries", s.retries));
            }
            if !problems.is_empty() {
                let _ = writeln!(out, "  at {}/s: {}", s.rate, problems.join("; "));
            }
        }
        let _ = writeln!(
            out,
            "  where accepted → confirmed goes, per saga step (timeline), p50 / p99:"
        );
        let _ = write!(out, "  {:>6}", "rate");
        for (name, _) in PHASES {
            let _ = write!(out, " {name:>17}");
        }
        let _ = writeln!(out, " {:>9} {:>10}", "send lag", "fleet log");
        for s in &run.steps {
            let _ = write!(out, "  {:>6}", s.rate);
            for phase in &s.phases {
                let cell = format!("{:.0} / {:.0} ms", millis(phase.p50), millis(phase.p99));
                let _ = write!(out, " {cell:>17}");
            }
            let _ = writeln!(out, " {:>9} {:>10}", ms1(s.send_lag_p99), s.warnings);
        }
        let _ = writeln!(
            out,
            "  CPU during each run, in cores (warm-up included): the whole machine (all processes, the \
             PostgreSQL server too), ours (fleet and client), each process:"
        );
        let mut names: Vec<&str> = Vec::new();
        for cpu in run.steps.iter().map(|s| &s.cpu).chain([&run.idle_cpu]) {
            for (name, _) in cpu {
                if name != MACHINE && !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        let _ = write!(out, "  {:>6} {:>7} {:>6}", "rate", "machine", "ours");
        for name in &names {
            let _ = write!(out, " {:>9}", short(name));
        }
        let _ = writeln!(out);
        let rows = (!run.idle_cpu.is_empty())
            .then(|| ("idle".to_owned(), &run.idle_cpu))
            .into_iter()
            .chain(run.steps.iter().map(|s| (s.rate.to_string(), &s.cpu)));
        for (label, cpu) in rows {
            let ours: f64 = cpu
                .iter()
                .filter(|(n, _)| n != MACHINE)
                .map(|(_, c)| c)
                .sum();
            let machine = cpu
                .iter()
                .find(|(n, _)| n == MACHINE)
                .map_or("–".to_owned(), |(_, c)| format!("{c:.2}"));
            let _ = write!(out, "  {label:>6} {machine:>7} {ours:>6.2}");
            for name in &names {
                let c = cpu.iter().find(|(n, _)| n == name).map_or(0.0, |(_, c)| *c);
                let _ = write!(out, " {c:>9.2}");
            }
            let _ = writeln!(out);
        }
        if !run.warnings.is_empty() {
            let _ = writeln!(out, "  most frequent fleet log lines (warn or worse):");
            for w in &run.warnings {
                let _ = writeln!(out, "    {:>6} × {}: {}", w.count, w.instance, w.message);
            }
        }
        for note in &run.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    let _ = writeln!(
        out,
        "\ntarget: p99 accepted → confirmed ≤ {:.0} ms at {TARGET_RATE} orders/s on SQLite: {}",
        millis_of(TARGET_P99),
        match verdict(&r.runs) {
            Verdict::Met(p99) => format!("met (p99 {p99:.0} ms)"),
            Verdict::Missed(why) => format!("MISSED ({})", why.join("; ")),
            Verdict::NotMeasured => format!("not measured ({TARGET_RATE} is not among --rates)"),
        }
    );
    out
}

/// A process name short enough for a column: `orders-0` → `orders`.
fn short(name: &str) -> String {
    let name = name.strip_suffix("-0").unwrap_or(name);
    match name {
        "notifications" => "notify".to_owned(),
        "bench client" => "client".to_owned(),
        _ => name.chars().take(9).collect(),
    }
}

/// The report as one JSON object; durations in ms.
pub fn report_json(r: &Report) -> Value {
    let latency = |l: &Latency| {
        json!({
            "p50": millis(l.p50), "p90": millis(l.p90), "p99": millis(l.p99),
            "p999": millis(l.p999), "max": millis(l.max), "mean": millis(l.mean),
        })
    };
    let runs: Vec<Value> = r
        .runs
        .iter()
        .map(|run| {
            let steps: Vec<Value> = run
                .steps
                .iter()
                .map(|s| {
                    let phases: serde_json::Map<String, Value> = PHASES
                        .iter()
                        .zip(&s.phases)
                        .map(|((name, _), l)| ((*name).to_owned(), latency(l)))
                        .collect();
                    json!({
                        "rate": s.rate,
                        "window_s": s.window.as_secs_f64(),
                        "placed": s.placed,
                        "accepted": s.accepted,
                        "accepted_per_s": s.accepted_rate(),
                        "confirmed_per_s": s.confirmed_rate(),
                        "confirmed": s.confirmed,
                        "cancelled": s.cancelled,
                        "unsettled": s.unsettled,
                        "failed": s.errors,
                        "post_ms": latency(&s.post),
                        "send_lag_p99_ms": millis(s.send_lag_p99),
                        "accepted_to_confirmed_ms": latency(&s.saga),
                        "saga_steps_ms": phases,
                        "authorize_retries": s.retries,
                        "notified_ms": s.notified.as_ref().map(latency),
                        "notified_missing": s.notified_missing,
                        "cpu_cores": s.cpu.iter().cloned().collect::<BTreeMap<String, f64>>(),
                        "fleet_log_lines": s.warnings,
                    })
                })
                .collect();
            json!({
                "backend": run.backend.key(),
                "events": run.events,
                "redis": run.redis,
                "fleet_env": run.env.iter().cloned().collect::<BTreeMap<String, String>>(),
                "notification_streams": run.streams,
                "idle_cpu_cores": run.idle_cpu.iter().cloned().collect::<BTreeMap<String, f64>>(),
                "steps": steps,
                "fleet_log": run.warnings.iter().map(|w| json!({
                    "instance": w.instance, "message": w.message, "count": w.count,
                })).collect::<Vec<_>>(),
                "notes": run.notes,
            })
        })
        .collect();
    let (met, p99, why) = match verdict(&r.runs) {
        Verdict::Met(p99) => (Some(true), Some(p99), Vec::new()),
        Verdict::Missed(why) => (Some(false), None, why),
        Verdict::NotMeasured => (None, None, Vec::new()),
    };
    json!({
        "benchmark": "checkout",
        "duration_s": r.duration.as_secs(),
        "warmup_s": WARMUP.as_secs(),
        "buyers": r.buyers,
        "products": r.products,
        "cores": r.cores,
        "measures": {
            "post": "intended send time → 202, client clock",
            "accepted_to_confirmed": "timeline confirmed − accepted, orders service clock, 1 ms resolution",
            "notified": "intended send time → the buyer's notification stream delivers the order, client clock",
            "confirmed_per_s": "confirmations inside the measured window, by the timeline",
        },
        "target": {
            "backend": "sqlite", "rate": TARGET_RATE, "p99_ms": millis_of(TARGET_P99),
            "met": met, "measured_p99_ms": p99, "missed_because": why,
        },
        "runs": runs,
        "load_average_at_start": r.load_average,
    })
}

// ---------------------------------------------------------------------------
// Running it.

/// Runs the benchmark with the `bazaar` binary and prints its report.
pub fn main(args: &Args, bazaar: &Path) -> ExitCode {
    let say = |line: &str| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    finish(
        run(args, bazaar, &say),
        args.json,
        report_json,
        report_table,
    )
}

fn run(args: &Args, bazaar: &Path, say: &dyn Fn(&str)) -> anyhow::Result<Report> {
    if cfg!(debug_assertions) {
        say("note: this is a debug build; its numbers say little (use --release)");
    }
    let load_average = load_average();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut backends = vec![Backend::Sqlite];
    if args.postgres.is_some() {
        backends.push(Backend::Postgres);
    }
    let mut runs = Vec::new();
    for backend in backends {
        runs.push(
            run_backend(args, bazaar, backend, &runtime, say)
                .with_context(|| format!("the run on {}", backend.name()))?,
        );
    }
    Ok(Report {
        duration: Duration::from_secs(args.duration),
        buyers: args.buyers,
        products: args.products,
        runs,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        load_average,
    })
}

/// The fleet's log, tallied while it runs.
#[derive(Debug, Default)]
struct LogTally {
    lines: u64,
    messages: HashMap<(String, String), u64>,
}

impl LogTally {
    fn add(&mut self, line: &str) {
        let Some((instance, text)) = split_log_line(line) else {
            return;
        };
        self.lines += 1;
        let key = (instance.to_owned(), gist(text));
        if let Some(count) = self.messages.get_mut(&key) {
            *count += 1;
        } else if self.messages.len() < MAX_MESSAGES {
            self.messages.insert(key, 1);
        }
    }

    fn top(&self, n: usize) -> Vec<Warning> {
        let mut all: Vec<Warning> = self
            .messages
            .iter()
            .map(|((instance, message), count)| Warning {
                instance: instance.clone(),
                message: message.clone(),
                count: *count,
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
        all.truncate(n);
        all
    }
}

/// A fleet this benchmark started, its log tallied while it runs.
struct Fleet {
    launched: Launched,
    public: SocketAddr,
    log: Arc<Mutex<LogTally>>,
}

impl Fleet {
    /// `bazaar up --data-dir DIR --port <free> --no-seed EXTRA…`, isolated
    /// from the caller's settings (see [`Launch::isolated`]) but for `env`;
    /// waits for its `ready:` line.
    fn start(
        bazaar: &Path,
        data_dir: &Path,
        extra: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let mut args = vec!["--no-seed".to_owned()];
        args.extend_from_slice(extra);
        let launch = Launch {
            cores: None,
            isolated: true,
            args,
            env,
        };
        let mut launched = Launched::start(bazaar, data_dir, launch)?;
        launched.wait_ready()?;
        let log = Arc::new(Mutex::new(LogTally::default()));
        if let Some(lines) = launched.take_lines() {
            let tally = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in lines {
                    tally
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .add(&line);
                }
            });
        }
        Ok(Self {
            public: launched.public,
            launched,
            log,
        })
    }

    fn log_lines(&self) -> u64 {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lines
    }

    /// CPU ticks so far of the launcher, each of its processes, this one
    /// and the whole machine.
    fn cpu(&self) -> BTreeMap<String, u64> {
        let mut out = self.launched.cpu_ticks();
        if let Some(t) = proc::own_ticks() {
            out.insert("bench client".to_owned(), t);
        }
        if let Some(t) = CpuTicks::now(None) {
            out.insert(MACHINE.to_owned(), t.busy);
        }
        out
    }

    /// SIGTERM, then waits; what was left running is killed. Notes on how
    /// it went.
    fn stop(self) -> Vec<String> {
        let (stopped, left) = self.launched.stop_and_reap(&[]);
        let mut notes = Vec::new();
        if let Err(e) = stopped {
            // Its first line: the fleet's output does not belong in the report.
            notes.push(e.to_string().lines().next().unwrap_or_default().to_owned());
        }
        if left > 0 {
            notes.push(format!(
                "{left} of its processes were still running after it stopped (killed)"
            ));
        }
        notes
    }
}

/// The database URL of a run of its own on the `--postgres` server.
fn run_database(pg: &PostgresUrl, prefix: &str) -> Url {
    let mut url = pg.for_service("postgres");
    url.set_path(&format!("/{prefix}"));
    url
}

/// Drops the run's databases (`<prefix>_<service>`) with `psql`.
fn drop_databases(pg: &PostgresUrl, prefix: &str) -> String {
    let Some(psql) = find_program("psql") else {
        return format!(
            "psql not found: the run's databases {prefix}_<service> stay on the server (drop them by hand)"
        );
    };
    let mut maintenance = pg.for_service("postgres");
    maintenance.set_path("/postgres");
    let mut dropped = 0;
    let mut failed = Vec::new();
    for service in bazaar::registry::SERVICES {
        let name = format!("{prefix}_{}", service.name);
        let out = Command::new(&psql)
            .arg(maintenance.as_str())
            .args(["-w", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .output();
        match out {
            Ok(out) if out.status.success() => dropped += 1,
            _ => failed.push(name),
        }
    }
    if failed.is_empty() {
        format!("the run's databases {prefix}_<service> were dropped ({dropped} services)")
    } else {
        format!("could not drop {}", failed.join(", "))
    }
}

fn run_backend(
    args: &Args,
    bazaar: &Path,
    backend: Backend,
    runtime: &tokio::runtime::Runtime,
    say: &dyn Fn(&str),
) -> anyhow::Result<Run> {
    let data_dir = tempfile::Builder::new()
        .prefix("bazaar-bench-checkout-")
        .tempdir()
        .context("cannot create a temporary data directory")?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let prefix = unique_prefix(std::process::id(), nanos);
    let mut extra = Vec::new();
    if backend == Backend::Postgres
        && let Some(pg) = &args.postgres
    {
        extra.push("--postgres".to_owned());
        extra.push(run_database(pg, &prefix).to_string());
    }
    let mut notes = Vec::new();
    if let Some(nats) = &args.nats {
        let mut nats = nats.clone();
        let stream = prefix.to_uppercase();
        nats.set_path(&format!("/{stream}"));
        extra.push("--nats".to_owned());
        extra.push(nats.to_string());
        notes.push(format!(
            "events went through the JetStream stream {stream}, which stays on the server"
        ));
    }
    if let Some(redis) = &args.redis {
        extra.push("--redis".to_owned());
        extra.push(redis.0.to_string());
    }
    say(&format!(
        "{}: starting the fleet (`bazaar up --no-seed`)…",
        backend.name()
    ));
    let fleet = Fleet::start(bazaar, data_dir.path(), &extra, &args.fleet_env)?;
    let result = runtime.block_on(measure(args, backend, &fleet, &prefix, say));
    say(&format!("{}: stopping the fleet…", backend.name()));
    let warnings = fleet
        .log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .top(8);
    notes.extend(fleet.stop());
    if backend == Backend::Postgres
        && let Some(pg) = &args.postgres
    {
        notes.push(drop_databases(pg, &prefix));
    }
    let (steps, streams, idle_cpu) = result?;
    Ok(Run {
        backend,
        events: if args.nats.is_some() {
            "NATS JetStream"
        } else {
            "embedded event log"
        },
        redis: args.redis.is_some(),
        env: args.fleet_env.clone(),
        streams,
        idle_cpu,
        steps,
        warnings,
        notes,
    })
}

/// A product with [`STOCK`] units, once inventory shows it.
async fn product(api: &Api, seller: &Account, category: &str, i: u16) -> anyhow::Result<String> {
    let fields = json!({
        "title": format!("Benchmark item {i}"),
        "description": "Made by bazaar bench checkout.",
        "price": {"amount": 1000 + i64::from(i), "currency": "EUR"},
        "category": category,
        "initial_stock": STOCK,
    });
    api.product(seller, &fields).await
}

/// When each order's notification arrived, by order id.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Follows `account`'s notification stream until aborted, reconnecting
/// (from the last event seen) if it ends; records when each order's
/// notification arrives.
async fn listen(api: Api, token: String, arrivals: Arrivals, connected: Arc<AtomicUsize>) {
    let path = format!("{}/api/v1/notifications/stream", api.base);
    let mut last_id: Option<String> = None;
    let mut counted = false;
    loop {
        let mut request = api
            .http
            .get(&path)
            .bearer_auth(&token)
            .header("accept", "text/event-stream");
        if let Some(id) = &last_id {
            request = request.header("last-event-id", id.as_str());
        }
        if let Ok(response) = request.send().await
            && response.status() == 200
        {
            if !counted {
                counted = true;
                connected.fetch_add(1, Ordering::SeqCst);
            }
            let mut events = std::pin::pin!(sse::events(response.bytes_stream()));
            while let Some(event) = events.next().await {
                let now = Instant::now();
                if !event.id.is_empty() {
                    last_id = Some(event.id.clone());
                }
                let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
                    continue;
                };
                if let Some(order) = data["link"].as_str().and_then(order_of_link) {
                    arrivals
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(order.to_owned())
                        .or_insert(now);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Everything measured on one running fleet: the steps, and whether the
/// notification streams worked.
async fn measure(
    args: &Args,
    backend: Backend,
    fleet: &Fleet,
    tag: &str,
    say: &dyn Fn(&str),
) -> anyhow::Result<(Vec<Step>, bool, Vec<(String, f64)>)> {
    let api = Api::new(fleet.public)?;
    say(&format!(
        "{}: a seller, {} products with {} units each, {} buyers…",
        backend.name(),
        args.products,
        STOCK,
        args.buyers
    ));
    let seller = api
        .account(format!("seller-{tag}@bench.example.com"), "seller")
        .await
        .context("the seller")?;
    let categories = api
        .expect(Method::GET, "/api/v1/categories", None, None, 200)
        .await?;
    let category = categories[0]["slug"]
        .as_str()
        .with_context(|| format!("no category to sell in: {categories}"))?
        .to_owned();
    let mut products = Vec::new();
    for i in 0..args.products {
        products.push(product(&api, &seller, &category, i).await?);
    }
    let mut emails = Vec::new();
    for i in 0..args.buyers {
        let email = format!("buyer-{i}-{tag}@bench.example.com");
        api.register(&email, "customer").await.context("a buyer")?;
        emails.push(email);
    }
    let mut buyers = sign_in(&api, &emails).await?;
    let mut signed_in = Instant::now();

    // Every buyer's notification stream.
    let arrivals: Arrivals = Arc::default();
    let connected = Arc::new(AtomicUsize::new(0));
    let mut listeners = JoinSet::new();
    for buyer in &buyers {
        listeners.spawn(listen(
            api.clone(),
            buyer.token.clone(),
            Arc::clone(&arrivals),
            Arc::clone(&connected),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while connected.load(Ordering::SeqCst) < buyers.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // One order first, to check the whole path (and the streams).
    let body = order_body(&products[0]);
    let (status, placed) = post_order(&api, &buyers[0].token, &format!("smoke-{tag}"), &body)
        .await
        .context("the first order")?;
    if status != 202 {
        bail!("the first order answered {status}: {placed}");
    }
    let id = placed["id"]
        .as_str()
        .context("no id in the order's answer")?
        .to_owned();
    let order = settle(&api, &buyers[0].token, &id, Instant::now() + SETTLE_LIMIT).await?;
    if order["status"] != "confirmed" {
        bail!("the first order did not go through: {order}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut streams = false;
    while Instant::now() < deadline {
        if arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&id)
        {
            streams = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !streams {
        say("warning: the notification streams delivered nothing; `notified` is not measured");
    }

    // The idle fleet's own CPU: what every rate pays anyway.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (before, from) = (fleet.cpu(), Instant::now());
    tokio::time::sleep(IDLE).await;
    let idle_cpu = cpu_share(&before, &fleet.cpu(), from.elapsed());

    let mut steps = Vec::new();
    for &rate in &args.rates {
        if signed_in.elapsed() > TOKEN_REFRESH {
            buyers = sign_in(&api, &emails).await?;
            signed_in = Instant::now();
        }
        let shared = RunShared {
            api: api.clone(),
            buyers: buyers.clone(),
            products: products.clone(),
            arrivals: Arc::clone(&arrivals),
            streams,
        };
        let step = step(
            &shared,
            fleet,
            rate,
            Duration::from_secs(args.duration),
            &format!("{tag}-{rate}"),
        )
        .await
        .with_context(|| format!("at {rate} orders/s"))?;
        say(&format!(
            "{} {:>4}/s: accepted {:.1}/s, confirmed {}, cancelled {}, failed {}; POST p50 {} p99 {}; \
             accepted → confirmed p50 {} p99 {} max {}{}",
            backend.name(),
            rate,
            step.accepted_rate(),
            step.confirmed,
            step.cancelled_count(),
            step.failed(),
            ms1(step.post.p50),
            ms1(step.post.p99),
            ms0(step.saga.p50),
            ms0(step.saga.p99),
            ms0(step.saga.max),
            step.notified.map_or(String::new(), |n| format!(
                "; notified p50 {} p99 {}",
                ms1(n.p50),
                ms1(n.p99)
            ))
        ));
        steps.push(step);
    }
    listeners.abort_all();
    Ok((steps, streams, idle_cpu))
}

/// Signs every buyer in (a few at a time: password hashing is slow).
async fn sign_in(api: &Api, emails: &[String]) -> anyhow::Result<Vec<Account>> {
    let mut accounts = Vec::with_capacity(emails.len());
    for chunk in emails.chunks(4) {
        let mut logins = JoinSet::new();
        for (i, email) in chunk.iter().enumerate() {
            let (api, email) = (api.clone(), email.clone());
            logins.spawn(async move { (i, api.login(&email).await) });
        }
        let mut done: Vec<(usize, Account)> = Vec::new();
        while let Some(joined) = logins.join_next().await {
            let (i, account) = joined?;
            done.push((i, account.context("a buyer's sign-in")?));
        }
        done.sort_by_key(|(i, _)| *i);
        accounts.extend(done.into_iter().map(|(_, a)| a));
    }
    debug_assert!(accounts.iter().zip(emails).all(|(a, e)| &a.email == e));
    Ok(accounts)
}

/// The order of one unit of `product`.
fn order_body(product: &str) -> Value {
    json!({
        "items": [{"product_id": product, "quantity": 1}],
        "payment": {"card_number": CARD, "exp_month": 12, "exp_year": 2099, "cvc": "123"},
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical Row",
            "city": "London",
            "postal_code": "N1 7AA",
            "country": "GB",
        },
    })
}

async fn post_order(
    api: &Api,
    token: &str,
    key: &str,
    body: &Value,
) -> reqwest::Result<(u16, Value)> {
    let response = api
        .request(Method::POST, "/api/v1/orders", Some(token))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Reads order `id` until it is no longer pending, or `deadline`; the
/// last answer.
async fn settle(api: &Api, token: &str, id: &str, deadline: Instant) -> anyhow::Result<Value> {
    let path = format!("/api/v1/orders/{id}");
    loop {
        match api.expect(Method::GET, &path, Some(token), None, 200).await {
            Ok(order) if order["status"] != "pending" || Instant::now() > deadline => {
                return Ok(order);
            }
            Err(e) if Instant::now() > deadline => return Err(e),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What every step uses.
struct RunShared {
    api: Api,
    buyers: Vec<Account>,
    products: Vec<String>,
    arrivals: Arrivals,
    streams: bool,
}

/// One POST of a step.
struct Placed {
    k: u64,
    due: Instant,
    sent: Instant,
    done: Instant,
    result: Result<(u16, Value), String>,
}

/// One rate: the orders, open loop, then reading them back.
async fn step(
    shared: &RunShared,
    fleet: &Fleet,
    rate: u32,
    duration: Duration,
    tag: &str,
) -> anyhow::Result<Step> {
    let rate_f = f64::from(rate);
    let cpu_before = fleet.cpu();
    let log_before = fleet.log_lines();
    let start = Instant::now() + Duration::from_millis(20);
    let clock_start = unix_ms(SystemTime::now()) + 20;
    let measure_from = start + WARMUP;
    let end = measure_from + duration;
    let total = orders_in(WARMUP + duration, rate_f);
    let mut tasks = JoinSet::new();
    for k in 0..total {
        let due = start + due_offset(k, rate_f);
        tokio::time::sleep_until(due.into()).await;
        let api = shared.api.clone();
        let buyer = k as usize % shared.buyers.len();
        let token = shared.buyers[buyer].token.clone();
        let body = order_body(&shared.products[k as usize % shared.products.len()]);
        let key = format!("bench-{tag}-{k}");
        tasks.spawn(async move {
            let sent = Instant::now();
            let result = post_order(&api, &token, &key, &body).await.map_err(|e| {
                if e.is_timeout() {
                    "timeout".to_owned()
                } else if e.is_connect() {
                    "connect".to_owned()
                } else {
                    "no answer".to_owned()
                }
            });
            Placed {
                k,
                due,
                sent,
                done: Instant::now(),
                result,
            }
        });
    }
    let mut placed = Vec::with_capacity(total as usize);
    while let Some(joined) = tasks.join_next().await {
        placed.push(joined?);
    }
    let run_wall = start.elapsed();
    let cpu_after = fleet.cpu();
    let warnings = fleet.log_lines().saturating_sub(log_before);

    let mut out = Step {
        rate,
        window: duration,
        ..Step::default()
    };
    let mut post = Histogram::default();
    let mut lag = Histogram::default();
    // (order id, buyer, due, measured)
    let mut orders: Vec<(String, usize, Instant, bool)> = Vec::new();
    for p in &placed {
        let measured = p.due >= measure_from && p.due < end;
        if measured {
            out.placed += 1;
            lag.record(p.sent.saturating_duration_since(p.due));
        }
        match &p.result {
            Ok((202, order)) => {
                if let Some(id) = order["id"].as_str() {
                    let buyer = p.k as usize % shared.buyers.len();
                    orders.push((id.to_owned(), buyer, p.due, measured));
                }
                if measured {
                    out.accepted += 1;
                    post.record(p.done.saturating_duration_since(p.due));
                }
            }
            Ok((status, _)) if measured => *out.errors.entry(status.to_string()).or_default() += 1,
            Err(kind) if measured => *out.errors.entry(kind.clone()).or_default() += 1,
            _ => {}
        }
    }
    out.post = post.summary();
    out.send_lag_p99 = lag.quantile(0.99);
    out.warnings = warnings;
    out.cpu = cpu_share(&cpu_before, &cpu_after, run_wall);

    // Wait for the orders to settle: first on the streams (free), then
    // read every order once (polling the ones still pending).
    let deadline = Instant::now() + SETTLE_LIMIT;
    if shared.streams {
        let grace = Instant::now() + Duration::from_secs(15);
        while Instant::now() < grace {
            let all_arrived = {
                let arrived = shared
                    .arrivals
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                orders.iter().all(|(id, ..)| arrived.contains_key(id))
            };
            if all_arrived {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let read = read_orders(shared, &orders, deadline).await?;

    let mut saga = Histogram::default();
    let mut phases: Vec<Histogram> = PHASES.iter().map(|_| Histogram::default()).collect();
    let mut notified = Histogram::default();
    let window_from = clock_start + i64::try_from(WARMUP.as_millis()).unwrap_or(0);
    let window_to = window_from + i64::try_from(duration.as_millis()).unwrap_or(0);
    let arrived = shared
        .arrivals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for ((id, _, due, measured), order) in orders.iter().zip(&read) {
        let times = match order["status"].as_str() {
            Some("confirmed") => saga_times(&order["timeline"]),
            _ => None,
        };
        if let Some(t) = &times
            && (window_from..window_to).contains(&t.confirmed_at)
        {
            out.confirmed_in_window += 1;
        }
        if !measured {
            continue;
        }
        match order["status"].as_str() {
            Some("confirmed") => {
                out.confirmed += 1;
                if let Some(t) = &times {
                    saga.record_ns(ms_to_ns(t.total_ms));
                    for (h, phase) in phases.iter_mut().zip(t.phases) {
                        if let Some(ms) = phase {
                            h.record_ns(ms_to_ns(ms));
                        }
                    }
                    out.retries += u64::from(t.retries);
                }
                match arrived.get(id) {
                    Some(at) => notified.record(at.saturating_duration_since(*due)),
                    None => out.notified_missing += 1,
                }
            }
            Some("cancelled") => {
                let code = order["cancel_code"].as_str().unwrap_or("unknown");
                *out.cancelled.entry(code.to_owned()).or_default() += 1;
            }
            _ => out.unsettled += 1,
        }
    }
    out.saga = saga.summary();
    out.phases = phases.iter().map(Histogram::summary).collect();
    out.notified = (shared.streams && notified.count() > 0).then(|| notified.summary());
    Ok(out)
}

fn ms_to_ns(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Every order of `orders` as its buyer reads it, once it is no longer
/// pending (or at `deadline`), in the same order.
async fn read_orders(
    shared: &RunShared,
    orders: &[(String, usize, Instant, bool)],
    deadline: Instant,
) -> anyhow::Result<Vec<Value>> {
    let mut read = vec![Value::Null; orders.len()];
    let mut next = 0;
    let mut tasks = JoinSet::new();
    while next < orders.len() || !tasks.is_empty() {
        while next < orders.len() && tasks.len() < READ_CONCURRENCY {
            let (id, buyer, ..) = &orders[next];
            let api = shared.api.clone();
            let token = shared.buyers[*buyer].token.clone();
            let id = id.clone();
            let i = next;
            tasks.spawn(async move { (i, settle(&api, &token, &id, deadline).await) });
            next += 1;
        }
        if let Some(joined) = tasks.join_next().await {
            let (i, order) = joined?;
            read[i] = order.with_context(|| format!("reading order {}", orders[i].0))?;
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Scenario};

    #[test]
    fn the_schedule_is_fixed_by_the_rate() {
        assert_eq!(due_offset(0, 100.0), Duration::ZERO);
        assert_eq!(due_offset(100, 100.0), Duration::from_secs(1));
        assert_eq!(due_offset(3, 200.0), Duration::from_millis(15));
        assert_eq!(orders_in(Duration::from_secs(11), 25.0), 275);
        assert_eq!(orders_in(Duration::from_millis(1500), 3.0), 5);
        // Orders due before the end of an 11 s run: k/rate < 11.
        let n = orders_in(Duration::from_secs(11), 150.0);
        assert!(due_offset(n - 1, 150.0) < Duration::from_secs(11));
        assert!(due_offset(n, 150.0) >= Duration::from_secs(11));
    }

    #[test]
    fn timestamps_parse_to_milliseconds() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_rfc3339_ms("2025-03-01T12:34:56.789Z"),
            Some(1_740_832_496_789)
        );
        // Finer fractions are cut to the millisecond; offsets apply.
        assert_eq!(
            parse_rfc3339_ms("2025-03-01T12:34:56.789999999Z"),
            Some(1_740_832_496_789)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-03-01T13:34:56.789+01:00"),
            Some(1_740_832_496_789)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        for bad in [
            "",
            "2025-03-01",
            "2025-03-01T12:34:56",
            "2025-13-01T12:34:56Z",
            "2025-03-01T12:34:56.Z",
            "2025-03-01T12:34:56Zjunk",
            "2025-03-01T12:34:56+0100",
            "yyyy-03-01T12:34:56Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_timeline_splits_the_saga_into_its_steps() {
        let timeline = json!([
            {"at": "2025-03-01T12:00:00.100Z", "step": "accepted", "detail": ""},
            {"at": "2025-03-01T12:00:00.103Z", "step": "priced", "detail": ""},
            {"at": "2025-03-01T12:00:00.110Z", "step": "reserved", "detail": ""},
            {"at": "2025-03-01T12:00:00.2Z", "step": "retrying", "detail": ""},
            {"at": "2025-03-01T12:00:00.250Z", "step": "authorized", "detail": ""},
            {"at": "2025-03-01T12:00:00.255Z", "step": "committed", "detail": ""},
            {"at": "2025-03-01T12:00:00.262Z", "step": "captured", "detail": ""},
            {"at": "2025-03-01T12:00:00.262Z", "step": "confirmed", "detail": ""},
            {"at": "2025-03-01T12:00:00.300Z", "step": "cart_cleared", "detail": ""},
        ]);
        let t = saga_times(&timeline).unwrap();
        assert_eq!(t.total_ms, 162);
        assert_eq!(t.phases, [Some(3), Some(7), Some(140), Some(5), Some(7)]);
        assert_eq!(t.phases.iter().flatten().sum::<i64>(), t.total_ms);
        assert_eq!(t.retries, 1);
        assert_eq!(
            t.confirmed_at,
            parse_rfc3339_ms("2025-03-01T12:00:00.262Z").unwrap()
        );

        // A cancelled order has no saga time; a missing step leaves a gap.
        let cancelled = json!([
            {"at": "2025-03-01T12:00:00.100Z", "step": "accepted"},
            {"at": "2025-03-01T12:00:00.120Z", "step": "cancelled"},
        ]);
        assert_eq!(saga_times(&cancelled), None);
        let gap = json!([
            {"at": "2025-03-01T12:00:00.100Z", "step": "accepted"},
            {"at": "2025-03-01T12:00:00.104Z", "step": "priced"},
            {"at": "2025-03-01T12:00:00.130Z", "step": "confirmed"},
        ]);
        let t = saga_times(&gap).unwrap();
        assert_eq!(t.phases, [Some(4), None, None, None, None]);
        assert_eq!(saga_times(&json!("nonsense")), None);
    }

    #[test]
    fn notifications_link_to_orders() {
        assert_eq!(order_of_link("/orders/abc"), Some("abc"));
        assert_eq!(order_of_link("/orders/"), None);
        assert_eq!(order_of_link("/products/abc"), None);
        assert_eq!(order_of_link("/orders/a/b"), None);
    }

    #[test]
    fn log_lines_are_read() {
        assert_eq!(
            split_log_line("orders-0  | hello | there"),
            Some(("orders-0", "hello | there"))
        );
        assert_eq!(split_log_line("ready: http://127.0.0.1:1"), None);
        let line = r#"{"timestamp":"t","level":"WARN","fields":{"message":"saga step failed; it will be resumed","error":"database: locked"},"target":"x"}"#;
        assert_eq!(
            gist(line),
            "WARN saga step failed; it will be resumed: database: locked"
        );
        assert_eq!(gist("plain text"), "plain text");
        assert_eq!(gist(&"x".repeat(500)).len(), 200);
        let mut tally = LogTally::default();
        for _ in 0..3 {
            tally.add(&format!("orders-0 | {line}"));
        }
        tally.add("bazaar    | restarting payments-0");
        tally.add("not a fleet line");
        assert_eq!(tally.lines, 4);
        let top = tally.top(1);
        assert_eq!(top.len(), 1);
        assert_eq!((top[0].instance.as_str(), top[0].count), ("orders-0", 3));
    }

    #[test]
    fn fleet_settings_and_cpu_shares_are_read() {
        assert_eq!(
            parse_fleet_env("BAZAAR_ORDERS_SAGA_CONCURRENCY=8"),
            Ok(("BAZAAR_ORDERS_SAGA_CONCURRENCY".into(), "8".into()))
        );
        assert_eq!(
            parse_fleet_env("BAZAAR_X=a=b"),
            Ok(("BAZAAR_X".into(), "a=b".into()))
        );
        assert!(parse_fleet_env("PATH=/bin").is_err());
        assert!(parse_fleet_env("BAZAAR_X").is_err());
        let before = BTreeMap::from([("a".to_owned(), 100), (MACHINE.to_owned(), 1000)]);
        let after = BTreeMap::from([
            ("a".to_owned(), 150),
            ("b".to_owned(), 20),
            (MACHINE.to_owned(), 1400),
        ]);
        let share = cpu_share(&before, &after, Duration::from_secs(2));
        assert_eq!(
            share,
            [
                (MACHINE.to_owned(), 2.0),
                ("a".to_owned(), 0.25),
                ("b".to_owned(), 0.1)
            ]
        );
    }

    #[test]
    fn prefixes_are_valid_database_names() {
        let prefix = unique_prefix(4_194_304, u32::MAX);
        assert_eq!(prefix, "bench_checkout_4194304_ffffffff");
        assert!(parse_postgres(&format!("postgres://u@h/{prefix}")).is_ok());
        let pg = parse_postgres("postgres://u:pw@db:5432/postgres?sslmode=disable").unwrap();
        assert_eq!(
            run_database(&pg, &prefix).as_str(),
            format!("postgres://u:pw@db:5432/{prefix}?sslmode=disable")
        );
    }

    #[test]
    fn the_command_line_has_defaults_and_checks_rates() {
        let parse = |args: &[&str]| {
            let mut all = vec!["bazaar-bench", "checkout"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all).map(|c| c.scenario) {
                Ok(Scenario::Checkout(a)) => Ok(a),
                Ok(other) => panic!("{other:?}"),
                Err(e) => Err(e.to_string()),
            }
        };
        let a = parse(&[]).unwrap();
        assert_eq!(a.rates, DEFAULT_RATES);
        assert_eq!(a.duration, 10);
        assert!(a.postgres.is_none() && a.nats.is_none() && a.redis.is_none() && !a.json);
        let a = parse(&[
            "--rates",
            "10,20",
            "--duration",
            "3",
            "--postgres",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "--json",
        ])
        .unwrap();
        assert_eq!(a.rates, [10, 20]);
        assert!(a.postgres.is_some() && a.json);
        assert!(parse(&["--rates", "0"]).is_err());
        assert!(parse(&["--rates", "x"]).is_err());
        let e = parse(&["--postgres", "mysql://u:hunter2@h/x"]).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    fn latency_ms(p50: u64, p99: u64) -> Latency {
        Latency {
            p50: p50 * 1_000_000,
            p90: p99 * 1_000_000,
            p99: p99 * 1_000_000,
            p999: p99 * 1_000_000,
            max: p99 * 1_000_000,
            mean: p50 * 1_000_000,
        }
    }

    fn step(rate: u32, saga_p99_ms: u64) -> Step {
        let n = u64::from(rate) * 10;
        Step {
            rate,
            window: Duration::from_secs(10),
            placed: n,
            accepted: n,
            confirmed: n,
            confirmed_in_window: n,
            post: latency_ms(2, 5),
            saga: latency_ms(saga_p99_ms / 2, saga_p99_ms),
            phases: PHASES.iter().map(|_| latency_ms(1, 3)).collect(),
            notified: Some(latency_ms(20, 60)),
            cpu: vec![
                (MACHINE.into(), 1.5),
                ("orders-0".into(), 0.5),
                ("gateway-0".into(), 0.25),
            ],
            ..Step::default()
        }
    }

    fn run(backend: Backend, steps: Vec<Step>) -> Run {
        Run {
            backend,
            events: "embedded event log",
            redis: false,
            env: Vec::new(),
            streams: true,
            idle_cpu: vec![("orders-0".into(), 0.01)],
            steps,
            warnings: vec![Warning {
                instance: "orders-0".into(),
                message: "WARN saga step failed".into(),
                count: 7,
            }],
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn the_target_is_judged_on_sqlite_at_its_rate() {
        let ok = run(Backend::Sqlite, vec![step(50, 80), step(100, 40)]);
        assert_eq!(verdict(std::slice::from_ref(&ok)), Verdict::Met(40.0));
        // PostgreSQL does not count.
        let pg = run(Backend::Postgres, vec![step(100, 10)]);
        assert_eq!(verdict(std::slice::from_ref(&pg)), Verdict::NotMeasured);
        let slow = run(Backend::Sqlite, vec![step(100, 51)]);
        let Verdict::Missed(why) = verdict(&[slow, pg]) else {
            panic!("should miss");
        };
        assert_eq!(why, ["p99 accepted → confirmed 51 ms > 50 ms"]);
        // Fast but not all there.
        let mut partial = step(100, 30);
        partial.accepted = 900;
        partial.errors.insert("503".into(), 100);
        partial.cancelled.insert("out_of_stock".into(), 2);
        let Verdict::Missed(why) = verdict(&[run(Backend::Sqlite, vec![partial])]) else {
            panic!("should miss");
        };
        assert_eq!(why.len(), 3, "{why:?}");
        assert_eq!(
            verdict(&[run(Backend::Sqlite, vec![step(25, 10)])]),
            Verdict::NotMeasured
        );
    }

    #[test]
    fn the_report_shows_every_rate_and_the_verdict() {
        let mut failing = step(200, 300);
        failing.errors.insert("timeout".into(), 4);
        failing.cancelled.insert("timed_out".into(), 1);
        failing.unsettled = 2;
        let report = Report {
            duration: Duration::from_secs(10),
            buyers: 16,
            products: 20,
            runs: vec![
                run(Backend::Sqlite, vec![step(100, 40), failing]),
                run(Backend::Postgres, vec![step(100, 20)]),
            ],
            cores: 2,
            load_average: Some(0.2),
        };
        let table = report_table(&report);
        assert!(table.contains("SQLite, embedded event log"), "{table}");
        assert!(table.contains("PostgreSQL, embedded event log"), "{table}");
        assert!(
            table.contains(
                "at 200/s: failed POSTs: timeout ×4; cancelled: timed_out ×1; 2 still pending"
            ),
            "{table}"
        );
        assert!(table.contains("capture+confirm"), "{table}");
        assert!(table.contains("  idle       –   0.01"), "{table}");
        assert!(
            table.contains("     100    1.50   0.75      0.50      0.25"),
            "{table}"
        );
        assert!(
            table.contains("7 × orders-0: WARN saga step failed"),
            "{table}"
        );
        assert!(table.contains("target: p99 accepted → confirmed ≤ 50 ms at 100 orders/s on SQLite: met (p99 40 ms)"), "{table}");
        let json = report_json(&report);
        assert_eq!(json["target"]["met"], true);
        assert_eq!(json["runs"][0]["backend"], "sqlite");
        assert_eq!(json["runs"][0]["steps"][1]["failed"]["timeout"], 4);
        assert_eq!(
            json["runs"][0]["steps"][0]["accepted_to_confirmed_ms"]["p99"],
            40.0
        );
        assert_eq!(
            json["runs"][0]["steps"][0]["saga_steps_ms"]["pricing"]["p50"],
            1.0
        );
        assert_eq!(json["runs"][0]["steps"][0]["cpu_cores"]["orders-0"], 0.5);
        assert_eq!(json["runs"][0]["steps"][0]["cpu_cores"][MACHINE], 1.5);
        assert_eq!(json["runs"][1]["steps"][0]["accepted_per_s"], 100.0);
    }
}
