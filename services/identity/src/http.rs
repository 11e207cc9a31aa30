//! The REST API (shared/API.md, "Identity"): wire types, handlers and their
//! OpenAPI description. Handlers turn raw input into domain types (or a 422
//! naming each bad field), call the store, and shape the answer.

// The platform's problem types, under the names the OpenAPI attributes use.
use bazaar_platform::problem::{
    FieldError as FieldErrorBody, Problem as ProblemBody, Unauthorized,
};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use bazaar_events::identity::{SellerFollowed, SellerUnfollowed, UserRegistered};
use bazaar_platform::auth::{self, BearerAuth, Jwks, TokenSigner, Verifier};
use bazaar_platform::db::{Db, is_foreign_key_violation, is_unique_violation};
use bazaar_platform::events::Events;
use bazaar_platform::problem::FieldError;
use bazaar_platform::{Json, Problem};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::domain::{self, Email, Name, Password, Role};
use crate::error::Error;
use crate::metrics::IdentityMetrics;
use crate::password::{Hasher, Verified};
use crate::store;
use crate::throttle;
use crate::tokens::{ACCESS_TTL_SECONDS, RefreshToken, access_claims, hash_refresh};

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) events: Events,
    pub(crate) signer: TokenSigner,
    pub(crate) hasher: Hasher,
    pub(crate) jwks: Arc<Jwks>,
    pub(crate) metrics: IdentityMetrics,
}

/// The service's routes. The `User` extractor verifies tokens with the
/// signer's own public key: identity never asks itself over HTTP.
pub(crate) fn router(state: AppState) -> Router {
    let verifier = Verifier::local(state.jwks.keys.clone());
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route(auth::JWKS_PATH, get(jwks))
        .route("/api/v1/users/me", get(me))
        .route(
            "/api/v1/users/{seller_id}/follow",
            put(follow).delete(unfollow),
        )
        .layer(Extension(verifier))
        .with_state(state)
}

/// The OpenAPI description of these routes.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bazaar identity",
        description = "Accounts, sign-in, access and refresh tokens, follows of sellers."
    ),
    paths(register, login, refresh, logout, jwks, me, follow, unfollow),
    components(schemas(ProblemBody, FieldErrorBody, JwksBody, JwkBody)),
    modifiers(&BearerAuth),
    tags((name = "identity", description = "Who is who, and who follows which seller."))
)]
struct ApiDoc;

// ---- wire types ----

/// `POST /api/v1/auth/register`.
#[derive(Deserialize, ToSchema)]
struct RegisterRequest {
    /// Trimmed and lower-cased; at most 254 characters.
    #[schema(example = "ann@example.com", max_length = 254)]
    email: String,
    /// 8 to 1024 characters.
    #[schema(min_length = 8, max_length = 1024, format = Password)]
    password: String,
    /// Display name, 1 to 100 characters.
    #[schema(example = "Ann Lee", min_length = 1, max_length = 100)]
    name: String,
    /// `customer` (the default) or `seller`.
    #[serde(default)]
    #[schema(example = "customer", pattern = "^(customer|seller)$")]
    role: Option<String>,
}

/// `POST /api/v1/auth/login`.
#[derive(Deserialize, ToSchema)]
struct LoginRequest {
    #[schema(example = "ann@example.com")]
    email: String,
    #[schema(format = Password)]
    password: String,
}

/// `POST /api/v1/auth/refresh`.
#[derive(Deserialize, ToSchema)]
struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    refresh_token: String,
}

/// An account's role.
#[derive(Serialize, ToSchema)]
#[schema(as = Role)]
#[serde(rename_all = "lowercase")]
enum RoleBody {
    Customer,
    Seller,
    Admin,
}

impl From<Role> for RoleBody {
    fn from(role: Role) -> Self {
        match role {
            Role::Customer => Self::Customer,
            Role::Seller => Self::Seller,
            Role::Admin => Self::Admin,
        }
    }
}

/// A user.
#[derive(Serialize, ToSchema)]
#[schema(as = User)]
struct UserBody {
    id: Uuid,
    #[schema(example = "ann@example.com")]
    email: String,
    #[schema(example = "Ann Lee")]
    name: String,
    role: RoleBody,
}

impl From<store::User> for UserBody {
    fn from(user: store::User) -> Self {
        Self {
            id: user.id,
            email: user.email.as_str().to_owned(),
            name: user.name.as_str().to_owned(),
            role: user.role.into(),
        }
    }
}

/// A token pair, as login and refresh answer.
#[derive(Serialize, ToSchema)]
#[schema(as = TokenPair)]
struct TokenBody {
    /// A JWT (EdDSA), sent as `Authorization: Bearer …`.
    access_token: String,
    /// Opaque; redeemable once at `/api/v1/auth/refresh` within 30 days.
    refresh_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: String,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    expires_in: i64,
}

/// A JSON Web Key Set (RFC 7517).
#[derive(ToSchema)]
#[schema(as = Jwks)]
#[expect(
    dead_code,
    reason = "describes bazaar_platform::auth::Jwks for OpenAPI"
)]
struct JwksBody {
    keys: Vec<JwkBody>,
}

/// An Ed25519 public key (RFC 8037).
#[derive(ToSchema)]
#[schema(as = Jwk)]
#[expect(dead_code, reason = "describes bazaar_platform::auth::Jwk for OpenAPI")]
struct JwkBody {
    #[schema(example = "OKP")]
    kty: String,
    #[schema(example = "Ed25519")]
    crv: String,
    /// The public key, base64url.
    x: String,
    /// Key id: names the key that signed a token (its `kid` header).
    kid: String,
    #[schema(example = "EdDSA")]
    alg: String,
    #[schema(rename = "use", example = "sig")]
    use_: String,
}

// ---- handlers ----

/// A validated registration.
struct NewAccount {
    email: Email,
    password: Password,
    name: Name,
    role: Role,
}

impl RegisterRequest {
    /// Every field checked, every bad one named.
    fn parse(self) -> Result<NewAccount, Problem> {
        let role = self
            .role
            .as_deref()
            .map_or(Ok(Role::default()), domain::self_service_role);
        match (
            Email::parse(&self.email),
            Password::parse(self.password),
            Name::parse(&self.name),
            role,
        ) {
            (Ok(email), Ok(password), Ok(name), Ok(role)) => Ok(NewAccount {
                email,
                password,
                name,
                role,
            }),
            (email, password, name, role) => {
                let errors = [
                    ("email", email.err()),
                    ("password", password.err()),
                    ("name", name.err()),
                    ("role", role.err()),
                ]
                .into_iter()
                .filter_map(|(field, invalid)| {
                    invalid.map(|e| FieldError {
                        field: field.to_owned(),
                        message: e.message().to_owned(),
                    })
                })
                .collect();
                Err(Problem::validation(errors))
            }
        }
    }
}

/// Token answers must not be cached anywhere (RFC 6749, 5.1).
const NO_STORE: [(header::HeaderName, &str); 2] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::PRAGMA, "no-cache"),
];

#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "identity",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The account exists.", body = UserBody),
        (status = 409, description = "The e-mail address is taken.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `errors` names each.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
async fn register(
    State(state): State<AppState>,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<UserBody>), Error> {
    let account = body.parse()?;
    let hash = state.hasher.hash(&account.password).await?;
    let user = store::User {
        id: Uuid::now_v7(),
        email: account.email,
        name: account.name,
        role: account.role,
    };
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    let mut tx = state.db.begin_write().await?;
    match store::insert_user(&mut tx, &user, &hash).await {
        Ok(()) => {}
        Err(e) if is_unique_violation(&e) => return Err(Error::EmailTaken),
        Err(e) => return Err(e.into()),
    }
    let event = UserRegistered {
        user_id: user.id,
        email: user.email.as_str().to_owned(),
        name: user.name.as_str().to_owned(),
        role: user.role,
    };
    state
        .events
        .append(&mut tx, Some(&user.id.to_string()), &event)
        .await?;
    tx.commit().await?;
    state.events.committed();
    tracing::info!(role = user.role.as_str(), "user registered");
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "identity",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in.", body = TokenBody),
        (status = 401, description = "Unknown e-mail or wrong password (the same answer for both).", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed sign-ins for this account (5) or from this address (20) within 15 minutes; `Retry-After` says when to try again.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Json(body): Json<LoginRequest>,
) -> Result<impl IntoResponse, Error> {
    let email = Email::parse(&body.email).ok();
    let keys = throttle::Keys::new(email.as_ref(), &headers, peer.map(|Extension(c)| c));
    let now = auth::now_seconds();
    // Before any hashing: a throttled guess costs a lookup, not a core.
    if let Some(wait) = throttle::wait(&state.db, &keys, now).await? {
        state.metrics.sign_ins.inc("throttled");
        return Err(Error::Throttled(wait));
    }
    // A malformed address has no account; it still costs one verification.
    let found = match &email {
        Some(email) => store::credentials(state.db.pool(), email).await?,
        None => None,
    };
    let (user, stored) = found.unzip();
    let verified = state.hasher.verify(body.password.clone(), stored).await?;
    let user = match (verified, user) {
        (Verified::Yes | Verified::YesRehash, Some(user)) => user,
        _ => {
            state.metrics.sign_ins.inc("refused");
            tracing::debug!("sign-in refused");
            throttle::failed(&state.db, &keys, now).await?;
            return Err(Error::BadCredentials);
        }
    };
    throttle::succeeded(&state.db, &keys).await?;
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    if verified == Verified::YesRehash {
        upgrade_hash(&state, user.id, body.password).await;
    }
    let mut tx = state.db.begin_write().await?;
    let now = auth::now_seconds();
    store::delete_expired_refresh(&mut tx, user.id, now).await?;
    let tokens = issue(&state, &mut tx, &user, Uuid::now_v7(), now).await?;
    tx.commit().await?;
    state.metrics.sign_ins.inc("ok");
    Ok((NO_STORE, Json(tokens)))
}

/// Stores a hash with today's parameters. A failure only leaves the old
/// (still valid) hash in place, so it is logged, not answered.
async fn upgrade_hash(state: &AppState, user: Uuid, password: String) {
    let Ok(password) = Password::parse(password) else {
        return;
    };
    let result = async {
        let hash = state.hasher.hash(&password).await?;
        store::update_password_hash(state.db.writer(), user, &hash).await?;
        anyhow::Ok(())
    }
    .await;
    match result {
        Ok(()) => tracing::info!("password hash upgraded to the current parameters"),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot upgrade a password hash"),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "identity",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair; the presented refresh token no longer works.", body = TokenBody),
        (status = 401, description = "Unknown, expired, used or revoked refresh token. A used or revoked one also revokes every token descended from the same login.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<impl IntoResponse, Error> {
    let hash = hash_refresh(body.refresh_token.trim());
    let now = auth::now_seconds();
    let mut tx = state.db.begin_write().await?;
    match store::redeem_refresh(&mut tx, &hash, now).await? {
        store::Redeemed::Fresh { family, user } => {
            tracing::Span::current().record("user_id", tracing::field::display(user.id));
            let tokens = issue(&state, &mut tx, &user, family, now).await?;
            tx.commit().await?;
            state.metrics.refreshes.inc("rotated");
            Ok((NO_STORE, Json(tokens)))
        }
        store::Redeemed::Replayed { family, user } => {
            // Commit the revocation: the refusal itself is the point.
            tx.commit().await?;
            state.metrics.refreshes.inc("replayed");
            tracing::Span::current().record("user_id", tracing::field::display(user));
            tracing::warn!(family_id = %family, "a used refresh token was presented again; revoked every token of its login");
            Err(Error::BadRefreshToken)
        }
        store::Redeemed::Unknown | store::Redeemed::Expired => {
            state.metrics.refreshes.inc("refused");
            Err(Error::BadRefreshToken)
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "identity",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out: no refresh token of this sign-in works any more (also when it did not before). Access tokens already issued expire on their own, within 15 minutes."),
    )
)]
#[tracing::instrument(skip_all)]
async fn logout(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<StatusCode, Error> {
    let hash = hash_refresh(body.refresh_token.trim());
    let revoked = store::revoke_sign_in(state.db.writer(), &hash, auth::now_seconds()).await?;
    tracing::debug!(revoked, "signed out");
    Ok(StatusCode::NO_CONTENT)
}

/// A new access token and a new refresh token of `family` for `user`.
async fn issue(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    user: &store::User,
    family: Uuid,
    now: i64,
) -> Result<TokenBody, Error> {
    let refresh = RefreshToken::generate().context("no randomness for a refresh token")?;
    store::insert_refresh(tx, &refresh, family, user.id, now).await?;
    Ok(TokenBody {
        access_token: state.signer.sign(&access_claims(user.id, user.role, now)),
        refresh_token: refresh.token,
        token_type: "Bearer".to_owned(),
        expires_in: ACCESS_TTL_SECONDS,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/jwks.json",
    tag = "identity",
    responses(
        (status = 200, description = "The public keys that verify access tokens, by key id.", body = JwksBody),
    )
)]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    // Verifiers refetch on an unknown key id anyway; caching briefly only
    // spares identity the repeated requests.
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.jwks.as_ref().clone()),
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    tag = "identity",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in user.", body = UserBody),
        Unauthorized,
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn me(State(state): State<AppState>, user: auth::User) -> Result<Json<UserBody>, Error> {
    let id = user.id;
    let found = store::user(state.db.pool(), id).await?;
    Ok(Json(found.ok_or(Error::UnknownUser)?.into()))
}

/// The seller named by the path: 404 for anything but a seller's id.
async fn seller(
    state: &AppState,
    me: Uuid,
    path: Result<Path<String>, PathRejection>,
) -> Result<Uuid, Error> {
    let Ok(Path(raw)) = path else {
        return Err(Error::NoSuchSeller);
    };
    let seller = Uuid::parse_str(&raw).map_err(|_| Error::NoSuchSeller)?;
    if seller == me {
        return Err(Error::FollowSelf);
    }
    if !store::is_seller(state.db.pool(), seller).await? {
        return Err(Error::NoSuchSeller);
    }
    Ok(seller)
}

#[utoipa::path(
    put,
    path = "/api/v1/users/{seller_id}/follow",
    tag = "identity",
    security(("bearer" = [])),
    params(("seller_id" = Uuid, Path, description = "The seller to follow.")),
    responses(
        (status = 204, description = "Followed (also when already following)."),
        Unauthorized,
        (status = 404, description = "No seller has this id.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The id is the caller's own.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn follow(
    State(state): State<AppState>,
    user: auth::User,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Error> {
    let me = user.id;
    let seller = seller(&state, me, path).await?;
    let mut tx = state.db.begin_write().await?;
    match store::follow(&mut tx, me, seller).await {
        Ok(true) => {
            let event = SellerFollowed {
                follower_id: me,
                seller_id: seller,
            };
            state
                .events
                .append(&mut tx, Some(&seller.to_string()), &event)
                .await?;
            tx.commit().await?;
            state.events.committed();
        }
        // Already following: nothing changed, nothing to announce.
        Ok(false) => {}
        Err(e) if is_foreign_key_violation(&e) => return Err(Error::UnknownUser),
        Err(e) => return Err(e.into()),
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{seller_id}/follow",
    tag = "identity",
    security(("bearer" = [])),
    params(("seller_id" = Uuid, Path, description = "The seller to stop following.")),
    responses(
        (status = 204, description = "Not following (also when it was not)."),
        Unauthorized,
        (status = 404, description = "No seller has this id.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The id is the caller's own.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn unfollow(
    State(state): State<AppState>,
    user: auth::User,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Error> {
    let me = user.id;
    let seller = seller(&state, me, path).await?;
    let mut tx = state.db.begin_write().await?;
    if store::unfollow(&mut tx, me, seller).await? {
        let event = SellerUnfollowed {
            follower_id: me,
            seller_id: seller,
        };
        state
            .events
            .append(&mut tx, Some(&seller.to_string()), &event)
            .await?;
        tx.commit().await?;
        state.events.committed();
    }
    Ok(StatusCode::NO_CONTENT)
}
