//! SGD over a flat parameter buffer (`shaders/sgd.wgsl`).

use crate::error::{Error, Result};
use crate::gpu::{Access, KernelSpec, storage};
use crate::shaders;
use crate::tensor::Tensor;

use super::loss_scale::LossScaler;

/// The uniform block of `shaders/sgd.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SgdParams {
    len: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: u32,
    /// 1: skip the step where the loss scaler's state says so.
    skippable: u32,
}

static STEP: KernelSpec = KernelSpec {
    shader: &shaders::SGD,
    entry: "step",
    bindings: &storage([
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Read,
    ]),
    workgroup_size: 64,
    params_size: size_of::<SgdParams>(),
    activations: 0,
};

/// SGD hyper-parameters for one step (PyTorch semantics, dampening 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    /// Learning rate of this step.
    pub lr: f32,
    /// Momentum factor.
    pub momentum: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// One SGD step over every parameter at once: updates `weights` and `momentum` in place; with
/// a loss scaler, nothing changes when its flag says this step's gradients are not finite.
///
/// # Shapes
/// `grads`, `weights`, `momentum`: the same number of elements
pub fn sgd_step(
    grads: &Tensor,
    weights: &Tensor,
    momentum: &Tensor,
    step: &SgdStep,
    scaler: Option<&LossScaler>,
) -> Result<()> {
    if grads.numel() != weights.numel() || momentum.numel() != weights.numel() {
        return Err(Error::shape(
            "sgd_step",
            format!(
                "grads {:?}, weights {:?} and momentum {:?} differ in size",
                grads.shape(),
                weights.shape(),
                momentum.shape()
            ),
        ));
    }
    let params = SgdParams {
        len: weights.numel() as u32,
        lr: step.lr,
        momentum: step.momentum,
        weight_decay: step.weight_decay,
        nesterov: u32::from(step.nesterov),
        skippable: u32::from(scaler.is_some()),
    };
    let ctx = weights.context();
    // Without a scaler the shader never reads the state binding (skippable is 0).
    let spare;
    let state = match scaler {
        Some(s) => s.state(),
        None => {
            spare = super::placeholder(ctx)?;
            &spare
        }
    };
    ctx.dispatch(
        &STEP,
        &[],
        &params,
        &[grads, weights, momentum, state],
        weights.numel() as u64,
    )
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[&STEP];
