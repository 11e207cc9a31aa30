//! Everything a handler can fail with, and how each looks to a client
//! (RFC 9457 problem+json). Unexpected failures become a plain 500, logged
//! once with their cause chain by `Problem::internal`.

use axum::response::{IntoResponse, Response};
use bazaar_platform::Problem;

use crate::store::StoreError;

/// Why a request to catalog failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Invalid input (422) or another ready-made refusal.
    #[error("{0}")]
    Problem(#[from] Problem),
    /// No live product has this id (or the id is not a UUID).
    #[error("no such product")]
    NoSuchProduct,
    /// Only sellers create products.
    #[error("not a seller")]
    NotSeller,
    /// The product is another seller's.
    #[error("not the product's seller")]
    NotOwner,
    /// The database failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The database failed (transactions).
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The outbox refused an event.
    #[error("outbox: {0}")]
    Events(#[from] bazaar_bus::BusError),
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        match error {
            Error::Problem(p) => p,
            Error::NoSuchProduct => Problem::not_found("There is no product with this id."),
            Error::NotSeller => Problem::forbidden("Only sellers can put products on sale.")
                .with_kind("not-a-seller", "Not a seller"),
            Error::NotOwner => {
                Problem::forbidden("Only the seller of this product can change or delete it.")
                    .with_kind("not-your-product", "Not your product")
            }
            Error::Store(e) => Problem::internal(&e),
            Error::Db(e) => Problem::internal(&e),
            Error::Events(e) => Problem::internal(&e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
