//! Dynamic loss scaling for mixed precision (`shaders/loss_scale.wgsl`), PyTorch GradScaler's
//! semantics on the GPU: the loss gradient is multiplied by the scale (initially 2^16), the
//! gradients divided by it after backward; a step whose gradients hold an infinity or NaN is
//! skipped and halves the scale; 2000 clean steps in a row double it.

use crate::error::{Error, Result};
use crate::gpu::{Access, Context, KernelSpec};
use crate::shaders;
use crate::tensor::Tensor;

/// The uniform block of `shaders/loss_scale.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LossScaleParams {
    len: u32,
    growth_interval: u32,
}

static SCALE: KernelSpec = KernelSpec {
    shader: &shaders::LOSS_SCALE,
    entry: "scale_grad",
    bindings: &[(1, Access::ReadWrite), (2, Access::ReadWrite)],
    workgroup_size: 64,
    params_size: size_of::<LossScaleParams>(),
    activations: 0,
};

static UNSCALE: KernelSpec = KernelSpec {
    shader: &shaders::LOSS_SCALE,
    entry: "unscale",
    bindings: &[(1, Access::ReadWrite), (2, Access::ReadWrite)],
    workgroup_size: 64,
    params_size: size_of::<LossScaleParams>(),
    activations: 0,
};

static UPDATE: KernelSpec = KernelSpec {
    shader: &shaders::LOSS_SCALE,
    entry: "update",
    bindings: &[(2, Access::ReadWrite)],
    workgroup_size: 1,
    params_size: size_of::<LossScaleParams>(),
    activations: 0,
};

/// PyTorch's GradScaler defaults.
pub const INITIAL_SCALE: f32 = 65536.0;
/// Clean steps before the scale doubles.
pub const GROWTH_INTERVAL: u32 = 2000;

/// The scaler's state on the GPU (four words: scale, clean steps, the non-finite flag of the
/// step in flight, steps skipped).
#[derive(Clone, Debug)]
pub struct LossScaler {
    state: Tensor,
    growth_interval: u32,
}

/// The scaler's state as read back (and as a checkpoint keeps it, to resume exactly).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScalerState {
    /// The loss scale.
    pub scale: f32,
    /// Clean steps since it last changed.
    pub clean_steps: u32,
    /// Steps skipped so far because a gradient was not finite.
    pub skipped: u32,
}

impl LossScaler {
    /// A scaler at `scale` (a power of two) that doubles after `growth_interval` clean steps.
    pub fn new(ctx: &Context, scale: f32, growth_interval: u32) -> Result<Self> {
        if !(scale.is_finite() && scale > 0.0 && scale.log2().fract() == 0.0) {
            return Err(Error::InvalidArgument(format!(
                "loss scale {scale} is not a positive power of two"
            )));
        }
        if growth_interval == 0 {
            return Err(Error::InvalidArgument(
                "the loss scale's growth interval must be at least 1 step".into(),
            ));
        }
        let words = [
            scale,
            f32::from_bits(0),
            f32::from_bits(0),
            f32::from_bits(0),
        ];
        Ok(Self {
            state: Tensor::from_slice(ctx, &[4], &words)?,
            growth_interval,
        })
    }

    /// A scaler that continues from `state` (a resumed run), doubling after `growth_interval`
    /// clean steps.
    pub fn from_state(ctx: &Context, state: &ScalerState, growth_interval: u32) -> Result<Self> {
        let scaler = Self::new(ctx, state.scale, growth_interval)?;
        let words = [
            state.scale,
            f32::from_bits(state.clean_steps),
            f32::from_bits(0),
            f32::from_bits(state.skipped),
        ];
        scaler.state.write(&words)?;
        Ok(scaler)
    }

    /// GradScaler's defaults: 2^16, doubling after 2000 clean steps.
    pub fn with_defaults(ctx: &Context) -> Result<Self> {
        Self::new(ctx, INITIAL_SCALE, GROWTH_INTERVAL)
    }

    /// The state tensor (word 2 is what a skippable SGD step reads).
    pub fn state(&self) -> &Tensor {
        &self.state
    }

    fn run(&self, spec: &KernelSpec, values: Option<&Tensor>) -> Result<()> {
        let len = values.map_or(1, Tensor::numel);
        let params = LossScaleParams {
            len: len as u32,
            growth_interval: self.growth_interval,
        };
        let ctx = self.state.context();
        match values {
            Some(v) => ctx.dispatch(spec, &[], &params, &[v, &self.state], len as u64),
            None => ctx.dispatch(spec, &[], &params, &[&self.state], 1),
        }
    }

    /// Multiplies the loss gradient by the scale, in place.
    ///
    /// # Shapes
    /// `dloss`: any
    pub fn scale_grad(&self, dloss: &Tensor) -> Result<()> {
        self.run(&SCALE, Some(dloss))
    }

    /// Divides the gradients by the scale, in place, and raises the step's flag if one of
    /// them is not finite.
    ///
    /// # Shapes
    /// `grads`: any (one flat buffer of every gradient)
    pub fn unscale(&self, grads: &Tensor) -> Result<()> {
        self.run(&UNSCALE, Some(grads))
    }

    /// Ends the step: halves the scale and counts the step as skipped if its flag is raised
    /// (and lowers it), else counts a clean step and doubles the scale after the interval.
    pub fn update(&self) -> Result<()> {
        self.run(&UPDATE, None)
    }

    /// Reads the state back.
    pub async fn read(&self) -> Result<ScalerState> {
        let words = self.state.read().await?;
        Ok(ScalerState {
            scale: words[0],
            clean_steps: words[1].to_bits(),
            skipped: words[3].to_bits(),
        })
    }
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[&SCALE, &UNSCALE, &UPDATE];
