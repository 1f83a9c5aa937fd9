//! Building many pipelines at once (native builds): a driver compiles a pipeline on the thread
//! that creates it, so the pipelines a piece of work needs are found first, by running it
//! without recording its dispatches, then built on the CPU's threads together. The tuner does
//! this before timing a key's candidates: each candidate's first run would otherwise compile
//! its pipelines one after another.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::pipelines::{PipelineCache, PipelineRequest};
use super::{Context, lock};

/// Stack of a pipeline-building thread: the main thread's 8 MiB and more (a driver's compiler,
/// LLVM-based on some, recurses deeply; Rust's default for a spawned thread is 2 MiB).
const COMPILER_STACK: usize = 16 << 20;

/// What [`Context::prebuild_pipelines`] built.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Prebuilt {
    /// Pipelines built.
    pub built: usize,
    /// Threads they were built on.
    pub threads: usize,
    /// Wall-clock time of finding and building them, in ms.
    pub ms: f64,
}

impl Context {
    /// Builds the pipelines that `record`'s work needs, on up to
    /// [`std::thread::available_parallelism`] threads at once, without running that work: a
    /// driver compiles a pipeline on the thread that creates it, so work that builds its
    /// pipelines as it goes compiles them one after another. `record` runs with the dispatches
    /// it makes on this thread left unrecorded and their pipelines noted; what else it does
    /// (uploads, copies, clears, host-side state) is done as usual, and results it reads back
    /// hold whatever the unrecorded dispatches' outputs held before. So give it work whose
    /// results do not matter: a throwaway model's step, say, before the real one (an
    /// application: before its first frame; `hetconv tune`: before timing). Where the tuner
    /// would time a key in `full` mode, every candidate's pipelines are noted instead and the
    /// heuristic's choice serves; the key is timed when it next runs.
    ///
    /// What `record` recorded besides is submitted before this returns (unless hetconv records
    /// into the application's encoder), so that the buffers it released serve the work that
    /// follows; an error wgpu reports during `record` is logged as a warning, not left for
    /// later work. Other threads' work on the context meanwhile is recorded as usual. While a
    /// thread (this one included) is inside this call on the same context or a handle of it,
    /// `record` does not run and nothing is built. A pipeline that fails to build is left
    /// out: the dispatch that needs it builds it again and reports the error.
    pub fn prebuild_pipelines(&self, record: impl FnOnce()) -> Prebuilt {
        let started = Instant::now();
        let Some(collecting) = Collecting::begin(&self.inner.pipelines) else {
            return Prebuilt::default();
        };
        let scopes = super::ErrorScopes::push(&self.inner.device);
        record();
        // What `record` recorded besides (clears, copies) is submitted now, so that the buffers
        // it released go back to the pool for the work that follows; what wgpu reported
        // meanwhile is `record`'s, and after a failed allocation the pool's free buffers go
        // (one may be the invalid buffer wgpu returned).
        let flushed = match self.records_into_application_encoder() {
            true => Ok(()),
            false => self.flush(),
        };
        let wanted = collecting.finish();
        if let Some(e) = scopes.pop() {
            log::warn!("building pipelines ahead: the work that found them failed: {e}");
            self.trim();
        } else if let Err(e) = flushed {
            log::warn!("building pipelines ahead: {e}");
            self.trim();
        }
        let built = self.build_pipelines(wanted);
        Prebuilt {
            ms: started.elapsed().as_secs_f64() * 1e3,
            ..built
        }
    }

    /// Whether this thread is inside [`Context::prebuild_pipelines`]'s `record`: its
    /// dispatches are not recorded.
    pub(crate) fn collects_pipelines_here(&self) -> bool {
        lock(&self.inner.pipelines).collects_here()
    }

    /// Builds those of `wanted` not built yet on up to [`std::thread::available_parallelism`]
    /// threads at once (the modules first, one at a time). A pipeline that fails to build is
    /// left out, for its dispatch to build again and report. The threads get
    /// [`COMPILER_STACK`] bytes of stack: a driver's compiler runs on them.
    pub(crate) fn build_pipelines(&self, wanted: Vec<PipelineRequest>) -> Prebuilt {
        let started = Instant::now();
        let device = &self.inner.device;
        let prepared = lock(&self.inner.pipelines).prepare(device, wanted);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(prepared.len());
        let next = AtomicUsize::new(0);
        let built: Vec<_> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let builder = std::thread::Builder::new()
                        .name("hetconv pipeline build".into())
                        .stack_size(COMPILER_STACK);
                    builder.spawn_scoped(s, || {
                        let mut built = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(job) = prepared.get(i) else {
                                return built;
                            };
                            built.extend(job.build(device));
                        }
                    })
                })
                .collect();
            // A worker that could not start leaves its share to the others (or to the
            // dispatches that need the pipelines).
            workers
                .into_iter()
                .filter_map(|w| w.ok())
                .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let count = built.len();
        lock(&self.inner.pipelines).insert_built(built);
        Prebuilt {
            built: count,
            threads,
            ms: started.elapsed().as_secs_f64() * 1e3,
        }
    }
}

/// The calling thread collecting pipelines; dropped (a panic in the work) it stops.
struct Collecting<'a>(&'a Mutex<PipelineCache>);

impl<'a> Collecting<'a> {
    fn begin(cache: &'a Mutex<PipelineCache>) -> Option<Self> {
        lock(cache).begin_collecting().then_some(Self(cache))
    }

    fn finish(self) -> Vec<PipelineRequest> {
        lock(self.0).end_collecting()
    }
}

impl Drop for Collecting<'_> {
    fn drop(&mut self) {
        lock(self.0).end_collecting();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::elementwise::{axpby, relu};
    use crate::tensor::Tensor;

    /// While one thread collects, its dispatches are left unrecorded and their pipelines built
    /// afterwards, but another thread's dispatches on the same device run as usual.
    #[test]
    fn only_the_collecting_threads_dispatches_are_left_out() {
        let ctx = Context::new_blocking().expect("a GPU adapter");
        let x = Tensor::from_slice(&ctx, &[4], &[1.0, -2.0, 3.0, -4.0]).unwrap();
        let out = Tensor::from_slice(&ctx, &[4], &[5.0; 4]).unwrap();
        let cached = || lock(&ctx.inner.pipelines).len();
        let before = cached();
        let dispatches = ctx.record_stats().dispatches;
        let prebuilt = ctx.prebuild_pipelines(|| {
            std::thread::scope(|s| {
                let other = s.spawn(|| relu(&x).and_then(|y| y.to_vec()));
                let relued = other.join().expect("the other thread").unwrap();
                assert_eq!(relued, [1.0, 0.0, 3.0, 0.0]);
            });
            axpby(1.0, &x, 0.0, &out).unwrap();
        });
        // The other thread's relu was recorded and built its pipeline; this thread's axpby
        // was not recorded, and its pipeline was built after.
        assert_eq!(ctx.record_stats().dispatches - dispatches, 1);
        assert_eq!(out.to_vec().unwrap(), [5.0; 4]);
        assert_eq!(prebuilt.built, 1);
        assert_eq!(cached() - before, 2);
        // Now the axpby runs.
        axpby(1.0, &x, 0.0, &out).unwrap();
        assert_eq!(out.to_vec().unwrap(), [1.0, -2.0, 3.0, -4.0]);
        assert_eq!(cached() - before, 2);
    }

    /// A pass that would be tuned while its thread collects notes every candidate's pipelines
    /// and takes the heuristic's choice, without timing (its dispatches are not recorded) or
    /// remembering it; afterwards the same pass is tuned, with nothing left to build.
    #[test]
    fn the_tuner_times_nothing_while_its_thread_collects() {
        use crate::kernels::conv::{self, ConvKind, ConvWeights};
        use crate::tune::TuneMode;
        let ctx = Context::new_blocking().expect("a GPU adapter");
        let dir = tempfile::tempdir().unwrap();
        ctx.set_tune_cache(Some(dir.path().join("tune.json")));
        ctx.set_tune_mode(TuneMode::Full);
        // Big enough for GEMM-core tiles to be candidates beside the direct kernels.
        let x = Tensor::from_slice(&ctx, &[2, 4, 8, 8], &[0.5; 512]).unwrap();
        let w3 = Tensor::from_slice(&ctx, &[8, 4, 3, 3], &[0.25; 288]).unwrap();
        let w = ConvWeights {
            w3: Some(&w3),
            w1: None,
            bias: None,
        };
        let forward = || conv::forward(&ConvKind::standard3x3(), &x, &w);
        let prebuilt = ctx.prebuild_pipelines(|| {
            forward().unwrap();
        });
        assert_eq!(ctx.tune_stats().keys_timed, 0);
        assert!(ctx.kernel_choices().is_empty());
        forward().unwrap();
        let stats = ctx.tune_stats();
        assert_eq!(stats.keys_timed, 1);
        let choices = ctx.kernel_choices();
        assert_eq!(choices.len(), 1);
        let timed = choices[0].1.candidates.len();
        assert!(timed > 1, "{choices:?}");
        // The direct kernels and a tile at least; timing found every one built.
        assert!(prebuilt.built >= 2, "{prebuilt:?}");
        assert_eq!(stats.pipelines_built, 0, "{stats:?}");
    }
}
