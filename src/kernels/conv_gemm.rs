//! The conv family as a tiled implicit GEMM (`shaders/conv_gemm.wgsl`): forward, input gradient
//! and weight gradient from one WGSL source, the role an override constant. Used when every tile
//! of rows fits in one group (at least 4 rows per group); [`super::conv`] falls back to its
//! direct kernels otherwise.

use super::conv::{ConvDims, ConvKind, Pointwise};
use crate::error::{Error, Result};
use crate::gpu::{Access, KernelSpec};
use crate::shaders;
use crate::tensor::Tensor;

use Access::{Read, ReadWrite};

static GEMM: KernelSpec = KernelSpec {
    shader: &shaders::CONV_GEMM,
    entry: "gemm",
    bindings: &[
        (1, Read),
        (2, Read),
        (3, Read),
        (4, Read),
        (5, Read),
        (6, ReadWrite),
    ],
    workgroup_size: 256,
};

static SCATTER: KernelSpec = KernelSpec {
    shader: &shaders::CONV_GEMM,
    entry: "scatter_weight_grad",
    bindings: &[(1, Read), (6, ReadWrite), (7, ReadWrite)],
    workgroup_size: 256,
};

/// Columns per tile and reduction chunk (`TN`, `KC` in the shader).
const TILE_COLS: usize = 64;
const CHUNK: usize = 16;

/// The role of one GEMM dispatch (the shader's `ROLE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Forward = 0,
    InputGrad = 1,
    WeightGrad = 2,
}

/// Rows per tile: the largest of 64, 32, 16, 8, 4 dividing the rows of one group.
pub(crate) fn tile_rows(rows_per_group: usize) -> Option<usize> {
    [64, 32, 16, 8, 4]
        .into_iter()
        .find(|t| rows_per_group.is_multiple_of(*t))
}

fn params(
    kind: &ConvKind,
    d: &ConvDims,
    has_bias: bool,
    accumulate: bool,
    splits: usize,
    split_len: usize,
) -> [u32; 12] {
    let pointwise = match kind.pointwise {
        Pointwise::None => 0,
        Pointwise::Dense => 1,
        Pointwise::Masked => 2,
    };
    [
        d.batch as u32,
        d.cin as u32,
        d.cout as u32,
        d.height as u32,
        d.width as u32,
        kind.groups as u32,
        u32::from(kind.kernel3),
        pointwise,
        u32::from(has_bias),
        u32::from(accumulate),
        splits as u32,
        split_len as u32,
    ]
}

/// Size of a row's reduction space in the forward direction: own-block 3x3 taps + 1x1 taps.
fn forward_space(kind: &ConvKind, d: &ConvDims) -> usize {
    let k3 = if kind.kernel3 {
        d.cin / kind.groups * 9
    } else {
        0
    };
    let kp = match kind.pointwise {
        Pointwise::None => 0,
        Pointwise::Dense => d.cin,
        Pointwise::Masked => d.cin - d.cin / kind.groups,
    };
    k3 + kp
}

/// Records the forward pass (`Role::Forward`) or the input gradient (`Role::InputGrad`):
/// `src` is x or dy, `out` is y or dx. `tm` rows per tile.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_or_input_grad(
    role: Role,
    tm: usize,
    kind: &ConvKind,
    d: &ConvDims,
    src: &Tensor,
    w3: &Tensor,
    w1: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
    accumulate: bool,
    spare: &Tensor,
) -> Result<()> {
    let rows = if role == Role::InputGrad {
        d.cin
    } else {
        d.cout
    };
    let pixels = d.batch * d.height * d.width;
    let workgroups = (rows / tm) * pixels.div_ceil(TILE_COLS);
    let wg = (tm / 4 * TILE_COLS / 4) as u32;
    src.context().dispatch_workgroups(
        &GEMM,
        wg,
        &[("TM", tm as f64), ("ROLE", role as u32 as f64)],
        &params(kind, d, bias.is_some(), accumulate, 1, 0),
        &[src, spare, w3, w1, bias.unwrap_or(spare), out],
        workgroups as u64,
    )
}

/// Records the weight gradients into `dw3` / `dw1` (either may be a placeholder when the kind
/// has no such part): split-K partial products, then a fixed-order sum and scatter.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_grad(
    tm: usize,
    kind: &ConvKind,
    d: &ConvDims,
    x: &Tensor,
    dy: &Tensor,
    dw3: &Tensor,
    dw1: &Tensor,
    spare: &Tensor,
) -> Result<()> {
    let ctx = x.context();
    let space = forward_space(kind, d);
    let outputs = if kind.kernel3 {
        d.cout * d.cin / kind.groups * 9
    } else {
        0
    } + if kind.pointwise == Pointwise::None {
        0
    } else {
        d.cout * d.cin
    };
    if space == 0 {
        // A masked 1x1 conv with one part: every weight is masked, every gradient exactly zero.
        let p = params(kind, d, false, false, 1, 0);
        return ctx.dispatch_workgroups(
            &SCATTER,
            256,
            &[("ROLE", Role::WeightGrad as u32 as f64)],
            &p,
            &[spare, dw3, dw1],
            outputs.div_ceil(256) as u64,
        );
    }
    let pixels = d.batch * d.height * d.width;
    let tiles = (d.cout / tm) * space.div_ceil(TILE_COLS);
    let max_splits = pixels.div_ceil(CHUNK * 4).max(1);
    let fits = (ctx.max_binding_bytes() as usize / (d.cout * space * 4).max(1)).max(1);
    let wanted = 1024usize.div_ceil(tiles).clamp(1, max_splits).min(fits);
    let split_len = pixels.div_ceil(wanted).div_ceil(CHUNK) * CHUNK;
    let splits = pixels.div_ceil(split_len);
    if d.cout * space * splits * 4 > ctx.max_binding_bytes() as usize {
        return Err(Error::Limit {
            op: "conv backward_weight",
            limit: "max_storage_buffer_binding_size",
            asked: (d.cout * space * splits * 4) as u64,
            allowed: ctx.max_binding_bytes(),
        });
    }
    let partials = Tensor::uninit(ctx, &[splits, d.cout, space])?;
    let p = params(kind, d, false, false, splits, split_len);
    ctx.dispatch_workgroups(
        &GEMM,
        (tm / 4 * TILE_COLS / 4) as u32,
        &[("TM", tm as f64), ("ROLE", Role::WeightGrad as u32 as f64)],
        &p,
        &[x, dy, spare, spare, spare, &partials],
        (tiles * splits) as u64,
    )?;
    ctx.dispatch_workgroups(
        &SCATTER,
        256,
        &[("ROLE", Role::WeightGrad as u32 as f64)],
        &p,
        &[&partials, dw3, dw1],
        outputs.div_ceil(256) as u64,
    )
}
