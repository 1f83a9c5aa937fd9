//! The device layer: context, pipelines, buffer pool, command recording.

mod context;
mod encoder;
#[cfg(not(target_arch = "wasm32"))]
mod error_scope;
mod pipelines;
mod pool;
#[cfg(not(target_arch = "wasm32"))]
mod prebuild;
mod profile;

pub(crate) use context::default_conv_min_invocations;
pub use context::{
    Context, ContextOptions, ConvAlgorithm, KernelSettings, LimitsChoice, Precision, feature_names,
};
pub use encoder::RecordStats;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use error_scope::ErrorScopes;
#[cfg(test)]
pub(crate) use pipelines::PipelineRequest;
pub use pipelines::{Access, KernelSpec, TypedKernel, storage};
pub use pool::KEEP_SUBMISSIONS;
pub(crate) use pool::PooledBuffer;
#[cfg(not(target_arch = "wasm32"))]
pub use prebuild::Prebuilt;
pub use profile::KernelTime;

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking a poisoned lock over. A panic while a lock was held (in an
/// application's thread, say) must not silently switch anything off: the pool must go on parking
/// the buffers a recording releases, or a later upload could overwrite data that recorded work
/// still reads. No value under hetconv's locks is left half-updated by a panic: every update is
/// a single assignment or a collection insert or removal.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
