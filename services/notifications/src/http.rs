//! The REST API (shared/API.md, "Notifications"): the feed, marking read,
//! and the live stream as Server-Sent Events; wire types, handlers and
//! their OpenAPI description.
//!
//! # The stream
//!
//! `GET /api/v1/notifications/stream` answers `text/event-stream`: a
//! comment (`: connected`) at once, then one event per new notification of
//! the user,
//!
//! ```text
//! id: <notification id>
//! event: notification
//! data: {"id":…,"kind":…,"title":…,"body":…,"link":…,"read":false,"created_at":…}
//! ```
//!
//! and a keep-alive comment whenever it has been idle for
//! `BAZAAR_NOTIFICATIONS_KEEP_ALIVE`. A client that reconnects with
//! `Last-Event-ID` (browsers' `EventSource` does so by itself) first gets
//! every notification newer than that id, then the live ones; the ids of a
//! user's notifications grow in the order they were stored, so nothing is
//! missed and nothing comes twice. Without it, only notifications stored
//! after the stream began are sent.
//!
//! `EventSource` cannot set headers, so this endpoint alone also accepts
//! the access token as `?access_token=` (and the resume point as
//! `?last_event_id=`, for a page that remembers it across reloads). Query
//! strings end up in more logs than headers do: prefer the header where
//! the client can set one.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bazaar_platform::Json;
use bazaar_platform::auth::{self, AuthError, BearerAuth, Verifier};
use bazaar_platform::db::Db;
use bazaar_platform::problem::{FieldError as FieldErrorBody, Problem as ProblemBody};
use bazaar_platform::problem::{FieldError, Problem, Unauthorized};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::domain::Page;
use crate::error::Error;
use crate::live::{Full, Hub, Listener};
use crate::metrics::{NotificationMetrics, StreamGuard};
use crate::store::{self, Notification};

/// What the handlers share.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) hub: Hub,
    pub(crate) metrics: NotificationMetrics,
    /// Keep-alive period of idle streams.
    pub(crate) keep_alive: Duration,
}

/// How long a stream opened with a token expiring at `exp` (seconds since
/// the epoch) may last at `now`: until the token expires, so a stream is
/// never worth more than the token that opened it. The client reconnects
/// with a fresh one (`EventSource` does so by itself, resuming after the
/// last event id).
pub(crate) fn lasts(exp: i64, now: i64) -> Duration {
    Duration::from_secs(u64::try_from(exp.saturating_sub(now)).unwrap_or(0))
}

/// The service's routes; `verifier` checks users' tokens.
pub(crate) fn router(state: AppState, verifier: Verifier) -> Router {
    Router::new()
        .route("/api/v1/notifications", get(list))
        .route("/api/v1/notifications/stream", get(stream))
        .route("/api/v1/notifications/{id}/read", post(read))
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
        title = "Bazaar notifications",
        description = "Each user's notifications: a feed, read marks, and a live stream (Server-Sent Events)."
    ),
    paths(list, read, stream),
    components(schemas(NotificationBody, PageBody, ProblemBody, FieldErrorBody)),
    modifiers(&BearerAuth),
    tags((name = "notifications", description = "What happened that concerns the signed-in user."))
)]
struct ApiDoc;

// ---- wire types ----

/// One notification as clients see it.
#[derive(Serialize, ToSchema)]
#[schema(as = Notification)]
struct NotificationBody {
    /// UUIDv7; a user's ids grow in the order their notifications were made
    /// (the stream's event id).
    id: Uuid,
    /// What it is about.
    #[schema(
        example = "order_confirmed",
        pattern = "^(welcome|order_confirmed|order_cancelled|stock_low|new_product)$"
    )]
    kind: &'static str,
    #[schema(example = "Order confirmed")]
    title: String,
    #[schema(example = "Your order of 2 x Cast iron teapot is confirmed; 49.00 EUR was charged.")]
    body: String,
    /// The storefront path of what it is about.
    #[schema(example = "/orders/01920c4e-8a3b-7cde-9f01-23456789abcd")]
    link: String,
    /// Whether the user marked it read.
    read: bool,
    /// RFC 3339, UTC.
    #[schema(example = "2025-01-31T09:30:00.123Z")]
    created_at: String,
}

fn rfc3339(millis: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

impl From<&Notification> for NotificationBody {
    fn from(n: &Notification) -> Self {
        Self {
            id: n.id,
            kind: n.kind.as_str(),
            title: n.title.clone(),
            body: n.body.clone(),
            link: n.link.as_str().to_owned(),
            read: n.read,
            created_at: rfc3339(n.created_at),
        }
    }
}

/// A page of the feed.
#[derive(Serialize, ToSchema)]
#[schema(as = NotificationPage)]
struct PageBody {
    /// Newest first.
    items: Vec<NotificationBody>,
    #[schema(example = 1)]
    page: i64,
    #[schema(example = 20)]
    limit: i64,
    /// How many notifications the user has, over all pages.
    total: i64,
    /// How many of the user's notifications are not marked read, over all
    /// pages (a badge's count).
    #[schema(example = 3)]
    unread: i64,
}

/// `GET /api/v1/notifications` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// 1-based page number (default 1).
    #[param(value_type = Option<i64>, minimum = 1)]
    page: Option<String>,
    /// Notifications per page, 1 to 100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// `GET /api/v1/notifications/stream` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamParams {
    /// The access token, for clients that cannot send `Authorization`
    /// (browsers' `EventSource`); the header wins when both are given.
    access_token: Option<String>,
    /// Resume after this notification, as the `Last-Event-ID` header does
    /// (which wins when both are given).
    #[param(value_type = Option<Uuid>)]
    last_event_id: Option<String>,
}

// ---- handlers ----

fn bad_query(_: QueryRejection) -> Error {
    Problem::validation(vec![FieldError {
        field: "query".to_owned(),
        message: "is not a valid query string (each parameter at most once)".to_owned(),
    }])
    .into()
}

#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "notifications",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of the user's notifications, newest first, with `total` and `unread` counted over all pages.", body = PageBody),
        Unauthorized,
        (status = 422, description = "`page` or `limit` is invalid; `errors` names each.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn list(
    State(state): State<AppState>,
    user: auth::User,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<PageBody>, Error> {
    let me = user.id;
    let Query(params) = params.map_err(bad_query)?;
    let page = Page::parse(params.page.as_deref(), params.limit.as_deref()).map_err(|errors| {
        Problem::validation(
            errors
                .into_iter()
                .map(|e| FieldError {
                    field: e.field.to_owned(),
                    message: e.message.to_owned(),
                })
                .collect(),
        )
    })?;
    let (items, total) = store::page(state.db.pool(), me, page).await?;
    let unread = store::unread(state.db.pool(), me).await?;
    Ok(Json(PageBody {
        items: items.iter().map(NotificationBody::from).collect(),
        page: page.number(),
        limit: page.limit(),
        total,
        unread,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/notifications/{id}/read",
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The notification.")),
    responses(
        (status = 204, description = "It is marked read (again, if it was)."),
        Unauthorized,
        (status = 404, description = "The user has no notification with this id.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn read(
    State(state): State<AppState>,
    user: auth::User,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Error> {
    let me = user.id;
    let Ok(Path(raw)) = path else {
        return Err(Error::NoSuchNotification);
    };
    let id = Uuid::parse_str(&raw).map_err(|_| Error::NoSuchNotification)?;
    if store::mark_read(state.db.writer(), me, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NoSuchNotification)
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/notifications/stream",
    tag = "notifications",
    security(("bearer" = [])),
    params(
        StreamParams,
        ("Last-Event-ID" = Option<Uuid>, Header, description = "Resume after this notification: every newer one is sent first."),
    ),
    responses(
        (status = 200, description = "A `text/event-stream` until the access token expires (then reconnect with a fresh one, resuming with `Last-Event-ID`): `: connected`, then one `notification` event per new notification (id = the notification's id, data = the notification as JSON), keep-alive comments while idle.", body = String, content_type = "text/event-stream"),
        (status = 401, description = "No valid access token (header or `access_token`).", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`Last-Event-ID` is not a notification id.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The user holds as many live streams as one may (`BAZAAR_NOTIFICATIONS_MAX_STREAMS_PER_USER`); close one first.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "This instance holds as many live streams as it may (`BAZAAR_NOTIFICATIONS_MAX_STREAMS`); try again shortly.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
async fn stream(
    State(state): State<AppState>,
    Extension(verifier): Extension<Verifier>,
    headers: HeaderMap,
    params: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Response, Error> {
    let Query(params) = params.map_err(bad_query)?;
    // The header when there is one; the query only for EventSource.
    let token = auth::bearer(&headers)
        .map(str::to_owned)
        .or(params.access_token.filter(|t| !t.is_empty()));
    let (user, exp) = match token {
        Some(token) => verifier.verify(&token).await,
        None => Err(AuthError::Missing),
    }
    .and_then(|claims| Ok((auth::User::from_claims(&claims)?, claims.exp)))
    .map_err(|e| {
        tracing::debug!(error = %e, "token refused");
        Problem::from(e)
    })?;
    let me = user.id;
    tracing::Span::current().record("user_id", tracing::field::display(me));
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(params.last_event_id)
        .map(|raw| raw.trim().to_owned())
        .filter(|raw| !raw.is_empty())
        .map(|raw| Uuid::parse_str(&raw).map_err(|_| Error::BadLastEventId))
        .transpose()?;

    // Listen before looking at the database, so a notification stored in
    // between is either in what the query finds or in what the hub gets.
    let listener = state.hub.listen(me).map_err(|full| match full {
        Full::User(max) => Error::TooManyStreams(max),
        Full::All => Error::StreamsFull,
    })?;
    let cursor = match resume {
        Some(id) => Some(id),
        None => store::newest(state.db.pool(), me).await?,
    };
    let feed = LiveFeed {
        db: state.db.clone(),
        user: me,
        cursor,
        catching_up: resume.is_some(),
        pending: VecDeque::new(),
        listener,
        _open: state.metrics.stream_opened(),
    };
    let expiry = tokio::time::sleep(lasts(exp, auth::now_seconds()));
    tracing::info!(resume = ?resume, "stream opened");
    let hello = Event::default()
        .comment("connected")
        .retry(Duration::from_secs(2));
    let events = futures_util::stream::once(async move { hello })
        .chain(futures_util::stream::unfold(feed, |mut feed| async move {
            let event = feed.next().await?;
            Some((event, feed))
        }))
        // The stream ends with its token; the client comes back with a new one.
        .take_until(expiry)
        .map(Ok::<_, Infallible>);
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(state.keep_alive));
    let mut response = sse.into_response();
    // Proxies that buffer (nginx) pass this one through as it comes.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Notifications read from the database at once when catching up.
const CHUNK: i64 = 100;

/// One open stream: what it sent last, what it still owes from the
/// database, and its place in the hub.
struct LiveFeed {
    db: Db,
    user: Uuid,
    /// The newest notification sent (or, at the start, known to the client).
    cursor: Option<Uuid>,
    /// Whether notifications after `cursor` must be read from the database:
    /// at a resume, and after the hub's channel overflowed.
    catching_up: bool,
    pending: VecDeque<Notification>,
    listener: Listener,
    _open: StreamGuard,
}

impl LiveFeed {
    /// The next event; `None` ends the stream (the client reconnects and
    /// resumes with `Last-Event-ID`).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(n) = self.pending.pop_front() {
                return Some(self.sent(&n));
            }
            if self.catching_up {
                let after = self.cursor.unwrap_or(Uuid::nil());
                match store::since(self.db.pool(), self.user, after, CHUNK).await {
                    Ok(rows) => {
                        self.catching_up = i64::try_from(rows.len()).unwrap_or(0) >= CHUNK;
                        self.pending.extend(rows);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(user_id = %self.user, error = %e, "cannot read the feed; ending the stream");
                        return None;
                    }
                }
            }
            match self.listener.rx.recv().await {
                Ok(n) if self.cursor.is_some_and(|c| n.id <= c) => {}
                Ok(n) => return Some(self.sent(&n)),
                // Fell behind the channel: the database has what was missed.
                Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn sent(&mut self, n: &Notification) -> Event {
        self.cursor = Some(n.id);
        let event = Event::default().id(n.id.to_string()).event("notification");
        match event.json_data(NotificationBody::from(n)) {
            Ok(event) => event,
            // Strings and numbers always serialize.
            Err(_) => Event::default().id(n.id.to_string()).event("notification"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stream_lasts_as_long_as_its_token() {
        assert_eq!(super::lasts(1_000, 400), Duration::from_secs(600));
        assert_eq!(super::lasts(1_000, 1_000), Duration::ZERO);
        assert_eq!(
            super::lasts(1_000, 5_000),
            Duration::ZERO,
            "expired: at once"
        );
    }

    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn the_description_has_every_route() {
        let spec = serde_json::to_value(openapi()).unwrap();
        for path in [
            "/api/v1/notifications",
            "/api/v1/notifications/stream",
            "/api/v1/notifications/{id}/read",
        ] {
            assert!(spec["paths"][path].is_object(), "{path}");
        }
        assert!(spec["paths"]["/api/v1/notifications/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"].is_object());
    }
}
