//! Orders' own variables, read once at start.

use std::time::Duration;

use bazaar_platform::config::{ConfigError, Env, FromEnv, Var, refuse};

/// How long a saga may take before an order not yet past the pivot is
/// cancelled `timed_out`.
pub const SAGA_DEADLINE: &str = "BAZAAR_ORDERS_SAGA_DEADLINE";
/// How long a claim on a saga lasts without renewal.
pub const LEASE: &str = "BAZAAR_ORDERS_LEASE";
/// How often pending orders nobody drives are looked for.
pub const POLL_INTERVAL: &str = "BAZAAR_ORDERS_POLL_INTERVAL";
/// How many sagas one process drives at once.
pub const SAGA_CONCURRENCY: &str = "BAZAAR_ORDERS_SAGA_CONCURRENCY";
/// The first backoff of a retried saga step.
pub const RETRY_BACKOFF: &str = "BAZAAR_ORDERS_RETRY_BACKOFF";
/// The longest backoff of a retried saga step.
pub const RETRY_BACKOFF_MAX: &str = "BAZAAR_ORDERS_RETRY_BACKOFF_MAX";
/// The deadline of one call to catalog, inventory or payments.
pub const CALL_TIMEOUT: &str = "BAZAAR_ORDERS_CALL_TIMEOUT";

/// Every variable the orders service reads besides the platform's
/// (`bazaar_platform::config::VARS`).
pub const VARS: &[Var] = &[
    Var {
        name: SAGA_DEADLINE,
        default: "2m",
        help: "A pending order older than this that has not committed its stock yet is compensated and cancelled (timed_out, or payment_unavailable when payments never answered); until then every step is asked again while its service is unavailable, and once committed it always goes forward.",
    },
    Var {
        name: LEASE,
        default: "10s",
        help: "How long a process's claim on a saga lasts unless renewed (it renews every third of it); a crashed replica's sagas are resumed by another after this.",
    },
    Var {
        name: POLL_INTERVAL,
        default: "1s",
        help: "How often pending orders whose lease expired are looked for and resumed.",
    },
    Var {
        name: SAGA_CONCURRENCY,
        default: "64",
        help: "How many sagas one process drives at once; more wait their turn.",
    },
    Var {
        name: RETRY_BACKOFF,
        default: "250ms",
        help: "Ceiling of the first pause before a saga step is retried; it doubles each retry (full jitter).",
    },
    Var {
        name: RETRY_BACKOFF_MAX,
        default: "5s",
        help: "Cap on the pause between retries of a saga step.",
    },
    Var {
        name: CALL_TIMEOUT,
        default: "10s",
        help: "Deadline of one gRPC call to catalog, inventory or payments.",
    },
];

/// What the orders service is tuned with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Age after which an order not past the pivot (the stock commit) is
    /// cancelled `timed_out`.
    pub saga_deadline: Duration,
    /// How long a claim on a saga lasts without renewal.
    pub lease: Duration,
    /// How often pending orders with an expired lease are looked for.
    pub poll_interval: Duration,
    /// Sagas driven at once by one process.
    pub saga_concurrency: usize,
    /// Ceiling of the first retry pause; doubles per retry.
    pub retry_backoff: Duration,
    /// Cap on the retry pause.
    pub retry_backoff_max: Duration,
    /// Deadline of one call to catalog, inventory or payments.
    pub call_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            saga_deadline: Duration::from_secs(120),
            lease: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            saga_concurrency: 64,
            retry_backoff: Duration::from_millis(250),
            retry_backoff_max: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
        }
    }
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let settings = Self {
            saga_deadline: env.positive_duration(SAGA_DEADLINE, defaults.saga_deadline)?,
            lease: env.positive_duration(LEASE, defaults.lease)?,
            poll_interval: env.positive_duration(POLL_INTERVAL, defaults.poll_interval)?,
            saga_concurrency: env.number(
                SAGA_CONCURRENCY,
                defaults.saga_concurrency,
                1..=100_000,
            )?,
            retry_backoff: env.positive_duration(RETRY_BACKOFF, defaults.retry_backoff)?,
            retry_backoff_max: env
                .positive_duration(RETRY_BACKOFF_MAX, defaults.retry_backoff_max)?,
            call_timeout: env.positive_duration(CALL_TIMEOUT, defaults.call_timeout)?,
        };
        if settings.retry_backoff_max < settings.retry_backoff {
            return Err(refuse(
                RETRY_BACKOFF_MAX,
                env.get(RETRY_BACKOFF_MAX).unwrap_or("5s"),
                "shorter than BAZAAR_ORDERS_RETRY_BACKOFF",
            ));
        }
        Ok(settings)
    }
}

impl Settings {
    /// Reads the orders variables from `vars` (tests pass their own).
    ///
    /// # Errors
    /// A variable that is set but not valid, naming it.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_env(&Env::with_prefix(vars, "BAZAAR_ORDERS_"))
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
    fn defaults_match_vars() {
        let s = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(s, Settings::default());
        for var in VARS {
            let parsed = Settings::from_vars(vars(&[(var.name, var.default)])).unwrap();
            assert_eq!(parsed, s, "{} default {}", var.name, var.default);
        }
    }

    #[test]
    fn values_are_read() {
        let s = Settings::from_vars(vars(&[
            (SAGA_DEADLINE, "3s"),
            (LEASE, "500ms"),
            (SAGA_CONCURRENCY, "8"),
            (RETRY_BACKOFF, "10ms"),
            (RETRY_BACKOFF_MAX, "20ms"),
        ]))
        .unwrap();
        assert_eq!(s.saga_deadline, Duration::from_secs(3));
        assert_eq!(s.lease, Duration::from_millis(500));
        assert_eq!(s.saga_concurrency, 8);
        assert_eq!(s.retry_backoff_max, Duration::from_millis(20));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            (SAGA_DEADLINE, "soon"),
            (LEASE, "0s"),
            (SAGA_CONCURRENCY, "0"),
            (RETRY_BACKOFF_MAX, "1ms"),
        ] {
            let e = Settings::from_vars(vars(&[(var, value)])).unwrap_err();
            assert_eq!(e.var, var);
        }
    }
}
