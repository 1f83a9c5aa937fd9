//! Pooling (`shaders/pool.wgsl`): max-pool with any square window, stride and padding (the
//! VGG's 2x2 stride 2, a ResNet stem's 3x3 stride 2 padding 1), and global average pooling.

use crate::error::{Error, Result};
use crate::gpu::{Access, KernelSpec, TypedKernel, storage};
use crate::shaders;
use crate::tensor::Tensor;

/// The uniform block of `shaders/pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolParams {
    /// batch * channels.
    planes: u32,
    height: u32,
    width: u32,
    /// Max-pool window side K.
    kernel: u32,
    stride: u32,
    padding: u32,
    out_h: u32,
    out_w: u32,
}

static FORWARD: TypedKernel = TypedKernel::new(
    [&shaders::POOL, &shaders::POOL_F16],
    "forward",
    &storage([Access::Read, Access::Read, Access::ReadWrite]),
    64,
    size_of::<PoolParams>(),
    0b111,
);

static BACKWARD: TypedKernel = TypedKernel::new(
    [&shaders::POOL, &shaders::POOL_F16],
    "backward",
    &storage([Access::Read, Access::Read, Access::ReadWrite]),
    64,
    size_of::<PoolParams>(),
    0b111,
);

static GLOBAL_AVERAGE: TypedKernel = TypedKernel::new(
    [&shaders::POOL, &shaders::POOL_F16],
    "global_average",
    &storage([Access::Read, Access::Read, Access::ReadWrite]),
    64,
    size_of::<PoolParams>(),
    0b111,
);

static GLOBAL_AVERAGE_BACKWARD: TypedKernel = TypedKernel::new(
    [&shaders::POOL, &shaders::POOL_F16],
    "global_average_backward",
    &storage([Access::Read, Access::Read, Access::ReadWrite]),
    64,
    size_of::<PoolParams>(),
    0b111,
);

/// A max-pool window: `kernel` x `kernel`, moved by `stride`, over an input padded by
/// `padding` on each side (padded positions never win), floor mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolWindow {
    /// Window side K.
    pub kernel: usize,
    /// Stride S.
    pub stride: usize,
    /// Padding P, at most K / 2 (as PyTorch requires).
    pub padding: usize,
}

impl PoolWindow {
    /// The VGG's 2x2 window, stride 2, no padding.
    pub const PAIRS: PoolWindow = PoolWindow {
        kernel: 2,
        stride: 2,
        padding: 0,
    };

    /// A ResNet stem's 3x3 window, stride 2, padding 1.
    pub const RESNET_STEM: PoolWindow = PoolWindow {
        kernel: 3,
        stride: 2,
        padding: 1,
    };

    /// The output side for an input side, or None when no window fits.
    pub fn out_side(&self, side: usize) -> Option<usize> {
        let padded = side + 2 * self.padding;
        (self.stride > 0 && padded >= self.kernel).then(|| (padded - self.kernel) / self.stride + 1)
    }

    /// `(height, width)` out for `x`'s `[B, C, H, W]`; the error names `op`, the window and the
    /// shape.
    fn out_dims(&self, op: &'static str, x: &[usize]) -> Result<[usize; 4]> {
        let fits = self.kernel >= 1 && self.stride >= 1 && 2 * self.padding <= self.kernel;
        match (x, fits) {
            (&[b, c, h, w], true) if b * c > 0 => match (self.out_side(h), self.out_side(w)) {
                (Some(oh), Some(ow)) => Ok([b, c, oh, ow]),
                _ => Err(Error::shape(
                    op,
                    format!("a {self:?} does not fit in {x:?}"),
                )),
            },
            (_, false) => Err(Error::InvalidArgument(format!(
                "{op}: {self:?} needs kernel and stride >= 1 and padding <= kernel / 2"
            ))),
            _ => Err(Error::shape(
                op,
                format!("needs [batch, channels, height, width], got {x:?}"),
            )),
        }
    }

    fn params(&self, x: &[usize], out: &[usize; 4]) -> PoolParams {
        PoolParams {
            planes: (x[0] * x[1]) as u32,
            height: x[2] as u32,
            width: x[3] as u32,
            kernel: self.kernel as u32,
            stride: self.stride as u32,
            padding: self.padding as u32,
            out_h: out[2] as u32,
            out_w: out[3] as u32,
        }
    }
}

/// Max-pool over `window`; ties go to the first maximum in row-major order.
///
/// # Shapes
/// `x`: `[B, C, H, W]` → `[B, C, (H + 2P - K) / S + 1, (W + 2P - K) / S + 1]`, of x's dtype
pub fn max_pool(x: &Tensor, window: PoolWindow) -> Result<Tensor> {
    let out = window.out_dims("max_pool", x.shape())?;
    let y = Tensor::uninit_as(x.context(), &out, x.dtype())?;
    let params = window.params(x.shape(), &out);
    x.context().dispatch(
        FORWARD.stored_as(x.dtype()),
        &[],
        &params,
        &[x, x, &y],
        y.numel() as u64,
    )?;
    Ok(y)
}

/// Gradient of [`max_pool`]: each `dy` goes to the position of its window's maximum (recomputed
/// from `x`, so the forward pass stores no indices); overlapping windows add up.
///
/// # Shapes
/// `x`: `[B, C, H, W]`, `dy`: as [`max_pool`]'s output, both of one dtype → `[B, C, H, W]` of it
pub fn max_pool_backward(x: &Tensor, dy: &Tensor, window: PoolWindow) -> Result<Tensor> {
    let out = window.out_dims("max_pool_backward", x.shape())?;
    if dy.shape() != out || dy.dtype() != x.dtype() {
        return Err(Error::shape(
            "max_pool_backward",
            format!("dy is {dy:?}, expected {out:?} of x's dtype for x {x:?} and {window:?}"),
        ));
    }
    let dx = Tensor::uninit_as(x.context(), x.shape(), x.dtype())?;
    let params = window.params(x.shape(), &out);
    x.context().dispatch(
        BACKWARD.stored_as(x.dtype()),
        &[],
        &params,
        &[x, dy, &dx],
        x.numel() as u64,
    )?;
    Ok(dx)
}

/// 2x2 max-pool with stride 2 ([`PoolWindow::PAIRS`]), the VGG's.
///
/// # Shapes
/// `x`: `[B, C, H, W]` → `[B, C, H/2, W/2]`
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    max_pool(x, PoolWindow::PAIRS)
}

/// Gradient of [`max_pool2`].
///
/// # Shapes
/// `x`: `[B, C, H, W]`, `dy`: `[B, C, H/2, W/2]` → `[B, C, H, W]`
pub fn max_pool2_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    max_pool_backward(x, dy, PoolWindow::PAIRS)
}

fn planes(op: &'static str, x: &[usize]) -> Result<(usize, usize, usize, usize)> {
    match *x {
        [b, c, h, w] if b * c * h * w > 0 => Ok((b, c, h, w)),
        _ => Err(Error::shape(
            op,
            format!("needs a non-empty [batch, channels, height, width], got {x:?}"),
        )),
    }
}

/// Global average pooling: the mean of each channel's plane.
///
/// # Shapes
/// `x`: `[B, C, H, W]` → `[B, C]`, of x's dtype
pub fn global_average(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = planes("global_average", x.shape())?;
    let y = Tensor::uninit_as(x.context(), &[b, c], x.dtype())?;
    let params = PoolParams {
        planes: (b * c) as u32,
        height: h as u32,
        width: w as u32,
        ..bytemuck::Zeroable::zeroed()
    };
    x.context().dispatch(
        GLOBAL_AVERAGE.stored_as(x.dtype()),
        &[],
        &params,
        &[x, x, &y],
        (b * c) as u64,
    )?;
    Ok(y)
}

/// Gradient of [`global_average`]: `dy / (H W)` at every pixel of its plane.
///
/// # Shapes
/// `dy`: `[B, C]`, `input`: the input's `[B, C, H, W]` → `[B, C, H, W]`, of dy's dtype
pub fn global_average_backward(dy: &Tensor, input: &[usize]) -> Result<Tensor> {
    let (b, c, h, w) = planes("global_average_backward", input)?;
    if dy.shape() != [b, c] {
        return Err(Error::shape(
            "global_average_backward",
            format!(
                "dy is {:?}, expected [{b}, {c}] for input {input:?}",
                dy.shape()
            ),
        ));
    }
    let dx = Tensor::uninit_as(dy.context(), input, dy.dtype())?;
    let params = PoolParams {
        planes: (b * c) as u32,
        height: h as u32,
        width: w as u32,
        ..bytemuck::Zeroable::zeroed()
    };
    dy.context().dispatch(
        GLOBAL_AVERAGE_BACKWARD.stored_as(dy.dtype()),
        &[],
        &params,
        &[dy, dy, &dx],
        dx.numel() as u64,
    )?;
    Ok(dx)
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[
    &FORWARD.f32,
    &FORWARD.f16,
    &BACKWARD.f32,
    &BACKWARD.f16,
    &GLOBAL_AVERAGE.f32,
    &GLOBAL_AVERAGE.f16,
    &GLOBAL_AVERAGE_BACKWARD.f32,
    &GLOBAL_AVERAGE_BACKWARD.f16,
];
