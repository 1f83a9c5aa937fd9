//! The heterogeneous convolution family (`shaders/conv.wgsl`, `shaders/conv_weight_grad.wgsl`):
//! standard, grouped and depthwise 3x3 convs, 1x1 convs, HetConv's masked pointwise conv, and
//! the fused HetConv layer, each with forward, input gradient and weight gradient.
//!
//! All members share one description, [`ConvKind`]: an optional 3x3 part with `groups` groups
//! (stride 1, padding 1) and an optional 1x1 part that is dense or masked in HetConv's block
//! layout (filter `o` of part `g = o / (N/P)` skips input channels `[g*M/P, (g+1)*M/P)`).

use super::gemm_core::{self, reduction_len};
use super::{placeholder, reduce, same_context};
use crate::error::{Error, Result};
use crate::gpu::{Access, Context, KernelSpec, storage};
use crate::shaders;
use crate::tensor::Tensor;
use crate::tune::{self, Pass, Problem, Variant};

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
};

static BACKWARD_INPUT: KernelSpec = KernelSpec {
    shader: &shaders::CONV,
    entry: "backward_input",
    bindings: CONV_BINDINGS,
    workgroup_size: 64,
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
};

/// The 1x1 part of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pointwise {
    /// No 1x1 part.
    None,
    /// 1x1 taps on every input channel.
    Dense,
    /// 1x1 taps on every input channel outside the filter's own block (HetConv). The block is
    /// skipped, never multiplied; its weight gradient is exactly zero.
    Masked,
}

impl Pointwise {
    fn code(self) -> u32 {
        match self {
            Pointwise::None => 0,
            Pointwise::Dense => 1,
            Pointwise::Masked => 2,
        }
    }
}

/// One member of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvKind {
    /// Groups of the 3x3 part; also the part count P that defines the 1x1 mask.
    pub groups: usize,
    /// Whether the layer has 3x3 taps.
    pub kernel3: bool,
    /// What the 1x1 part does.
    pub pointwise: Pointwise,
}

impl ConvKind {
    /// A standard 3x3 conv.
    pub fn standard3x3() -> Self {
        Self::grouped3x3(1)
    }

    /// A grouped 3x3 conv (`groups` = channels gives a depthwise conv).
    pub fn grouped3x3(groups: usize) -> Self {
        Self {
            groups,
            kernel3: true,
            pointwise: Pointwise::None,
        }
    }

    /// A plain 1x1 conv.
    pub fn pointwise() -> Self {
        Self {
            groups: 1,
            kernel3: false,
            pointwise: Pointwise::Dense,
        }
    }

    /// HetConv's masked 1x1 conv with `parts` parts, alone.
    pub fn masked_pointwise(parts: usize) -> Self {
        Self {
            groups: parts,
            kernel3: false,
            pointwise: Pointwise::Masked,
        }
    }

    /// The fused HetConv layer with part `parts` (P).
    pub fn hetconv(parts: usize) -> Self {
        Self {
            groups: parts,
            kernel3: true,
            pointwise: Pointwise::Masked,
        }
    }
}

/// The weights of one layer; which ones must be present follows from the [`ConvKind`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvWeights<'a> {
    /// 3x3 weights, `[cout, cin / groups, 3, 3]`.
    pub w3: Option<&'a Tensor>,
    /// 1x1 weights, `[cout, cin]` or `[cout, cin, 1, 1]`.
    pub w1: Option<&'a Tensor>,
    /// Bias, `[cout]` (forward only; its gradient is [`reduce::sum_channels`] of `dy`).
    pub bias: Option<&'a Tensor>,
}

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvDims {
    /// Images.
    pub batch: usize,
    /// Input channels (M).
    pub cin: usize,
    /// Output channels (N).
    pub cout: usize,
    /// Rows (input and output: stride 1, same padding).
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ConvKind {
    /// Checks the kind against the input shape and the weights; returns the sizes.
    pub fn dims(&self, op: &'static str, input: &[usize], w: &ConvWeights) -> Result<ConvDims> {
        let [batch, cin, height, width] = *input else {
            return Err(Error::shape(
                op,
                format!("input must be [batch, channels, height, width], got {input:?}"),
            ));
        };
        if input.contains(&0) {
            return Err(Error::shape(
                op,
                format!("input {input:?} has a zero-sized dimension"),
            ));
        }
        if !self.kernel3 && self.pointwise == Pointwise::None {
            return Err(Error::shape(
                op,
                "a conv needs a 3x3 part, a 1x1 part, or both",
            ));
        }
        let g = self.groups;
        if g == 0 || cin % g != 0 {
            return Err(Error::shape(
                op,
                format!("{cin} input channels are not divisible by groups/parts {g}"),
            ));
        }
        let cout = match (w.w3, w.w1) {
            (Some(t), _) | (None, Some(t)) => t.shape()[0],
            (None, None) => return Err(Error::shape(op, "no weights given")),
        };
        if cout % g != 0 {
            return Err(Error::shape(
                op,
                format!("{cout} filters are not divisible by groups/parts {g}"),
            ));
        }
        match (self.kernel3, w.w3) {
            (true, Some(t)) if t.shape() != [cout, cin / g, 3, 3] => {
                return Err(Error::shape(
                    op,
                    format!(
                        "3x3 weight is {:?}, expected [{cout}, {}, 3, 3] for {cin} inputs and {g} groups",
                        t.shape(),
                        cin / g
                    ),
                ));
            }
            (true, None) => return Err(Error::shape(op, "the 3x3 part needs a 3x3 weight")),
            (false, Some(_)) => {
                return Err(Error::shape(
                    op,
                    "a 3x3 weight was given to a layer without a 3x3 part",
                ));
            }
            _ => {}
        }
        match (self.pointwise, w.w1) {
            (Pointwise::None, Some(_)) => {
                return Err(Error::shape(
                    op,
                    "a 1x1 weight was given to a layer without a 1x1 part",
                ));
            }
            (Pointwise::None, None) => {}
            (_, None) => return Err(Error::shape(op, "the 1x1 part needs a 1x1 weight")),
            (_, Some(t)) => {
                if t.shape() != [cout, cin] && t.shape() != [cout, cin, 1, 1] {
                    return Err(Error::shape(
                        op,
                        format!(
                            "1x1 weight is {:?}, expected [{cout}, {cin}] or [{cout}, {cin}, 1, 1]",
                            t.shape()
                        ),
                    ));
                }
            }
        }
        if let Some(b) = w.bias {
            if b.shape() != [cout] {
                return Err(Error::shape(
                    op,
                    format!("bias is {:?}, expected [{cout}]", b.shape()),
                ));
            }
        }
        Ok(ConvDims {
            batch,
            cin,
            cout,
            height,
            width,
        })
    }

    /// Multiply-accumulates of the forward pass (the skipped block is not counted).
    ///
    /// ```
    /// use hetconv::kernels::conv::{ConvDims, ConvKind};
    /// let d = ConvDims { batch: 1, cin: 64, cout: 64, height: 32, width: 32 };
    /// let standard = ConvKind::standard3x3().forward_macs(&d) as f64;
    /// let hetconv = ConvKind::hetconv(4).forward_macs(&d) as f64;
    /// // The paper's ratio 1/P + (1 - 1/P)/9 = 1/3 at P = 4.
    /// assert!((hetconv / standard - 1.0 / 3.0).abs() < 1e-12);
    /// ```
    pub fn forward_macs(&self, d: &ConvDims) -> u64 {
        let pixels = (d.batch * d.height * d.width) as u64;
        let per_pixel_3 = if self.kernel3 {
            9 * d.cin * d.cout / self.groups
        } else {
            0
        };
        let per_pixel_1 = match self.pointwise {
            Pointwise::None => 0,
            Pointwise::Dense => d.cin * d.cout,
            Pointwise::Masked => d.cin * d.cout - d.cin * d.cout / self.groups,
        };
        pixels * (per_pixel_3 + per_pixel_1) as u64
    }
}

/// The tuner's key of one pass of one layer: the pass, groups, whether there are 3x3 taps, the
/// 1x1 part, batch, channels and map size, e.g. `conv_forward g4 k3=1 pw=Masked b16 64->64
/// 32x32` (the tuner adds the precision: `... 32x32 f32`).
pub fn tune_key(pass: Pass, kind: &ConvKind, d: &ConvDims) -> String {
    format!(
        "{} g{} k3={} pw={:?} b{} {}->{} {}x{}",
        pass.name(),
        kind.groups,
        u8::from(kind.kernel3),
        kind.pointwise,
        d.batch,
        d.cin,
        d.cout,
        d.height,
        d.width
    )
}

/// The tuner's key and problem for one pass of one layer.
fn tuning(pass: Pass, kind: &ConvKind, d: &ConvDims) -> (String, Problem) {
    let pixels = d.batch * d.height * d.width;
    let g = kind.groups;
    let (rows, cols) = match pass {
        Pass::ConvInputGrad => (d.cin / g, pixels),
        Pass::ConvWeightGrad => (d.cout / g, reduction_len(kind, d.cin)),
        _ => (d.cout / g, pixels),
    };
    let key = tune_key(pass, kind, d);
    let problem = Problem {
        pass,
        // The tuner's `choose` sets the context's.
        precision: crate::gpu::Precision::F32,
        groups: g,
        rows,
        cols,
    };
    (key, problem)
}

/// Channels per invocation: the largest of 4, 2, 1 dividing the channels of one block.
fn channel_tile(per_group: usize) -> u32 {
    [4, 2, 1]
        .into_iter()
        .find(|t| per_group.is_multiple_of(*t))
        .unwrap_or(1) as u32
}

fn conv_params(
    kind: &ConvKind,
    d: &ConvDims,
    has_bias: bool,
    accumulate: bool,
    split: &SourceSplit,
) -> [u32; 12] {
    [
        d.batch as u32,
        d.cin as u32,
        d.cout as u32,
        d.height as u32,
        d.width as u32,
        kind.groups as u32,
        u32::from(kind.kernel3),
        kind.pointwise.code(),
        u32::from(has_bias),
        u32::from(accumulate),
        split.splits as u32,
        split.len as u32,
    ]
}

/// How the direct kernels cut their list of sources (block channels with 3x3 taps, then
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
/// in the input-gradient direction (`rows = cout`): a block's 3x3 sources, then 1x1 ones.
fn source_count(kind: &ConvKind, rows: usize) -> usize {
    let block = if kind.kernel3 { rows / kind.groups } else { 0 };
    let pointwise = match kind.pointwise {
        Pointwise::None => 0,
        Pointwise::Dense => rows,
        Pointwise::Masked => rows - rows / kind.groups,
    };
    block + pointwise
}

/// Records a direct-kernel dispatch that writes `out` (adding to it when `accumulate`), through
/// per-slice partials and a fixed-order sum when the sources are split.
#[allow(clippy::too_many_arguments)]
fn direct(
    spec: &KernelSpec,
    kind: &ConvKind,
    d: &ConvDims,
    channels: usize,
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
    let pt = d.width.min(4);
    let invocations = d.batch * (channels / ot as usize) * d.height * d.width.div_ceil(pt);
    let split = SourceSplit::choose(ctx, sources, invocations);
    let partials = if split.splits > 1 {
        Some(Tensor::uninit(ctx, &[split.splits, out.numel()])?)
    } else {
        None
    };
    ctx.dispatch(
        spec,
        &[("OT", f64::from(ot)), ("PT", pt as f64)],
        &conv_params(
            kind,
            d,
            bias.is_some(),
            accumulate && partials.is_none(),
            &split,
        ),
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

/// Binds `Some(tensor)` or a placeholder.
fn bound<'a>(t: Option<&'a Tensor>, spare: &'a Tensor) -> &'a Tensor {
    t.unwrap_or(spare)
}

/// Forward pass: `y = conv3x3(x, w3, groups) + conv1x1(x, w1 [masked]) + bias`.
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `w3`: `[N, M/G, 3, 3]`, `w1`: `[N, M]`, `bias`: `[N]` → `[B, N, H, W]`
pub fn forward(kind: &ConvKind, x: &Tensor, w: &ConvWeights) -> Result<Tensor> {
    let d = kind.dims("conv forward", x.shape(), w)?;
    let y = Tensor::uninit(x.context(), &[d.batch, d.cout, d.height, d.width])?;
    forward_into(kind, x, w, &y, false)?;
    Ok(y)
}

/// Forward pass into `y`, adding to its contents when `accumulate` is set (the unfused HetConv
/// adds its masked 1x1 part to the grouped 3x3 part this way).
///
/// # Shapes
/// as [`forward`]; `y`: `[B, N, H, W]`
pub fn forward_into(
    kind: &ConvKind,
    x: &Tensor,
    w: &ConvWeights,
    y: &Tensor,
    accumulate: bool,
) -> Result<()> {
    let op = "conv forward";
    let d = kind.dims(op, x.shape(), w)?;
    if y.shape() != [d.batch, d.cout, d.height, d.width] {
        return Err(Error::shape(
            op,
            format!(
                "output is {:?}, expected [{}, {}, {}, {}]",
                y.shape(),
                d.batch,
                d.cout,
                d.height,
                d.width
            ),
        ));
    }
    let mut all = vec![x, y];
    all.extend(w.w3.iter().chain(w.w1.iter()).chain(w.bias.iter()).copied());
    same_context(op, &all)?;
    let ctx = x.context();
    let (key, problem) = tuning(Pass::ConvForward, kind, &d);
    let variant = tune::choose(ctx, &problem, &key, |v| {
        let scratch = Tensor::uninit(ctx, y.shape())?;
        forward_with(v, kind, &d, x, w, &scratch, accumulate)
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
    let spare = placeholder(x.context())?;
    let (w3, w1) = (bound(w.w3, &spare), bound(w.w1, &spare));
    match variant {
        Variant::Core(kernel) => gemm_core::conv_forward_or_input_grad(
            false, &kernel, kind, d, x, w3, w1, w.bias, y, accumulate, &spare,
        ),
        Variant::Direct => {
            let sources = source_count(kind, d.cin);
            direct(
                &FORWARD, kind, d, d.cout, sources, x, w3, w1, w.bias, y, accumulate, &spare,
            )
        }
    }
}

/// Input gradient: `dx = d(loss)/dx` given `dy`.
///
/// # Shapes
/// `dy`: `[B, N, H, W]`, weights as [`forward`] (bias ignored), `cin` = M → `[B, M, H, W]`
pub fn backward_input(kind: &ConvKind, dy: &Tensor, w: &ConvWeights, cin: usize) -> Result<Tensor> {
    let op = "conv backward_input";
    let [batch, cout, height, width] = *dy.shape() else {
        return Err(Error::shape(
            op,
            format!("dy must be 4-D, got {:?}", dy.shape()),
        ));
    };
    let weights = ConvWeights { bias: None, ..*w };
    let d = kind.dims(op, &[batch, cin, height, width], &weights)?;
    if d.cout != cout {
        return Err(Error::shape(
            op,
            format!(
                "dy has {cout} channels, the weights have {} filters",
                d.cout
            ),
        ));
    }
    let mut all = vec![dy];
    all.extend(w.w3.iter().chain(w.w1.iter()).copied());
    same_context(op, &all)?;
    let ctx = dy.context();
    let dx = Tensor::uninit(ctx, &[batch, cin, height, width])?;
    let (key, problem) = tuning(Pass::ConvInputGrad, kind, &d);
    let variant = tune::choose(ctx, &problem, &key, |v| {
        let scratch = Tensor::uninit(ctx, dx.shape())?;
        backward_input_with(v, kind, &d, dy, w, &scratch)
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
    let spare = placeholder(dy.context())?;
    let (w3, w1) = (bound(w.w3, &spare), bound(w.w1, &spare));
    match variant {
        Variant::Core(kernel) => gemm_core::conv_forward_or_input_grad(
            true, &kernel, kind, d, dy, w3, w1, None, dx, false, &spare,
        ),
        Variant::Direct => {
            let sources = source_count(kind, d.cout);
            direct(
                &BACKWARD_INPUT,
                kind,
                d,
                d.cin,
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
    /// Gradient of the 3x3 weight, `[N, M/G, 3, 3]`.
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
/// `x`: `[B, M, H, W]`, `dy`: `[B, N, H, W]` → `dw3`: `[N, M/G, 3, 3]`, `dw1`: `[N, M]`
pub fn backward_weight(kind: &ConvKind, x: &Tensor, dy: &Tensor) -> Result<ConvWeightGrads> {
    let op = "conv backward_weight";
    same_context(op, &[x, dy])?;
    let (xs, ds) = (x.shape(), dy.shape());
    if xs.len() != 4 || ds.len() != 4 || xs[0] != ds[0] || xs[2..] != ds[2..] {
        return Err(Error::shape(
            op,
            format!("x {xs:?} and dy {ds:?} must be [B, M, H, W] and [B, N, H, W]"),
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
    if g == 0 || !d.cin.is_multiple_of(g) || !d.cout.is_multiple_of(g) {
        return Err(Error::shape(
            op,
            format!(
                "{} inputs and {} filters are not both divisible by {g}",
                d.cin, d.cout
            ),
        ));
    }
    if xs.contains(&0) || ds.contains(&0) {
        return Err(Error::shape(
            op,
            format!("x {xs:?} or dy {ds:?} has a zero-sized dimension"),
        ));
    }
    let ctx = x.context();
    let (key, problem) = tuning(Pass::ConvWeightGrad, kind, &d);
    let variant = tune::choose(ctx, &problem, &key, |v| {
        backward_weight_with(v, kind, &d, x, dy).map(drop)
    })?;
    backward_weight_with(variant, kind, &d, x, dy)
}

fn backward_weight_with(
    variant: Variant,
    kind: &ConvKind,
    d: &ConvDims,
    x: &Tensor,
    dy: &Tensor,
) -> Result<ConvWeightGrads> {
    let ctx = x.context();
    let g = kind.groups;
    let dw3 = kind
        .kernel3
        .then(|| Tensor::uninit(ctx, &[d.cout, d.cin / g, 3, 3]))
        .transpose()?;
    let dw1 = (kind.pointwise != Pointwise::None)
        .then(|| Tensor::uninit(ctx, &[d.cout, d.cin]))
        .transpose()?;
    if let Variant::Core(kernel) = variant {
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
    let len3 = d.cout * (d.cin / g) * 9;
    let len1 = d.cout * d.cin;
    let ot = channel_tile(d.cout / g);
    let ct = channel_tile(d.cin / g);
    // As the shader lays out its grid: own-block channels, then tiles of CT 1x1 channels.
    let in_block = if kind.kernel3 || kind.pointwise == Pointwise::Masked {
        d.cin / g
    } else {
        0
    };
    let pointwise = if kind.pointwise == Pointwise::None {
        0
    } else {
        d.cin - in_block
    };
    let tiles = (d.cout / ot as usize) * (in_block + pointwise / ct as usize);
    let splits = split_count(ctx, d, tiles, len3.max(len1));
    let rows = d.batch * d.height;
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
    let part3 = partial(&dw3, len3)?;
    let part1 = partial(&dw1, len1)?;
    let spare3 = placeholder(ctx)?;
    let spare1 = placeholder(ctx)?;
    let params = [
        d.batch as u32,
        d.cin as u32,
        d.cout as u32,
        d.height as u32,
        d.width as u32,
        g as u32,
        u32::from(kind.kernel3),
        kind.pointwise.code(),
        splits as u32,
        rows_per_split as u32,
    ];
    ctx.dispatch(
        &WEIGHT_GRAD,
        &[("OT", f64::from(ot)), ("CT", f64::from(ct))],
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
        for (part, out) in [(&part3, &dw3), (&part1, &dw1)] {
            if let (Some(part), Some(out)) = (part, out) {
                reduce::sum_splits(part, splits, out, false)?;
            }
        }
    }
    Ok(ConvWeightGrads { dw3, dw1 })
}

/// How many slices of batch rows the weight-gradient reduction is cut into: enough invocations
/// (at least 16k, more where the context asks for more), no slice shorter than two rows,
/// partials within the binding limit. `invocations`: one slice's invocations.
fn split_count(ctx: &Context, d: &ConvDims, invocations: usize, per_split: usize) -> usize {
    let target = ctx.conv_min_invocations().max(16_384) as usize;
    let rows = d.batch * d.height;
    let wanted = target
        .div_ceil(invocations.max(1))
        .min(rows.div_ceil(2))
        .max(1);
    let fits = (ctx.max_binding_bytes() as usize / (per_split * 4)).max(1);
    wanted.min(fits)
}

/// The unfused HetConv forward pass of the PyTorch reproduction: a grouped 3x3 conv, then the
/// masked 1x1 conv added on top (two dispatches, `x` read twice). Kept as the reference form
/// and for the benchmarks.
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `w3`: `[N, M/P, 3, 3]`, `w1`: `[N, M]` → `[B, N, H, W]`
pub fn hetconv_unfused_forward(
    parts: usize,
    x: &Tensor,
    w3: &Tensor,
    w1: &Tensor,
) -> Result<Tensor> {
    let y = forward(
        &ConvKind::grouped3x3(parts),
        x,
        &ConvWeights {
            w3: Some(w3),
            ..Default::default()
        },
    )?;
    forward_into(
        &ConvKind::masked_pointwise(parts),
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

/// Input gradient of the unfused HetConv: grouped 3x3 part and masked 1x1 part separately,
/// then added (what autograd does for the PyTorch reproduction's `gwc(x) + pwc(x)`).
///
/// # Shapes
/// `dy`: `[B, N, H, W]`, `w3`: `[N, M/P, 3, 3]`, `w1`: `[N, M]` → `[B, M, H, W]`
pub fn hetconv_unfused_backward_input(
    parts: usize,
    dy: &Tensor,
    w3: &Tensor,
    w1: &Tensor,
    cin: usize,
) -> Result<Tensor> {
    let dx3 = backward_input(
        &ConvKind::grouped3x3(parts),
        dy,
        &ConvWeights {
            w3: Some(w3),
            ..Default::default()
        },
        cin,
    )?;
    let dx1 = backward_input(
        &ConvKind::masked_pointwise(parts),
        dy,
        &ConvWeights {
            w1: Some(w1),
            ..Default::default()
        },
        cin,
    )?;
    super::elementwise::binary(super::elementwise::BinaryOp::Add, &dx3, &dx1)
}

/// Weight gradients of the unfused HetConv: one pass for the grouped 3x3 weight, one for the
/// masked 1x1 weight (each reading `x` and `dy` again).
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `dy`: `[B, N, H, W]` → `dw3`: `[N, M/P, 3, 3]`, `dw1`: `[N, M]`
pub fn hetconv_unfused_backward_weight(
    parts: usize,
    x: &Tensor,
    dy: &Tensor,
) -> Result<ConvWeightGrads> {
    let dw3 = backward_weight(&ConvKind::grouped3x3(parts), x, dy)?.dw3;
    let dw1 = backward_weight(&ConvKind::masked_pointwise(parts), x, dy)?.dw1;
    Ok(ConvWeightGrads { dw3, dw1 })
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[&FORWARD, &BACKWARD_INPUT, &WEIGHT_GRAD];
