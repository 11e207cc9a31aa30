//! Server-sent events, read with the `eventsource-stream` crate: the one
//! SSE reader of the benchmarks.

use futures_util::{Stream, StreamExt as _};

pub use eventsource_stream::Event;
use eventsource_stream::Eventsource as _;

/// The events of a `text/event-stream` body, as its chunks arrive; the
/// stream ends with the body or at its first error. Comments and events
/// without data are skipped; an event's `id` is the last id the stream set.
pub fn events<B, E>(chunks: impl Stream<Item = Result<B, E>>) -> impl Stream<Item = Event>
where
    B: AsRef<[u8]>,
{
    chunks
        .eventsource()
        .take_while(|event| std::future::ready(event.is_ok()))
        .filter_map(|event| std::future::ready(event.ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stream_events_are_taken_whole() {
        let chunks: [&[u8]; 3] = [
            b": connected\n\nid: n1\nevent: notification\ndata: {\"link\":\"/orders/o1\"}\n\nid: n2\ndata: a\ndata: b\n\nid: n3\nda",
            b"ta: c\r\n\r\n",
            b"event: empty\n\n",
        ];
        let stream = futures_util::stream::iter(chunks.map(Ok::<_, std::io::Error>));
        let events: Vec<(String, String, String)> = events(stream)
            .map(|e| (e.id, e.event, e.data))
            .collect()
            .await;
        let event = |id: &str, event: &str, data: &str| (id.into(), event.into(), data.into());
        assert_eq!(
            events,
            [
                event("n1", "notification", "{\"link\":\"/orders/o1\"}"),
                event("n2", "message", "a\nb"),
                event("n3", "message", "c"),
            ]
        );
    }
}
