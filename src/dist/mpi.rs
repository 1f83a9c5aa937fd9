//! The MPI communicator (the `mpi` feature, over the `mpi` crate: Open MPI or MPICH).
//!
//! Launch with `mpirun -n N PROGRAM`: [`MpiCommunicator::from_launcher`] starts MPI when the
//! process was started by an MPI launcher and gives None otherwise. Sums are reduced to rank 0
//! and broadcast from there, so every rank gets the same bits (an all-reduce may add in a
//! different order on different ranks). A rank that dies ends the job: `mpirun` stops the
//! others instead of leaving them waiting in a collective. A rank that stops on an error must
//! [`abort`](super::Communicator::abort) rather than drop its communicator: dropping it
//! finalises MPI, which waits for every rank, and the others wait in their next exchange. A
//! panic while the communicator is alive aborts the job by itself.

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, Root};

use super::Communicator;
use crate::error::{Error, Result};

/// The environment variables an MPI launcher sets in every process it starts (Open MPI,
/// MPICH/Hydra, PMIx, Slurm's PMI).
pub const LAUNCHER_VARIABLES: [&str; 4] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "PMIX_RANK",
    "MPI_LOCALNRANKS",
];

/// MPI's world communicator; MPI is finalised when this is dropped (an orderly shutdown that
/// waits for every rank), or the job aborted when it is dropped by a panic.
pub struct MpiCommunicator {
    // Field order: the communicator goes before the universe that finalises MPI.
    world: SimpleCommunicator,
    _universe: mpi::environment::Universe,
}

impl MpiCommunicator {
    /// Starts MPI if this process was started by an MPI launcher (None otherwise: a plain run).
    pub fn from_launcher() -> Result<Option<Self>> {
        if !LAUNCHER_VARIABLES
            .iter()
            .any(|v| std::env::var_os(v).is_some())
        {
            return Ok(None);
        }
        let universe = mpi::initialize().ok_or_else(|| {
            Error::InvalidArgument("MPI was already initialised in this process".into())
        })?;
        Ok(Some(Self {
            world: universe.world(),
            _universe: universe,
        }))
    }

    /// The rank among the ranks on this host (to pick one of the host's GPUs).
    pub fn local_rank(&self) -> usize {
        super::local_rank_from_env().unwrap_or(self.rank())
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        let root = self.world.process_at_rank(0);
        if self.world.rank() == 0 {
            let mut sum = vec![0.0f32; values.len()];
            root.reduce_into_root(&values[..], &mut sum[..], SystemOperation::sum());
            values.copy_from_slice(&sum);
        } else {
            root.reduce_into(&values[..], SystemOperation::sum());
        }
        root.broadcast_into(values);
        Ok(())
    }

    fn broadcast(&self, values: &mut [f32], root: usize) -> Result<()> {
        self.world
            .process_at_rank(root as i32)
            .broadcast_into(values);
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Drop for MpiCommunicator {
    /// A panicking rank ends the job: finalising MPI would wait for the other ranks, which
    /// wait for this one in their next exchange.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.world.abort(101);
        }
    }
}
