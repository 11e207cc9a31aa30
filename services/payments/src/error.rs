//! Everything a call to payments can fail with, and how each looks to a
//! client: a gRPC status whose code says what to do (INVALID_ARGUMENT: fix
//! the call; NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS: retrying will
//! not change the answer; UNAVAILABLE, INTERNAL: retry), or an RFC 9457
//! problem over REST. Unexpected failures are logged once, here, with their
//! cause chain; the caller learns nothing of them. No message repeats card
//! details.

use axum::response::{IntoResponse, Response};
use bazaar_platform::Problem;
use bazaar_platform::problem::FieldError;
use tonic::Status;

use crate::domain::State;
use crate::metrics::Outcome;
use crate::processor::Unavailable;

/// Why a call to payments failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A malformed field: `field` and what is wrong with it.
    #[error("{}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// The order has no payment.
    #[error("no payment for this order")]
    NotFound,
    /// The order has a payment of another amount, currency or buyer.
    #[error("the order has a payment of another amount, currency or buyer")]
    AlreadyExists,
    /// The payment's state excludes the call (`wanted` is what it needs).
    #[error("the payment is {}; {wanted}", .state.as_str())]
    State {
        /// Where the payment stands.
        state: State,
        /// What the call needs, in words.
        wanted: &'static str,
    },
    /// The card processor failed transiently; nothing was recorded.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The outbox refused an event.
    #[error("outbox: {0}")]
    Events(#[from] bazaar_bus::BusError),
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// One malformed `field`.
    pub(crate) fn invalid(field: &str, message: &str) -> Self {
        Self::Invalid(vec![FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        }])
    }

    /// What the call came to, for the metrics.
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            Self::Invalid(_) => Outcome::Invalid,
            Self::NotFound | Self::AlreadyExists | Self::State { .. } => Outcome::Refused,
            Self::Unavailable(_) => Outcome::Unavailable,
            Self::Db(_) | Self::Events(_) => Outcome::Error,
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(_) => Status::invalid_argument(error.to_string()),
            Error::NotFound => Status::not_found("no payment for this order id"),
            Error::AlreadyExists => Status::already_exists(
                "this order id has a payment of another amount, currency or buyer; pay under a new order id",
            ),
            Error::State { .. } => Status::failed_precondition(error.to_string()),
            Error::Unavailable(e) => {
                tracing::warn!(error = %e, "the card processor failed; nothing recorded");
                // ABORTED, not UNAVAILABLE: payments itself is well, so the
                // caller's breaker must not count it, and the caller (not its
                // transport) decides whether to ask again.
                Status::aborted(
                    "the card processor is unavailable; nothing was recorded, retry later",
                )
            }
            e @ (Error::Db(_) | Error::Events(_)) => {
                tracing::error!(error = %e, "payments call failed with an internal error");
                Status::internal("payments failed; it has been logged, retry later")
            }
        }
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(errors) => Problem::validation(errors),
            Error::NotFound => Problem::not_found("There is no payment for this order."),
            Error::AlreadyExists | Error::State { .. } => Problem::conflict(error.to_string()),
            Error::Unavailable(e) => {
                tracing::warn!(error = %e, "the card processor failed; nothing recorded");
                Problem::service_unavailable(
                    "The card processor is unavailable; nothing was recorded. Try again later.",
                )
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_say_what_to_do() {
        let code = |e: Error| Status::from(e).code();
        assert_eq!(
            code(Error::invalid("amount", "must be 1 or more")),
            tonic::Code::InvalidArgument
        );
        assert_eq!(code(Error::NotFound), tonic::Code::NotFound);
        assert_eq!(code(Error::AlreadyExists), tonic::Code::AlreadyExists);
        assert_eq!(
            code(Error::State {
                state: State::Voided,
                wanted: "only an authorized payment can be captured"
            }),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            code(Error::Unavailable(Unavailable("down"))),
            tonic::Code::Aborted
        );
        assert_eq!(
            code(Error::Db(sqlx::Error::PoolClosed)),
            tonic::Code::Internal
        );
    }

    #[test]
    fn problems_over_rest() {
        let p = Problem::from(Error::invalid("order_id", "must be a UUID"));
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "order_id");
        let p = Problem::from(Error::Db(sqlx::Error::Protocol("SELECT secret".into())));
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("SELECT"));
    }

    #[test]
    fn invalid_arguments_name_every_field() {
        let e = Error::Invalid(vec![
            FieldError {
                field: "amount".into(),
                message: "must be 1 or more".into(),
            },
            FieldError {
                field: "card.cvc".into(),
                message: "must be 3 or 4 digits".into(),
            },
        ]);
        assert_eq!(
            Status::from(e).message(),
            "amount must be 1 or more; card.cvc must be 3 or 4 digits"
        );
    }
}
