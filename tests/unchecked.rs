//! The GEMM core's module is created natively without wgpu's runtime checks (no index clamps,
//! no division guards: `shaders/gemm_core.wgsl`'s header proves every index in bounds). Checked
//! here, for every tile shape and every role, on odd shapes (edge tiles) and on layers of 128
//! rows and 160-256 columns (interior tiles, which skip the bounds checks): with each input a
//! view in the middle of a buffer whose other elements are NaN, and the forward and matmul
//! outputs the same, the unchecked module gives exactly the bits of the checked one (every
//! output, gradients included), matches the reference, and leaves the NaN around the guarded
//! outputs untouched. Where a driver confines every binding to its range (robust
//! buffer access), a stray read would see zeros or in-range values instead of NaN; the bit
//! comparison with the checked module and the reference still hold it to the same results.
//! The mixed-precision kernels run so on activations stored as f32 and as f16.

mod common;

use common::*;
use hetconv::kernels::conv::{self, ConvDims, ConvKind, ConvWeights};
use hetconv::kernels::gemm::{self, Layout};
use hetconv::kernels::gemm_core::TILE_SHAPES;
use hetconv::reference::conv as cpu;
use hetconv::reference::gemm::matmul;
use hetconv::tensor::DType;
use hetconv::tune::Variant;
use hetconv::{Context, ContextOptions, ConvAlgorithm, Tensor};

/// Bytes of NaN before and after each tensor (the storage-offset alignment).
const GUARD_BYTES: usize = 256;

/// A tensor that is a view in the middle of a NaN-filled buffer.
struct Guarded {
    whole: Tensor,
    view: Tensor,
    guard: usize,
}

impl Guarded {
    fn new(ctx: &Context, shape: &[usize], data: &[f32]) -> Self {
        Self::new_as(ctx, shape, data, DType::F32)
    }

    /// Stored as `dtype` (an f16 view holds an even count of elements).
    fn new_as(ctx: &Context, shape: &[usize], data: &[f32], dtype: DType) -> Self {
        let guard = GUARD_BYTES / dtype.bytes() as usize;
        let mut all = vec![f32::NAN; guard + data.len().div_ceil(guard) * guard + guard];
        all[guard..guard + data.len()].copy_from_slice(data);
        let whole = Tensor::from_slice_as(ctx, &[all.len()], &all, dtype).unwrap();
        let view = whole.view(guard, shape).unwrap();
        Self { whole, view, guard }
    }

    /// The view's values, after checking that everything around it still holds NaN.
    #[track_caller]
    fn read(&self, name: &str) -> Vec<f32> {
        let all = self.whole.to_vec().unwrap();
        let (n, guard) = (self.view.numel(), self.guard);
        let outside = all[..guard].iter().chain(&all[guard + n..]);
        // f16's NaN widens to f32's NaN bits: one check for both storages.
        assert!(
            outside
                .into_iter()
                .all(|v| v.to_bits() == f32::NAN.to_bits()),
            "{name}: a write outside the output"
        );
        all[guard..guard + n].to_vec()
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Forward (into a guarded output, with bias and accumulation), input gradient and weight
/// gradients of one layer, from guarded inputs, on activations stored as `storage`.
fn conv_passes(
    ctx: &Context,
    kind: &ConvKind,
    d: &ConvDims,
    seed: u64,
    storage: DType,
) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let image = [d.batch, d.cin, d.height, d.width];
    let out_shape = kind.out_shape(d);
    let activations = |shape: &[usize], data: &[f32]| Guarded::new_as(ctx, shape, data, storage);
    let x = activations(&image, &rng.vec(image.iter().product()));
    let dy = activations(&out_shape, &rng.vec(out_shape.iter().product()));
    let mut w1 = rng.vec(d.cout * d.cin);
    for o in 0..d.cout {
        for c in cpu::own_block(kind, d, o) {
            w1[o * d.cin + c] = 0.0;
        }
    }
    let w3_shape = kind.spatial_shape(d);
    let w3 = Guarded::new(ctx, &w3_shape, &rng.vec(w3_shape.iter().product()));
    let w1 = Guarded::new(ctx, &[d.cout, d.cin], &w1);
    let bias = Guarded::new(ctx, &[d.cout], &rng.vec(d.cout));
    let y = activations(&out_shape, &rng.vec(out_shape.iter().product()));
    let w = ConvWeights {
        w3: Some(&w3.view),
        w1: Some(&w1.view),
        bias: Some(&bias.view),
    };
    conv::forward_into(kind, &x.view, &w, &y.view, true).unwrap();
    let dx = conv::backward_input(kind, &dy.view, &w, &image).unwrap();
    let grads = conv::backward_weight(kind, &x.view, &dy.view).unwrap();
    vec![
        y.read("conv forward"),
        dx.to_vec().unwrap(),
        grads.dw3.unwrap().to_vec().unwrap(),
        grads.dw1.unwrap().to_vec().unwrap(),
    ]
}

fn matmul_passes(ctx: &Context, (m, k, n): (usize, usize, usize), seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let (a, b, c) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m * n));
    let mut out = Vec::new();
    for (la, lb) in [
        (Layout::AsIs, Layout::AsIs),
        (Layout::Transposed, Layout::Transposed),
    ] {
        let a_shape = if la == Layout::AsIs { [m, k] } else { [k, m] };
        let b_shape = if lb == Layout::AsIs { [k, n] } else { [n, k] };
        let ta = Guarded::new(ctx, &a_shape, &a);
        let tb = Guarded::new(ctx, &b_shape, &b);
        let tc = Guarded::new(ctx, &[m, n], &c);
        gemm::matmul_accumulate(&ta.view, la, &tb.view, lb, &tc.view).unwrap();
        out.push(tc.read("matmul"));
    }
    out
}

/// The default context (unchecked modules natively) and one that keeps wgpu's runtime checks.
fn unchecked_and_checked() -> (Context, Context) {
    let checked = pollster::block_on(Context::new(ContextOptions {
        checked_shaders: true,
        ..Default::default()
    }))
    .unwrap();
    (ctx(), checked)
}

fn dims(batch: usize, cin: usize, cout: usize, height: usize, width: usize) -> ConvDims {
    ConvDims {
        batch,
        cin,
        cout,
        height,
        width,
    }
}

/// The conv passes on both contexts, bit for bit the same; returns the unchecked ones.
fn same_conv_bits(
    (unchecked, checked): (&Context, &Context),
    label: &str,
    (kind, d): (&ConvKind, &ConvDims),
    seed: u64,
    storage: DType,
) -> Vec<Vec<f32>> {
    let fast = conv_passes(unchecked, kind, d, seed, storage);
    let safe = conv_passes(checked, kind, d, seed, storage);
    for (pass, (f, s)) in fast.iter().zip(&safe).enumerate() {
        assert_eq!(
            bits(f),
            bits(s),
            "{label} {kind:?} {d:?} {storage} pass {pass}"
        );
    }
    fast
}

/// The matrix products on both contexts, bit for bit the same; returns the unchecked ones.
fn same_matmul_bits(
    (unchecked, checked): (&Context, &Context),
    label: &str,
    shape: (usize, usize, usize),
    seed: u64,
) -> Vec<Vec<f32>> {
    let fast = matmul_passes(unchecked, shape, seed);
    let safe = matmul_passes(checked, shape, seed);
    assert_eq!(
        fast.iter().map(|v| bits(v)).collect::<Vec<_>>(),
        safe.iter().map(|v| bits(v)).collect::<Vec<_>>(),
        "{label} matmul {shape:?}"
    );
    fast
}

#[test]
fn the_unchecked_core_gives_the_checked_bits_and_writes_nothing_outside_its_outputs() {
    let (unchecked, checked) = unchecked_and_checked();
    let both = (&unchecked, &checked);
    let dense = ConvKind {
        pointwise: hetconv::kernels::conv::Pointwise::Dense,
        ..ConvKind::standard3x3()
    };
    let stem = ConvKind {
        pointwise: hetconv::kernels::conv::Pointwise::Dense,
        ..ConvKind::standard(7).with_stride(2)
    };
    let layers = [
        (ConvKind::hetconv(2), dims(1, 6, 10, 5, 7)),
        (ConvKind::hetconv(2).with_stride(2), dims(2, 6, 10, 7, 9)),
        (stem, dims(1, 3, 8, 9, 11)),
        (dense, dims(2, 3, 5, 4, 3)),
        (ConvKind::hetconv(4), dims(3, 8, 12, 1, 1)),
        // Interior tiles for every shape: 128 filters x 256 pixels forward and 128 x 160 in the
        // weight gradient, then 128 input channels x 256 pixels in the input gradient.
        (dense, dims(2, 16, 128, 8, 16)),
        (dense, dims(2, 128, 16, 8, 16)),
    ];
    let mut tiles_run = 0;
    for tile in TILE_SHAPES.iter().filter(|t| t.fits(unchecked.limits())) {
        let algorithm = ConvAlgorithm::Fixed(Variant::gemm(*tile));
        unchecked.set_conv_algorithm(algorithm);
        checked.set_conv_algorithm(algorithm);
        for (i, (kind, d)) in layers.iter().enumerate() {
            let fast = same_conv_bits(
                both,
                &tile.to_string(),
                (kind, d),
                10 + i as u64,
                DType::F32,
            );
            // The forward output also matches the reference (y held its start values: accumulate).
            let mut rng = Rng::new(10 + i as u64);
            let out: usize = kind.out_shape(d).iter().product();
            let x = to_f64(&rng.vec(d.batch * d.cin * d.height * d.width));
            let _dy = rng.vec(out);
            let mut w1 = rng.vec(d.cout * d.cin);
            for o in 0..d.cout {
                for c in cpu::own_block(kind, d, o) {
                    w1[o * d.cin + c] = 0.0;
                }
            }
            let w3 = to_f64(&rng.vec(kind.spatial_shape(d).iter().product()));
            let bias = to_f64(&rng.vec(d.cout));
            let start = to_f64(&rng.vec(out));
            let want: Vec<f64> =
                cpu::forward(kind, d, &x, Some(&w3), Some(&to_f64(&w1)), Some(&bias))
                    .iter()
                    .zip(&start)
                    .map(|(a, b)| a + b)
                    .collect();
            assert_close(
                &format!("{tile} {kind:?} forward"),
                &fast[0],
                &want,
                F32_KERNEL,
            );
        }
        for (i, shape) in [(7, 13, 9), (1, 70, 3), (130, 70, 129)]
            .into_iter()
            .enumerate()
        {
            let fast = same_matmul_bits(both, &tile.to_string(), shape, 20 + i as u64);
            let mut rng = Rng::new(20 + i as u64);
            let (m, k, n) = shape;
            let (a, b, c) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m * n));
            let want: Vec<f64> = matmul(&to_f64(&a), &to_f64(&b), m, k, n)
                .iter()
                .zip(&c)
                .map(|(p, c)| p + f64::from(*c))
                .collect();
            assert_close(
                &format!("{tile} matmul {shape:?}"),
                &fast[0],
                &want,
                F32_KERNEL.scaled(&want),
            );
        }
        tiles_run += 1;
    }
    assert!(
        tiles_run >= TILE_SHAPES.len() - 1,
        "{tiles_run} tile shapes ran"
    );
}

/// The mixed-precision kernels (f16 FMA, and the cooperative tiles where the adapter has them:
/// Mesa 26 lavapipe in CI) are created unchecked natively too, on f32 and on f16 activations:
/// the same bits as the checked modules and nothing written outside their outputs, on the same
/// shapes (their numbers are
/// checked against the reference, with the f16 bound, in tests/conv.rs and tests/gemm.rs).
#[test]
fn the_unchecked_mixed_kernels_give_the_checked_bits_and_write_nothing_outside_their_outputs() {
    let (unchecked, checked) = unchecked_and_checked();
    let both = (&unchecked, &checked);
    let layers = [
        (ConvKind::hetconv(2), dims(1, 6, 10, 5, 7)),
        (ConvKind::hetconv(4), dims(2, 16, 128, 8, 16)),
        (ConvKind::hetconv(4), dims(2, 128, 16, 8, 16)),
    ];
    for path in mixed_paths(&unchecked) {
        let variant = variant_of(path);
        unchecked.set_conv_algorithm(ConvAlgorithm::Fixed(variant));
        checked.set_conv_algorithm(ConvAlgorithm::Fixed(variant));
        let label = variant.to_string();
        for (i, (kind, d)) in layers.iter().enumerate() {
            for storage in [DType::F32, DType::F16] {
                same_conv_bits(both, &label, (kind, d), 30 + i as u64, storage);
            }
        }
        for (i, shape) in [(7, 13, 9), (130, 70, 129)].into_iter().enumerate() {
            same_matmul_bits(both, &label, shape, 40 + i as u64);
        }
    }
}

/// Every kernel with its reduction split (partial products, then `sum_splits` through the
/// epilogue, accumulating into a guarded output) is created unchecked natively too: the same
/// bits as the checked modules and nothing written outside the outputs, on a layer and
/// products whose reductions split at every KC (edge and interior tiles), f16 activations
/// too for the mixed kernels.
#[test]
fn the_unchecked_split_reductions_give_the_checked_bits_and_write_nothing_outside_their_outputs() {
    let (unchecked, checked) = unchecked_and_checked();
    let both = (&unchecked, &checked);
    let (kind, d) = (ConvKind::hetconv(2), dims(1, 64, 64, 3, 5));
    for path in split_paths(&unchecked) {
        let variant = variant_of(path);
        unchecked.set_conv_algorithm(ConvAlgorithm::Fixed(variant));
        checked.set_conv_algorithm(ConvAlgorithm::Fixed(variant));
        let label = variant.to_string();
        let storages: &[DType] = if is_mixed(path) {
            &[DType::F32, DType::F16]
        } else {
            &[DType::F32]
        };
        for (i, &storage) in storages.iter().enumerate() {
            let kernels = kernels_run(&unchecked, || {
                same_conv_bits(both, &label, (&kind, &d), 50 + i as u64, storage);
            });
            if let Some(kernels) = kernels {
                let roles = conv_roles(variant, &kind, &d, true);
                assert_kernels_on(&kernels, variant, storage, &roles, &[]);
            }
        }
        for (i, shape) in [(7, 300, 9), (128, 300, 128)].into_iter().enumerate() {
            let kernels = kernels_run(&unchecked, || {
                same_matmul_bits(both, &label, shape, 60 + i as u64);
            });
            if let Some(kernels) = kernels {
                assert_kernels(&kernels, variant, &[(3, false)], &[]);
            }
        }
    }
}
