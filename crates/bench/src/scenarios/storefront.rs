//! `storefront`: the shop's server-rendered pages through the
//! gateway, on the real fleet of `bazaar up`, at fixed rates.
//!
//! The storefront is a backend-for-frontend: every page is one request to
//! the gateway, which passes it to the storefront, which calls the
//! services' REST APIs over HTTP (catalog, inventory, cart, notifications…)
//! and renders HTML. The benchmark starts the fleet on a temporary data
//! directory (pinned to one core, the load generator alone on another, as
//! `bench catalog` does), waits for the demo catalog, reads its product ids,
//! categories and title words back through the API, registers a customer
//! whose cart holds three products, and then sends open-loop load to each
//! page in turn over its variants (categories, search words, product ids)
//! at each rate. Per page and rate it reports the achieved rate, latency
//! from each request's intended send time, answers that were not 2xx, and
//! the CPU of each process of the fleet during the run, read from `/proc`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::api::Api;
use crate::harness::fleet::Fleet;
use crate::harness::load::{
    LoadResult, LoadSpec, RETRIES, WARMUP, disturbed, get_json, run_load_with_headers,
};
use crate::harness::proc::{
    CoreReading, CpuTicks, MACHINE, ProcessId, SETTLE_LIMIT, cpu_share, load_average, other_work,
    settle,
};
use crate::harness::process::Cores;
use crate::harness::report::{finish, thousands};

/// What `bazaar bench storefront --help` says.
pub const LONG_ABOUT: &str = "\
Measure the storefront's server-rendered pages through the gateway on the
fleet of `bazaar up` (a temporary data directory, SQLite, the demo catalog it
seeds: ~50 products; the gateway's rate limit off). The fleet runs on one
core, the load generator alone on another (taskset).

Each page is one GET to the gateway, which passes every path outside /api/
to the storefront; the storefront calls the services' REST APIs at once and
renders HTML. Pages, each over its variants in turn:
  home          GET /                        catalog (categories, featured products)
  listing       GET /products?category=SLUG  catalog (categories, the listing); every seeded category
  search        GET /products?q=WORD         catalog (categories, the search); words of product titles
  product page  GET /products/ID             catalog and inventory; every seeded product
  cart          GET /cart                    signed in as a customer whose cart holds 3 products:
                                             cart, catalog (each line's product), notifications
                                             (the header's unread count)
The cart page's requests carry the session cookie (bazaar_access, the
customer's access token); every request also carries a bazaar_csrf cookie,
as a browser that has visited the shop before does.

For each page and each rate (--rates), open-loop load for --duration
seconds after 1 s of warm-up: request k is due at k/rate whatever happened
to the ones before, and its latency counts from then. Per page and rate:
achieved requests/s (2xx answers), p50/p99/max, non-2xx answers and
requests that got none, and the CPU (in cores, 1.00 = one core busy, the
warm-up included) of the storefront, the gateway, each backend and the
whole machine over the run, from /proc.

The load generator busy-waits alone on its core: when it got less than 90%
of it, or processes outside the fleet used more than 5% of the fleet's core,
the run was disturbed by other work and is repeated (up to twice), then
marked. The load average at the start is reported.";

/// Options of `bazaar bench storefront`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Requests/s measured for every page, in turn (comma-separated)
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_values_t = DEFAULT_RATES, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub rates: Vec<u32>,
    /// Seconds measured at each rate (each after 1 s of warm-up)
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub duration: u64,
    /// Keep-alive connections of the load generator
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: u16,
    /// Print one JSON object instead of tables
    #[arg(long)]
    pub json: bool,
}

/// The rates measured unless `--rates` says otherwise, requests/s.
pub const DEFAULT_RATES: [u32; 3] = [50, 100, 200];
/// Products in the signed-in customer's cart.
pub const CART_ITEMS: usize = 3;
/// Search words taken from the product titles.
pub const MAX_WORDS: usize = 8;
/// Shortest search word, in letters.
pub const MIN_WORD: usize = 4;
/// The CSRF cookie every request carries, as a returning browser's would
/// (the storefront takes one of 32 characters or more and makes a new one
/// for a request without it).
const CSRF: &str = "bench-csrf-bench-csrf-bench-csrf-bench-csrf";
/// Access tokens live 15 min; the customer signs in again after this.
const TOKEN_REFRESH: Duration = Duration::from_secs(10 * 60);

/// A page of the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `GET /`.
    Home,
    /// `GET /products?category={slug}`.
    Listing,
    /// `GET /products?q={word}`.
    Search,
    /// `GET /products/{id}`.
    Product,
    /// `GET /cart`, signed in, [`CART_ITEMS`] lines.
    Cart,
}

impl Page {
    /// Every page, in the order measured.
    pub const ALL: [Self; 5] = [
        Self::Home,
        Self::Listing,
        Self::Search,
        Self::Product,
        Self::Cart,
    ];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Home => "home",
            Self::Listing => "listing",
            Self::Search => "search",
            Self::Product => "product page",
            Self::Cart => "cart",
        }
    }

    /// Its key in the JSON report.
    pub fn key(self) -> &'static str {
        match self {
            Self::Home => "home",
            Self::Listing => "listing",
            Self::Search => "search",
            Self::Product => "product",
            Self::Cart => "cart",
        }
    }

    /// The request, with its variable part named.
    pub fn request(self) -> &'static str {
        match self {
            Self::Home => "GET /",
            Self::Listing => "GET /products?category={slug}",
            Self::Search => "GET /products?q={word}",
            Self::Product => "GET /products/{id}",
            Self::Cart => "GET /cart",
        }
    }

    /// What the storefront calls to render it.
    pub fn calls(self) -> &'static str {
        match self {
            Self::Home => "catalog ×2",
            Self::Listing | Self::Search => "catalog ×2",
            Self::Product => "catalog, inventory",
            Self::Cart => "cart, then catalog ×3; notifications",
        }
    }

    /// Whether it is asked for signed in.
    pub fn signed_in(self) -> bool {
        self == Self::Cart
    }

    /// The paths asked for in turn.
    pub fn paths(self, site: &Site) -> Vec<String> {
        match self {
            Self::Home => vec!["/".to_owned()],
            Self::Listing => site
                .categories
                .iter()
                .map(|slug| format!("/products?category={slug}"))
                .collect(),
            Self::Search => site
                .words
                .iter()
                .map(|word| format!("/products?q={word}"))
                .collect(),
            Self::Product => site
                .ids
                .iter()
                .map(|id| format!("/products/{id}"))
                .collect(),
            Self::Cart => vec!["/cart".to_owned()],
        }
    }

    /// What its variants are, for the report.
    fn variants(self, n: usize) -> String {
        match self {
            Self::Listing => format!("{n} categories"),
            Self::Search => format!("{n} words"),
            Self::Product => format!("{n} products"),
            Self::Home | Self::Cart => format!("{n} path"),
        }
    }
}

/// The demo catalog as the public API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Site {
    /// Product ids.
    pub ids: Vec<String>,
    /// Category slugs, sorted.
    pub categories: Vec<String>,
    /// Search words from the product titles.
    pub words: Vec<String>,
}

/// Up to `max` distinct words of `titles` for searching: ASCII letters only
/// (nothing to escape in a URL), at least [`MIN_WORD`] long, lower case, in
/// the order first seen.
pub fn search_words<S: AsRef<str>>(titles: &[S], max: usize) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for title in titles {
        for word in title.as_ref().split(|c: char| !c.is_ascii_alphabetic()) {
            if words.len() == max {
                return words;
            }
            let word = word.to_ascii_lowercase();
            if word.len() >= MIN_WORD && !words.contains(&word) {
                words.push(word);
            }
        }
    }
    words
}

/// The headers of `page`'s requests: the CSRF cookie, and the session's
/// access token when it is asked for signed in.
pub fn headers(page: Page, access_token: &str) -> Vec<String> {
    if page.signed_in() {
        vec![format!(
            "Cookie: bazaar_access={access_token}; bazaar_csrf={CSRF}"
        )]
    } else {
        vec![format!("Cookie: bazaar_csrf={CSRF}")]
    }
}

/// `storefront-0` → `storefront`: the service of an instance name.
pub fn service_of(instance: &str) -> &str {
    match instance.rsplit_once('-') {
        Some((service, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => service,
        _ => instance,
    }
}

/// CPU per process → CPU per service (instances summed); the machine's
/// entry is kept as it is.
pub fn by_service(cpu: &[(String, f64)]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (name, cores) in cpu {
        *out.entry(service_of(name).to_owned()).or_insert(0.0) += cores;
    }
    out
}

/// The services the report shows a CPU column for, in order; the rest of
/// the fleet (orders, payments, the launcher) is summed as `other`.
pub const CPU_COLUMNS: [(&str, &str); 7] = [
    ("storefront", "storefront"),
    ("gateway", "gateway"),
    ("catalog", "catalog"),
    ("inventory", "inventory"),
    ("cart", "cart"),
    ("notifications", "notify"),
    ("identity", "identity"),
];

/// One page at one rate.
#[derive(Debug, Clone)]
pub struct Step {
    /// Requests/s asked for.
    pub rate: u32,
    /// What the load generator measured.
    pub result: LoadResult,
    /// CPU per service over the run (warm-up included), in cores, and the
    /// machine's under [`MACHINE`].
    pub cpu: BTreeMap<String, f64>,
    /// Share of the fleet's core used by processes outside the fleet.
    pub other_work: Option<f64>,
    /// Whether other work on the machine disturbed it.
    pub disturbed: bool,
}

impl Step {
    /// CPU of `service`, in cores.
    pub fn cpu_of(&self, service: &str) -> f64 {
        self.cpu.get(service).copied().unwrap_or(0.0)
    }

    /// CPU of the whole fleet, in cores.
    pub fn fleet_cpu(&self) -> f64 {
        self.cpu
            .iter()
            .filter(|(n, _)| *n != MACHINE)
            .map(|(_, c)| c)
            .sum()
    }

    /// CPU of the fleet outside [`CPU_COLUMNS`], in cores.
    pub fn other_cpu(&self) -> f64 {
        self.fleet_cpu()
            - CPU_COLUMNS
                .iter()
                .map(|(service, _)| self.cpu_of(service))
                .sum::<f64>()
    }
}

/// One page, every rate.
#[derive(Debug, Clone)]
pub struct PageResult {
    /// The page.
    pub page: Page,
    /// Paths asked for in turn.
    pub variants: usize,
    /// The rates, in the order run.
    pub steps: Vec<Step>,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Measured time at each rate.
    pub duration: Duration,
    /// Keep-alive connections of the load generator.
    pub connections: u16,
    /// What was pinned where.
    pub cores: String,
    /// Cores this process may use.
    pub machine_cores: usize,
    /// Seeded products.
    pub products: usize,
    /// Their categories.
    pub categories: usize,
    /// Every page measured.
    pub pages: Vec<PageResult>,
    /// The 1-minute load average at the start.
    pub load_average: Option<f64>,
    /// Processes the benchmark started (fleet and load generators).
    pub processes: usize,
    /// Of those, still running after the fleet stopped (then killed).
    pub left_running: usize,
}

// ---------------------------------------------------------------------------
// The report.

fn ms(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{} ms", thousands(ms))
    }
}

fn millis(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn percent(share: Option<f64>) -> String {
    share.map_or("–".to_owned(), |s| format!("{:.0}%", s * 100.0))
}

/// The report as tables.
pub fn report_table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bazaar bench storefront: the shop's pages through the gateway, fleet of `bazaar up` \
         (SQLite, embedded event log, demo catalog, gateway rate limit off)"
    );
    let _ = writeln!(
        out,
        "{} demo products in {} categories; {} keep-alive connections; open loop, latency from \
         intended send time; every rate {} s warm-up + {} s measured",
        r.products,
        r.categories,
        r.connections,
        WARMUP.as_secs(),
        r.duration.as_secs()
    );
    let _ = writeln!(out, "cores: {} ({} in all)", r.cores, r.machine_cores);
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
    let _ = writeln!(out, "\npages (each over its variants in turn):");
    for p in &r.pages {
        let _ = writeln!(
            out,
            "  {:<13} {:<31} {:<14} storefront calls {}{}",
            p.page.name(),
            p.page.request(),
            p.page.variants(p.variants),
            p.page.calls(),
            if p.page.signed_in() {
                " (signed in)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "\n  {:<13} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>9} {:>7}",
        "page", "req/s", "achieved", "p50", "p99", "max", "non-2xx", "errors", "send lag", "others"
    );
    for p in &r.pages {
        for s in &p.steps {
            let l = &s.result.latency;
            let _ = writeln!(
                out,
                "  {:<13} {:>6} {:>9.1} {:>9} {:>9} {:>9} {:>8} {:>7} {:>9} {:>7}{}",
                p.page.name(),
                s.rate,
                s.result.rps(),
                ms(l.p50),
                ms(l.p99),
                ms(l.max),
                s.result.non_2xx,
                s.result.errors,
                ms(s.result.send_lag_p99),
                percent(s.other_work),
                if s.disturbed { "  (disturbed)" } else { "" }
            );
        }
    }
    let _ = writeln!(
        out,
        "\nCPU during each run, in cores (1.00 = one core busy; warm-up included): each service, \
         the rest of the fleet (orders, payments, launcher), the fleet, the whole machine (the \
         load generator too)"
    );
    let _ = write!(out, "  {:<13} {:>6}", "page", "req/s");
    for (_, heading) in CPU_COLUMNS {
        let _ = write!(out, " {heading:>10}");
    }
    let _ = writeln!(out, " {:>6} {:>6} {:>8}", "other", "fleet", "machine");
    for p in &r.pages {
        for s in &p.steps {
            let _ = write!(out, "  {:<13} {:>6}", p.page.name(), s.rate);
            for (service, _) in CPU_COLUMNS {
                let _ = write!(out, " {:>10.2}", s.cpu_of(service));
            }
            let machine = s
                .cpu
                .get(MACHINE)
                .map_or("–".to_owned(), |c| format!("{c:.2}"));
            let _ = writeln!(
                out,
                " {:>6.2} {:>6.2} {machine:>8}",
                s.other_cpu().max(0.0),
                s.fleet_cpu()
            );
        }
    }
    let _ = writeln!(
        out,
        "\nsend lag: p99 of how late the load generator sent after the intended time (large: it or \
         its connections were the limit); others: share of the fleet's core used by processes \
         outside the fleet"
    );
    if r.left_running > 0 {
        let _ = writeln!(
            out,
            "note: {} of the {} processes started were still running after the fleet stopped (killed)",
            r.left_running, r.processes
        );
    }
    out
}

/// The report as one JSON object; durations in ms, CPU in cores.
pub fn report_json(r: &Report) -> Value {
    let pages: Vec<Value> = r
        .pages
        .iter()
        .map(|p| {
            let steps: Vec<Value> = p
                .steps
                .iter()
                .map(|s| {
                    let l = &s.result.latency;
                    json!({
                        "rate": s.rate,
                        "achieved_per_s": s.result.rps(),
                        "ok": s.result.ok,
                        "non_2xx": s.result.non_2xx,
                        "errors": s.result.errors,
                        "window_s": s.result.window_secs,
                        "latency_ms": {
                            "p50": millis(l.p50), "p90": millis(l.p90), "p99": millis(l.p99),
                            "p999": millis(l.p999), "max": millis(l.max), "mean": millis(l.mean),
                        },
                        "send_lag_p99_ms": millis(s.result.send_lag_p99),
                        "max_backlog": s.result.max_backlog,
                        "load_generator_cpu": s.result.cpu,
                        "other_work": s.other_work,
                        "disturbed": s.disturbed,
                        "cpu_cores": s.cpu,
                        "fleet_cpu_cores": s.fleet_cpu(),
                    })
                })
                .collect();
            json!({
                "page": p.page.key(),
                "request": p.page.request(),
                "calls": p.page.calls(),
                "signed_in": p.page.signed_in(),
                "variants": p.variants,
                "steps": steps,
            })
        })
        .collect();
    json!({
        "benchmark": "storefront",
        "duration_s": r.duration.as_secs(),
        "warmup_s": WARMUP.as_secs(),
        "connections": r.connections,
        "cores": r.cores,
        "machine_cores": r.machine_cores,
        "products": r.products,
        "categories": r.categories,
        "load_average_at_start": r.load_average,
        "pages": pages,
        "processes_left_running": r.left_running,
    })
}

// ---------------------------------------------------------------------------
// Running it.

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
    if let Some(load) = load_average {
        say(&format!("load average at start: {load:.2}"));
    }
    let cores = Cores::detect("the fleet (launcher and every service process)");
    let data_dir = tempfile::Builder::new()
        .prefix("bazaar-bench-storefront-")
        .tempdir()
        .context("cannot create a temporary data directory")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;

    say("starting the fleet (`bazaar up`) and waiting for the demo catalog…");
    let fleet = Fleet::start_seeded(bazaar, &cores, data_dir.path())?;
    let mut started = fleet.processes().to_vec();

    let result = measure(args, &exe, &cores, &fleet, &runtime, &mut started, &say);

    say("stopping the fleet…");
    let (stopped, left) = fleet.stop_and_reap(&started);
    let (site, pages) = result?;
    stopped?;
    Ok(Report {
        duration: Duration::from_secs(args.duration),
        connections: args.connections,
        cores: cores.note,
        machine_cores: std::thread::available_parallelism().map_or(1, usize::from),
        products: site.ids.len(),
        categories: site.categories.len(),
        pages,
        load_average,
        processes: started.len(),
        left_running: left,
    })
}

/// CPU ticks so far of the launcher, each of its processes (by instance
/// name) and the machine, and the ticks of the fleet's core.
struct Reading {
    ticks: BTreeMap<String, u64>,
    core: Option<CoreReading>,
}

impl Reading {
    fn now(fleet: &Fleet, core: Option<usize>) -> Self {
        let mut ticks = fleet.cpu_ticks();
        let fleet_ticks = ticks.values().sum();
        if let Some(t) = CpuTicks::now(None) {
            ticks.insert(MACHINE.to_owned(), t.busy);
        }
        let core = core
            .and_then(|c| CpuTicks::now(Some(c)))
            .map(|core| CoreReading {
                core,
                fleet: fleet_ticks,
            });
        Self { ticks, core }
    }
}

/// Everything between the seeded fleet and its stop.
fn measure(
    args: &Args,
    exe: &Path,
    cores: &Cores,
    fleet: &Fleet,
    runtime: &tokio::runtime::Runtime,
    started: &mut Vec<ProcessId>,
    say: &dyn Fn(&str),
) -> anyhow::Result<(Site, Vec<PageResult>)> {
    let gateway = fleet.public;
    let pinned = cores.load.is_some();
    let site = read_site(gateway)?;
    say(&format!(
        "{} products in {} categories; search words: {}",
        site.ids.len(),
        site.categories.len(),
        site.words.join(", ")
    ));
    let api = Api::new(gateway)?;
    let email = format!("shopper-{}@bench.example.com", std::process::id());
    let cart: Vec<String> = site.ids.iter().take(CART_ITEMS).cloned().collect();
    let mut token = runtime.block_on(async {
        let account = api.account(email.clone(), "customer").await?;
        for id in &cart {
            api.expect(
                Method::PUT,
                &format!("/api/v1/cart/items/{id}"),
                Some(&account.token),
                Some(&json!({"quantity": 1})),
                200,
            )
            .await
            .context("filling the customer's cart")?;
        }
        anyhow::Ok(account.token)
    })?;
    let mut signed_in = Instant::now();
    say(&format!(
        "a customer with {CART_ITEMS} products in the cart; checking every page…"
    ));
    for page in Page::ALL {
        runtime.block_on(check_page(&api, page, &site, &cart, &token))?;
    }
    // The seed's events are still being handled (stock, notifications…):
    // let the fleet's core calm down before the first run.
    say(&match settle(cores.servers) {
        Some(waited) => format!(
            "the fleet's core is idle (after {:.1} s)",
            waited.as_secs_f64()
        ),
        None => format!(
            "the fleet's core is still busy after {} s; measuring anyway",
            SETTLE_LIMIT.as_secs()
        ),
    });

    let duration = Duration::from_secs(args.duration);
    let mut pages = Vec::new();
    for page in Page::ALL {
        let paths = page.paths(&site);
        let mut result = PageResult {
            page,
            variants: paths.len(),
            steps: Vec::new(),
        };
        for &rate in &args.rates {
            if page.signed_in() && signed_in.elapsed() > TOKEN_REFRESH {
                token = runtime.block_on(api.login(&email))?.token;
                signed_in = Instant::now();
            }
            let spec = LoadSpec {
                target: gateway,
                paths: paths.clone(),
                connections: args.connections,
                warmup: WARMUP,
                duration,
                rate: Some(f64::from(rate)),
            };
            let what = format!("{} at {rate} req/s", page.name());
            let mut retries = 0;
            let step = loop {
                let before = Reading::now(fleet, cores.servers);
                let from = Instant::now();
                let load =
                    run_load_with_headers(exe, cores, &spec, &headers(page, &token), started)
                        .with_context(|| what.clone())?;
                let after = Reading::now(fleet, cores.servers);
                let cpu = by_service(&cpu_share(&before.ticks, &after.ticks, from.elapsed()));
                let other = before
                    .core
                    .zip(after.core)
                    .and_then(|(b, a)| other_work(b, a));
                let was_disturbed = disturbed(&load, pinned, other);
                if was_disturbed && retries < RETRIES {
                    retries += 1;
                    say(&format!(
                        "{what}: disturbed (the load generator had {} of its core, other \
                         processes {} of the fleet's): again",
                        percent(load.cpu),
                        percent(other)
                    ));
                    continue;
                }
                break Step {
                    rate,
                    result: load,
                    cpu,
                    other_work: other,
                    disturbed: was_disturbed,
                };
            };
            let l = &step.result.latency;
            say(&format!(
                "{what}: achieved {:.1}/s, p50 {}, p99 {}, max {}, non-2xx {}, errors {}; CPU \
                 storefront {:.2}, gateway {:.2}, fleet {:.2} cores{}",
                step.result.rps(),
                ms(l.p50),
                ms(l.p99),
                ms(l.max),
                step.result.non_2xx,
                step.result.errors,
                step.cpu_of("storefront"),
                step.cpu_of("gateway"),
                step.fleet_cpu(),
                if step.disturbed { " (disturbed)" } else { "" }
            ));
            result.steps.push(step);
        }
        pages.push(result);
    }
    Ok((site, pages))
}

/// The seeded products, their categories and search words, read through
/// the gateway.
fn read_site(gateway: SocketAddr) -> anyhow::Result<Site> {
    let listing = get_json(gateway, "/api/v1/products?page=1&limit=100")?;
    let items = listing["items"]
        .as_array()
        .context("no items in the product listing")?;
    let ids: Vec<String> = items
        .iter()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect();
    let mut categories: Vec<String> = items
        .iter()
        .filter_map(|p| p["category"].as_str().map(str::to_owned))
        .filter(|c| !c.is_empty())
        .collect();
    categories.sort_unstable();
    categories.dedup();
    let titles: Vec<&str> = items.iter().filter_map(|p| p["title"].as_str()).collect();
    let words = search_words(&titles, MAX_WORDS);
    if ids.len() < CART_ITEMS || categories.is_empty() || words.is_empty() {
        bail!(
            "the demo catalog has only {} products in {} categories, {} search words",
            ids.len(),
            categories.len(),
            words.len()
        );
    }
    Ok(Site {
        ids,
        categories,
        words,
    })
}

/// Every variant of `page` answers 200 with the headers the load carries;
/// the cart page shows the customer's lines.
async fn check_page(
    api: &Api,
    page: Page,
    site: &Site,
    cart: &[String],
    token: &str,
) -> anyhow::Result<()> {
    for path in page.paths(site) {
        let mut request = api.request(Method::GET, &path, None);
        for header in headers(page, token) {
            if let Some((name, value)) = header.split_once(": ") {
                request = request.header(name, value);
            }
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("GET {path}: no answer"))?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if status != 200 {
            bail!(
                "{} page: GET {path} answered {status}: {}",
                page.name(),
                body.chars().take(300).collect::<String>()
            );
        }
        if page == Page::Cart
            && let Some(missing) = cart
                .iter()
                .find(|id| !body.contains(&format!("/products/{id}")))
        {
            bail!("the cart page does not show product {missing}: not signed in, or not its cart");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::harness::histogram::Latency;
    use crate::{Cli, Scenario};

    fn site() -> Site {
        Site {
            ids: vec!["a1".into(), "b2".into(), "c3".into()],
            categories: vec!["books".into(), "garden".into()],
            words: vec!["lamp".into()],
        }
    }

    #[test]
    fn every_page_has_its_paths() {
        let site = site();
        let paths: Vec<Vec<String>> = Page::ALL.iter().map(|p| p.paths(&site)).collect();
        assert_eq!(
            paths,
            [
                vec!["/".to_owned()],
                vec![
                    "/products?category=books".to_owned(),
                    "/products?category=garden".to_owned()
                ],
                vec!["/products?q=lamp".to_owned()],
                vec![
                    "/products/a1".to_owned(),
                    "/products/b2".to_owned(),
                    "/products/c3".to_owned()
                ],
                vec!["/cart".to_owned()],
            ]
        );
        // Every path is one the load generator takes.
        for path in paths.iter().flatten() {
            assert!(
                crate::harness::load::parse_header(&format!("X: {path}")).is_ok(),
                "{path}"
            );
            assert!(path.starts_with('/') && !path.contains(' '), "{path}");
        }
        assert_eq!(
            Page::ALL.iter().filter(|p| p.signed_in()).count(),
            1,
            "only the cart is signed in"
        );
    }

    #[test]
    fn search_words_come_from_titles() {
        let titles = [
            "Ceramic Mug, 350 ml",
            "Ceramic tea-pot (blue)",
            "Café Table",
            "USB C cable",
        ];
        assert_eq!(
            search_words(&titles, 10),
            ["ceramic", "tea", "pot", "blue", "caf", "table", "cable"]
                .iter()
                .filter(|w| w.len() >= MIN_WORD)
                .map(|w| (*w).to_owned())
                .collect::<Vec<_>>()
        );
        assert_eq!(search_words(&titles, 2), ["ceramic", "blue"]);
        assert!(search_words::<&str>(&[], 5).is_empty());
    }

    #[test]
    fn only_the_cart_carries_the_session() {
        assert_eq!(
            headers(Page::Home, "tok"),
            [format!("Cookie: bazaar_csrf={CSRF}")]
        );
        assert_eq!(
            headers(Page::Cart, "tok"),
            [format!("Cookie: bazaar_access=tok; bazaar_csrf={CSRF}")]
        );
        assert!(CSRF.len() >= 32);
        for page in Page::ALL {
            for header in headers(page, "eyJ.a-b_c.d") {
                assert_eq!(
                    crate::harness::load::parse_header(&header).as_ref(),
                    Ok(&header)
                );
            }
        }
    }

    #[test]
    fn cpu_is_summed_per_service() {
        assert_eq!(service_of("storefront-0"), "storefront");
        assert_eq!(service_of("gateway-12"), "gateway");
        assert_eq!(service_of("launcher"), "launcher");
        assert_eq!(service_of(MACHINE), MACHINE);
        assert_eq!(service_of("pid 42"), "pid 42");
        let cpu = by_service(&[
            ("gateway-0".into(), 0.25),
            ("gateway-1".into(), 0.5),
            ("storefront-0".into(), 0.5),
            (MACHINE.into(), 1.5),
        ]);
        assert_eq!(cpu["gateway"], 0.75);
        assert_eq!(cpu["storefront"], 0.5);
        assert_eq!(cpu[MACHINE], 1.5);
    }

    #[test]
    fn the_command_line_has_defaults_and_checks_its_values() {
        let parse = |args: &[&str]| {
            let mut all = vec!["bazaar-bench", "storefront"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all).map(|c| c.scenario) {
                Ok(Scenario::Storefront(a)) => Ok(a),
                Ok(other) => panic!("{other:?}"),
                Err(e) => Err(e.to_string()),
            }
        };
        let a = parse(&[]).unwrap();
        assert_eq!(a.rates, DEFAULT_RATES);
        assert_eq!((a.duration, a.connections, a.json), (10, 32, false));
        let a = parse(&["--rates", "10,20", "--duration", "3", "--json"]).unwrap();
        assert_eq!(a.rates, [10, 20]);
        assert_eq!(a.duration, 3);
        assert!(a.json);
        assert!(parse(&["--rates", "0"]).is_err());
        assert!(parse(&["--rates", "x"]).is_err());
        assert!(parse(&["--duration", "0"]).is_err());
        assert!(parse(&["--connections", "0"]).is_err());
    }

    fn step(rate: u32, p50_us: u64, p99_us: u64) -> Step {
        Step {
            rate,
            result: LoadResult {
                ok: u64::from(rate) * 10,
                non_2xx: 2,
                errors: 1,
                window_secs: 10.0,
                latency: Latency {
                    p50: p50_us * 1000,
                    p90: p99_us * 1000,
                    p99: p99_us * 1000,
                    p999: p99_us * 1000,
                    max: 2 * p99_us * 1000,
                    mean: p50_us * 1000,
                },
                send_lag_p99: 20_000,
                max_backlog: 1,
                cpu: Some(0.99),
            },
            cpu: BTreeMap::from([
                ("storefront".to_owned(), 0.25),
                ("gateway".to_owned(), 0.125),
                ("orders".to_owned(), 0.01),
                ("launcher".to_owned(), 0.01),
                (MACHINE.to_owned(), 1.5),
            ]),
            other_work: Some(0.01),
            disturbed: rate == 200,
        }
    }

    #[test]
    fn the_report_shows_every_page_and_rate() {
        let report = Report {
            duration: Duration::from_secs(10),
            connections: 32,
            cores: "load generator alone on core 1".into(),
            machine_cores: 2,
            products: 49,
            categories: 8,
            pages: vec![
                PageResult {
                    page: Page::Home,
                    variants: 1,
                    steps: vec![step(50, 2500, 7000), step(200, 3000, 150_000)],
                },
                PageResult {
                    page: Page::Cart,
                    variants: 1,
                    steps: vec![step(100, 4000, 12_345)],
                },
            ],
            load_average: Some(0.2),
            processes: 12,
            left_running: 0,
        };
        let table = report_table(&report);
        assert!(table.contains("load average at start: 0.20\n"), "{table}");
        assert!(
            table.contains(
                "  home              50      50.0   2.50 ms   7.00 ms   14.0 ms        2       1   0.02 ms      1%\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("  home             200     200.0   3.00 ms    150 ms    300 ms"),
            "{table}"
        );
        assert!(table.contains("  (disturbed)\n"), "{table}");
        assert!(
            table.contains("  cart             100       0.25       0.12       0.00"),
            "{table}"
        );
        assert!(table.contains("   0.02   0.40     1.50\n"), "{table}");
        assert!(
            table.contains("cart, then catalog ×3; notifications (signed in)"),
            "{table}"
        );
        assert!(!table.contains("note:"), "{table}");
        let json = report_json(&report);
        assert_eq!(json["benchmark"], "storefront");
        assert_eq!(json["pages"][0]["page"], "home");
        assert_eq!(json["pages"][0]["steps"][1]["latency_ms"]["p99"], 150.0);
        assert_eq!(json["pages"][0]["steps"][1]["disturbed"], true);
        assert_eq!(json["pages"][1]["signed_in"], true);
        assert_eq!(json["pages"][1]["steps"][0]["achieved_per_s"], 100.0);
        assert_eq!(
            json["pages"][1]["steps"][0]["cpu_cores"]["storefront"],
            0.25
        );
        assert_eq!(json["pages"][1]["steps"][0]["non_2xx"], 2);
        assert_eq!(json["load_average_at_start"], 0.2);
    }
}
