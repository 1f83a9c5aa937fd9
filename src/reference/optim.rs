//! SGD on the CPU (PyTorch semantics).

/// One step in place: `g = grad + wd*w; buf = momentum*buf + g; w -= lr*(nesterov ? g + momentum*buf : buf)`.
/// `buf` must start at zero (then the first step sets it to `g`, as PyTorch does).
///
/// # Shapes
/// `w`, `grad`, `buf`: the same length
pub fn sgd_step(
    w: &mut [f64],
    grad: &[f64],
    buf: &mut [f64],
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
) {
    for ((w, &g), b) in w.iter_mut().zip(grad).zip(buf.iter_mut()) {
        let g = g + weight_decay * *w;
        *b = momentum * *b + g;
        let update = if nesterov { g + momentum * *b } else { *b };
        *w -= lr * update;
    }
}
