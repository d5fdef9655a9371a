//! One batched model's inference thread (a classifier, an embedding model, an uploaded
//! ONNX model): a bounded queue in front, dynamic batching inside.
//!
//! Admission counts queued and running requests; a full queue answers at once
//! (`QueueFull`) instead of letting latency grow without bound. Requests whose caller
//! has gone away (closed reply channel) are dropped before they cost a forward pass.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

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
    reply: Reply<O>,
    enqueued: Instant,
}

pub(crate) struct BatchRuntime<M: BatchModel> {
    label: String,
    settings: BatchSettings,
    sender: Option<SyncSender<Request<M::Input, M::Output>>>,
    in_flight: Arc<AtomicUsize>,
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
        let worker = Worker {
            label: label.clone(),
            model,
            settings,
            in_flight: in_flight.clone(),
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
        let (reply, answer) = oneshot::channel();
        let request = Request {
            input,
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
            self.set_depth();
            if matches!(e, EngineError::QueueFull { .. }) {
                self.reject();
            }
            return Err(e);
        }
        let label = self.label.clone();
        Ok(async move { answer.await.unwrap_or(Err(EngineError::Stopped(label))) })
    }

    fn reject(&self) {
        self.metrics.inc(
            "aiaas_inference_rejections_total",
            "Requests refused because the model's queue was full.",
            &[("model", &self.label)],
            1,
        );
    }

    fn set_depth(&self) {
        publish_depth(&self.metrics, &self.label, &self.in_flight);
    }
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
        let done = batch.len();
        let model = [("model", self.label.as_str())];
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
        let started = Instant::now();
        let n = inputs.len();
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
        self.metrics.observe(
            "aiaas_inference_duration_seconds",
            "Time of one batched forward pass.",
            &model,
            crate::metrics::LATENCY_BUCKETS,
            started.elapsed().as_secs_f64(),
        );
        // Release the admission slots before answering: a caller that sends its next
        // request as soon as it has an answer must find its slot free.
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
}
