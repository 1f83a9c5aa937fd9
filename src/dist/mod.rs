//! Data-parallel training over several processes: the [`Communicator`] seam the
//! [`Trainer`](crate::train::Trainer) talks through, and its implementations: one process
//! ([`SingleProcess`], nothing to exchange) and MPI (`mpi::MpiCommunicator`, the `mpi`
//! feature: any number of GPUs and hosts, `mpirun -n N`). WebGPU cannot share buffers between
//! devices, so every exchange goes through host memory: the trainer reads a step's gradients
//! back in one flat buffer, the communicator sums them over the ranks, and each rank writes the
//! sum back and applies the same SGD step.

#[cfg(all(feature = "mpi", not(target_arch = "wasm32")))]
pub mod mpi;

use crate::error::Result;

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
