//! Matrix products on the CPU.

/// `a @ b` for row-major `a` [m, k] and `b` [k, n].
///
/// # Shapes
/// `a`: `[m, k]`, `b`: `[k, n]` → `[m, n]`
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum();
        }
    }
    c
}

/// The transpose of a row-major [rows, cols] matrix.
///
/// # Shapes
/// `a`: `[rows, cols]` → `[cols, rows]`
pub fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

/// A linear layer `y = x @ w^T + b` (PyTorch layout: `w` is [out, in]).
///
/// # Shapes
/// `x`: `[B, in]`, `w`: `[out, in]`, `b`: `[out]` → `[B, out]`
pub fn linear(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    batch: usize,
    inputs: usize,
    outputs: usize,
) -> Vec<f64> {
    let mut y = matmul(x, &transpose(w, outputs, inputs), batch, inputs, outputs);
    for (i, v) in y.iter_mut().enumerate() {
        *v += b[i % outputs];
    }
    y
}

/// Gradients of [`linear`]: `(dx, dw, db)` = `(dy @ w, dy^T @ x, sum_batch dy)`.
///
/// # Shapes
/// `x`: `[B, in]`, `w`: `[out, in]`, `dy`: `[B, out]` → `[B, in]`, `[out, in]`, `[out]`
pub fn linear_backward(
    x: &[f64],
    w: &[f64],
    dy: &[f64],
    batch: usize,
    inputs: usize,
    outputs: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let dx = matmul(dy, w, batch, outputs, inputs);
    let dw = matmul(&transpose(dy, batch, outputs), x, outputs, batch, inputs);
    let db = (0..outputs)
        .map(|o| (0..batch).map(|b| dy[b * outputs + o]).sum())
        .collect();
    (dx, dw, db)
}
