//! Everything a handler can fail with, and how each looks to a client
//! (RFC 9457 problem+json). Unexpected failures become a plain 500, logged
//! once with their cause chain by `Problem::internal`.

use axum::response::{IntoResponse, Response};
use bazaar_platform::Problem;
use bazaar_platform::problem::FieldError;

use crate::store::StoreError;

/// Why a request to identity failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The input is readable but invalid (422), or otherwise refused as a
    /// ready-made problem.
    #[error("{0}")]
    Problem(#[from] Problem),
    /// The e-mail belongs to an account already.
    #[error("the e-mail address is taken")]
    EmailTaken,
    /// Unknown e-mail or wrong password; deliberately not saying which.
    #[error("bad credentials")]
    BadCredentials,
    /// Too many failed sign-ins for the account or from the address; try
    /// again after this many seconds.
    #[error("sign-ins throttled")]
    Throttled(i64),
    /// A refresh token that is unknown, expired, used or revoked.
    #[error("refresh token refused")]
    BadRefreshToken,
    /// A valid access token for a user this database does not have (e.g. a
    /// development database reset while the key was kept).
    #[error("the token's user does not exist")]
    UnknownUser,
    /// Following: not a user, or not a seller.
    #[error("no such seller")]
    NoSuchSeller,
    /// Following oneself.
    #[error("cannot follow oneself")]
    FollowSelf,
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored row cannot be read back.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The outbox refused an event.
    #[error("outbox: {0}")]
    Events(#[from] bazaar_bus::BusError),
    /// Anything else unexpected (hashing, randomness).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        match error {
            Error::Problem(p) => p,
            Error::EmailTaken => Problem::conflict(
                "An account with this e-mail address exists already; sign in instead.",
            )
            .with_kind("email-taken", "E-mail address taken"),
            Error::Throttled(_) => Problem::new(
                http::StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-ins; wait before trying again (see Retry-After).",
            )
            .with_kind("too-many-sign-ins", "Too many failed sign-ins"),
            Error::BadCredentials => {
                Problem::unauthorized("The e-mail address or the password is wrong.")
                    .with_kind("invalid-credentials", "Invalid credentials")
            }
            Error::BadRefreshToken => Problem::unauthorized(
                "The refresh token is invalid, expired or already used; sign in again.",
            )
            .with_kind("invalid-refresh-token", "Invalid refresh token"),
            Error::UnknownUser => {
                Problem::unauthorized("The access token names a user who does not exist.")
            }
            Error::NoSuchSeller => Problem::not_found("There is no seller with this id."),
            Error::FollowSelf => Problem::validation(vec![FieldError {
                field: "seller_id".into(),
                message: "is your own id: you cannot follow yourself".into(),
            }]),
            Error::Db(e) => Problem::internal(&e),
            Error::Store(e) => Problem::internal(&e),
            Error::Events(e) => Problem::internal(&e),
            Error::Internal(e) => Problem::internal(e.as_ref()),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Error::Throttled(seconds) => Some((*seconds).max(1)),
            _ => None,
        };
        let mut response = Problem::from(self).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}
