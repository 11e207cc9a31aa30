//! The command line, as clap types. Values are checked here (service names,
//! URLs), so a mistake is reported before any process starts.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use url::Url;

use crate::registry;

const ABOUT: &str =
    "Bazaar, a marketplace built as microservices: run the whole fleet or one service.";

const LONG_ABOUT: &str = "\
Bazaar, a marketplace built as microservices.

Without a subcommand, `bazaar` runs `bazaar up`: every service starts as its own
process on this machine, behind the gateway on http://127.0.0.1:8080, with its
data under ./data. The options below are those of `up`.";

/// The `bazaar` command line.
#[derive(Debug, Parser)]
#[command(
    name = "bazaar",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    args_conflicts_with_subcommands = true,
    subcommand_value_name = "COMMAND",
    subcommand_help_heading = "Commands"
)]
pub struct Cli {
    /// What to do; `up` when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `up` given without the word `up`.
    #[command(flatten)]
    pub up: UpArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the whole fleet, each service its own process (the default)
    #[command(long_about = UP_LONG_ABOUT)]
    Up(Box<UpArgs>),
    /// Run one service, configured by BAZAAR_* environment variables (what a container runs)
    #[command(after_long_help = serve_env_help())]
    Serve(ServeArgs),
    /// Measure the system
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Generate the deployment files (Docker Compose, Kubernetes) from the service registry
    #[command(subcommand)]
    Deploy(crate::deploy::DeployCommand),
    /// GET a URL; exit 0 if it answers 2xx, else 1 (the container's health check)
    Probe(crate::probe::ProbeArgs),
}

const UP_LONG_ABOUT: &str = "\
Start the whole fleet on this machine, each service its own process.

Every instance listens on a free port of 127.0.0.1 and gets the endpoints of
the services it calls; the gateway also shares the public port (--port) with
its replicas. Logs of all processes are merged here, one prefix per instance.
A process that dies is restarted (backoff from 100 ms to 10 s). When every
instance is ready, one line `ready: http://127.0.0.1:PORT` is printed (the
shop is at that address), then one `admin:` line: the local admin signs in
there with the password the first start wrote to DIR/admin-password, and
sees the ops console at /ops.
Ctrl-C or SIGTERM stops every process gracefully; if this launcher is killed,
its processes notice (their standard input closes) and stop on their own.

The launcher decides each process's BAZAAR_LISTEN, BAZAAR_INSTANCE,
BAZAAR_DATA_DIR, BAZAAR_UPSTREAM_* and backend URLs; other BAZAAR_* variables
(BAZAAR_LOG, BAZAAR_ENV, …) pass through to every process. Logs are pretty on
a terminal and JSON otherwise, unless BAZAAR_LOG_FORMAT says.";

/// Options of `bazaar up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Directory for every service's data, one sub-directory per service
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Public port of the gateway on 127.0.0.1
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Run N instances of SERVICE (1..=16); repeat the option or separate with commas, e.g. --replicas gateway=2
    #[arg(long, value_name = "SERVICE=N", value_parser = parse_replicas, value_delimiter = ',')]
    pub replicas: Vec<Replicas>,

    /// PostgreSQL server for the services' databases instead of SQLite files:
    /// postgres://USER[:PASSWORD]@HOST[:PORT][/NAME]. Each service gets its own
    /// database NAME_<service> (NAME defaults to bazaar), created if missing
    #[arg(long, value_name = "URL", value_parser = SecretParser(parse_postgres))]
    pub postgres: Option<PostgresUrl>,

    /// NATS JetStream for events instead of the embedded log:
    /// nats://HOST[:PORT][/STREAM]; STREAM (default BAZAAR) names the stream
    /// every service of this fleet shares
    #[arg(long, value_name = "URL", value_parser = parse_nats)]
    pub nats: Option<Url>,

    /// Redis for carts and the gateway's rate limits: redis://HOST[:PORT]
    #[arg(long, value_name = "URL", value_parser = SecretParser(parse_redis))]
    pub redis: Option<RedisUrl>,

    /// Do not seed the demo catalog (3 sellers, ~50 products, created through
    /// the gateway like a client) on first start
    #[arg(long)]
    pub no_seed: bool,
}

/// Arguments of `bazaar serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The service to run
    #[arg(value_name = "SERVICE", value_parser = PossibleValuesParser::new(registry::names()))]
    pub service: String,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Start the fleet N times: time until ready, memory of every process
    #[command(long_about = FLEET_LONG_ABOUT)]
    Fleet(FleetBenchArgs),
    /// The gateway against nginx and no proxy: requests/s and added latency
    #[command(long_about = GATEWAY_LONG_ABOUT)]
    Gateway(GatewayBenchArgs),
    /// The catalog's read path through the gateway: max requests/s within a p99 limit, the gateway's share
    #[command(long_about = crate::bench_catalog::LONG_ABOUT)]
    Catalog(CatalogBenchArgs),
    /// The checkout saga end to end at fixed order rates: orders/s, POST and accepted → confirmed latency
    #[command(long_about = crate::bench_checkout::LONG_ABOUT)]
    Checkout(Box<CheckoutBenchArgs>),
    /// The shop's server-rendered pages through the gateway at fixed rates: latency, errors, CPU per service
    #[command(long_about = crate::bench_storefront::LONG_ABOUT)]
    Storefront(StorefrontBenchArgs),
    /// A process of `bench gateway` (its upstream, load generator or nginx watcher)
    #[command(subcommand, hide = true)]
    GatewayProcess(crate::bench_gateway::Process),
}

const FLEET_LONG_ABOUT: &str = "\
Start the fleet N times (`bazaar up` on a temporary data directory and a free
port), measure the wall time until its `ready:` line, read the resident memory
(VmRSS) of the launcher and of each service process, then stop it with SIGTERM.
Targets: ready within 3 s, the whole fleet within 150 MB.";

/// Options of `bazaar bench fleet`.
#[derive(Debug, Args)]
pub struct FleetBenchArgs {
    /// How many times to start the fleet
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
}

const GATEWAY_LONG_ABOUT: &str = "\
Compare the gateway with nginx proxying the same upstream on this machine, and
with the upstream called directly. The benchmark starts its own upstream (a
minimal HTTP/1.1 server answering GET /api/v1/products/1 with a small JSON
body), `bazaar serve gateway` and nginx (bench/nginx.conf: one worker, upstream
keepalive, no access log), and a load generator in its own process on its own
core (taskset); the servers share another core.

For each path it measures the maximum requests/s (closed loop), then latency
at one fixed rate, half of the slowest proxy's maximum, in open loop: latency
counts from each request's intended send time. A proxy's added latency is its
p50/p99 minus the direct path's.
Targets: throughput ≥ 1.0× nginx's; added p50 ≤ 50 µs, added p99 ≤ 250 µs.

nginx must be installed; bench/gateway-vs-nginx.sh installs Debian's package
and runs this benchmark.";

/// Options of `bazaar bench gateway`.
#[derive(Debug, Args)]
pub struct GatewayBenchArgs {
    /// Seconds measured in each of the six runs (each after 1 s of warm-up)
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub duration: u64,
    /// Keep-alive connections of the load generator
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: u16,
    /// Measure without nginx: only the direct path and the gateway
    #[arg(long)]
    pub skip_nginx: bool,
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Options of `bazaar bench catalog`.
#[derive(Debug, Args)]
pub struct CatalogBenchArgs {
    /// Seconds measured at each rate (each after 1 s of warm-up)
    #[arg(long, value_name = "SECS", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub duration_per_step: u64,
    /// The latency limit: the maximum is the highest rate whose p99 stays within it
    #[arg(long, value_name = "MS", default_value_t = 5.0, value_parser = crate::bench_catalog::parse_p99_ms)]
    pub max_p99_ms: f64,
    /// Keep-alive connections of the load generator
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: u16,
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Options of `bazaar bench checkout`.
#[derive(Debug, Args)]
pub struct CheckoutBenchArgs {
    /// Orders/s measured, in turn (comma-separated)
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_values_t = crate::bench_checkout::DEFAULT_RATES, value_parser = clap::value_parser!(u32).range(1..=2000))]
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
    #[arg(long, value_name = "NAME=VALUE", value_parser = crate::bench_checkout::parse_fleet_env)]
    pub fleet_env: Vec<(String, String)>,
    /// Print one JSON object instead of tables
    #[arg(long)]
    pub json: bool,
}

/// Options of `bazaar bench storefront`.
#[derive(Debug, Args)]
pub struct StorefrontBenchArgs {
    /// Requests/s measured for every page, in turn (comma-separated)
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_values_t = crate::bench_storefront::DEFAULT_RATES, value_parser = clap::value_parser!(u32).range(1..=20_000))]
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

/// `--replicas SERVICE=N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas {
    /// The service, a registered name.
    pub service: &'static str,
    /// How many instances.
    pub count: usize,
}

/// The most instances of one service `up` starts; each is a process, and one
/// machine runs them all.
pub const MAX_REPLICAS: usize = 16;

fn parse_replicas(value: &str) -> Result<Replicas, String> {
    let (name, count) = value
        .split_once('=')
        .ok_or_else(|| format!("expected SERVICE=N, e.g. {}=2", registry::FRONT_DOOR))?;
    let service = registry::find(name.trim()).ok_or_else(|| {
        format!(
            "unknown service {:?}; known services: {}",
            name.trim(),
            registry::names().collect::<Vec<_>>().join(", ")
        )
    })?;
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| format!("{count:?} is not a number of instances"))?;
    if !(1..=MAX_REPLICAS).contains(&count) {
        return Err(format!(
            "the number of instances must be 1 to {MAX_REPLICAS}"
        ));
    }
    Ok(Replicas {
        service: service.name,
        count,
    })
}

/// A PostgreSQL server URL whose path names the fleet's database prefix. Its
/// `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    server: Url,
    prefix: String,
}

impl PostgresUrl {
    /// The database prefix used when the URL has no path.
    pub const DEFAULT_PREFIX: &str = "bazaar";

    /// The prefix of every service's database name (the URL's path).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URL of `service`'s own database: the same server, database
    /// `<prefix>_<service>`.
    pub fn for_service(&self, service: &str) -> Url {
        let mut url = self.server.clone();
        url.set_path(&format!("/{}_{service}", self.prefix));
        url
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PostgresUrl({}:…@{}/{})",
            self.server.username(),
            self.server.host_str().unwrap_or(""),
            self.prefix
        )
    }
}

/// Checks `--postgres`. Errors never repeat the URL: it may hold a password.
pub fn parse_postgres(value: &str) -> Result<PostgresUrl, String> {
    let server = Url::parse(value.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(server.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "the scheme must be postgres://, not {}://",
            server.scheme()
        ));
    }
    if server.host_str().is_none_or(str::is_empty) {
        return Err("the URL needs a host, e.g. postgres://postgres@127.0.0.1:5432".into());
    }
    let path = server.path().trim_matches('/');
    let prefix = if path.is_empty() {
        PostgresUrl::DEFAULT_PREFIX
    } else {
        path
    };
    // The prefix becomes part of every database name, so keep it to what
    // PostgreSQL takes unquoted and leave room for the service suffix.
    if prefix.len() > 40
        || !prefix.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        || !prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "the database name {prefix:?} must be lower-case letters, digits and _ (at most 40)"
        ));
    }
    Ok(PostgresUrl {
        prefix: prefix.to_owned(),
        server,
    })
}

/// A value parser for URLs that may hold a password: unlike clap's own
/// errors, its error does not repeat the value.
#[derive(Clone)]
struct SecretParser<T>(fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for SecretParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let name = arg.map_or_else(|| "the value".to_owned(), |a| format!("'{a}'"));
        let error = |reason: &str| {
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid value for {name} (not shown: it may hold a password): {reason}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| error("not UTF-8"))?;
        (self.0)(text).map_err(|reason| error(&reason))
    }
}

fn parse_nats(value: &str) -> Result<Url, String> {
    parse_server_url(value, "nats", "nats://127.0.0.1:4222")
}

/// A Redis URL; its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub Url);

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.0.host_str().unwrap_or(""))
    }
}

fn parse_redis(value: &str) -> Result<RedisUrl, String> {
    parse_server_url(value, "redis", "redis://127.0.0.1:6379").map(RedisUrl)
}

fn parse_server_url(value: &str, scheme: &str, example: &str) -> Result<Url, String> {
    let url =
        Url::parse(value.trim()).map_err(|e| format!("not a URL: {e}, expected e.g. {example}"))?;
    if url.scheme() != scheme {
        return Err(format!("the scheme must be {scheme}://, e.g. {example}"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("the URL needs a host, e.g. {example}"));
    }
    Ok(url)
}

/// The `BAZAAR_*` variables, for `bazaar serve --help`.
fn serve_env_help() -> String {
    let mut help = String::from(
        "Environment (read once at start; a bad value stops the process with one line naming it):\n",
    );
    let line = |help: &mut String, var: &bazaar_platform::config::Var| {
        help.push_str(&format!(
            "  {}\n      {} [default: {}]\n",
            var.name, var.help, var.default
        ));
    };
    for var in bazaar_platform::config::VARS {
        line(&mut help, var);
    }
    for service in registry::SERVICES.iter().filter(|s| !s.vars.is_empty()) {
        help.push_str(&format!("\nOnly for {}:\n", service.name));
        for var in service.vars {
            line(&mut help, var);
        }
    }
    help
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_up_with_its_options() {
        let cli =
            Cli::try_parse_from(["bazaar", "--port", "9000", "--replicas", "gateway=2"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.up.port, 9000);
        assert_eq!(
            cli.up.replicas,
            [Replicas {
                service: "gateway",
                count: 2
            }]
        );
    }

    #[test]
    fn replicas_are_checked() {
        assert!(parse_replicas("gateway=3").is_ok());
        assert!(parse_replicas("nosuch=2").unwrap_err().contains("gateway"));
        assert!(parse_replicas("gateway").is_err());
        assert!(parse_replicas("gateway=0").is_err());
        assert!(parse_replicas("gateway=17").is_err());
        assert!(parse_replicas("gateway=x").is_err());
    }

    #[test]
    fn postgres_gives_each_service_its_database() {
        let pg = parse_postgres("postgres://u:secret@db:5432/shop?sslmode=disable").unwrap();
        assert_eq!(pg.prefix(), "shop");
        assert_eq!(
            pg.for_service("catalog").as_str(),
            "postgres://u:secret@db:5432/shop_catalog?sslmode=disable"
        );
        let pg = parse_postgres("postgres://u@db").unwrap();
        assert_eq!(
            pg.for_service("orders").as_str(),
            "postgres://u@db/bazaar_orders"
        );
        assert!(!format!("{pg:?}").contains("secret"));
    }

    #[test]
    fn bad_backend_urls_are_refused_without_echoing_secrets() {
        for bad in [
            "mysql://u:pw@h/x",
            "postgres:///x",
            "nonsense",
            "postgres://h/Bad-Name",
        ] {
            let e = parse_postgres(bad).unwrap_err();
            assert!(!e.contains("pw"), "{e}");
        }
        assert!(parse_nats("http://h:4222").is_err());
        assert!(parse_nats("nats://h:4222").is_ok());
        assert!(parse_redis("redis://h:6379").is_ok());
        assert!(parse_redis("h:6379").is_err());
    }

    #[test]
    fn passwords_stay_out_of_command_line_errors() {
        for args in [
            ["bazaar", "up", "--postgres", "mysql://u:hunter2@h/x"],
            ["bazaar", "up", "--redis", "http://u:hunter2@h"],
        ] {
            let e = Cli::try_parse_from(args).unwrap_err().to_string();
            assert!(!e.contains("hunter2") && e.contains("scheme"), "{e}");
        }
    }

    #[test]
    fn serve_knows_only_registered_services() {
        assert!(Cli::try_parse_from(["bazaar", "serve", "gateway"]).is_ok());
        let e = Cli::try_parse_from(["bazaar", "serve", "nosuch"]).unwrap_err();
        assert!(e.to_string().contains("gateway"), "{e}");
    }
}
