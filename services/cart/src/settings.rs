//! Cart's own variables, read once at start.

use bazaar_platform::config::{ConfigError, Env, FromEnv, Var};

/// Prefix of the cart keys in Redis.
pub const REDIS_PREFIX: &str = "BAZAAR_CART_REDIS_PREFIX";

/// The prefix used when [`REDIS_PREFIX`] is unset.
pub const DEFAULT_REDIS_PREFIX: &str = "bazaar:cart:";

/// Every variable the cart service reads besides the platform's
/// (`bazaar_platform::config::VARS`; its `BAZAAR_REDIS_URL` puts carts in
/// Redis).
pub const VARS: &[Var] = &[Var {
    name: REDIS_PREFIX,
    default: DEFAULT_REDIS_PREFIX,
    help: "Prefix of the cart keys in Redis (when BAZAAR_REDIS_URL is set): each cart is one hash at <prefix><user id>, expiring 30 days after its last change.",
}];

/// What the cart service is tuned with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Prefix of the cart keys in Redis.
    pub redis_prefix: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
        }
    }
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            // Keys stay easy to type and to match in redis-cli.
            redis_prefix: env.read(
                REDIS_PREFIX,
                DEFAULT_REDIS_PREFIX.to_owned(),
                "a key prefix has no spaces or control characters",
                |v| (!v.chars().any(|c| c.is_whitespace() || c.is_control())).then(|| v.to_owned()),
            )?,
        })
    }
}

impl Settings {
    /// Reads the cart variables from `vars` (tests pass their own).
    ///
    /// # Errors
    /// A variable that is set but not valid, naming it.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_env(&Env::with_prefix(vars, "BAZAAR_CART_"))
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
        assert_eq!(s.redis_prefix, "bazaar:cart:");
        let s = Settings::from_vars(vars(&[(REDIS_PREFIX, "  ")])).unwrap();
        assert_eq!(s.redis_prefix, "bazaar:cart:");
    }

    #[test]
    fn values_are_read() {
        let s = Settings::from_vars(vars(&[(REDIS_PREFIX, "shop-eu:cart:")])).unwrap();
        assert_eq!(s.redis_prefix, "shop-eu:cart:");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Settings::from_vars(vars(&[(REDIS_PREFIX, "a b")])).unwrap_err();
        assert_eq!(e.var, REDIS_PREFIX);
    }
}
