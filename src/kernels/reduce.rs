//! Deterministic reductions (`shaders/reduce.wgsl`).

use crate::error::{Error, Result};
use crate::gpu::{Access, KernelSpec, TypedKernel, storage};
use crate::shaders;
use crate::tensor::Tensor;

/// The uniform block of `shaders/reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    /// sum_splits: values per split; sum_channels: channels.
    len: u32,
    /// sum_splits: splits; sum_channels: batch.
    count: u32,
    /// sum_channels: values per (image, channel).
    plane: u32,
    /// 1: add to what dst holds.
    accumulate: u32,
}

static SUM_SPLITS: KernelSpec = KernelSpec {
    shader: &shaders::REDUCE,
    entry: "sum_splits",
    bindings: &storage([Access::Read, Access::ReadWrite]),
    workgroup_size: 64,
    params_size: size_of::<ReduceParams>(),
    activations: 0,
};

/// Tensors: the values (activations), the sums (f32).
static SUM_CHANNELS: TypedKernel = TypedKernel::new(
    [&shaders::REDUCE, &shaders::REDUCE_F16],
    "sum_channels",
    &[(3, Access::Read), (2, Access::ReadWrite)],
    64,
    size_of::<ReduceParams>(),
    0b01,
);

/// Adds `splits` partial results laid out one after another into `out` (or onto it, when
/// `accumulate`), in a fixed order.
///
/// # Shapes
/// `partials`: `[splits, ...out.shape]` → writes `out`
pub(crate) fn sum_splits(
    partials: &Tensor,
    splits: usize,
    out: &Tensor,
    accumulate: bool,
) -> Result<()> {
    if partials.numel() != splits * out.numel() {
        return Err(Error::shape(
            "sum_splits",
            format!("{:?} is not {splits} x {:?}", partials.shape(), out.shape()),
        ));
    }
    let params = ReduceParams {
        len: out.numel() as u32,
        count: splits as u32,
        plane: 0,
        accumulate: u32::from(accumulate),
    };
    partials.context().dispatch(
        &SUM_SPLITS,
        &[],
        &params,
        &[partials, out],
        out.numel() as u64,
    )
}

/// Sum over every axis but the channel axis 1 (the bias gradient of a conv, BN's sums).
///
/// # Shapes
/// `x`: `[batch, channels, ...]` (f32 or f16) → `[channels]` f32
pub fn sum_channels(x: &Tensor) -> Result<Tensor> {
    let (batch, channels) = match x.shape() {
        [b, c, ..] => (*b, *c),
        s => {
            return Err(Error::shape(
                "sum_channels",
                format!("needs at least 2-D, got {s:?}"),
            ));
        }
    };
    let plane: usize = x.shape()[2..].iter().product();
    let out = Tensor::uninit(x.context(), &[channels])?;
    let params = ReduceParams {
        len: channels as u32,
        count: batch as u32,
        plane: plane as u32,
        accumulate: 0,
    };
    // One workgroup of 64 lanes per channel.
    x.context().dispatch(
        SUM_CHANNELS.stored_as(x.dtype()),
        &[],
        &params,
        &[x, &out],
        channels as u64 * 64,
    )?;
    Ok(out)
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[&SUM_SPLITS, &SUM_CHANNELS.f32, &SUM_CHANNELS.f16];
