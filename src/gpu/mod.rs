//! The device layer: context, pipelines, buffer pool, command recording.

mod context;
mod encoder;
mod pipelines;
mod pool;

pub use context::{Context, ContextOptions, ConvAlgorithm, LimitsChoice};
pub use encoder::RecordStats;
pub use pipelines::{Access, KernelSpec, storage};
pub(crate) use pool::PooledBuffer;
