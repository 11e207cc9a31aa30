//! Inventory's own variables, read once at start.

use std::time::Duration;

use bazaar_platform::config::{ConfigError, Env, FromEnv, Var};

/// How long a reservation holds stock before it expires.
pub const RESERVATION_TTL: &str = "BAZAAR_INVENTORY_RESERVATION_TTL";
/// Below how many available units a product's stock is low.
pub const LOW_STOCK: &str = "BAZAAR_INVENTORY_LOW_STOCK";

/// Every variable the inventory service reads besides the platform's
/// (`bazaar_platform::config::VARS`).
pub const VARS: &[Var] = &[
    Var {
        name: RESERVATION_TTL,
        default: "10m",
        help: "How long a reservation holds stock unless committed or released (e.g. 90s, 10m); then it expires and its units are available again.",
    },
    Var {
        name: LOW_STOCK,
        default: "5",
        help: "inventory.stock.low is announced when a commit or a new on-hand count leaves fewer available units than this (once per crossing); 0 turns it off.",
    },
];

/// What the inventory service is tuned with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long a reservation holds stock.
    pub reservation_ttl: Duration,
    /// Available units below which stock is low.
    pub low_stock: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            reservation_ttl: Duration::from_secs(600),
            low_stock: 5,
        }
    }
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            reservation_ttl: env.positive_duration(RESERVATION_TTL, defaults.reservation_ttl)?,
            low_stock: env.number(LOW_STOCK, defaults.low_stock, 0..)?,
        })
    }
}

impl Settings {
    /// Reads the inventory variables from `vars` (tests pass their own).
    ///
    /// # Errors
    /// A variable that is set but not valid, naming it.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_env(&Env::with_prefix(vars, "BAZAAR_INVENTORY_"))
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
        assert_eq!(s.reservation_ttl, Duration::from_secs(600));
        assert_eq!(s.low_stock, 5);
    }

    #[test]
    fn values_are_read() {
        let s = Settings::from_vars(vars(&[(RESERVATION_TTL, "90s"), (LOW_STOCK, "0")])).unwrap();
        assert_eq!(s.reservation_ttl, Duration::from_secs(90));
        assert_eq!(s.low_stock, 0);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Settings::from_vars(vars(&[(RESERVATION_TTL, "soon")])).unwrap_err();
        assert_eq!(e.var, RESERVATION_TTL);
        let e = Settings::from_vars(vars(&[(RESERVATION_TTL, "0s")])).unwrap_err();
        assert_eq!(e.var, RESERVATION_TTL);
        let e = Settings::from_vars(vars(&[(LOW_STOCK, "-1")])).unwrap_err();
        assert_eq!(e.var, LOW_STOCK);
    }
}
