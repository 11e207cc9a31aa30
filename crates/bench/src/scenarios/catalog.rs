//! `catalog`: the catalog's read path through the gateway, on
//! the real fleet of `bazaar up`.
//!
//! The benchmark starts the fleet on a temporary data directory (pinned to
//! one core, the load generator alone on another, as `bench gateway` does),
//! waits for the demo catalog that `up` seeds through the gateway, and
//! reads the product ids and categories back through the public API. Then,
//! for the product page (`GET /api/v1/products/{id}`, the ids in turn) and
//! the listing (`GET /api/v1/products?category=…&page=1&limit=20`, the
//! categories in turn), it sends open-loop load at rising fixed rates until
//! the p99 passes the limit, a request fails or the rate is not achieved,
//! bisecting once between the last good rate and the first bad one. The
//! highest good rate is the maximum; at half of it the same load runs once
//! through the gateway and once straight at the catalog instance, and the
//! difference is the gateway's share. The services' own `/metrics` give a
//! second, server-side view of the same split. A run during which the
//! load generator lost part of its core, or the fleet part of its own, to
//! other work is repeated.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::harness::fleet::Fleet;
use crate::harness::histogram::Latency;
use crate::harness::load::{
    LoadResult, LoadSpec, MAX_OTHER_WORK, MIN_GENERATOR_CPU, RETRIES, WARMUP, disturbed, get,
    get_json, run_load,
};
use crate::harness::proc::{
    CoreReading, ProcessId, SETTLE_LIMIT, load_average, other_work, settle,
};
use crate::harness::process::Cores;
use crate::harness::prometheus::durations;
use crate::harness::report::{finish, thousands};

/// What `bazaar bench catalog --help` says.
pub const LONG_ABOUT: &str = "\
Measure the catalog's read path through the gateway on the fleet of `bazaar up`
(a temporary data directory, SQLite, the demo catalog it seeds; the gateway's
rate limit off). The fleet runs on one core, the load generator alone on
another (taskset).

For the product page (GET /api/v1/products/{id}, the seeded ids in turn) and
the listing (GET /api/v1/products?category=SLUG&page=1&limit=20, the seeded
categories in turn) it sends open-loop load at rising rates (250, 500, 1000,
2000, 3000, 4000, 6000, 8000, … req/s; latency from each request's intended
send time) until the p99 exceeds --max-p99-ms, a request fails or the rate
is not achieved, then bisects once between the last good rate and the first
bad one. The highest good rate is the maximum. At half of it, the same load
runs (twice as long as a step) through the gateway and directly against the
catalog instance: the gateway's share of the latency is (through gateway −
direct) / through gateway, at p50 and p99. The services' /metrics give the
server-side mean time of the gateway and of the catalog for the same
requests.

The load generator busy-waits alone on its core: when it got less than 90% of
it, or processes outside the fleet used more than 5% of the fleet's core,
other work on the machine disturbed the run, which is then repeated (up to
twice) and marked if still disturbed.";

/// Options of `bazaar bench catalog`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds measured at each rate (each after 1 s of warm-up)
    #[arg(long, value_name = "SECS", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub duration_per_step: u64,
    /// The latency limit: the maximum is the highest rate whose p99 stays within it
    #[arg(long, value_name = "MS", default_value_t = 5.0, value_parser = parse_p99_ms)]
    pub max_p99_ms: f64,
    /// Keep-alive connections of the load generator
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: u16,
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
}

/// The rates tried in turn, requests/s.
pub const RAMP: &[f64] = &[
    250.0, 500.0, 1000.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0, 12_000.0, 16_000.0, 24_000.0,
    32_000.0,
];
/// Steps between the last good rate and the first bad one, each halving
/// the gap.
pub const REFINE_STEPS: usize = 1;
/// A step whose achieved rate is below this share of its target failed.
pub const MIN_ACHIEVED: f64 = 0.95;
/// The runs at half the maximum rate measure this many times as long as a
/// step: their p99 is the number the benchmark is for.
pub const HALF_RUN_FACTOR: u32 = 2;
/// The listing's page size.
const LISTING_LIMIT: u32 = 20;

/// `--max-p99-ms`: a positive number of milliseconds, at most 10 s.
pub fn parse_p99_ms(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(ms) if ms > 0.0 && ms <= 10_000.0 => Ok(ms),
        _ => Err("expected milliseconds, more than 0 and at most 10000".to_owned()),
    }
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `GET /api/v1/products/{id}`.
    ProductPage,
    /// `GET /api/v1/products?category=…&page=1&limit=20`.
    Listing,
}

impl Target {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::ProductPage => "product page",
            Self::Listing => "listing",
        }
    }

    /// Its key in the JSON report.
    pub fn key(self) -> &'static str {
        match self {
            Self::ProductPage => "product_page",
            Self::Listing => "listing",
        }
    }

    /// The request, with its variable part named.
    pub fn request(self) -> String {
        match self {
            Self::ProductPage => "GET /api/v1/products/{id}".to_owned(),
            Self::Listing => {
                format!("GET /api/v1/products?category={{slug}}&page=1&limit={LISTING_LIMIT}")
            }
        }
    }

    /// The paths asked for in turn.
    pub fn paths(self, catalog: &Seeded) -> Vec<String> {
        match self {
            Self::ProductPage => catalog
                .ids
                .iter()
                .map(|id| format!("/api/v1/products/{id}"))
                .collect(),
            Self::Listing => catalog
                .categories
                .iter()
                .map(|slug| {
                    format!("/api/v1/products?category={slug}&page=1&limit={LISTING_LIMIT}")
                })
                .collect(),
        }
    }
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every request answered 2xx, p99 within the limit, the rate achieved.
    Ok,
    /// Requests failed (no answer, or not 2xx).
    Failed,
    /// The p99 exceeded the limit.
    SlowP99,
    /// Fewer answers than the rate asked for.
    Behind,
}

impl Outcome {
    /// Whether the rate counts as sustained.
    pub fn is_ok(self) -> bool {
        self == Self::Ok
    }

    fn label(self, max_p99_ms: f64) -> String {
        match self {
            Self::Ok => "ok".to_owned(),
            Self::Failed => "requests failed".to_owned(),
            Self::SlowP99 => format!("p99 > {max_p99_ms} ms"),
            Self::Behind => format!("below {:.0}% of the rate", MIN_ACHIEVED * 100.0),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::SlowP99 => "p99_over_limit",
            Self::Behind => "rate_not_achieved",
        }
    }
}

/// Judges one step at `rate` against the p99 limit.
pub fn judge(rate: f64, result: &LoadResult, max_p99: Duration) -> Outcome {
    if result.failed() > 0 {
        Outcome::Failed
    } else if u128::from(result.latency.p99) > max_p99.as_nanos() {
        Outcome::SlowP99
    } else if result.rps() < rate * MIN_ACHIEVED {
        Outcome::Behind
    } else {
        Outcome::Ok
    }
}

/// The next rate to try after the steps `done` (rate, whether it was ok):
/// the ramp's next rate while every step was ok; after the first bad step,
/// up to `refine` rates halfway between the best good rate and the lowest
/// bad one (rounded to 50 req/s, and only while the gap is over 10 % of the
/// good rate); then none.
pub fn next_rate(ramp: &[f64], done: &[(f64, bool)], refine: usize) -> Option<f64> {
    let Some(first_bad) = done.iter().position(|(_, ok)| !ok) else {
        let last = done.last().map_or(0.0, |(rate, _)| *rate);
        return ramp.iter().copied().find(|&rate| rate > last);
    };
    if done.len() - 1 - first_bad >= refine {
        return None;
    }
    let good = max_rate(done)?;
    let bad = lowest_bad(done)?;
    if bad - good <= good * 0.1 {
        return None;
    }
    let mid = ((good + bad) / 2.0 / 50.0).round() * 50.0;
    (mid > good && mid < bad).then_some(mid)
}

fn lowest_bad(done: &[(f64, bool)]) -> Option<f64> {
    done.iter()
        .filter(|(_, ok)| !ok)
        .map(|(rate, _)| *rate)
        .reduce(f64::min)
}

/// The highest good rate below every bad one; `None` if none was good.
pub fn max_rate(done: &[(f64, bool)]) -> Option<f64> {
    let bad = lowest_bad(done).unwrap_or(f64::INFINITY);
    done.iter()
        .filter(|(rate, ok)| *ok && *rate < bad)
        .map(|(rate, _)| *rate)
        .reduce(f64::max)
}

/// The rate of the comparison runs: half the maximum, whole requests/s.
pub fn half_rate(max: f64) -> f64 {
    (max / 2.0).round().max(1.0)
}

/// The gateway's share of a latency: (through gateway − direct) / through
/// gateway; `None` without a latency through the gateway. Negative when the
/// direct run was slower, which only noise explains.
pub fn share(through_gateway_ns: u64, direct_ns: u64) -> Option<f64> {
    (through_gateway_ns > 0)
        .then(|| (through_gateway_ns as f64 - direct_ns as f64) / through_gateway_ns as f64)
}

/// The server's own view of one run: the route that served the most
/// requests between two `/metrics` readings.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteTime {
    /// Its route template.
    pub route: String,
    /// Requests it answered.
    pub requests: u64,
    /// Mean time from request to response headers, ns.
    pub mean_ns: u64,
}

/// The busiest `GET` route between the readings `before` and `after`.
pub fn busiest(
    before: &BTreeMap<String, (u64, f64)>,
    after: &BTreeMap<String, (u64, f64)>,
) -> Option<RouteTime> {
    after
        .iter()
        .map(|(route, (count, sum))| {
            let (count0, sum0) = before.get(route).copied().unwrap_or_default();
            (route, count.saturating_sub(count0), (sum - sum0).max(0.0))
        })
        .filter(|(_, count, _)| *count > 0)
        .max_by_key(|(_, count, _)| *count)
        .map(|(route, requests, secs)| RouteTime {
            route: route.clone(),
            requests,
            mean_ns: (secs * 1e9 / requests as f64).round() as u64,
        })
}

/// The server-side split of the through-gateway run at half rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSide {
    /// The gateway's proxy route.
    pub gateway: RouteTime,
    /// The catalog's route.
    pub catalog: RouteTime,
}

impl ServerSide {
    /// The gateway's share of the gateway's own mean time.
    pub fn gateway_share(&self) -> Option<f64> {
        share(self.gateway.mean_ns, self.catalog.mean_ns)
    }
}

/// One rate of the ramp.
#[derive(Debug, Clone)]
pub struct Step {
    /// Requests/s asked for.
    pub rate: f64,
    /// What the load generator measured.
    pub result: LoadResult,
    /// How it went.
    pub outcome: Outcome,
    /// Share of the fleet's core used by processes outside the fleet.
    pub other_work: Option<f64>,
    /// Other work shared the load generator's or the fleet's core, even
    /// after retries.
    pub disturbed: bool,
}

/// The comparison at half of the maximum rate.
#[derive(Debug, Clone)]
pub struct Half {
    /// Requests/s.
    pub rate: f64,
    /// Through the gateway.
    pub gateway: LoadResult,
    /// Straight at the catalog instance.
    pub direct: LoadResult,
    /// The services' own view of the through-gateway run, if `/metrics` had it.
    pub server: Option<ServerSide>,
    /// Other work shared the load generator's or the fleet's core in either
    /// run, even after retries.
    pub disturbed: bool,
}

impl Half {
    /// The gateway's share at p50 and p99.
    pub fn shares(&self) -> (Option<f64>, Option<f64>) {
        let (g, d) = (&self.gateway.latency, &self.direct.latency);
        (share(g.p50, d.p50), share(g.p99, d.p99))
    }
}

/// Everything measured for one target.
#[derive(Debug, Clone)]
pub struct TargetResult {
    /// What.
    pub target: Target,
    /// How many different paths it asked for in turn.
    pub paths: usize,
    /// The ramp, in the order run.
    pub steps: Vec<Step>,
    /// At half of the maximum, if there is one.
    pub half: Option<Half>,
}

impl TargetResult {
    fn done(&self) -> Vec<(f64, bool)> {
        self.steps
            .iter()
            .map(|s| (s.rate, s.outcome.is_ok()))
            .collect()
    }

    /// The highest rate with p99 within the limit.
    pub fn max_rate(&self) -> Option<f64> {
        max_rate(&self.done())
    }

    /// Whether even the ramp's top rate was fine: the maximum is higher.
    pub fn ramp_exhausted(&self) -> bool {
        self.steps.iter().all(|s| s.outcome.is_ok())
    }
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Measured time of each run.
    pub duration: Duration,
    /// The p99 limit.
    pub max_p99: Duration,
    /// Keep-alive connections of the load generator.
    pub connections: u16,
    /// Which process ran on which core.
    pub cores: String,
    /// Products and categories read back after seeding.
    pub products: usize,
    /// Categories of those.
    pub categories: usize,
    /// One per target.
    pub targets: Vec<TargetResult>,
    /// Processes the benchmark started (the fleet's and the load generators).
    pub processes: usize,
    /// Of those, how many were still running at the end and were killed.
    pub left_running: usize,
    /// The 1-minute load average at the start.
    pub load_average: Option<f64>,
}

impl Report {
    fn max_p99_ms(&self) -> f64 {
        self.max_p99.as_secs_f64() * 1000.0
    }
}

/// The demo catalog as the public API shows it.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Product ids.
    pub ids: Vec<String>,
    /// Category slugs, sorted.
    pub categories: Vec<String>,
}

/// Runs the benchmark on a fleet of the `bazaar` binary and prints its
/// report.
pub fn main(args: &Args, bazaar: &Path) -> ExitCode {
    finish(run(args, bazaar), args.json, report_json, report_table)
}

fn run(args: &Args, bazaar: &Path) -> anyhow::Result<Report> {
    let say = |line: &str| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    if cfg!(debug_assertions) {
        say("note: this is a debug build; its numbers say little (use --release)");
    }
    let load_average = load_average();
    let cores = Cores::detect("the fleet (launcher and every service process)");
    let data_dir = tempfile::Builder::new()
        .prefix("bazaar-bench-catalog-")
        .tempdir()
        .context("cannot create a temporary data directory")?;
    let max_p99 = Duration::from_secs_f64(args.max_p99_ms / 1000.0);
    let duration = Duration::from_secs(args.duration_per_step);

    say("starting the fleet (`bazaar up`) and waiting for the demo catalog…");
    let fleet = Fleet::start_seeded(bazaar, &cores, data_dir.path())?;
    let mut started = fleet.processes().to_vec();
    // The seed's events are still being handled (stock, notifications…):
    // let the fleet's core calm down before the first step.
    let settled = settle(cores.servers);
    say(&match settled {
        Some(waited) => format!(
            "the fleet's core is idle ({:.1} s after the seed)",
            waited.as_secs_f64()
        ),
        None => format!(
            "the fleet's core is still busy {} s after the seed; measuring anyway",
            SETTLE_LIMIT.as_secs()
        ),
    });

    let result = measure(
        args,
        &exe,
        &cores,
        &fleet,
        max_p99,
        duration,
        &mut started,
        &say,
    );

    say("stopping the fleet…");
    let (stopped, left) = fleet.stop_and_reap(&started);
    let (catalog, targets) = result?;
    stopped?;
    Ok(Report {
        duration,
        max_p99,
        connections: args.connections,
        cores: cores.note,
        products: catalog.ids.len(),
        categories: catalog.categories.len(),
        targets,
        processes: started.len(),
        left_running: left,
        load_average,
    })
}

/// Everything between the seeded fleet and its stop.
#[allow(clippy::too_many_arguments)]
fn measure(
    args: &Args,
    exe: &std::path::Path,
    cores: &Cores,
    fleet: &Fleet,
    max_p99: Duration,
    duration: Duration,
    started: &mut Vec<ProcessId>,
    say: &dyn Fn(&str),
) -> anyhow::Result<(Seeded, Vec<TargetResult>)> {
    let gateway = fleet.public;
    let half_duration = duration * HALF_RUN_FACTOR;
    let pinned = cores.load.is_some();
    let fleet_pids: Vec<u32> = started.iter().map(|p| p.pid).collect();
    let reading = || {
        cores
            .servers
            .and_then(|core| CoreReading::now(core, &fleet_pids))
    };
    // One run of the load generator, and the share of the fleet's core other
    // processes used meanwhile; repeated while disturbed and `again` says
    // the result matters.
    let mut run = |spec: &LoadSpec,
                   what: &str,
                   again: &dyn Fn(&LoadResult) -> bool|
     -> anyhow::Result<(LoadResult, Option<f64>)> {
        let mut retries = 0;
        loop {
            let before = reading();
            let load = run_load(exe, cores, spec, started).with_context(|| what.to_owned())?;
            let other = before.zip(reading()).and_then(|(b, a)| other_work(b, a));
            if retries < RETRIES && disturbed(&load, pinned, other) && again(&load) {
                retries += 1;
                say(&format!(
                    "{what}: disturbed (the load generator had {} of its core, other \
                     processes {} of the fleet's): again",
                    percent(load.cpu),
                    percent(other)
                ));
                continue;
            }
            return Ok((load, other));
        }
    };
    let catalog = read_catalog(gateway)?;
    let (gateway_instance, catalog_instance) = instances(gateway)?;
    say(&format!(
        "{} products in {} categories; gateway on {gateway}, catalog instance on {catalog_instance}",
        catalog.ids.len(),
        catalog.categories.len()
    ));

    let mut results = Vec::new();
    for target in [Target::ProductPage, Target::Listing] {
        let paths = target.paths(&catalog);
        for (name, addr) in [("the gateway", gateway), ("the catalog", catalog_instance)] {
            match get(addr, &paths[0]) {
                Ok((200, _)) => {}
                Ok((status, body)) => bail!(
                    "{name} answered GET {} with {status}: {}",
                    paths[0],
                    String::from_utf8_lossy(&body)
                ),
                Err(e) => bail!("{name} did not answer GET {}: {e}", paths[0]),
            }
        }
        let spec = |target_addr: SocketAddr, rate: f64, duration: Duration| LoadSpec {
            target: target_addr,
            paths: paths.clone(),
            connections: args.connections,
            warmup: WARMUP,
            duration,
            rate: Some(rate),
        };
        let mut result = TargetResult {
            target,
            paths: paths.len(),
            steps: Vec::new(),
            half: None,
        };
        while let Some(rate) = next_rate(RAMP, &result.done(), REFINE_STEPS) {
            let what = format!("{} at {} req/s", target.name(), thousands(rate));
            let (load, other) = run(&spec(gateway, rate, duration), &what, &|load| {
                !judge(rate, load, max_p99).is_ok()
            })?;
            let outcome = judge(rate, &load, max_p99);
            say(&format!(
                "{what} through the gateway: achieved {}, p50 {}, p99 {}, {} failed, \
                 load generator CPU {}, other processes on the fleet's core {}: {}",
                thousands(load.rps()),
                ms(load.latency.p50),
                ms(load.latency.p99),
                load.failed(),
                percent(load.cpu),
                percent(other),
                outcome.label(args.max_p99_ms)
            ));
            result.steps.push(Step {
                rate,
                other_work: other,
                disturbed: disturbed(&load, pinned, other),
                result: load,
                outcome,
            });
        }
        if let Some(max) = result.max_rate() {
            let rate = half_rate(max);
            say(&format!(
                "{}: {} req/s (half of {}) through the gateway, then directly…",
                target.name(),
                thousands(rate),
                thousands(max)
            ));
            let before = scrape(gateway_instance).zip(scrape(catalog_instance));
            let what = format!("{} at half rate", target.name());
            let (through, through_other) =
                run(&spec(gateway, rate, half_duration), &what, &|_| true)?;
            let after = scrape(gateway_instance).zip(scrape(catalog_instance));
            let server = before.zip(after).and_then(|((g0, c0), (g1, c1))| {
                Some(ServerSide {
                    gateway: busiest(&g0, &g1)?,
                    catalog: busiest(&c0, &c1)?,
                })
            });
            let what = format!("{} directly at half rate", target.name());
            let (direct, direct_other) =
                run(&spec(catalog_instance, rate, half_duration), &what, &|_| {
                    true
                })?;
            result.half = Some(Half {
                rate,
                disturbed: disturbed(&through, pinned, through_other)
                    || disturbed(&direct, pinned, direct_other),
                gateway: through,
                direct,
                server,
            });
        }
        results.push(result);
    }
    Ok((catalog, results))
}

/// The seeded products and their categories, read through the gateway.
fn read_catalog(gateway: SocketAddr) -> anyhow::Result<Seeded> {
    let page = get_json(gateway, "/api/v1/products?page=1&limit=100")?;
    let items = page["items"]
        .as_array()
        .context("no items in the product listing")?;
    let ids: Vec<String> = items
        .iter()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect();
    let mut categories: Vec<String> = items
        .iter()
        .filter_map(|p| p["category"].as_str().map(str::to_owned))
        .collect();
    categories.sort_unstable();
    categories.dedup();
    if ids.len() < 10 || categories.is_empty() {
        bail!(
            "the demo catalog has only {} products in {} categories",
            ids.len(),
            categories.len()
        );
    }
    Ok(Seeded { ids, categories })
}

/// The gateway's and the catalog's first instance, from `/api/v1/status`;
/// the public address stands for the gateway if it is not listed.
fn instances(gateway: SocketAddr) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let status = get_json(gateway, "/api/v1/status")?;
    let first = |service: &str| -> anyhow::Result<SocketAddr> {
        let url = status["services"]
            .as_array()
            .and_then(|services| services.iter().find(|s| s["name"] == service))
            .and_then(|s| s["instances"][0]["url"].as_str())
            .with_context(|| format!("no {service} instance in /api/v1/status: {status}"))?;
        url::Url::parse(url)
            .ok()
            .and_then(|u| u.socket_addrs(|| None).ok())
            .and_then(|addrs| addrs.into_iter().next())
            .with_context(|| format!("{service}'s instance URL {url:?}"))
    };
    Ok((first("gateway").unwrap_or(gateway), first("catalog")?))
}

/// The request durations `addr`'s `/metrics` reports, if it answers.
fn scrape(addr: SocketAddr) -> Option<BTreeMap<String, (u64, f64)>> {
    match get(addr, "/metrics") {
        Ok((200, body)) => Some(durations(&String::from_utf8_lossy(&body))),
        _ => None,
    }
}

/// Nanoseconds as milliseconds.
fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

fn millis(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn percent(share: Option<f64>) -> String {
    share.map_or("–".to_owned(), |s| format!("{:.0}%", s * 100.0))
}

/// The report as a table.
pub fn report_table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bazaar bench catalog: the catalog's read path through the gateway, fleet of `bazaar up` \
         (SQLite, embedded event log, gateway rate limit off)"
    );
    let _ = writeln!(
        out,
        "{} demo products in {} categories; {} keep-alive connections; open loop, latency from \
         intended send time; every step {} s warm-up + {} s measured, runs at half rate {} s",
        r.products,
        r.categories,
        r.connections,
        WARMUP.as_secs(),
        r.duration.as_secs(),
        (r.duration * HALF_RUN_FACTOR).as_secs()
    );
    let _ = writeln!(out, "cores: {}", r.cores);
    let _ = writeln!(
        out,
        "send lag: p99 of how late the load generator sent after the intended time (large: \
         it or its connections were the limit); others: share of the fleet's core used by \
         processes outside the fleet"
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
    let limit = r.max_p99_ms();
    for t in &r.targets {
        let _ = writeln!(
            out,
            "\n{}: {}, {} in turn, through the gateway",
            t.target.name(),
            t.target.request(),
            match t.target {
                Target::ProductPage => format!("{} ids", t.paths),
                Target::Listing => format!("{} categories", t.paths),
            }
        );
        let _ = writeln!(
            out,
            "  {:>10} {:>9} {:>10} {:>10} {:>10} {:>7} {:>10} {:>7}",
            "req/s", "achieved", "p50", "p99", "p99.9", "failed", "send lag", "others"
        );
        for s in &t.steps {
            let l = &s.result.latency;
            let _ = writeln!(
                out,
                "  {:>10} {:>9} {:>10} {:>10} {:>10} {:>7} {:>10} {:>7}   {}",
                thousands(s.rate),
                thousands(s.result.rps()),
                ms(l.p50),
                ms(l.p99),
                ms(l.p999),
                s.result.failed(),
                ms(s.result.send_lag_p99),
                percent(s.other_work),
                s.outcome.label(limit) + if s.disturbed { " (disturbed)" } else { "" }
            );
        }
        match t.max_rate() {
            Some(max) => {
                let _ = writeln!(
                    out,
                    "  max with p99 ≤ {limit} ms: {} req/s{}",
                    thousands(max),
                    if t.ramp_exhausted() {
                        " (the ramp's top: the real maximum is higher)"
                    } else {
                        ""
                    }
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  max with p99 ≤ {limit} ms: none (not even at {} req/s)",
                    thousands(t.steps.first().map_or(0.0, |s| s.rate))
                );
            }
        }
        if let Some(h) = &t.half {
            let (s50, s99) = h.shares();
            let (g, d) = (&h.gateway.latency, &h.direct.latency);
            let _ = writeln!(
                out,
                "  at half, {} req/s:        {:>10} {:>10} {:>10} {:>7}",
                thousands(h.rate),
                "p50",
                "p99",
                "p99.9",
                "failed"
            );
            for (name, result) in [
                ("through the gateway", &h.gateway),
                ("catalog directly", &h.direct),
            ] {
                let l = &result.latency;
                let _ = writeln!(
                    out,
                    "    {name:<24}{:>10} {:>10} {:>10} {:>7}",
                    ms(l.p50),
                    ms(l.p99),
                    ms(l.p999),
                    result.failed()
                );
            }
            let _ = writeln!(
                out,
                "    {:<24}{:>10} {:>10}   ({:+.2} ms at p50, {:+.2} ms at p99)",
                "gateway's share",
                percent(s50),
                percent(s99),
                millis(g.p50) - millis(d.p50),
                millis(g.p99) - millis(d.p99)
            );
            if h.disturbed {
                let _ = writeln!(
                    out,
                    "    (disturbed: other work shared the load generator's or the fleet's core)"
                );
            }
            if let Some(server) = &h.server {
                let _ = writeln!(
                    out,
                    "    server-side mean (/metrics, to response headers): gateway {} ({}), \
                     catalog {} ({}): gateway's share {}",
                    ms(server.gateway.mean_ns),
                    server.gateway.route,
                    ms(server.catalog.mean_ns),
                    server.catalog.route,
                    percent(server.gateway_share())
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "\nsummary (p99 ≤ {limit} ms)  max req/s   half req/s   gateway p50/p99      catalog p50/p99      gateway's share p50/p99"
    );
    for t in &r.targets {
        let max = t.max_rate().map_or("none".to_owned(), thousands);
        let (half, gateway, direct, shares) = match &t.half {
            Some(h) => {
                let (s50, s99) = h.shares();
                (
                    thousands(h.rate),
                    pair(&h.gateway.latency),
                    pair(&h.direct.latency),
                    format!("{} / {}", percent(s50), percent(s99)),
                )
            }
            None => ("–".into(), "–".into(), "–".into(), "–".into()),
        };
        let _ = writeln!(
            out,
            "  {:<22}{:>9}   {:>10}   {:<20} {:<20} {}",
            t.target.name(),
            max,
            half,
            gateway,
            direct,
            shares
        );
    }
    let disturbed = r.targets.iter().any(|t| {
        t.steps.iter().any(|s| s.disturbed) || t.half.as_ref().is_some_and(|h| h.disturbed)
    });
    if disturbed {
        let _ = writeln!(
            out,
            "\nnote: runs marked disturbed shared a core with other work (the load generator had \
             less than {:.0}% of its core, or other processes more than {:.0}% of the fleet's); \
             bad steps and runs at half rate were repeated up to {RETRIES} times first. Run \
             again on an idle machine",
            MIN_GENERATOR_CPU * 100.0,
            MAX_OTHER_WORK * 100.0
        );
    }
    let _ = writeln!(
        out,
        "\nprocesses: {} started, {}",
        r.processes,
        if r.left_running == 0 {
            "all stopped".to_owned()
        } else {
            format!("{} still running at the end (killed)", r.left_running)
        }
    );
    out
}

/// `0.41 / 1.20 ms`.
fn pair(l: &Latency) -> String {
    format!("{:.2} / {:.2} ms", millis(l.p50), millis(l.p99))
}

/// The report as one JSON object; latencies in ms.
pub fn report_json(r: &Report) -> Value {
    let latency = |l: &Latency| {
        json!({
            "p50_ms": millis(l.p50), "p90_ms": millis(l.p90), "p99_ms": millis(l.p99),
            "p999_ms": millis(l.p999), "max_ms": millis(l.max), "mean_ms": millis(l.mean),
        })
    };
    let run = |result: &LoadResult| {
        json!({
            "achieved_rps": result.rps(),
            "failed": result.failed(),
            "latency": latency(&result.latency),
            "send_lag_p99_ms": millis(result.send_lag_p99),
            "load_generator_cpu": result.cpu,
        })
    };
    let route = |t: &RouteTime| json!({"route": t.route, "requests": t.requests, "mean_ms": millis(t.mean_ns)});
    let targets: serde_json::Map<String, Value> = r
        .targets
        .iter()
        .map(|t| {
            let steps: Vec<Value> = t
                .steps
                .iter()
                .map(|s| {
                    let mut step = run(&s.result);
                    step["rate_rps"] = json!(s.rate);
                    step["outcome"] = json!(s.outcome.key());
                    step["disturbed"] = json!(s.disturbed);
                    step["other_work_on_fleet_core"] = json!(s.other_work);
                    step
                })
                .collect();
            let half = t.half.as_ref().map(|h| {
                let (s50, s99) = h.shares();
                json!({
                    "rate_rps": h.rate,
                    "disturbed": h.disturbed,
                    "through_gateway": run(&h.gateway),
                    "catalog_directly": run(&h.direct),
                    "gateway_share": { "p50": s50, "p99": s99 },
                    "server_side": h.server.as_ref().map(|s| json!({
                        "gateway": route(&s.gateway),
                        "catalog": route(&s.catalog),
                        "gateway_share_of_mean": s.gateway_share(),
                    })),
                })
            });
            let value = json!({
                "request": t.target.request(),
                "paths_in_turn": t.paths,
                "steps": steps,
                "max_rps": t.max_rate(),
                "ramp_exhausted": t.ramp_exhausted(),
                "half": half,
            });
            (t.target.key().to_owned(), value)
        })
        .collect();
    json!({
        "benchmark": "catalog",
        "duration_per_step_s": r.duration.as_secs(),
        "duration_at_half_rate_s": (r.duration * HALF_RUN_FACTOR).as_secs(),
        "warmup_s": WARMUP.as_secs(),
        "max_p99_ms": r.max_p99_ms(),
        "connections": r.connections,
        "cores": r.cores,
        "products": r.products,
        "categories": r.categories,
        "targets": targets,
        "processes": { "started": r.processes, "left_running": r.left_running },
        "load_average_at_start": r.load_average,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(ok: u64, failed: u64, p50_us: u64, p99_us: u64) -> LoadResult {
        LoadResult {
            ok,
            errors: failed,
            window_secs: 1.0,
            latency: Latency {
                p50: p50_us * 1000,
                p99: p99_us * 1000,
                ..Latency::default()
            },
            cpu: Some(0.25),
            ..LoadResult::default()
        }
    }

    const LIMIT: Duration = Duration::from_millis(5);

    #[test]
    fn steps_are_judged_on_errors_p99_and_achieved_rate() {
        assert_eq!(
            judge(1000.0, &result(1000, 0, 300, 5000), LIMIT),
            Outcome::Ok
        );
        assert_eq!(
            judge(1000.0, &result(1000, 0, 300, 5001), LIMIT),
            Outcome::SlowP99
        );
        assert_eq!(
            judge(1000.0, &result(999, 1, 300, 900), LIMIT),
            Outcome::Failed
        );
        assert_eq!(
            judge(1000.0, &result(940, 0, 300, 900), LIMIT),
            Outcome::Behind
        );
        assert_eq!(judge(1000.0, &result(950, 0, 300, 900), LIMIT), Outcome::Ok);
    }

    #[test]
    fn the_ramp_climbs_until_a_bad_step_then_bisects_once() {
        let ramp = [250.0, 500.0, 1000.0, 2000.0, 4000.0];
        assert_eq!(next_rate(&ramp, &[], 1), Some(250.0));
        assert_eq!(next_rate(&ramp, &[(250.0, true)], 1), Some(500.0));
        let mut done = vec![(250.0, true), (500.0, true), (1000.0, true), (2000.0, true)];
        assert_eq!(next_rate(&ramp, &done, 1), Some(4000.0));
        done.push((4000.0, false));
        assert_eq!(next_rate(&ramp, &done, 1), Some(3000.0));
        assert_eq!(next_rate(&ramp, &done, 0), None);
        done.push((3000.0, true));
        assert_eq!(next_rate(&ramp, &done, 1), None);
        assert_eq!(max_rate(&done), Some(3000.0));
        // A second refinement halves the remaining gap.
        assert_eq!(next_rate(&ramp, &done, 2), Some(3500.0));
    }

    #[test]
    fn the_ramp_ends_at_its_top_and_when_nothing_passes() {
        let ramp = [250.0, 500.0];
        assert_eq!(next_rate(&ramp, &[(250.0, true), (500.0, true)], 1), None);
        assert_eq!(max_rate(&[(250.0, true), (500.0, true)]), Some(500.0));
        // The first step bad: nothing to bisect towards.
        assert_eq!(next_rate(&ramp, &[(250.0, false)], 1), None);
        assert_eq!(max_rate(&[(250.0, false)]), None);
        // Good and bad too close together: no refinement.
        assert_eq!(
            next_rate(&ramp, &[(1000.0, true), (1050.0, false)], 3),
            None
        );
    }

    #[test]
    fn the_maximum_is_the_best_good_rate_below_every_bad_one() {
        // A noisy good result above a bad one does not count.
        let done = [
            (1000.0, true),
            (2000.0, false),
            (1500.0, true),
            (3000.0, true),
        ];
        assert_eq!(max_rate(&done), Some(1500.0));
        assert_eq!(half_rate(1500.0), 750.0);
        assert_eq!(half_rate(1.0), 1.0);
        assert_eq!(half_rate(4001.0), 2001.0);
    }

    #[test]
    fn the_gateways_share_is_its_part_of_the_through_gateway_latency() {
        assert_eq!(share(1000, 250), Some(0.75));
        assert_eq!(share(1000, 1000), Some(0.0));
        assert_eq!(share(1000, 1500), Some(-0.5));
        assert_eq!(share(0, 100), None);
        let half = Half {
            rate: 500.0,
            gateway: result(500, 0, 400, 2000),
            direct: result(500, 0, 100, 1500),
            server: None,
            disturbed: false,
        };
        assert_eq!(half.shares(), (Some(0.75), Some(0.25)));
    }

    const METRICS: &str = r#"# HELP http_request_duration_seconds Time from request to response headers.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_sum{service="catalog",instance="catalog-0",method="GET",route="/api/v1/products/{id}"} 0.5
http_request_duration_seconds_count{service="catalog",instance="catalog-0",method="GET",route="/api/v1/products/{id}"} 1000
http_request_duration_seconds_bucket{le="0.0001",service="catalog",instance="catalog-0",method="GET",route="/api/v1/products/{id}"} 10
http_request_duration_seconds_sum{service="catalog",instance="catalog-0",method="GET",route="/readyz"} 0.01
http_request_duration_seconds_count{service="catalog",instance="catalog-0",method="GET",route="/readyz"} 20
http_request_duration_seconds_sum{service="catalog",instance="catalog-0",method="POST",route="/api/v1/products"} 9.0
http_request_duration_seconds_count{service="catalog",instance="catalog-0",method="POST",route="/api/v1/products"} 50000
"#;

    #[test]
    fn server_side_durations_come_from_the_metrics_text() {
        let before = durations(METRICS);
        assert_eq!(before.len(), 2, "{before:?}");
        assert_eq!(before["/api/v1/products/{id}"], (1000, 0.5));
        assert_eq!(before["/readyz"], (20, 0.01));
        let after = durations(
            &METRICS
                .replace("} 1000\n", "} 3000\n")
                .replace("} 0.5\n", "} 1.1\n")
                .replace("} 20\n", "} 21\n"),
        );
        let busiest = busiest(&before, &after).unwrap();
        assert_eq!(busiest.route, "/api/v1/products/{id}");
        assert_eq!(busiest.requests, 2000);
        assert_eq!(busiest.mean_ns, 300_000);
        assert_eq!(super::busiest(&after, &after), None);
        let server = ServerSide {
            gateway: RouteTime {
                route: "/api/v1/{*rest}".into(),
                requests: 2000,
                mean_ns: 400_000,
            },
            catalog: busiest,
        };
        assert_eq!(server.gateway_share(), Some(0.25));
    }

    #[test]
    fn a_run_is_disturbed_when_the_pinned_load_generator_lost_its_core() {
        let mut r = result(100, 0, 300, 900);
        r.cpu = Some(0.99);
        assert!(!disturbed(&r, true, Some(0.01)));
        assert!(disturbed(&r, true, Some(0.2)), "others on the fleet's core");
        r.cpu = Some(0.6);
        assert!(disturbed(&r, true, None));
        assert!(!disturbed(&r, false, Some(0.2)), "unpinned: unknown");
        r.cpu = None;
        assert!(!disturbed(&r, true, None));
    }

    #[test]
    fn max_p99_must_be_positive() {
        assert_eq!(parse_p99_ms("5"), Ok(5.0));
        assert_eq!(parse_p99_ms("0.5"), Ok(0.5));
        assert!(parse_p99_ms("0").is_err());
        assert!(parse_p99_ms("-1").is_err());
        assert!(parse_p99_ms("x").is_err());
    }

    #[test]
    fn the_report_states_the_maximum_the_half_rate_and_the_shares() {
        let step = |rate: f64, p99_us: u64, outcome| Step {
            rate,
            result: result(rate as u64, 0, 300, p99_us),
            outcome,
            other_work: Some(0.01),
            disturbed: false,
        };
        let report = Report {
            duration: Duration::from_secs(3),
            max_p99: LIMIT,
            connections: 64,
            cores: "test".into(),
            products: 48,
            categories: 8,
            targets: vec![
                TargetResult {
                    target: Target::ProductPage,
                    paths: 48,
                    steps: vec![
                        step(2000.0, 1200, Outcome::Ok),
                        step(4000.0, 9000, Outcome::SlowP99),
                        step(3000.0, 3000, Outcome::Ok),
                    ],
                    half: Some(Half {
                        rate: 1500.0,
                        gateway: result(1500, 0, 400, 2000),
                        direct: result(1500, 0, 100, 1500),
                        disturbed: false,
                        server: Some(ServerSide {
                            gateway: RouteTime {
                                route: "/api/v1/{*rest}".into(),
                                requests: 4500,
                                mean_ns: 400_000,
                            },
                            catalog: RouteTime {
                                route: "/api/v1/products/{id}".into(),
                                requests: 4500,
                                mean_ns: 100_000,
                            },
                        }),
                    }),
                },
                TargetResult {
                    target: Target::Listing,
                    paths: 8,
                    steps: vec![Step {
                        disturbed: true,
                        ..step(250.0, 7000, Outcome::SlowP99)
                    }],
                    half: None,
                },
            ],
            processes: 12,
            left_running: 0,
            load_average: Some(0.1),
        };
        let table = report_table(&report);
        assert!(
            table.contains("max with p99 ≤ 5 ms: 3,000 req/s"),
            "{table}"
        );
        assert!(table.contains("p99 > 5 ms"), "{table}");
        assert!(table.contains("at half, 1,500 req/s"), "{table}");
        assert!(table.contains("75%"), "{table}");
        assert!(table.contains("25%"), "{table}");
        assert!(table.contains("none (not even at 250 req/s)"), "{table}");
        assert!(table.contains("12 started, all stopped"), "{table}");
        assert!(table.contains("p99 > 5 ms (disturbed)"), "{table}");
        assert!(table.contains("note: runs marked disturbed"), "{table}");
        let json = report_json(&report);
        assert_eq!(json["targets"]["product_page"]["max_rps"], 3000.0);
        assert_eq!(json["targets"]["product_page"]["half"]["rate_rps"], 1500.0);
        assert_eq!(
            json["targets"]["product_page"]["half"]["gateway_share"]["p50"],
            0.75
        );
        assert_eq!(
            json["targets"]["product_page"]["half"]["server_side"]["gateway_share_of_mean"],
            0.75
        );
        assert_eq!(json["targets"]["listing"]["max_rps"], Value::Null);
        assert_eq!(
            json["targets"]["listing"]["steps"][0]["outcome"],
            "p99_over_limit"
        );
        assert_eq!(json["targets"]["listing"]["steps"][0]["disturbed"], true);
    }
}
