//! Batch normalisation on the CPU (training and eval mode).

/// What training mode computes besides `y`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormTrain {
    /// Normalised output.
    pub y: Vec<f64>,
    /// Batch mean per channel.
    pub mean: Vec<f64>,
    /// 1 / sqrt(biased variance + eps) per channel.
    pub invstd: Vec<f64>,
    /// Updated running mean.
    pub running_mean: Vec<f64>,
    /// Updated running variance (unbiased batch variance).
    pub running_var: Vec<f64>,
}

/// Flat indices of channel `c`'s values.
fn values(batch: usize, channels: usize, plane: usize, c: usize) -> impl Iterator<Item = usize> {
    (0..batch).flat_map(move |b| (0..plane).map(move |k| (b * channels + c) * plane + k))
}

/// Training-mode forward over [batch, channels, plane].
///
/// # Shapes
/// `x`: `[B, C, plane]`, `gamma`, `beta`, running stats: `[C]`
#[allow(clippy::too_many_arguments)]
pub fn forward_train(
    x: &[f64],
    batch: usize,
    channels: usize,
    plane: usize,
    gamma: &[f64],
    beta: &[f64],
    running_mean: &[f64],
    running_var: &[f64],
    eps: f64,
    momentum: f64,
) -> BatchNormTrain {
    let n = (batch * plane) as f64;
    let mut out = BatchNormTrain {
        y: vec![0.0; x.len()],
        mean: vec![0.0; channels],
        invstd: vec![0.0; channels],
        running_mean: running_mean.to_vec(),
        running_var: running_var.to_vec(),
    };
    for c in 0..channels {
        let mean = values(batch, channels, plane, c).map(|i| x[i]).sum::<f64>() / n;
        let squares: f64 = values(batch, channels, plane, c)
            .map(|i| (x[i] - mean).powi(2))
            .sum();
        let invstd = 1.0 / (squares / n + eps).sqrt();
        for i in values(batch, channels, plane, c) {
            out.y[i] = (x[i] - mean) * invstd * gamma[c] + beta[c];
        }
        out.mean[c] = mean;
        out.invstd[c] = invstd;
        out.running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean;
        out.running_var[c] = (1.0 - momentum) * running_var[c] + momentum * squares / (n - 1.0);
    }
    out
}

/// Eval-mode forward with running estimates.
///
/// # Shapes
/// as [`forward_train`]
#[allow(clippy::too_many_arguments)]
pub fn forward_eval(
    x: &[f64],
    batch: usize,
    channels: usize,
    plane: usize,
    gamma: &[f64],
    beta: &[f64],
    running_mean: &[f64],
    running_var: &[f64],
    eps: f64,
) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for c in 0..channels {
        let invstd = 1.0 / (running_var[c] + eps).sqrt();
        for i in values(batch, channels, plane, c) {
            y[i] = (x[i] - running_mean[c]) * invstd * gamma[c] + beta[c];
        }
    }
    y
}

/// Training-mode gradients `(dx, dgamma, dbeta)`.
///
/// # Shapes
/// `x`, `dy`: `[B, C, plane]`; `gamma`, `mean`, `invstd`: `[C]`
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f64],
    dy: &[f64],
    batch: usize,
    channels: usize,
    plane: usize,
    gamma: &[f64],
    mean: &[f64],
    invstd: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = (batch * plane) as f64;
    let mut dx = vec![0.0; x.len()];
    let mut dgamma = vec![0.0; channels];
    let mut dbeta = vec![0.0; channels];
    for c in 0..channels {
        let xhat = |i: usize| (x[i] - mean[c]) * invstd[c];
        let sum_dy: f64 = values(batch, channels, plane, c).map(|i| dy[i]).sum();
        let sum_dy_xhat: f64 = values(batch, channels, plane, c)
            .map(|i| dy[i] * xhat(i))
            .sum();
        for i in values(batch, channels, plane, c) {
            dx[i] = gamma[c] * invstd[c] / n * (n * dy[i] - sum_dy - xhat(i) * sum_dy_xhat);
        }
        dgamma[c] = sum_dy_xhat;
        dbeta[c] = sum_dy;
    }
    (dx, dgamma, dbeta)
}
