//! The convolution family on the CPU: straight loops over the definition.
//!
//! Layouts: activations NCHW, `w3` [N, M/G, 3, 3], `w1` [N, M]; stride 1, padding 1 for the
//! 3x3 part. See [`crate::kernels::conv`] for what each [`ConvKind`] means.

use crate::kernels::conv::{ConvDims, ConvKind, Pointwise};

/// Index of (b, c, y, x) in an NCHW tensor with `channels` channels.
fn at(d: &ConvDims, channels: usize, b: usize, c: usize, y: usize, x: usize) -> usize {
    ((b * channels + c) * d.height + y) * d.width + x
}

/// The input position seen by output (y, x) through tap (ky, kx), if inside the image.
fn tap(d: &ConvDims, y: usize, x: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
    let iy = (y + ky).checked_sub(1)?;
    let ix = (x + kx).checked_sub(1)?;
    (iy < d.height && ix < d.width).then_some((iy, ix))
}

/// The input channels whose 3x3 taps filter `o` reads: its own block.
pub fn own_block(kind: &ConvKind, d: &ConvDims, o: usize) -> std::ops::Range<usize> {
    let per_group = d.cin / kind.groups;
    let g = o / (d.cout / kind.groups);
    g * per_group..(g + 1) * per_group
}

/// Whether filter `o` has a 1x1 tap on channel `c`.
pub fn has_pointwise(kind: &ConvKind, d: &ConvDims, o: usize, c: usize) -> bool {
    match kind.pointwise {
        Pointwise::None => false,
        Pointwise::Dense => true,
        Pointwise::Masked => !own_block(kind, d, o).contains(&c),
    }
}

/// Forward pass.
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `w3`: `[N, M/G, 3, 3]`, `w1`: `[N, M]`, `bias`: `[N]` → `[B, N, H, W]`
pub fn forward(
    kind: &ConvKind,
    d: &ConvDims,
    x: &[f64],
    w3: Option<&[f64]>,
    w1: Option<&[f64]>,
    bias: Option<&[f64]>,
) -> Vec<f64> {
    let per_group = d.cin / kind.groups;
    let mut y = vec![0.0; d.batch * d.cout * d.height * d.width];
    for b in 0..d.batch {
        for o in 0..d.cout {
            let block = own_block(kind, d, o);
            for yy in 0..d.height {
                for xx in 0..d.width {
                    let mut sum = bias.map_or(0.0, |bias| bias[o]);
                    if let (true, Some(w3)) = (kind.kernel3, w3) {
                        for c in block.clone() {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    if let Some((iy, ix)) = tap(d, yy, xx, ky, kx) {
                                        let w = w3
                                            [((o * per_group + c - block.start) * 3 + ky) * 3 + kx];
                                        sum += w * x[at(d, d.cin, b, c, iy, ix)];
                                    }
                                }
                            }
                        }
                    }
                    if let Some(w1) = w1 {
                        for c in (0..d.cin).filter(|&c| has_pointwise(kind, d, o, c)) {
                            sum += w1[o * d.cin + c] * x[at(d, d.cin, b, c, yy, xx)];
                        }
                    }
                    y[at(d, d.cout, b, o, yy, xx)] = sum;
                }
            }
        }
    }
    y
}

/// Input gradient, by scattering every output gradient back along the taps that produced it.
///
/// # Shapes
/// `dy`: `[B, N, H, W]`, `w3`: `[N, M/G, 3, 3]`, `w1`: `[N, M]` → `[B, M, H, W]`
pub fn backward_input(
    kind: &ConvKind,
    d: &ConvDims,
    dy: &[f64],
    w3: Option<&[f64]>,
    w1: Option<&[f64]>,
) -> Vec<f64> {
    let per_group = d.cin / kind.groups;
    let mut dx = vec![0.0; d.batch * d.cin * d.height * d.width];
    for b in 0..d.batch {
        for o in 0..d.cout {
            let block = own_block(kind, d, o);
            for yy in 0..d.height {
                for xx in 0..d.width {
                    let g = dy[at(d, d.cout, b, o, yy, xx)];
                    if let (true, Some(w3)) = (kind.kernel3, w3) {
                        for c in block.clone() {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    if let Some((iy, ix)) = tap(d, yy, xx, ky, kx) {
                                        let w = w3
                                            [((o * per_group + c - block.start) * 3 + ky) * 3 + kx];
                                        dx[at(d, d.cin, b, c, iy, ix)] += w * g;
                                    }
                                }
                            }
                        }
                    }
                    if let Some(w1) = w1 {
                        for c in (0..d.cin).filter(|&c| has_pointwise(kind, d, o, c)) {
                            dx[at(d, d.cin, b, c, yy, xx)] += w1[o * d.cin + c] * g;
                        }
                    }
                }
            }
        }
    }
    dx
}

/// Weight gradients `(dw3, dw1)`; `dw1` is zero wherever the mask removes a 1x1 tap.
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `dy`: `[B, N, H, W]` → `[N, M/G, 3, 3]`, `[N, M]`
pub fn backward_weight(
    kind: &ConvKind,
    d: &ConvDims,
    x: &[f64],
    dy: &[f64],
) -> (Option<Vec<f64>>, Option<Vec<f64>>) {
    let per_group = d.cin / kind.groups;
    let mut dw3 = vec![0.0; d.cout * per_group * 9];
    let mut dw1 = vec![0.0; d.cout * d.cin];
    for b in 0..d.batch {
        for o in 0..d.cout {
            let block = own_block(kind, d, o);
            for yy in 0..d.height {
                for xx in 0..d.width {
                    let g = dy[at(d, d.cout, b, o, yy, xx)];
                    for c in block.clone() {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                if let Some((iy, ix)) = tap(d, yy, xx, ky, kx) {
                                    dw3[((o * per_group + c - block.start) * 3 + ky) * 3 + kx] +=
                                        g * x[at(d, d.cin, b, c, iy, ix)];
                                }
                            }
                        }
                    }
                    for c in (0..d.cin).filter(|&c| has_pointwise(kind, d, o, c)) {
                        dw1[o * d.cin + c] += g * x[at(d, d.cin, b, c, yy, xx)];
                    }
                }
            }
        }
    }
    (
        kind.kernel3.then_some(dw3),
        (kind.pointwise != Pointwise::None).then_some(dw1),
    )
}

/// Sum of `dy` over every axis but channels: the bias gradient.
///
/// # Shapes
/// `dy`: `[B, N, H, W]` → `[N]`
pub fn bias_grad(d: &ConvDims, dy: &[f64]) -> Vec<f64> {
    let plane = d.height * d.width;
    (0..d.cout)
        .map(|o| {
            (0..d.batch)
                .map(|b| dy[(b * d.cout + o) * plane..][..plane].iter().sum::<f64>())
                .sum()
        })
        .collect()
}

/// HetConv(P) straight from the paper's per-filter definition: every filter is a list of M
/// kernels, 3x3 ones on the channels of `is_3x3(filter, channel)` and 1x1 ones on the rest.
/// `kernel3(o, c)` gives the 9 taps of filter o's 3x3 kernel on channel c; `kernel1(o, c)` the
/// weight of its 1x1 kernel on channel c.
///
/// # Shapes
/// `x`: `[B, M, H, W]` → `[B, N, H, W]`
pub fn hetconv_per_filter(
    d: &ConvDims,
    x: &[f64],
    is_3x3: impl Fn(usize, usize) -> bool,
    kernel3: impl Fn(usize, usize) -> [f64; 9],
    kernel1: impl Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let mut y = vec![0.0; d.batch * d.cout * d.height * d.width];
    for b in 0..d.batch {
        for o in 0..d.cout {
            for c in 0..d.cin {
                if is_3x3(o, c) {
                    let k = kernel3(o, c);
                    for yy in 0..d.height {
                        for xx in 0..d.width {
                            for (t, w) in k.iter().enumerate() {
                                if let Some((iy, ix)) = tap(d, yy, xx, t / 3, t % 3) {
                                    y[at(d, d.cout, b, o, yy, xx)] +=
                                        w * x[at(d, d.cin, b, c, iy, ix)];
                                }
                            }
                        }
                    }
                } else {
                    let w = kernel1(o, c);
                    for yy in 0..d.height {
                        for xx in 0..d.width {
                            y[at(d, d.cout, b, o, yy, xx)] += w * x[at(d, d.cin, b, c, yy, xx)];
                        }
                    }
                }
            }
        }
    }
    y
}

/// The paper's "shifted" layout in block-layout order: `σ(c) = (c mod P)·(C/P) + c/P` is the
/// block position of channel `c` of `channels` channels.
///
/// ```
/// use hetconv::reference::conv::shifted_to_block;
/// // 8 channels, P = 4: channels 0 and 4 (both ≡ 0 mod 4) form block 0.
/// let order: Vec<usize> = (0..8).map(|c| shifted_to_block(c, 8, 4)).collect();
/// assert_eq!(order, [0, 2, 4, 6, 1, 3, 5, 7]);
/// ```
pub fn shifted_to_block(c: usize, channels: usize, parts: usize) -> usize {
    (c % parts) * (channels / parts) + c / parts
}

/// The dense 3x3 weight [N, M, 3, 3] equal to a HetConv layer: its 3x3 kernels in place, each
/// 1x1 weight as the centre tap (the redundancy-free form PyTorch calls `w_dense_equiv`).
///
/// # Shapes
/// `w3`: `[N, M/P, 3, 3]`, `w1`: `[N, M]` → `[N, M, 3, 3]`
pub fn hetconv_dense_equivalent(d: &ConvDims, parts: usize, w3: &[f64], w1: &[f64]) -> Vec<f64> {
    let kind = ConvKind::hetconv(parts);
    let per_group = d.cin / parts;
    let mut dense = vec![0.0; d.cout * d.cin * 9];
    for o in 0..d.cout {
        let block = own_block(&kind, d, o);
        for c in 0..d.cin {
            let out = &mut dense[(o * d.cin + c) * 9..][..9];
            if block.contains(&c) {
                out.copy_from_slice(&w3[(o * per_group + c - block.start) * 9..][..9]);
            } else {
                out[4] = w1[o * d.cin + c];
            }
        }
    }
    dense
}
