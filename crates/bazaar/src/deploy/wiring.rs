//! What every deployed service process is given, whatever runs it: the
//! `BAZAAR_*` settings, which variables are secrets, the timings of a
//! graceful stop and the pinned images of the engines. Compose and
//! Kubernetes differ only in host names and in how secrets arrive.

use std::time::Duration;

use bazaar_platform::config::{VARS, Var, parse_duration};

use crate::registry::{SERVICES, ServiceDef};

/// The service image, built by the `Dockerfile` at the workspace root. Its
/// tag follows the crate's version.
pub const IMAGE: &str = concat!("bazaar:", env!("CARGO_PKG_VERSION"));
/// Where the image puts the binary.
pub const BINARY: &str = "/usr/local/bin/bazaar";
/// The image's user and group (distroless `nonroot`).
pub const USER_ID: i64 = 65532;
/// Each container's `BAZAAR_DATA_DIR`: a scratch mount, since the root
/// filesystem is read-only. At scale nothing durable lives there.
pub const DATA_DIR: &str = "/var/lib/bazaar";

/// The one PostgreSQL role of the fleet; every service creates its own
/// database `bazaar_<service>` on first start (the platform's `db.rs`
/// creates a missing database), so the role needs `CREATEDB`.
pub const DATABASE_USER: &str = "bazaar";

/// Pinned images of the engines in Compose (and PostgreSQL's in CloudNativePG).
pub mod images {
    /// PostgreSQL server.
    pub const POSTGRES: &str = "postgres:17.5-bookworm";
    /// NATS with JetStream (Alpine: its health check needs `wget`).
    pub const NATS: &str = "nats:2.11.6-alpine";
    /// Redis (Alpine: `redis-cli` for its health check).
    pub const REDIS: &str = "redis:7.4.2-alpine";
    /// OpenTelemetry Collector (core distribution: OTLP in, OTLP out).
    pub const OTEL_COLLECTOR: &str = "otel/opentelemetry-collector:0.120.0";
    /// Jaeger v2, all in one, traces kept in memory.
    pub const JAEGER: &str = "jaegertracing/jaeger:2.5.0";
    /// Prometheus.
    pub const PROMETHEUS: &str = "prom/prometheus:v3.5.0";
    /// Grafana.
    pub const GRAFANA: &str = "grafana/grafana:11.6.0";
}

/// Ports of the engines.
pub mod ports {
    /// PostgreSQL.
    pub const POSTGRES: u16 = 5432;
    /// NATS clients.
    pub const NATS: u16 = 4222;
    /// NATS monitoring (`/healthz`).
    pub const NATS_MONITOR: u16 = 8222;
    /// Redis.
    pub const REDIS: u16 = 6379;
    /// OTLP over gRPC.
    pub const OTLP: u16 = 4317;
    /// Jaeger's UI.
    pub const JAEGER_UI: u16 = 16686;
    /// Prometheus.
    pub const PROMETHEUS: u16 = 9090;
    /// Grafana.
    pub const GRAFANA: u16 = 3000;
}

/// Seconds Kubernetes waits before sending SIGTERM (the `preStop` sleep), so
/// endpoints and load balancers stop sending new requests first.
pub const PRE_STOP_SECS: u64 = 5;
/// After the drain, the platform gives its event tasks up to 5 s to stop
/// (`Server::run_until`), then closes the database pool; this covers both.
const AFTER_DRAIN_SECS: u64 = 10;

/// The platform's drain time, `BAZAAR_SHUTDOWN_TIMEOUT`'s documented default.
pub fn shutdown_timeout() -> Duration {
    VARS.iter()
        .find(|v| v.name == "BAZAAR_SHUTDOWN_TIMEOUT")
        .and_then(|v| parse_duration(v.default))
        .unwrap_or(Duration::from_secs(10))
}

/// How long a container may take to stop after SIGTERM, in seconds: the
/// drain and what follows it. Compose's `stop_grace_period`.
pub fn stop_secs() -> u64 {
    shutdown_timeout().as_secs() + AFTER_DRAIN_SECS
}

/// Kubernetes' `terminationGracePeriodSeconds`: it counts from the start of
/// the `preStop` hook.
pub fn termination_grace_secs() -> u64 {
    PRE_STOP_SECS + stop_secs()
}

/// `BAZAAR_LISTEN` inside a container: every interface, the registry's port.
pub fn listen(service: &ServiceDef) -> String {
    format!("0.0.0.0:{}", service.default_port)
}

/// The service's own database on the fleet's PostgreSQL server.
pub fn database_name(service: &ServiceDef) -> String {
    format!("bazaar_{}", service.name)
}

/// Settings that are the same for every service and every deployment, in
/// the order they are written.
pub fn settings() -> Vec<(&'static str, String)> {
    vec![
        ("BAZAAR_ENV", "production".to_owned()),
        ("BAZAAR_LOG", "info".to_owned()),
        ("BAZAAR_LOG_FORMAT", "json".to_owned()),
        ("BAZAAR_DATA_DIR", DATA_DIR.to_owned()),
        (
            "BAZAAR_SHUTDOWN_TIMEOUT",
            format!("{}s", shutdown_timeout().as_secs()),
        ),
    ]
}

/// A variable whose value is a secret: provided at deploy time, never
/// written into the generated files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretVar {
    /// The variable.
    pub name: &'static str,
    /// Its `_FILE` twin, when the service can read the secret from a file
    /// (Kubernetes mounts it instead of putting it in the environment).
    pub file_var: Option<&'static str>,
    /// What it is, from the variable's documentation.
    pub help: &'static str,
}

/// The platform's variables that carry credentials (URLs with a password).
const PLATFORM_SECRETS: &[&str] = &["BAZAAR_DATABASE_URL", "BAZAAR_REDIS_URL"];

/// Whether a service's own variable holds a secret, by its name.
pub fn is_secret_name(name: &str) -> bool {
    ["_KEY", "_SECRET", "_PASSWORD", "_TOKEN"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

/// The secrets `service` is given: the platform's credentials, then the
/// service's own secret variables (by name, see [`is_secret_name`]).
pub fn secrets(service: &ServiceDef) -> Vec<SecretVar> {
    let platform = PLATFORM_SECRETS.iter().filter_map(|name| {
        VARS.iter().find(|v| v.name == *name).map(|v| SecretVar {
            name: v.name,
            file_var: None,
            help: v.help,
        })
    });
    let own = service
        .vars
        .iter()
        .filter(|v| is_secret_name(v.name))
        .map(|v| SecretVar {
            name: v.name,
            file_var: file_twin(service.vars, v.name),
            help: v.help,
        });
    platform.chain(own).collect()
}

fn file_twin(vars: &'static [Var], name: &str) -> Option<&'static str> {
    vars.iter()
        .map(|v| v.name)
        .find(|n| n.strip_suffix("_FILE") == Some(name))
}

/// The services that call `service` (the gateway calls everyone).
pub fn callers(service: &ServiceDef) -> Vec<&'static ServiceDef> {
    SERVICES
        .iter()
        .filter(|s| s.callees().iter().any(|c| c.name == service.name))
        .collect()
}

/// A deployment-specific value of a service's own variable.
#[derive(Debug, Clone, Copy)]
pub struct Override {
    /// The service.
    pub service: &'static str,
    /// One of its `VARS`.
    pub var: &'static str,
    /// The value.
    pub value: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    #[test]
    fn grace_covers_the_drain_and_the_pre_stop_sleep() {
        assert_eq!(shutdown_timeout(), Duration::from_secs(10));
        assert_eq!(stop_secs(), 20);
        assert_eq!(termination_grace_secs(), 25);
    }

    #[test]
    fn secrets_are_found_by_name_and_file_twins_paired() {
        assert!(is_secret_name("BAZAAR_IDENTITY_SIGNING_KEY"));
        assert!(!is_secret_name("BAZAAR_IDENTITY_SIGNING_KEY_FILE"));
        assert!(!is_secret_name("BAZAAR_GATEWAY_RATE_LIMIT"));
        let identity = registry::find("identity").unwrap();
        let names: Vec<_> = secrets(identity).iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "BAZAAR_DATABASE_URL",
                "BAZAAR_REDIS_URL",
                "BAZAAR_IDENTITY_SIGNING_KEY",
                "BAZAAR_IDENTITY_ADMIN_PASSWORD"
            ]
        );
        assert_eq!(
            secrets(identity)[2].file_var,
            Some("BAZAAR_IDENTITY_SIGNING_KEY_FILE")
        );
        assert_eq!(
            secrets(identity)[3].file_var,
            Some("BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE")
        );
    }

    #[test]
    fn everyone_is_called_by_the_gateway() {
        for s in SERVICES {
            assert!(
                callers(s).iter().any(|c| c.name == registry::FRONT_DOOR),
                "{}",
                s.name
            );
        }
    }
}
