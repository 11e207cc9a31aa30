//! Who is calling: access tokens are JWTs signed with EdDSA (Ed25519) by the
//! identity service; every service (and the gateway) verifies them itself
//! against identity's public keys (JWKS), fetched and cached by key id.
//!
//! Only `alg: EdDSA` is accepted — `none`, HMAC and RSA are refused before a
//! key is even looked up — and issuer, audience and expiry are checked on
//! every token. A token is a claim about a user, never a header a service
//! trusts because the gateway might have checked it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::FromRequestParts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use http::request::Parts;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::client::{Endpoints, HttpClient, Policy};
use crate::problem::Problem;

/// The `iss` of every access token.
pub const ISSUER: &str = "bazaar-identity";
/// The `aud` of every access token.
pub const AUDIENCE: &str = "bazaar";
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECONDS: i64 = 30;
/// Where identity serves its public keys.
pub const JWKS_PATH: &str = "/api/v1/auth/jwks.json";

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    /// `customer`, `seller` or `admin`.
    pub role: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Token id.
    pub jti: String,
    /// Issuer; always [`ISSUER`].
    pub iss: String,
    /// Audience; always [`AUDIENCE`].
    pub aud: String,
}

/// Why a token is refused. The client sees 401 and nothing more specific.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    Missing,
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// An algorithm other than EdDSA (including `none`).
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    /// A key id nobody published.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// Past `exp`.
    #[error("expired")]
    Expired,
    /// Wrong `iss` or `aud`, or issued in the future.
    #[error("not a token for this audience: {0}")]
    Claims(&'static str),
    /// The keys could not be fetched.
    #[error("cannot fetch the signing keys: {0}")]
    Keys(String),
    /// A valid token whose `sub` is not a user id or whose `role` is not a
    /// role.
    #[error("the token does not name a user")]
    Subject,
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Keys(_) => Problem::service_unavailable(
                "Sign-in cannot be checked right now; try again shortly.",
            ),
            AuthError::Missing => Problem::unauthorized("Sign in: this needs an access token."),
            AuthError::Subject => Problem::unauthorized("The access token does not name a user."),
            _ => Problem::unauthorized("The access token is invalid or expired."),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// One public key as JWKS publishes it (RFC 8037: OKP, Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// Key id.
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// A key that signs access tokens (identity holds it; nobody else does).
#[derive(Clone)]
pub struct TokenSigner {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer from a 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let kid = key_id(&key.verifying_key());
        Self { key, kid }
    }

    /// The key id: a thumbprint of the public key, so rotating keys rotates ids.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, as JWKS publishes it.
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: B64.encode(self.key.verifying_key().as_bytes()),
            kid: self.kid.clone(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        }
    }

    /// Signs `claims` as a compact JWS.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            typ: Some("JWT".into()),
            kid: Some(self.kid.clone()),
        };
        // Plain structs of strings and integers always serialize.
        let header = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
        let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
    }
}

fn key_id(key: &VerifyingKey) -> String {
    let digest = sha2::Sha256::digest(key.as_bytes());
    B64.encode(&digest[..12])
}

/// Verifies `token` with the keys `lookup` finds, at `now` (seconds).
pub fn verify_with(
    token: &str,
    now: i64,
    lookup: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<Claims, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let decoded = |part: &str| B64.decode(part).map_err(|_| AuthError::Malformed);
    let header: Header =
        serde_json::from_slice(&decoded(header)?).map_err(|_| AuthError::Malformed)?;
    if header.alg != "EdDSA" {
        return Err(AuthError::Algorithm(header.alg));
    }
    let kid = header.kid.unwrap_or_default();
    let key = lookup(&kid).ok_or_else(|| AuthError::UnknownKey(kid.clone()))?;
    let signature: [u8; 64] = decoded(signature)?
        .try_into()
        .map_err(|_| AuthError::Signature)?;
    let signing_input = &token[..token.rfind('.').unwrap_or(0)];
    key.verify_strict(signing_input.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| AuthError::Signature)?;
    let claims: Claims =
        serde_json::from_slice(&decoded(payload)?).map_err(|_| AuthError::Malformed)?;
    if claims.iss != ISSUER {
        return Err(AuthError::Claims("issuer"));
    }
    if claims.aud != AUDIENCE {
        return Err(AuthError::Claims("audience"));
    }
    if claims.exp + LEEWAY_SECONDS <= now {
        return Err(AuthError::Expired);
    }
    if claims.iat > now + LEEWAY_SECONDS {
        return Err(AuthError::Claims("issued in the future"));
    }
    Ok(claims)
}

/// Seconds since the epoch.
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Where a verifier gets its keys.
#[derive(Clone, Debug)]
enum KeySource {
    /// identity itself: the keys it signs with, known up front.
    Local,
    /// Everyone else: identity's JWKS endpoint.
    Remote(Box<HttpClient>),
}

/// Verifies access tokens with cached public keys. An unknown key id makes
/// it fetch the JWKS again (at most once per `REFRESH_GAP`), so a rotated
/// key is picked up without a restart; and a key set older than
/// [`KEYS_MAX_AGE`] is fetched again in the background, replacing the old
/// one, so a key identity stopped publishing stops verifying within
/// minutes. While identity does not answer, the keys it last published
/// stay in use: a blink of identity signs nobody out.
#[derive(Clone, Debug)]
pub struct Verifier {
    source: KeySource,
    keys: Arc<RwLock<HashMap<String, VerifyingKey>>>,
    refresh: Arc<Mutex<Option<tokio::time::Instant>>>,
    /// When the key set was last fetched, and when a background fetch was
    /// last started (remote keys only).
    fetched: Arc<std::sync::Mutex<(Option<tokio::time::Instant>, Option<tokio::time::Instant>)>>,
    max_age: Duration,
}

const REFRESH_GAP: Duration = Duration::from_secs(5);

/// How long a fetched key set is trusted before it is fetched again.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(300);

impl Verifier {
    /// A verifier that fetches identity's JWKS from `identity` instances.
    pub fn remote(identity: Vec<url::Url>) -> Self {
        let policy = Policy {
            deadline: Duration::from_secs(3),
            ..Policy::default()
        };
        Self::with_source(KeySource::Remote(Box::new(HttpClient::new(
            Endpoints::new("identity", identity),
            policy,
        ))))
    }

    /// A verifier over known keys (identity verifies its own tokens).
    pub fn local(keys: Vec<Jwk>) -> Self {
        let verifier = Self::with_source(KeySource::Local);
        verifier.store(&Jwks { keys });
        verifier
    }

    fn with_source(source: KeySource) -> Self {
        Self {
            source,
            keys: Arc::default(),
            refresh: Arc::default(),
            fetched: Arc::default(),
            max_age: KEYS_MAX_AGE,
        }
    }

    /// Trusts a fetched key set for `max_age` instead of [`KEYS_MAX_AGE`].
    #[must_use]
    pub fn with_key_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Replaces the key set with `jwks`: a key no longer in it is forgotten.
    fn store(&self, jwks: &Jwks) {
        let mut fresh = HashMap::new();
        for jwk in &jwks.keys {
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
                continue;
            }
            let Ok(bytes) = B64.decode(&jwk.x) else {
                continue;
            };
            let Ok(bytes) = <[u8; 32]>::try_from(bytes.as_slice()) else {
                continue;
            };
            if let Ok(key) = VerifyingKey::from_bytes(&bytes) {
                fresh.insert(jwk.kid.clone(), key);
            }
        }
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    }

    /// Whether a fetched remote key set is older than its max age and no
    /// background fetch started within `REFRESH_GAP`; if so, notes that one
    /// starts now. A set never fetched is not due: the first token's
    /// unknown key fetches it.
    fn due_for_refresh(&self) -> bool {
        let mut fetched = crate::client::lock(&self.fetched);
        let (last_fetch, last_try) = *fetched;
        let stale = last_fetch.is_some_and(|at| at.elapsed() >= self.max_age);
        let trying = last_try.is_some_and(|at| at.elapsed() < REFRESH_GAP);
        if stale && !trying {
            fetched.1 = Some(tokio::time::Instant::now());
            return true;
        }
        false
    }

    fn lookup(&self, kid: &str) -> Option<VerifyingKey> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(kid)
            .copied()
    }

    async fn fetch(&self) -> Result<(), AuthError> {
        let KeySource::Remote(client) = &self.source else {
            return Ok(());
        };
        let mut last = self.refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFRESH_GAP) {
            return Ok(());
        }
        *last = Some(tokio::time::Instant::now());
        // Held until the keys are stored: a caller that waited for this
        // fetch must find them when it looks again.
        let fetched = self.fetch_now(client).await;
        drop(last);
        fetched
    }

    /// Fetches the key set and replaces the one at hand.
    async fn fetch_now(&self, client: &HttpClient) -> Result<(), AuthError> {
        let response = client
            .get(JWKS_PATH)
            .await
            .map_err(|e| AuthError::Keys(e.to_string()))?;
        if !response.status().is_success() {
            return Err(AuthError::Keys(format!(
                "JWKS answered {}",
                response.status()
            )));
        }
        let jwks: Jwks = serde_json::from_slice(response.body())
            .map_err(|e| AuthError::Keys(format!("JWKS is not valid: {e}")))?;
        self.store(&jwks);
        crate::client::lock(&self.fetched).0 = Some(tokio::time::Instant::now());
        Ok(())
    }

    /// Verifies a compact JWS access token.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let now = now_seconds();
        if self.due_for_refresh() {
            // Fetched again off the request path; this token is checked
            // against the keys at hand.
            let verifier = self.clone();
            tokio::spawn(async move {
                let KeySource::Remote(client) = &verifier.source else {
                    return;
                };
                if let Err(error) = verifier.fetch_now(client).await {
                    tracing::warn!(%error, "cannot refresh the token keys; the last ones stay in use");
                }
            });
        }
        match verify_with(token, now, |kid| self.lookup(kid)) {
            Err(AuthError::UnknownKey(_)) => {
                self.fetch().await?;
                verify_with(token, now, |kid| self.lookup(kid))
            }
            other => other,
        }
    }

    /// Verifies the `Authorization: Bearer` token of a request.
    pub async fn verify_headers(&self, headers: &http::HeaderMap) -> Result<Claims, AuthError> {
        let token = bearer(headers).ok_or(AuthError::Missing)?;
        self.verify(token).await
    }
}

/// The bearer token of `Authorization`, if any.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// What an account may do; tokens carry it as `role`.
pub use bazaar_events::identity::Role;

/// The signed-in user of a request, read from a verified token once: its
/// id and role, typed. Extracting it answers 401 (as a problem) without a
/// valid token or with one whose subject is not a user id or whose role
/// nobody defined. Needs the service's [`Verifier`] as an `Extension`
/// (`Routes::with_auth`).
///
/// The role checks every service makes are its methods, so they agree:
/// only a seller sells (an admin operates the shop, it does not sell), only
/// an admin reads what is not theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// The user's id (the token's `sub`).
    pub id: Uuid,
    /// The user's role.
    pub role: Role,
}

impl User {
    /// The user a token's claims name.
    ///
    /// # Errors
    /// [`AuthError::Subject`] when `sub` is not a user id or `role` is not
    /// a role.
    pub fn from_claims(claims: &Claims) -> Result<Self, AuthError> {
        let id = Uuid::parse_str(&claims.sub).map_err(|_| AuthError::Subject)?;
        let role = Role::parse(&claims.role).ok_or(AuthError::Subject)?;
        Ok(Self { id, role })
    }

    /// Whether the user operates the marketplace.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the user may put products on sale (sellers only).
    pub fn can_sell(&self) -> bool {
        self.role == Role::Seller
    }
}

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let verifier = parts.extensions.get::<Verifier>().cloned().ok_or_else(|| {
            Problem::internal(&*anyhow::anyhow!(
                "no Verifier extension: the service did not enable auth"
            ))
        })?;
        let user = verifier
            .verify_headers(&parts.headers)
            .await
            .and_then(|claims| User::from_claims(&claims))
            .map_err(|e| {
                tracing::debug!(error = %e, "token refused");
                Problem::from(e)
            })?;
        Ok(user)
    }
}

/// Declares the OpenAPI security scheme named `bearer` (HTTP bearer, format
/// `JWT`) that protected operations refer to with `security(("bearer" = []))`.
/// A service imports it and writes `#[openapi(modifiers(&BearerAuth))]`
/// (utoipa takes a bare name there, not a path).
#[derive(Debug, Clone, Copy, Default)]
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::from_seed(&[7; 32])
    }

    fn claims(now: i64) -> Claims {
        Claims {
            sub: "u1".into(),
            role: "customer".into(),
            exp: now + 900,
            iat: now,
            jti: "j1".into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        }
    }

    fn verify(token: &str, now: i64) -> Result<Claims, AuthError> {
        let s = signer();
        let jwk = s.jwk();
        let verifier = Verifier::local(vec![jwk]);
        verify_with(token, now, |kid| verifier.lookup(kid))
    }

    /// An identity whose JWKS publishes the keys in the returned cell.
    async fn identity(keys: Vec<Jwk>) -> (url::Url, Arc<std::sync::Mutex<Vec<Jwk>>>) {
        let published = Arc::new(std::sync::Mutex::new(keys));
        let serving = published.clone();
        let router = axum::Router::new().route(
            JWKS_PATH,
            axum::routing::get(move || {
                let keys = serving.lock().unwrap().clone();
                async move { axum::Json(Jwks { keys }) }
            }),
        );
        (bazaar_testkit::serve(router).await, published)
    }

    #[tokio::test]
    async fn a_key_identity_stops_publishing_stops_verifying() {
        let old = signer();
        let new = TokenSigner::from_seed(&[9; 32]);
        let (url, published) = identity(vec![old.jwk(), new.jwk()]).await;
        let verifier = Verifier::remote(vec![url]).with_key_max_age(Duration::from_millis(200));
        let now = now_seconds();
        let by_old = old.sign(&claims(now));
        let by_new = new.sign(&claims(now));
        assert!(verifier.verify(&by_old).await.is_ok());
        assert!(verifier.verify(&by_new).await.is_ok());

        // The old key is withdrawn; once the set is stale, it is fetched
        // again in the background and the old key is forgotten.
        *published.lock().unwrap() = vec![new.jwk()];
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = verifier.verify(&by_new).await;
        let mut forgotten = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if verifier.lookup(old.kid()).is_none() {
                forgotten = true;
                break;
            }
        }
        assert!(forgotten, "the withdrawn key is still trusted");
        assert!(matches!(
            verifier.verify(&by_old).await,
            Err(AuthError::UnknownKey(_))
        ));
        assert!(
            verifier.verify(&by_new).await.is_ok(),
            "the published key still verifies"
        );
    }

    #[tokio::test]
    async fn callers_that_wait_for_the_first_fetch_find_the_keys() {
        let signer = signer();
        let (url, _) = identity(vec![signer.jwk()]).await;
        let verifier = Verifier::remote(vec![url]);
        let token = signer.sign(&claims(now_seconds()));
        let all = futures_util::future::join_all((0..20).map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            tokio::spawn(async move { verifier.verify(&token).await })
        }))
        .await;
        for result in all {
            assert!(
                result.unwrap().is_ok(),
                "a token verified before the keys were stored"
            );
        }
    }

    #[tokio::test]
    async fn keys_stay_in_use_while_identity_does_not_answer() {
        let old = signer();
        let (url, _) = identity(vec![old.jwk()]).await;
        let verifier = Verifier::remote(vec![url]).with_key_max_age(Duration::from_millis(100));
        let token = old.sign(&claims(now_seconds()));
        assert!(verifier.verify(&token).await.is_ok());
        // Identity gone: the key set goes stale, refreshing fails, the key stays.
        let gone = Verifier {
            source: KeySource::Remote(Box::new(HttpClient::new(
                Endpoints::new("identity", vec![bazaar_testkit::refused_url("http")]),
                Policy::default(),
            ))),
            ..verifier.clone()
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        for _ in 0..3 {
            assert!(gone.verify(&token).await.is_ok());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[test]
    fn a_user_is_a_uuid_and_a_known_role_and_only_sellers_sell() {
        let id = Uuid::now_v7();
        let mut c = claims(0);
        c.sub = id.to_string();
        for (role, admin, sells) in [
            ("customer", false, false),
            ("seller", false, true),
            ("admin", true, false),
        ] {
            c.role = role.into();
            let user = User::from_claims(&c).unwrap();
            assert_eq!(user.id, id);
            assert_eq!(user.role.as_str(), role);
            assert_eq!((user.is_admin(), user.can_sell()), (admin, sells), "{role}");
        }
        c.role = "root".into();
        assert_eq!(User::from_claims(&c), Err(AuthError::Subject));
        c.role = "seller".into();
        c.sub = "u1".into();
        assert_eq!(User::from_claims(&c), Err(AuthError::Subject));
        let problem = Problem::from(AuthError::Subject);
        assert_eq!(problem.status, 401);
    }

    #[test]
    fn a_signed_token_verifies() {
        let now = now_seconds();
        let token = signer().sign(&claims(now));
        assert_eq!(verify(&token, now).unwrap(), claims(now));
    }

    #[test]
    fn alg_none_and_others_are_refused() {
        let now = now_seconds();
        let payload = B64.encode(serde_json::to_vec(&claims(now)).unwrap());
        for alg in ["none", "HS256", "RS256", "eddsa"] {
            let header = B64.encode(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, signer().kid()));
            let token = format!("{header}.{payload}.");
            assert_eq!(verify(&token, now), Err(AuthError::Algorithm(alg.into())));
        }
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let now = now_seconds();
        let token = signer().sign(&claims(now));
        let mut admin = claims(now);
        admin.role = "admin".into();
        let forged_payload = B64.encode(serde_json::to_vec(&admin).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(verify(&forged, now), Err(AuthError::Signature));
        // Signed by another key but claiming ours: refused.
        let theirs = TokenSigner::from_seed(&[8; 32]).sign(&claims(now));
        let tp: Vec<&str> = theirs.split('.').collect();
        let spoof = format!("{}.{}.{}", parts[0], tp[1], tp[2]);
        assert_eq!(verify(&spoof, now), Err(AuthError::Signature));
    }

    #[test]
    fn expiry_issuer_and_audience_are_checked() {
        let now = now_seconds();
        let s = signer();
        let mut c = claims(now);
        c.exp = now - 120;
        assert_eq!(verify(&s.sign(&c), now), Err(AuthError::Expired));
        let mut c = claims(now);
        c.aud = "someone-else".into();
        assert_eq!(verify(&s.sign(&c), now), Err(AuthError::Claims("audience")));
        let mut c = claims(now);
        c.iss = "evil".into();
        assert_eq!(verify(&s.sign(&c), now), Err(AuthError::Claims("issuer")));
        let mut c = claims(now);
        c.iat = now + 3600;
        assert!(verify(&s.sign(&c), now).is_err());
    }

    #[test]
    fn unknown_keys_and_garbage_are_refused() {
        let now = now_seconds();
        let stranger = TokenSigner::from_seed(&[9; 32]).sign(&claims(now));
        assert!(matches!(
            verify(&stranger, now),
            Err(AuthError::UnknownKey(_))
        ));
        for junk in ["", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.e30"] {
            assert!(verify(junk, now).is_err(), "{junk}");
        }
    }

    #[test]
    fn bearer_is_read_case_insensitively() {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn bearer_auth_declares_the_jwt_bearer_scheme() {
        use utoipa::Modify as _;

        let mut doc = utoipa::openapi::OpenApi::default();
        BearerAuth.modify(&mut doc);
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            json["components"]["securitySchemes"]["bearer"],
            serde_json::json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
        );
    }
}
