//! The gateway's own settings, beyond the platform's `Config`: rate limits,
//! browser origins, and whose `X-Forwarded-For` to believe. Read once at
//! start from `BAZAAR_GATEWAY_*` variables; [`VARS`] documents each, and a
//! bad value stops the process with one line naming the variable.

use std::net::IpAddr;

use bazaar_platform::config::{ConfigError, Env, FromEnv, Var};

/// Every variable the gateway reads on top of `bazaar_platform::config::VARS`.
pub const VARS: &[Var] = &[
    Var {
        name: "BAZAAR_GATEWAY_RATE_LIMIT",
        default: "50",
        help: "Requests per second a client may make on average (its token bucket's refill rate; fractions allowed); 0 turns rate limiting off. A client is the user of a valid access token, else its IP address (IPv6 by /64). /healthz, /readyz and /metrics are never limited.",
    },
    Var {
        name: "BAZAAR_GATEWAY_RATE_BURST",
        default: "100",
        help: "Requests a client may make at once before the rate applies (its bucket's size); 0 turns rate limiting off.",
    },
    Var {
        name: "BAZAAR_GATEWAY_RATE_PREFIX",
        default: "bazaar:ratelimit",
        help: "Prefix of the rate-limit keys in Redis (when BAZAAR_REDIS_URL is set): gateways with the same prefix share each client's budget.",
    },
    Var {
        name: "BAZAAR_GATEWAY_CORS_ORIGINS",
        default: "http://127.0.0.1:8080,http://localhost:8080",
        help: "Comma-separated origins (scheme://host[:port]) whose web pages may call the API from a browser; `none` allows no other origin.",
    },
    Var {
        name: "BAZAAR_GATEWAY_TRUSTED_PROXIES",
        default: "unset (none)",
        help: "Comma-separated IP addresses or CIDR ranges of the proxies in front of the gateway. Only their X-Forwarded-For is believed: the client is the nearest address in it that is not such a proxy.",
    },
];

/// How fast each client may call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Average requests per second (the bucket's refill rate).
    pub per_second: f64,
    /// Requests allowed at once (the bucket's size).
    pub burst: u32,
}

/// The gateway's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The per-client token bucket; `None` when limiting is off.
    pub rate_limit: Option<RateLimit>,
    /// Prefix of the bucket keys in Redis.
    pub redis_prefix: String,
    /// Origins allowed to call from a browser, as browsers send `Origin`.
    pub cors_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for Settings {
    fn default() -> Self {
        Self::from_env(&Env::default()).expect("the defaults are valid")
    }
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let per_second = env.read(
            "BAZAAR_GATEWAY_RATE_LIMIT",
            50.0,
            "expected requests per second, e.g. 50 or 0.5 (0: off)",
            |v| v.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0),
        )?;
        let burst = env.read(
            "BAZAAR_GATEWAY_RATE_BURST",
            100,
            "expected a whole number of requests, e.g. 100 (0: off)",
            |v| v.parse::<u32>().ok(),
        )?;
        let cors_origins = match env.get("BAZAAR_GATEWAY_CORS_ORIGINS") {
            Some("none") => Vec::new(),
            _ => env.list(
                "BAZAAR_GATEWAY_CORS_ORIGINS",
                "http://127.0.0.1:8080,http://localhost:8080",
                "expected scheme://host[:port] with no path, e.g. https://shop.example",
                origin,
            )?,
        };
        Ok(Self {
            rate_limit: (per_second > 0.0 && burst > 0).then_some(RateLimit { per_second, burst }),
            redis_prefix: env.string("BAZAAR_GATEWAY_RATE_PREFIX", "bazaar:ratelimit"),
            cors_origins,
            trusted_proxies: env.list(
                "BAZAAR_GATEWAY_TRUSTED_PROXIES",
                "",
                "expected an IP address or a CIDR range, e.g. 10.0.0.0/8",
                IpNet::parse,
            )?,
        })
    }
}

impl Settings {
    /// Reads the settings from the given variables (tests pass their own).
    ///
    /// # Errors
    /// A variable whose value cannot be used.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_env(&Env::with_prefix(vars, "BAZAAR_GATEWAY_"))
    }
}

/// An origin as a browser serializes it in `Origin` (lower-case scheme and
/// host, no default port, no path), so a plain comparison matches.
fn origin(value: &str) -> Option<String> {
    let url = url::Url::parse(value).ok()?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || !bare || !url.username().is_empty() {
        return None;
    }
    // `Url::origin` drops a default port, as browsers do.
    Some(url.origin().ascii_serialization())
}

/// An IP network: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `10.0.0.0/8`, `fd00::/8`, or a single address.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr.parse::<IpAddr>().ok()?, Some(prefix.parse().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
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
    fn defaults_limit_and_allow_the_local_storefront() {
        let s = Settings::default();
        assert_eq!(
            s.rate_limit,
            Some(RateLimit {
                per_second: 50.0,
                burst: 100
            })
        );
        assert_eq!(
            s.cors_origins,
            ["http://127.0.0.1:8080", "http://localhost:8080"]
        );
        assert!(
            s.trusted_proxies.is_empty(),
            "X-Forwarded-For is not believed by default"
        );
        assert_eq!(s.redis_prefix, "bazaar:ratelimit");
    }

    #[test]
    fn zero_turns_limiting_off() {
        for var in ["BAZAAR_GATEWAY_RATE_LIMIT", "BAZAAR_GATEWAY_RATE_BURST"] {
            let s = Settings::from_vars(vars(&[(var, "0")])).unwrap();
            assert_eq!(s.rate_limit, None, "{var}=0");
        }
        let s = Settings::from_vars(vars(&[
            ("BAZAAR_GATEWAY_RATE_LIMIT", "0.5"),
            ("BAZAAR_GATEWAY_RATE_BURST", "3"),
        ]))
        .unwrap();
        assert_eq!(
            s.rate_limit,
            Some(RateLimit {
                per_second: 0.5,
                burst: 3
            })
        );
    }

    #[test]
    fn origins_are_normalized_as_browsers_send_them() {
        let s = Settings::from_vars(vars(&[(
            "BAZAAR_GATEWAY_CORS_ORIGINS",
            " HTTPS://Shop.Example:443/ , http://127.0.0.1:3000",
        )]))
        .unwrap();
        assert_eq!(
            s.cors_origins,
            ["https://shop.example", "http://127.0.0.1:3000"]
        );
        let s = Settings::from_vars(vars(&[("BAZAAR_GATEWAY_CORS_ORIGINS", "none")])).unwrap();
        assert!(s.cors_origins.is_empty());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("BAZAAR_GATEWAY_RATE_LIMIT", "fast"),
            ("BAZAAR_GATEWAY_RATE_LIMIT", "-1"),
            ("BAZAAR_GATEWAY_RATE_LIMIT", "inf"),
            ("BAZAAR_GATEWAY_RATE_BURST", "1.5"),
            ("BAZAAR_GATEWAY_CORS_ORIGINS", "shop.example"),
            ("BAZAAR_GATEWAY_CORS_ORIGINS", "https://shop.example/app"),
            ("BAZAAR_GATEWAY_CORS_ORIGINS", "ftp://shop.example"),
            ("BAZAAR_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("BAZAAR_GATEWAY_TRUSTED_PROXIES", "proxy.local"),
        ] {
            let e = Settings::from_vars(vars(&[(var, value)])).unwrap_err();
            assert_eq!(e.var, var, "{value}: {e}");
        }
    }

    #[test]
    fn networks_contain_their_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped IPv6");
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(!net.contains(ip("fd00::1")));
        let one = IpNet::parse("192.168.1.7").unwrap();
        assert!(one.contains(ip("192.168.1.7")));
        assert!(!one.contains(ip("192.168.1.8")));
        let v6 = IpNet::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        let all = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")));
    }
}
