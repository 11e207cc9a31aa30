//! Typed configuration of one service process, read once at start from
//! `BAZAAR_*` environment variables.
//!
//! Every variable is listed in [`VARS`] with its meaning and default, so the
//! help text, the docs and the deployment generators read one list. A bad
//! value fails fast with one line naming the variable and what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::{Bound, RangeBounds};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use bazaar_bus::clock::Clock;
use url::Url;

/// One documented environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    /// The variable's name.
    pub name: &'static str,
    /// What happens when it is not set.
    pub default: &'static str,
    /// What it means.
    pub help: &'static str,
}

/// Every variable the platform reads. `BAZAAR_UPSTREAM_<SERVICE>` stands for
/// one variable per service called.
pub const VARS: &[Var] = &[
    Var {
        name: "BAZAAR_LISTEN",
        default: "127.0.0.1:<the service's default port>",
        help: "Address the service listens on for both HTTP and gRPC.",
    },
    Var {
        name: "BAZAAR_SHARED_LISTEN",
        default: "unset",
        help: "A second address, bound with SO_REUSEPORT so several replicas share it (the launcher gives it to gateway replicas).",
    },
    Var {
        name: "BAZAAR_INSTANCE",
        default: "<service>-0",
        help: "Name of this instance within its service, shown in logs, metrics and /api/v1/status.",
    },
    Var {
        name: "BAZAAR_DATA_DIR",
        default: "./data/<service>",
        help: "Directory for the service's own files (its SQLite database, generated keys, e-mails).",
    },
    Var {
        name: "BAZAAR_DATABASE_URL",
        default: "SQLite file <data dir>/<service>.db",
        help: "postgres://… URL of the service's own database, created if missing on that server; or sqlite://PATH.",
    },
    Var {
        name: "BAZAAR_EVENT_LOG",
        default: "<data dir>/../events.db",
        help: "File of the embedded event log, shared by every local process; used when BAZAAR_NATS_URL is unset.",
    },
    Var {
        name: "BAZAAR_NATS_URL",
        default: "unset (embedded event log)",
        help: "nats://host:port[/STREAM] of NATS JetStream; events go there instead of the embedded log. STREAM (default BAZAAR) names the JetStream stream.",
    },
    Var {
        name: "BAZAAR_REDIS_URL",
        default: "unset (process memory / SQLite)",
        help: "redis://host:port for shared fast state: carts live there (the cart then reports Redis in /readyz) and the gateway shares its rate limits through it (letting requests pass while it is down).",
    },
    Var {
        name: "BAZAAR_UPSTREAM_<SERVICE>",
        default: "unset",
        help: "Comma-separated base URLs of the instances of a service this one calls, e.g. BAZAAR_UPSTREAM_CATALOG=http://127.0.0.1:7102.",
    },
    Var {
        name: "BAZAAR_ENV",
        default: "development",
        help: "development or production; production refuses development secrets.",
    },
    Var {
        name: "BAZAAR_LOG",
        default: "info",
        help: "Log filter in tracing's EnvFilter syntax, e.g. info,bazaar_platform=debug.",
    },
    Var {
        name: "BAZAAR_LOG_FORMAT",
        default: "auto",
        help: "auto, json or pretty; auto is pretty on a terminal and JSON otherwise.",
    },
    Var {
        name: "BAZAAR_WORKER_THREADS",
        default: "unset (one per core)",
        help: "Threads of the process's async runtime, 1 to 256. `bazaar up` gives its children 1 unless its own environment sets this: a fleet on one machine is many processes sharing its cores, and a thread waking another costs more than it saves there.",
    },
    Var {
        name: "BAZAAR_HEADER_READ_TIMEOUT",
        default: "10s",
        help: "How long a client has to send a request's line and headers, and how long an HTTP/1 connection may sit idle between requests; then it is closed.",
    },
    Var {
        name: "BAZAAR_BODY_READ_TIMEOUT",
        default: "30s",
        help: "Longest wait for the next piece of a request body; a body that stalls longer is refused.",
    },
    Var {
        name: "BAZAAR_MAX_CONNECTIONS",
        default: "10000",
        help: "Connections one listener serves at once (1 to 1000000); further clients wait in the kernel's backlog until one closes.",
    },
    Var {
        name: "BAZAAR_CALL_READ_DEADLINE",
        default: "3s",
        help: "How long a read (GET, HEAD) made for a waiting client may take in all, retries included: the gateway's proxied reads and the storefront's calls. Then the client gets a 504 problem.",
    },
    Var {
        name: "BAZAAR_CALL_READ_ATTEMPT",
        default: "1s",
        help: "How long one attempt of such a read may take before another instance is tried, so a hung instance costs a read this much, not its whole deadline.",
    },
    Var {
        name: "BAZAAR_CALL_WRITE_DEADLINE",
        default: "10s",
        help: "How long a write (POST, PUT, PATCH, DELETE) made for a waiting client may take in all.",
    },
    Var {
        name: "BAZAAR_SHUTDOWN_TIMEOUT",
        default: "10s",
        help: "How long in-flight requests may drain after SIGTERM before the process exits.",
    },
    Var {
        name: "BAZAAR_EXIT_ON_STDIN_CLOSE",
        default: "0",
        help: "1: shut down gracefully when standard input closes (the launcher sets it, so children never outlive it).",
    },
    Var {
        name: "BAZAAR_RESTARTS",
        default: "unset (restarts not counted)",
        help: "How many times the supervisor restarted this instance before (the launcher sets it); answered by bazaar.platform.v1.Instance/Describe and shown in /api/v1/status and the ops console.",
    },
    Var {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        default: "unset (no export)",
        help: "OTLP/gRPC endpoint that receives spans, e.g. http://collector:4317.",
    },
];

/// Whether the process runs as a developer's or as production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local development: generated secrets are fine.
    Development,
    /// Production: development secrets are refused.
    Production,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Which database a service uses.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database (created on the server if missing).
    Postgres(Secret<Url>),
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Self::Postgres(u) => write!(f, "Postgres({u:?})"),
        }
    }
}

/// A value that never shows up in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Self(value)
    }
    /// The secret itself; use it, don't print it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Configuration of one service process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Service name, e.g. `gateway`.
    pub service: String,
    /// Instance name, e.g. `gateway-1`.
    pub instance: String,
    /// Address for HTTP and gRPC.
    pub listen: SocketAddr,
    /// Extra address bound with SO_REUSEPORT, shared by replicas.
    pub shared_listen: Option<SocketAddr>,
    /// Directory for the service's own files.
    pub data_dir: PathBuf,
    /// The service's own database.
    pub database: DatabaseConfig,
    /// The embedded event log's file (used without NATS).
    pub event_log: PathBuf,
    /// NATS JetStream, when events go through it.
    pub nats_url: Option<Url>,
    /// Redis, when shared fast state lives there.
    pub redis_url: Option<Secret<Url>>,
    /// Instances of each service this one calls, by service name.
    pub upstreams: BTreeMap<String, Vec<Url>>,
    /// Development or production.
    pub environment: Environment,
    /// Log filter directive.
    pub log_filter: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Threads of the async runtime; `None` is one per core.
    pub worker_threads: Option<usize>,
    /// Drain time on shutdown.
    pub shutdown_timeout: Duration,
    /// What one client connection may take: see [`ConnectionLimits`].
    pub limits: ConnectionLimits,
    /// Deadlines of calls made while a client waits (reads and writes).
    pub calls: crate::client::Deadlines,
    /// Shut down when stdin closes.
    pub exit_on_stdin_close: bool,
    /// OTLP endpoint for spans.
    pub otlp_endpoint: Option<String>,
    /// The variables this was read from, for the service's own settings
    /// ([`FromEnv`]); shown by name only.
    pub env: Env,
    /// Where the service reads "now" for decisions that depend on elapsed
    /// time: the system clock, a manual one in tests.
    pub clock: Clock,
}

/// What one client connection may take, so a slow or silent client cannot
/// hold the server's sockets or memory (slowloris).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's line and headers must arrive within this, and an HTTP/1
    /// connection may idle this long between requests.
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_read_timeout: Duration,
    /// Connections served at once per listener.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// The JetStream stream a `nats://host:port[/STREAM]` URL names: its path
/// upper-cased, `BAZAAR` when it has none.
pub fn nats_stream(url: &Url) -> String {
    let name = url.path().trim_matches('/');
    if name.is_empty() {
        "BAZAAR".to_owned()
    } else {
        name.to_ascii_uppercase()
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}={value:?}: {reason}")]
pub struct ConfigError {
    /// The variable at fault.
    pub var: String,
    /// Its value.
    pub value: String,
    /// Why it is refused.
    pub reason: String,
}

/// The error refusing `value` of `var` for `reason`. Pass `"[redacted]"` as
/// the value of a secret: it is shown in the message.
pub fn refuse(var: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError {
        var: var.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The variables one reader looks at (those whose names start with its
/// prefix), read the way every Bazaar setting is: surrounding whitespace is
/// ignored, and set but empty is unset.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Keeps the variables of `vars` whose names start with `prefix`,
    /// e.g. `BAZAAR_CART_`.
    pub fn with_prefix(vars: impl IntoIterator<Item = (String, String)>, prefix: &str) -> Self {
        Self::with_prefixes(vars, &[prefix])
    }

    /// Keeps the variables of `vars` whose names start with any of
    /// `prefixes`.
    pub fn with_prefixes(
        vars: impl IntoIterator<Item = (String, String)>,
        prefixes: &[&str],
    ) -> Self {
        let vars = vars
            .into_iter()
            .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)))
            .collect();
        Self { vars }
    }

    /// The value of `name`, trimmed; `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every kept variable with its value as given (not trimmed), in name
    /// order; for families of variables such as `BAZAAR_UPSTREAM_<SERVICE>`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `name` read with `parse`, `None` when unset; a value `parse` refuses
    /// is an error naming `name` and saying what was `expected`.
    ///
    /// # Errors
    /// When `name` is set and `parse` returns `None`.
    pub fn read_optional<T>(
        &self,
        name: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|value| parse(value).ok_or_else(|| refuse(name, value, expected)))
            .transpose()
    }

    /// `name` read with `parse`, `default` when unset; every typed getter
    /// below is this one with a parser.
    ///
    /// # Errors
    /// When `name` is set and `parse` returns `None`.
    pub fn read<T>(
        &self,
        name: &str,
        default: T,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        Ok(self
            .read_optional(name, expected, parse)?
            .unwrap_or(default))
    }

    /// `name` as text, `default` when unset.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// `name` as a duration ([`parse_duration`]: `500ms`, `10s`, `2m`, or
    /// seconds), zero allowed.
    ///
    /// # Errors
    /// When `name` is set to something else.
    pub fn duration(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        self.read(
            name,
            default,
            "expected a duration like 0, 500ms, 10s or 2m",
            parse_duration,
        )
    }

    /// `name` as a duration longer than zero.
    ///
    /// # Errors
    /// When `name` is set to something else.
    pub fn positive_duration(
        &self,
        name: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.read(
            name,
            default,
            "expected a positive duration like 500ms, 10s or 2m",
            |v| parse_duration(v).filter(|d| !d.is_zero()),
        )
    }

    /// `name` as a number within `range`.
    ///
    /// # Errors
    /// When `name` is set to something that is not such a number.
    pub fn number<T>(
        &self,
        name: &str,
        default: T,
        range: impl RangeBounds<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display,
    {
        let expected = match (range.start_bound(), range.end_bound()) {
            (Bound::Included(low), Bound::Included(high)) => {
                format!("expected a number from {low} to {high}")
            }
            (Bound::Included(low), Bound::Unbounded) => format!("expected a number, {low} or more"),
            _ => "expected a number".to_owned(),
        };
        self.read(name, default, &expected, |v| {
            v.parse::<T>().ok().filter(|n| range.contains(n))
        })
    }

    /// `name` as a yes or no: `true`, `1`, `yes` or `false`, `0`, `no`.
    ///
    /// # Errors
    /// When `name` is set to anything else.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        self.read(name, default, "expected true or false", |v| match v {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        })
    }

    /// `name` as one of `choices` (value, meaning), `default` when unset.
    ///
    /// # Errors
    /// When `name` is set to none of them.
    pub fn choice<T: Copy>(
        &self,
        name: &str,
        default: T,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let names: Vec<_> = choices.iter().map(|(n, _)| *n).collect();
        let expected = format!("expected one of {}", names.join(", "));
        self.read(name, default, &expected, |v| {
            choices.iter().find(|(n, _)| *n == v).map(|(_, t)| *t)
        })
    }

    /// `name` as a URL with one of `schemes` and a host; `None` when unset.
    ///
    /// # Errors
    /// When `name` is set to something else.
    pub fn url(&self, name: &str, schemes: &[&str]) -> Result<Option<Url>, ConfigError> {
        self.get(name)
            .map(|value| parse_url(name, value, schemes))
            .transpose()
    }

    /// `name` as a comma-separated list, each item read with `parse`
    /// (blank items skipped); `default` is read the same way when unset. An
    /// error names the item at fault.
    ///
    /// # Errors
    /// When `parse` refuses an item.
    pub fn list<T>(
        &self,
        name: &str,
        default: &str,
        expected: &str,
        mut parse: impl FnMut(&str) -> Option<T>,
    ) -> Result<Vec<T>, ConfigError> {
        self.get(name)
            .unwrap_or(default)
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| parse(item).ok_or_else(|| refuse(name, item, expected)))
            .collect()
    }
}

/// A service's own settings, read from its variables by
/// `bazaar_platform::Server::build` before it touches anything (data dir,
/// port, database), so a bad value stops the process first.
pub trait FromEnv: Sized + Send + Sync + 'static {
    /// Reads the settings from `env` (the process's `BAZAAR_*` variables).
    ///
    /// # Errors
    /// A variable that is set but cannot be used, naming it.
    fn from_env(env: &Env) -> Result<Self, ConfigError>;
}

/// A service without settings of its own.
impl FromEnv for () {
    fn from_env(_: &Env) -> Result<Self, ConfigError> {
        Ok(())
    }
}

impl Environment {
    /// `BAZAAR_ENV` from `env`, for settings whose default depends on it.
    ///
    /// # Errors
    /// When it is neither development nor production.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        env.choice(
            "BAZAAR_ENV",
            Self::Development,
            &[
                ("development", Self::Development),
                ("dev", Self::Development),
                ("production", Self::Production),
                ("prod", Self::Production),
            ],
        )
    }
}

/// Shows the names only: values may be secrets.
impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

impl Config {
    /// The JetStream stream named by the NATS URL's path (default `BAZAAR`).
    pub fn nats_stream(&self) -> Option<String> {
        self.nats_url.as_ref().map(nats_stream)
    }

    /// Reads the configuration of `service` from the process environment.
    pub fn from_env(service: &str, default_port: u16) -> Result<Self, ConfigError> {
        Self::from_vars(service, default_port, std::env::vars())
    }

    /// Reads the configuration from the given variables (tests pass their own).
    pub fn from_vars(
        service: &str,
        default_port: u16,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env = Env::with_prefixes(vars, &["BAZAAR_", "OTEL_"]);

        let listen = match env.get("BAZAAR_LISTEN") {
            Some(v) => v
                .parse()
                .map_err(|_| refuse("BAZAAR_LISTEN", v, "expected HOST:PORT, e.g. 0.0.0.0:8080"))?,
            None => SocketAddr::from(([127, 0, 0, 1], default_port)),
        };
        let shared_listen = env
            .get("BAZAAR_SHARED_LISTEN")
            .map(|v| {
                v.parse()
                    .map_err(|_| refuse("BAZAAR_SHARED_LISTEN", v, "expected HOST:PORT"))
            })
            .transpose()?;
        let instance = env
            .get("BAZAAR_INSTANCE")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{service}-0"));
        let data_dir = env
            .get("BAZAAR_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("data").join(service));
        let database = match env.get("BAZAAR_DATABASE_URL") {
            None => DatabaseConfig::Sqlite(data_dir.join(format!("{service}.db"))),
            Some(v) => {
                if let Some(path) = v.strip_prefix("sqlite://") {
                    if path.is_empty() {
                        return Err(refuse(
                            "BAZAAR_DATABASE_URL",
                            v,
                            "sqlite:// needs a file path",
                        ));
                    }
                    DatabaseConfig::Sqlite(PathBuf::from(path))
                } else {
                    let url = Url::parse(v).map_err(|e| {
                        refuse(
                            "BAZAAR_DATABASE_URL",
                            "[redacted]",
                            &format!("not a URL: {e}"),
                        )
                    })?;
                    if !matches!(url.scheme(), "postgres" | "postgresql") {
                        return Err(refuse(
                            "BAZAAR_DATABASE_URL",
                            url.scheme(),
                            "scheme must be postgres:// or sqlite://",
                        ));
                    }
                    if url.path().trim_start_matches('/').is_empty() {
                        return Err(refuse(
                            "BAZAAR_DATABASE_URL",
                            "[redacted]",
                            "name the service's database in the path, e.g. postgres://host/bazaar_catalog",
                        ));
                    }
                    DatabaseConfig::Postgres(Secret::new(url))
                }
            }
        };
        let event_log = env.get("BAZAAR_EVENT_LOG").map_or_else(
            || {
                data_dir
                    .parent()
                    .unwrap_or_else(|| std::path::Path::new("."))
                    .join("events.db")
            },
            PathBuf::from,
        );
        let nats_url = env
            .get("BAZAAR_NATS_URL")
            .map(|v| parse_url("BAZAAR_NATS_URL", v, &["nats"]))
            .transpose()?;
        if let Some(url) = &nats_url {
            let stream = url.path().trim_matches('/');
            if !stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(refuse(
                    "BAZAAR_NATS_URL",
                    url.as_str(),
                    "the path names the stream: letters, digits, _ and - only",
                ));
            }
        }
        let redis_url = env
            .get("BAZAAR_REDIS_URL")
            .map(|v| parse_url("BAZAAR_REDIS_URL", v, &["redis"]).map(Secret::new))
            .transpose()?;

        let mut upstreams = BTreeMap::new();
        for (key, value) in env.iter() {
            let Some(name) = key.strip_prefix("BAZAAR_UPSTREAM_") else {
                continue;
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                return Err(refuse(
                    key,
                    value,
                    "service name must be upper-case letters",
                ));
            }
            let mut urls = Vec::new();
            for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                urls.push(parse_url(key, part, &["http"])?);
            }
            if urls.is_empty() {
                return Err(refuse(
                    key,
                    value,
                    "expected one or more comma-separated http:// URLs",
                ));
            }
            upstreams.insert(name.to_ascii_lowercase(), urls);
        }

        let environment = Environment::from_env(&env)?;
        let log_filter = env.string("BAZAAR_LOG", "info");
        tracing_subscriber::EnvFilter::try_new(&log_filter)
            .map_err(|e| refuse("BAZAAR_LOG", &log_filter, &e.to_string()))?;
        let log_format = env.choice(
            "BAZAAR_LOG_FORMAT",
            LogFormat::Auto,
            &[
                ("auto", LogFormat::Auto),
                ("json", LogFormat::Json),
                ("pretty", LogFormat::Pretty),
            ],
        )?;
        let worker_threads = env.read_optional(
            "BAZAAR_WORKER_THREADS",
            "expected a number from 1 to 256",
            |v| v.parse::<usize>().ok().filter(|n| (1..=256).contains(n)),
        )?;
        let shutdown_timeout = env.duration("BAZAAR_SHUTDOWN_TIMEOUT", Duration::from_secs(10))?;
        let defaults = ConnectionLimits::default();
        let limits = ConnectionLimits {
            header_read_timeout: env
                .positive_duration("BAZAAR_HEADER_READ_TIMEOUT", defaults.header_read_timeout)?,
            body_read_timeout: env
                .positive_duration("BAZAAR_BODY_READ_TIMEOUT", defaults.body_read_timeout)?,
            max_connections: env.number(
                "BAZAAR_MAX_CONNECTIONS",
                defaults.max_connections,
                1..=1_000_000,
            )?,
        };
        let calls = {
            let defaults = crate::client::Deadlines::default();
            crate::client::Deadlines {
                read: env.positive_duration("BAZAAR_CALL_READ_DEADLINE", defaults.read)?,
                read_attempt: env
                    .positive_duration("BAZAAR_CALL_READ_ATTEMPT", defaults.read_attempt)?,
                write: env.positive_duration("BAZAAR_CALL_WRITE_DEADLINE", defaults.write)?,
            }
        };
        let exit_on_stdin_close = env.flag("BAZAAR_EXIT_ON_STDIN_CLOSE", false)?;
        let otlp_endpoint = env
            .get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|v| {
                parse_url("OTEL_EXPORTER_OTLP_ENDPOINT", v, &["http", "https"])
                    .map(|_| v.to_owned())
            })
            .transpose()?;

        Ok(Self {
            service: service.to_owned(),
            instance,
            listen,
            shared_listen,
            data_dir,
            database,
            event_log,
            nats_url,
            redis_url,
            upstreams,
            environment,
            log_filter,
            log_format,
            worker_threads,
            shutdown_timeout,
            limits,
            calls,
            exit_on_stdin_close,
            otlp_endpoint,
            env,
            clock: Clock::system(),
        })
    }

    /// A configuration for tests: port 0 on loopback, SQLite in `data_dir`,
    /// quiet logs.
    pub fn for_test(service: &str, data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            service: service.to_owned(),
            instance: format!("{service}-0"),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            shared_listen: None,
            database: DatabaseConfig::Sqlite(data_dir.join(format!("{service}.db"))),
            event_log: data_dir.join("events.db"),
            data_dir,
            nats_url: None,
            redis_url: None,
            upstreams: BTreeMap::new(),
            environment: Environment::Development,
            log_filter: "warn".to_owned(),
            log_format: LogFormat::Pretty,
            worker_threads: None,
            shutdown_timeout: Duration::from_secs(5),
            limits: ConnectionLimits::default(),
            calls: crate::client::Deadlines::default(),
            exit_on_stdin_close: false,
            otlp_endpoint: None,
            // Services under test read their own settings as in a process.
            env: Env::with_prefix(std::env::vars(), "BAZAAR_"),
            clock: Clock::system(),
        }
    }
}

fn parse_url(var: &str, value: &str, schemes: &[&str]) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| refuse(var, value, &format!("not a URL: {e}")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(refuse(
            var,
            value,
            &format!("scheme must be one of {}", schemes.join(", ")),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse(var, value, "the URL needs a host"));
    }
    Ok(url)
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_local_and_sqlite() {
        let c = Config::from_vars("catalog", 7102, vars(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7102".parse().unwrap());
        assert_eq!(c.instance, "catalog-0");
        assert_eq!(
            c.database,
            DatabaseConfig::Sqlite(PathBuf::from("data/catalog/catalog.db"))
        );
        assert_eq!(c.event_log, PathBuf::from("data/events.db"));
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.worker_threads, None);
        assert!(c.upstreams.is_empty());
        let c = Config::from_vars("catalog", 1, vars(&[("BAZAAR_WORKER_THREADS", "1")])).unwrap();
        assert_eq!(c.worker_threads, Some(1));
    }

    #[test]
    fn upstreams_are_lists_of_urls_by_service() {
        let c = Config::from_vars(
            "gateway",
            8080,
            vars(&[
                (
                    "BAZAAR_UPSTREAM_CATALOG",
                    "http://127.0.0.1:1, http://127.0.0.1:2",
                ),
                ("BAZAAR_UPSTREAM_IDENTITY", "http://127.0.0.1:3"),
            ]),
        )
        .unwrap();
        assert_eq!(c.upstreams["catalog"].len(), 2);
        assert_eq!(c.upstreams["identity"][0].as_str(), "http://127.0.0.1:3/");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("BAZAAR_LISTEN", "nowhere"),
            ("BAZAAR_DATABASE_URL", "mysql://x/y"),
            ("BAZAAR_DATABASE_URL", "postgres://host"),
            ("BAZAAR_NATS_URL", "http://x"),
            ("BAZAAR_NATS_URL", "nats://x/a.b"),
            ("BAZAAR_UPSTREAM_CATALOG", "ftp://x"),
            ("BAZAAR_UPSTREAM_CATALOG", ","),
            ("BAZAAR_ENV", "staging"),
            ("BAZAAR_LOG_FORMAT", "xml"),
            ("BAZAAR_SHUTDOWN_TIMEOUT", "soon"),
            ("BAZAAR_EXIT_ON_STDIN_CLOSE", "maybe"),
            ("BAZAAR_WORKER_THREADS", "0"),
            ("BAZAAR_WORKER_THREADS", "many"),
            ("BAZAAR_LOG", "=[=="),
        ] {
            let e = Config::from_vars("catalog", 1, vars(&[(var, value)])).unwrap_err();
            assert_eq!(e.var, var, "{e}");
            assert!(e.to_string().starts_with("invalid configuration: "), "{e}");
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = Config::from_vars(
            "catalog",
            1,
            vars(&[(
                "BAZAAR_DATABASE_URL",
                "postgres://u:hunter2@h/bazaar_catalog",
            )]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn env_keeps_its_prefix_and_treats_blank_as_unset() {
        let env = Env::with_prefix(
            vars(&[
                ("BAZAAR_CART_A", "  x "),
                ("BAZAAR_CART_B", "   "),
                ("BAZAAR_CART_C", ""),
                ("BAZAAR_CATALOG_A", "y"),
                ("HOME", "/root"),
            ]),
            "BAZAAR_CART_",
        );
        assert_eq!(env.get("BAZAAR_CART_A"), Some("x"));
        assert_eq!(env.get("BAZAAR_CART_B"), None);
        assert_eq!(env.get("BAZAAR_CART_C"), None);
        assert_eq!(env.get("BAZAAR_CART_D"), None);
        assert_eq!(env.get("BAZAAR_CATALOG_A"), None);
        assert_eq!(env.get("HOME"), None);
        let raw: Vec<_> = env.iter().collect();
        assert_eq!(
            raw,
            [
                ("BAZAAR_CART_A", "  x "),
                ("BAZAAR_CART_B", "   "),
                ("BAZAAR_CART_C", "")
            ]
        );
    }

    #[test]
    fn env_with_prefixes_keeps_each() {
        let env = Env::with_prefixes(
            vars(&[("BAZAAR_X", "1"), ("OTEL_Y", "2"), ("OTHER", "3")]),
            &["BAZAAR_", "OTEL_"],
        );
        assert_eq!(env.get("BAZAAR_X"), Some("1"));
        assert_eq!(env.get("OTEL_Y"), Some("2"));
        assert_eq!(env.get("OTHER"), None);
    }

    #[test]
    fn env_debug_shows_names_not_values() {
        let env = Env::with_prefix(vars(&[("BAZAAR_PASSWORD", "hunter2")]), "BAZAAR_");
        let shown = format!("{env:?}");
        assert!(shown.contains("BAZAAR_PASSWORD"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn refuse_names_the_variable_value_and_reason() {
        let e = refuse("BAZAAR_X", "soon", "expected e.g. 10s");
        assert_eq!(e.var, "BAZAAR_X");
        assert_eq!(e.value, "soon");
        assert_eq!(e.reason, "expected e.g. 10s");
        assert_eq!(
            e.to_string(),
            "invalid configuration: BAZAAR_X=\"soon\": expected e.g. 10s"
        );
    }

    #[test]
    fn getters_default_when_unset_and_name_the_variable_when_bad() {
        let env = Env::with_prefix(
            vars(&[
                ("BAZAAR_T_D", "250ms"),
                ("BAZAAR_T_ZERO", "0"),
                ("BAZAAR_T_N", "7"),
                ("BAZAAR_T_F", "0.5"),
                ("BAZAAR_T_YES", "yes"),
                ("BAZAAR_T_LIST", " a, ,b "),
                ("BAZAAR_T_URL", "https://shop.example/"),
                ("BAZAAR_T_BAD", "soon"),
            ]),
            "BAZAAR_T_",
        );
        let second = Duration::from_secs(1);
        assert_eq!(
            env.duration("BAZAAR_T_D", second).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            env.duration("BAZAAR_T_ZERO", second).unwrap(),
            Duration::ZERO
        );
        assert_eq!(env.duration("BAZAAR_T_UNSET", second).unwrap(), second);
        assert_eq!(
            env.positive_duration("BAZAAR_T_ZERO", second)
                .unwrap_err()
                .var,
            "BAZAAR_T_ZERO"
        );
        assert_eq!(env.number("BAZAAR_T_N", 1_u32, 1..=10).unwrap(), 7);
        assert_eq!(env.number("BAZAAR_T_UNSET", 3_u32, 1..=10).unwrap(), 3);
        let e = env.number("BAZAAR_T_N", 1_u32, 1..=5).unwrap_err();
        assert_eq!((e.var.as_str(), e.value.as_str()), ("BAZAAR_T_N", "7"));
        assert_eq!(e.reason, "expected a number from 1 to 5");
        assert_eq!(env.number("BAZAAR_T_F", 0.0, 0.0..=1.0).unwrap(), 0.5);
        assert!(env.flag("BAZAAR_T_YES", false).unwrap());
        assert!(!env.flag("BAZAAR_T_UNSET", false).unwrap());
        assert_eq!(
            env.flag("BAZAAR_T_BAD", false).unwrap_err().var,
            "BAZAAR_T_BAD"
        );
        assert_eq!(
            env.choice("BAZAAR_T_BAD", 1, &[("one", 1), ("two", 2)])
                .unwrap_err()
                .reason,
            "expected one of one, two"
        );
        assert_eq!(env.string("BAZAAR_T_UNSET", "x"), "x");
        let list = env.list("BAZAAR_T_LIST", "", "a letter", |v| Some(v.to_owned()));
        assert_eq!(list.unwrap(), ["a", "b"]);
        let e = env
            .list("BAZAAR_T_LIST", "", "expected a", |v| {
                (v == "a").then_some(())
            })
            .unwrap_err();
        assert_eq!((e.var.as_str(), e.value.as_str()), ("BAZAAR_T_LIST", "b"));
        assert_eq!(
            env.list("BAZAAR_T_UNSET", "c,d", "", |v| Some(v.to_owned()))
                .unwrap(),
            ["c", "d"]
        );
        assert!(env.url("BAZAAR_T_URL", &["https"]).unwrap().is_some());
        assert_eq!(
            env.url("BAZAAR_T_URL", &["http"]).unwrap_err().var,
            "BAZAAR_T_URL"
        );
        assert_eq!(env.url("BAZAAR_T_UNSET", &["http"]).unwrap(), None);
    }

    #[test]
    fn the_config_keeps_its_variables_for_the_services_settings() {
        let c = Config::from_vars(
            "cart",
            1,
            vars(&[("BAZAAR_CART_REDIS_PREFIX", "p:"), ("HOME", "/root")]),
        )
        .unwrap();
        assert_eq!(c.env.get("BAZAAR_CART_REDIS_PREFIX"), Some("p:"));
        assert_eq!(c.env.get("HOME"), None);
        assert_eq!(
            Environment::from_env(&c.env).unwrap(),
            Environment::Development
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("2h"), None);
    }
}
