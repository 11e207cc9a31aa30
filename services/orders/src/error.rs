//! Everything a request to orders can fail with, and how each looks to a
//! client (RFC 9457 problem+json). Unexpected failures become a plain 500,
//! logged once with their cause chain by `Problem::internal`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bazaar_platform::Problem;
use bazaar_platform::client::CallError;

/// Why a request to orders failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A ready-made refusal (400 for unreadable bodies, 422 for invalid fields).
    #[error("{0}")]
    Problem(#[from] Problem),
    /// No order of the caller has this id (or the id is not a UUID).
    #[error("no such order")]
    NoSuchOrder,
    /// `POST /api/v1/orders` without an `Idempotency-Key`.
    #[error("no Idempotency-Key")]
    MissingKey,
    /// An `Idempotency-Key` that is empty, too long or not visible ASCII.
    #[error("bad Idempotency-Key: {0}")]
    BadKey(&'static str),
    /// The key was used by this user for a different request.
    #[error("Idempotency-Key reused for another request")]
    KeyReused,
    /// An order of the cart, and the cart is empty.
    #[error("the cart is empty")]
    EmptyCart,
    /// The cart could not be read.
    #[error("cart: {0}")]
    CartUnavailable(CallError),
    /// Something only an admin may ask for (`all=true`).
    #[error("admins only")]
    AdminOnly,
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        match error {
            Error::Problem(p) => p,
            Error::NoSuchOrder => Problem::not_found("You have no order with this id."),
            Error::MissingKey => Problem::bad_request(
                "Send an Idempotency-Key header (a unique string per order, reused only to retry it).",
            )
            .with_kind("idempotency-key-missing", "Idempotency-Key missing"),
            Error::BadKey(why) => Problem::bad_request(format!("The Idempotency-Key header {why}."))
                .with_kind("idempotency-key-invalid", "Idempotency-Key invalid"),
            Error::KeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This Idempotency-Key was used for a different order request; use a new key for a new order.",
            )
            .with_kind("idempotency-key-reused", "Idempotency-Key reused"),
            Error::EmptyCart => Problem::validation(vec![bazaar_platform::problem::FieldError {
                field: "items".into(),
                message: "your cart is empty: add products to it, or name the items to order".into(),
            }]),
            Error::CartUnavailable(e) => {
                tracing::warn!(error = %e, "cannot read the cart");
                Problem::service_unavailable(
                    "Your cart cannot be read right now; try again shortly, or name the items to order.",
                )
            }
            Error::AdminOnly => {
                Problem::forbidden("Only an admin may list every user's orders; leave out all=true to list yours.")
                    .with_kind("admin-only", "Admins only")
            }
            Error::Db(e) => Problem::internal(&e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
