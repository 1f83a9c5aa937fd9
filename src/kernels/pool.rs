//! 2x2 max-pooling (`shaders/pool.wgsl`).

use crate::error::{Error, Result};
use crate::gpu::{Access, KernelSpec, storage};
use crate::shaders;
use crate::tensor::Tensor;

static FORWARD: KernelSpec = KernelSpec {
    shader: &shaders::POOL,
    entry: "forward",
    bindings: &storage([Access::Read, Access::Read, Access::ReadWrite]),
    workgroup_size: 64,
};

static BACKWARD: KernelSpec = KernelSpec {
    shader: &shaders::POOL,
    entry: "backward",
    bindings: &storage([Access::Read, Access::Read, Access::ReadWrite]),
    workgroup_size: 64,
};

fn dims(op: &'static str, x: &[usize]) -> Result<(usize, usize, usize, usize)> {
    match *x {
        [b, c, h, w] if h >= 2 && w >= 2 => Ok((b, c, h, w)),
        _ => Err(Error::shape(
            op,
            format!("needs [batch, channels, height >= 2, width >= 2], got {x:?}"),
        )),
    }
}

/// 2x2 max-pool with stride 2, floor mode; ties go to the first maximum in row-major order.
///
/// # Shapes
/// `x`: `[B, C, H, W]` → `[B, C, H/2, W/2]`
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = dims("max_pool2", x.shape())?;
    let y = Tensor::uninit(x.context(), &[b, c, h / 2, w / 2])?;
    let params = [(b * c) as u32, h as u32, w as u32];
    x.context()
        .dispatch(&FORWARD, &[], &params, &[x, x, &y], y.numel() as u64)?;
    Ok(y)
}

/// Gradient of [`max_pool2`]: `dy` goes to the position of each window's maximum (recomputed
/// from `x`, so the forward pass stores no indices).
///
/// # Shapes
/// `x`: `[B, C, H, W]`, `dy`: `[B, C, H/2, W/2]` → `[B, C, H, W]`
pub fn max_pool2_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = dims("max_pool2_backward", x.shape())?;
    if dy.shape() != [b, c, h / 2, w / 2] {
        return Err(Error::shape(
            "max_pool2_backward",
            format!(
                "dy is {:?}, expected [{b}, {c}, {}, {}] for x {:?}",
                dy.shape(),
                h / 2,
                w / 2,
                x.shape()
            ),
        ));
    }
    let dx = Tensor::uninit(x.context(), x.shape())?;
    let params = [(b * c) as u32, h as u32, w as u32];
    x.context()
        .dispatch(&BACKWARD, &[], &params, &[x, dy, &dx], x.numel() as u64)?;
    Ok(dx)
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[&FORWARD, &BACKWARD];
