//! `hetconv selfcheck`: every kernel family once against the CPU reference, on whatever adapter
//! the context opened, so a user can see that a new GPU, driver or backend computes correctly.

use hetconv::kernels::batchnorm::{self, BatchNormConfig};
use hetconv::kernels::conv::{self, ConvDims, ConvKind, ConvWeights};
use hetconv::kernels::elementwise::{self, BinaryOp};
use hetconv::kernels::gemm::{self, Layout};
use hetconv::kernels::gemm_core::{CoreKernel, TILE_SHAPES};
use hetconv::kernels::sgd::{self, SgdStep};
use hetconv::kernels::{loss, pool, reduce};
use hetconv::reference;
use hetconv::reference::compare::{Tolerance, f16_sum_bound};
use hetconv::tensor::DType;
use hetconv::tune::Variant;
use hetconv::{Context, ConvAlgorithm, Error, Precision, Result, Tensor};

/// Tolerance of the check (f32 kernels vs the f64 reference, on values in [-1, 1) and
/// reductions of at most a few hundred terms).
const F32_TOLERANCE: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-4,
};

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// The most products a check sums (the 1x1 weight gradient's 2 x 5 x 7 pixels, the conv's
/// 8 x 9 + 8 taps and channels), except the split-reduction checks'.
const MOST_TERMS: usize = 80;

/// The shape of the conv checks: batch 2, 8 channels in and out, 5x7 maps.
const CONV_DIMS: ConvDims = ConvDims {
    batch: 2,
    cin: 8,
    cout: 8,
    height: 5,
    width: 7,
};

/// The conv of the split-reduction checks: 64 channels, so that a P = 2 HetConv's reductions
/// (32 x 9 + 32 = 320 taps and channels, both directions) split at every stage depth (at least
/// 2 x 4 stages of 32); batch 1 on a 3x5 map.
const SPLIT_CONV_DIMS: ConvDims = ConvDims {
    batch: 1,
    cin: 64,
    cout: 64,
    height: 3,
    width: 5,
};

/// The most products a split-reduction check sums (the conv's 320; the product's 300).
const SPLIT_TERMS: usize = 320;

/// Absolute tolerance of the mixed-precision kernels on sums of at most `terms` products of
/// operands in [-1, 1): [`f16_sum_bound`] where every product is as large as it can be (1, so
/// the sum at most `terms`: about 0.079 for 80 terms, 0.32 for 320), plus f32's own tolerance.
fn mixed_atol(terms: usize) -> f64 {
    f16_sum_bound(terms as f64, terms, terms as f64) + F32_TOLERANCE.atol
}

/// Counts the checks and the mismatches, printing one line per check.
#[derive(Default)]
struct Report {
    checks: usize,
    failed: Vec<String>,
    /// Checks of mixed-precision kernels (their tolerance is [`mixed_atol`]).
    mixed: bool,
    /// Checks of split reductions (their sums have up to [`SPLIT_TERMS`] terms).
    split: bool,
}

impl Report {
    fn compare(&mut self, name: &str, got: &Tensor, want: &[f64]) -> Result<()> {
        let terms = if self.split { SPLIT_TERMS } else { MOST_TERMS };
        let mut tol = if self.mixed {
            Tolerance {
                rtol: 0.0,
                atol: mixed_atol(terms),
            }
        } else {
            F32_TOLERANCE
        };
        if got.dtype() == DType::F16 {
            // Stored as f16: one f16 step more (to either neighbour), relative 2^-10, or 2^-24
            // below f16's normal range.
            tol.atol += 2f64.powi(-24);
            tol.rtol += 2f64.powi(-10);
        }
        let got = got.to_vec()?;
        self.checks += 1;
        match tol.check(&got, want) {
            Ok(()) => println!("  {name:<44} ok"),
            Err(m) => {
                println!(
                    "  {name:<44} MISMATCH ({m}; bounds {:e} + {:e} |want|, NaN included)",
                    tol.atol, tol.rtol
                );
                self.failed.push(name.to_string());
            }
        }
        Ok(())
    }
}

/// Uploads deterministic values of `shape`; returns the tensor and its f64 copy.
fn input(ctx: &Context, shape: &[usize], seed: u64) -> Result<(Tensor, Vec<f64>)> {
    activations(ctx, shape, seed, DType::F32)
}

/// [`input`] stored as `storage` (f16: the values rounded to f16 first, and the f64 copy of
/// those: the reference sees what the kernels read).
fn activations(
    ctx: &Context,
    shape: &[usize],
    seed: u64,
    storage: DType,
) -> Result<(Tensor, Vec<f64>)> {
    let mut v = values(shape.iter().product(), seed);
    if storage == DType::F16 {
        v.iter_mut()
            .for_each(|x| *x = half::f16::from_f32(*x).to_f32());
    }
    Ok((Tensor::from_slice_as(ctx, shape, &v, storage)?, to_f64(&v)))
}

/// " (f16)" for checks on f16 activations.
fn suffix(storage: DType) -> &'static str {
    match storage {
        DType::F32 => "",
        DType::F16 => " (f16)",
    }
}

/// The matrix product and the linear layer; `how` names the variant in the labels.
fn gemm_checks(
    ctx: &Context,
    r: &mut Report,
    how: &str,
    (m, k, n): (usize, usize, usize),
) -> Result<()> {
    let (a, a64) = input(ctx, &[m, k], 1)?;
    let (b, b64) = input(ctx, &[k, n], 2)?;
    let (bt, bt64) = input(ctx, &[n, k], 3)?;
    let want = reference::gemm::matmul(&a64, &b64, m, k, n);
    r.compare(
        &format!("gemm {m}x{k} @ {k}x{n} ({how})"),
        &gemm::matmul(&a, Layout::AsIs, &b, Layout::AsIs, None)?,
        &want,
    )?;
    let (bias, bias64) = input(ctx, &[n], 22)?;
    r.compare(
        &format!("linear {m}x{k} @ ({n}x{k})^T + bias ({how})"),
        &gemm::matmul(&a, Layout::AsIs, &bt, Layout::Transposed, Some(&bias))?,
        &reference::gemm::linear(&a64, &bt64, &bias64, m, k, n),
    )
}

/// Forward, input gradient, weight gradients (and the bias gradient) of one conv kind of
/// shape `d`, on activations stored as `storage`.
fn conv_checks(
    ctx: &Context,
    r: &mut Report,
    (label, kind): (&str, ConvKind),
    d: ConvDims,
    storage: DType,
) -> Result<()> {
    let label = &format!("{label}{}", suffix(storage));
    let (x, x64) = activations(ctx, &[d.batch, d.cin, d.height, d.width], 4, storage)?;
    let (dy, dy64) = activations(ctx, &kind.out_shape(&d), 5, storage)?;
    let w3 = kind
        .spatial()
        .then(|| input(ctx, &kind.spatial_shape(&d), 6))
        .transpose()?;
    let w1 = (kind.pointwise != conv::Pointwise::None)
        .then(|| input(ctx, &[d.cout, d.cin], 7))
        .transpose()?;
    let (bias, bias64) = input(ctx, &[d.cout], 8)?;
    let weights = ConvWeights {
        w3: w3.as_ref().map(|w| &w.0),
        w1: w1.as_ref().map(|w| &w.0),
        bias: Some(&bias),
    };
    let (w3_64, w1_64) = (
        w3.as_ref().map(|w| w.1.as_slice()),
        w1.as_ref().map(|w| w.1.as_slice()),
    );
    let want = reference::conv::forward(&kind, &d, &x64, w3_64, w1_64, Some(&bias64));
    r.compare(
        &format!("{label} forward"),
        &conv::forward(&kind, &x, &weights)?,
        &want,
    )?;
    let want = reference::conv::backward_input(&kind, &d, &dy64, w3_64, w1_64);
    let no_bias = ConvWeights {
        bias: None,
        ..weights
    };
    r.compare(
        &format!("{label} input gradient"),
        &conv::backward_input(&kind, &dy, &no_bias, x.shape())?,
        &want,
    )?;
    let (want3, want1) = reference::conv::backward_weight(&kind, &d, &x64, &dy64);
    let grads = conv::backward_weight(&kind, &x, &dy)?;
    if let (Some(got), Some(want)) = (&grads.dw3, &want3) {
        let k = kind.kernel;
        r.compare(&format!("{label} {k}x{k} weight gradient"), got, want)?;
    }
    if let (Some(got), Some(want)) = (&grads.dw1, &want1) {
        r.compare(&format!("{label} 1x1 weight gradient"), got, want)?;
    }
    Ok(())
}

/// Pooling, ReLU and the channel sums on activations stored as `storage`.
fn pool_and_relu_checks(ctx: &Context, r: &mut Report, storage: DType) -> Result<()> {
    let (planes, h, w) = (6, 6, 10);
    let (x, x64) = activations(ctx, &[2, 3, h, w], 9, storage)?;
    let (dy, dy64) = activations(ctx, &[2, 3, h / 2, w / 2], 10, storage)?;
    let name = |check: &str| format!("{check}{}", suffix(storage));
    let (y64, arg) = reference::pool::max_pool2(&x64, planes, h, w);
    r.compare(&name("max-pool 2x2 forward"), &pool::max_pool2(&x)?, &y64)?;
    let want = reference::pool::max_pool2_backward(&dy64, &arg, planes, h, w);
    r.compare(
        &name("max-pool 2x2 backward"),
        &pool::max_pool2_backward(&x, &dy)?,
        &want,
    )?;
    // A ResNet stem's window: 3x3, stride 2, padding 1 (6 x 10 -> 3 x 5), and its head.
    let stem = pool::PoolWindow::RESNET_STEM;
    let (y64, arg) = reference::pool::max_pool(&x64, planes, (h, w), stem);
    r.compare(
        &name("max-pool 3x3/2 pad 1 forward"),
        &pool::max_pool(&x, stem)?,
        &y64,
    )?;
    let want = reference::pool::max_pool_backward(&dy64, &arg, planes, h * w);
    r.compare(
        &name("max-pool 3x3/2 pad 1 backward"),
        &pool::max_pool_backward(&x, &dy, stem)?,
        &want,
    )?;
    r.compare(
        &name("global average pool forward"),
        &pool::global_average(&x)?,
        &reference::pool::global_average(&x64, planes, h * w),
    )?;
    let (g, g64) = activations(ctx, &[2, 3, h, w], 11, storage)?;
    r.compare(
        &name("relu forward"),
        &elementwise::relu(&x)?,
        &reference::activation::relu(&x64),
    )?;
    r.compare(
        &name("relu backward"),
        &elementwise::binary(BinaryOp::ReluBackward, &x, &g)?,
        &reference::activation::relu_backward(&x64, &g64),
    )?;
    r.compare(
        &name("channel sums (bias gradient)"),
        &reduce::sum_channels(&g)?,
        &reference::conv::bias_grad(
            &ConvKind::standard3x3(),
            &ConvDims {
                batch: 2,
                cin: 3,
                cout: 3,
                height: h,
                width: w,
            },
            &g64,
        ),
    )
}

/// BatchNorm (eval, train, backward, fused ReLU) on activations stored as `storage` (its
/// parameters and statistics are f32).
fn batchnorm_checks(ctx: &Context, r: &mut Report, storage: DType) -> Result<()> {
    let (b, c, plane) = (3, 5, 7);
    let shape = [b, c, 1, plane];
    let (x, x64) = activations(ctx, &shape, 12, storage)?;
    let (dy, dy64) = activations(ctx, &shape, 13, storage)?;
    let name = |check: &str| format!("{check}{}", suffix(storage));
    let (gamma, gamma64) = input(ctx, &[c], 14)?;
    let (beta, beta64) = input(ctx, &[c], 15)?;
    let (rm, rm64) = input(ctx, &[c], 16)?;
    let rv_values: Vec<f32> = values(c, 17).iter().map(|v| v.abs() + 0.5).collect();
    let (rv, rv64) = (
        Tensor::from_slice(ctx, &[c], &rv_values)?,
        to_f64(&rv_values),
    );
    let cfg = BatchNormConfig::default();
    let (eps, momentum) = (f64::from(cfg.eps), f64::from(cfg.momentum));

    let want =
        reference::batchnorm::forward_eval(&x64, b, c, plane, &gamma64, &beta64, &rm64, &rv64, eps);
    let y = batchnorm::forward_eval(&x, &gamma, &beta, &rm, &rv, &cfg, false)?;
    r.compare(&name("batch norm eval"), &y, &want)?;

    let want = reference::batchnorm::forward_train(
        &x64, b, c, plane, &gamma64, &beta64, &rm64, &rv64, eps, momentum,
    );
    let (y, saved) = batchnorm::forward_train(&x, &gamma, &beta, &rm, &rv, &cfg, false, None)?;
    r.compare(&name("batch norm train forward"), &y, &want.y)?;
    r.compare(&name("batch norm running mean"), &rm, &want.running_mean)?;
    r.compare(&name("batch norm running variance"), &rv, &want.running_var)?;
    let (want_dx, want_dgamma, want_dbeta) = reference::batchnorm::backward(
        &x64,
        &dy64,
        b,
        c,
        plane,
        &gamma64,
        &want.mean,
        &want.invstd,
    );
    let (dx, dgamma, dbeta) = batchnorm::backward(&x, &dy, &gamma, &saved)?;
    r.compare(&name("batch norm input gradient"), &dx, &want_dx)?;
    r.compare(&name("batch norm scale gradient"), &dgamma, &want_dgamma)?;
    r.compare(&name("batch norm shift gradient"), &dbeta, &want_dbeta)?;

    // With ReLU fused: the backward pass masks dy by the recomputed pre-activation.
    let (y, saved) = batchnorm::forward_train(&x, &gamma, &beta, &rm, &rv, &cfg, true, None)?;
    r.compare(
        &name("batch norm + ReLU forward"),
        &y,
        &reference::activation::relu(&want.y),
    )?;
    let masked = reference::activation::relu_backward(&want.y, &dy64);
    let (want_dx, ..) = reference::batchnorm::backward(
        &x64,
        &masked,
        b,
        c,
        plane,
        &gamma64,
        &want.mean,
        &want.invstd,
    );
    let (dx, _, _) = batchnorm::backward(&x, &dy, &gamma, &saved)?;
    r.compare(&name("batch norm + ReLU input gradient"), &dx, &want_dx)
}

fn loss_and_sgd_checks(ctx: &Context, r: &mut Report) -> Result<()> {
    let (b, classes) = (5, 7);
    let logits_values: Vec<f32> = values(b * classes, 18).iter().map(|v| 8.0 * v).collect();
    let logits = Tensor::from_slice(ctx, &[b, classes], &logits_values)?;
    let labels: Vec<usize> = (0..b).map(|i| (3 * i + 1) % classes).collect();
    let label_values: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    let (_, want_grad, log_softmax) =
        reference::loss::softmax_cross_entropy(&to_f64(&logits_values), &labels, classes);
    let ce = loss::softmax_cross_entropy(&logits, &Tensor::from_slice(ctx, &[b], &label_values)?)?;
    r.compare("softmax cross-entropy gradient", &ce.dlogits, &want_grad)?;
    let probabilities: Vec<f64> = log_softmax.iter().map(|v| v.exp()).collect();
    r.compare("softmax", &loss::softmax(&logits)?, &probabilities)?;

    let n = 37;
    let (weights, mut w64) = input(ctx, &[n], 19)?;
    let (momentum, mut buf64) = input(ctx, &[n], 20)?;
    let (grads, g64) = input(ctx, &[n], 21)?;
    for nesterov in [false, true] {
        let step = SgdStep {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov,
        };
        sgd::sgd_step(&grads, &weights, &momentum, &step, None)?;
        reference::optim::sgd_step(&mut w64, &g64, &mut buf64, 0.1, 0.9, 5e-4, nesterov);
    }
    r.compare("SGD momentum, then Nesterov", &weights, &w64)
}

/// The conv family and the matrix product with the direct kernels, then HetConv and the matrix
/// product with each tile shape of the GEMM core that fits the device and each mixed-precision
/// kernel it runs, then each of those kernels with a split reduction.
fn variant_checks(ctx: &Context, r: &mut Report) -> Result<()> {
    const PRODUCT: (usize, usize, usize) = (13, 7, 9);
    ctx.set_conv_algorithm(ConvAlgorithm::Direct);
    gemm_checks(ctx, r, "direct", PRODUCT)?;
    let kinds = [
        ("standard 3x3 conv", ConvKind::standard3x3()),
        ("grouped 3x3 conv G=2", ConvKind::grouped3x3(2)),
        ("pointwise conv", ConvKind::pointwise()),
        ("HetConv P=4 (fused)", ConvKind::hetconv(4)),
        ("HetConv P=4 stride 2", ConvKind::hetconv(4).with_stride(2)),
        (
            "7x7 stride-2 conv (ResNet stem)",
            ConvKind::standard(7).with_stride(2),
        ),
        (
            "1x1 stride-2 conv (projection)",
            ConvKind::pointwise().with_stride(2),
        ),
    ];
    for kind in kinds {
        conv_checks(ctx, r, kind, CONV_DIMS, DType::F32)?;
    }
    // f32 tiles on f32 activations; the mixed-precision kernels (f16 FMA, cooperative
    // matrices) on f32 activations and on f16 ones, as mixed precision stores them.
    let f32_kernels = TILE_SHAPES
        .iter()
        .filter(|t| t.fits(ctx.limits()))
        .map(|t| CoreKernel::F32(*t));
    let kernels: Vec<CoreKernel> = f32_kernels
        .chain(hetconv::tune::kernels(ctx, Precision::Mixed))
        .collect();
    let storages = |kernel: &CoreKernel| -> &'static [DType] {
        if kernel.is_mixed() {
            &[DType::F32, DType::F16]
        } else {
            &[DType::F32]
        }
    };
    for kernel in &kernels {
        r.mixed = kernel.is_mixed();
        ctx.set_conv_algorithm(ConvAlgorithm::Fixed(Variant::Core(*kernel)));
        gemm_checks(ctx, r, &format!("gemm {kernel}"), PRODUCT)?;
        for &storage in storages(kernel) {
            for (label, kind) in [
                ("HetConv P=2", ConvKind::hetconv(2)),
                ("HetConv P=2 stride 2", ConvKind::hetconv(2).with_stride(2)),
            ] {
                let label = format!("{label} (gemm {kernel})");
                conv_checks(ctx, r, (&label, kind), CONV_DIMS, storage)?;
            }
        }
    }
    // Split reductions: reductions of 300 and 320 steps split at every stage depth.
    r.split = true;
    for kernel in &kernels {
        r.mixed = kernel.is_mixed();
        ctx.set_conv_algorithm(ConvAlgorithm::Fixed(Variant::SplitK(*kernel)));
        gemm_checks(ctx, r, &format!("splitk {kernel}"), (13, 300, 9))?;
        for &storage in storages(kernel) {
            let label = format!("HetConv P=2 64 channels (splitk {kernel})");
            conv_checks(
                ctx,
                r,
                (&label, ConvKind::hetconv(2)),
                SPLIT_CONV_DIMS,
                storage,
            )?;
        }
    }
    r.split = false;
    r.mixed = false;
    Ok(())
}

/// Runs the checks and prints one line per check; fails if any mismatches.
pub fn run(ctx: &Context) -> Result<()> {
    println!(
        "selfcheck on {} ({:?})",
        ctx.adapter_info().name,
        ctx.adapter_info().backend
    );
    let mut r = Report::default();
    // The direct kernels, then the GEMM core with every tile shape this device can run (each
    // forced, so nothing is tuned or read from a cache).
    let before = ctx.conv_algorithm();
    let checked = variant_checks(ctx, &mut r);
    ctx.set_conv_algorithm(before);
    checked?;
    // Activations as f32, and as f16 where the device has it (mixed precision's).
    let mut storages = vec![DType::F32];
    if ctx.features().contains(hetconv::wgpu::Features::SHADER_F16) {
        storages.push(DType::F16);
    }
    for storage in storages {
        pool_and_relu_checks(ctx, &mut r, storage)?;
        batchnorm_checks(ctx, &mut r, storage)?;
    }
    loss_and_sgd_checks(ctx, &mut r)?;
    if r.failed.is_empty() {
        println!("all {} checks passed", r.checks);
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "selfcheck failed: {} of {} checks: {}",
            r.failed.len(),
            r.checks,
            r.failed.join(", ")
        )))
    }
}
