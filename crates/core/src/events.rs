//! One event stream per generation, from the scheduler to the HTTP layer: every
//! choice's events tagged with the choice's index and merged in the order they happen
//! (`select_all` over one `unfold` per choice: kept combinators, no forwarding tasks).
//! Outputs are PII-masked per choice as they pass (`ReplyMasker` holds back what could
//! still grow into a finding, or with the NER detector, to a sentence end). The request's usage is recorded once: when every
//! sequence has ended, or, if the stream is dropped first (the client went away: the
//! receivers drop and the scheduler frees the slots at its next step), for the
//! sequences that did end.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aiaas_engine::llm::{FinishReason, GenEvent, LlmError, TokenLogprob};
use futures_util::stream::{self, BoxStream, SelectAll, Stream, StreamExt};
use futures_util::FutureExt;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::privacy::{OutputMasking, ReplyMasker};
use crate::{CoreError, Result};

/// What to do with the completion tokens of the sequences that ended (record usage).
pub(crate) type UsageSink = Box<dyn FnOnce(usize) + Send>;

/// Every choice's events of one generation: `(choice index, event)`. A choice ends with
/// `Done` or `Error`; the stream ends when every choice has. `Started` stays inside: it
/// only serves [`GenerationEvents::started`].
pub struct GenerationEvents {
    merged: SelectAll<BoxStream<'static, (usize, GenEvent)>>,
    /// Events read while waiting for the choices to start, to be streamed first.
    pending: VecDeque<(usize, GenEvent)>,
    choices: usize,
    ended: usize,
    completion_tokens: usize,
    usage: Option<UsageSink>,
}

impl GenerationEvents {
    pub(crate) fn new(
        receivers: Vec<UnboundedReceiver<GenEvent>>,
        output: Option<OutputMasking>,
        usage: UsageSink,
    ) -> GenerationEvents {
        let choices = receivers.len();
        let merged = stream::select_all(receivers.into_iter().enumerate().map(|(i, rx)| {
            let masker = output.as_ref().map(OutputMasking::stream);
            choice_stream(rx, masker).map(move |ev| (i, ev)).boxed()
        }));
        GenerationEvents {
            merged,
            pending: VecDeque::new(),
            choices,
            ended: 0,
            completion_tokens: 0,
            usage: Some(usage),
        }
    }

    /// How many choices (sequences) the generation runs.
    pub fn choices(&self) -> usize {
        self.choices
    }

    /// Wait until every choice has a slot (`Started`), for at most `limit` after `since`
    /// (when the requests were queued). A choice still queued then has waited past the
    /// model's queue policy, and its generator would refuse it when a slot frees: it is
    /// refused now (`QueueTimeout`, a 429), before a streamed reply has sent its headers.
    /// An error that comes before the start is returned as it is; text that arrives
    /// meanwhile is kept for the stream.
    pub async fn started(&mut self, model: &str, since: Instant, limit: Duration) -> Result<()> {
        let mut started = vec![false; self.choices];
        let deadline = tokio::time::Instant::from_std(since + limit);
        let mut late = false;
        while started.iter().any(|s| !s) {
            let next = if late {
                // Past the deadline: only what has already arrived still counts.
                match self.merged.next().now_or_never() {
                    Some(next) => next,
                    None => {
                        return Err(LlmError::QueueTimeout {
                            model: model.to_string(),
                            waited: since.elapsed(),
                            limit,
                        }
                        .into())
                    }
                }
            } else {
                match tokio::time::timeout_at(deadline, self.merged.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        late = true;
                        continue;
                    }
                }
            };
            match next {
                None => return Ok(()),
                Some((i, GenEvent::Started)) => {
                    if let Some(s) = started.get_mut(i) {
                        *s = true;
                    }
                }
                Some((i, GenEvent::Error(e))) => {
                    if let Some(s) = started.get_mut(i) {
                        if !*s {
                            return Err(e.into());
                        }
                    }
                    self.pending.push_back((i, GenEvent::Error(e)));
                }
                Some(other) => {
                    self.note(&other.1);
                    self.pending.push_back(other);
                }
            }
        }
        Ok(())
    }

    /// Count a choice's end (usage is recorded when the last one ends).
    fn note(&mut self, event: &GenEvent) {
        if let GenEvent::Done { usage, .. } = event {
            self.ended += 1;
            self.completion_tokens += usage.completion_tokens;
            if self.ended == self.choices {
                self.settle();
            }
        }
    }

    fn settle(&mut self) {
        if let Some(record) = self.usage.take() {
            if self.ended > 0 {
                record(self.completion_tokens);
            }
        }
    }
}

impl Stream for GenerationEvents {
    type Item = (usize, GenEvent);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(item) = this.pending.pop_front() {
            return Poll::Ready(Some(item));
        }
        loop {
            let item = match this.merged.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            match &item {
                Some((_, GenEvent::Started)) => continue,
                Some((_, event)) => this.note(event),
                None => this.settle(),
            }
            return Poll::Ready(item);
        }
    }
}

impl Drop for GenerationEvents {
    fn drop(&mut self) {
        self.settle();
    }
}

/// One sequence's events, masked, ending after its `Done` or `Error`.
fn choice_stream(
    rx: UnboundedReceiver<GenEvent>,
    masker: Option<ReplyMasker>,
) -> impl Stream<Item = GenEvent> + Send + 'static {
    struct Choice {
        rx: UnboundedReceiver<GenEvent>,
        masker: Option<ReplyMasker>,
        held: Option<GenEvent>,
        ended: bool,
    }
    let start = Choice {
        rx,
        masker,
        held: None,
        ended: false,
    };
    stream::unfold(start, |mut c| async move {
        if let Some(event) = c.held.take() {
            return Some((event, c));
        }
        if c.ended {
            return None;
        }
        loop {
            let event = c.rx.recv().await?;
            c.ended = matches!(event, GenEvent::Done { .. } | GenEvent::Error(_));
            let (first, then) = masked(c.masker.as_mut(), event).await;
            if matches!(first, Some(GenEvent::Error(_))) {
                c.ended = true;
            }
            if let Some(first) = first {
                c.held = then;
                return Some((first, c));
            }
        }
    })
}

/// An event with the output policy applied: text the masker holds back yields nothing
/// yet; `Done` first flushes what it held. A masker that fails (the NER model went
/// away mid-reply) ends the choice with an error rather than release unmasked text.
async fn masked(
    masker: Option<&mut ReplyMasker>,
    event: GenEvent,
) -> (Option<GenEvent>, Option<GenEvent>) {
    let Some(m) = masker else {
        return (Some(event), None);
    };
    let failed =
        |e: CoreError| GenEvent::Error(LlmError::Decode(format!("masking the reply failed: {e}")));
    match event {
        GenEvent::Text { text, logprobs } => match m.push(&text).await {
            Err(e) => (Some(failed(e)), None),
            Ok(text) if text.is_empty() => (None, None),
            Ok(text) => (Some(GenEvent::Text { text, logprobs }), None),
        },
        done @ GenEvent::Done { .. } => {
            let rest = match m.finish().await {
                Ok(rest) => rest,
                Err(e) => return (Some(failed(e)), None),
            };
            if rest.is_empty() {
                (Some(done), None)
            } else {
                let last = GenEvent::Text {
                    text: rest,
                    logprobs: Vec::new(),
                };
                (Some(last), Some(done))
            }
        }
        other @ (GenEvent::Error(_) | GenEvent::Started) => (Some(other), None),
    }
}

/// What one choice produced, gathered whole (non-streamed replies).
#[derive(Debug, Clone, Default)]
pub struct CollectedChoice {
    pub text: String,
    pub logprobs: Vec<TokenLogprob>,
    pub finish_reason: Option<FinishReason>,
    pub completion_tokens: usize,
    /// Prompt tokens whose KV cache was reused from an earlier request.
    pub cached_tokens: usize,
}

/// Wait for every choice to end and gather what each produced, in choice order.
pub async fn collect(mut events: GenerationEvents) -> Result<Vec<CollectedChoice>> {
    let mut out = vec![CollectedChoice::default(); events.choices()];
    let mut ended = 0;
    while let Some((i, event)) = events.next().await {
        let Some(choice) = out.get_mut(i) else {
            continue;
        };
        match event {
            GenEvent::Text { text, logprobs } => {
                choice.text.push_str(&text);
                choice.logprobs.extend(logprobs);
            }
            GenEvent::Done { reason, usage } => {
                choice.finish_reason = Some(reason);
                choice.completion_tokens = usage.completion_tokens;
                choice.cached_tokens = usage.cached_tokens;
                ended += 1;
                if ended == out.len() {
                    return Ok(out);
                }
            }
            GenEvent::Error(e) => return Err(e.into()),
            GenEvent::Started => {}
        }
    }
    Err(CoreError::Unavailable(
        "the model stopped before the reply was complete".into(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aiaas_engine::llm::Usage;
    use aiaas_privacy::Mode;
    use tokio::sync::mpsc::unbounded_channel;

    use super::*;

    fn text(t: &str) -> GenEvent {
        GenEvent::Text {
            text: t.into(),
            logprobs: Vec::new(),
        }
    }

    fn done(completion_tokens: usize) -> GenEvent {
        GenEvent::Done {
            reason: FinishReason::Stop,
            usage: Usage {
                prompt_tokens: 3,
                cached_tokens: 0,
                completion_tokens,
                time_to_first_token: None,
                total_time: Duration::ZERO,
            },
        }
    }

    /// A usage sink that remembers what it was given.
    fn sink() -> (UsageSink, Arc<Mutex<Vec<usize>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (Box::new(move |n| s.lock().unwrap().push(n)), seen)
    }

    #[tokio::test]
    async fn choices_merge_into_one_stream_and_usage_is_recorded_once() {
        let (a_tx, a_rx) = unbounded_channel();
        let (b_tx, b_rx) = unbounded_channel();
        let (usage, seen) = sink();
        let events = GenerationEvents::new(vec![a_rx, b_rx], None, usage);
        assert_eq!(events.choices(), 2);
        for e in [text("hel"), text("lo"), done(2)] {
            a_tx.send(e).unwrap();
        }
        for e in [text("bye"), done(5)] {
            b_tx.send(e).unwrap();
        }
        // The senders stay open: each choice still ends at its `Done`.
        let choices = collect(events).await.unwrap();
        assert_eq!(choices[0].text, "hello");
        assert_eq!(choices[1].text, "bye");
        assert_eq!(
            (choices[0].completion_tokens, choices[1].completion_tokens),
            (2, 5)
        );
        assert_eq!(*seen.lock().unwrap(), vec![7]);
        drop((a_tx, b_tx));
    }

    #[tokio::test]
    async fn outputs_are_masked_across_chunks_before_done() {
        let (tx, rx) = unbounded_channel();
        let (usage, _) = sink();
        let masking = OutputMasking::rules(aiaas_privacy::Policy::new(Mode::Label));
        let events = GenerationEvents::new(vec![rx], Some(masking), usage);
        // An address split across chunks is still found: the masker holds back the part
        // that could grow into a finding and flushes it before `Done`.
        for e in [text("write to jane.doe@exa"), text("mple.com"), done(4)] {
            tx.send(e).unwrap();
        }
        let choices = collect(events).await.unwrap();
        assert!(!choices[0].text.contains("jane.doe"), "{}", choices[0].text);
        assert!(
            choices[0].text.starts_with("write to "),
            "{}",
            choices[0].text
        );
    }

    #[tokio::test]
    async fn a_dropped_stream_counts_the_sequences_that_ended_and_cancels_the_rest() {
        let (a_tx, a_rx) = unbounded_channel();
        let (b_tx, b_rx) = unbounded_channel();
        let (usage, seen) = sink();
        let mut events = GenerationEvents::new(vec![a_rx, b_rx], None, usage);
        a_tx.send(done(3)).unwrap();
        b_tx.send(text("still going")).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            got.push(events.next().await.unwrap().0);
        }
        got.sort();
        assert_eq!(got, vec![0, 1]);
        drop(events);
        // Only the sequence that ended counts; the other's receiver is gone, so the
        // scheduler sees its sends fail and frees the slot.
        assert_eq!(*seen.lock().unwrap(), vec![3]);
        assert!(b_tx.send(text("more")).is_err());
    }

    #[tokio::test]
    async fn streams_wait_for_every_choice_to_start_and_keep_what_came_meanwhile() {
        let (a_tx, a_rx) = unbounded_channel();
        let (b_tx, b_rx) = unbounded_channel();
        let (usage, seen) = sink();
        let mut events = GenerationEvents::new(vec![a_rx, b_rx], None, usage);
        for e in [GenEvent::Started, text("early"), done(1)] {
            a_tx.send(e).unwrap();
        }
        b_tx.send(GenEvent::Started).unwrap();
        events
            .started("m", Instant::now(), Duration::from_secs(30))
            .await
            .unwrap();
        b_tx.send(text("late")).unwrap();
        b_tx.send(done(2)).unwrap();
        // What came while waiting is streamed first; `Started` never reaches the stream.
        let choices = collect(events).await.unwrap();
        assert_eq!(
            (choices[0].text.as_str(), choices[1].text.as_str()),
            ("early", "late")
        );
        assert_eq!(*seen.lock().unwrap(), vec![3]);
    }

    #[tokio::test]
    async fn a_choice_still_queued_at_the_limit_is_refused_as_overloaded() {
        let (a_tx, a_rx) = unbounded_channel();
        let (b_tx, b_rx) = unbounded_channel();
        let (usage, _) = sink();
        let mut events = GenerationEvents::new(vec![a_rx, b_rx], None, usage);
        a_tx.send(GenEvent::Started).unwrap();
        let queued = Instant::now();
        let refused = events
            .started("m", queued, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(queued.elapsed() >= Duration::from_millis(50));
        assert!(
            matches!(&refused, CoreError::Overloaded { retry_after_secs, .. } if *retry_after_secs >= 1),
            "{refused:?}"
        );
        // An error before the start is the answer as it is.
        let (tx, rx) = unbounded_channel();
        let (usage, _) = sink();
        let mut events = GenerationEvents::new(vec![rx], None, usage);
        tx.send(GenEvent::Error(aiaas_engine::llm::LlmError::Timeout))
            .unwrap();
        let e = events
            .started("m", Instant::now(), Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(matches!(e, CoreError::TimedOut(_)), "{e:?}");
        drop(b_tx);
    }

    #[tokio::test]
    async fn an_error_ends_the_collection_with_it() {
        let (tx, rx) = unbounded_channel();
        let (usage, seen) = sink();
        let events = GenerationEvents::new(vec![rx], None, usage);
        tx.send(text("partial")).unwrap();
        tx.send(GenEvent::Error(aiaas_engine::llm::LlmError::Timeout))
            .unwrap();
        assert!(collect(events).await.is_err());
        assert!(seen.lock().unwrap().is_empty());
    }
}
