//! One batched model's inference thread (a classifier, an embedding model, an uploaded
//! ONNX model): a bounded queue in front, dynamic batching inside.
//!
//! Admission counts queued and running requests; a full queue answers at once
//! (`QueueFull`) instead of letting latency grow without bound. With a queue policy
//! (`max_queue_time`), a request is also refused at once when the rows ahead of it would
//! take longer than that at the measured cost of a row, and answered the same when it
//! has waited longer in the queue by the time its batch forms (`QueueTimeout`). As in
//! Triton's queue policy, the clock is the model's queue alone: time a request spent
//! before it (parsing, authentication, a busy HTTP layer) is not the model's to judge,
//! and counting it would refuse everything while the model idles whenever the HTTP
//! layer is the bottleneck (measured in bench/queue). Requests whose caller has gone
//! away (closed reply channel) are dropped before they cost a forward pass.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::{BatchSettings, EngineError, Metrics};

/// A model that answers a batch of requests at once, on the runtime's thread.
pub(crate) trait BatchModel: Send + 'static {
    /// One request: its texts, its tensors.
    type Input: Send + 'static;
    /// The answer to one request.
    type Output: Send + 'static;
    /// Rows a request adds to a batch (what `max_batch` counts).
    fn rows(input: &Self::Input) -> usize;
    /// One answer per request, in order.
    fn run(&self, inputs: Vec<Self::Input>) -> Vec<Result<Self::Output, String>>;
}

/// Run texts of several requests as one batch and hand each request its rows back (a
/// failure is every request's).
pub(crate) fn run_texts<O>(
    requests: Vec<Vec<String>>,
    run: impl FnOnce(&[&str]) -> Result<Vec<O>, String>,
) -> Vec<Result<Vec<O>, String>> {
    let texts: Vec<&str> = requests
        .iter()
        .flat_map(|r| r.iter().map(String::as_str))
        .collect();
    match run(&texts) {
        Ok(outputs) => {
            let mut rows = outputs.into_iter();
            requests
                .iter()
                .map(|r| Ok(rows.by_ref().take(r.len()).collect()))
                .collect()
        }
        Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
    }
}

type Reply<O> = oneshot::Sender<Result<O, EngineError>>;

struct Request<I, O> {
    input: I,
    rows: usize,
    reply: Reply<O>,
    /// When the request joined the model's queue (the queue policy's clock).
    enqueued: Instant,
}

/// What is queued and what a row costs: the queue policy's estimate of a wait.
struct Load {
    /// Rows admitted and not yet answered (the running batch's included).
    rows: AtomicUsize,
    /// Moving average of a row's share of its batch's run time, in nanoseconds (0: none
    /// measured yet).
    row_nanos: AtomicU64,
    /// Rows of the batch running now (0: none).
    running_rows: AtomicUsize,
    /// When the running batch started, in nanoseconds since `epoch`.
    running_since: AtomicU64,
    epoch: Instant,
}

impl Load {
    fn new() -> Load {
        Load {
            rows: AtomicUsize::new(0),
            row_nanos: AtomicU64::new(0),
            running_rows: AtomicUsize::new(0),
            running_since: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// How long a request admitted now would wait before its batch runs: the rows ahead
    /// of it at the measured cost of a row. Per row rather than per batch: on a CPU a
    /// batch costs about its rows (a per-batch figure measured on small batches would
    /// promise a short wait behind a large one); where batching is nearly free (a GPU) the
    /// full batches an overload forms measure a row cheap, and the estimate follows.
    /// The running batch counts for what is left of it, so a request arriving as a
    /// batch ends is not refused for the whole batch's time.
    fn expected_wait(&self) -> Duration {
        let row = self.row_nanos.load(Ordering::Relaxed);
        let rows = self.rows.load(Ordering::Relaxed);
        let running = self.running_rows.load(Ordering::Relaxed).min(rows);
        let queued = row.saturating_mul((rows - running) as u64);
        let left = if running == 0 {
            0
        } else {
            let since = self.running_since.load(Ordering::Relaxed);
            let elapsed = self.now_nanos().saturating_sub(since);
            row.saturating_mul(running as u64).saturating_sub(elapsed)
        };
        Duration::from_nanos(queued.saturating_add(left))
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// A batch of `rows` starts (0: it ended).
    fn running(&self, rows: usize) {
        self.running_since
            .store(self.now_nanos(), Ordering::Relaxed);
        self.running_rows.store(rows, Ordering::Relaxed);
    }

    /// Fold a batch's run time into the average (only the runtime's thread writes it).
    fn record_batch(&self, took: Duration, rows: usize) {
        let new = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX) / rows.max(1) as u64;
        let old = self.row_nanos.load(Ordering::Relaxed);
        let avg = if old == 0 {
            new
        } else {
            old - old / 8 + new / 8
        };
        self.row_nanos.store(avg, Ordering::Relaxed);
    }
}

pub(crate) struct BatchRuntime<M: BatchModel> {
    label: String,
    settings: BatchSettings,
    sender: Option<SyncSender<Request<M::Input, M::Output>>>,
    in_flight: Arc<AtomicUsize>,
    load: Arc<Load>,
    metrics: Arc<Metrics>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<M: BatchModel> BatchRuntime<M> {
    pub(crate) fn start(
        label: String,
        model: M,
        settings: BatchSettings,
        metrics: Arc<Metrics>,
    ) -> BatchRuntime<M> {
        let (sender, receiver) =
            mpsc::sync_channel::<Request<M::Input, M::Output>>(settings.queue_capacity.max(1));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let load = Arc::new(Load::new());
        let worker = Worker {
            label: label.clone(),
            model,
            settings,
            in_flight: in_flight.clone(),
            load: load.clone(),
            metrics: metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("infer-{label}"))
            .spawn(move || worker.run(receiver))
            .ok();
        BatchRuntime {
            label,
            settings,
            sender: Some(sender),
            in_flight,
            load,
            metrics,
            thread,
        }
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn settings(&self) -> BatchSettings {
        self.settings
    }

    pub(crate) fn queued(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Admit a request or refuse it at once; the future resolves with its answer.
    pub(crate) fn submit(
        &self,
        input: M::Input,
    ) -> Result<impl Future<Output = Result<M::Output, EngineError>>, EngineError> {
        self.check_queue_policy()?;
        let rows = M::rows(&input);
        let admitted = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if admitted >= self.settings.queue_capacity {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.reject();
            return Err(EngineError::QueueFull {
                model: self.label.clone(),
                queued: admitted,
            });
        }
        self.set_depth();
        self.load.rows.fetch_add(rows, Ordering::AcqRel);
        let (reply, answer) = oneshot::channel();
        let request = Request {
            input,
            rows,
            reply,
            enqueued: Instant::now(),
        };
        let sent = match &self.sender {
            Some(s) => s.try_send(request).map_err(|e| match e {
                TrySendError::Full(_) => EngineError::QueueFull {
                    model: self.label.clone(),
                    queued: admitted,
                },
                TrySendError::Disconnected(_) => EngineError::Stopped(self.label.clone()),
            }),
            None => Err(EngineError::Stopped(self.label.clone())),
        };
        if let Err(e) = sent {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.load.rows.fetch_sub(rows, Ordering::AcqRel);
            self.set_depth();
            if matches!(e, EngineError::QueueFull { .. }) {
                self.reject();
            }
            return Err(e);
        }
        let label = self.label.clone();
        Ok(async move { answer.await.unwrap_or(Err(EngineError::Stopped(label))) })
    }

    /// The queue policy's verdict on a request arriving now: refused (and counted) when
    /// the rows ahead of it would take longer than the limit. Callers with costly work
    /// before `submit` (database lookups) ask first, so an overload's refusals stay cheap.
    pub(crate) fn check_queue_policy(&self) -> Result<(), EngineError> {
        let Some(limit) = self.settings.max_queue_time else {
            return Ok(());
        };
        let waited = self.load.expected_wait();
        if waited > limit {
            self.reject();
            return Err(EngineError::QueueTimeout {
                model: self.label.clone(),
                waited,
                limit,
            });
        }
        Ok(())
    }

    fn reject(&self) {
        count_rejection(&self.metrics, &self.label, 1);
    }

    fn set_depth(&self) {
        publish_depth(&self.metrics, &self.label, &self.in_flight);
    }
}

/// Requests refused by a model's queue (full, or the queue policy's wait).
fn count_rejection(metrics: &Metrics, label: &str, n: u64) {
    metrics.inc(
        "aiaas_inference_rejections_total",
        "Requests refused because the model's queue was full or the wait too long.",
        &[("model", label)],
        n,
    );
}

/// The queue-depth gauge of one model, from its admission counter.
fn publish_depth(metrics: &Metrics, label: &str, in_flight: &AtomicUsize) {
    metrics.set(
        QUEUE_DEPTH,
        "Requests admitted and not yet answered, per model.",
        &[("model", label)],
        in_flight.load(Ordering::Relaxed) as f64,
    );
}

/// Name of the queue-depth gauge (removed when a model is unloaded).
pub(crate) const QUEUE_DEPTH: &str = "aiaas_inference_queue_depth";

impl<M: BatchModel> Drop for BatchRuntime<M> {
    fn drop(&mut self) {
        // Closing the channel ends the worker after it drains what is queued.
        self.sender.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker<M: BatchModel> {
    label: String,
    model: M,
    settings: BatchSettings,
    in_flight: Arc<AtomicUsize>,
    load: Arc<Load>,
    metrics: Arc<Metrics>,
}

impl<M: BatchModel> Worker<M> {
    fn run(self, receiver: mpsc::Receiver<Request<M::Input, M::Output>>) {
        while let Ok(first) = receiver.recv() {
            let mut batch = vec![first];
            let mut rows = M::rows(&batch[0].input);
            let deadline = Instant::now() + self.settings.max_delay;
            while rows < self.settings.max_batch {
                let left = deadline.saturating_duration_since(Instant::now());
                match receiver.recv_timeout(left) {
                    Ok(r) => {
                        rows += M::rows(&r.input);
                        batch.push(r);
                    }
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            self.run_batch(batch);
        }
    }

    fn run_batch(&self, batch: Vec<Request<M::Input, M::Output>>) {
        let model = [("model", self.label.as_str())];
        let (batch, expired) = self.expire(batch);
        let done = batch.len();
        let done_rows: usize = batch.iter().map(|r| r.rows).sum();
        let mut inputs = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for r in batch.into_iter().filter(|r| !r.reply.is_closed()) {
            self.metrics.observe(
                "aiaas_inference_queue_wait_seconds",
                "Time a request waited in its model's queue.",
                &model,
                crate::metrics::LATENCY_BUCKETS,
                r.enqueued.elapsed().as_secs_f64(),
            );
            inputs.push(r.input);
            replies.push(r.reply);
        }
        let rows: usize = inputs.iter().map(M::rows).sum();
        if rows > 0 {
            self.metrics.observe(
                "aiaas_inference_batch_size",
                "Rows (texts, tensor rows) per forward pass.",
                &model,
                crate::metrics::BATCH_BUCKETS,
                rows as f64,
            );
        }
        // Answered only now: their slots were released first.
        for (reply, e) in expired {
            let _ = reply.send(Err(e));
        }
        let started = Instant::now();
        let n = inputs.len();
        self.load.running(rows);
        // A panic in a model must not kill the runtime thread (it would stay registered
        // but never answer): it becomes this batch's error.
        let results = if n == 0 {
            Vec::new()
        } else {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.model.run(inputs)))
                .unwrap_or_else(|_| {
                    (0..n)
                        .map(|_| Err("the model panicked on this batch".into()))
                        .collect()
                })
        };
        let took = started.elapsed();
        self.load.running(0);
        self.metrics.observe(
            "aiaas_inference_duration_seconds",
            "Time of one batched forward pass.",
            &model,
            crate::metrics::LATENCY_BUCKETS,
            took.as_secs_f64(),
        );
        if n > 0 {
            self.load.record_batch(took, rows);
        }
        // Release the admission slots before answering: a caller that sends its next
        // request as soon as it has an answer must find its slot free.
        self.load.rows.fetch_sub(done_rows, Ordering::AcqRel);
        self.in_flight.fetch_sub(done, Ordering::AcqRel);
        let mut logged = false;
        let mut results = results.into_iter();
        for reply in replies {
            let answer = results
                .next()
                .unwrap_or_else(|| Err("the model gave fewer answers than requests".into()));
            let answer = answer.map_err(|e| {
                if !logged {
                    tracing::error!(model = %self.label, error = %e, "batch inference failed");
                    logged = true;
                }
                EngineError::Inference(e)
            });
            let _ = reply.send(answer);
        }
        publish_depth(&self.metrics, &self.label, &self.in_flight);
    }

    /// Under a queue policy, take out the requests that have waited past it: their slots
    /// are released here, and they are answered `QueueTimeout` before the batch runs.
    #[allow(clippy::type_complexity)]
    fn expire(
        &self,
        batch: Vec<Request<M::Input, M::Output>>,
    ) -> (
        Vec<Request<M::Input, M::Output>>,
        Vec<(Reply<M::Output>, EngineError)>,
    ) {
        let Some(limit) = self.settings.max_queue_time else {
            return (batch, Vec::new());
        };
        let (late, keep): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|r| r.enqueued.elapsed() > limit);
        if late.is_empty() {
            return (keep, Vec::new());
        }
        let rows: usize = late.iter().map(|r| r.rows).sum();
        self.load.rows.fetch_sub(rows, Ordering::AcqRel);
        self.in_flight.fetch_sub(late.len(), Ordering::AcqRel);
        count_rejection(&self.metrics, &self.label, late.len() as u64);
        let expired = late
            .into_iter()
            .map(|r| {
                let e = EngineError::QueueTimeout {
                    model: self.label.clone(),
                    waited: r.enqueued.elapsed(),
                    limit,
                };
                (r.reply, e)
            })
            .collect();
        (keep, expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose every batch takes `0` and echoes its inputs: the queue's logic
    /// without a real model's variable cost (the engine's integration tests use real
    /// classifiers).
    struct Paced(Duration);

    impl BatchModel for Paced {
        type Input = u32;
        type Output = u32;
        fn rows(_: &u32) -> usize {
            1
        }
        fn run(&self, inputs: Vec<u32>) -> Vec<Result<u32, String>> {
            std::thread::sleep(self.0);
            inputs.into_iter().map(Ok).collect()
        }
    }

    /// Batches of one taking 400 ms; requests may wait 1000 ms: the third in line waits
    /// 800 ms, the fourth 1200 ms (a batch may overrun by 100 ms before the count moves).
    fn paced() -> BatchRuntime<Paced> {
        let settings = BatchSettings {
            max_batch: 1,
            max_delay: Duration::ZERO,
            queue_capacity: 100,
            max_queue_time: Some(Duration::from_millis(1000)),
        };
        BatchRuntime::start(
            "paced".into(),
            Paced(Duration::from_millis(400)),
            settings,
            Arc::new(Metrics::new()),
        )
    }

    #[tokio::test]
    async fn the_queue_policy_refuses_at_once_what_would_wait_too_long() {
        let rt = paced();
        // A first request measures a batch.
        assert_eq!(rt.submit(0).unwrap().await.unwrap(), 0);
        let mut admitted = Vec::new();
        let mut refused = 0;
        for i in 1..=10 {
            match rt.submit(i) {
                Ok(answer) => admitted.push((i, answer)),
                Err(EngineError::QueueTimeout { waited, limit, .. }) => {
                    assert!(waited > limit);
                    refused += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!((admitted.len(), refused), (3, 7));
        for (i, answer) in admitted {
            assert_eq!(answer.await.unwrap(), i);
        }
        assert_eq!(rt.load.rows.load(Ordering::Acquire), 0);
        assert_eq!(rt.queued(), 0);
    }

    #[tokio::test]
    async fn the_running_batch_counts_for_what_is_left_of_it() {
        let rt = paced();
        assert_eq!(rt.submit(0).unwrap().await.unwrap(), 0);
        // Three admitted: they will wait 0, 400 and 800 ms.
        let first: Vec<_> = (1..=3).map(|i| rt.submit(i).unwrap()).collect();
        // 300 ms into the first one's batch: two rows queued (800 ms) and about 100 ms
        // left of the running one, so the next would wait about 900 ms: admitted (a whole
        // row for the running batch would make it 1200: refused), and served in time.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let fourth = rt.submit(4).expect("admitted: about 900 ms ahead of it");
        assert!(
            matches!(rt.submit(5), Err(EngineError::QueueTimeout { .. })),
            "about 1300 ms ahead of the fifth"
        );
        for (i, answer) in (1..=3).zip(first) {
            assert_eq!(answer.await.unwrap(), i);
        }
        assert_eq!(fourth.await.unwrap(), 4);
    }

    #[tokio::test]
    async fn requests_that_waited_past_the_policy_are_answered_without_running() {
        let rt = paced();
        // Nothing measured yet: all five are admitted; the fourth and fifth have waited
        // 1200 and 1600 ms by the time their turn comes.
        let answers: Vec<_> = (0..5).map(|i| rt.submit(i).unwrap()).collect();
        let results = futures_join(answers).await;
        for (i, r) in results.iter().enumerate().take(3) {
            assert_eq!(r.as_ref().unwrap(), &(i as u32));
        }
        for r in &results[3..] {
            assert!(matches!(r, Err(EngineError::QueueTimeout { .. })), "{r:?}");
        }
        assert_eq!(rt.queued(), 0);
        let text = rt.metrics.render();
        assert!(
            text.contains(r#"aiaas_inference_rejections_total{model="paced"} 2"#),
            "{text}"
        );
    }

    async fn futures_join<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
        let mut out = Vec::new();
        for f in futures {
            out.push(f.await);
        }
        out
    }
}
