//! Everything a page can fail with, each answered as an HTML page with the
//! right status (or, for a page that needs a signed-in user, a redirect to
//! the sign-in page that comes back).

use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use maud::html;

use crate::backend::Failure;
use crate::layout;

/// Why a page is not shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Nothing here: the 404 page, saying what was not found.
    #[error("not found: {0}")]
    NotFound(String),
    /// The page needs a signed-in user: redirect to sign in, then back to
    /// this path.
    #[error("sign-in required for {0}")]
    SignIn(String),
    /// Signed in, but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A request the storefront cannot read.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A backend service failed or refused in a way the page cannot explain
    /// better (boxed: a problem is large, and every page returns this).
    #[error(transparent)]
    Backend(Box<Failure>),
    /// A bug of the storefront's own.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<Failure> for PageError {
    fn from(failure: Failure) -> Self {
        Self::Backend(Box::new(failure))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            Self::SignIn(back) => {
                let next =
                    url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>();
                return Redirect::to(&format!("/login?next={next}")).into_response();
            }
            Self::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", what.clone()),
            Self::Forbidden(why) => (StatusCode::FORBIDDEN, "Not allowed", why.clone()),
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, "Bad request", why.clone()),
            Self::Backend(failure) => {
                tracing::warn!(error = %failure, "a backend call failed a page");
                match failure.as_ref() {
                    Failure::Refused { problem, .. } if problem.status == 404 => {
                        (StatusCode::NOT_FOUND, "Not found", problem.detail.clone())
                    }
                    Failure::Refused { problem, .. } if problem.status == 403 => {
                        (StatusCode::FORBIDDEN, "Not allowed", problem.detail.clone())
                    }
                    Failure::Refused { service, .. }
                    | Failure::Unavailable { service, .. }
                    | Failure::Garbled { service, .. } => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Temporarily unavailable",
                        format!(
                            "Part of the shop ({service}) is not answering right now. Please try again in a moment."
                        ),
                    ),
                }
            }
            Self::Internal(detail) => {
                tracing::error!(%detail, "storefront error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side. Please try again.".to_owned(),
                )
            }
        };
        let body = html! {
            section.notice.error role="alert" {
                h1 { (title) }
                p { (message) }
                p { a href="/" { "Back to the shop" } }
            }
        };
        (status, layout::bare(title, body)).into_response()
    }
}
