//! The convolution family on the CPU: straight loops over the definition.
//!
//! Layouts: activations NCHW, `w3` [N, M/G, K, K], `w1` [N, M]; the spatial part is padded by
//! K / 2, both parts take the stride. See [`crate::conv_kind`] for what each [`ConvKind`]
//! means.

use crate::conv_kind::{ConvDims, ConvKind, Pointwise};

/// Index of (b, c, y, x) in an NCHW tensor of `channels` planes of `rows` x `cols`.
fn at(
    (channels, rows, cols): (usize, usize, usize),
    b: usize,
    c: usize,
    y: usize,
    x: usize,
) -> usize {
    ((b * channels + c) * rows + y) * cols + x
}

/// The input position seen by output (y, x) through spatial tap (ky, kx), if inside the image.
fn tap(
    kind: &ConvKind,
    d: &ConvDims,
    (y, x): (usize, usize),
    ky: usize,
    kx: usize,
) -> Option<(usize, usize)> {
    let pad = kind.padding();
    let iy = (y * kind.stride + ky).checked_sub(pad)?;
    let ix = (x * kind.stride + kx).checked_sub(pad)?;
    (iy < d.height && ix < d.width).then_some((iy, ix))
}

/// The input channels whose spatial taps filter `o` reads: its own block.
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

/// Every (input, output, weight) index triple of the layer, each once: `visit(x index, y index,
/// weight)` where the weight is `Spatial(index into w3)` or `Pointwise(index into w1)`. The
/// forward pass, both gradients and their finite-difference checks are all this one sum.
fn for_each_term(kind: &ConvKind, d: &ConvDims, mut visit: impl FnMut(usize, usize, Weight)) {
    let per_group = d.cin / kind.groups;
    let (oh, ow) = kind.out_hw(d);
    let (xs, ys) = ((d.cin, d.height, d.width), (d.cout, oh, ow));
    let k = kind.kernel;
    for b in 0..d.batch {
        for o in 0..d.cout {
            let block = own_block(kind, d, o);
            for yy in 0..oh {
                for xx in 0..ow {
                    let yi = at(ys, b, o, yy, xx);
                    if kind.spatial() {
                        for c in block.clone() {
                            for ky in 0..k {
                                for kx in 0..k {
                                    if let Some((iy, ix)) = tap(kind, d, (yy, xx), ky, kx) {
                                        let w =
                                            ((o * per_group + c - block.start) * k + ky) * k + kx;
                                        visit(at(xs, b, c, iy, ix), yi, Weight::Spatial(w));
                                    }
                                }
                            }
                        }
                    }
                    let (iy, ix) = (yy * kind.stride, xx * kind.stride);
                    for c in (0..d.cin).filter(|&c| has_pointwise(kind, d, o, c)) {
                        visit(at(xs, b, c, iy, ix), yi, Weight::Pointwise(o * d.cin + c));
                    }
                }
            }
        }
    }
}

/// Which weight a term of [`for_each_term`] multiplies.
#[derive(Clone, Copy)]
enum Weight {
    Spatial(usize),
    Pointwise(usize),
}

/// Forward pass.
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `w3`: `[N, M/G, K, K]`, `w1`: `[N, M]`, `bias`: `[N]` → `[B, N, OH, OW]`
pub fn forward(
    kind: &ConvKind,
    d: &ConvDims,
    x: &[f64],
    w3: Option<&[f64]>,
    w1: Option<&[f64]>,
    bias: Option<&[f64]>,
) -> Vec<f64> {
    let (oh, ow) = kind.out_hw(d);
    let plane = oh * ow;
    let mut y: Vec<f64> = (0..d.batch * d.cout * plane)
        .map(|i| bias.map_or(0.0, |bias| bias[i / plane % d.cout]))
        .collect();
    for_each_term(kind, d, |xi, yi, w| match (w, w3, w1) {
        (Weight::Spatial(wi), Some(w3), _) => y[yi] += w3[wi] * x[xi],
        (Weight::Pointwise(wi), _, Some(w1)) => y[yi] += w1[wi] * x[xi],
        _ => {}
    });
    y
}

/// Input gradient, by scattering every output gradient back along the taps that produced it.
///
/// # Shapes
/// `dy`: `[B, N, OH, OW]`, `w3`: `[N, M/G, K, K]`, `w1`: `[N, M]` → `[B, M, H, W]`
pub fn backward_input(
    kind: &ConvKind,
    d: &ConvDims,
    dy: &[f64],
    w3: Option<&[f64]>,
    w1: Option<&[f64]>,
) -> Vec<f64> {
    let mut dx = vec![0.0; d.batch * d.cin * d.height * d.width];
    for_each_term(kind, d, |xi, yi, w| match (w, w3, w1) {
        (Weight::Spatial(wi), Some(w3), _) => dx[xi] += w3[wi] * dy[yi],
        (Weight::Pointwise(wi), _, Some(w1)) => dx[xi] += w1[wi] * dy[yi],
        _ => {}
    });
    dx
}

/// Weight gradients `(dw3, dw1)`; `dw1` is zero wherever the mask removes a 1x1 tap.
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `dy`: `[B, N, OH, OW]` → `[N, M/G, K, K]`, `[N, M]`
pub fn backward_weight(
    kind: &ConvKind,
    d: &ConvDims,
    x: &[f64],
    dy: &[f64],
) -> (Option<Vec<f64>>, Option<Vec<f64>>) {
    let mut dw3 = vec![0.0; d.cout * d.cin / kind.groups * kind.taps()];
    let mut dw1 = vec![0.0; d.cout * d.cin];
    for_each_term(kind, d, |xi, yi, w| match w {
        Weight::Spatial(wi) => dw3[wi] += dy[yi] * x[xi],
        Weight::Pointwise(wi) => dw1[wi] += dy[yi] * x[xi],
    });
    (
        kind.spatial().then_some(dw3),
        (kind.pointwise != Pointwise::None).then_some(dw1),
    )
}

/// Sum of `dy` over every axis but channels: the bias gradient.
///
/// # Shapes
/// `dy`: `[B, N, OH, OW]` → `[N]`
pub fn bias_grad(kind: &ConvKind, d: &ConvDims, dy: &[f64]) -> Vec<f64> {
    let (oh, ow) = kind.out_hw(d);
    let plane = oh * ow;
    (0..d.cout)
        .map(|o| {
            (0..d.batch)
                .map(|b| dy[(b * d.cout + o) * plane..][..plane].iter().sum::<f64>())
                .sum()
        })
        .collect()
}

/// HetConv(P) straight from the paper's per-filter definition, with stride `stride`: every
/// filter is a list of M kernels, 3x3 ones on the channels of `is_3x3(filter, channel)` and 1x1
/// ones on the rest, all strided alike. `kernel3(o, c)` gives the 9 taps of filter o's 3x3
/// kernel on channel c; `kernel1(o, c)` the weight of its 1x1 kernel on channel c.
///
/// # Shapes
/// `x`: `[B, M, H, W]` → `[B, N, OH, OW]`
pub fn hetconv_per_filter(
    d: &ConvDims,
    stride: usize,
    x: &[f64],
    is_3x3: impl Fn(usize, usize) -> bool,
    kernel3: impl Fn(usize, usize) -> [f64; 9],
    kernel1: impl Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let geometry = ConvKind::standard3x3().with_stride(stride);
    let (oh, ow) = geometry.out_hw(d);
    let (xs, ys) = ((d.cin, d.height, d.width), (d.cout, oh, ow));
    let mut y = vec![0.0; d.batch * d.cout * oh * ow];
    for b in 0..d.batch {
        for o in 0..d.cout {
            for c in 0..d.cin {
                let k = kernel3(o, c);
                for yy in 0..oh {
                    for xx in 0..ow {
                        let out = &mut y[at(ys, b, o, yy, xx)];
                        if is_3x3(o, c) {
                            for (t, w) in k.iter().enumerate() {
                                if let Some((iy, ix)) = tap(&geometry, d, (yy, xx), t / 3, t % 3) {
                                    *out += w * x[at(xs, b, c, iy, ix)];
                                }
                            }
                        } else {
                            *out += kernel1(o, c) * x[at(xs, b, c, yy * stride, xx * stride)];
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
