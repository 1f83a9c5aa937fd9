//! Data-parallel training over several processes: the [`Communicator`] seam the
//! [`Trainer`](crate::train::Trainer) talks through, and its implementations: one process
//! ([`SingleProcess`], nothing to exchange) and MPI (`mpi::MpiCommunicator`, the `mpi`
//! feature: any number of GPUs and hosts, `mpirun -n N`), and a deadline on any communicator's
//! exchanges ([`Watchdog`], natively). WebGPU cannot share buffers between
//! devices, so every exchange goes through host memory: the trainer reads a step's gradients
//! back in one flat buffer, the communicator sums them over the ranks, and each rank writes the
//! sum back and applies the same SGD step.

#[cfg(all(feature = "mpi", not(target_arch = "wasm32")))]
pub mod mpi;
#[cfg(not(target_arch = "wasm32"))]
mod watchdog;

#[cfg(not(target_arch = "wasm32"))]
pub use watchdog::{ExchangeClock, Leeway, Watchdog};

use std::rc::Rc;

use crate::error::Result;
use crate::tensor::Tensor;

/// How the ranks of a data-parallel run exchange numbers. Every rank calls the same methods in
/// the same order with slices of the same length.
pub trait Communicator {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn size(&self) -> usize;

    /// Replaces `values` on every rank with their element-wise sum over the ranks, the same
    /// bits on every rank (so that every rank's weights stay identical).
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()>;

    /// Replaces `values` on every rank with rank `root`'s.
    fn broadcast(&self, values: &mut [f32], root: usize) -> Result<()>;

    /// Ends the processes of every rank at once, with exit code `code`: what a rank that
    /// cannot go on (an error, a panic) does, since the others would otherwise wait for it in
    /// their next exchange, and an orderly shutdown (MPI's finalisation) waits for every rank.
    fn abort(&self, code: i32) -> !;
}

/// A shared communicator is one (the trainer and its synchronised batch norm hold one, and so
/// may the application, to abort the job on an error).
impl<C: Communicator + ?Sized> Communicator for Rc<C> {
    fn rank(&self) -> usize {
        (**self).rank()
    }

    fn size(&self) -> usize {
        (**self).size()
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        (**self).all_reduce_sum(values)
    }

    fn broadcast(&self, values: &mut [f32], root: usize) -> Result<()> {
        (**self).broadcast(values, root)
    }

    fn abort(&self, code: i32) -> ! {
        (**self).abort(code)
    }
}

/// This process's rank among the ranks on its host, from the variables MPI launchers set
/// (Open MPI, MPICH/Hydra, Slurm); None outside a launcher.
pub fn local_rank_from_env() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// One process: rank 0 of 1, nothing to exchange.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn broadcast(&self, _values: &mut [f32], _root: usize) -> Result<()> {
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Whose images BatchNorm's batch statistics are over in a data-parallel run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchNormStats {
    /// Each rank's own share of the batch (PyTorch DDP's default): no exchange in the forward
    /// pass; the running estimates are averaged over the ranks whenever metrics are read.
    #[default]
    PerRank,
    /// The whole global batch, as one process with the whole batch ([`BatchNormSync`],
    /// `--sync-bn`): the single process's numbers, at three host round trips per layer and step.
    Synchronised,
}

/// Synchronised batch normalisation for a data-parallel step (PyTorch's SyncBatchNorm):
/// training-mode batch norm takes its statistics over the images of every rank's share of the
/// global batch, and its backward pass its gradient sums over them, as one process with the
/// whole batch would. Each exchange reads a few numbers per channel back, adds them over the
/// ranks and writes them back: three host round trips per layer and step. Given to the layers
/// through the tape ([`Tape::with_batch_norm_sync`](crate::autograd::Tape::with_batch_norm_sync)).
#[derive(Clone)]
pub struct BatchNormSync {
    comm: Rc<dyn Communicator>,
    global_batch: usize,
}

impl std::fmt::Debug for BatchNormSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchNormSync")
            .field("ranks", &self.comm.size())
            .field("global_batch", &self.global_batch)
            .finish()
    }
}

impl BatchNormSync {
    /// Statistics over the ranks of `comm`, whose shares make up batches of `global_batch`
    /// images.
    pub fn new(comm: Rc<dyn Communicator>, global_batch: usize) -> Self {
        Self { comm, global_batch }
    }

    /// Images in the global batch (all ranks' shares together).
    pub fn global_batch(&self) -> usize {
        self.global_batch
    }

    /// Replaces `tensor`'s values with their element-wise sum over the ranks, divided by
    /// `divisor`.
    ///
    /// # Shapes
    /// `tensor`: any → the same
    pub fn sum_over_ranks(&self, tensor: &Tensor, divisor: f32) -> Result<()> {
        let mut host = read_blocking(tensor)?;
        self.comm.all_reduce_sum(&mut host)?;
        host.iter_mut().for_each(|v| *v /= divisor);
        tensor.write(&host)
    }

    /// Batch norm backward's per-channel gradient sums over every rank's images, from this
    /// rank's `sums` over its `images`. Each rank's backward pass carries the gradient of its
    /// own mean loss, 1 / share times that of the global batch's mean loss (share = images /
    /// global batch, the weight the step's exchange gives this rank's gradients), so the sums
    /// are weighted by their ranks' shares before they are added and divided by this rank's
    /// share after: the input gradient computed from them is then this rank's part of the
    /// global batch's, in this rank's units.
    ///
    /// # Shapes
    /// `sums`: any → the same
    pub fn sums_for_input_gradient(&self, sums: &Tensor, images: usize) -> Result<Tensor> {
        let share = images as f32 / self.global_batch as f32;
        let mut host = read_blocking(sums)?;
        host.iter_mut().for_each(|s| *s *= share);
        self.comm.all_reduce_sum(&mut host)?;
        host.iter_mut().for_each(|s| *s /= share);
        Tensor::from_slice(sums.context(), sums.shape(), &host)
    }
}

/// `tensor`'s values, waiting for the GPU: the exchanges of synchronised batch norm sit in the
/// middle of the forward and backward passes.
#[cfg(not(target_arch = "wasm32"))]
fn read_blocking(tensor: &Tensor) -> Result<Vec<f32>> {
    tensor.to_vec()
}

/// A browser cannot wait for the GPU in the middle of a pass (and has no ranks to exchange
/// with).
#[cfg(target_arch = "wasm32")]
fn read_blocking(_tensor: &Tensor) -> Result<Vec<f32>> {
    Err(crate::error::Error::InvalidArgument(
        "synchronised batch norm needs blocking read-backs, which a browser does not allow".into(),
    ))
}
