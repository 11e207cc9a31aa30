//! The two kinds of token identity hands out: short-lived signed access
//! tokens (JWT, EdDSA, verified by every service on its own) and long-lived
//! opaque refresh tokens (only identity can redeem them, once).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bazaar_platform::auth::{AUDIENCE, Claims, ISSUER};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::domain::Role;

/// How long an access token is good for: short, since it cannot be revoked.
pub const ACCESS_TTL_SECONDS: i64 = 15 * 60;
/// How long a refresh token is good for if it is not used.
pub const REFRESH_TTL_SECONDS: i64 = 30 * 24 * 60 * 60;

/// The claims of a fresh access token for `user` as `role`, issued at `now`.
pub(crate) fn access_claims(user: Uuid, role: Role, now: i64) -> Claims {
    Claims {
        sub: user.to_string(),
        role: role.as_str().to_owned(),
        exp: now + ACCESS_TTL_SECONDS,
        iat: now,
        jti: Uuid::now_v7().to_string(),
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
    }
}

/// A new refresh token: what the client gets, and what the database keeps.
#[derive(Clone)]
pub(crate) struct RefreshToken {
    /// 32 random bytes, base64url: the client's copy, never stored.
    pub(crate) token: String,
    /// Its SHA-256, hex: all the database knows.
    pub(crate) hash: String,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// 256 random bits.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0_u8; 32];
        getrandom::fill(&mut bytes)?;
        let token = b64(&bytes);
        let hash = hash_refresh(&token);
        Ok(Self { token, hash })
    }
}

/// The stored form of a presented refresh token. A plain hash suffices (no
/// salt, no argon2): the token is 256 random bits, not a guessable
/// password, and a leaked table must not yield usable tokens.
pub(crate) fn hash_refresh(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Base64url without padding.
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_claims_last_fifteen_minutes_and_name_us() {
        let user = Uuid::now_v7();
        let c = access_claims(user, Role::Seller, 1_000);
        assert_eq!(c.sub, user.to_string());
        assert_eq!(c.role, "seller");
        assert_eq!((c.iat, c.exp), (1_000, 1_900));
        assert_eq!((c.iss.as_str(), c.aud.as_str()), (ISSUER, AUDIENCE));
        assert_ne!(
            c.jti,
            access_claims(user, Role::Seller, 1_000).jti,
            "every token its own id"
        );
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let a = RefreshToken::generate().unwrap();
        let b = RefreshToken::generate().unwrap();
        assert_ne!(a.token, b.token);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a.token).unwrap().len(), 32);
        assert_eq!(a.hash, hash_refresh(&a.token));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.token));
        assert!(!format!("{a:?}").contains(&a.token));
    }
}
