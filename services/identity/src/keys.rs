//! Where the key that signs access tokens comes from, read once at start.
//!
//! Production names the key explicitly (`BAZAAR_IDENTITY_SIGNING_KEY` or
//! `BAZAAR_IDENTITY_SIGNING_KEY_FILE`). Development may leave both unset:
//! a key is generated into `<data dir>/signing-key.dev` on first start and
//! reused after, so tokens survive restarts. Production refuses to start
//! without an explicit key, and refuses one equal to that generated file.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bazaar_platform::auth::TokenSigner;
use bazaar_platform::config::{Config, ConfigError, Env, Environment, Secret, Var, refuse};

/// The signing key itself.
pub const SIGNING_KEY: &str = "BAZAAR_IDENTITY_SIGNING_KEY";
/// A file holding the signing key.
pub const SIGNING_KEY_FILE: &str = "BAZAAR_IDENTITY_SIGNING_KEY_FILE";
/// The generated development key, inside the data dir.
pub const DEV_KEY_FILE: &str = "signing-key.dev";

/// Every variable the identity service reads besides the platform's
/// (`bazaar_platform::config::VARS`): the signing key's, then the admin
/// account's (see `admin.rs`).
pub const VARS: &[Var] = &[
    Var {
        name: SIGNING_KEY,
        default: "unset (development: generated into <data dir>/signing-key.dev)",
        help: "Base64url of the 32-byte Ed25519 seed that signs access tokens. Required in production (or BAZAAR_IDENTITY_SIGNING_KEY_FILE); make one with `head -c32 /dev/urandom | basenc --base64url`.",
    },
    Var {
        name: SIGNING_KEY_FILE,
        default: "unset",
        help: "Path of a file holding the signing key (as BAZAAR_IDENTITY_SIGNING_KEY), e.g. a mounted secret. Set this or BAZAAR_IDENTITY_SIGNING_KEY, not both.",
    },
    crate::admin::ADMIN_VARS[0],
    crate::admin::ADMIN_VARS[1],
    crate::admin::ADMIN_VARS[2],
];

type Seed = [u8; 32];

/// Where the key comes from, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// `BAZAAR_IDENTITY_SIGNING_KEY`.
    Inline(Secret<Seed>),
    /// What the file named by `BAZAAR_IDENTITY_SIGNING_KEY_FILE` held.
    File(Secret<Seed>),
    /// Neither: the development key.
    #[default]
    Unset,
}

impl KeySource {
    /// Reads the signing key's variables from `vars` (tests pass their own).
    #[cfg(test)]
    pub(crate) fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_env(&Env::with_prefix(vars, "BAZAAR_IDENTITY_"))
    }

    /// Reads the signing key's variables from `env`.
    pub(crate) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        match (env.get(SIGNING_KEY), env.get(SIGNING_KEY_FILE)) {
            (Some(_), Some(_)) => Err(refuse(
                SIGNING_KEY_FILE,
                "[redacted]",
                "set BAZAAR_IDENTITY_SIGNING_KEY or BAZAAR_IDENTITY_SIGNING_KEY_FILE, not both",
            )),
            (Some(value), None) => Ok(Self::Inline(Secret::new(
                decode_seed(value).map_err(|reason| refuse(SIGNING_KEY, "[redacted]", reason))?,
            ))),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    refuse(
                        SIGNING_KEY_FILE,
                        path,
                        &format!("cannot read the file: {e}"),
                    )
                })?;
                let seed = decode_seed(&text).map_err(|reason| {
                    refuse(
                        SIGNING_KEY_FILE,
                        path,
                        &format!("the file's content: {reason}"),
                    )
                })?;
                Ok(Self::File(Secret::new(seed)))
            }
            (None, None) => Ok(Self::Unset),
        }
    }

    /// The signer for this process: the configured key, or in development
    /// the generated one. Refuses production without an explicit key, or
    /// with the generated development key.
    pub(crate) fn signer(&self, config: &Config) -> anyhow::Result<TokenSigner> {
        let dev_file = config.data_dir.join(DEV_KEY_FILE);
        let production = config.environment == Environment::Production;
        let (var, seed) = match self {
            Self::Inline(seed) => (SIGNING_KEY, seed.expose()),
            Self::File(seed) => (SIGNING_KEY_FILE, seed.expose()),
            Self::Unset if production => {
                return Err(refuse(
                    SIGNING_KEY,
                    "",
                    "BAZAAR_ENV=production needs an explicit signing key: set BAZAAR_IDENTITY_SIGNING_KEY or BAZAAR_IDENTITY_SIGNING_KEY_FILE",
                )
                .into());
            }
            Self::Unset => return Ok(TokenSigner::from_seed(&dev_seed(&dev_file)?)),
        };
        if production && read_seed(&dev_file).ok().flatten().as_ref() == Some(seed) {
            return Err(refuse(
                var,
                "[redacted]",
                &format!(
                    "this is the generated development key ({}); production needs a key of its own",
                    dev_file.display()
                ),
            )
            .into());
        }
        Ok(TokenSigner::from_seed(seed))
    }
}

/// Base64url (padding and surrounding whitespace tolerated) of exactly 32
/// bytes.
fn decode_seed(text: &str) -> Result<Seed, &'static str> {
    const EXPECTED: &str = "expected the base64url encoding of 32 random bytes (an Ed25519 seed)";
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|_| EXPECTED)?;
    Seed::try_from(bytes.as_slice()).map_err(|_| EXPECTED)
}

/// The seed in `path`, `None` if there is no such file.
fn read_seed(path: &Path) -> anyhow::Result<Option<Seed>> {
    match std::fs::read_to_string(path) {
        Ok(text) => decode_seed(&text).map(Some).map_err(|reason| {
            anyhow::anyhow!(
                "the development signing key {} is damaged ({reason}); delete it to generate a new one",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The development seed in `path`, generated on first use.
///
/// Replicas sharing a data dir may start together: the key is written to a
/// private temporary file and then hard-linked into place, which fails if
/// another process got there first — then everyone uses the winner's key.
fn dev_seed(path: &Path) -> anyhow::Result<Seed> {
    if let Some(seed) = read_seed(path)? {
        return Ok(seed);
    }
    let mut seed = [0_u8; 32];
    getrandom::fill(&mut seed).context("no randomness for a signing key")?;
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        writeln!(file, "{}", URL_SAFE_NO_PAD.encode(seed))?;
        file.sync_all()?;
        std::fs::hard_link(&temporary, path)
    })();
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "generated a development signing key; production must set BAZAAR_IDENTITY_SIGNING_KEY");
            Ok(seed)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_seed(path)?.with_context(|| format!("{} vanished while starting", path.display()))
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot write the development signing key {}",
                path.display()
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn config(dir: &Path, environment: Environment) -> Config {
        let mut c = Config::for_test("identity", dir);
        c.environment = environment;
        c
    }

    const SEED: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"; // 32 × 0x07

    #[test]
    fn an_inline_key_is_used_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let source = KeySource::from_vars(vars(&[(SIGNING_KEY, SEED)])).unwrap();
        for env in [Environment::Development, Environment::Production] {
            let signer = source.signer(&config(dir.path(), env)).unwrap();
            assert_eq!(signer.kid(), TokenSigner::from_seed(&[7; 32]).kid());
        }
        assert!(
            !dir.path().join(DEV_KEY_FILE).exists(),
            "no dev key when one is given"
        );
        // Padding and a trailing newline, as files and `basenc` write it.
        assert!(KeySource::from_vars(vars(&[(SIGNING_KEY, &format!("{SEED}=\n"))])).is_ok());
    }

    #[test]
    fn a_key_file_is_read_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, format!("{SEED}\n")).unwrap();
        let path = file.to_str().unwrap();
        let source = KeySource::from_vars(vars(&[(SIGNING_KEY_FILE, path)])).unwrap();
        let signer = source
            .signer(&config(dir.path(), Environment::Production))
            .unwrap();
        assert_eq!(signer.kid(), TokenSigner::from_seed(&[7; 32]).kid());
    }

    #[test]
    fn bad_values_name_the_variable_and_never_print_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let short = dir.path().join("short");
        std::fs::write(&short, "c2hvcnQ").unwrap();
        for (pairs, var) in [
            (vec![(SIGNING_KEY, "not base64!")], SIGNING_KEY),
            (vec![(SIGNING_KEY, "c2hvcnQ")], SIGNING_KEY),
            (
                vec![(SIGNING_KEY_FILE, missing.to_str().unwrap())],
                SIGNING_KEY_FILE,
            ),
            (
                vec![(SIGNING_KEY_FILE, short.to_str().unwrap())],
                SIGNING_KEY_FILE,
            ),
            (
                vec![(SIGNING_KEY, SEED), (SIGNING_KEY_FILE, "/x")],
                SIGNING_KEY_FILE,
            ),
        ] {
            let e = KeySource::from_vars(vars(&pairs)).unwrap_err();
            assert_eq!(e.var, var, "{e}");
            assert!(!e.to_string().contains(SEED), "{e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn development_generates_a_private_key_once_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let dev = config(dir.path(), Environment::Development);
        let first = KeySource::Unset.signer(&dev).unwrap();
        let file = dir.path().join(DEV_KEY_FILE);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let second = KeySource::Unset.signer(&dev).unwrap();
        assert_eq!(first.kid(), second.kid());
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Another data dir, another key.
        let other = tempfile::tempdir().unwrap();
        let third = KeySource::Unset
            .signer(&config(other.path(), Environment::Development))
            .unwrap();
        assert_ne!(first.kid(), third.kid());
    }

    #[test]
    fn a_damaged_dev_key_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DEV_KEY_FILE), "garbage").unwrap();
        let e = KeySource::Unset
            .signer(&config(dir.path(), Environment::Development))
            .unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
    }

    #[test]
    fn production_refuses_no_key_and_the_dev_key() {
        let dir = tempfile::tempdir().unwrap();
        let prod = config(dir.path(), Environment::Production);
        let e = KeySource::Unset.signer(&prod).unwrap_err().to_string();
        assert!(e.contains(SIGNING_KEY) && e.contains("production"), "{e}");
        assert!(
            !dir.path().join(DEV_KEY_FILE).exists(),
            "production generates nothing"
        );

        // The generated development key, copied into production's variable.
        KeySource::Unset
            .signer(&config(dir.path(), Environment::Development))
            .unwrap();
        let dev_key = std::fs::read_to_string(dir.path().join(DEV_KEY_FILE)).unwrap();
        let copied = KeySource::from_vars(vars(&[(SIGNING_KEY, &dev_key)])).unwrap();
        let e = copied.signer(&prod).unwrap_err().to_string();
        assert!(e.contains("development key"), "{e}");
        assert!(!e.contains(dev_key.trim()), "{e}");
        // The same key is fine in development.
        assert!(
            copied
                .signer(&config(dir.path(), Environment::Development))
                .is_ok()
        );
    }
}
