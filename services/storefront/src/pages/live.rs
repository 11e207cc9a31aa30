//! `GET /live`: the signed-in user's notifications as they happen, a
//! `text/event-stream` relayed from notifications' own stream with the
//! user's token (which the browser never sees: it stays in an `HttpOnly`
//! cookie). Each notification is re-emitted as a `notification` event
//! whose data is `{id, kind, title, link}` — what the page script needs to
//! count the bell up and refresh an order it shows.
//!
//! Resuming: the browser's `EventSource` sends `Last-Event-ID` when it
//! reconnects, and a page passes `?after=` (its newest notification when
//! rendered) on the first connection; both become notifications'
//! `Last-Event-ID`, so nothing between the page and the stream is lost.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::App;
use crate::session::Session;

/// `/live`'s query.
#[derive(Debug, Default, Deserialize)]
pub struct LiveQuery {
    after: Option<String>,
}

/// `GET /live`.
pub async fn relay(
    State(app): State<App>,
    session: Session,
    headers: HeaderMap,
    query: Result<Query<LiveQuery>, QueryRejection>,
) -> Response {
    let Some(user) = &session.user else {
        return (
            StatusCode::UNAUTHORIZED,
            "Sign in to follow your notifications.",
        )
            .into_response();
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.ok().and_then(|Query(q)| q.after))
        .filter(|id| uuid::Uuid::parse_str(id).is_ok());
    let mut instances = app.backend.instances("notifications");
    // Spread streams over the instances; the next one when one fails.
    if !instances.is_empty() {
        let start = usize::from(random_byte()) % instances.len();
        instances.rotate_left(start);
    }
    for base in instances {
        let Ok(url) = base.join("/api/v1/notifications/stream") else {
            continue;
        };
        let mut request = app
            .live
            .get(url)
            .bearer_auth(&user.token)
            .header(header::ACCEPT, "text/event-stream");
        if let Some(id) = &resume {
            request = request.header("last-event-id", id);
        }
        match request.send().await {
            Ok(upstream) if upstream.status().is_success() => {
                return stream(upstream.bytes_stream());
            }
            Ok(upstream) if upstream.status() == StatusCode::UNAUTHORIZED => {
                return (
                    StatusCode::UNAUTHORIZED,
                    "Sign in again to follow your notifications.",
                )
                    .into_response();
            }
            Ok(upstream) => {
                tracing::warn!(instance = %base, status = %upstream.status(), "notifications refused a stream");
            }
            Err(error) => {
                tracing::warn!(instance = %base, %error, "cannot open a notification stream");
            }
        }
    }
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "Notifications are not available right now.",
    )
        .into_response();
    // EventSource retries by itself; tell it not to hurry.
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

fn random_byte() -> u8 {
    let mut b = [0u8; 1];
    getrandom::fill(&mut b).map_or(0, |()| b[0])
}

/// What the page script gets of a notification.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Live {
    id: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    link: String,
}

/// Upstream bytes → our events, ending when the upstream ends (the browser
/// reconnects with `Last-Event-ID`).
fn stream<S, E>(upstream: S) -> Response
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    struct State<S> {
        upstream: std::pin::Pin<Box<S>>,
        parser: Parser,
        ready: VecDeque<Message>,
    }
    let state = State {
        upstream: Box::pin(upstream),
        parser: Parser::default(),
        ready: VecDeque::new(),
    };
    let events = futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(message) = state.ready.pop_front() {
                if message.event.as_deref() != Some("notification") {
                    continue;
                }
                let Ok(live) = serde_json::from_str::<Live>(&message.data) else {
                    continue;
                };
                let event = Event::default()
                    .event("notification")
                    .id(live.id.clone())
                    .json_data(&live)
                    .unwrap_or_default();
                return Some((event, state));
            }
            match state.upstream.next().await {
                Some(Ok(chunk)) => state.ready.extend(state.parser.feed(&chunk)),
                Some(Err(error)) => {
                    tracing::debug!(%error, "the notification stream broke");
                    return None;
                }
                None => return None,
            }
        }
    });
    let hello = Event::default()
        .comment("connected")
        .retry(Duration::from_secs(2));
    let events = futures_util::stream::once(async { hello })
        .chain(events)
        .map(Ok::<_, Infallible>);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// `id:`.
    pub id: Option<String>,
    /// `event:`.
    pub event: Option<String>,
    /// Every `data:` line, joined by newlines.
    pub data: String,
}

/// Reads `text/event-stream` in whatever chunks it arrives.
#[derive(Debug, Default)]
pub struct Parser {
    buffer: String,
    pending: Vec<u8>,
}

impl Parser {
    /// The events completed by `chunk`.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Message> {
        // A chunk may end inside a UTF-8 sequence: keep the tail for later.
        self.pending.extend_from_slice(chunk);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) => e.valid_up_to(),
        };
        let text: Vec<u8> = self.pending.drain(..valid).collect();
        self.buffer
            .push_str(&String::from_utf8_lossy(&text).replace("\r\n", "\n"));
        let mut out = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut message = Message::default();
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if line.starts_with(':') || line.is_empty() {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => message.id = Some(value.to_owned()),
                    "event" => message.event = Some(value.to_owned()),
                    "data" => data.push(value),
                    _ => {}
                }
            }
            if message.event.is_some() || !data.is_empty() {
                message.data = data.join("\n");
                out.push(message);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_chunks() {
        let mut parser = Parser::default();
        let wire = ": connected\nretry: 2000\n\nid: 1\nevent: notification\ndata: {\"id\":\"1\",\"title\":\"Zoë\"}\n\n: keep-alive\n\nid: 2\r\nevent: notification\r\ndata: a\r\ndata: b\r\n\r\n";
        let bytes = wire.as_bytes();
        let mut got = Vec::new();
        // Every split point, including inside the two-byte "ë".
        for chunk in bytes.chunks(3) {
            got.extend(parser.feed(chunk));
        }
        assert_eq!(
            got,
            vec![
                Message {
                    id: Some("1".to_owned()),
                    event: Some("notification".to_owned()),
                    data: "{\"id\":\"1\",\"title\":\"Zoë\"}".to_owned(),
                },
                Message {
                    id: Some("2".to_owned()),
                    event: Some("notification".to_owned()),
                    data: "a\nb".to_owned(),
                },
            ]
        );
    }

    #[test]
    fn comments_alone_make_no_event() {
        let mut parser = Parser::default();
        assert!(parser.feed(b": keep-alive\n\n").is_empty());
        assert!(parser.feed(b"data: x").is_empty(), "incomplete");
        assert_eq!(parser.feed(b"\n\n")[0].data, "x");
    }
}
