//! The register-tiled GEMM core (`shaders/gemm_core.wgsl`): one WGSL source serves the conv
//! family's forward pass, input gradient and weight gradient (split-K) and the linear layer's
//! matrix product (whose reductions may be split too, see [`CoreKernel::reduction_splits`]);
//! the role and the tile shape are override constants. Grouped convs and HetConv
//! are a batched product with the group as the batch axis; every shape is accepted (edge tiles
//! are bounds-checked, interior ones are not).
//!
//! The tile shapes and their layout rules are in `tiles.rs`, one kernel's module, override
//! constants and needs of the adapter in `kernel.rs`; this file records the dispatches.

#[cfg(test)]
mod driver_check;
mod kernel;
#[cfg(test)]
mod spirv_check;
mod tiles;

pub use kernel::CoreKernel;
pub use tiles::{COOP_TILES, CoopTile, TILE_SHAPES, TileShape};

use super::conv::pointwise_code;
use super::gemm::Layout;
use crate::conv_kind::{ConvDims, ConvKind, Pointwise};
use crate::error::{Error, Result};
use crate::gpu::{Access, Context, KernelSpec, TypedKernel};
use crate::shaders;
use crate::tensor::{DType, Tensor};
use kernel::{
    GEMM, GEMM_COOP8, GEMM_COOP8_ACT16, GEMM_COOP8_ACT16_QUADS, GEMM_COOP8_QUADS, GEMM_COOP16,
    GEMM_COOP16_ACT16, GEMM_COOP16_ACT16_QUADS, GEMM_COOP16_QUADS, GEMM_F16, GEMM_F16_ACT16,
    GEMM_F16_ACT16_QUADS, GEMM_F16_QUADS, GEMM_QUADS,
};

use Access::{Read, ReadWrite};

/// Tensors: partials, dw3, dw1 (all f32).
static SCATTER: KernelSpec = KernelSpec {
    shader: &shaders::GEMM_CORE,
    entry: "scatter_weight_grad",
    bindings: &[(7, ReadWrite), (8, ReadWrite), (9, ReadWrite)],
    workgroup_size: 256,
    params_size: size_of::<Params>(),
    activations: 0,
};

/// Tensors: bias, dst (an activation), partials.
static SUM_SPLITS: TypedKernel = TypedKernel::new(
    [&shaders::GEMM_CORE, &shaders::GEMM_CORE_F16_ACT16],
    "sum_splits",
    &[(5, Read), (6, ReadWrite), (7, ReadWrite)],
    256,
    size_of::<Params>(),
    0b10,
);

/// The role of one dispatch (the shader's `ROLE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    ConvForward = 0,
    ConvInputGrad = 1,
    ConvWeightGrad = 2,
    Matmul = 3,
}

/// How one dispatch stages its operands: whether neighbouring invocations load neighbouring
/// reduction steps of A and of B (the shader's A_KFAST and B_KFAST), whether A is read 4
/// reduction steps at a time (the `a_quads` modules, where [`CoreKernel::reads_quads`] and the
/// operand's layout allow), and whether the input gradient's B values are gathered for a
/// stride over 1 (the shader's STRIDED: a pipeline of its own, so that the stride-1 pipeline
/// carries no code or registers for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Staging {
    pub role: Role,
    pub a_kfast: bool,
    pub b_kfast: bool,
    pub a_quads: bool,
    pub strided: bool,
}

impl Staging {
    fn new(role: Role, a_kfast: bool, b_kfast: bool) -> Self {
        Self {
            role,
            a_kfast,
            b_kfast,
            a_quads: false,
            strided: false,
        }
    }

    /// For the input gradient of a conv with `stride`: gathered for strides over 1 where it is.
    fn for_stride(self, stride: usize) -> Self {
        Self {
            strided: self.role == Role::ConvInputGrad && stride > 1,
            ..self
        }
    }

    /// With A read in quads where `kernel` can and `aligned` says every row of A comes in
    /// aligned quads of steps in its binding (see A_QUADS in the shader).
    fn quads_if(self, kernel: &CoreKernel, aligned: bool) -> Self {
        Self {
            a_quads: self.a_kfast && aligned && kernel.reads_quads(),
            ..self
        }
    }
}

/// The shader's uniform block.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    cin: u32,
    cout: u32,
    height: u32,
    width: u32,
    groups: u32,
    spatial: u32,
    pointwise: u32,
    has_bias: u32,
    accumulate: u32,
    rows: u32,
    cols: u32,
    red: u32,
    split_len: u32,
    splits: u32,
    tiles_m: u32,
    tiles_n: u32,
    trans_a: u32,
    trans_b: u32,
    cpg: u32,
    opg: u32,
    out_height: u32,
    out_width: u32,
    stride: u32,
}

impl Params {
    fn conv(kind: &ConvKind, d: &ConvDims) -> Self {
        let (oh, ow) = kind.out_hw(d);
        Self {
            batch: d.batch as u32,
            cin: d.cin as u32,
            cout: d.cout as u32,
            height: d.height as u32,
            width: d.width as u32,
            groups: kind.groups as u32,
            spatial: u32::from(kind.spatial()),
            pointwise: pointwise_code(kind.pointwise),
            splits: 1,
            cpg: (d.cin / kind.groups) as u32,
            opg: (d.cout / kind.groups) as u32,
            out_height: oh as u32,
            out_width: ow as u32,
            stride: kind.stride as u32,
            ..Self::default()
        }
    }

    /// Sets the product's size and the tile grid for `tile` (checked first: the grid divides by
    /// its sides).
    fn product(
        mut self,
        kernel: &CoreKernel,
        rows: usize,
        cols: usize,
        red: usize,
    ) -> Result<Self> {
        kernel.check().map_err(|message| Error::Gpu {
            op: "gemm core",
            message,
            source: None,
        })?;
        self.rows = rows as u32;
        self.cols = cols as u32;
        self.red = red as u32;
        self.splits = 1;
        self.split_len = red as u32;
        self.tiles_m = rows.div_ceil(kernel.rows() as usize) as u32;
        self.tiles_n = cols.div_ceil(kernel.cols() as usize) as u32;
        Ok(self)
    }

    /// Splits the reduction as [`CoreKernel::reduction_splits`] says (partials within one
    /// binding of `ctx`); returns the partial products' shape `[splits, groups * rows, cols]`.
    fn split(&mut self, kernel: &CoreKernel, ctx: &Context) -> [usize; 3] {
        let all_rows = self.groups.max(1) as usize * self.rows as usize;
        let (splits, split_len) = kernel.reduction_splits(
            (
                self.groups.max(1) as usize,
                self.rows as usize,
                self.cols as usize,
            ),
            self.red as usize,
            ctx.max_binding_bytes(),
        );
        self.splits = splits as u32;
        self.split_len = split_len as u32;
        [splits, all_rows, self.cols as usize]
    }

    fn workgroups(&self) -> u64 {
        u64::from(self.tiles_m)
            * u64::from(self.tiles_n)
            * u64::from(self.groups.max(1))
            * u64::from(self.splits)
    }
}

/// The reduction space of one group's product in the forward direction (`channels` = cin) or
/// the input-gradient direction (`channels` = cout): own-block spatial taps, then 1x1 channels.
pub(crate) fn reduction_len(kind: &ConvKind, channels: usize) -> usize {
    let k3 = channels / kind.groups * kind.taps();
    let kp = match kind.pointwise {
        Pointwise::None => 0,
        Pointwise::Dense => channels,
        Pointwise::Masked => channels - channels / kind.groups,
    };
    k3 + kp
}

/// Records one dispatch of the core in `role`, with the conv geometry of `kind` (None for the
/// matrix product), on activations stored as the dtype of `buffers[0]`. The kernel is checked
/// against the device here (features, subgroups, limits): wgpu 30 does not check a workgroup
/// size or workgroup array given by override constants. With the shape checks of the callers
/// (no zero-sized dimension, groups dividing the channels, a kind that passed
/// [`ConvKind::check`]) this upholds the host's side of the bounds argument in
/// `shaders/gemm_core.wgsl`.
fn dispatch(
    ctx: &Context,
    kernel: &CoreKernel,
    staging: Staging,
    kind: Option<&ConvKind>,
    p: &Params,
    buffers: &[&Tensor],
) -> Result<()> {
    if p.rows == 0 || p.cols == 0 {
        // No output (and tiles_m or tiles_n would be a zero divisor in the shader).
        return Ok(());
    }
    kernel.runnable(ctx)?;
    let mut constants = kernel.constants(ctx.subgroup_sizes().0, staging);
    if let Some(kind) = kind {
        constants.push(super::conv::kernel_constant(kind));
    }
    let activations = buffers[0].dtype();
    ctx.dispatch_labelled(
        &|| kernel.profile_name(staging.role as u32, activations, staging.a_quads),
        kernel.spec(activations, staging.a_quads),
        kernel.threads(),
        &constants,
        p,
        buffers,
        p.workgroups(),
    )
}

/// Records the conv forward pass (`src` = x, `out` = y) or the input gradient (`src` = dy,
/// `out` = dx) with `kernel`, its reduction split over workgroups where `split` asks and the
/// product allows (see [`CoreKernel::reduction_splits`]).
///
/// # Shapes
/// as [`super::conv::forward_into`] and [`super::conv::backward_input`]
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_forward_or_input_grad(
    input_grad: bool,
    (kernel, split): (&CoreKernel, bool),
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
    let (oh, ow) = kind.out_hw(d);
    let (role, rows, channels, pixels) = if input_grad {
        (Role::ConvInputGrad, d.cin, d.cout, d.height * d.width)
    } else {
        (Role::ConvForward, d.cout, d.cin, oh * ow)
    };
    let mut p = Params::conv(kind, d).product(
        kernel,
        rows / kind.groups,
        d.batch * pixels,
        reduction_len(kind, channels),
    )?;
    p.has_bias = u32::from(bias.is_some());
    p.accumulate = u32::from(accumulate);
    let spare_act = match src.dtype() {
        DType::F32 => spare.clone(),
        dtype => super::placeholder_as(src.context(), dtype)?,
    };
    let bias = bias.unwrap_or(spare);
    let operands = [src, &spare_act, w3, w1, bias];
    // The forward pass's A rows (a filter's own-block taps, then its 1x1 channels) come in
    // aligned quads where each part's row length and the masked block's edges are multiples
    // of 4: cpg is (then so is cin = cpg * groups).
    let quads = role == Role::ConvForward && (d.cin / kind.groups).is_multiple_of(4);
    split_or_whole(
        (kernel, split),
        Staging::new(role, true, false)
            .quads_if(kernel, quads)
            .for_stride(kind.stride),
        Some(kind),
        &mut p,
        &operands,
        out,
    )
}

/// Records the product of `p` (roles 0, 1, 3) into `out` with `kernel`: in one pass, or where
/// `split` asks and the product gives more than one split, as split partial products that
/// `sum_splits` then adds in a fixed order and writes through the epilogue. `operands` are
/// the tensors of bindings 1 to 5 (src, src2, w3, w1, bias).
fn split_or_whole(
    (kernel, split): (&CoreKernel, bool),
    staging: Staging,
    kind: Option<&ConvKind>,
    p: &mut Params,
    operands: &[&Tensor; 5],
    out: &Tensor,
) -> Result<()> {
    let ctx = out.context();
    let shape = if split && p.rows > 0 && p.cols > 0 {
        p.split(kernel, ctx)
    } else {
        [1, 0, 0]
    };
    let [src, src2, w3, w1, bias] = *operands;
    if shape[0] == 1 {
        // One split: `p` still holds the whole reduction (`reduction_splits` gave (1, red)).
        // Bound read-write: not a buffer that is also bound read-only.
        let no_partials = super::placeholder(ctx)?;
        return dispatch(
            ctx,
            kernel,
            staging,
            kind,
            p,
            &[src, src2, w3, w1, bias, out, &no_partials],
        );
    }
    let partials = Tensor::uninit(ctx, &shape)?;
    // Not written in the split pass: a placeholder of `out`'s dtype (bound read-write).
    let no_dst = super::placeholder_as(ctx, out.dtype())?;
    dispatch(
        ctx,
        kernel,
        staging,
        kind,
        p,
        &[src, src2, w3, w1, bias, &no_dst, &partials],
    )?;
    let mut constants = vec![("ROLE", f64::from(staging.role as u32))];
    constants.extend(kind.map(super::conv::kernel_constant));
    let outputs = (shape[1] * shape[2]) as u64;
    ctx.dispatch_labelled(
        &|| sum_splits_profile_name(staging.role as u32, out.dtype()),
        SUM_SPLITS.stored_as(out.dtype()),
        256,
        &constants,
        &*p,
        &[bias, out, &partials],
        outputs.div_ceil(256),
    )
}

/// How a profile names the pass that adds a split reduction's partial products in `role` (0
/// forward, 1 input gradient, 3 matrix product) on activations stored as `activations`:
/// `gemm_core::sum_splits[role 0]`.
pub fn sum_splits_profile_name(role: u32, activations: DType) -> String {
    let spec = SUM_SPLITS.stored_as(activations);
    format!("{}::{}[role {role}]", spec.shader.name, spec.entry)
}

/// Records the weight gradients into `dw3` / `dw1` (either may be a placeholder when the kind
/// has no such part): split-K partial products over slices of the output pixels, then a
/// fixed-order sum and scatter (deterministic, no atomics).
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `dy`: `[B, N, OH, OW]` → `dw3`: `[N, M/G, K, K]`, `dw1`: `[N, M]`
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_weight_grad(
    kernel: &CoreKernel,
    kind: &ConvKind,
    d: &ConvDims,
    x: &Tensor,
    dy: &Tensor,
    dw3: &Tensor,
    dw1: &Tensor,
    spare: &Tensor,
) -> Result<()> {
    let ctx = x.context();
    let space = reduction_len(kind, d.cin);
    let outputs = d.cout * d.cin / kind.groups * kind.taps()
        + if kind.pointwise == Pointwise::None {
            0
        } else {
            d.cout * d.cin
        };
    let (oh, ow) = kind.out_hw(d);
    let pixels = d.batch * oh * ow;
    let mut p = Params::conv(kind, d).product(kernel, d.cout / kind.groups, space, pixels)?;
    if space == 0 {
        // A masked 1x1 conv with one part: every weight is masked, every gradient exactly zero.
        return ctx.dispatch_workgroups(
            &SCATTER,
            256,
            &[super::conv::kernel_constant(kind)],
            &p,
            &[spare, dw3, dw1],
            outputs.div_ceil(256) as u64,
        );
    }
    // Enough workgroups to fill a GPU (role 2 always writes partial products, one split or
    // more).
    let shape = p.split(kernel, ctx);
    let bytes = (shape.iter().product::<usize>() * 4) as u64;
    if bytes > ctx.max_binding_bytes() {
        return Err(Error::Limit {
            op: "conv backward_weight",
            limit: "max_storage_buffer_binding_size",
            asked: bytes,
            allowed: ctx.max_binding_bytes(),
        });
    }
    let partials = Tensor::uninit(ctx, &shape)?;
    // Bound read-write: not a buffer that is also bound read-only.
    let no_dst = super::placeholder_as(ctx, x.dtype())?;
    // A is dy, a row per filter along the pixels of the batch: aligned quads of pixels in one
    // image where the output plane is a multiple of 4.
    let quads = (oh * ow).is_multiple_of(4);
    dispatch(
        ctx,
        kernel,
        Staging::new(Role::ConvWeightGrad, true, true).quads_if(kernel, quads),
        Some(kind),
        &p,
        &[x, dy, spare, spare, spare, &no_dst, &partials],
    )?;
    ctx.dispatch_workgroups(
        &SCATTER,
        256,
        &[super::conv::kernel_constant(kind)],
        &p,
        &[&partials, dw3, dw1],
        outputs.div_ceil(256) as u64,
    )
}

/// Records `out (+)= op(a) @ op(b) (+ bias)` with `kernel`, its reduction split over
/// workgroups where `split` asks and the product allows.
///
/// # Shapes
/// `op(a)`: `[m, k]`, `op(b)`: `[k, n]`, `bias`: `[n]`, `out`: `[m, n]`
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    (kernel, split): (&CoreKernel, bool),
    a: &Tensor,
    la: Layout,
    b: &Tensor,
    lb: Layout,
    bias: Option<&Tensor>,
    out: &Tensor,
    accumulate: bool,
    (m, k, n): (usize, usize, usize),
    spare: &Tensor,
) -> Result<()> {
    let (trans_a, trans_b) = (la == Layout::Transposed, lb == Layout::Transposed);
    let mut p = Params {
        groups: 1,
        has_bias: u32::from(bias.is_some()),
        accumulate: u32::from(accumulate),
        trans_a: u32::from(trans_a),
        trans_b: u32::from(trans_b),
        ..Params::default()
    }
    .product(kernel, m, n, k)?;
    p.batch = 1;
    split_or_whole(
        (kernel, split),
        Staging::new(Role::Matmul, !trans_a, trans_b),
        None,
        &mut p,
        &[a, b, spare, spare, bias.unwrap_or(spare)],
        out,
    )
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[
    &GEMM,
    &GEMM_F16,
    &GEMM_COOP8,
    &GEMM_COOP16,
    &GEMM_F16_ACT16,
    &GEMM_COOP8_ACT16,
    &GEMM_COOP16_ACT16,
    &GEMM_QUADS,
    &GEMM_F16_QUADS,
    &GEMM_COOP8_QUADS,
    &GEMM_COOP16_QUADS,
    &GEMM_F16_ACT16_QUADS,
    &GEMM_COOP8_ACT16_QUADS,
    &GEMM_COOP16_ACT16_QUADS,
    &SCATTER,
    &SUM_SPLITS.f32,
    &SUM_SPLITS.f16,
];
