//! Errors as clients see them: RFC 9457 problem details
//! (`application/problem+json`).
//!
//! Every 4xx and 5xx a service answers is a [`Problem`]. Internal errors are
//! logged once here, with their cause chain, and reach the client as a plain
//! 500 without a stack trace or SQL text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The media type of a problem document.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// An error as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the kind.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong this time, in words a person can act on.
    pub detail: String,
    /// Per-field failures of a validation problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The 401 answer of every operation that needs an access token, for an
/// operation's `responses(..)` list: `responses((status = 200, ..),
/// Unauthorized)`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 401,
    description = "No valid access token.",
    content_type = "application/problem+json"
)]
pub struct Unauthorized(pub Problem);

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's path in the request body or query, e.g. `price.amount`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// A problem of the generic kind for `status`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// Names a specific kind of problem, e.g. `out-of-stock`.
    pub fn with_kind(mut self, slug: &str, title: impl Into<String>) -> Self {
        self.kind = format!("urn:bazaar:problem:{slug}");
        self.title = title.into();
        self
    }

    /// 400: the request cannot be read.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    /// 401: who are you?
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }
    /// 403: known, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
    /// 404: no such thing (or not yours).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    /// 409: conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }
    /// 413: the body is larger than this endpoint accepts.
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, detail)
    }
    /// 422: well-formed but invalid; `errors` names each field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        let mut p = Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
            .with_kind("validation-failed", "Validation failed");
        p.errors = errors;
        p
    }
    /// 503: a dependency is down; try again later.
    pub fn service_unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }
    /// 504: a dependency did not answer in time.
    pub fn gateway_timeout(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, detail)
    }

    /// 500 for an unexpected error: logs it once with its cause chain and
    /// tells the client nothing about it.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %chain, "request failed with an internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side. It has been logged; please try again.",
        )
    }

    /// The status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            self.status_code(),
            [(http::header::CONTENT_TYPE, CONTENT_TYPE)],
            body,
        )
            .into_response()
    }
}

/// Collects field errors, then answers 422 if there were any.
#[derive(Debug, Default)]
pub struct Validation(Vec<FieldError>);

impl Validation {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Records `message` for `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: &str) -> &mut Self {
        if !ok {
            self.0.push(FieldError {
                field: field.into(),
                message: message.into(),
            });
        }
        self
    }
    /// `Ok` when every check passed, else the 422 problem.
    pub fn finish(&mut self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(std::mem::take(&mut self.0)))
        }
    }
}

/// A JSON body: extracting it answers a problem on bad input (400 for broken
/// JSON, 413 for a body over the limit, 415 for a wrong content type, 422 for
/// the wrong shape); responding with it writes `application/json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(problem_from_json_rejection(&rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn problem_from_json_rejection(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // axum's text is "Failed to deserialize ...: <path>: <message>";
            // keep the part a client can act on.
            let text = e.body_text();
            let text = text
                .split_once("target type: ")
                .map_or(text.as_str(), |(_, rest)| rest);
            let (field, message) = match text.split_once(": ") {
                Some((path, msg)) if !path.contains(' ') => (path.to_owned(), msg.to_owned()),
                _ => ("body".to_owned(), text.to_owned()),
            };
            Problem::validation(vec![FieldError { field, message }])
        }
        JsonRejection::JsonSyntaxError(e) => Problem::bad_request(format!(
            "The body is not valid JSON: {}",
            strip_prefix(&e.body_text())
        )),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::payload_too_large("The request body is larger than this endpoint accepts.")
        }
        other => Problem::new(other.status(), other.body_text()),
    }
}

fn strip_prefix(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, rest)| rest)
}

/// Answers `404` as a problem for paths no route matches.
pub async fn not_found_fallback(uri: http::Uri) -> Problem {
    Problem::not_found(format!("There is nothing at {}.", uri.path()))
}

/// Answers `405` as a problem for a known path with another method.
pub async fn method_not_allowed_fallback(method: http::Method, uri: http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method}.", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Input {
        name: String,
        count: u8,
    }

    fn app() -> Router {
        Router::new()
            .route("/", post(|Json(i): Json<Input>| async move { i.name }))
            .layer(axum::extract::DefaultBodyLimit::max(64))
    }

    async fn call(content_type: Option<&str>, body: &str) -> (StatusCode, Option<Problem>) {
        let mut req = Request::post("/");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = app()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let is_problem = res
            .headers()
            .get("content-type")
            .is_some_and(|v| v == CONTENT_TYPE);
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            is_problem.then(|| serde_json::from_slice(&bytes).unwrap()),
        )
    }

    const JSON: Option<&str> = Some("application/json");

    #[tokio::test]
    async fn good_json_passes() {
        let (status, p) = call(JSON, r#"{"name":"a","count":1}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert!(p.is_none());
    }

    #[tokio::test]
    async fn broken_json_is_400() {
        let (status, p) = call(JSON, r#"{"name":"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(p.unwrap().status, 400);
    }

    #[tokio::test]
    async fn wrong_shape_is_422_naming_the_field() {
        let (status, p) = call(JSON, r#"{"name":"a","count":300}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let p = p.unwrap();
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].field, "count");
        let (_, p) = call(JSON, r#"{"count":3}"#).await;
        assert!(p.unwrap().errors[0].message.contains("name"));
    }

    #[tokio::test]
    async fn too_large_is_413() {
        let big = format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(200));
        let (status, p) = call(JSON, &big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(p.unwrap().status, 413);
    }

    #[tokio::test]
    async fn missing_content_type_is_415() {
        let (status, p) = call(None, r#"{"name":"a","count":1}"#).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(p.is_some());
    }

    #[test]
    fn validation_collects_fields() {
        let e = Validation::new()
            .check(false, "email", "is not an e-mail address")
            .check(true, "name", "is empty")
            .check(false, "password", "needs 8 characters or more")
            .finish()
            .unwrap_err();
        assert_eq!(e.status, 422);
        assert_eq!(e.errors.len(), 2);
        assert!(Validation::new().check(true, "x", "y").finish().is_ok());
    }

    #[test]
    fn internal_errors_say_nothing_inside() {
        let io = std::io::Error::other("SELECT secret FROM users");
        let p = Problem::internal(&io);
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("SELECT"));
    }
}
