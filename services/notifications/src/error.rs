//! Everything a handler can fail with, and how each looks to a client
//! (RFC 9457 problem+json). Unexpected failures become a plain 500, logged
//! once with their cause chain by `Problem::internal`.

use axum::response::{IntoResponse, Response};
use bazaar_platform::Problem;
use bazaar_platform::problem::FieldError;

/// Why a request to notifications failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A ready-made refusal: a bad or missing token (401), invalid input (422).
    #[error("{0}")]
    Problem(#[from] Problem),
    /// The user has no notification with this id (or it is not a UUID);
    /// someone else's is answered the same, so it is not revealed.
    #[error("no such notification")]
    NoSuchNotification,
    /// `Last-Event-ID` (or `last_event_id`) is not a notification id.
    #[error("the last event id is not a notification id")]
    BadLastEventId,
    /// The user holds as many live streams as one may.
    #[error("too many live streams for one user")]
    TooManyStreams(usize),
    /// This process holds as many live streams as it may.
    #[error("too many live streams")]
    StreamsFull,
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        match error {
            Error::Problem(p) => p,
            Error::NoSuchNotification => {
                Problem::not_found("You have no notification with this id.")
            }
            Error::BadLastEventId => Problem::validation(vec![FieldError {
                field: "Last-Event-ID".to_owned(),
                message: "must be the id of a notification (a UUID) received on this stream"
                    .to_owned(),
            }]),
            Error::TooManyStreams(max) => Problem::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                format!("You have {max} live streams open already; close one first."),
            )
            .with_kind("too-many-streams", "Too many live streams"),
            Error::StreamsFull => Problem::service_unavailable(
                "The live stream is at capacity here; try again shortly.",
            ),
            Error::Db(e) => Problem::internal(&e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
