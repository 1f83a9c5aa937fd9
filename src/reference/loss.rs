//! Softmax cross-entropy on the CPU.

/// Mean cross-entropy, its gradient `(softmax - onehot) / B`, and log-softmax.
///
/// # Shapes
/// `logits`: `[B, classes]`, `labels`: `[B]` → scalar, `[B, classes]`, `[B, classes]`
pub fn softmax_cross_entropy(
    logits: &[f64],
    labels: &[usize],
    classes: usize,
) -> (f64, Vec<f64>, Vec<f64>) {
    let batch = labels.len();
    let mut loss = 0.0;
    let mut grad = vec![0.0; logits.len()];
    let mut log_softmax = vec![0.0; logits.len()];
    for (b, &label) in labels.iter().enumerate() {
        let row = &logits[b * classes..][..classes];
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
        loss += lse - row[label];
        for j in 0..classes {
            log_softmax[b * classes + j] = row[j] - lse;
            let onehot = if j == label { 1.0 } else { 0.0 };
            grad[b * classes + j] = ((row[j] - lse).exp() - onehot) / batch as f64;
        }
    }
    (loss / batch as f64, grad, log_softmax)
}

/// Fraction of rows whose first arg-max equals the label.
///
/// # Shapes
/// `logits`: `[B, classes]`, `labels`: `[B]`
pub fn accuracy(logits: &[f64], labels: &[usize], classes: usize) -> f64 {
    let correct = labels
        .iter()
        .enumerate()
        .filter(|&(b, &label)| {
            let row = &logits[b * classes..][..classes];
            let arg = (1..classes).fold(0, |best, j| if row[j] > row[best] { j } else { best });
            arg == label
        })
        .count();
    correct as f64 / labels.len().max(1) as f64
}
