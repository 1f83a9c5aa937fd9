//! The model interface: what the trainer, evaluation, prediction, checkpoints and the page need
//! from a network. A network implements [`Model`] (its parameter store, its input, its forward
//! pass) and gets the training step, prediction and gradients from the trait; the networks of
//! the zoo are also described by an [`Architecture`], which checkpoints store so that a file
//! rebuilds its model. A network of your own (`examples/custom_network.rs`) trains with the same
//! [`Trainer`](crate::train::Trainer) and saves and loads the same checkpoints.

mod architecture;
mod import;

pub use architecture::{Architecture, MODEL_NAMES};

use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::kernels::loss_scale::LossScaler;
use crate::kernels::sgd::SgdStep;
use crate::kernels::{cast, loss};
use crate::nn::ParamStore;
use crate::tensor::{DType, Tensor};

/// The images a model takes: `channels` planes of `size` x `size` pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputShape {
    /// Colour planes (3 for RGB, 1 for grey).
    pub channels: usize,
    /// Height = width in pixels.
    pub size: usize,
}

impl InputShape {
    /// Checks that `x` is a non-empty batch of such images; the error names `op` and both shapes.
    ///
    /// # Shapes
    /// `x`: `[B, channels, size, size]` with B >= 1
    pub fn check(&self, op: &'static str, x: &Tensor) -> Result<()> {
        let batch = x.shape().first().copied().unwrap_or(0);
        if x.shape() != [batch, self.channels, self.size, self.size] || batch == 0 {
            return Err(Error::shape(
                op,
                format!(
                    "input is {:?}, expected [B, {}, {}, {}]",
                    x.shape(),
                    self.channels,
                    self.size,
                    self.size
                ),
            ));
        }
        Ok(())
    }
}

/// What one training step leaves on the GPU.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// Per image (loss, correct) `[B, 2]`: read it back only when the numbers are wanted.
    pub rows: Tensor,
}

/// A classification network whose parameters live in one [`ParamStore`] on one GPU context.
///
/// Implement the four required methods; the training step, prediction and gradients come with
/// the trait, and so does everything above it: [`Trainer`](crate::train::Trainer),
/// [`evaluate`](crate::train::evaluate) and [`Checkpoint`](crate::checkpoint::Checkpoint).
pub trait Model {
    /// The parameters and buffers.
    fn store(&self) -> &ParamStore;

    /// The parameters and buffers, mutably (training, loading a checkpoint).
    fn store_mut(&mut self) -> &mut ParamStore;

    /// The images it takes.
    fn input(&self) -> InputShape;

    /// Output classes.
    fn classes(&self) -> usize;

    /// Runs the network: in training mode BatchNorm uses batch statistics and updates its
    /// running estimates, and `tape` records the backward pass; in eval mode (`train` false,
    /// on [`Tape::inference`]) it uses the running estimates.
    ///
    /// # Shapes
    /// `x`: `[B, channels, size, size]` → logits `[B, classes]` (f32, or f16: the training step
    /// and prediction widen them)
    fn forward(&self, tape: &mut Tape, x: &Tensor, train: bool) -> Result<Var>;

    /// The zoo's description that rebuilds this model (None: a network built by its caller,
    /// whose checkpoints load into a network the caller builds the same way).
    fn architecture(&self) -> Option<Architecture> {
        None
    }

    /// The GPU context its parameters live on.
    fn context(&self) -> &Context {
        self.store().context()
    }

    /// One SGD training step on a batch: forward, cross-entropy, backward, update. Everything
    /// is recorded into the open command encoder; nothing is submitted or read back.
    ///
    /// # Shapes
    /// `x`: `[B, channels, size, size]`, `labels`: `[B]` (class indices as f32)
    fn train_step(&mut self, x: &Tensor, labels: &Tensor, step: &SgdStep) -> Result<StepOutput> {
        self.train_step_scaled(x, labels, step, None)
    }

    /// [`Model::train_step`] with dynamic loss scaling (mixed precision): the loss gradient is
    /// scaled before backward, the gradients unscaled after it, the update skipped when one is
    /// not finite, and the scale updated (see [`LossScaler`]).
    ///
    /// # Shapes
    /// as [`Model::train_step`]
    fn train_step_scaled(
        &mut self,
        x: &Tensor,
        labels: &Tensor,
        step: &SgdStep,
        scaler: Option<&LossScaler>,
    ) -> Result<StepOutput> {
        let out = self.compute_gradients_on(Tape::new(), x, labels, scaler)?;
        apply_gradients(self.store(), step, scaler)?;
        Ok(out)
    }

    /// Eval-mode logits (running BatchNorm estimates).
    ///
    /// # Shapes
    /// `x`: `[B, channels, size, size]` → `[B, classes]` f32
    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        let mut tape = Tape::inference();
        cast::to_dtype(self.forward(&mut tape, x, false)?.value(), DType::F32)
    }

    /// Eval-mode class probabilities: the softmax of [`Model::predict`]'s logits, on the GPU.
    ///
    /// # Shapes
    /// `x`: `[B, channels, size, size]` → `[B, classes]`
    fn predict_probabilities(&self, x: &Tensor) -> Result<Tensor> {
        loss::softmax(&self.predict(x)?)
    }

    /// Gradients only (no update): for gradient checks and data-parallel steps, whose
    /// gradients are summed over the ranks before the update. Returns the per-row loss.
    ///
    /// # Shapes
    /// as [`Model::train_step`]
    fn compute_gradients(&mut self, x: &Tensor, labels: &Tensor) -> Result<StepOutput> {
        self.compute_gradients_on(Tape::new(), x, labels, None)
    }

    /// [`Model::compute_gradients`] recorded on `tape` (one with
    /// [`Tape::with_batch_norm_sync`], say: a data-parallel step's), with the loss gradient
    /// scaled by `scaler` (mixed precision; [`apply_gradients`] unscales).
    ///
    /// # Shapes
    /// as [`Model::train_step`]
    fn compute_gradients_on(
        &mut self,
        mut tape: Tape,
        x: &Tensor,
        labels: &Tensor,
        scaler: Option<&LossScaler>,
    ) -> Result<StepOutput> {
        self.store_mut().zero_grads();
        let logits = self.forward(&mut tape, x, true)?;
        // The loss in f32; its gradient goes back in the logits' dtype.
        let wide = cast::to_dtype(logits.value(), DType::F32)?;
        let ce = loss::softmax_cross_entropy(&wide, labels)?;
        if let Some(scaler) = scaler {
            scaler.scale_grad(&ce.dlogits)?;
        }
        let seed = cast::to_dtype(&ce.dlogits, logits.value().dtype())?;
        tape.backward(&logits, seed, self.store_mut())?;
        Ok(StepOutput { rows: ce.rows })
    }
}

/// The update after [`Model::compute_gradients_on`]: with a loss scaler the gradients are
/// unscaled, the step skipped when one is not finite, and the scale updated (see
/// [`LossScaler`]); then (or without one) the SGD step.
pub fn apply_gradients(
    store: &ParamStore,
    step: &SgdStep,
    scaler: Option<&LossScaler>,
) -> Result<()> {
    if let Some(scaler) = scaler {
        scaler.unscale(store.flat().1)?;
    }
    store.sgd_step(step, scaler)?;
    if let Some(scaler) = scaler {
        scaler.update()?;
    }
    Ok(())
}

/// A boxed model is a model (the command line picks the network at run time).
impl<M: Model + ?Sized> Model for Box<M> {
    fn store(&self) -> &ParamStore {
        (**self).store()
    }

    fn store_mut(&mut self) -> &mut ParamStore {
        (**self).store_mut()
    }

    fn input(&self) -> InputShape {
        (**self).input()
    }

    fn classes(&self) -> usize {
        (**self).classes()
    }

    fn forward(&self, tape: &mut Tape, x: &Tensor, train: bool) -> Result<Var> {
        (**self).forward(tape, x, train)
    }

    fn architecture(&self) -> Option<Architecture> {
        (**self).architecture()
    }

    fn train_step_scaled(
        &mut self,
        x: &Tensor,
        labels: &Tensor,
        step: &SgdStep,
        scaler: Option<&LossScaler>,
    ) -> Result<StepOutput> {
        (**self).train_step_scaled(x, labels, step, scaler)
    }

    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        (**self).predict(x)
    }

    fn compute_gradients(&mut self, x: &Tensor, labels: &Tensor) -> Result<StepOutput> {
        (**self).compute_gradients(x, labels)
    }

    fn compute_gradients_on(
        &mut self,
        tape: Tape,
        x: &Tensor,
        labels: &Tensor,
        scaler: Option<&LossScaler>,
    ) -> Result<StepOutput> {
        (**self).compute_gradients_on(tape, x, labels, scaler)
    }
}
