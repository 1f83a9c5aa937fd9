//! The one error type of the crate. Every message names what went wrong: the op and the shapes,
//! the device limit (asked vs allowed), the file and byte offset.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in hetconv (new kinds may be added: match with a catch-all).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No GPU adapter could be found.
    #[error(
        "no GPU adapter found ({reason}). On Linux without a GPU, install Mesa's software Vulkan \
         driver: `apt-get install mesa-vulkan-drivers`"
    )]
    NoAdapter {
        /// Why none was found.
        reason: String,
        /// wgpu's error, where it gave one.
        #[source]
        source: Option<wgpu::RequestAdapterError>,
    },

    /// The adapter refused to create a device.
    #[error("could not create a device on adapter {adapter:?}: {source}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's error.
        #[source]
        source: wgpu::RequestDeviceError,
    },

    /// Shapes given to an op do not fit together.
    #[error("{op}: {message}")]
    Shape {
        /// The op.
        op: &'static str,
        /// What does not fit, with the shapes.
        message: String,
    },

    /// A request goes over one of the device's limits.
    #[error("{op}: over the device limit {limit}: asked {asked}, allowed {allowed}")]
    Limit {
        /// The op (or what was built).
        op: &'static str,
        /// The limit's name in `wgpu::Limits`.
        limit: &'static str,
        /// What was asked.
        asked: u64,
        /// What the device allows.
        allowed: u64,
    },

    /// A tensor is larger than one storage binding of the device may be (at the WebGPU default
    /// limits, 128 MiB: a ResNet's first activations at ImageNet sizes and batch 64).
    #[error(
        "a tensor of shape {shape:?} takes {asked} bytes, over the device limit max_storage_buffer_binding_size ({allowed} bytes): use a smaller batch or image size, or --max-limits (ContextOptions::limits) for the adapter's own limits"
    )]
    TensorLimit {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// Its bytes.
        asked: u64,
        /// The device's `max_storage_buffer_binding_size`.
        allowed: u64,
    },

    /// The device lacks a feature that the kernel needs.
    #[error("{op}: the device ({adapter}) does not offer {feature}")]
    Unsupported {
        /// The op.
        op: &'static str,
        /// The feature (or feature and size) it needs.
        feature: String,
        /// The adapter's name.
        adapter: String,
    },

    /// wgpu reported a validation or out-of-memory error.
    #[error("GPU error in {op}: {message}")]
    Gpu {
        /// The op.
        op: &'static str,
        /// What wgpu said.
        message: String,
        /// wgpu's error, where it handed one over (natively; errors caught by the device's
        /// handler arrive as text).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// Reading a result back from the GPU failed.
    #[error("reading back from the GPU failed: {0}")]
    Readback(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },

    /// A file's content is not what its format requires, at a byte offset.
    #[error("{path}: {message} (at byte {offset})")]
    Format {
        /// The file.
        path: PathBuf,
        /// Where in it.
        offset: u64,
        /// What is wrong there.
        message: String,
    },

    /// A file as a whole is not what its use requires (no one byte is at fault: a network the
    /// file does not describe, an image over the size limits).
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A library could not decode a file (an image, a safetensors header, a gzip stream); its
    /// error is kept as the source.
    #[error("{path}: {what}: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What was being decoded.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Training produced a non-finite loss or non-finite weights.
    #[error(
        "training diverged at step {step}: {what}. Lower the learning rate or add warm-up epochs"
    )]
    Diverged {
        /// The step.
        step: u64,
        /// What was not finite.
        what: String,
    },

    /// An argument is out of its allowed range.
    #[error("{0}")]
    InvalidArgument(String),

    /// Training stopped on Ctrl-C or a termination signal, after saving a checkpoint (the
    /// command line exits with code 130).
    #[error("interrupted at step {step}: checkpoint saved to {} (continue with --resume)", checkpoint.display())]
    Interrupted {
        /// The last step taken.
        step: u64,
        /// Where the checkpoint went.
        checkpoint: PathBuf,
    },
}

impl Error {
    /// This error as one about the file `path` (a checkpoint that does not fit the model it is
    /// loaded into, say): an [`Error::InvalidArgument`] or [`Error::Shape`] becomes an
    /// [`Error::File`] naming it; any other error is returned as it is.
    pub fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            Error::InvalidArgument(_) | Error::Shape { .. } => Error::File {
                path: path.to_path_buf(),
                message: self.to_string(),
            },
            other => other,
        }
    }

    /// Shorthand for a [`Error::Shape`] error.
    pub fn shape(op: &'static str, message: impl Into<String>) -> Self {
        Error::Shape {
            op,
            message: message.into(),
        }
    }
}
