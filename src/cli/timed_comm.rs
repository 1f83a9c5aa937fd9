//! A communicator that adds up the time its exchanges take, for the summary of a data-parallel
//! run: the share of the steps spent summing gradients (waiting for the slowest rank included).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hetconv::Result;
use hetconv::dist::Communicator;

/// `inner`, timed: every call adds its nanoseconds to `spent`.
pub struct Timed {
    inner: Arc<dyn Communicator>,
    spent: Arc<AtomicU64>,
}

impl Timed {
    /// Times `inner`'s exchanges into `spent` (nanoseconds).
    pub fn new(inner: Arc<dyn Communicator>, spent: Arc<AtomicU64>) -> Self {
        Self { inner, spent }
    }

    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.spent.fetch_add(nanos, Ordering::Relaxed);
        out
    }
}

impl Communicator for Timed {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        self.timed(|| self.inner.all_reduce_sum(values))
    }

    fn broadcast(&self, values: &mut [f32], root: usize) -> Result<()> {
        self.timed(|| self.inner.broadcast(values, root))
    }

    fn abort(&self, code: i32) -> ! {
        self.inner.abort(code)
    }
}
