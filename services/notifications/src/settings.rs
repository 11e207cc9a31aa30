//! Notifications' own variables, read once at start.

use std::time::Duration;

use bazaar_platform::config::{ConfigError, Env, FromEnv, Secret, Var, refuse};

/// Where e-mail is sent; unset: `.eml` files under the data dir.
pub const SMTP_URL: &str = "BAZAAR_NOTIFICATIONS_SMTP_URL";
/// A file holding [`SMTP_URL`] (a mounted secret), read when that is unset.
pub const SMTP_URL_FILE: &str = "BAZAAR_NOTIFICATIONS_SMTP_URL_FILE";
/// The sender of every e-mail.
pub const MAIL_FROM: &str = "BAZAAR_NOTIFICATIONS_MAIL_FROM";
/// The storefront's public address, for the links in e-mails.
pub const PUBLIC_URL: &str = "BAZAAR_NOTIFICATIONS_PUBLIC_URL";
/// How often an idle notification stream gets a keep-alive comment.
pub const KEEP_ALIVE: &str = "BAZAAR_NOTIFICATIONS_KEEP_ALIVE";
/// Live streams one user may hold open at once.
pub const MAX_STREAMS_PER_USER: &str = "BAZAAR_NOTIFICATIONS_MAX_STREAMS_PER_USER";
/// Live streams one process holds open at once, all users together.
pub const MAX_STREAMS: &str = "BAZAAR_NOTIFICATIONS_MAX_STREAMS";

/// Every variable the notifications service reads besides the platform's
/// (`bazaar_platform::config::VARS`).
pub const VARS: &[Var] = &[
    Var {
        name: SMTP_URL,
        default: "unset (e-mails are written as .eml files to <data dir>/mail/)",
        help: "Secret. SMTP server for e-mail: smtp://[user:password@]host[:port][?tls=required|opportunistic] or smtps://… (implicit TLS, port 465); a path (smtp://host/name) sets the EHLO name. Never logged.",
    },
    Var {
        name: SMTP_URL_FILE,
        default: "unset",
        help: "A file whose content is the SMTP URL (for mounted secrets); used when BAZAAR_NOTIFICATIONS_SMTP_URL is unset.",
    },
    Var {
        name: MAIL_FROM,
        default: "Bazaar <no-reply@bazaar.localhost>",
        help: "The From of every e-mail: an address, optionally with a display name (Name <address>).",
    },
    Var {
        name: PUBLIC_URL,
        default: "http://127.0.0.1:8080",
        help: "Base URL of the storefront, for the links in e-mails (a notification's link is a path under it).",
    },
    Var {
        name: KEEP_ALIVE,
        default: "15s",
        help: "How often GET /api/v1/notifications/stream sends a keep-alive comment while idle, so proxies keep the stream open.",
    },
    Var {
        name: MAX_STREAMS_PER_USER,
        default: "8",
        help: "Live streams (GET /api/v1/notifications/stream) one user may hold open at once on this process (1 to 1000); one more is refused with 429.",
    },
    Var {
        name: MAX_STREAMS,
        default: "10000",
        help: "Live streams this process holds open at once, all users together (1 to 1000000); one more is refused with 503.",
    },
];

/// What the notifications service is tuned with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The SMTP server, if e-mail goes out; `None` writes `.eml` files.
    pub smtp_url: Option<Secret<String>>,
    /// The sender, `Name <address>` or an address.
    pub mail_from: String,
    /// The storefront's base URL, without a trailing `/`.
    pub public_url: String,
    /// Keep-alive period of idle streams.
    pub keep_alive: Duration,
    /// Live streams one user may hold open at once.
    pub max_streams_per_user: usize,
    /// Live streams held open at once, all users together.
    pub max_streams: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            mail_from: "Bazaar <no-reply@bazaar.localhost>".to_owned(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            keep_alive: Duration::from_secs(15),
            max_streams_per_user: 8,
            max_streams: 10_000,
        }
    }
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let smtp = match (env.get(SMTP_URL), env.get(SMTP_URL_FILE)) {
            (Some(url), _) => Some((SMTP_URL, url.to_owned())),
            (None, Some(path)) => {
                let url = std::fs::read_to_string(path)
                    .map_err(|e| refuse(SMTP_URL_FILE, path, &format!("cannot be read: {e}")))?;
                Some((SMTP_URL_FILE, url.trim().to_owned()))
            }
            (None, None) => None,
        };
        let smtp_url = smtp
            .map(|(var, url)| {
                check_smtp_url(&url).map_err(|reason| refuse(var, "[redacted]", reason))?;
                Ok(Secret::new(url))
            })
            .transpose()?;
        Ok(Self {
            smtp_url,
            mail_from: env.read(
                MAIL_FROM,
                defaults.mail_from,
                "not an e-mail address like Bazaar <no-reply@example.com>",
                |v| {
                    v.parse::<lettre::message::Mailbox>()
                        .ok()
                        .map(|_| v.to_owned())
                },
            )?,
            public_url: env
                .url(PUBLIC_URL, &["http", "https"])?
                .map_or(defaults.public_url, |url| {
                    url.as_str().trim_end_matches('/').to_owned()
                }),
            keep_alive: env.positive_duration(KEEP_ALIVE, defaults.keep_alive)?,
            max_streams_per_user: env.number(
                MAX_STREAMS_PER_USER,
                defaults.max_streams_per_user,
                1..=1000,
            )?,
            max_streams: env.number(MAX_STREAMS, defaults.max_streams, 1..=1_000_000)?,
        })
    }
}

impl Settings {
    /// Reads the notifications variables from `vars` (tests pass their own).
    ///
    /// # Errors
    /// A variable that is set but not valid, naming it.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_env(&Env::with_prefix(vars, "BAZAAR_NOTIFICATIONS_"))
    }
}

/// Whether `url` is an SMTP URL lettre understands; the reason if not.
/// Checked here so a typo fails at start, not at the first e-mail.
fn check_smtp_url(url: &str) -> Result<(), &'static str> {
    let parsed = url::Url::parse(url).map_err(|_| "not a URL")?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("names no host");
    }
    match (parsed.scheme(), query_tls(&parsed).as_deref()) {
        ("smtp", None | Some("required" | "opportunistic")) | ("smtps", None) => Ok(()),
        ("smtp", Some(_)) => Err("tls must be required or opportunistic"),
        _ => Err("the scheme must be smtp or smtps"),
    }
}

fn query_tls(url: &url::Url) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned())
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
        assert_eq!(s, Settings::default());
        assert!(s.smtp_url.is_none());
        assert_eq!(s.keep_alive, Duration::from_secs(15));
    }

    #[test]
    fn values_are_read() {
        let s = Settings::from_vars(vars(&[
            (
                SMTP_URL,
                "smtp://mailer:s3cret@mail.example.com:587?tls=required",
            ),
            (MAIL_FROM, "Shop <shop@example.com>"),
            (PUBLIC_URL, "https://shop.example.com/"),
            (KEEP_ALIVE, "5s"),
        ]))
        .unwrap();
        assert_eq!(
            s.smtp_url.as_ref().unwrap().expose(),
            "smtp://mailer:s3cret@mail.example.com:587?tls=required"
        );
        assert_eq!(s.mail_from, "Shop <shop@example.com>");
        assert_eq!(s.public_url, "https://shop.example.com");
        assert_eq!(s.keep_alive, Duration::from_secs(5));
    }

    #[test]
    fn the_smtp_url_never_shows() {
        let s =
            Settings::from_vars(vars(&[(SMTP_URL, "smtps://u:hunter2@mail.example.com")])).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        let e = Settings::from_vars(vars(&[(SMTP_URL, "http://u:hunter2@mail.example.com")]))
            .unwrap_err();
        assert_eq!(e.var, SMTP_URL);
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn the_smtp_url_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smtp");
        std::fs::write(&path, "smtp://mail.example.com:2525\n").unwrap();
        let s = Settings::from_vars(vars(&[(SMTP_URL_FILE, path.to_str().unwrap())])).unwrap();
        assert_eq!(s.smtp_url.unwrap().expose(), "smtp://mail.example.com:2525");
        let e = Settings::from_vars(vars(&[(SMTP_URL_FILE, "/no/such/file")])).unwrap_err();
        assert_eq!(e.var, SMTP_URL_FILE);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            (SMTP_URL, "smtp://mail.example.com?tls=maybe"),
            (SMTP_URL, "not a url"),
            (MAIL_FROM, "nobody"),
            (PUBLIC_URL, "ftp://example.com"),
            (KEEP_ALIVE, "0s"),
            (KEEP_ALIVE, "soon"),
        ] {
            let e = Settings::from_vars(vars(&[(var, value)])).unwrap_err();
            assert_eq!(e.var, var, "{value}");
        }
    }
}
