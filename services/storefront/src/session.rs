//! Who is looking at a page: the session cookies, their refresh, and the
//! CSRF token every form carries.
//!
//! The session is the user's own access and refresh tokens from identity,
//! each in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` when
//! [`crate::Settings::secure_cookies`]): the storefront keeps no session
//! state of its own, so any replica serves any request. An expired access
//! token is renewed with the refresh token on the way in ([`layer`]) and the
//! new cookies go out with the answer.
//!
//! Forms are protected twice: the session cookies are `SameSite=Lax`, so a
//! cross-site POST does not carry them, and every form holds the CSRF token
//! of a cookie of its own (double submit), checked by [`CsrfForm`] with a
//! constant-time comparison; a request whose `Origin` names another site is
//! refused before that.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bazaar_platform::auth::{self, AuthError, Role};
use http::request::Parts;
use http::{HeaderMap, Method, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::App;
use crate::error::PageError;

/// The access token's cookie.
pub const ACCESS_COOKIE: &str = "bazaar_access";
/// The refresh token's cookie.
pub const REFRESH_COOKIE: &str = "bazaar_refresh";
/// The signed-in user's display name (shown in the header; not a credential).
pub const NAME_COOKIE: &str = "bazaar_name";
/// The CSRF token's cookie.
pub const CSRF_COOKIE: &str = "bazaar_csrf";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// How long the session cookies live: identity's refresh token lifetime.
const SESSION_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a refresh's result is reused for the same refresh token, so a
/// page and its live stream renewing at once do not log the user out (the
/// first refresh makes the old refresh token stop working).
const REFRESH_REUSE: Duration = Duration::from_secs(30);
/// How many recent refreshes are remembered: far more than renew within
/// [`REFRESH_REUSE`] (one per user per access token lifetime).
const REFRESH_CAPACITY: u64 = 100_000;

/// The signed-in user.
#[derive(Debug, Clone)]
pub struct User {
    /// Identity's id of the user.
    pub id: String,
    /// What the user may do.
    pub role: Role,
    /// The display name given at sign-in.
    pub name: String,
    /// The access token, passed on to the backend services.
    pub token: String,
}

impl User {
    /// Whether the user may sell: sellers only, as catalog decides (an
    /// admin operates the shop, it does not sell).
    pub fn can_sell(&self) -> bool {
        self.role == Role::Seller
    }

    /// Whether the user may see the ops console.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The session of one request, put in its extensions by [`layer`].
#[derive(Debug, Clone)]
pub struct Session {
    /// The signed-in user, if any.
    pub user: Option<User>,
    /// The CSRF token forms must carry.
    pub csrf: String,
}

impl Session {
    /// The user, or a redirect to the sign-in page that comes back to `back`.
    ///
    /// # Errors
    /// [`PageError::SignIn`] when nobody is signed in.
    pub fn require(&self, back: &str) -> Result<&User, PageError> {
        self.user
            .as_ref()
            .ok_or_else(|| PageError::SignIn(back.to_owned()))
    }

    /// The access token, if signed in.
    pub fn token(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.token.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| PageError::Internal("the session layer is missing".to_owned()))
    }
}

/// Tokens as identity answers them.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
}

/// Renews sessions, once per refresh token: concurrent renewals of one
/// session share one call to identity, and its answer is reused for
/// [`REFRESH_REUSE`]; renewals of different sessions do not wait on each
/// other. A refused renewal is not remembered.
#[derive(Debug)]
pub struct Refresher {
    /// By the SHA-256 of the refresh token, so no token is kept as a key.
    recent: moka::future::Cache<[u8; 32], Tokens>,
}

impl Default for Refresher {
    fn default() -> Self {
        Self {
            recent: moka::future::Cache::builder()
                .max_capacity(REFRESH_CAPACITY)
                .time_to_live(REFRESH_REUSE)
                .build(),
        }
    }
}

/// What a renewal of a session came to.
enum Renewal {
    /// New tokens.
    Renewed(Tokens),
    /// Identity answered that the refresh token signs nobody in (expired,
    /// revoked, reused): the session is over.
    Refused,
    /// No verdict (identity unavailable, slow or failing): the session
    /// stays, and the next request tries again.
    Unknown,
}

impl Refresher {
    async fn refresh(&self, app: &App, refresh_token: &str) -> Renewal {
        let key: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
        let renew = async {
            let call = app
                .backend
                .call("identity", Method::POST, "/api/v1/auth/refresh")
                .json(&serde_json::json!({ "refresh_token": refresh_token }));
            app.backend.json::<Tokens>(call).await
        };
        match self.recent.try_get_with(key, renew).await {
            Ok(tokens) => Renewal::Renewed(tokens),
            Err(error) if error.status().is_some_and(|s| s.is_client_error()) => {
                tracing::debug!(%error, "session refresh refused");
                Renewal::Refused
            }
            Err(error) => {
                tracing::warn!(%error, "cannot renew a session now; it is kept");
                Renewal::Unknown
            }
        }
    }
}

/// A session cookie: `HttpOnly`, `SameSite=Lax`, for the whole site,
/// `Secure` when configured; for the session's lifetime when `persistent`,
/// else until the browser closes.
fn cookie(app: &App, name: &'static str, value: String, persistent: bool) -> Cookie<'static> {
    build_cookie(name, value, persistent, app.settings.secure_cookies)
}

fn build_cookie(
    name: &'static str,
    value: String,
    persistent: bool,
    secure: bool,
) -> Cookie<'static> {
    let mut cookie = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure);
    if persistent {
        cookie = cookie.max_age(time::Duration::seconds(
            i64::try_from(SESSION_MAX_AGE.as_secs()).unwrap_or(i64::MAX),
        ));
    }
    cookie.build()
}

/// What removes the cookie `name`: the same attributes, empty, `Max-Age=0`.
fn removal(app: &App, name: &'static str) -> Cookie<'static> {
    let mut cookie = cookie(app, name, String::new(), false);
    cookie.set_max_age(time::Duration::ZERO);
    cookie
}

/// `jar` with the session of `tokens` and the name to show.
pub fn sign_in(app: &App, jar: CookieJar, tokens: &Tokens, name: &str) -> CookieJar {
    jar.add(cookie(
        app,
        ACCESS_COOKIE,
        tokens.access_token.clone(),
        true,
    ))
    .add(cookie(
        app,
        REFRESH_COOKIE,
        tokens.refresh_token.clone(),
        true,
    ))
    .add(cookie(app, NAME_COOKIE, encode_name(name), true))
}

/// `jar` without a session.
pub fn sign_out(app: &App, jar: CookieJar) -> CookieJar {
    [ACCESS_COOKIE, REFRESH_COOKIE, NAME_COOKIE]
        .into_iter()
        .fold(jar, |jar, name| jar.add(removal(app, name)))
}

/// A display name as a cookie value: base64url of its UTF-8.
fn encode_name(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(name.as_bytes())
}

fn decode_name(value: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(value).ok()?).ok()
}

/// A fresh random token (32 bytes, base64url).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS's generator only fails on a broken system; a predictable token
    // would be worse than stopping.
    getrandom::fill(&mut bytes).expect("the operating system's random generator");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Middleware: works out the [`Session`] of every request (renewing an
/// expired access token on the way) and refuses a state-changing request
/// from another site's page.
pub async fn layer(State(app): State<App>, mut req: Request, next: Next) -> Response {
    if !safe(req.method()) && !same_origin(req.headers()) {
        return PageError::Forbidden(
            "This form was sent from another site, so it was not accepted.".to_owned(),
        )
        .into_response();
    }
    let jar = CookieJar::from_headers(req.headers());
    let value = |name| jar.get(name).map(|c| c.value().to_owned());
    let csrf = value(CSRF_COOKIE).filter(|v| v.len() >= 32);
    let fresh_csrf = csrf.is_none();
    let csrf = csrf.unwrap_or_else(random_token);
    let name = value(NAME_COOKIE)
        .and_then(|v| decode_name(&v))
        .unwrap_or_default();
    let (access, refresh) = (value(ACCESS_COOKIE), value(REFRESH_COOKIE));
    let (user, mut jar) = user(&app, access, refresh, name, jar).await;
    if fresh_csrf {
        jar = jar.add(cookie(&app, CSRF_COOKIE, csrf.clone(), false));
    }
    req.extensions_mut().insert(Session { user, csrf });
    let response = next.run(req).await;
    // Only the cookies changed here are sent, after the handler's own.
    (jar, response).into_response()
}

/// The signed-in user from the session cookies, renewing an expired access
/// token; clears cookies that no longer sign anyone in. Gives back `jar`
/// with those changes.
async fn user(
    app: &App,
    access: Option<String>,
    refresh: Option<String>,
    name: String,
    jar: CookieJar,
) -> (Option<User>, CookieJar) {
    let from = |token: String, user: auth::User, name: String| User {
        id: user.id.to_string(),
        role: user.role,
        name,
        token,
    };
    if let Some(token) = access {
        match verified(app, &token).await {
            Ok(claims) => return (Some(from(token, claims, name)), jar),
            Err(AuthError::Expired) => {}
            Err(AuthError::Keys(error)) => {
                // Identity is down: nobody can be checked, nobody is signed out.
                tracing::warn!(%error, "cannot verify a session");
                return (None, jar);
            }
            Err(_) if refresh.is_none() => return (None, sign_out(app, jar)),
            Err(_) => {}
        }
    }
    let Some(refresh) = refresh else {
        return (None, jar);
    };
    match app.refresher.refresh(app, &refresh).await {
        Renewal::Renewed(tokens) => match verified(app, &tokens.access_token).await {
            Ok(claims) => {
                let jar = sign_in(app, jar, &tokens, &name);
                (Some(from(tokens.access_token, claims, name)), jar)
            }
            Err(_) => (None, jar),
        },
        // Only identity's definite no ends the session.
        Renewal::Refused => (None, sign_out(app, jar)),
        Renewal::Unknown => (None, jar),
    }
}

/// The user a token names, once verified.
async fn verified(app: &App, token: &str) -> Result<auth::User, AuthError> {
    let claims = app.verifier.verify(token).await?;
    auth::User::from_claims(&claims)
}

fn safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request's `Origin` (when a browser sent one) is this site.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if origin == "null" {
        // What browsers send under `Referrer-Policy: no-referrer` (the
        // gateway's): the fetch metadata, when sent, still tells another
        // site's page apart; the CSRF token is checked after this anyway.
        return headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|site| site == "same-origin" || site == "none");
    }
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok());
    let origin_host = url::Url::parse(origin).ok().and_then(|u| {
        let host = u.host_str()?.to_owned();
        Some(match u.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    });
    match (origin_host, host) {
        (Some(origin), Some(host)) => origin.eq_ignore_ascii_case(host),
        _ => false,
    }
}

/// A submitted form whose CSRF token matched the session's: `T` is the
/// form's own fields (the `csrf` field is checked and then ignored).
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// The largest form accepted.
const FORM_LIMIT: usize = 64 * 1024;

impl<T, S> FromRequest<S> for CsrfForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let session = req
            .extensions()
            .get::<Session>()
            .cloned()
            .ok_or_else(|| PageError::Internal("the session layer is missing".to_owned()))?;
        let bytes = axum::body::to_bytes(req.into_body(), FORM_LIMIT)
            .await
            .map_err(|_| PageError::BadRequest("The form is too large.".to_owned()))?;
        let submitted: CsrfOnly = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| PageError::BadRequest("The form could not be read.".to_owned()))?;
        if !bool::from(submitted.csrf.as_bytes().ct_eq(session.csrf.as_bytes())) {
            return Err(PageError::Forbidden(
                "This form has expired. Go back, reload the page and send it again.".to_owned(),
            ));
        }
        serde_urlencoded::from_bytes(&bytes)
            .map(CsrfForm)
            .map_err(|e| PageError::BadRequest(format!("The form could not be read: {e}.")))
    }
}

/// The session layer's shared parts.
pub type SharedRefresher = Arc<Refresher>;

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn cookies_are_split_and_trimmed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; b = 2;c=x=y"));
        let jar = CookieJar::from_headers(&headers);
        let value = |name| jar.get(name).map(|c| c.value().to_owned());
        assert_eq!(value("a").as_deref(), Some("1"));
        assert_eq!(value("b").as_deref(), Some("2"));
        assert_eq!(value("c").as_deref(), Some("x=y"));
    }

    #[test]
    fn cookies_carry_their_attributes() {
        let session = build_cookie(ACCESS_COOKIE, "t".to_owned(), true, false).to_string();
        for part in [
            "bazaar_access=t",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=2592000",
        ] {
            assert!(session.contains(part), "{session}");
        }
        assert!(!session.contains("Secure"), "{session}");
        let secure = build_cookie(CSRF_COOKIE, "c".to_owned(), false, true).to_string();
        assert!(
            secure.contains("Secure") && !secure.contains("Max-Age"),
            "{secure}"
        );
        let mut removal = build_cookie(NAME_COOKIE, String::new(), false, false);
        removal.set_max_age(time::Duration::ZERO);
        let removal = removal.to_string();
        assert!(removal.starts_with("bazaar_name=;"), "{removal}");
        assert!(
            removal.contains("Max-Age=0") && removal.contains("Path=/"),
            "{removal}"
        );
    }

    #[test]
    fn origin_must_be_this_host() {
        let mut headers = HeaderMap::new();
        assert!(
            same_origin(&headers),
            "no Origin: not a cross-site browser form"
        );
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers));
        headers.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        assert!(same_origin(&headers), "the gateway's forwarded host counts");

        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&headers), "no-referrer: the token decides");
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&headers));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers), "another site's page");
    }

    /// A stand-in identity: its JWKS publishes `signer`'s key, and a refresh
    /// answers the status in the returned cell (401 a problem, 503 nothing).
    async fn identity(
        signer: &bazaar_platform::auth::TokenSigner,
    ) -> (url::Url, std::sync::Arc<std::sync::atomic::AtomicU16>) {
        use std::sync::atomic::{AtomicU16, Ordering};
        let answer = std::sync::Arc::new(AtomicU16::new(503));
        let status = answer.clone();
        let jwks = bazaar_platform::auth::Jwks {
            keys: vec![signer.jwk()],
        };
        let router = axum::Router::new()
            .route(
                bazaar_platform::auth::JWKS_PATH,
                axum::routing::get(move || {
                    let jwks = jwks.clone();
                    async move { axum::Json(jwks) }
                }),
            )
            .route(
                "/api/v1/auth/refresh",
                axum::routing::post(move || {
                    let code = status.load(Ordering::SeqCst);
                    async move {
                        let code = http::StatusCode::from_u16(code).unwrap();
                        let body = serde_json::json!({"type": "about:blank", "title": "no", "status": code.as_u16(), "detail": "The refresh token is invalid."});
                        (code, axum::Json(body))
                    }
                }),
            );
        (bazaar_testkit::serve(router).await, answer)
    }

    #[tokio::test]
    async fn only_a_definite_no_from_identity_ends_a_session() {
        use std::sync::atomic::Ordering;
        let signer = bazaar_platform::auth::TokenSigner::from_seed(&[3; 32]);
        let (identity, answer) = identity(&signer).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = bazaar_platform::Config::for_test("storefront", dir.path());
        config
            .upstreams
            .insert("identity".to_owned(), vec![identity]);
        let storefront = bazaar_testkit::start::<crate::Storefront>(config).await;
        let now = bazaar_platform::auth::now_seconds();
        let expired = signer.sign(&bazaar_platform::auth::Claims {
            sub: uuid::Uuid::now_v7().to_string(),
            role: "customer".into(),
            exp: now - 600,
            iat: now - 1500,
            jti: "j".into(),
            iss: bazaar_platform::auth::ISSUER.into(),
            aud: bazaar_platform::auth::AUDIENCE.into(),
        });
        let http = reqwest::Client::new();
        let visit = |refresh: &'static str| {
            http.get(storefront.url("/login"))
                .header(
                    header::COOKIE,
                    format!("{ACCESS_COOKIE}={expired}; {REFRESH_COOKIE}={refresh}"),
                )
                .send()
        };
        let removes_the_session = |res: &reqwest::Response| {
            res.headers()
                .get_all(header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|c| c.starts_with(&format!("{REFRESH_COOKIE}=;")) && c.contains("Max-Age=0"))
        };
        // Identity failing (503): no verdict, the session cookies stay.
        let res = visit("r-1").await.unwrap();
        assert!(!removes_the_session(&res), "signed out on a 503");
        // Identity refusing the token (401): the session ends.
        answer.store(401, Ordering::SeqCst);
        let res = visit("r-2").await.unwrap();
        assert!(removes_the_session(&res), "a refused refresh token is kept");
        storefront.stop().await;
    }

    #[test]
    fn names_survive_the_cookie() {
        let name = "Zoë; O'Brien=1";
        assert_eq!(decode_name(&encode_name(name)).as_deref(), Some(name));
        assert_eq!(random_token().len(), 43);
    }
}
