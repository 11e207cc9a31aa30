//! A client of one `text/event-stream` response, reading it frame by frame
//! as a browser's `EventSource` would, for the tests of every stream
//! (notifications' feed, the gateway passing streams through, the fleet).
//!
//! A reader of its own rather than `eventsource-stream`: that crate drops
//! comment lines, and the tests look at them (the `: connected` a stream
//! opens with, keep-alives).

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use serde_json::Value;

/// One block of a `text/event-stream`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    /// The `id:` field.
    pub id: Option<String>,
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` lines, joined by newlines.
    pub data: Option<String>,
    /// Comment lines (`: ...`), e.g. keep-alives.
    pub comments: Vec<String>,
}

impl Frame {
    /// The data as JSON.
    ///
    /// # Panics
    /// When the frame has no data or it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.data.as_deref().expect("data")).expect("JSON data")
    }
}

/// How a stream is opened.
#[derive(Debug, Default, Clone, Copy)]
pub struct Open<'a> {
    /// As `Authorization: Bearer`.
    pub token: Option<&'a str>,
    /// As `?access_token=` (what a browser's `EventSource`, which cannot
    /// set headers, sends).
    pub query_token: Option<&'a str>,
    /// As `Last-Event-ID`.
    pub last_event_id: Option<&'a str>,
}

/// A reader of one `text/event-stream` response.
pub struct Sse {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: String,
}

impl Sse {
    /// Opens the stream at `url` as `how` says; the response when it is not
    /// 200.
    ///
    /// # Panics
    /// When the request fails or a 200 is not `text/event-stream`.
    pub async fn open(
        http: &reqwest::Client,
        url: &str,
        how: Open<'_>,
    ) -> Result<Self, reqwest::Response> {
        let mut url = url::Url::parse(url).expect("a stream URL");
        if let Some(token) = how.query_token {
            url.query_pairs_mut().append_pair("access_token", token);
        }
        let mut request = http.get(url).header("accept", "text/event-stream");
        if let Some(token) = how.token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = how.last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("GET stream");
        if response.status() != 200 {
            return Err(response);
        }
        Ok(Self::new(response))
    }

    /// Reads `response`, a stream.
    ///
    /// # Panics
    /// When it is not `text/event-stream`.
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "the stream's media type"
        );
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next frame, within `patience`; `None` if none came or the
    /// stream ended.
    ///
    /// # Panics
    /// When the connection fails mid-stream or sends what is not UTF-8.
    pub async fn frame(&mut self, patience: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??
                .expect("the stream's bytes");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// The next event (keep-alives and other comments skipped), within
    /// `patience`.
    pub async fn event(&mut self, patience: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.frame(left).await?;
            if frame.data.is_some() {
                return Some(frame);
            }
        }
    }
}

/// One block (the lines before a blank line) as a frame.
fn parse(block: &str) -> Frame {
    let mut frame = Frame::default();
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            frame.comments.push(comment.trim().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match field {
            "id" => frame.id = Some(value),
            "event" => frame.event = Some(value),
            "data" => {
                frame.data = Some(match frame.data.take() {
                    Some(before) => format!("{before}\n{value}"),
                    None => value,
                });
            }
            _ => {}
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_comments_and_multiline_data() {
        let frame = parse(": connected\nid: 7\nevent: notification\ndata: {\"a\":\ndata: 1}\n\n");
        assert_eq!(
            frame,
            Frame {
                id: Some("7".into()),
                event: Some("notification".into()),
                data: Some("{\"a\":\n1}".into()),
                comments: vec!["connected".into()],
            }
        );
        assert_eq!(frame.json()["a"], 1);
        assert_eq!(parse(":\n\n").comments, [""], "a keep-alive");
    }
}
