//! The command line, as clap types. Values are checked here (service names,
//! URLs), so a mistake is reported before any process starts.

use std::ffi::{OsStr, OsString};
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
    /// Measure the system (runs bazaar-bench, built beside this binary)
    #[command(disable_help_flag = true)]
    Bench(BenchArgs),
    /// Generate the deployment files (Docker Compose, Kubernetes) from the service registry
    #[command(subcommand)]
    Deploy(crate::deploy::DeployCommand),
    /// GET a URL; exit 0 if it answers 2xx, else 1 (the container's health check)
    Probe(crate::probe::ProbeArgs),
    /// The event log: list and replay what consumer groups gave up on
    #[command(subcommand)]
    Events(crate::events::EventsCommand),
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

/// Arguments of `bazaar bench`: passed as they are to the `bazaar-bench`
/// program, which holds the benchmarks (see `bazaar bench --help`).
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The benchmark and its options, e.g. `fleet --runs 1`
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<OsString>,
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
pub struct SecretParser<T>(pub fn(&str) -> Result<T, String>);

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

/// Checks a NATS URL (`--nats`).
pub fn parse_nats(value: &str) -> Result<Url, String> {
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

/// Checks a Redis URL (`--redis`).
pub fn parse_redis(value: &str) -> Result<RedisUrl, String> {
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
