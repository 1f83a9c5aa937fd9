//! How a tensor's values are stored.

use crate::error::{Error, Result};
use crate::gpu::Context;

/// The element type of a tensor's storage. Kernels compute in f32 whatever they read; an f16
/// tensor halves the memory and the traffic of what it holds (mixed precision's activations)
/// and rounds each stored value to f16 (to nearest on the CPU: a relative error of at most
/// 2^-11 inside f16's normal range, 6.1e-5 to 65504; on the GPU WGSL lets a store round to
/// either neighbour: 2^-10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit floats.
    #[default]
    F32,
    /// 16-bit floats (needs the device's `SHADER_F16`).
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }

    /// Refuses f16 on a device without `SHADER_F16`, naming `op`.
    pub(crate) fn check_device(self, op: &'static str, ctx: &Context) -> Result<()> {
        if self == DType::F16 && !ctx.features().contains(wgpu::Features::SHADER_F16) {
            return Err(Error::Unsupported {
                op,
                feature: "shader-f16 (f16 tensors)".into(),
                adapter: ctx.adapter_info().name.clone(),
            });
        }
        Ok(())
    }

    /// Refuses a tensor of this dtype where `op` takes only `wanted`.
    pub(crate) fn expect(self, op: &'static str, wanted: DType) -> Result<()> {
        if self == wanted {
            Ok(())
        } else {
            Err(Error::shape(
                op,
                format!("takes {wanted} tensors, got an {self} one"),
            ))
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        })
    }
}
