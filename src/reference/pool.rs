//! Pooling on the CPU: max-pool with any square window, stride and padding, and global average
//! pooling.

use crate::kernels::pool::PoolWindow;

/// The flat index (in the H*W plane) of the first maximum of window (oy, ox), padded positions
/// left out.
fn argmax(
    plane: &[f64],
    (height, width): (usize, usize),
    window: PoolWindow,
    oy: usize,
    ox: usize,
) -> usize {
    let mut best: Option<usize> = None;
    for ky in 0..window.kernel {
        let Some(row) = (oy * window.stride + ky).checked_sub(window.padding) else {
            continue;
        };
        for kx in 0..window.kernel {
            let Some(col) = (ox * window.stride + kx).checked_sub(window.padding) else {
                continue;
            };
            if row >= height || col >= width {
                continue;
            }
            let k = row * width + col;
            if best.is_none_or(|b| plane[k] > plane[b]) {
                best = Some(k);
            }
        }
    }
    best.expect("every window holds an input pixel (padding <= kernel / 2)")
}

/// Forward: `(y, argmax)` with argmax flat in each H*W plane (PyTorch's `return_indices`).
///
/// # Shapes
/// `x`: `[planes, H, W]` flattened → `[planes, OH, OW]` twice
pub fn max_pool(
    x: &[f64],
    planes: usize,
    (height, width): (usize, usize),
    window: PoolWindow,
) -> (Vec<f64>, Vec<usize>) {
    let oh = window.out_side(height).unwrap_or(0);
    let ow = window.out_side(width).unwrap_or(0);
    let mut y = Vec::with_capacity(planes * oh * ow);
    let mut arg = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        let plane = &x[p * height * width..][..height * width];
        for oy in 0..oh {
            for ox in 0..ow {
                let k = argmax(plane, (height, width), window, oy, ox);
                y.push(plane[k]);
                arg.push(k);
            }
        }
    }
    (y, arg)
}

/// Backward: routes each `dy` to its window's argmax (overlapping windows add up).
///
/// # Shapes
/// `dy`: `[planes, OH, OW]`, `argmax` from [`max_pool`] → `[planes, H, W]`
pub fn max_pool_backward(dy: &[f64], argmax: &[usize], planes: usize, area: usize) -> Vec<f64> {
    let per_plane = dy.len() / planes.max(1);
    let mut dx = vec![0.0; planes * area];
    for (i, (&g, &k)) in dy.iter().zip(argmax).enumerate() {
        dx[(i / per_plane.max(1)) * area + k] += g;
    }
    dx
}

/// 2x2 max-pool, stride 2 (the VGG's).
///
/// # Shapes
/// `x`: `[planes, H, W]` flattened → `[planes, H/2, W/2]` twice
pub fn max_pool2(x: &[f64], planes: usize, height: usize, width: usize) -> (Vec<f64>, Vec<usize>) {
    max_pool(x, planes, (height, width), PoolWindow::PAIRS)
}

/// Backward of [`max_pool2`].
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
    max_pool_backward(dy, argmax, planes, height * width)
}

/// Global average pooling: the mean of each plane.
///
/// # Shapes
/// `x`: `[planes, area]` flattened → `[planes]`
pub fn global_average(x: &[f64], planes: usize, area: usize) -> Vec<f64> {
    (0..planes)
        .map(|p| x[p * area..(p + 1) * area].iter().sum::<f64>() / area as f64)
        .collect()
}

/// Backward of [`global_average`].
///
/// # Shapes
/// `dy`: `[planes]` → `[planes, area]`
pub fn global_average_backward(dy: &[f64], area: usize) -> Vec<f64> {
    dy.iter()
        .flat_map(|&g| std::iter::repeat_n(g / area as f64, area))
        .collect()
}
