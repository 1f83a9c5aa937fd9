//! The heterogeneous convolution family on the GPU (`shaders/conv.wgsl`,
//! `shaders/conv_weight_grad.wgsl`, and the GEMM core): standard, grouped and depthwise K x K
//! convs (a ResNet stem's 7x7 among them), 1x1 convs, HetConv's masked pointwise conv, and the
//! fused HetConv layer, each with any stride, each with forward, input gradient and weight
//! gradient.
//!
//! All members share one description, [`ConvKind`] (in [`crate::conv_kind`], re-exported here
//! with its sizes and weights): an optional spatial part, an optional 1x1 part that is dense or
//! masked in HetConv's block layout, and one stride for both.

use super::gemm_core::{self, reduction_len};
use super::{cast, placeholder, reduce, same_context};
use crate::error::{Error, Result};
use crate::gpu::Precision;
use crate::gpu::{Access, Context, KernelSpec, storage};
use crate::shaders;
use crate::tensor::{DType, Tensor};
use crate::tune::{self, Pass, Problem, Variant};

pub use crate::conv_kind::{ConvDims, ConvKind, ConvWeights, Pointwise};

const CONV_BINDINGS: &[(u32, Access)] = &storage([
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
]);

static FORWARD: KernelSpec = KernelSpec {
    shader: &shaders::CONV,
    entry: "forward",
    bindings: CONV_BINDINGS,
    workgroup_size: 64,
    params_size: size_of::<DirectParams>(),
    activations: 0,
};

static BACKWARD_INPUT: KernelSpec = KernelSpec {
    shader: &shaders::CONV,
    entry: "backward_input",
    bindings: CONV_BINDINGS,
    workgroup_size: 64,
    params_size: size_of::<DirectParams>(),
    activations: 0,
};

static WEIGHT_GRAD: KernelSpec = KernelSpec {
    shader: &shaders::CONV_WEIGHT_GRAD,
    entry: "weight_grad",
    bindings: &storage([
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
    ]),
    workgroup_size: 64,
    params_size: size_of::<WeightGradParams>(),
    activations: 0,
};

/// The tuner's key of one pass of one layer: the pass, groups, the spatial kernel side (0:
/// none) and stride, the 1x1 part, batch, channels and input map size, e.g. `conv_forward g4 k3
/// s1 pw=Masked b16 64->64 32x32` (the tuner adds the precision: `... 32x32 f32`).
pub fn tune_key(pass: Pass, kind: &ConvKind, d: &ConvDims) -> String {
    format!(
        "{} g{} k{} s{} pw={:?} b{} {}->{} {}x{}",
        pass.name(),
        kind.groups,
        kind.kernel,
        kind.stride,
        kind.pointwise,
        d.batch,
        d.cin,
        d.cout,
        d.height,
        d.width
    )
}

/// The tuner's key and problem for one pass of one layer on activations stored as
/// `activations` (f16 ones run in mixed precision whatever the context's: they are f16
/// operands already).
fn tuning(pass: Pass, kind: &ConvKind, d: &ConvDims, activations: DType) -> (String, Problem) {
    let (oh, ow) = kind.out_hw(d);
    let g = kind.groups;
    let (rows, cols, depth) = match pass {
        Pass::ConvInputGrad => (
            d.cin / g,
            d.batch * d.height * d.width,
            reduction_len(kind, d.cout),
        ),
        Pass::ConvWeightGrad => (d.cout / g, reduction_len(kind, d.cin), d.batch * oh * ow),
        _ => (d.cout / g, d.batch * oh * ow, reduction_len(kind, d.cin)),
    };
    // Activations stored as f16 are read and written differently: a key of their own.
    let key = match activations {
        DType::F32 => tune_key(pass, kind, d),
        DType::F16 => format!("{} act=f16", tune_key(pass, kind, d)),
    };
    let problem = Problem {
        pass,
        // The tuner's `choose` raises it to the context's.
        precision: match activations {
            DType::F32 => Precision::F32,
            DType::F16 => Precision::Mixed,
        },
        groups: g,
        rows,
        cols,
        depth,
    };
    (key, problem)
}

/// The kernels' code of a 1x1 part (`Params.pointwise` in `conv.wgsl`, `conv_weight_grad.wgsl`
/// and `gemm_core.wgsl`).
pub(crate) fn pointwise_code(pointwise: Pointwise) -> u32 {
    match pointwise {
        Pointwise::None => 0,
        Pointwise::Dense => 1,
        Pointwise::Masked => 2,
    }
}

/// Channels per invocation: the largest of 4, 2, 1 dividing the channels of one block.
fn channel_tile(per_group: usize) -> u32 {
    [4, 2, 1]
        .into_iter()
        .find(|t| per_group.is_multiple_of(*t))
        .unwrap_or(1) as u32
}

/// The override constant of `include/conv_geometry.wgsl`: the spatial kernel's side (1 for a
/// layer without a spatial part).
pub(crate) fn kernel_constant(kind: &ConvKind) -> (&'static str, f64) {
    ("KS", kind.kernel.max(1) as f64)
}

/// The direct kernels' geometry constants: the kernel side and the stride.
fn direct_constants(kind: &ConvKind) -> [(&'static str, f64); 2] {
    [kernel_constant(kind), ("ST", kind.stride as f64)]
}

/// `conv.wgsl`'s uniform block.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DirectParams {
    batch: u32,
    cin: u32,
    cout: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    groups: u32,
    spatial: u32,
    pointwise: u32,
    has_bias: u32,
    accumulate: u32,
    splits: u32,
    split_len: u32,
}

impl DirectParams {
    fn new(
        kind: &ConvKind,
        d: &ConvDims,
        has_bias: bool,
        accumulate: bool,
        split: &SourceSplit,
    ) -> Self {
        let (oh, ow) = kind.out_hw(d);
        Self {
            batch: d.batch as u32,
            cin: d.cin as u32,
            cout: d.cout as u32,
            height: d.height as u32,
            width: d.width as u32,
            out_height: oh as u32,
            out_width: ow as u32,
            groups: kind.groups as u32,
            spatial: u32::from(kind.spatial()),
            pointwise: pointwise_code(kind.pointwise),
            has_bias: u32::from(has_bias),
            accumulate: u32::from(accumulate),
            splits: split.splits as u32,
            split_len: split.len as u32,
        }
    }
}

/// How the direct kernels cut their list of sources (block channels with spatial taps, then
/// pointwise channels) so that small layers still launch enough invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SourceSplit {
    splits: usize,
    len: usize,
}

impl SourceSplit {
    /// `sources` in the list; `invocations` without splitting.
    fn choose(ctx: &Context, sources: usize, invocations: usize) -> Self {
        let wanted = ctx
            .conv_min_invocations()
            .div_ceil(invocations.max(1) as u64) as usize;
        // At least 8 sources per slice, so that a slice's work outweighs its partial write.
        let splits = wanted.clamp(1, sources.div_ceil(8).max(1));
        let len = sources.div_ceil(splits).max(1);
        Self {
            splits: sources.div_ceil(len).max(1),
            len,
        }
    }
}

/// Sources of one output row in the forward direction (`rows = cin`) or of one input channel
/// in the input-gradient direction (`rows = cout`): a block's spatial sources, then 1x1 ones.
fn source_count(kind: &ConvKind, rows: usize) -> usize {
    let block = if kind.spatial() {
        rows / kind.groups
    } else {
        0
    };
    let pointwise = match kind.pointwise {
        Pointwise::None => 0,
        Pointwise::Dense => rows,
        Pointwise::Masked => rows - rows / kind.groups,
    };
    block + pointwise
}

/// Records a direct-kernel dispatch that writes `out` (`channels` planes of `(rows, cols)`
/// pixels per image), adding to it when `accumulate`, through per-slice partials and a
/// fixed-order sum when the sources are split.
#[allow(clippy::too_many_arguments)]
fn direct(
    spec: &KernelSpec,
    kind: &ConvKind,
    d: &ConvDims,
    (channels, rows, cols): (usize, usize, usize),
    sources: usize,
    src: &Tensor,
    w3: &Tensor,
    w1: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
    accumulate: bool,
    spare: &Tensor,
) -> Result<()> {
    let ctx = src.context();
    let ot = channel_tile(channels / kind.groups);
    let pt = cols.min(4);
    let invocations = d.batch * (channels / ot as usize) * rows * cols.div_ceil(pt);
    let split = SourceSplit::choose(ctx, sources, invocations);
    let partials = if split.splits > 1 {
        Some(Tensor::uninit(ctx, &[split.splits, out.numel()])?)
    } else {
        None
    };
    let [ks, st] = direct_constants(kind);
    let params = DirectParams::new(
        kind,
        d,
        bias.is_some(),
        accumulate && partials.is_none(),
        &split,
    );
    ctx.dispatch(
        spec,
        &[("OT", f64::from(ot)), ("PT", pt as f64), ks, st],
        &params,
        &[
            src,
            w3,
            w1,
            bias.unwrap_or(spare),
            partials.as_ref().unwrap_or(out),
        ],
        (invocations * split.splits) as u64,
    )?;
    match &partials {
        Some(partials) => reduce::sum_splits(partials, split.splits, out, accumulate),
        None => Ok(()),
    }
}

/// Whether `variant` reads and writes f16 activations itself: the GEMM core's mixed-precision
/// kernels do; the direct kernels and the f32 tiles read f32.
fn reads_f16(variant: Variant) -> bool {
    variant.core().is_some_and(|kernel| kernel.is_mixed())
}

/// Runs `pass` (a variant that reads and writes f32, see [`reads_f16`]) on f16 activations:
/// `input` widened to f32, the pass into an f32 output (holding `out`'s values when it
/// `accumulate`s), the result rounded into `out`. Two extra passes over the data: such a variant
/// meets f16 activations only where it is forced (`ConvAlgorithm::Direct` or a fixed f32
/// tile), since mixed precision otherwise runs the core's mixed kernels.
fn widened(
    input: &Tensor,
    out: &Tensor,
    accumulate: bool,
    pass: impl FnOnce(&Tensor, &Tensor) -> Result<()>,
) -> Result<()> {
    let input32 = cast::to_dtype(input, DType::F32)?;
    let out32 = if accumulate {
        cast::to_dtype(out, DType::F32)?
    } else {
        Tensor::uninit(out.context(), out.shape())?
    };
    pass(&input32, &out32)?;
    cast::cast_into(&out32, out)
}

/// Binds `Some(tensor)` or a placeholder.
fn bound<'a>(t: Option<&'a Tensor>, spare: &'a Tensor) -> &'a Tensor {
    t.unwrap_or(spare)
}

/// Forward pass: `y = conv_KxK(x, w3, groups, stride) + conv1x1(x, w1 [masked], stride) + bias`.
///
/// # Shapes
/// `x`: `[B, M, H, W]` (f32 or f16), `w3`: `[N, M/G, K, K]`, `w1`: `[N, M]`, `bias`: `[N]` (f32) →
/// `[B, N, OH, OW]` of x's dtype, with `OH = (H - 1) / stride + 1` (likewise OW)
pub fn forward(kind: &ConvKind, x: &Tensor, w: &ConvWeights) -> Result<Tensor> {
    let d = kind.dims("conv forward", x.shape(), w)?;
    let y = Tensor::uninit_as(x.context(), &kind.out_shape(&d), x.dtype())?;
    forward_into(kind, x, w, &y, false)?;
    Ok(y)
}

/// Forward pass into `y`, adding to its contents when `accumulate` is set (the unfused HetConv
/// adds its masked 1x1 part to the grouped 3x3 part this way).
///
/// # Shapes
/// as [`forward`]; `y`: `[B, N, OH, OW]`
pub fn forward_into(
    kind: &ConvKind,
    x: &Tensor,
    w: &ConvWeights,
    y: &Tensor,
    accumulate: bool,
) -> Result<()> {
    let op = "conv forward";
    let d = kind.dims(op, x.shape(), w)?;
    if y.shape() != kind.out_shape(&d) || y.dtype() != x.dtype() {
        return Err(Error::shape(
            op,
            format!(
                "output is {y:?}, expected {:?} of x's dtype ({})",
                kind.out_shape(&d),
                x.dtype()
            ),
        ));
    }
    let mut all = vec![x, y];
    all.extend(w.w3.iter().chain(w.w1.iter()).chain(w.bias.iter()).copied());
    same_context(op, &all)?;
    let ctx = x.context();
    let (key, problem) = tuning(Pass::ConvForward, kind, &d, x.dtype());
    let variant = tune::choose(ctx, &problem, &key, |v| {
        let scratch = Tensor::uninit_as(ctx, y.shape(), y.dtype())?;
        // Zeroed: an accumulating pass adds to it, and the tuner compares the results.
        scratch.fill_zero();
        forward_with(v, kind, &d, x, w, &scratch, accumulate)?;
        Ok(vec![scratch])
    })?;
    forward_with(variant, kind, &d, x, w, y, accumulate)
}

pub(crate) fn forward_with(
    variant: Variant,
    kind: &ConvKind,
    d: &ConvDims,
    x: &Tensor,
    w: &ConvWeights,
    y: &Tensor,
    accumulate: bool,
) -> Result<()> {
    if x.dtype() == DType::F16 && !reads_f16(variant) {
        return widened(x, y, accumulate, |x32, y32| {
            forward_with(variant, kind, d, x32, w, y32, accumulate)
        });
    }
    let spare = placeholder(x.context())?;
    let (w3, w1) = (bound(w.w3, &spare), bound(w.w1, &spare));
    match variant.core() {
        Some(kernel) => gemm_core::conv_forward_or_input_grad(
            false,
            (&kernel, variant.splits_reduction()),
            kind,
            d,
            x,
            w3,
            w1,
            w.bias,
            y,
            accumulate,
            &spare,
        ),
        None => {
            let (oh, ow) = kind.out_hw(d);
            let sources = source_count(kind, d.cin);
            direct(
                &FORWARD,
                kind,
                d,
                (d.cout, oh, ow),
                sources,
                x,
                w3,
                w1,
                w.bias,
                y,
                accumulate,
                &spare,
            )
        }
    }
}

/// Input gradient: `dx = d(loss)/dx` given `dy`, for an input of shape `input` (with a stride,
/// several input sizes give the same output size, so it is given).
///
/// # Shapes
/// `dy`: `[B, N, OH, OW]` (f32 or f16), weights as [`forward`] (bias ignored), `input` =
/// `[B, M, H, W]` → `[B, M, H, W]` of dy's dtype
pub fn backward_input(
    kind: &ConvKind,
    dy: &Tensor,
    w: &ConvWeights,
    input: &[usize],
) -> Result<Tensor> {
    let op = "conv backward_input";
    let weights = ConvWeights { bias: None, ..*w };
    let d = kind.dims(op, input, &weights)?;
    if dy.shape() != kind.out_shape(&d) {
        return Err(Error::shape(
            op,
            format!(
                "dy is {:?}; an input of {input:?} through {} filters of stride {} gives {:?}",
                dy.shape(),
                d.cout,
                kind.stride,
                kind.out_shape(&d)
            ),
        ));
    }
    let mut all = vec![dy];
    all.extend(w.w3.iter().chain(w.w1.iter()).copied());
    same_context(op, &all)?;
    let ctx = dy.context();
    let dx = Tensor::uninit_as(ctx, input, dy.dtype())?;
    let (key, problem) = tuning(Pass::ConvInputGrad, kind, &d, dy.dtype());
    let variant = tune::choose(ctx, &problem, &key, |v| {
        let scratch = Tensor::uninit_as(ctx, dx.shape(), dx.dtype())?;
        backward_input_with(v, kind, &d, dy, w, &scratch)?;
        Ok(vec![scratch])
    })?;
    backward_input_with(variant, kind, &d, dy, w, &dx)?;
    Ok(dx)
}

fn backward_input_with(
    variant: Variant,
    kind: &ConvKind,
    d: &ConvDims,
    dy: &Tensor,
    w: &ConvWeights,
    dx: &Tensor,
) -> Result<()> {
    if dy.dtype() == DType::F16 && !reads_f16(variant) {
        return widened(dy, dx, false, |dy32, dx32| {
            backward_input_with(variant, kind, d, dy32, w, dx32)
        });
    }
    let spare = placeholder(dy.context())?;
    let (w3, w1) = (bound(w.w3, &spare), bound(w.w1, &spare));
    match variant.core() {
        Some(kernel) => gemm_core::conv_forward_or_input_grad(
            true,
            (&kernel, variant.splits_reduction()),
            kind,
            d,
            dy,
            w3,
            w1,
            None,
            dx,
            false,
            &spare,
        ),
        None => {
            let sources = source_count(kind, d.cout);
            direct(
                &BACKWARD_INPUT,
                kind,
                d,
                (d.cin, d.height, d.width),
                sources,
                dy,
                w3,
                w1,
                None,
                dx,
                false,
                &spare,
            )
        }
    }
}

/// Weight gradients of one layer.
#[derive(Debug)]
pub struct ConvWeightGrads {
    /// Gradient of the spatial weight, `[N, M/G, K, K]`.
    pub dw3: Option<Tensor>,
    /// Gradient of the 1x1 weight, `[N, M]` (exact zeros on the masked block).
    pub dw1: Option<Tensor>,
}

/// Weight gradients from the layer's input `x` and the output gradient `dy`.
///
/// The reduction over batch rows is split so that enough invocations run; partial sums are
/// added in a fixed order, so results are deterministic.
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `dy`: `[B, N, OH, OW]` (both f32 or both f16) → `dw3`:
/// `[N, M/G, K, K]`, `dw1`: `[N, M]` (f32)
pub fn backward_weight(kind: &ConvKind, x: &Tensor, dy: &Tensor) -> Result<ConvWeightGrads> {
    let op = "conv backward_weight";
    kind.check(op)?;
    same_context(op, &[x, dy])?;
    if x.dtype() != dy.dtype() {
        return Err(Error::shape(
            op,
            format!("x {x:?} and dy {dy:?} must be of one dtype"),
        ));
    }
    let (xs, ds) = (x.shape(), dy.shape());
    if xs.len() != 4 || ds.len() != 4 || xs.contains(&0) || ds.contains(&0) {
        return Err(Error::shape(
            op,
            format!("x {xs:?} and dy {ds:?} must be non-empty [B, M, H, W] and [B, N, OH, OW]"),
        ));
    }
    let g = kind.groups;
    let d = ConvDims {
        batch: xs[0],
        cin: xs[1],
        cout: ds[1],
        height: xs[2],
        width: xs[3],
    };
    if ds != kind.out_shape(&d) {
        return Err(Error::shape(
            op,
            format!(
                "x {xs:?} through {} filters of stride {} gives {:?}, but dy is {ds:?}",
                d.cout,
                kind.stride,
                kind.out_shape(&d)
            ),
        ));
    }
    if !d.cin.is_multiple_of(g) || !d.cout.is_multiple_of(g) {
        return Err(Error::shape(
            op,
            format!(
                "{} inputs and {} filters are not both divisible by {g}",
                d.cin, d.cout
            ),
        ));
    }
    let ctx = x.context();
    let (key, problem) = tuning(Pass::ConvWeightGrad, kind, &d, x.dtype());
    let variant = tune::choose(ctx, &problem, &key, |v| {
        let grads = backward_weight_with(v, kind, &d, x, dy)?;
        Ok(grads.dw3.into_iter().chain(grads.dw1).collect())
    })?;
    backward_weight_with(variant, kind, &d, x, dy)
}

/// `conv_weight_grad.wgsl`'s uniform block.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct WeightGradParams {
    batch: u32,
    cin: u32,
    cout: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    groups: u32,
    spatial: u32,
    pointwise: u32,
    splits: u32,
    rows_per_split: u32,
}

/// The most accumulators one weight-gradient invocation keeps for its spatial taps (filters
/// per invocation x taps): the shader's `acc` array.
const MAX_TAP_ACCUMULATORS: usize = 49;

/// The weight gradients of a conv computed by `variant`: the GEMM core, or the direct kernel
/// (`direct_weight_grad`); f16 activations are widened first for a variant that reads f32.
///
/// # Shapes
/// x `[B, M, H, W]`, dy `[B, N, OH, OW]` -> dw3 `[N, M/G, KS, KS]`, dw1 `[N, M]`.
fn backward_weight_with(
    variant: Variant,
    kind: &ConvKind,
    d: &ConvDims,
    x: &Tensor,
    dy: &Tensor,
) -> Result<ConvWeightGrads> {
    let ctx = x.context();
    if x.dtype() == DType::F16 && !reads_f16(variant) {
        // The variant reads f32 (see `widened`).
        let (x32, dy32) = (
            cast::to_dtype(x, DType::F32)?,
            cast::to_dtype(dy, DType::F32)?,
        );
        return backward_weight_with(variant, kind, d, &x32, &dy32);
    }
    let dw3 = kind
        .spatial()
        .then(|| Tensor::uninit(ctx, &kind.spatial_shape(d)))
        .transpose()?;
    let dw1 = (kind.pointwise != Pointwise::None)
        .then(|| Tensor::uninit(ctx, &[d.cout, d.cin]))
        .transpose()?;
    // The core always splits a weight gradient's reduction: `SplitK` runs as `Core`.
    if let Some(kernel) = variant.core() {
        let (spare, spare3, spare1) = (placeholder(ctx)?, placeholder(ctx)?, placeholder(ctx)?);
        gemm_core::conv_weight_grad(
            &kernel,
            kind,
            d,
            x,
            dy,
            bound(dw3.as_ref(), &spare3),
            bound(dw1.as_ref(), &spare1),
            &spare,
        )?;
        return Ok(ConvWeightGrads { dw3, dw1 });
    }
    direct_weight_grad(kind, d, x, dy, (&dw3, &dw1))?;
    Ok(ConvWeightGrads { dw3, dw1 })
}

/// The direct weight-gradient kernel (`conv_weight_grad.wgsl`) into `dw3` and `dw1` (either
/// absent where the conv has no such part): the output rows cut into splits (`split_count`)
/// whose partial sums `reduce::sum_splits` adds, or written directly with one split.
///
/// # Shapes
/// x `[B, M, H, W]`, dy `[B, N, OH, OW]` -> dw3 `[N, M/G, KS, KS]`, dw1 `[N, M]`.
fn direct_weight_grad(
    kind: &ConvKind,
    d: &ConvDims,
    x: &Tensor,
    dy: &Tensor,
    (dw3, dw1): (&Option<Tensor>, &Option<Tensor>),
) -> Result<()> {
    let ctx = x.context();
    let g = kind.groups;
    let len3 = d.cout * (d.cin / g) * kind.taps();
    let len1 = d.cout * d.cin;
    // Filters per invocation: their spatial accumulators must fit the shader's array.
    let most_filters = MAX_TAP_ACCUMULATORS / kind.taps().max(1);
    let ot = [4, 2, 1]
        .into_iter()
        .find(|t| (d.cout / g).is_multiple_of(*t) && *t <= most_filters)
        .unwrap_or(1) as u32;
    let ct = channel_tile(d.cin / g);
    // As the shader lays out its grid: own-block channels, then tiles of CT 1x1 channels.
    let in_block = if kind.spatial() || kind.pointwise == Pointwise::Masked {
        d.cin / g
    } else {
        0
    };
    let pointwise = if kind.pointwise == Pointwise::None {
        0
    } else {
        d.cin - in_block
    };
    let (oh, ow) = kind.out_hw(d);
    let tiles = (d.cout / ot as usize) * (in_block + pointwise / ct as usize);
    let rows = d.batch * oh;
    let splits = split_count(ctx, rows, tiles, len3.max(len1));
    let rows_per_split = rows.div_ceil(splits);
    let splits = rows.div_ceil(rows_per_split);

    // With one split the kernel writes the gradients directly.
    let partial = |out: &Option<Tensor>, len: usize| -> Result<Option<Tensor>> {
        match out {
            Some(_) if splits > 1 => Tensor::uninit(ctx, &[splits, len]).map(Some),
            Some(t) => Ok(Some(t.clone())),
            None => Ok(None),
        }
    };
    let part3 = partial(dw3, len3)?;
    let part1 = partial(dw1, len1)?;
    let spare3 = placeholder(ctx)?;
    let spare1 = placeholder(ctx)?;
    let params = WeightGradParams {
        batch: d.batch as u32,
        cin: d.cin as u32,
        cout: d.cout as u32,
        height: d.height as u32,
        width: d.width as u32,
        out_height: oh as u32,
        out_width: ow as u32,
        groups: g as u32,
        spatial: u32::from(kind.spatial()),
        pointwise: pointwise_code(kind.pointwise),
        splits: splits as u32,
        rows_per_split: rows_per_split as u32,
    };
    let [ks, st] = direct_constants(kind);
    ctx.dispatch(
        &WEIGHT_GRAD,
        &[("OT", f64::from(ot)), ("CT", f64::from(ct)), ks, st],
        &params,
        &[
            x,
            dy,
            bound(part3.as_ref(), &spare3),
            bound(part1.as_ref(), &spare1),
        ],
        (splits * tiles) as u64,
    )?;
    if splits > 1 {
        for (part, out) in [(&part3, dw3), (&part1, dw1)] {
            if let (Some(part), Some(out)) = (part, out) {
                reduce::sum_splits(part, splits, out, false)?;
            }
        }
    }
    Ok(())
}

/// How many slices of the `rows` output rows the weight-gradient reduction is cut into: enough
/// invocations (at least 16k, more where the context asks for more), no slice shorter than two
/// rows, partials within the binding limit. `invocations`: one slice's invocations.
fn split_count(ctx: &Context, rows: usize, invocations: usize, per_split: usize) -> usize {
    let target = ctx.conv_min_invocations().max(16_384) as usize;
    let wanted = target
        .div_ceil(invocations.max(1))
        .min(rows.div_ceil(2))
        .max(1);
    let fits = (ctx.max_binding_bytes() as usize / (per_split * 4)).max(1);
    wanted.min(fits)
}

impl ConvKind {
    /// The two parts of a HetConv layer, as the PyTorch reproduction computes them: the grouped
    /// spatial conv and the masked 1x1 conv, each with the layer's stride. Refused (naming `op`)
    /// for a kind that is not a spatial part plus a masked 1x1 part.
    fn unfused_parts(&self, op: &'static str) -> Result<(ConvKind, ConvKind)> {
        self.check(op)?;
        if !self.spatial() || self.pointwise != Pointwise::Masked {
            return Err(Error::shape(
                op,
                format!("{self:?} is not a HetConv layer (a spatial part and a masked 1x1 part)"),
            ));
        }
        Ok((
            ConvKind {
                pointwise: Pointwise::None,
                ..*self
            },
            ConvKind { kernel: 0, ..*self },
        ))
    }
}

/// The unfused HetConv forward pass of the PyTorch reproduction: a grouped conv, then the
/// masked 1x1 conv added on top (two dispatches, `x` read twice). Kept as the reference form
/// and for the benchmarks. `kind` is the fused layer ([`ConvKind::hetconv`], any stride).
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `w3`: `[N, M/P, K, K]`, `w1`: `[N, M]` → `[B, N, OH, OW]`
pub fn hetconv_unfused_forward(
    kind: &ConvKind,
    x: &Tensor,
    w3: &Tensor,
    w1: &Tensor,
) -> Result<Tensor> {
    let (grouped, masked) = kind.unfused_parts("hetconv unfused forward")?;
    let y = forward(
        &grouped,
        x,
        &ConvWeights {
            w3: Some(w3),
            ..Default::default()
        },
    )?;
    forward_into(
        &masked,
        x,
        &ConvWeights {
            w1: Some(w1),
            ..Default::default()
        },
        &y,
        true,
    )?;
    Ok(y)
}

/// Input gradient of the unfused HetConv: grouped part and masked 1x1 part separately, then
/// added (what autograd does for the PyTorch reproduction's `gwc(x) + pwc(x)`).
///
/// # Shapes
/// `dy`: `[B, N, OH, OW]`, `w3`: `[N, M/P, K, K]`, `w1`: `[N, M]`, `input` = `[B, M, H, W]` →
/// `[B, M, H, W]`
pub fn hetconv_unfused_backward_input(
    kind: &ConvKind,
    dy: &Tensor,
    w3: &Tensor,
    w1: &Tensor,
    input: &[usize],
) -> Result<Tensor> {
    let (grouped, masked) = kind.unfused_parts("hetconv unfused backward_input")?;
    let dx3 = backward_input(
        &grouped,
        dy,
        &ConvWeights {
            w3: Some(w3),
            ..Default::default()
        },
        input,
    )?;
    let dx1 = backward_input(
        &masked,
        dy,
        &ConvWeights {
            w1: Some(w1),
            ..Default::default()
        },
        input,
    )?;
    super::elementwise::binary(super::elementwise::BinaryOp::Add, &dx3, &dx1)
}

/// Weight gradients of the unfused HetConv: one pass for the grouped weight, one for the
/// masked 1x1 weight (each reading `x` and `dy` again).
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `dy`: `[B, N, OH, OW]` → `dw3`: `[N, M/P, K, K]`, `dw1`: `[N, M]`
pub fn hetconv_unfused_backward_weight(
    kind: &ConvKind,
    x: &Tensor,
    dy: &Tensor,
) -> Result<ConvWeightGrads> {
    let (grouped, masked) = kind.unfused_parts("hetconv unfused backward_weight")?;
    let dw3 = backward_weight(&grouped, x, dy)?.dw3;
    let dw1 = backward_weight(&masked, x, dy)?.dw1;
    Ok(ConvWeightGrads { dw3, dw1 })
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[&FORWARD, &BACKWARD_INPUT, &WEIGHT_GRAD];
