//! The training loop, shared by the CLI and the web page: it never prints and never touches the
//! file system. The caller drives it step by step ([`Trainer::step`] is async, so it also runs
//! in a browser without blocking) and decides what to show and what to save.

mod eval;

pub use eval::{EvalReport, check_data_fits, evaluate};

use serde::{Deserialize, Serialize};

use std::rc::Rc;
use std::sync::Arc;

use crate::autograd::Tape;
use crate::data::{Augment, Batcher, Dataset, Prefetch, StepBatches};
use crate::dist::{BatchNormStats, BatchNormSync, Communicator};
use crate::error::{Error, Result};
use crate::gpu::Precision;
use crate::kernels::loss::summarize;
use crate::kernels::loss_scale::{LossScaler, ScalerState};
use crate::kernels::sgd::SgdStep;
use crate::model::{Model, apply_gradients};
use crate::optim::LrSchedule;
use crate::tensor::Tensor;

/// How to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Passes over the training set.
    pub epochs: usize,
    /// Stop after this many steps in total (None: run every epoch).
    pub max_steps: Option<u64>,
    /// Images per step.
    pub batch_size: usize,
    /// Learning rate over time.
    pub lr: LrSchedule,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 penalty on every parameter (BatchNorm included, as in the paper's recipe).
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Training augmentation (None: the images as they are).
    pub augment: Option<Augment>,
    /// Shuffle every epoch.
    pub shuffle: bool,
    /// Seed of the initialisation, the order and the augmentation.
    pub seed: u64,
    /// Read the loss back every this many steps (reading stalls the GPU pipeline).
    pub report_every: u64,
    /// The precision of the products (mixed: f16 operands and activations, f32 master weights
    /// and sums, with dynamic loss scaling).
    #[serde(default)]
    pub precision: Precision,
}

/// How far training got: what a checkpoint stores to resume exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Steps done.
    pub step: u64,
    /// Under mixed precision, the loss scaler's state (None: a new scaler at GradScaler's
    /// defaults). [`Trainer::progress`] leaves it out (it lives on the GPU);
    /// [`Trainer::checkpoint_progress`] reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<ScalerState>,
}

/// What one step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Steps done, this one included.
    pub step: u64,
    /// Epoch of this step (0-based).
    pub epoch: usize,
    /// Whether this step finished its epoch.
    pub epoch_done: bool,
    /// Learning rate used.
    pub lr: f64,
    /// Mean loss and accuracy of this step's batch, when it was read back.
    pub metrics: Option<(f64, f64)>,
    /// Images in the batch.
    pub images: usize,
    /// Under mixed precision, the loss scaler's state, read back with the metrics.
    pub scaler: Option<ScalerState>,
}

/// Drives training of one model on one data set: any [`Model`], a boxed one by default (the
/// command line picks the network at run time).
pub struct Trainer<M: Model = Box<dyn Model>> {
    model: M,
    settings: TrainSettings,
    batches: Prefetch,
    progress: Progress,
    scaler: Option<LossScaler>,
    comm: Option<Rc<dyn Communicator>>,
    batch_norm: BatchNormStats,
    /// Whether the pipelines of a step were built ahead ([`Trainer::prebuild_pipelines`]).
    #[cfg(not(target_arch = "wasm32"))]
    prebuilt: bool,
}

impl<M: Model> Trainer<M> {
    /// Prepares training of `model` on `data`, starting at `progress` (zero for a new run).
    pub fn new(
        model: M,
        data: Dataset,
        settings: TrainSettings,
        progress: Progress,
    ) -> Result<Self> {
        eval::check_data_fits(&model, &data)?;
        if settings.batch_size < 2 {
            return Err(Error::InvalidArgument(
                "batch size must be at least 2 (BatchNorm needs batch statistics)".into(),
            ));
        }
        if data.len() < settings.batch_size {
            return Err(Error::InvalidArgument(format!(
                "{} has {} images, fewer than one batch of {}",
                data.name,
                data.len(),
                settings.batch_size
            )));
        }
        let input = model.input();
        let batcher = Batcher {
            batch_size: settings.batch_size,
            size: input.size,
            channels: input.channels,
            augment: settings.augment,
            normalize: None,
            shuffle: settings.shuffle,
            seed: settings.seed,
        };
        let steps = StepBatches::new(batcher, data.len());
        let end = total_steps(&settings, steps.steps_per_epoch());
        let batches = Prefetch::new(Arc::new(data), steps, end);
        let ctx = model.context().clone();
        ctx.set_precision(settings.precision)?;
        let scaler = match (settings.precision, &progress.loss_scale) {
            (Precision::Mixed, Some(state)) => Some(LossScaler::from_state(
                &ctx,
                state,
                crate::kernels::loss_scale::GROWTH_INTERVAL,
            )?),
            (Precision::Mixed, None) => Some(LossScaler::with_defaults(&ctx)?),
            (Precision::F32, _) => None,
        };
        Ok(Self {
            model,
            settings,
            batches,
            progress,
            scaler,
            comm: None,
            batch_norm: BatchNormStats::PerRank,
            #[cfg(not(target_arch = "wasm32"))]
            prebuilt: false,
        })
    }

    /// Makes this trainer one rank of a data-parallel run over `comm`: every rank builds the
    /// same trainer (model, data, settings, progress), takes its share of each global batch
    /// (the batches of one process with the same batch size, split by slots), and every step
    /// sums the ranks' gradients (each weighted by its share of the images) and applies the
    /// same SGD step, so the ranks' weights stay identical. Rank 0's parameters, momentum and
    /// buffers are broadcast first. `batch_norm` says whose images BatchNorm's statistics are
    /// over: each rank's own (as PyTorch's DDP does; the running estimates are then averaged
    /// over the ranks at every step that reads metrics back, which for these linear averages
    /// is the same as averaging them every step), or the whole global batch's
    /// ([`BatchNormStats::Synchronised`]: the single process's numbers). Metrics are those of
    /// the whole global batch. Under mixed precision the ranks' loss scales start alike and
    /// stay alike (each rank's loss is the mean over its own share, so the scale settles lower
    /// than one process's). Needs at least two images per rank.
    pub async fn distributed(
        mut self,
        comm: Box<dyn Communicator>,
        batch_norm: BatchNormStats,
    ) -> Result<Self> {
        let ranks = comm.size();
        if self.settings.batch_size < 2 * ranks {
            return Err(Error::InvalidArgument(format!(
                "batch size {} over {ranks} ranks leaves a rank fewer than 2 images (BatchNorm needs batch statistics)",
                self.settings.batch_size
            )));
        }
        let steps = self.batches.steps().clone().share(comm.rank(), ranks);
        self.batches = Prefetch::new(self.batches.data().clone(), steps, self.total_steps());
        let ctx = self.model.context().clone();
        ctx.flush()?;
        let store = self.model.store();
        let (values, _, momentum) = store.flat();
        for tensor in [values, momentum]
            .into_iter()
            .chain(store.buffers().iter().map(|(_, t)| t))
        {
            let mut host = tensor.read().await?;
            comm.broadcast(&mut host, 0)?;
            tensor.write(&host)?;
        }
        self.comm = Some(Rc::from(comm));
        self.batch_norm = batch_norm;
        Ok(self)
    }

    /// Whether `flag` is set on any rank (`flag` itself outside a data-parallel run): every
    /// rank calls it at the same step, so that all stop together (an interrupt, say).
    pub fn any_rank(&self, flag: bool) -> Result<bool> {
        let Some(comm) = &self.comm else {
            return Ok(flag);
        };
        let mut count = [f32::from(u8::from(flag))];
        comm.all_reduce_sum(&mut count)?;
        Ok(count[0] > 0.0)
    }

    /// This rank and the number of ranks (0 of 1 outside a data-parallel run).
    pub fn rank(&self) -> (usize, usize) {
        self.comm.as_ref().map_or((0, 1), |c| (c.rank(), c.size()))
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Gives the model back.
    pub fn into_model(self) -> M {
        self.model
    }

    /// The training data.
    pub fn data(&self) -> &Dataset {
        self.batches.data()
    }

    /// The settings.
    pub fn settings(&self) -> &TrainSettings {
        &self.settings
    }

    /// Where training stands (the step; see [`Trainer::checkpoint_progress`]).
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// Where training stands, with the loss scaler's state read back from the GPU under mixed
    /// precision: what a checkpoint keeps to resume exactly.
    pub async fn checkpoint_progress(&self) -> Result<Progress> {
        let loss_scale = match &self.scaler {
            Some(s) => Some(s.read().await?),
            None => None,
        };
        Ok(Progress {
            loss_scale,
            ..self.progress
        })
    }

    /// Steps in one epoch.
    pub fn steps_per_epoch(&self) -> u64 {
        self.batches.steps().steps_per_epoch()
    }

    /// Steps of the whole run.
    pub fn total_steps(&self) -> u64 {
        total_steps(&self.settings, self.steps_per_epoch())
    }

    /// Whether every step has run.
    pub fn is_done(&self) -> bool {
        self.progress.step >= self.total_steps()
    }

    /// The epoch the next step belongs to.
    pub fn epoch(&self) -> usize {
        (self.progress.step / self.steps_per_epoch().max(1)) as usize
    }

    /// The learning rate of step `step`.
    pub fn lr_at(&self, step: u64) -> f64 {
        self.settings
            .lr
            .lr_at(step as f64 / self.steps_per_epoch().max(1) as f64)
    }

    /// Before the first step: the pipelines a step needs (and, where the tuner times in `full`
    /// mode, every candidate's), built together on all the CPU's threads
    /// ([`crate::Context::prebuild_pipelines`]) from a step of a throwaway network of the model's
    /// architecture (the model's own weights and state, and the loss scale, are not touched;
    /// the throwaway's dispatches are not even recorded). A model without an architecture
    /// builds its pipelines as its step goes.
    #[cfg(not(target_arch = "wasm32"))]
    fn prebuild_pipelines(&self, x: &Tensor, labels: &Tensor, sgd: &SgdStep) {
        let Some(architecture) = self.model.architecture() else {
            return;
        };
        let ctx = self.model.context().clone();
        let mut ran = Ok(());
        let prebuilt = ctx.prebuild_pipelines(|| {
            ran = (|| {
                let scaler = match self.scaler {
                    Some(_) => Some(LossScaler::with_defaults(&ctx)?),
                    None => None,
                };
                let mut throwaway = architecture.build(&ctx, 0)?;
                throwaway.train_step_scaled(x, labels, sgd, scaler.as_ref())?;
                Ok::<(), Error>(())
            })();
        });
        match ran {
            Ok(()) => log::info!(
                "{} pipelines built before the first step, {:.1} s on {} threads",
                prebuilt.built,
                prebuilt.ms / 1e3,
                prebuilt.threads
            ),
            Err(e) => log::warn!("building a step's pipelines ahead: {e}"),
        }
    }

    /// Runs one training step. The step is submitted at once; the next batches are prepared on
    /// the CPU while the GPU works (natively on a background thread, see [`Prefetch`]; a
    /// streamed image folder's file that cannot be decoded then is an error naming it); the
    /// loss is read back every `report_every` steps and at the end of each epoch, and a
    /// non-finite loss there is an [`Error::Diverged`]. In a data-parallel run
    /// ([`Trainer::distributed`]) the gradients are summed over the ranks before the update.
    pub async fn step(&mut self) -> Result<StepReport> {
        if self.is_done() {
            return Err(Error::InvalidArgument(
                "training is already complete".into(),
            ));
        }
        let step = self.progress.step;
        let batch = self.batches.take(step)?;
        let ctx = self.model.context().clone();
        let input = self.model.input();
        let x = Tensor::from_slice(
            &ctx,
            &[batch.len, input.channels, input.size, input.size],
            &batch.pixels,
        )?;
        let labels = Tensor::from_slice(&ctx, &[batch.len], &batch.labels)?;
        let lr = self.lr_at(step);
        let sgd = SgdStep {
            lr: lr as f32,
            momentum: self.settings.momentum as f32,
            weight_decay: self.settings.weight_decay as f32,
            nesterov: self.settings.nesterov,
        };
        #[cfg(not(target_arch = "wasm32"))]
        if !self.prebuilt {
            self.prebuilt = true;
            // What was recorded before (and its errors) stays apart from the throwaway's work.
            ctx.flush()?;
            self.prebuild_pipelines(&x, &labels, &sgd);
        }
        let out = match &self.comm {
            None => self
                .model
                .train_step_scaled(&x, &labels, &sgd, self.scaler.as_ref())?,
            Some(comm) => {
                let tape = match self.batch_norm {
                    BatchNormStats::PerRank => Tape::new(),
                    BatchNormStats::Synchronised => Tape::new().with_batch_norm_sync(
                        BatchNormSync::new(comm.clone(), self.settings.batch_size),
                    ),
                };
                let scaler = self.scaler.as_ref();
                let out = self.model.compute_gradients_on(tape, &x, &labels, scaler)?;
                ctx.flush()?;
                let share = batch.len as f32 / self.settings.batch_size as f32;
                let grads = self.model.store().flat().1;
                let mut host = grads.read().await?;
                host.iter_mut().for_each(|g| *g *= share);
                comm.all_reduce_sum(&mut host)?;
                grads.write(&host)?;
                // The summed gradients are the same bits on every rank, so under mixed
                // precision every rank finds them finite or not alike, and skips or takes the
                // step and updates its loss scale alike.
                apply_gradients(self.model.store(), &sgd, scaler)?;
                out
            }
        };
        ctx.flush()?;
        self.progress.step += 1;
        let epoch = (step / self.steps_per_epoch().max(1)) as usize;
        let epoch_done = self
            .progress
            .step
            .is_multiple_of(self.steps_per_epoch().max(1));
        self.batches.prepare(self.progress.step);
        let report = epoch_done
            || self.is_done()
            || self
                .progress
                .step
                .is_multiple_of(self.settings.report_every.max(1));
        let metrics = if report {
            let (loss, accuracy) = self.global_metrics(&out.rows.read().await?).await?;
            if !loss.is_finite() {
                return Err(Error::Diverged {
                    step: self.progress.step,
                    what: format!("the batch loss is {loss}"),
                });
            }
            Some((loss, accuracy))
        } else {
            None
        };
        let scaler = match (&self.scaler, metrics.is_some()) {
            (Some(s), true) => Some(s.read().await?),
            _ => None,
        };
        Ok(StepReport {
            step: self.progress.step,
            epoch,
            epoch_done,
            lr,
            metrics,
            images: match self.comm {
                Some(_) => self.settings.batch_size,
                None => batch.len,
            },
            scaler,
        })
    }

    /// Mean loss and accuracy of the step's rows (`[b, 2]`: loss, correct); in a data-parallel
    /// run over every rank's rows, and BatchNorm's running estimates averaged over the ranks
    /// (when each rank has its own; synchronised ones are the same on every rank).
    async fn global_metrics(&self, rows: &[f32]) -> Result<(f64, f64)> {
        let Some(comm) = &self.comm else {
            return Ok(summarize(rows));
        };
        let (loss, accuracy) = summarize(rows);
        let images = (rows.len() / 2) as f32;
        let mut sums = [loss as f32 * images, accuracy as f32 * images, images];
        comm.all_reduce_sum(&mut sums)?;
        let means = (f64::from(sums[0] / sums[2]), f64::from(sums[1] / sums[2]));
        if self.batch_norm == BatchNormStats::Synchronised {
            return Ok(means);
        }
        // Each rank's running estimates weighted by its share of the batch; the batch counts
        // (equal on every rank) are left as they are.
        let weight = images / self.settings.batch_size as f32;
        let estimates = self.model.store().buffers().iter();
        for (_, buffer) in estimates.filter(|(name, _)| !name.ends_with("num_batches_tracked")) {
            let mut host = buffer.read().await?;
            host.iter_mut().for_each(|v| *v *= weight);
            comm.all_reduce_sum(&mut host)?;
            buffer.write(&host)?;
        }
        Ok(means)
    }
}

/// Steps of a run of `settings` with `per_epoch` steps an epoch.
fn total_steps(settings: &TrainSettings, per_epoch: u64) -> u64 {
    let all = per_epoch * settings.epochs as u64;
    settings.max_steps.map_or(all, |m| m.min(all))
}
