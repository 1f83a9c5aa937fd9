//! Learning-rate schedules (the SGD update itself is one kernel: [`crate::kernels::sgd`]).

use serde::{Deserialize, Serialize};

/// How the learning rate changes over training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` at each milestone epoch (PyTorch's MultiStepLR, stepped per epoch).
    MultiStep {
        /// Epochs at which the rate drops.
        milestones: Vec<usize>,
        /// Factor per drop.
        gamma: f64,
    },
    /// Cosine annealing from the base rate to zero over `total_epochs`, per step.
    Cosine {
        /// Length of the schedule.
        total_epochs: usize,
    },
}

impl Schedule {
    /// The paper's schedule: x0.2 at epochs 50, 140, 210, 240, 270 and 300.
    pub fn paper() -> Self {
        Schedule::MultiStep {
            milestones: vec![50, 140, 210, 240, 270, 300],
            gamma: 0.2,
        }
    }
}

/// A schedule with its base rate and an optional linear warm-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Rate at epoch 0 (after warm-up).
    pub base_lr: f64,
    /// The shape of the decay.
    pub schedule: Schedule,
    /// Epochs of linear warm-up from base_lr / steps to base_lr (0: none).
    pub warmup_epochs: f64,
}

impl LrSchedule {
    /// The rate at fractional epoch `progress` (epoch index plus the fraction of it done).
    ///
    /// ```
    /// use hetconv::optim::{LrSchedule, Schedule};
    /// let s = LrSchedule { base_lr: 0.1, schedule: Schedule::paper(), warmup_epochs: 0.0 };
    /// assert_eq!(s.lr_at(49.9), 0.1);
    /// assert!((s.lr_at(50.0) - 0.02).abs() < 1e-12);
    /// assert!((s.lr_at(300.0) - 0.1 * 0.2f64.powi(6)).abs() < 1e-15);
    /// ```
    pub fn lr_at(&self, progress: f64) -> f64 {
        let decayed = match &self.schedule {
            Schedule::Constant => self.base_lr,
            Schedule::MultiStep { milestones, gamma } => {
                let epoch = progress.floor() as usize;
                let drops = milestones.iter().filter(|&&m| m <= epoch).count();
                self.base_lr * gamma.powi(drops as i32)
            }
            Schedule::Cosine { total_epochs } => {
                let t = (progress / (*total_epochs).max(1) as f64).clamp(0.0, 1.0);
                self.base_lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        };
        if self.warmup_epochs > 0.0 && progress < self.warmup_epochs {
            decayed * ((progress + 1e-9) / self.warmup_epochs).clamp(0.0, 1.0)
        } else {
            decayed
        }
    }
}
