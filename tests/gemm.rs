//! GEMM and elementwise kernels vs the CPU reference (odd sizes, both transposes, bias).

mod common;

use common::*;
use hetconv::kernels::elementwise::{self, BinaryOp};
use hetconv::kernels::gemm::{self, Layout};
use hetconv::reference::gemm::{matmul, transpose};
use hetconv::tune::Variant;

#[test]
fn matmul_matches_reference_on_odd_shapes_and_layouts_along_every_path() {
    let ctx = ctx();
    let shapes = [
        (1, 1, 1),
        (1, 5, 3),
        (7, 3, 5),
        (13, 17, 9),
        (33, 65, 31),
        (4, 512, 10),
    ];
    for path in conv_paths(&ctx).into_iter().chain(mixed_paths(&ctx)) {
        use_path(&ctx, path);
        check_matmul_shapes(&ctx, path, &shapes);
    }
}

/// The cooperative tiles with two blocks of fragments per subgroup (laid out for half the
/// adapter's subgroup size, as on an adapter whose driver makes subgroups wider than its
/// smallest) on odd shapes and every layout, their reduction split too.
#[test]
fn matmul_on_cooperative_tiles_whose_subgroups_own_several_blocks() {
    // The adapter's limits: the epilogue's slots grow with the subgroups laid out for.
    let ctx = max_ctx();
    let Some(coop) = coop_paths_on_half_subgroups(&ctx) else {
        return;
    };
    for path in coop {
        use_path(&ctx, path);
        check_matmul_shapes(&ctx, path, &[(1, 5, 3), (13, 17, 9), (33, 65, 31)]);
        let ConvPath::Variant(Variant::Core(kernel)) = path else {
            unreachable!("a cooperative tile")
        };
        let split = ConvPath::Variant(Variant::SplitK(kernel));
        use_path(&ctx, split);
        // 33 rows: the blocks a subgroup owns second (the lower half of a tile of up to 64
        // rows) write partial products too.
        check_matmul_shapes(&ctx, split, &[(7, 257, 5), (33, 257, 31)]);
    }
}

/// Every kernel with its reduction split (sum_splits asserted to have run) on reductions long
/// enough to split at every KC, odd sizes, both layouts, bias and accumulation.
#[test]
fn matmul_split_reductions_along_every_kernel() {
    let ctx = ctx();
    for path in split_paths(&ctx) {
        use_path(&ctx, path);
        check_matmul_shapes(&ctx, path, &[(1, 300, 3), (7, 257, 5), (33, 600, 31)]);
        check_bias_and_accumulate(&ctx, path, (5, 301, 7));
    }
}

fn check_matmul_shapes(ctx: &hetconv::Context, path: ConvPath, shapes: &[(usize, usize, usize)]) {
    let ctx = ctx.clone();
    let mut rng = Rng::new(7);
    for &(m, k, n) in shapes {
        let a = rng.vec(m * k);
        let b = rng.vec(k * n);
        let want = matmul(&to_f64(&a), &to_f64(&b), m, k, n);
        let abs = |v: &[f32]| v.iter().map(|x| f64::from(x.abs())).collect::<Vec<f64>>();
        let abs_sum = matmul(&abs(&a), &abs(&b), m, k, n);
        let tol = F32_KERNEL.scaled(&want);
        for la in [Layout::AsIs, Layout::Transposed] {
            for lb in [Layout::AsIs, Layout::Transposed] {
                let (a_stored, a_shape) = match la {
                    Layout::AsIs => (a.clone(), [m, k]),
                    Layout::Transposed => (transpose_f32(&a, m, k), [k, m]),
                };
                let (b_stored, b_shape) = match lb {
                    Layout::AsIs => (b.clone(), [k, n]),
                    Layout::Transposed => (transpose_f32(&b, k, n), [n, k]),
                };
                let (ta, tb) = (
                    upload(&ctx, &a_shape, &a_stored),
                    upload(&ctx, &b_shape, &b_stored),
                );
                let mut product = None;
                let kernels = kernels_run(&ctx, || {
                    product = Some(gemm::matmul(&ta, la, &tb, lb, None).unwrap());
                });
                if let Some(kernels) = kernels {
                    assert_kernels(&kernels, variant_of(path), &[(3, false)], &["gemm::matmul"]);
                }
                let got = product.unwrap().to_vec().unwrap();
                let name = format!("{path:?} matmul {m}x{k}x{n} {la:?} {lb:?}");
                if is_mixed(path) {
                    assert_within_f16_bound(&name, &got, &want, &abs_sum, k);
                } else {
                    assert_close(&name, &got, &want, tol);
                }
            }
        }
    }
}

fn transpose_f32(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    transpose(&to_f64(a), rows, cols)
        .iter()
        .map(|&v| v as f32)
        .collect()
}

#[test]
fn matmul_adds_bias_and_accumulates_along_every_path() {
    let ctx = ctx();
    for path in conv_paths(&ctx).into_iter().chain(mixed_paths(&ctx)) {
        use_path(&ctx, path);
        check_bias_and_accumulate(&ctx, path, (5, 6, 7));
    }
}

/// The mixed-precision kernels compute exactly what f16 operands summed in f32 give: the
/// reference on the operands rounded to f16 (the `half` crate's rounding) matches within f32
/// rounding, and the unrounded reference differs by more than f32 rounding could (so the
/// operands really were rounded).
#[test]
fn mixed_kernels_round_their_operands_to_f16_and_sum_in_f32() {
    let ctx = ctx();
    let (m, k, n) = (9, 40, 11);
    let mut rng = Rng::new(11);
    let (a, b) = (rng.vec(m * k), rng.vec(k * n));
    let round = |v: &[f32]| -> Vec<f64> {
        v.iter()
            .map(|&x| f64::from(half::f16::from_f32(x).to_f32()))
            .collect()
    };
    let want16 = matmul(&round(&a), &round(&b), m, k, n);
    let exact = matmul(&to_f64(&a), &to_f64(&b), m, k, n);
    let (ta, tb) = (upload(&ctx, &[m, k], &a), upload(&ctx, &[k, n], &b));
    for path in mixed_paths(&ctx) {
        use_path(&ctx, path);
        let got = gemm::matmul(&ta, Layout::AsIs, &tb, Layout::AsIs, None)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_close(
            &format!("{path:?} vs f16 operands"),
            &got,
            &want16,
            F32_KERNEL,
        );
        let off = got
            .iter()
            .zip(&exact)
            .map(|(g, e)| (f64::from(*g) - e).abs())
            .fold(0.0, f64::max);
        assert!(
            off > 1e-4,
            "{path:?}: within {off:e} of the f32 result: not rounded to f16"
        );
    }
}

fn check_bias_and_accumulate(
    ctx: &hetconv::Context,
    path: ConvPath,
    (m, k, n): (usize, usize, usize),
) {
    let ctx = ctx.clone();
    let mut rng = Rng::new(8);
    let (a, b, bias) = (rng.vec(m * k), rng.vec(k * n), rng.vec(n));
    let product = matmul(&to_f64(&a), &to_f64(&b), m, k, n);
    let with_bias: Vec<f64> = product
        .iter()
        .enumerate()
        .map(|(i, v)| v + f64::from(bias[i % n]))
        .collect();
    let (ta, tb) = (upload(&ctx, &[m, k], &a), upload(&ctx, &[k, n], &b));
    let abs = |v: &[f32]| v.iter().map(|x| f64::from(x.abs())).collect::<Vec<f64>>();
    let abs_sum = matmul(&abs(&a), &abs(&b), m, k, n);
    let check = |name: &str, got: &[f32], want: &[f64], sum: &[f64]| {
        let name = format!("{path:?} {name}");
        if is_mixed(path) {
            assert_within_f16_bound(&name, got, want, sum, k);
        } else {
            assert_close(&name, got, want, F32_KERNEL);
        }
    };
    let bias = upload(&ctx, &[n], &bias);
    let mut product_with_bias = None;
    let kernels = kernels_run(&ctx, || {
        product_with_bias =
            Some(gemm::matmul(&ta, Layout::AsIs, &tb, Layout::AsIs, Some(&bias)).unwrap());
    });
    if let Some(kernels) = kernels {
        assert_kernels(&kernels, variant_of(path), &[(3, false)], &["gemm::matmul"]);
    }
    let got = product_with_bias.unwrap();
    check(
        "matmul + bias",
        &got.to_vec().unwrap(),
        &with_bias,
        &abs_sum,
    );
    gemm::matmul_accumulate(&ta, Layout::AsIs, &tb, Layout::AsIs, &got).unwrap();
    let twice: Vec<f64> = with_bias.iter().zip(&product).map(|(w, p)| w + p).collect();
    let twice_sum: Vec<f64> = abs_sum.iter().map(|s| 2.0 * s).collect();
    check(
        "matmul accumulate",
        &got.to_vec().unwrap(),
        &twice,
        &twice_sum,
    );
}

#[test]
fn elementwise_ops_match_reference() {
    let ctx = ctx();
    let mut rng = Rng::new(9);
    let n = 1000; // several workgroups, last one partial
    let (a, b) = (rng.vec(n), rng.vec(n));
    let (ta, tb) = (upload(&ctx, &[10, 100], &a), upload(&ctx, &[10, 100], &b));
    for (op, f) in [
        (BinaryOp::Add, (|x, y| x + y) as fn(f64, f64) -> f64),
        (BinaryOp::Sub, |x, y| x - y),
        (BinaryOp::Mul, |x, y| x * y),
    ] {
        let want: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| f(f64::from(x), f64::from(y)))
            .collect();
        let got = elementwise::binary(op, &ta, &tb).unwrap().to_vec().unwrap();
        assert_close(&format!("{op:?}"), &got, &want, F32_KERNEL);
    }
    let out = upload(&ctx, &[1000], &b);
    elementwise::axpby(2.0, &ta, -0.5, &out).unwrap();
    let want: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(&x, &y)| 2.0 * f64::from(x) - 0.5 * f64::from(y))
        .collect();
    assert_close("axpby", &out.to_vec().unwrap(), &want, F32_KERNEL);
    let mismatch =
        elementwise::binary(BinaryOp::Add, &ta, &upload(&ctx, &[100, 10], &b)).unwrap_err();
    assert!(mismatch.to_string().contains("[10, 100]"), "{mismatch}");
}
