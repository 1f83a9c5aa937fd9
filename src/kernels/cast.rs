//! Conversions between f32 and f16 storage (`shaders/cast.wgsl`): where mixed precision's f16
//! activations meet f32 ones (a model's input, a head kept in f32).

use crate::error::Result;
use crate::gpu::{Access, KernelSpec};
use crate::shaders;
use crate::tensor::{DType, Tensor};

/// The uniform block of `shaders/cast.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CastParams {
    len: u32,
}

static TO_F16: KernelSpec = KernelSpec {
    shader: &shaders::CAST,
    entry: "to_f16",
    bindings: &[(1, Access::Read), (2, Access::ReadWrite)],
    workgroup_size: 64,
    params_size: size_of::<CastParams>(),
    activations: 0b10,
};

static TO_F32: KernelSpec = KernelSpec {
    shader: &shaders::CAST,
    entry: "to_f32",
    bindings: &[(3, Access::Read), (4, Access::ReadWrite)],
    workgroup_size: 64,
    params_size: size_of::<CastParams>(),
    activations: 0b01,
};

/// `x` stored as `dtype`: a new tensor (f32 -> f16 rounds each value to a neighbouring f16,
/// f16 -> f32 is exact), or a clone sharing x's buffer when x already is.
///
/// # Shapes
/// `x`: any → the same shape
pub fn to_dtype(x: &Tensor, dtype: DType) -> Result<Tensor> {
    if x.dtype() == dtype {
        return Ok(x.clone());
    }
    let out = Tensor::uninit_as(x.context(), x.shape(), dtype)?;
    cast_into(x, &out)?;
    Ok(out)
}

/// Records `out = x`, converted to out's dtype (a plain copy when the dtypes agree).
///
/// # Shapes
/// `x`, `out`: the same number of elements
pub fn cast_into(x: &Tensor, out: &Tensor) -> Result<()> {
    super::same_context("cast", &[x, out])?;
    if x.numel() != out.numel() {
        return Err(crate::error::Error::shape(
            "cast",
            format!("cannot convert {x:?} into {out:?}"),
        ));
    }
    let spec = match (x.dtype(), out.dtype()) {
        (DType::F32, DType::F16) => &TO_F16,
        (DType::F16, DType::F32) => &TO_F32,
        _ => return x.copy_to(out),
    };
    let params = CastParams {
        len: x.numel() as u32,
    };
    x.context()
        .dispatch(spec, &[], &params, &[x, out], x.numel() as u64)
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[&TO_F16, &TO_F32];
