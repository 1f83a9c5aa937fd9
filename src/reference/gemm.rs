//! Matrix products on the CPU.

/// `a @ b` for row-major `a` [m, k] and `b` [k, n].
///
/// # Shapes
/// `a`: [m, k], `b`: [k, n] → [m, n]
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
/// `a`: [rows, cols] → [cols, rows]
pub fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}
