//! The trainer's batches, prepared ahead of the step that needs them. Natively a background
//! thread builds the next [`PREFETCH_DEPTH`] batches (decoding a streamed set's files on every
//! core) while the GPU trains, into a bounded queue, so memory holds at most that many batches
//! beyond the one in use; in a browser (no threads) the next batch is built right after a step
//! is submitted. Batches are the same either way: [`StepBatches`] builds step `s` from the
//! seed alone.

use std::sync::Arc;

use super::{Batch, Dataset, StepBatches};
use crate::error::Result;

/// Batches the background thread may hold ready.
pub const PREFETCH_DEPTH: usize = 2;

/// Batches of a training run, prepared ahead (see the module's documentation).
pub struct Prefetch {
    data: Arc<Dataset>,
    steps: StepBatches,
    /// Steps of the run: nothing is prepared past them.
    end: u64,
    #[cfg(not(target_arch = "wasm32"))]
    worker: Option<worker::Worker>,
    #[cfg(target_arch = "wasm32")]
    prepared: Option<(u64, Result<Batch>)>,
}

impl Prefetch {
    /// Batches of `steps` over `data` for the steps before `end`.
    pub fn new(data: Arc<Dataset>, steps: StepBatches, end: u64) -> Self {
        Self {
            data,
            steps,
            end,
            #[cfg(not(target_arch = "wasm32"))]
            worker: None,
            #[cfg(target_arch = "wasm32")]
            prepared: None,
        }
    }

    /// The data set.
    pub fn data(&self) -> &Arc<Dataset> {
        &self.data
    }

    /// The steps.
    pub fn steps(&self) -> &StepBatches {
        &self.steps
    }

    /// The batch of `step`: the prepared one, or (after a jump, or at the start) built now,
    /// with preparation restarted after it.
    pub fn take(&mut self, step: u64) -> Result<Batch> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            if let Some(batch) = self.worker.as_mut().and_then(|w| w.take(step)) {
                return batch;
            }
            let batch = self.steps.batch(&self.data, step);
            self.worker = (step + 1 < self.end).then(|| {
                worker::Worker::start(self.data.clone(), self.steps.clone(), step + 1, self.end)
            });
            batch
        }
        #[cfg(target_arch = "wasm32")]
        match self.prepared.take() {
            Some((s, batch)) if s == step => batch,
            _ => self.steps.batch(&self.data, step),
        }
    }

    /// Called once step `step - 1` is submitted: in a browser, builds `step`'s batch now, while
    /// the GPU works (natively the thread is already ahead).
    pub fn prepare(&mut self, step: u64) {
        #[cfg(target_arch = "wasm32")]
        if step < self.end {
            self.prepared = Some((step, self.steps.batch(&self.data, step)));
        }
        #[cfg(not(target_arch = "wasm32"))]
        let _ = step;
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod worker {
    use std::sync::Arc;
    use std::sync::mpsc::{Receiver, sync_channel};
    use std::thread::JoinHandle;

    use super::PREFETCH_DEPTH;
    use crate::data::{Batch, Dataset, StepBatches};
    use crate::error::Result;

    /// A thread building the batches of steps `next..end` in order into a queue of
    /// [`PREFETCH_DEPTH`]; it stops after a failed batch (sent on) or when the queue is dropped.
    pub struct Worker {
        next: u64,
        queue: Option<Receiver<Result<Batch>>>,
        thread: Option<JoinHandle<()>>,
    }

    impl Worker {
        pub fn start(data: Arc<Dataset>, mut steps: StepBatches, from: u64, end: u64) -> Self {
            let (send, queue) = sync_channel(PREFETCH_DEPTH);
            let thread = std::thread::Builder::new()
                .name("hetconv-batches".into())
                .spawn(move || {
                    for step in from..end {
                        let batch = steps.batch(&data, step);
                        let failed = batch.is_err();
                        if send.send(batch).is_err() || failed {
                            break;
                        }
                    }
                })
                // Without a thread (the system refused one) every batch is built when needed.
                .ok();
            Self {
                next: from,
                queue: thread.is_some().then_some(queue),
                thread,
            }
        }

        /// The batch of `step` if it is the one the thread prepares next (None: a jump, the
        /// thread's end, or no thread).
        pub fn take(&mut self, step: u64) -> Option<Result<Batch>> {
            if step != self.next {
                return None;
            }
            let batch = self.queue.as_ref()?.recv().ok()?;
            self.next += 1;
            Some(batch)
        }
    }

    impl Drop for Worker {
        /// Drops the queue (the thread's next send fails and it returns), then waits for the
        /// batch in progress.
        fn drop(&mut self) {
            self.queue = None;
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
