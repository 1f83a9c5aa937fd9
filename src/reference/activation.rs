//! ReLU on the CPU.

/// `max(x, 0)`.
///
/// # Shapes
/// any → the same
pub fn relu(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| v.max(0.0)).collect()
}

/// ReLU's gradient: `dy` where `x > 0`, else 0 (0 at exactly 0, as PyTorch).
///
/// # Shapes
/// `x`, `dy`: the same → the same
pub fn relu_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(dy)
        .map(|(&v, &g)| if v > 0.0 { g } else { 0.0 })
        .collect()
}
