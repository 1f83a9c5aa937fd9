//! Parameter initialisation, seeded and identical on every platform (ChaCha8).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A seeded source of initial values.
pub struct Init {
    rng: ChaCha8Rng,
}

impl Init {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// `n` values from N(0, std²).
    pub fn normal(&mut self, n: usize, std: f32) -> Vec<f32> {
        match Normal::new(0.0f32, std) {
            Ok(dist) => (0..n).map(|_| dist.sample(&mut self.rng)).collect(),
            Err(_) => vec![0.0; n],
        }
    }

    /// Kaiming-normal for a ReLU network in fan-out mode, as PyTorch's
    /// `kaiming_normal_(w, mode="fan_out", nonlinearity="relu")`: std = sqrt(2 / fan_out) with
    /// `fan_out = shape[0]` · (product of the kernel dimensions).
    pub fn kaiming_fan_out(&mut self, shape: &[usize]) -> Vec<f32> {
        let receptive: usize = shape[2..].iter().product();
        let fan_out = (shape[0] * receptive).max(1);
        self.normal(shape.iter().product(), (2.0 / fan_out as f32).sqrt())
    }

    /// The 1x1 weight of a HetConv(`parts`) layer, `[cout, cin, 1, 1]`: kaiming-normal (fan-out)
    /// with each filter's own input block (the `cin / parts` channels its 3x3 kernels cover)
    /// exactly zero, as the PyTorch reproduction masks it. The fused kernels never read that
    /// block; the zeros keep checkpoints and exports equal to the masked model.
    ///
    /// # Shapes
    /// `cout` and `cin` multiples of `parts` → `cout * cin` values
    pub fn hetconv_pointwise(&mut self, cout: usize, cin: usize, parts: usize) -> Vec<f32> {
        let mut values = self.kaiming_fan_out(&[cout, cin, 1, 1]);
        if cin == 0 {
            return values;
        }
        let parts = parts.max(1);
        let (out_block, in_block) = ((cout / parts).max(1), cin / parts);
        for (o, row) in values.chunks_exact_mut(cin).enumerate() {
            let g = o / out_block;
            if let Some(block) = row.get_mut(g * in_block..(g + 1) * in_block) {
                block.fill(0.0);
            }
        }
        values
    }
}
