//! # hetconv
//!
//! HetConv (heterogeneous-kernel) convolutional networks, trained and run on any GPU through
//! wgpu and WGSL: Vulkan, Metal and DX12 natively, WebGPU in the browser.
//!
//! Layers, bottom to top: [`gpu`] (device context, pipelines, buffer pool, one encoder per
//! step), [`kernels`] (one module per WGSL family), [`tensor`] (device-resident f32 or f16 tensors) and
//! [`reference`](mod@reference) (CPU f64 implementations of every op: the oracle of the tests).

// On wasm32, wgpu's handles are neither Send nor Sync (the browser has one thread); the same
// `Arc`s are what make the context shareable across threads natively.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
#![warn(missing_docs)]

pub mod autograd;
pub mod checkpoint;
pub mod conv_kind;
pub mod data;
pub mod dist;
pub mod error;
pub mod flops;
pub mod gpu;
pub mod kernels;
pub mod model;
pub mod nn;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod optim;
pub mod reference;
pub mod shaders;
pub mod tensor;
pub mod train;
pub mod tune;

pub use error::{Error, Result};
pub use gpu::{
    Context, ContextOptions, ConvAlgorithm, KernelSettings, KernelTime, LimitsChoice, Precision,
};
pub use model::{Architecture, Model};
pub use tensor::Tensor;
/// The wgpu version hetconv is built on, for applications that share their device.
pub use wgpu;
