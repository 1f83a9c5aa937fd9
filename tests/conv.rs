//! The conv family on the GPU vs the CPU reference: standard, grouped (every group count),
//! depthwise, 1x1, masked 1x1 and fused HetConv, strided, and standard 5x5 and 7x7 (a ResNet
//! stem), forward and both gradients, on small shapes with odd sizes, batch 1 and channel counts
//! that are not multiples of 4. The mixed-precision kernels, the direct kernels and one f32
//! tile also run on activations stored as f16 (the inputs are f16 values, so the reference is
//! the same; the stored outputs get one more f16 rounding).

mod common;

use common::*;
use hetconv::kernels::conv::{self, ConvDims, ConvKind, ConvWeights, Pointwise};
use hetconv::kernels::reduce;
use hetconv::reference::conv as cpu;
use hetconv::tensor::DType;
use hetconv::{Context, Tensor};
use proptest::prelude::{ProptestConfig, prop, proptest};

/// Inputs of one case, as f32 (what the GPU sees) and f64 (what the reference sees); x and dy
/// are f16 values, so that f16 storage holds them exactly.
struct Case {
    kind: ConvKind,
    d: ConvDims,
    x: Vec<f32>,
    w3: Option<Vec<f32>>,
    w1: Option<Vec<f32>>,
    bias: Option<Vec<f32>>,
    dy: Vec<f32>,
}

impl Case {
    fn new(kind: ConvKind, d: ConvDims, with_bias: bool, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let x = round16(&rng.vec(d.batch * d.cin * d.height * d.width));
        let w3 = kind
            .spatial()
            .then(|| rng.vec(kind.spatial_shape(&d).iter().product()));
        let mut w1 = (kind.pointwise != Pointwise::None).then(|| rng.vec(d.cout * d.cin));
        // Masked weights hold exact zeros in the skipped block, as in a trained HetConv.
        if let (Pointwise::Masked, Some(w1)) = (kind.pointwise, w1.as_mut()) {
            for o in 0..d.cout {
                for c in cpu::own_block(&kind, &d, o) {
                    w1[o * d.cin + c] = 0.0;
                }
            }
        }
        let bias = with_bias.then(|| rng.vec(d.cout));
        let dy = round16(&rng.vec(kind.out_shape(&d).iter().product()));
        Self {
            kind,
            d,
            x,
            w3,
            w1,
            bias,
            dy,
        }
    }

    fn poison_masked_block(&self, w1: &[f32]) -> Vec<f32> {
        let mut w1 = w1.to_vec();
        if self.kind.pointwise == Pointwise::Masked {
            for o in 0..self.d.cout {
                for c in cpu::own_block(&self.kind, &self.d, o) {
                    w1[o * self.d.cin + c] = f32::NAN;
                }
            }
        }
        w1
    }

    /// Checks the case along every conv path, the mixed-precision ones included, on f32
    /// activations; the mixed paths, the direct one and the first f32 tile on f16 ones too
    /// (the others widen f16 activations the way those two do).
    fn check(&self, ctx: &Context) {
        let paths = conv_paths(ctx);
        let first_tile = paths
            .iter()
            .copied()
            .find(|p| matches!(p, ConvPath::Variant(_)));
        for path in paths.iter().copied().chain(mixed_paths(ctx)) {
            use_path(ctx, path);
            self.check_with(ctx, path, DType::F32);
            let widened = path == ConvPath::Direct || Some(path) == first_tile;
            if (is_mixed(path) || widened) && has_f16(ctx, "f16 activations in convs") {
                self.check_with(ctx, path, DType::F16);
            }
        }
    }

    fn check_with(&self, ctx: &Context, algorithm: ConvPath, storage: DType) {
        let Case { kind, d, .. } = self;
        let name = format!("{algorithm:?} {kind:?} {d:?} {storage}");
        let x_shape = [d.batch, d.cin, d.height, d.width];
        let x = Tensor::from_slice_as(ctx, &x_shape, &self.x, storage).unwrap();
        let dy = Tensor::from_slice_as(ctx, &kind.out_shape(d), &self.dy, storage).unwrap();
        let w3 = self
            .w3
            .as_ref()
            .map(|w| upload(ctx, &kind.spatial_shape(d), w));
        // The GPU copy of a masked weight holds NaN in the skipped block: the kernels must never
        // read it (a multiply by it would poison the result).
        let w1 = self
            .w1
            .as_ref()
            .map(|w| upload(ctx, &[d.cout, d.cin], &self.poison_masked_block(w)));
        let bias = self.bias.as_ref().map(|b| upload(ctx, &[d.cout], b));
        let weights = ConvWeights {
            w3: w3.as_ref(),
            w1: w1.as_ref(),
            bias: bias.as_ref(),
        };

        let (x64, dy64) = (to_f64(&self.x), to_f64(&self.dy));
        let w3_64 = self.w3.as_deref().map(to_f64);
        let w1_64 = self.w1.as_deref().map(to_f64);
        let b64 = self.bias.as_deref().map(to_f64);

        // Record the three passes under a profile, to see which kernels ran.
        let mut gpu = None;
        let kernels = kernels_run(ctx, || {
            let y = conv::forward(kind, &x, &weights).unwrap();
            let dx = conv::backward_input(kind, &dy, &weights, x.shape()).unwrap();
            gpu = Some((y, dx, conv::backward_weight(kind, &x, &dy).unwrap()));
        });
        let (y, dx, grads) = gpu.unwrap();
        assert_eq!((y.dtype(), dx.dtype()), (storage, storage), "{name}");
        if let Some(kernels) = kernels {
            let has_weight_product =
                kind.spatial() || kind.pointwise == Pointwise::Dense || kind.groups > 1;
            let roles = conv_roles(variant_of(algorithm), kind, d, has_weight_product);
            let direct = [
                "conv::forward",
                "conv::backward_input",
                "conv_weight_grad::weight_grad",
            ];
            // f32 kernels run on widened f16 activations.
            let read = if is_mixed(algorithm) {
                storage
            } else {
                DType::F32
            };
            assert_kernels_on(&kernels, variant_of(algorithm), read, &roles, &direct);
        }
        // One more rounding where the outputs are stored as f16 (to either neighbour: one f16
        // step, relative 2^-10, or 2^-24 below f16's normal range).
        let stored = |bound: f64, want: f64| match storage {
            DType::F32 => bound,
            DType::F16 => bound + (want.abs() + bound) / 1024.0 + 2f64.powi(-24),
        };
        let y = y.to_vec().unwrap();
        let want_y = cpu::forward(
            kind,
            d,
            &x64,
            w3_64.as_deref(),
            w1_64.as_deref(),
            b64.as_deref(),
        );
        let dx = dx.to_vec().unwrap();
        let want_dx = cpu::backward_input(kind, d, &dy64, w3_64.as_deref(), w1_64.as_deref());
        let (want_dw3, want_dw1) = cpu::backward_weight(kind, d, &x64, &dy64);
        // Weight gradients sum over the output pixels.
        let (oh, ow) = kind.out_hw(d);
        let pixels = d.batch * oh * ow;
        if is_mixed(algorithm) {
            // f16 operands: each result within the bound of its own sum of |a| |b| (the
            // reference on absolute values), over the pass's reduction length.
            let abs = |v: &[f64]| v.iter().map(|x| x.abs()).collect::<Vec<f64>>();
            let (ax, ady) = (abs(&x64), abs(&dy64));
            let aw3 = w3_64.as_deref().map(abs);
            let aw1 = w1_64.as_deref().map(abs);
            let sum_y = cpu::forward(kind, d, &ax, aw3.as_deref(), aw1.as_deref(), None);
            let k_y = reduction_len(kind, d.cin);
            let label = format!("{name} y");
            assert_within_f16_bound_then(&label, &y, &want_y, &sum_y, k_y, stored);
            let sum_dx = cpu::backward_input(kind, d, &ady, aw3.as_deref(), aw1.as_deref());
            let k_dx = reduction_len(kind, d.cout);
            let label = format!("{name} dx");
            assert_within_f16_bound_then(&label, &dx, &want_dx, &sum_dx, k_dx, stored);
            let (sum_dw3, sum_dw1) = cpu::backward_weight(kind, d, &ax, &ady);
            for (part, got, want, sum) in [
                ("dw3", &grads.dw3, &want_dw3, &sum_dw3),
                ("dw1", &grads.dw1, &want_dw1, &sum_dw1),
            ] {
                assert_eq!(got.is_some(), want.is_some(), "{name}: {part} presence");
                if let (Some(got), Some(want), Some(sum)) = (got, want, sum) {
                    let got = got.to_vec().unwrap();
                    let label = format!("{name} {part}");
                    assert_within_f16_bound(&label, &got, want, sum, pixels);
                }
            }
            self.check_masked_and_bias(&name, &dy, &dy64, &grads);
            return;
        }
        let f32_then_stored = Tolerance {
            rtol: F32_KERNEL.rtol + stored(0.0, 1.0),
            atol: F32_KERNEL.atol,
        };
        assert_close(&format!("{name} y"), &y, &want_y, f32_then_stored);
        assert_close(&format!("{name} dx"), &dx, &want_dx, f32_then_stored);

        let long_sum = Tolerance {
            rtol: 1e-5,
            atol: 1e-5 * pixels as f64,
        };
        assert_eq!(
            grads.dw3.is_some(),
            want_dw3.is_some(),
            "{name}: dw3 presence"
        );
        assert_eq!(
            grads.dw1.is_some(),
            want_dw1.is_some(),
            "{name}: dw1 presence"
        );
        if let (Some(got), Some(want)) = (&grads.dw3, &want_dw3) {
            assert_close(
                &format!("{name} dw3"),
                &got.to_vec().unwrap(),
                want,
                long_sum,
            );
        }
        if let (Some(got), Some(want)) = (&grads.dw1, &want_dw1) {
            let got = got.to_vec().unwrap();
            assert_close(&format!("{name} dw1"), &got, want, long_sum);
        }
        self.check_masked_and_bias(&name, &dy, &dy64, &grads);
    }

    /// `forward_into` with `accumulate` adds the conv (with its bias) to what y held.
    fn check_accumulate(&self, ctx: &Context, path: ConvPath) {
        let Case { kind, d, .. } = self;
        let upload_opt =
            |w: &Option<Vec<f32>>, shape: &[usize]| w.as_ref().map(|w| upload(ctx, shape, w));
        let w3 = upload_opt(&self.w3, &kind.spatial_shape(d));
        let w1 = upload_opt(&self.w1, &[d.cout, d.cin]);
        let bias = upload_opt(&self.bias, &[d.cout]);
        let weights = ConvWeights {
            w3: w3.as_ref(),
            w1: w1.as_ref(),
            bias: bias.as_ref(),
        };
        let x = upload(ctx, &[d.batch, d.cin, d.height, d.width], &self.x);
        let before = Rng::new(7).vec(kind.out_shape(d).iter().product());
        let y = upload(ctx, &kind.out_shape(d), &before);
        conv::forward_into(kind, &x, &weights, &y, true).unwrap();
        let w3_64 = self.w3.as_deref().map(to_f64);
        let w1_64 = self.w1.as_deref().map(to_f64);
        let b64 = self.bias.as_deref().map(to_f64);
        let conv = cpu::forward(
            kind,
            d,
            &to_f64(&self.x),
            w3_64.as_deref(),
            w1_64.as_deref(),
            b64.as_deref(),
        );
        let want: Vec<f64> = conv
            .iter()
            .zip(&before)
            .map(|(c, b)| c + f64::from(*b))
            .collect();
        let got = y.to_vec().unwrap();
        let name = format!("{path:?} {kind:?} {d:?} accumulate");
        if is_mixed(path) {
            let abs = |v: &[f64]| v.iter().map(|x| x.abs()).collect::<Vec<f64>>();
            let (aw3, aw1, ab) = (
                w3_64.as_deref().map(abs),
                w1_64.as_deref().map(abs),
                b64.as_deref().map(abs),
            );
            let x_abs = abs(&to_f64(&self.x));
            let sum = cpu::forward(
                kind,
                d,
                &x_abs,
                aw3.as_deref(),
                aw1.as_deref(),
                ab.as_deref(),
            );
            let sum: Vec<f64> = sum
                .iter()
                .zip(&before)
                .map(|(s, b)| s + f64::from(b.abs()))
                .collect();
            let k = reduction_len(kind, d.cin) + 2;
            assert_within_f16_bound(&name, &got, &want, &sum, k);
        } else {
            assert_close(&name, &got, &want, F32_KERNEL);
        }
    }

    /// Masked 1x1 gradients are exact zeros; the bias gradient matches the reference.
    fn check_masked_and_bias(
        &self,
        name: &str,
        dy: &Tensor,
        dy64: &[f64],
        grads: &conv::ConvWeightGrads,
    ) {
        let Case { kind, d, .. } = self;
        if let (Some(got), Pointwise::Masked) = (&grads.dw1, kind.pointwise) {
            let got = got.to_vec().unwrap();
            for o in 0..d.cout {
                for c in cpu::own_block(kind, d, o) {
                    assert_eq!(
                        got[o * d.cin + c].to_bits(),
                        0,
                        "{name}: masked dw1[{o},{c}] is not an exact +0"
                    );
                }
            }
        }
        if self.bias.is_some() {
            let db = reduce::sum_channels(dy).unwrap().to_vec().unwrap();
            let long_sum = Tolerance {
                rtol: 1e-5,
                atol: 1e-5 * (dy64.len() / d.cout) as f64,
            };
            assert_close(
                &format!("{name} dbias"),
                &db,
                &cpu::bias_grad(kind, d, dy64),
                long_sum,
            );
        }
    }
}

/// The reduction length of one group's product (as the GEMM core counts it): own-block spatial
/// taps, then the 1x1 channels (all of them, or all outside the block when masked).
fn reduction_len(kind: &ConvKind, channels: usize) -> usize {
    channels / kind.groups * kind.taps()
        + match kind.pointwise {
            Pointwise::None => 0,
            Pointwise::Dense => channels,
            Pointwise::Masked => channels - channels / kind.groups,
        }
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

/// Shapes: batch 1 and more, odd and tiny images, N != M, channels not multiples of 4.
fn shapes() -> Vec<ConvDims> {
    vec![
        dims(1, 8, 8, 7, 6),
        dims(2, 8, 12, 2, 2),
        dims(3, 6, 6, 1, 1),
        dims(2, 12, 6, 5, 3),
        dims(1, 3, 5, 6, 9),
    ]
}

fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|g| n.is_multiple_of(*g)).collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[test]
fn grouped_3x3_every_group_count_with_and_without_bias() {
    let ctx = ctx();
    for (i, d) in shapes().into_iter().enumerate() {
        for g in divisors(gcd(d.cin, d.cout)) {
            Case::new(ConvKind::grouped3x3(g), d, g == 1, 10 + i as u64).check(&ctx);
        }
    }
}

#[test]
fn pointwise_dense_and_masked() {
    let ctx = ctx();
    for (i, d) in shapes().into_iter().enumerate() {
        Case::new(ConvKind::pointwise(), d, false, 20 + i as u64).check(&ctx);
        for p in divisors(gcd(d.cin, d.cout)) {
            Case::new(ConvKind::masked_pointwise(p), d, false, 30 + i as u64).check(&ctx);
        }
    }
}

#[test]
fn fused_hetconv_every_part() {
    let ctx = ctx();
    for (i, d) in shapes().into_iter().enumerate() {
        for p in divisors(gcd(d.cin, d.cout)) {
            Case::new(ConvKind::hetconv(p), d, false, 40 + i as u64).check(&ctx);
        }
    }
    // P in {1, 2, 4, 8, M} on M = N = 16.
    for p in [1, 2, 4, 8, 16] {
        Case::new(
            ConvKind::hetconv(p),
            dims(2, 16, 16, 3, 5),
            false,
            50 + p as u64,
        )
        .check(&ctx);
    }
}

/// The cooperative tiles where each subgroup owns several blocks of fragments, as on an adapter
/// whose driver makes subgroups wider than its smallest (AMD's 64 lanes of 32..64): laid out
/// for half the adapter's subgroup size, so that each real subgroup owns two blocks, every
/// cooperative tile still matches the reference in every pass, on f32 and f16 activations
/// (HetConv P = 2 on odd maps, a strided dense 3x3 with bias, batch 1). Every pass has over 32
/// rows, so that the blocks a subgroup owns second (the lower half of a tile of up to 64
/// rows) hold outputs.
#[test]
fn cooperative_tiles_whose_subgroups_own_several_blocks() {
    // The adapter's limits: the epilogue's slots grow with the subgroups laid out for.
    let ctx = max_ctx();
    let Some(coop) = coop_paths_on_half_subgroups(&ctx) else {
        return;
    };
    let cases = [
        Case::new(ConvKind::hetconv(2), dims(2, 72, 70, 3, 5), false, 70),
        Case::new(
            ConvKind {
                stride: 2,
                ..ConvKind::standard3x3()
            },
            dims(1, 36, 40, 5, 4),
            true,
            71,
        ),
    ];
    for path in coop {
        use_path(&ctx, path);
        for case in &cases {
            case.check_with(&ctx, path, DType::F32);
            case.check_with(&ctx, path, DType::F16);
        }
    }
}

/// A 3x3 layer with a dense 1x1 part on top (the unmasked form) is also a family member.
#[test]
fn grouped_3x3_plus_dense_1x1() {
    let ctx = ctx();
    let kind = ConvKind {
        pointwise: Pointwise::Dense,
        ..ConvKind::grouped3x3(2)
    };
    Case::new(kind, dims(2, 6, 4, 4, 5), false, 60).check(&ctx);
}

/// Every kernel with its reduction split (forward and input gradient: `sum_splits` is asserted
/// to have run), on reductions long enough to split at every KC (at least 256 in both
/// directions): HetConv, a strided standard 3x3 and a grouped 3x3 with bias, a masked 1x1,
/// batch 1 and odd maps; HetConv on 8x4 maps, whose weight gradient reads dy a vec4 at a time
/// (32 pixels a plane) over 5 images, so that a quad's image changes within a split and a
/// split may start inside an image; the mixed kernels on f16 activations too; and a split
/// forward pass that adds to its output.
#[test]
fn split_reductions_every_kind() {
    let ctx = ctx();
    let cases = [
        (ConvKind::hetconv(2), dims(1, 64, 64, 3, 5), false),
        (
            ConvKind::grouped3x3(1).with_stride(2),
            dims(2, 32, 32, 5, 4),
            true,
        ),
        (ConvKind::grouped3x3(2), dims(1, 64, 64, 1, 3), true),
        (
            ConvKind::masked_pointwise(2),
            dims(1, 512, 512, 1, 2),
            false,
        ),
        (ConvKind::hetconv(2), dims(5, 64, 64, 8, 4), false),
    ];
    let paths = split_paths(&ctx);
    for (i, (kind, d, bias)) in cases.into_iter().enumerate() {
        let case = Case::new(kind, d, bias, 200 + i as u64);
        for &path in &paths {
            use_path(&ctx, path);
            case.check_with(&ctx, path, DType::F32);
            if is_mixed(path) && has_f16(&ctx, "f16 activations in split convs") {
                case.check_with(&ctx, path, DType::F16);
            }
        }
    }
    let case = Case::new(ConvKind::hetconv(2), dims(1, 64, 64, 3, 5), true, 210);
    for &path in &paths {
        use_path(&ctx, path);
        case.check_accumulate(&ctx, path);
    }
}

/// Every member takes a stride, in both parts: HetConv at every part, grouped and depthwise
/// 3x3, dense and masked 1x1, on odd sizes where the last window hangs over the border, a row
/// or column of one pixel, and stride 3 (taps that no output pixel uses).
#[test]
fn strided_every_kind_and_part() {
    let ctx = ctx();
    let cases = [
        (2, dims(1, 8, 8, 7, 6)),
        (2, dims(2, 6, 3, 4, 1)),
        (3, dims(1, 4, 8, 8, 7)),
    ];
    for (i, (stride, d)) in cases.into_iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        for g in divisors(gcd(d.cin, d.cout)) {
            for kind in [
                ConvKind::hetconv(g),
                ConvKind::grouped3x3(g),
                ConvKind::masked_pointwise(g),
            ] {
                Case::new(kind.with_stride(stride), d, g == 1, seed + g as u64).check(&ctx);
            }
        }
        let projection = ConvKind::pointwise().with_stride(stride);
        Case::new(projection, d, true, seed).check(&ctx);
    }
}

/// Spatial kernels other than 3x3: a ResNet stem's 7x7 with stride 2 (and with stride 4, the
/// widest window the direct kernels keep), 7x7 over an image smaller than the kernel, a grouped
/// 7x7 with stride 2, and a grouped 1x1 spatial part. (5x5 is checked against finite
/// differences on the CPU; on the GPU each kernel side compiles every tile again, and 7x7 is
/// the side a network here uses.)
#[test]
fn standard_kxk_convs_and_a_resnet_stem() {
    let ctx = ctx();
    let cases = [
        (
            ConvKind::standard(7).with_stride(2),
            dims(2, 3, 8, 11, 9),
            true,
        ),
        (
            ConvKind::standard(7).with_stride(4),
            dims(1, 2, 3, 13, 10),
            false,
        ),
        (ConvKind::standard(7), dims(1, 3, 4, 5, 4), true),
        (
            ConvKind {
                groups: 2,
                ..ConvKind::standard(7).with_stride(2)
            },
            dims(1, 4, 6, 6, 7),
            false,
        ),
        (
            ConvKind {
                groups: 2,
                ..ConvKind::standard(1)
            },
            dims(2, 4, 6, 3, 5),
            true,
        ),
    ];
    for (i, (kind, d, bias)) in cases.into_iter().enumerate() {
        Case::new(kind, d, bias, 200 + i as u64).check(&ctx);
    }
}

#[test]
fn fused_equals_unfused_equals_per_filter_definition() {
    let ctx = ctx();
    for (path, p, stride) in conv_paths(&ctx)
        .into_iter()
        .flat_map(|a| [(1, 1), (2, 1), (4, 1), (8, 1), (2, 2), (4, 3)].map(|(p, s)| (a, p, s)))
    {
        use_path(&ctx, path);
        let d = dims(2, 8, 8, 5, 7);
        let kind = ConvKind::hetconv(p).with_stride(stride);
        let case = Case::new(kind, d, false, 70 + p as u64);
        let (w3, w1) = (case.w3.clone().unwrap(), case.w1.clone().unwrap());
        let x = upload(&ctx, &[2, 8, 5, 7], &case.x);
        let w3t = upload(&ctx, &[8, 8 / p, 3, 3], &w3);
        let w1t = upload(&ctx, &[8, 8], &w1);
        let weights = ConvWeights {
            w3: Some(&w3t),
            w1: Some(&w1t),
            bias: None,
        };
        let fused = conv::forward(&kind, &x, &weights)
            .unwrap()
            .to_vec()
            .unwrap();
        let unfused = conv::hetconv_unfused_forward(&kind, &x, &w3t, &w1t)
            .unwrap()
            .to_vec()
            .unwrap();

        // The definition: filter o has 3x3 kernels on the M/P channels of its part, 1x1 on the
        // rest, all with the layer's stride.
        let (w3_64, w1_64) = (to_f64(&w3), to_f64(&w1));
        let per_part = 8 / p;
        let part = |o: usize| o / (8 / p);
        let definition = cpu::hetconv_per_filter(
            &d,
            stride,
            &to_f64(&case.x),
            |o, c| c / per_part == part(o),
            |o, c| std::array::from_fn(|t| w3_64[(o * per_part + c % per_part) * 9 + t]),
            |o, c| w1_64[o * 8 + c],
        );
        let label = format!("{path:?} P={p} stride {stride}");
        assert_close(
            &format!("{label} fused vs definition"),
            &fused,
            &definition,
            F32_KERNEL,
        );
        assert_close(
            &format!("{label} unfused vs definition"),
            &unfused,
            &definition,
            F32_KERNEL,
        );

        // And a standard conv with the dense equivalent weight (1x1 as centre taps).
        let dense = cpu::hetconv_dense_equivalent(&d, p, &w3_64, &w1_64);
        let via_dense = cpu::forward(
            &ConvKind::standard3x3().with_stride(stride),
            &d,
            &to_f64(&case.x),
            Some(&dense),
            None,
            None,
        );
        assert_close64(
            &format!("{label} dense equivalent"),
            &via_dense,
            &definition,
            Tolerance {
                rtol: 1e-12,
                atol: 1e-12,
            },
        );
    }
}

/// The paper's shifted layout (filter n has 3x3 kernels on channels c ≡ n mod P) equals the
/// block layout after permuting every channel dimension with σ(c) = (c mod P)·(C/P) + c/P.
#[test]
fn shifted_layout_equals_block_layout_after_permutation() {
    let (m, n, p) = (8, 12, 4);
    let d = dims(2, m, n, 4, 5);
    let mut rng = Rng::new(80);
    let x = to_f64(&rng.vec(2 * m * 20));
    // Shifted-layout weights: w3s[n][j] is the kernel on the j-th channel with c mod P == n mod P.
    let w3s = to_f64(&rng.vec(n * (m / p) * 9));
    let w1s = to_f64(&rng.vec(n * m));
    let shifted = cpu::hetconv_per_filter(
        &d,
        1,
        &x,
        |o, c| c % p == o % p,
        |o, c| std::array::from_fn(|t| w3s[(o * (m / p) + c / p) * 9 + t]),
        |o, c| w1s[o * m + c],
    );
    // Permute into the block layout and run the block-layout reference.
    let sigma_in = |c| cpu::shifted_to_block(c, m, p);
    let sigma_out = |o| cpu::shifted_to_block(o, n, p);
    let plane = 20;
    let mut xb = vec![0.0; x.len()];
    for b in 0..2 {
        for c in 0..m {
            xb[(b * m + sigma_in(c)) * plane..][..plane]
                .copy_from_slice(&x[(b * m + c) * plane..][..plane]);
        }
    }
    let mut w3b = vec![0.0; w3s.len()];
    let mut w1b = vec![0.0; w1s.len()];
    for o in 0..n {
        for j in 0..m / p {
            // The j-th 3x3 channel of filter o is channel c = j*P + o mod P: block offset c / P = j.
            w3b[(sigma_out(o) * (m / p) + j) * 9..][..9]
                .copy_from_slice(&w3s[(o * (m / p) + j) * 9..][..9]);
        }
        for c in 0..m {
            if c % p != o % p {
                w1b[sigma_out(o) * m + sigma_in(c)] = w1s[o * m + c];
            }
        }
    }
    let block = cpu::forward(&ConvKind::hetconv(p), &d, &xb, Some(&w3b), Some(&w1b), None);
    for b in 0..2 {
        for o in 0..n {
            let want = &shifted[(b * n + o) * plane..][..plane];
            let got = &block[(b * n + sigma_out(o)) * plane..][..plane];
            assert_close64(
                &format!("image {b} filter {o}"),
                got,
                want,
                Tolerance {
                    rtol: 1e-12,
                    atol: 1e-12,
                },
            );
        }
    }
}

/// The reference gradients agree with central finite differences of L = sum(y * dy) in f64.
#[test]
fn reference_gradients_match_finite_differences() {
    let small = dims(2, 6, 6, 3, 4);
    let odd = dims(1, 6, 6, 5, 7);
    for (kind, d) in [
        (ConvKind::hetconv(2), small),
        (ConvKind::grouped3x3(3), small),
        (ConvKind::pointwise(), small),
        (ConvKind::masked_pointwise(3), small),
        (ConvKind::hetconv(3).with_stride(2), odd),
        (ConvKind::grouped3x3(2).with_stride(3), odd),
        (ConvKind::pointwise().with_stride(2), odd),
        (ConvKind::masked_pointwise(2).with_stride(2), odd),
        (ConvKind::standard(5), dims(1, 2, 3, 5, 6)),
        (ConvKind::standard(7).with_stride(2), dims(1, 2, 3, 9, 8)),
    ] {
        let case = Case::new(kind, d, false, 90);
        let x = to_f64(&case.x);
        let dy = to_f64(&case.dy);
        let w3 = case.w3.as_deref().map(to_f64);
        let w1 = case.w1.as_deref().map(to_f64);
        let loss = |x: &[f64], w3: Option<&[f64]>, w1: Option<&[f64]>| -> f64 {
            cpu::forward(&kind, &d, x, w3, w1, None)
                .iter()
                .zip(&dy)
                .map(|(a, b)| a * b)
                .sum()
        };
        let numeric = finite_differences;
        let tol = Tolerance {
            rtol: 1e-6,
            atol: 1e-7,
        };
        let dx = cpu::backward_input(&kind, &d, &dy, w3.as_deref(), w1.as_deref());
        let fd = numeric(&x, &|v| loss(v, w3.as_deref(), w1.as_deref()));
        assert_close64(&format!("{kind:?} dx"), &dx, &fd, tol);
        let (dw3, dw1) = cpu::backward_weight(&kind, &d, &x, &dy);
        if let (Some(w3), Some(dw3)) = (&w3, &dw3) {
            let fd = numeric(w3, &|v| loss(&x, Some(v), w1.as_deref()));
            assert_close64(&format!("{kind:?} dw3"), dw3, &fd, tol);
        }
        if let (Some(w1v), Some(dw1)) = (&w1, &dw1) {
            let fd = numeric(w1v, &|v| loss(&x, w3.as_deref(), Some(v)));
            // Masked entries do not take part in the function: their derivative is zero.
            assert_close64(&format!("{kind:?} dw1"), dw1, &fd, tol);
        }
    }
}

#[test]
fn bad_shapes_give_errors_naming_op_and_shapes() {
    let ctx = ctx();
    let x = Tensor::zeros(&ctx, &[1, 6, 4, 4]).unwrap();
    let w3 = Tensor::zeros(&ctx, &[8, 1, 3, 3]).unwrap();
    let w1 = Tensor::zeros(&ctx, &[8, 6]).unwrap();
    let weights = ConvWeights {
        w3: Some(&w3),
        w1: Some(&w1),
        bias: None,
    };
    let err = conv::forward(&ConvKind::hetconv(4), &x, &weights)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv forward") && err.contains("not divisible by groups/parts 4"),
        "{err}"
    );
    let err = conv::forward(&ConvKind::hetconv(2), &x, &weights)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[8, 1, 3, 3]") && err.contains("expected [8, 3, 3, 3]"),
        "{err}"
    );
    let err = conv::forward(
        &ConvKind::hetconv(2),
        &Tensor::zeros(&ctx, &[6, 4, 4]).unwrap(),
        &weights,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("[6, 4, 4]"), "{err}");
    let dy = Tensor::zeros(&ctx, &[1, 8, 4, 5]).unwrap();
    let err = conv::backward_weight(&ConvKind::hetconv(2), &x, &dy)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[1, 6, 4, 4]") && err.contains("[1, 8, 4, 5]"),
        "{err}"
    );
    // A stride-2 layer maps 4 x 4 to 2 x 2: a dy of the unstrided size is refused.
    let dy = Tensor::zeros(&ctx, &[1, 8, 4, 4]).unwrap();
    let strided = ConvKind::hetconv(2).with_stride(2);
    let err = conv::backward_weight(&strided, &x, &dy)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[1, 8, 2, 2]") && err.contains("stride 2"),
        "{err}"
    );
    let w3_2 = Tensor::zeros(&ctx, &[8, 3, 3, 3]).unwrap();
    let strided_weights = ConvWeights {
        w3: Some(&w3_2),
        w1: Some(&w1),
        bias: None,
    };
    let err = conv::backward_input(&strided, &dy, &strided_weights, &[1, 6, 4, 4])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv backward_input") && err.contains("[1, 8, 2, 2]"),
        "{err}"
    );
    // Kernel sides and strides the kernels do not take are refused by name.
    for (kind, says) in [
        (ConvKind::standard(4), "kernel side 4"),
        (ConvKind::standard(9), "kernel side 9"),
        (ConvKind::standard3x3().with_stride(0), "stride 0"),
        (ConvKind::standard3x3().with_stride(5), "stride 5"),
    ] {
        let err = conv::forward(&kind, &x, &weights).unwrap_err().to_string();
        assert!(err.contains(says), "{kind:?}: {err}");
    }
}

/// The largest tile shape needs more workgroup memory than WebGPU's default limits: checked on
/// a context opened with the adapter's own limits (lavapipe offers 32 KiB).
#[test]
fn largest_tile_on_the_adapters_own_limits() {
    let ctx = max_ctx();
    let tile = hetconv::kernels::gemm_core::TILE_SHAPES[0];
    if !tile.fits(ctx.limits()) {
        let text = format!(
            "largest_tile_on_the_adapters_own_limits: {tile} does not fit {:?}: not run",
            ctx.adapter_info().name
        );
        assert!(std::env::var_os("CI").is_none(), "{text} (CI needs it)");
        note(&text);
        return;
    }
    let path = ConvPath::Variant(hetconv::tune::Variant::gemm(tile));
    use_path(&ctx, path);
    for (i, kind) in [ConvKind::hetconv(4), ConvKind::standard3x3()]
        .into_iter()
        .enumerate()
    {
        let case = Case::new(kind, dims(2, 8, 136, 5, 27), true, 300 + i as u64);
        case.check_with(&ctx, path, DType::F32);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Fused HetConv vs the reference over random small shapes.
    #[test]
    fn fused_hetconv_matches_reference_on_random_shapes(
        batch in 1usize..=3,
        parts in prop::sample::select(vec![1usize, 2, 3, 4]),
        in_per_part in 1usize..=3,
        out_per_part in 1usize..=3,
        height in 1usize..=6,
        width in 1usize..=9,
        seed in 0u64..1000,
    ) {
        let d = dims(batch, parts * in_per_part, parts * out_per_part, height, width);
        Case::new(ConvKind::hetconv(parts), d, false, seed).check(&ctx());
    }
}
