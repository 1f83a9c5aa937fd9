//! 2x2 max-pool on the CPU.

/// The flat index (in the H*W plane) of the first maximum of window (oy, ox).
fn argmax(plane: &[f64], width: usize, oy: usize, ox: usize) -> usize {
    let mut best = (2 * oy) * width + 2 * ox;
    for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
        let k = (2 * oy + dy) * width + 2 * ox + dx;
        if plane[k] > plane[best] {
            best = k;
        }
    }
    best
}

/// Forward: `(y, argmax)` with argmax flat in each H*W plane (PyTorch's `return_indices`).
///
/// # Shapes
/// `x`: `[planes, H, W]` flattened → `[planes, H/2, W/2]` twice
pub fn max_pool2(x: &[f64], planes: usize, height: usize, width: usize) -> (Vec<f64>, Vec<usize>) {
    let (oh, ow) = (height / 2, width / 2);
    let mut y = Vec::with_capacity(planes * oh * ow);
    let mut arg = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        let plane = &x[p * height * width..][..height * width];
        for oy in 0..oh {
            for ox in 0..ow {
                let k = argmax(plane, width, oy, ox);
                y.push(plane[k]);
                arg.push(k);
            }
        }
    }
    (y, arg)
}

/// Backward: routes each `dy` to its window's argmax.
///
/// # Shapes
/// `dy`: `[planes, H/2, W/2]`, `argmax` from [`max_pool2`] → `[planes, H, W]`
pub fn max_pool2_backward(
    dy: &[f64],
    argmax: &[usize],
    planes: usize,
    height: usize,
    width: usize,
) -> Vec<f64> {
    let per_plane = (height / 2) * (width / 2);
    let mut dx = vec![0.0; planes * height * width];
    for (i, (&g, &k)) in dy.iter().zip(argmax).enumerate() {
        dx[(i / per_plane) * height * width + k] += g;
    }
    dx
}
