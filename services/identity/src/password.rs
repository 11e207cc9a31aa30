//! Password hashing with argon2id (parameters in the crate docs).
//!
//! Hashing is slow on purpose, so it runs on the blocking pool, never on
//! the async workers, and at most one hash per CPU at a time: each takes
//! 19 MiB, and a burst of logins must queue rather than exhaust memory.

use std::sync::Arc;

use anyhow::Context as _;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// Memory per hash in KiB (19 MiB), OWASP's first argon2id configuration.
pub const M_COST_KIB: u32 = 19_456;
/// Passes over the memory.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub(crate) struct Hasher {
    argon: Argon2<'static>,
    /// A hash of a random password nobody knows, verified against when the
    /// e-mail has no account, so a miss costs as much as a wrong password.
    dummy: Arc<str>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

/// What a verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verified {
    /// The password is right, and the hash uses today's parameters.
    Yes,
    /// The password is right, but the hash was made with other parameters:
    /// store a new one.
    YesRehash,
    /// Wrong password, or no account.
    No,
}

impl Hasher {
    /// A hasher with the documented parameters; computes the dummy hash.
    pub(crate) async fn new() -> anyhow::Result<Self> {
        let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
            .map_err(|e| anyhow::anyhow!("bad argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let permits = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut hasher = Self {
            argon,
            dummy: Arc::from(""),
            permits: Arc::new(Semaphore::new(permits)),
        };
        let mut secret = [0_u8; 32];
        getrandom::fill(&mut secret).context("no randomness for the dummy password")?;
        let unknowable = Password::parse(crate::tokens::b64(&secret))
            .map_err(|e| anyhow::anyhow!("dummy password: {e}"))?;
        hasher.dummy = Arc::from(hasher.hash(&unknowable).await?);
        Ok(hasher)
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of
    /// `password` with a fresh 16-byte salt.
    pub(crate) async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let mut salt = [0_u8; 16];
        getrandom::fill(&mut salt).context("no randomness for a salt")?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        let argon = self.argon.clone();
        let password = password.expose().to_owned();
        self.blocking(move || {
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("cannot hash a password: {e}"))
        })
        .await
    }

    /// Checks `password` against `stored`, or against the dummy hash when
    /// there is no account, so both cases take the same time.
    pub(crate) async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> anyhow::Result<Verified> {
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy.to_string());
        let argon = self.argon.clone();
        let current = self.argon.params().clone();
        let verified = self
            .blocking(move || {
                let parsed = PasswordHash::new(&stored)
                    .map_err(|e| anyhow::anyhow!("a stored password hash is unreadable: {e}"))?;
                if argon.verify_password(password.as_bytes(), &parsed).is_err() {
                    return Ok(Verified::No);
                }
                let same = parsed.algorithm.as_str() == Algorithm::Argon2id.ident().as_str()
                    && Params::try_from(&parsed).is_ok_and(|p| {
                        (p.m_cost(), p.t_cost(), p.p_cost())
                            == (current.m_cost(), current.t_cost(), current.p_cost())
                    });
                Ok(if same {
                    Verified::Yes
                } else {
                    Verified::YesRehash
                })
            })
            .await?;
        // The dummy's password is unknowable, but never let it sign anyone in.
        Ok(if exists { verified } else { Verified::No })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .context("the hashing semaphore is closed")?;
        tokio::task::spawn_blocking(work)
            .await
            .context("the hashing task failed")?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::parse(s.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_name_their_parameters() {
        let hasher = Hasher::new().await.unwrap();
        let hash = hasher.hash(&pw("correct horse")).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let again = hasher.hash(&pw("correct horse")).await.unwrap();
        assert_ne!(hash, again, "every hash has its own salt");
        let check = |p: &str, h: Option<String>| hasher.verify(p.to_owned(), h);
        assert_eq!(
            check("correct horse", Some(hash.clone())).await.unwrap(),
            Verified::Yes
        );
        assert_eq!(
            check("correct horsE", Some(hash)).await.unwrap(),
            Verified::No
        );
        assert_eq!(check("correct horse", None).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn hashes_with_older_parameters_ask_for_a_rehash() {
        let hasher = Hasher::new().await.unwrap();
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(&[1; 16]).unwrap();
        let old = weak
            .hash_password(b"an old password", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            hasher
                .verify("an old password".into(), Some(old))
                .await
                .unwrap(),
            Verified::YesRehash
        );
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_error_not_a_match() {
        let hasher = Hasher::new().await.unwrap();
        assert!(
            hasher
                .verify("whatever1".into(), Some("not a hash".into()))
                .await
                .is_err()
        );
    }
}
