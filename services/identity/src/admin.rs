//! The local admin account, ensured at start when a password is configured.
//!
//! `BAZAAR_IDENTITY_ADMIN_PASSWORD` (or `…_FILE`) asks identity to make sure
//! an account with `BAZAAR_IDENTITY_ADMIN_EMAIL` and the role `admin`
//! exists. It is created when missing; an account with that e-mail that
//! exists already is left exactly as it is (its password too), so a restart,
//! or a changed password setting, never resets what an operator did. Racing
//! replicas are safe: the insert does nothing on the unique e-mail, and the
//! loser only logs. Without a password no admin is created. `admin` is still
//! never a role one can register with.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bazaar_events::identity::UserRegistered;
use bazaar_platform::config::{ConfigError, Env, FromEnv, Var, refuse};
use bazaar_platform::db::Db;
use bazaar_platform::events::Events;
use uuid::Uuid;

use crate::domain::{Email, Name, Password, Role};
use crate::keys::KeySource;
use crate::password::Hasher;
use crate::store;

/// The admin account's e-mail.
pub const ADMIN_EMAIL: &str = "BAZAAR_IDENTITY_ADMIN_EMAIL";
/// The admin account's password.
pub const ADMIN_PASSWORD: &str = "BAZAAR_IDENTITY_ADMIN_PASSWORD";
/// A file holding the admin account's password.
pub const ADMIN_PASSWORD_FILE: &str = "BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE";
/// [`ADMIN_EMAIL`] when it is unset.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@bazaar.local";
/// The display name of a created admin account.
const ADMIN_NAME: &str = "Administrator";

/// The admin account's variables, part of [`crate::VARS`].
pub(crate) const ADMIN_VARS: [Var; 3] = [
    Var {
        name: ADMIN_EMAIL,
        default: DEFAULT_ADMIN_EMAIL,
        help: "E-mail of the local admin account ensured at start when BAZAAR_IDENTITY_ADMIN_PASSWORD or BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE is set. An account with this e-mail that exists already is left as it is.",
    },
    Var {
        name: ADMIN_PASSWORD,
        default: "unset (no admin account is created)",
        help: "Secret. Password (8 to 1024 characters) of the admin account created at start if no account has BAZAAR_IDENTITY_ADMIN_EMAIL; never changes an existing account. Set this or BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE, not both.",
    },
    Var {
        name: ADMIN_PASSWORD_FILE,
        default: "unset",
        help: "Path of a file holding the admin password (as BAZAAR_IDENTITY_ADMIN_PASSWORD; surrounding whitespace ignored), e.g. a mounted secret; `bazaar up` generates <data dir>/admin-password.",
    },
];

/// The admin account to ensure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Its e-mail, normalised.
    pub email: Email,
    /// Its password when it is created.
    pub password: Password,
}

/// Identity's settings: the signing key's source and the admin account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// The admin account ensured at start; `None`: none.
    pub admin: Option<Admin>,
    /// Where the signing key comes from.
    pub(crate) signing_key: KeySource,
}

impl FromEnv for Settings {
    /// Reads identity's variables (never showing a password or a key in an
    /// error).
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            admin: admin(env)?,
            signing_key: KeySource::from_env(env)?,
        })
    }
}

impl Settings {
    /// Reads identity's variables from `vars` (tests pass their own).
    ///
    /// # Errors
    /// A variable that is set but not valid, naming it (never showing a
    /// password).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_env(&Env::with_prefix(vars, "BAZAAR_IDENTITY_"))
    }
}

/// The admin account the variables ask for, if any.
fn admin(env: &Env) -> Result<Option<Admin>, ConfigError> {
    let email = match env.get(ADMIN_EMAIL) {
        None => Email::parse(DEFAULT_ADMIN_EMAIL)
            .map_err(|e| refuse(ADMIN_EMAIL, DEFAULT_ADMIN_EMAIL, e.message()))?,
        Some(raw) => Email::parse(raw).map_err(|e| refuse(ADMIN_EMAIL, raw, e.message()))?,
    };
    let (var, raw) = match (env.get(ADMIN_PASSWORD), env.get(ADMIN_PASSWORD_FILE)) {
        (Some(_), Some(_)) => {
            return Err(refuse(
                ADMIN_PASSWORD_FILE,
                "[redacted]",
                "set BAZAAR_IDENTITY_ADMIN_PASSWORD or BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE, not both",
            ));
        }
        (None, None) => return Ok(None),
        (Some(inline), None) => (ADMIN_PASSWORD, inline.to_owned()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                refuse(
                    ADMIN_PASSWORD_FILE,
                    path,
                    &format!("cannot read the file: {e}"),
                )
            })?;
            (ADMIN_PASSWORD_FILE, text.trim().to_owned())
        }
    };
    let password = Password::parse(raw).map_err(|e| {
        refuse(
            var,
            "[redacted]",
            &format!("the admin password {}", e.message()),
        )
    })?;
    Ok(Some(Admin { email, password }))
}

/// A new random admin password: 24 bytes from the operating system's CSPRNG
/// as 32 base64url characters (192 bits), for launchers that generate one.
///
/// # Errors
/// When the operating system gives no randomness.
pub fn generate_password() -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; 24];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What [`ensure`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ensured {
    /// This process created the account.
    Created,
    /// An account with the e-mail existed (or another replica created it
    /// meanwhile); it was left as it is.
    Existed(Role),
}

/// Makes sure an account with `admin.email` exists, creating it as an
/// admin with `admin.password` when there is none. Logs what it found, once.
pub(crate) async fn ensure(
    db: &Db,
    events: &Events,
    hasher: &Hasher,
    admin: &Admin,
) -> anyhow::Result<Ensured> {
    let email = admin.email.as_str();
    if let Some((user, _)) = store::credentials(db.pool(), &admin.email).await? {
        existed(email, user.role);
        return Ok(Ensured::Existed(user.role));
    }
    let hash = hasher.hash(&admin.password).await?;
    let user = store::User {
        id: Uuid::now_v7(),
        email: admin.email.clone(),
        name: Name::parse(ADMIN_NAME).map_err(|e| anyhow::anyhow!("admin name: {e}"))?,
        role: Role::Admin,
    };
    let mut tx = db
        .begin_write()
        .await
        .context("cannot create the admin account")?;
    if !store::insert_user_if_absent(&mut tx, &user, &hash).await? {
        // Another replica sharing the database got there first.
        drop(tx);
        let role = store::credentials(db.pool(), &admin.email)
            .await?
            .map_or(Role::Admin, |(user, _)| user.role);
        existed(email, role);
        return Ok(Ensured::Existed(role));
    }
    let event = UserRegistered {
        user_id: user.id,
        email: email.to_owned(),
        name: user.name.as_str().to_owned(),
        role: user.role,
    };
    events
        .append(&mut tx, Some(&user.id.to_string()), &event)
        .await?;
    tx.commit()
        .await
        .context("cannot create the admin account")?;
    events.committed();
    tracing::info!(email, user_id = %user.id, "created the admin account");
    Ok(Ensured::Created)
}

fn existed(email: &str, role: Role) {
    if role == Role::Admin {
        tracing::info!(
            email,
            "the admin account exists already; its password is left as it is"
        );
    } else {
        tracing::warn!(
            email,
            role = role.as_str(),
            "an account with the admin e-mail exists but is not an admin; it is left as it is (choose another BAZAAR_IDENTITY_ADMIN_EMAIL)"
        );
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
    fn no_password_means_no_admin() {
        assert_eq!(Settings::from_vars(vars(&[])).unwrap().admin, None);
        let s = Settings::from_vars(vars(&[(ADMIN_EMAIL, "ops@example.com")])).unwrap();
        assert_eq!(s.admin, None);
    }

    #[test]
    fn the_default_email_and_an_inline_password() {
        let s = Settings::from_vars(vars(&[(ADMIN_PASSWORD, "correct horse")])).unwrap();
        let admin = s.admin.unwrap();
        assert_eq!(admin.email.as_str(), DEFAULT_ADMIN_EMAIL);
        assert_eq!(admin.password.expose(), "correct horse");
        let s = Settings::from_vars(vars(&[
            (ADMIN_PASSWORD, "correct horse"),
            (ADMIN_EMAIL, " Ops@Example.COM "),
        ]))
        .unwrap();
        assert_eq!(s.admin.unwrap().email.as_str(), "ops@example.com");
    }

    #[test]
    fn a_password_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin-password");
        std::fs::write(&file, "s3cret-from-a-file\n").unwrap();
        let s =
            Settings::from_vars(vars(&[(ADMIN_PASSWORD_FILE, file.to_str().unwrap())])).unwrap();
        assert_eq!(s.admin.unwrap().password.expose(), "s3cret-from-a-file");
    }

    #[test]
    fn bad_values_name_the_variable_and_never_print_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let short = dir.path().join("short");
        std::fs::write(&short, "tiny\n").unwrap();
        for (pairs, var) in [
            (vec![(ADMIN_PASSWORD, "tiny")], ADMIN_PASSWORD),
            (
                vec![(ADMIN_PASSWORD_FILE, missing.to_str().unwrap())],
                ADMIN_PASSWORD_FILE,
            ),
            (
                vec![(ADMIN_PASSWORD_FILE, short.to_str().unwrap())],
                ADMIN_PASSWORD_FILE,
            ),
            (
                vec![(ADMIN_PASSWORD, "long enough"), (ADMIN_PASSWORD_FILE, "/x")],
                ADMIN_PASSWORD_FILE,
            ),
            (
                vec![
                    (ADMIN_PASSWORD, "long enough"),
                    (ADMIN_EMAIL, "admin@localhost"),
                ],
                ADMIN_EMAIL,
            ),
        ] {
            let e = Settings::from_vars(vars(&pairs)).unwrap_err();
            assert_eq!(e.var, var, "{e}");
            let text = e.to_string();
            assert!(
                !text.contains("tiny") && !text.contains("long enough"),
                "{text}"
            );
        }
    }

    #[test]
    fn generated_passwords_are_long_random_and_url_safe() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{a}"
        );
        assert!(Password::parse(a).is_ok());
    }
}
