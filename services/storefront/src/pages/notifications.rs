//! The notification feed and marking one read.

use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::Method;
use maud::{Markup, html};
use serde::Deserialize;

use super::form::NoFields;
use super::wire::{Notification, Page, when};
use super::{back_to, page_number, pager};
use crate::App;
use crate::error::PageError;
use crate::layout::{self, Chrome, csrf_field};
use crate::session::{CsrfForm, Session};

/// Notifications per page.
const PER_PAGE: i64 = 20;

/// The feed's query.
#[derive(Debug, Default, Deserialize)]
pub struct FeedQuery {
    page: Option<String>,
}

/// `GET /notifications?page=`: the feed is also the header's count.
pub async fn feed(
    State(app): State<App>,
    session: Session,
    OriginalUri(uri): OriginalUri,
    params: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Markup, PageError> {
    let user = session.require(&back_to(&uri))?;
    let page = page_number(params.ok().and_then(|Query(q)| q.page).as_deref());
    let feed = app
        .backend
        .json::<Page<Notification>>(
            app.backend
                .get(
                    "notifications",
                    format!("/api/v1/notifications?page={page}&limit={PER_PAGE}"),
                )
                .token(Some(&user.token)),
        )
        .await?;
    let mut chrome = Chrome::from_feed(&feed);
    if page != 1 {
        // The newest is on page 1: the live stream starts from now.
        chrome.newest = None;
    }
    let body = html! {
        h1 { "Notifications" }
        @if feed.items.is_empty() {
            div.notice.empty { p { "Nothing yet. Orders and news from sellers you follow show up here." } }
        } @else {
            ul.feed {
                @for n in &feed.items {
                    li class=(if n.read { "note read" } else { "note unread" }) {
                        div {
                            h2.note-title {
                                @if !n.link.is_empty() && n.link != "/" {
                                    a href=(n.link) { (n.title) }
                                } @else {
                                    (n.title)
                                }
                                @if !n.read { " " span.badge { "new" } }
                            }
                            p { (n.body) }
                            p.muted { time datetime=(n.created_at) { (when(&n.created_at)) } }
                        }
                        @if !n.read {
                            form.inline action={ "/notifications/" (n.id) "/read" } method="post" {
                                (csrf_field(&session))
                                button.secondary type="submit" {
                                    "Mark read" span.visually-hidden { ": " (n.title) }
                                }
                            }
                        }
                    }
                }
            }
        }
        (pager(feed.page, feed.total, feed.limit.max(1), |n| format!("/notifications?page={n}")))
    };
    Ok(layout::page(&session, &chrome, "Notifications", body))
}

/// `POST /notifications/{id}/read`.
pub async fn read(
    State(app): State<App>,
    session: Session,
    Path(raw): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let user = session.require("/notifications")?;
    let id = uuid::Uuid::parse_str(&raw)
        .map_err(|_| PageError::NotFound("There is no such notification.".to_owned()))?;
    let call = app
        .backend
        .call(
            "notifications",
            Method::POST,
            format!("/api/v1/notifications/{id}/read"),
        )
        .token(Some(&user.token));
    app.backend.empty(call).await?;
    Ok(Redirect::to("/notifications").into_response())
}
