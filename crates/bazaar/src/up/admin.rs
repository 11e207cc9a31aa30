//! The local admin account of a fleet: its password is generated once into
//! `<data dir>/admin-password` (mode 0600) and handed to identity by path
//! (`BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE`), which creates the account on its
//! first start (see `bazaar_identity::Settings`).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bazaar_identity::domain::{Email, Password};

/// The password file's name inside the data dir.
pub const PASSWORD_FILE: &str = "admin-password";

/// The admin password file of a fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPassword {
    /// `<data dir>/admin-password`.
    pub path: PathBuf,
    /// Whether this start generated it.
    pub created: bool,
}

/// The password file in `data_dir`, generated (from the operating system's
/// CSPRNG) if there is none. An existing file is kept, but must hold a
/// password identity accepts.
///
/// Launchers sharing a data dir may start together: the password is written
/// to a private temporary file and hard-linked into place, which fails if
/// another got there first; then everyone uses the winner's.
pub fn ensure(data_dir: &Path) -> anyhow::Result<AdminPassword> {
    let path = data_dir.join(PASSWORD_FILE);
    if check(&path)? {
        return Ok(AdminPassword {
            path,
            created: false,
        });
    }
    let password =
        bazaar_identity::generate_password().context("no randomness for the admin password")?;
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        writeln!(file, "{password}")?;
        file.sync_all()?;
        std::fs::hard_link(&temporary, &path)
    })();
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => Ok(AdminPassword {
            path,
            created: true,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            anyhow::ensure!(check(&path)?, "{} vanished while starting", path.display());
            Ok(AdminPassword {
                path,
                created: false,
            })
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot write the admin password {}", path.display()))
        }
    }
}

/// Whether `path` exists; an error if it does but is not a usable password.
fn check(path: &Path) -> anyhow::Result<bool> {
    match std::fs::read_to_string(path) {
        Ok(text) => match Password::parse(text.trim().to_owned()) {
            Ok(_) => Ok(true),
            Err(e) => anyhow::bail!(
                "the admin password in {} {}; delete the file to generate a new one",
                path.display(),
                e.message()
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The admin's e-mail as identity will read it from this environment
/// (`BAZAAR_IDENTITY_ADMIN_EMAIL`, inherited by identity).
pub fn email(vars: impl IntoIterator<Item = (String, String)>) -> String {
    vars.into_iter()
        .find(|(k, _)| k == bazaar_identity::ADMIN_EMAIL)
        .and_then(|(_, v)| Email::parse(&v).ok())
        .map_or_else(
            || bazaar_identity::DEFAULT_ADMIN_EMAIL.to_owned(),
            |e| e.as_str().to_owned(),
        )
}

/// The line printed after `ready:`, telling how to sign in as the admin.
pub fn sign_in_line(public: &str, email: &str, password: &AdminPassword) -> String {
    format!(
        "admin: sign in at {public}/login as {email} with the password in {}",
        password.path.display()
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_private_password_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path()).unwrap();
        assert!(first.created);
        assert_eq!(first.path, dir.path().join(PASSWORD_FILE));
        let mode = std::fs::metadata(&first.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let password = std::fs::read_to_string(&first.path).unwrap();
        assert!(password.trim().len() >= 20, "{password:?}");
        // What identity reads through BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE.
        let settings = bazaar_identity::Settings::from_vars([(
            bazaar_identity::ADMIN_PASSWORD_FILE.to_owned(),
            first.path.to_string_lossy().into_owned(),
        )])
        .unwrap();
        assert_eq!(
            settings.admin.unwrap().password.expose(),
            password.trim_end()
        );

        let second = ensure(dir.path()).unwrap();
        assert!(!second.created);
        assert_eq!(std::fs::read_to_string(&second.path).unwrap(), password);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Another data dir, another password.
        let other = tempfile::tempdir().unwrap();
        ensure(other.path()).unwrap();
        assert_ne!(
            std::fs::read_to_string(other.path().join(PASSWORD_FILE)).unwrap(),
            password
        );
    }

    #[test]
    fn an_unusable_password_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PASSWORD_FILE), "\n").unwrap();
        let e = ensure(dir.path()).unwrap_err().to_string();
        assert!(e.contains("delete the file"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(PASSWORD_FILE)).unwrap(),
            "\n"
        );
    }

    #[test]
    fn the_line_names_the_email_identity_uses_and_the_file() {
        let var = |v: &str| [(bazaar_identity::ADMIN_EMAIL.to_owned(), v.to_owned())];
        assert_eq!(email([]), "admin@bazaar.local");
        assert_eq!(email(var(" Ops@Example.COM")), "ops@example.com");
        let password = AdminPassword {
            path: PathBuf::from("/srv/bazaar/admin-password"),
            created: false,
        };
        assert_eq!(
            sign_in_line("http://127.0.0.1:8080", "admin@bazaar.local", &password),
            "admin: sign in at http://127.0.0.1:8080/login as admin@bazaar.local with the password in /srv/bazaar/admin-password"
        );
    }
}
