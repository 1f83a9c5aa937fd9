//! Elementwise arithmetic (`shaders/elementwise.wgsl`).

use super::same_context;
use crate::error::{Error, Result};
use crate::gpu::{Access, KernelSpec, storage};
use crate::shaders;
use crate::tensor::Tensor;

/// The uniform block of `shaders/elementwise.wgsl`; each entry point reads `len` and its own
/// fields.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ElementwiseParams {
    len: u32,
    /// binary: the [`BinaryOp`].
    op: u32,
    /// axpby.
    alpha: f32,
    /// axpby.
    beta: f32,
    /// channel_affine: values per channel plane.
    plane: u32,
    /// channel_affine: channels.
    channels: u32,
}

impl ElementwiseParams {
    fn len(len: usize) -> Self {
        Self {
            len: len as u32,
            ..bytemuck::Zeroable::zeroed()
        }
    }
}

static BINARY: KernelSpec = KernelSpec {
    shader: &shaders::ELEMENTWISE,
    entry: "binary",
    bindings: &storage([Access::Read, Access::Read, Access::ReadWrite]),
    workgroup_size: 64,
    params_size: size_of::<ElementwiseParams>(),
};

static AXPBY: KernelSpec = KernelSpec {
    shader: &shaders::ELEMENTWISE,
    entry: "axpby",
    bindings: &storage([Access::Read, Access::Read, Access::ReadWrite]),
    workgroup_size: 64,
    params_size: size_of::<ElementwiseParams>(),
};

/// A binary elementwise operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// a + b
    Add = 0,
    /// a - b
    Sub = 1,
    /// a * b
    Mul = 2,
    /// b where a > 0, else 0: ReLU's backward with a = its input (or output), b = dy
    ReluBackward = 3,
}

/// `op(a, b)` elementwise.
///
/// # Shapes
/// `a`, `b`: the same shape → that shape
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_context("binary", &[a, b])?;
    if a.shape() != b.shape() {
        return Err(Error::shape(
            "binary",
            format!(
                "{op:?} needs equal shapes, got {:?} and {:?}",
                a.shape(),
                b.shape()
            ),
        ));
    }
    let out = Tensor::uninit(a.context(), a.shape())?;
    let params = ElementwiseParams {
        op: op as u32,
        ..ElementwiseParams::len(a.numel())
    };
    a.context()
        .dispatch(&BINARY, &[], &params, &[a, b, &out], a.numel() as u64)?;
    Ok(out)
}

static RELU: KernelSpec = KernelSpec {
    shader: &shaders::ELEMENTWISE,
    entry: "relu",
    bindings: &storage([Access::Read, Access::Read, Access::ReadWrite]),
    workgroup_size: 64,
    params_size: size_of::<ElementwiseParams>(),
};

/// `max(x, 0)` elementwise.
///
/// # Shapes
/// `x`: any → the same shape
pub fn relu(x: &Tensor) -> Result<Tensor> {
    let out = Tensor::uninit(x.context(), x.shape())?;
    let params = ElementwiseParams::len(x.numel());
    x.context()
        .dispatch(&RELU, &[], &params, &[x, x, &out], x.numel() as u64)?;
    Ok(out)
}

/// `out = alpha * a + beta * out`, in place on `out`.
///
/// # Shapes
/// `a`, `out`: the same number of elements
pub fn axpby(alpha: f32, a: &Tensor, beta: f32, out: &Tensor) -> Result<()> {
    same_context("axpby", &[a, out])?;
    if a.numel() != out.numel() {
        return Err(Error::shape(
            "axpby",
            format!("a is {:?}, out is {:?}", a.shape(), out.shape()),
        ));
    }
    let params = ElementwiseParams {
        alpha,
        beta,
        ..ElementwiseParams::len(a.numel())
    };
    a.context()
        .dispatch(&AXPBY, &[], &params, &[a, a, out], a.numel() as u64)
}

static CHANNEL_AFFINE: KernelSpec = KernelSpec {
    shader: &shaders::ELEMENTWISE,
    entry: "channel_affine",
    bindings: &storage([Access::Read, Access::Read, Access::ReadWrite]),
    workgroup_size: 64,
    params_size: size_of::<ElementwiseParams>(),
};

/// `x * scale[c] + shift[c]` for the channel c of each value: a fixed per-channel affine map
/// (a model's input normalisation, `(x - mean) / std` with scale `1 / std` and shift
/// `-mean / std`).
///
/// # Shapes
/// `x`: `[B, C, ...]`, `scale_shift`: `[2, C]` (the scales, then the shifts) → x's shape
pub fn channel_affine(x: &Tensor, scale_shift: &Tensor) -> Result<Tensor> {
    let op = "channel_affine";
    same_context(op, &[x, scale_shift])?;
    let channels = x.shape().get(1).copied().unwrap_or(0);
    if x.shape().len() < 2 || x.numel() == 0 || scale_shift.shape() != [2, channels] {
        return Err(Error::shape(
            op,
            format!(
                "x {:?} must be non-empty [B, C, ...] and scale_shift [2, C], got {:?}",
                x.shape(),
                scale_shift.shape()
            ),
        ));
    }
    let plane = x.numel() / (x.shape()[0] * channels);
    let out = Tensor::uninit(x.context(), x.shape())?;
    let params = ElementwiseParams {
        plane: plane as u32,
        channels: channels as u32,
        ..ElementwiseParams::len(x.numel())
    };
    x.context().dispatch(
        &CHANNEL_AFFINE,
        &[],
        &params,
        &[x, scale_shift, &out],
        x.numel() as u64,
    )?;
    Ok(out)
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[&BINARY, &AXPBY, &RELU, &CHANNEL_AFFINE];
