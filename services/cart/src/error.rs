//! Everything a handler can fail with, and how each looks to a client
//! (RFC 9457 problem+json). A failing store becomes a plain 500, logged
//! once with its cause chain by `Problem::internal`.

use axum::response::{IntoResponse, Response};
use bazaar_platform::Problem;

use crate::domain::MAX_LINES;
use crate::store::StoreError;

/// Why a request to the cart failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Invalid input (422) or another ready-made refusal.
    #[error("{0}")]
    Problem(#[from] Problem),
    /// A new product for a cart that holds `MAX_LINES` lines already.
    #[error("the cart is full")]
    Full,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        match error {
            Error::Problem(p) => p,
            Error::Full => Problem::conflict(format!(
                "A cart holds at most {MAX_LINES} different products; remove one before adding another."
            ))
            .with_kind("cart-full", "Cart full"),
            Error::Store(e) => Problem::internal(&e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
