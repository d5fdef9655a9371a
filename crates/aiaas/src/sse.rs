//! Server-sent events as the CLI reads them (job progress, streamed chat and completions),
//! on the `eventsource-stream` parser: WHATWG rules, so a character split across two
//! network chunks stays whole, multi-line `data:` fields keep their newlines, and CR,
//! LF or CRLF line ends all work.

use anyhow::{Context, Result};
use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};

/// The events of a streamed HTTP response, in order.
pub(crate) fn events(resp: reqwest::Response) -> impl Stream<Item = Result<Event>> + Unpin {
    parse(resp.bytes_stream())
}

fn parse<B, E>(
    bytes: impl Stream<Item = Result<B, E>> + Unpin,
) -> impl Stream<Item = Result<Event>> + Unpin
where
    B: AsRef<[u8]>,
    E: std::error::Error + Send + Sync + 'static,
{
    bytes
        .eventsource()
        .map(|e| e.context("the event stream broke"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of a body that arrives in the given chunks.
    async fn read(chunks: Vec<&'static [u8]>) -> Vec<Event> {
        let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        parse(stream).map(|e| e.expect("event")).collect().await
    }

    #[tokio::test]
    async fn a_character_split_across_chunks_stays_whole() {
        // "é" is C3 A9 and "👍" F0 9F 91 8D: each is cut between two chunks.
        let events = read(vec![b"data: caf\xC3", b"\xA9 \xF0\x9F", b"\x91\x8D\n\n"]).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "café 👍");
    }

    #[tokio::test]
    async fn multi_line_data_keeps_its_newlines() {
        let body: &[u8] = b"event: log\ndata: first line\ndata:  indented second\r\ndata:\n\nevent: end\ndata: {}\n\n";
        let events = read(vec![body]).await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, "log");
        assert_eq!(events[0].data, "first line\n indented second\n");
        assert_eq!(events[1].event, "end");
        assert_eq!(events[1].data, "{}");
    }

    #[tokio::test]
    async fn events_without_a_name_are_messages() {
        let events = read(vec![b"data: [DONE]\n", b"\n"]).await;
        assert_eq!(
            (events[0].event.as_str(), events[0].data.as_str()),
            ("message", "[DONE]")
        );
    }
}
