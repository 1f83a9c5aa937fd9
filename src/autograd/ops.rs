//! Differentiable ops: each runs its forward kernels and records its backward pass.

use super::{Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::batchnorm::{self, BatchNormConfig};
use crate::kernels::cast;
use crate::kernels::conv::{self, ConvKind, ConvWeights};
use crate::kernels::elementwise::{self, BinaryOp};
use crate::kernels::gemm::{self, Layout};
use crate::kernels::pool::{self, PoolWindow};
use crate::kernels::reduce;
use crate::tensor::{DType, Tensor};

/// A model's input as a constant of the tape, stored as the activations of the context's
/// precision (f16 under mixed precision: the layers after it then read and write f16).
///
/// # Shapes
/// any → the same
pub fn input(tape: &mut Tape, x: &Tensor) -> Result<Var> {
    let dtype = x.context().precision().activations();
    Ok(tape.constant(cast::to_dtype(x, dtype)?))
}

/// A convolution of the family in [`crate::kernels::conv`] (fused kernels), any kernel side
/// and stride.
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `w3`: `[N, M/G, K, K]`, `w1`: `[N, M]` or `[N, M, 1, 1]`, `bias`: `[N]` →
/// `[B, N, OH, OW]` with `OH = (H - 1) / stride + 1` (likewise OW)
pub fn conv(
    tape: &mut Tape,
    kind: ConvKind,
    x: &Var,
    w3: Option<&Var>,
    w1: Option<&Var>,
    bias: Option<&Var>,
) -> Result<Var> {
    let weights = ConvWeights {
        w3: w3.map(Var::value),
        w1: w1.map(Var::value),
        bias: bias.map(Var::value),
    };
    let y = conv::forward(&kind, x.value(), &weights)?;
    let mut inputs = vec![x];
    inputs.extend(w3.iter().chain(w1.iter()).chain(bias.iter()).copied());
    let saved_x = x.value().clone();
    let saved_w3 = w3.map(|v| v.value().clone());
    let saved_w1 = w1.map(|v| v.value().clone());
    let (has_w3, has_w1, has_bias) = (w3.is_some(), w1.is_some(), bias.is_some());
    let input = x.value().shape().to_vec();
    Ok(tape.record(
        y,
        &inputs,
        Box::new(move |dy, needs| {
            let mut grads = Vec::with_capacity(needs.len());
            grads.push(if needs[0] {
                let weights = ConvWeights {
                    w3: saved_w3.as_ref(),
                    w1: saved_w1.as_ref(),
                    bias: None,
                };
                Some(conv::backward_input(&kind, dy, &weights, &input)?)
            } else {
                None
            });
            let weight_grads = conv::backward_weight(&kind, &saved_x, dy)?;
            if has_w3 {
                grads.push(weight_grads.dw3);
            }
            if has_w1 {
                let w1_shape = saved_w1
                    .as_ref()
                    .map(|w| w.shape().to_vec())
                    .unwrap_or_default();
                grads.push(weight_grads.dw1.map(|g| g.reshape(&w1_shape)).transpose()?);
            }
            if has_bias {
                grads.push(Some(reduce::sum_channels(dy)?));
            }
            Ok(grads)
        }),
    ))
}

/// HetConv in the unfused form of the PyTorch reproduction (grouped conv + masked 1x1 as two
/// passes each way); same function and gradients as the fused [`conv()`] with `kind` (a
/// [`ConvKind::hetconv`] of any stride).
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `w3`: `[N, M/P, 3, 3]`, `w1`: `[N, M]` or `[N, M, 1, 1]` → `[B, N, OH, OW]`
pub fn hetconv_unfused(
    tape: &mut Tape,
    kind: ConvKind,
    x: &Var,
    w3: &Var,
    w1: &Var,
) -> Result<Var> {
    let y = conv::hetconv_unfused_forward(&kind, x.value(), w3.value(), w1.value())?;
    let (saved_x, saved_w3, saved_w1) = (x.value().clone(), w3.value().clone(), w1.value().clone());
    let input = x.value().shape().to_vec();
    Ok(tape.record(
        y,
        &[x, w3, w1],
        Box::new(move |dy, needs| {
            let dx = if needs[0] {
                Some(conv::hetconv_unfused_backward_input(
                    &kind, dy, &saved_w3, &saved_w1, &input,
                )?)
            } else {
                None
            };
            let g = conv::hetconv_unfused_backward_weight(&kind, &saved_x, dy)?;
            let dw1 = g.dw1.map(|t| t.reshape(saved_w1.shape())).transpose()?;
            Ok(vec![dx, g.dw3, dw1])
        }),
    ))
}

/// Training-mode batch norm (updates the running estimates in place), optionally followed by
/// ReLU in the same kernels, forward and backward (the backward pass recomputes ReLU's mask
/// from the input instead of reading the output). On a tape with
/// [`Tape::with_batch_norm_sync`] the statistics are over every rank's batch.
///
/// # Shapes
/// `x`: `[B, C]` or `[B, C, H, W]`; `gamma`, `beta`, `running_mean`, `running_var`: `[C]` → x's shape
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    tape: &mut Tape,
    x: &Var,
    gamma: &Var,
    beta: &Var,
    running_mean: &Tensor,
    running_var: &Tensor,
    cfg: &BatchNormConfig,
    relu: bool,
) -> Result<Var> {
    let (y, saved) = batchnorm::forward_train(
        x.value(),
        gamma.value(),
        beta.value(),
        running_mean,
        running_var,
        cfg,
        relu,
        tape.batch_norm_sync(),
    )?;
    let (saved_x, saved_gamma) = (x.value().clone(), gamma.value().clone());
    Ok(tape.record(
        y,
        &[x, gamma, beta],
        Box::new(move |dy, _needs| {
            // Through the fused ReLU too (`saved` knows whether the forward pass applied it).
            let (dx, dgamma, dbeta) = batchnorm::backward(&saved_x, dy, &saved_gamma, &saved)?;
            Ok(vec![Some(dx), Some(dgamma), Some(dbeta)])
        }),
    ))
}

/// ReLU.
///
/// # Shapes
/// any → the same
pub fn relu(tape: &mut Tape, x: &Var) -> Result<Var> {
    let y = elementwise::relu(x.value())?;
    let saved = x.value().clone();
    Ok(tape.record(
        y,
        &[x],
        Box::new(move |dy, _| {
            Ok(vec![Some(elementwise::binary(
                BinaryOp::ReluBackward,
                &saved,
                dy,
            )?)])
        }),
    ))
}

/// Max-pool over `window` (2x2 stride 2 for the VGG, 3x3 stride 2 padding 1 for a ResNet stem).
///
/// # Shapes
/// `x`: `[B, C, H, W]` → `[B, C, (H + 2P - K) / S + 1, (W + 2P - K) / S + 1]`
pub fn max_pool(tape: &mut Tape, x: &Var, window: PoolWindow) -> Result<Var> {
    let y = pool::max_pool(x.value(), window)?;
    let saved = x.value().clone();
    Ok(tape.record(
        y,
        &[x],
        Box::new(move |dy, _| Ok(vec![Some(pool::max_pool_backward(&saved, dy, window)?)])),
    ))
}

/// 2x2 max-pool, stride 2 ([`PoolWindow::PAIRS`]).
///
/// # Shapes
/// `x`: `[B, C, H, W]` → `[B, C, H/2, W/2]`
pub fn max_pool2(tape: &mut Tape, x: &Var) -> Result<Var> {
    max_pool(tape, x, PoolWindow::PAIRS)
}

/// Global average pooling: each channel's mean (a ResNet's head).
///
/// # Shapes
/// `x`: `[B, C, H, W]` → `[B, C]`
pub fn global_average_pool(tape: &mut Tape, x: &Var) -> Result<Var> {
    let y = pool::global_average(x.value())?;
    let shape = x.value().shape().to_vec();
    Ok(tape.record(
        y,
        &[x],
        Box::new(move |dy, _| Ok(vec![Some(pool::global_average_backward(dy, &shape)?)])),
    ))
}

/// The elementwise sum `a + b` (a residual connection); the gradient flows to both unchanged.
///
/// # Shapes
/// `a`, `b`: the same shape and dtype → that shape and dtype
pub fn add(tape: &mut Tape, a: &Var, b: &Var) -> Result<Var> {
    let y = elementwise::binary(BinaryOp::Add, a.value(), b.value())?;
    Ok(tape.record(
        y,
        &[a, b],
        Box::new(|dy, _| Ok(vec![Some(dy.clone()), Some(dy.clone())])),
    ))
}

/// A fixed per-channel affine map `x * scale[c] + shift[c]` (a model's input normalisation).
/// Its gradient is `dy * scale[c]`: `scale_zero` holds the scales and zeros for it.
///
/// # Shapes
/// `x`: `[B, C, ...]`, `scale_shift`, `scale_zero`: `[2, C]` → x's shape
pub fn channel_affine(
    tape: &mut Tape,
    x: &Var,
    scale_shift: &Tensor,
    scale_zero: &Tensor,
) -> Result<Var> {
    let y = elementwise::channel_affine(x.value(), scale_shift)?;
    let scale_zero = scale_zero.clone();
    Ok(tape.record(
        y,
        &[x],
        Box::new(move |dy, _| Ok(vec![Some(elementwise::channel_affine(dy, &scale_zero)?)])),
    ))
}

/// A linear layer `y = x @ w^T + b` (PyTorch layout). It runs on f32 activations: f16 ones
/// (mixed precision) are widened first and their gradient rounded back to f16, so that a
/// classifier head and its loss work in f32 (a few values per image).
///
/// # Shapes
/// `x`: `[B, in]` (f32 or f16), `w`: `[out, in]`, `b`: `[out]` → `[B, out]` f32
pub fn linear(tape: &mut Tape, x: &Var, w: &Var, b: &Var) -> Result<Var> {
    let x_dtype = x.value().dtype();
    let x32 = cast::to_dtype(x.value(), DType::F32)?;
    let y = gemm::matmul(
        &x32,
        Layout::AsIs,
        w.value(),
        Layout::Transposed,
        Some(b.value()),
    )?;
    let saved_w = w.value().clone();
    Ok(tape.record(
        y,
        &[x, w, b],
        Box::new(move |dy, needs| {
            let dx = if needs[0] {
                let dx = gemm::matmul(dy, Layout::AsIs, &saved_w, Layout::AsIs, None)?;
                Some(cast::to_dtype(&dx, x_dtype)?)
            } else {
                None
            };
            let dw = gemm::matmul(dy, Layout::Transposed, &x32, Layout::AsIs, None)?;
            let db = reduce::sum_channels(dy)?;
            Ok(vec![dx, Some(dw), Some(db)])
        }),
    ))
}

/// Flattens every axis after the first.
///
/// # Shapes
/// `x`: `[B, ...]` → `[B, product of the rest]`
pub fn flatten(tape: &mut Tape, x: &Var) -> Result<Var> {
    let shape = x.value().shape().to_vec();
    let Some(&batch) = shape.first() else {
        return Err(Error::shape("flatten", "a scalar cannot be flattened"));
    };
    let y = x.value().reshape(&[batch, x.value().numel() / batch])?;
    Ok(tape.record(
        y,
        &[x],
        Box::new(move |dy, _| Ok(vec![Some(dy.reshape(&shape)?)])),
    ))
}
