//! Softmax and softmax cross-entropy (`shaders/loss.wgsl`).

use crate::error::{Error, Result};
use crate::gpu::{Access, KernelSpec, storage};
use crate::shaders;
use crate::tensor::Tensor;

/// The uniform block of `shaders/loss.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LossParams {
    batch: u32,
    classes: u32,
}

static SOFTMAX_CROSS_ENTROPY: KernelSpec = KernelSpec {
    shader: &shaders::LOSS,
    entry: "softmax_cross_entropy",
    bindings: &storage([
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
    ]),
    workgroup_size: 64,
    params_size: size_of::<LossParams>(),
    activations: 0,
};

static SOFTMAX: KernelSpec = KernelSpec {
    shader: &shaders::LOSS,
    entry: "softmax",
    bindings: &[(1, Access::Read), (3, Access::ReadWrite)],
    workgroup_size: 64,
    params_size: size_of::<LossParams>(),
    activations: 0,
};

/// Result of [`softmax_cross_entropy`].
#[derive(Clone, Debug)]
pub struct CrossEntropy {
    /// Gradient of the mean loss with respect to the logits, `[B, classes]`.
    pub dlogits: Tensor,
    /// Per row: (loss, 1 if the arg-max equals the label), `[B, 2]`; read it back only when
    /// the caller wants the numbers.
    pub rows: Tensor,
}

impl CrossEntropy {
    /// Mean loss and accuracy from the per-row values (reads back `[B, 2]` floats).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn mean_loss_and_accuracy(&self) -> Result<(f64, f64)> {
        Ok(summarize(&self.rows.to_vec()?))
    }
}

/// Mean loss and accuracy from read-back `[B, 2]` row values (a last, unpaired value is not a
/// row and is left out).
///
/// # Shapes
/// `rows`: `[B, 2]` flattened.
pub fn summarize(rows: &[f32]) -> (f64, f64) {
    let n = (rows.len() / 2).max(1) as f64;
    let loss: f64 = rows.chunks_exact(2).map(|r| f64::from(r[0])).sum();
    let correct: f64 = rows.chunks_exact(2).map(|r| f64::from(r[1])).sum();
    (loss / n, correct / n)
}

/// Row-wise softmax: class probabilities from logits (computed through the row's log-sum-exp,
/// so large logits do not overflow).
///
/// # Shapes
/// `logits`: `[B, classes]` → `[B, classes]`
pub fn softmax(logits: &Tensor) -> Result<Tensor> {
    let [b, classes] = *logits.shape() else {
        return Err(Error::shape(
            "softmax",
            format!("logits must be [batch, classes], got {:?}", logits.shape()),
        ));
    };
    let ctx = logits.context();
    let probabilities = Tensor::uninit(ctx, &[b, classes])?;
    ctx.dispatch(
        &SOFTMAX,
        &[],
        &LossParams {
            batch: b as u32,
            classes: classes as u32,
        },
        &[logits, &probabilities],
        b as u64,
    )?;
    Ok(probabilities)
}

/// Softmax cross-entropy with mean reduction: loss and gradient in one pass.
/// `labels` holds class indices as f32 (exact up to 2^24).
///
/// # Shapes
/// `logits`: `[B, classes]`, `labels`: `[B]` → `dlogits` `[B, classes]`, `rows` `[B, 2]`
pub fn softmax_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<CrossEntropy> {
    let op = "softmax_cross_entropy";
    let [b, classes] = *logits.shape() else {
        return Err(Error::shape(
            op,
            format!("logits must be [batch, classes], got {:?}", logits.shape()),
        ));
    };
    if labels.shape() != [b] {
        return Err(Error::shape(
            op,
            format!("labels are {:?}, expected [{b}]", labels.shape()),
        ));
    }
    let ctx = logits.context();
    let dlogits = Tensor::uninit(ctx, &[b, classes])?;
    let rows = Tensor::uninit(ctx, &[b, 2])?;
    ctx.dispatch(
        &SOFTMAX_CROSS_ENTROPY,
        &[],
        &LossParams {
            batch: b as u32,
            classes: classes as u32,
        },
        &[logits, labels, &dlogits, &rows],
        b as u64,
    )?;
    Ok(CrossEntropy { dlogits, rows })
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[&SOFTMAX_CROSS_ENTROPY, &SOFTMAX];
