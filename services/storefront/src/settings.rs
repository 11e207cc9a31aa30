//! The storefront's own variables, read once at start.

use bazaar_platform::config::{ConfigError, Env, Environment, FromEnv, Var};

/// Whether session cookies are marked `Secure` (sent over HTTPS only).
pub const SECURE_COOKIES: &str = "BAZAAR_STOREFRONT_SECURE_COOKIES";

/// Every variable the storefront reads besides the platform's
/// (`bazaar_platform::config::VARS`).
pub const VARS: &[Var] = &[Var {
    name: SECURE_COOKIES,
    default: "true in production (BAZAAR_ENV=production), false in development",
    help: "Mark the session and CSRF cookies Secure, so browsers send them over HTTPS only. Leave it on behind a TLS-terminating ingress; the local fleet speaks plain HTTP on 127.0.0.1.",
}];

/// What the storefront is tuned with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `Secure` on every cookie the storefront sets.
    pub secure_cookies: bool,
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::read(env, Environment::from_env(env)?)
    }
}

impl Settings {
    /// Reads the storefront's variables from `vars` in `environment`
    /// (tests pass their own).
    ///
    /// # Errors
    /// A variable that is set but not valid, naming it.
    pub fn from_vars(
        environment: Environment,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::read(&Env::with_prefix(vars, "BAZAAR_STOREFRONT_"), environment)
    }

    fn read(env: &Env, environment: Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            secure_cookies: env.flag(SECURE_COOKIES, environment == Environment::Production)?,
        })
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
    fn secure_cookies_follow_the_environment_unless_set() {
        let dev = Settings::from_vars(Environment::Development, vars(&[])).unwrap();
        assert!(!dev.secure_cookies);
        let prod = Settings::from_vars(Environment::Production, vars(&[])).unwrap();
        assert!(prod.secure_cookies);
        let forced =
            Settings::from_vars(Environment::Development, vars(&[(SECURE_COOKIES, "true")]))
                .unwrap();
        assert!(forced.secure_cookies);
        let err = Settings::from_vars(Environment::Production, vars(&[(SECURE_COOKIES, "maybe")]))
            .unwrap_err();
        assert_eq!(err.var, SECURE_COOKIES);
    }
}
