//! The device layer: context, pipelines, buffer pool, command recording.

mod context;
mod encoder;
mod pipelines;
mod pool;
mod profile;

pub use context::{Context, ContextOptions, ConvAlgorithm, LimitsChoice, Precision, feature_names};
pub use encoder::RecordStats;
pub use pipelines::{Access, KernelSpec, storage};
pub use pool::KEEP_SUBMISSIONS;
pub(crate) use pool::PooledBuffer;
pub use profile::KernelTime;
