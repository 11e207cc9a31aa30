//! Payments' own variables, read once at start: the simulated processor's
//! knobs, so benchmarks and fault runs can make it slow or flaky.

use std::time::Duration;

use bazaar_platform::config::{ConfigError, Env, FromEnv, Var};

/// How long each call to the simulated processor takes.
pub const PROCESSOR_LATENCY: &str = "BAZAAR_PAYMENTS_PROCESSOR_LATENCY";
/// Which fraction of calls to the simulated processor fails transiently.
pub const PROCESSOR_FAILURE_RATE: &str = "BAZAAR_PAYMENTS_PROCESSOR_FAILURE_RATE";

/// Every variable the payments service reads besides the platform's
/// (`bazaar_platform::config::VARS`).
pub const VARS: &[Var] = &[
    Var {
        name: PROCESSOR_LATENCY,
        default: "0",
        help: "How long each call to the simulated card processor takes (e.g. 20ms, 1s); for benchmarks and fault runs.",
    },
    Var {
        name: PROCESSOR_FAILURE_RATE,
        default: "0",
        help: "Fraction of calls to the simulated card processor that fail transiently, 0.0 to 1.0; such a call answers UNAVAILABLE and records nothing.",
    },
];

/// What the payments service is tuned with.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Settings {
    /// How long each processor call takes (0 by default).
    pub processor_latency: Duration,
    /// Fraction of processor calls, 0.0 to 1.0, that fail transiently (0 by
    /// default).
    pub processor_failure_rate: f64,
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            processor_latency: env.duration(PROCESSOR_LATENCY, Duration::ZERO)?,
            processor_failure_rate: env.number(PROCESSOR_FAILURE_RATE, 0.0, 0.0..=1.0)?,
        })
    }
}

impl Settings {
    /// Reads the payments variables from `vars` (tests pass their own).
    ///
    /// # Errors
    /// A variable that is set but not valid, naming it.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_env(&Env::with_prefix(vars, "BAZAAR_PAYMENTS_"))
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
    fn defaults() {
        let s = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(s.processor_latency, Duration::ZERO);
        assert!(s.processor_failure_rate.abs() < f64::EPSILON);
        assert_eq!(s, Settings::default());
        // Empty values are unset.
        let s = Settings::from_vars(vars(&[(PROCESSOR_LATENCY, " ")])).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn values_are_read() {
        let s = Settings::from_vars(vars(&[
            (PROCESSOR_LATENCY, "20ms"),
            (PROCESSOR_FAILURE_RATE, "0.25"),
        ]))
        .unwrap();
        assert_eq!(s.processor_latency, Duration::from_millis(20));
        assert!((s.processor_failure_rate - 0.25).abs() < f64::EPSILON);
        let s = Settings::from_vars(vars(&[
            (PROCESSOR_LATENCY, "2"),
            (PROCESSOR_FAILURE_RATE, "1"),
        ]))
        .unwrap();
        assert_eq!(s.processor_latency, Duration::from_secs(2));
        assert!((s.processor_failure_rate - 1.0).abs() < f64::EPSILON);
        let s = Settings::from_vars(vars(&[(PROCESSOR_LATENCY, "0ms")])).unwrap();
        assert_eq!(s.processor_latency, Duration::ZERO);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for bad in ["soon", "-5ms", "20 ms", "1h", "1.5s"] {
            let e = Settings::from_vars(vars(&[(PROCESSOR_LATENCY, bad)])).unwrap_err();
            assert_eq!(e.var, PROCESSOR_LATENCY, "{bad}");
        }
        for bad in ["-0.1", "1.01", "half", "NaN", "inf", "50%"] {
            let e = Settings::from_vars(vars(&[(PROCESSOR_FAILURE_RATE, bad)])).unwrap_err();
            assert_eq!(e.var, PROCESSOR_FAILURE_RATE, "{bad}");
        }
    }
}
