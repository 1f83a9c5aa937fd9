//! Elementwise arithmetic (`shaders/elementwise.wgsl`).

use super::same_context;
use crate::error::{Error, Result};
use crate::gpu::{Access, KernelSpec, TypedKernel, storage};
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

/// The module with activations stored as f32, and as f16.
const MODULES: [&crate::shaders::ShaderSource; 2] =
    [&shaders::ELEMENTWISE, &shaders::ELEMENTWISE_F16];

impl ElementwiseParams {
    fn len(len: usize) -> Self {
        Self {
            len: len as u32,
            ..bytemuck::Zeroable::zeroed()
        }
    }
}

static BINARY: TypedKernel = TypedKernel::new(
    MODULES,
    "binary",
    &storage([Access::Read, Access::Read, Access::ReadWrite]),
    64,
    size_of::<ElementwiseParams>(),
    0b111,
);

static AXPBY: TypedKernel = TypedKernel::new(
    MODULES,
    "axpby",
    &storage([Access::Read, Access::Read, Access::ReadWrite]),
    64,
    size_of::<ElementwiseParams>(),
    0b111,
);

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

/// `op(a, b)` elementwise, stored as a's dtype (computed in f32).
///
/// # Shapes
/// `a`, `b`: the same shape and dtype → that shape and dtype
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_context("binary", &[a, b])?;
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return Err(Error::shape(
            "binary",
            format!("{op:?} needs equal shapes and dtypes, got {a:?} and {b:?}"),
        ));
    }
    let out = Tensor::uninit_as(a.context(), a.shape(), a.dtype())?;
    let params = ElementwiseParams {
        op: op as u32,
        ..ElementwiseParams::len(a.numel())
    };
    a.context().dispatch(
        BINARY.stored_as(a.dtype()),
        &[],
        &params,
        &[a, b, &out],
        a.numel() as u64,
    )?;
    Ok(out)
}

static RELU: TypedKernel = TypedKernel::new(
    MODULES,
    "relu",
    &storage([Access::Read, Access::Read, Access::ReadWrite]),
    64,
    size_of::<ElementwiseParams>(),
    0b111,
);

/// `max(x, 0)` elementwise.
///
/// # Shapes
/// `x`: any → the same shape and dtype
pub fn relu(x: &Tensor) -> Result<Tensor> {
    let out = Tensor::uninit_as(x.context(), x.shape(), x.dtype())?;
    let params = ElementwiseParams::len(x.numel());
    x.context().dispatch(
        RELU.stored_as(x.dtype()),
        &[],
        &params,
        &[x, x, &out],
        x.numel() as u64,
    )?;
    Ok(out)
}

/// `out = alpha * a + beta * out`, in place on `out` (computed in f32, stored as out's dtype).
///
/// # Shapes
/// `a`, `out`: the same number of elements and dtype
pub fn axpby(alpha: f32, a: &Tensor, beta: f32, out: &Tensor) -> Result<()> {
    same_context("axpby", &[a, out])?;
    if a.numel() != out.numel() || a.dtype() != out.dtype() {
        return Err(Error::shape("axpby", format!("a is {a:?}, out is {out:?}")));
    }
    let params = ElementwiseParams {
        alpha,
        beta,
        ..ElementwiseParams::len(a.numel())
    };
    a.context().dispatch(
        AXPBY.stored_as(a.dtype()),
        &[],
        &params,
        &[a, a, out],
        a.numel() as u64,
    )
}

static CHANNEL_AFFINE: TypedKernel = TypedKernel::new(
    MODULES,
    "channel_affine",
    &[(1, Access::Read), (4, Access::Read), (3, Access::ReadWrite)],
    64,
    size_of::<ElementwiseParams>(),
    0b101,
);

/// `x * scale[c] + shift[c]` for the channel c of each value: a fixed per-channel affine map
/// (a model's input normalisation, `(x - mean) / std` with scale `1 / std` and shift
/// `-mean / std`).
///
/// # Shapes
/// `x`: `[B, C, ...]`, `scale_shift`: `[2, C]` f32 (the scales, then the shifts) → x's shape
/// and dtype
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
    scale_shift.dtype().expect(op, crate::tensor::DType::F32)?;
    let plane = x.numel() / (x.shape()[0] * channels);
    let out = Tensor::uninit_as(x.context(), x.shape(), x.dtype())?;
    let params = ElementwiseParams {
        plane: plane as u32,
        channels: channels as u32,
        ..ElementwiseParams::len(x.numel())
    };
    x.context().dispatch(
        CHANNEL_AFFINE.stored_as(x.dtype()),
        &[],
        &params,
        &[x, scale_shift, &out],
        x.numel() as u64,
    )?;
    Ok(out)
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[
    &BINARY.f32,
    &BINARY.f16,
    &AXPBY.f32,
    &AXPBY.f16,
    &RELU.f32,
    &RELU.f16,
    &CHANNEL_AFFINE.f32,
    &CHANNEL_AFFINE.f16,
];
