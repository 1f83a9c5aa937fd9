//! Batch normalisation, 1-D and 2-D (`shaders/batchnorm.wgsl`, `shaders/batchnorm_grad.wgsl`).

use crate::dist::BatchNormSync;
use crate::error::{Error, Result};
use crate::gpu::{Access, KernelSpec, TypedKernel, storage};
use crate::shaders;
use crate::tensor::Tensor;

use Access::{Read, ReadWrite};

/// The uniform block of `shaders/batchnorm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BatchNormParams {
    batch: u32,
    channels: u32,
    plane: u32,
    eps: f32,
    momentum: f32,
    /// normalize: 1 = eval mode, read the running estimates.
    from_running: u32,
    /// normalize: apply ReLU to the output; backward_reduce: the forward pass did, mask dy.
    relu: u32,
    /// backward_reduce: where dbeta starts in `out` (after dgamma).
    dbeta_offset: u32,
    /// stats: which part of the statistics (`STATS_*`).
    phase: u32,
    /// stats: the values per channel the statistics are over (every rank's when synchronised).
    count: u32,
}

/// `stats`' parts (`shaders/batchnorm.wgsl`): all at once, or one by one with every rank's
/// sums added in between.
const STATS_ALL: u32 = 0;
const STATS_SUM: u32 = 1;
const STATS_SQUARES: u32 = 2;
const STATS_FINISH: u32 = 3;

/// The uniform block of `shaders/batchnorm_grad.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BatchNormGradParams {
    batch: u32,
    channels: u32,
    plane: u32,
    relu: u32,
    dbeta_offset: u32,
    /// The values per channel the statistics were over.
    count: u32,
}

/// batchnorm.wgsl with activations stored as f32, and as f16.
const MODULES: [&crate::shaders::ShaderSource; 2] = [&shaders::BATCHNORM, &shaders::BATCHNORM_F16];

/// Tensors: x, mean, invstd, running_mean, running_var.
static STATS: TypedKernel = TypedKernel::new(
    MODULES,
    "stats",
    &[
        (1, Read),
        (5, ReadWrite),
        (6, ReadWrite),
        (7, ReadWrite),
        (8, ReadWrite),
    ],
    64,
    size_of::<BatchNormParams>(),
    0b1,
);

/// Tensors: x, gamma, beta, mean, invstd (or the running estimates), y.
static NORMALIZE: TypedKernel = TypedKernel::new(
    MODULES,
    "normalize",
    &[
        (1, Read),
        (3, Read),
        (4, Read),
        (5, ReadWrite),
        (6, ReadWrite),
        (9, ReadWrite),
    ],
    64,
    size_of::<BatchNormParams>(),
    0b10_0001,
);

/// Tensors: x, dy, gamma, beta, mean, invstd, sums.
static BACKWARD_REDUCE: TypedKernel = TypedKernel::new(
    MODULES,
    "backward_reduce",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (4, Read),
        (5, ReadWrite),
        (6, ReadWrite),
        (7, ReadWrite),
    ],
    64,
    size_of::<BatchNormParams>(),
    0b11,
);

/// Tensors: x, dy, gamma, beta, mean, invstd, sums, dx.
static BACKWARD_INPUT: TypedKernel = TypedKernel::new(
    [&shaders::BATCHNORM_GRAD, &shaders::BATCHNORM_GRAD_F16],
    "backward_input",
    &storage([Read, Read, Read, Read, Read, Read, Read, ReadWrite]),
    64,
    size_of::<BatchNormGradParams>(),
    0b1000_0011,
);

/// Hyper-parameters (PyTorch's defaults: eps 1e-5, momentum 0.1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance.
    pub eps: f32,
    /// Weight of the new batch in the running estimates.
    pub momentum: f32,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

/// What training-mode forward saves for backward.
#[derive(Clone, Debug)]
pub struct BatchNormSaved {
    /// The batch mean per channel.
    pub mean: Tensor,
    /// 1 / sqrt(biased batch variance + eps) per channel.
    pub invstd: Tensor,
    /// The shift `beta` when the forward pass fused ReLU: backward then masks `dy` where the
    /// pre-activation was not positive (recomputed from `x`, never stored).
    pub relu_beta: Option<Tensor>,
    /// The ranks whose batches the statistics were over (synchronised batch norm), whose
    /// gradient sums backward adds up too.
    pub sync: Option<BatchNormSync>,
}

/// Refuses parameters or statistics that are not f32 (before any kernel updates the running
/// estimates in place), naming them.
fn f32_parameters(op: &'static str, tensors: &[(&str, &Tensor)]) -> Result<()> {
    match tensors
        .iter()
        .find(|(_, t)| t.dtype() != crate::tensor::DType::F32)
    {
        Some((name, t)) => Err(Error::shape(
            op,
            format!("{name} is {t:?}: BatchNorm's parameters and statistics are f32"),
        )),
        None => Ok(()),
    }
}

/// (batch, channels, plane) of a [B, C] or [B, C, H, W] input.
fn dims(op: &'static str, x: &[usize], gamma: &Tensor) -> Result<(usize, usize, usize)> {
    let (b, c, plane) = match *x {
        [b, c] => (b, c, 1),
        [b, c, h, w] => (b, c, h * w),
        _ => {
            return Err(Error::shape(
                op,
                format!("input must be [B, C] or [B, C, H, W], got {x:?}"),
            ));
        }
    };
    f32_parameters(op, &[("weight", gamma)])?;
    if gamma.shape() != [c] {
        return Err(Error::shape(
            op,
            format!(
                "weight is {:?}, expected [{c}] for input {x:?}",
                gamma.shape()
            ),
        ));
    }
    Ok((b, c, plane))
}

fn params(
    b: usize,
    c: usize,
    plane: usize,
    cfg: &BatchNormConfig,
    from_running: bool,
    relu: bool,
) -> BatchNormParams {
    BatchNormParams {
        batch: b as u32,
        channels: c as u32,
        plane: plane as u32,
        eps: cfg.eps,
        momentum: cfg.momentum,
        from_running: u32::from(from_running),
        relu: u32::from(relu),
        dbeta_offset: 0, // set by `backward`
        phase: STATS_ALL,
        count: (b * plane) as u32,
    }
}

/// Training-mode forward: normalises with the batch statistics and updates `running_mean` and
/// `running_var` in place (unbiased variance). `relu` applies ReLU to the output (fused). The
/// statistics are those of `x`'s batch, or with `sync` those of every rank's batch
/// (synchronised batch norm in a data-parallel step: `x` is this rank's share of the global
/// batch, and the sums of x, then of the centred squares, are read back and added over the
/// ranks).
///
/// # Shapes
/// `x`: `[B, C]` or `[B, C, H, W]`; `gamma`, `beta`, `running_mean`, `running_var`: `[C]` f32 →
/// x's shape and dtype
#[allow(clippy::too_many_arguments)]
pub fn forward_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    cfg: &BatchNormConfig,
    relu: bool,
    sync: Option<&BatchNormSync>,
) -> Result<(Tensor, BatchNormSaved)> {
    let op = "batch_norm";
    let (b, c, plane) = dims(op, x.shape(), gamma)?;
    let stats = [("running_mean", running_mean), ("running_var", running_var)];
    f32_parameters(op, &[("bias", beta)])?;
    f32_parameters(op, &stats)?;
    let batch = sync.map_or(b, |s| s.global_batch());
    if batch * plane < 2 {
        return Err(Error::shape(
            op,
            format!(
                "training needs more than one value per channel, got input {:?}",
                x.shape()
            ),
        ));
    }
    let ctx = x.context();
    let mean = Tensor::uninit(ctx, &[c])?;
    let invstd = Tensor::uninit(ctx, &[c])?;
    let mut p = params(b, c, plane, cfg, false, relu);
    p.count = (batch * plane) as u32;
    let bindings = [x, &mean, &invstd, running_mean, running_var];
    let mut stats = |phase| {
        p.phase = phase;
        ctx.dispatch(
            STATS.stored_as(x.dtype()),
            &[],
            &p,
            &bindings,
            c as u64 * 64,
        )
    };
    match sync {
        None => stats(STATS_ALL)?,
        Some(sync) => {
            // The sums of x over all ranks, divided by the count: the mean.
            stats(STATS_SUM)?;
            sync.sum_over_ranks(&mean, (batch * plane) as f32)?;
            stats(STATS_SQUARES)?;
            sync.sum_over_ranks(&invstd, 1.0)?;
            stats(STATS_FINISH)?;
        }
    }
    let y = Tensor::uninit_as(ctx, x.shape(), x.dtype())?;
    ctx.dispatch(
        NORMALIZE.stored_as(x.dtype()),
        &[],
        &p,
        &[x, gamma, beta, &mean, &invstd, &y],
        x.numel() as u64,
    )?;
    let relu_beta = relu.then(|| beta.clone());
    Ok((
        y,
        BatchNormSaved {
            mean,
            invstd,
            relu_beta,
            sync: sync.cloned(),
        },
    ))
}

/// Eval-mode forward with the running estimates.
///
/// # Shapes
/// as [`forward_train`]
pub fn forward_eval(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    cfg: &BatchNormConfig,
    relu: bool,
) -> Result<Tensor> {
    let (b, c, plane) = dims("batch_norm eval", x.shape(), gamma)?;
    let y = Tensor::uninit_as(x.context(), x.shape(), x.dtype())?;
    let p = params(b, c, plane, cfg, true, relu);
    x.context().dispatch(
        NORMALIZE.stored_as(x.dtype()),
        &[],
        &p,
        &[x, gamma, beta, running_mean, running_var, &y],
        x.numel() as u64,
    )?;
    Ok(y)
}

/// Gradients of training-mode batch norm: `(dx, dgamma, dbeta)`, through the fused ReLU when
/// the forward pass applied it (`saved.relu_beta`): `dy` is the gradient of the layer's output.
///
/// # Shapes
/// `x`, `dy`: `[B, C]` or `[B, C, H, W]`, of one dtype; `gamma`: `[C]` f32 → x's shape and
/// dtype, `[C]` f32, `[C]` f32
pub fn backward(
    x: &Tensor,
    dy: &Tensor,
    gamma: &Tensor,
    saved: &BatchNormSaved,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "batch_norm backward";
    let (b, c, plane) = dims(op, x.shape(), gamma)?;
    if dy.shape() != x.shape() || dy.dtype() != x.dtype() {
        return Err(Error::shape(op, format!("dy is {dy:?}, x is {x:?}")));
    }
    let ctx = x.context();
    // dgamma and dbeta in one buffer (dbeta at the next aligned offset, so both are views).
    let align = ctx.view_alignment() as usize / 4;
    let dbeta_offset = c.div_ceil(align) * align;
    let sums = Tensor::uninit(ctx, &[dbeta_offset + c])?;
    let relu = saved.relu_beta.is_some();
    // Without ReLU the shaders never read beta; gamma fills the binding.
    let beta = saved.relu_beta.as_ref().unwrap_or(gamma);
    let mut p = params(b, c, plane, &BatchNormConfig::default(), false, relu);
    // Only backward_reduce reads it.
    p.dbeta_offset = dbeta_offset as u32;
    ctx.dispatch(
        BACKWARD_REDUCE.stored_as(x.dtype()),
        &[],
        &p,
        &[x, dy, gamma, beta, &saved.mean, &saved.invstd, &sums],
        c as u64 * 64,
    )?;
    // dgamma and dbeta stay this rank's (the step's gradient exchange adds them up); dx needs
    // the sums over every rank's batch.
    let (batch, all_sums) = match &saved.sync {
        None => (b, sums.clone()),
        Some(sync) => (sync.global_batch(), sync.sums_for_input_gradient(&sums, b)?),
    };
    let dx = Tensor::uninit_as(ctx, x.shape(), x.dtype())?;
    ctx.dispatch(
        BACKWARD_INPUT.stored_as(x.dtype()),
        &[],
        &BatchNormGradParams {
            batch: b as u32,
            channels: c as u32,
            plane: plane as u32,
            relu: u32::from(relu),
            dbeta_offset: dbeta_offset as u32,
            count: (batch * plane) as u32,
        },
        &[
            x,
            dy,
            gamma,
            beta,
            &saved.mean,
            &saved.invstd,
            &all_sums,
            &dx,
        ],
        x.numel() as u64,
    )?;
    let (dgamma, dbeta) = (sums.view(0, &[c])?, sums.view(dbeta_offset, &[c])?);
    Ok((dx, dgamma, dbeta))
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[
    &STATS.f32,
    &STATS.f16,
    &NORMALIZE.f32,
    &NORMALIZE.f16,
    &BACKWARD_REDUCE.f32,
    &BACKWARD_REDUCE.f16,
    &BACKWARD_INPUT.f32,
    &BACKWARD_INPUT.f16,
];
