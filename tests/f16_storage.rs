//! Tensors stored as f16 (mixed precision's activations): the round trip through the CPU, the
//! GPU casts, and every kernel that reads and writes activations in f16 (elementwise ops,
//! pooling, BatchNorm forward and backward) against the f64 reference on the same f16 inputs;
//! kernels that take f32 only refuse f16 tensors with an error naming the dtypes.
//!
//! Bound: a kernel reads f16 exactly, computes in f32 and rounds once when it stores; WGSL lets
//! that rounding go to either neighbouring f16, so a stored value is within one f16 step of the
//! f32 result: relative 2^-10 (9.8e-4) in f16's normal range, absolute 2^-24 (6e-8) below it.
//! On top comes the f32 arithmetic's own error, the f32 kernels' tolerance (`F32_KERNEL`,
//! scaled by the result's magnitude for reductions). f32 outputs (statistics, dgamma, dbeta) of
//! f16 inputs get the f32 tolerance alone: their inputs are exact.

mod common;

use common::*;
use hetconv::kernels::batchnorm::{self, BatchNormConfig};
use hetconv::kernels::cast;
use hetconv::kernels::elementwise::{self, BinaryOp};
use hetconv::kernels::gemm::{self, Layout};
use hetconv::kernels::loss;
use hetconv::kernels::pool::{self, PoolWindow};
use hetconv::reference;
use hetconv::tensor::DType;
use hetconv::{Context, Tensor};

/// One f16 step, relative, plus the f32 kernels' tolerance (see the module's bound).
const F16_STORE: Tolerance = Tolerance {
    rtol: 1.0 / 1024.0 + F32_KERNEL.rtol,
    atol: 1.0 / 16_777_216.0 + F32_KERNEL.atol,
};

fn upload16(ctx: &Context, shape: &[usize], data: &[f32]) -> Tensor {
    let t = Tensor::from_slice_as(ctx, shape, data, DType::F16).unwrap();
    assert_eq!(t.dtype(), DType::F16);
    t
}

/// Reads an f16 result, checking that the kernel stored f16.
fn read16(t: &Tensor) -> Vec<f32> {
    assert_eq!(t.dtype(), DType::F16, "{t:?}");
    t.to_vec().unwrap()
}

#[test]
fn f16_tensors_round_trip_through_the_cpu_and_the_gpu_casts() {
    let ctx = ctx();
    if !has_f16(&ctx, "f16 tensors") {
        return;
    }
    // Values whose f16 is known by hand: exact ones, a tie that goes to even (1 + 2^-11 lies
    // halfway between 1 and 1 + 2^-10), one just above a tie, f16's largest, a subnormal, and
    // one beyond the range. Odd length: the tensor's last half shares its 4 bytes with padding.
    let data = [
        0.5,
        -2.0,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 4096.0,
        65504.0,
        3.0 * 2f32.powi(-24),
        1.0e6,
    ];
    let want = [
        0.5,
        -2.0,
        1.0,
        1.0 + 1.0 / 1024.0,
        65504.0,
        3.0 * 2f32.powi(-24),
        f32::INFINITY,
    ];
    let t = upload16(&ctx, &[7], &data);
    assert_eq!(t.byte_len(), 14);
    assert_eq!(read16(&t), want);
    // Written again in place, and random values within half a step (nearest rounding).
    let mut rng = Rng::new(3);
    let random: Vec<f32> = rng.vec(7).iter().map(|v| v * 100.0).collect();
    t.write(&random).unwrap();
    let back = read16(&t);
    for (g, w) in back.iter().zip(&random) {
        assert!((g - w).abs() <= w.abs() / 2048.0, "{g} vs {w}");
    }

    // The GPU casts: f16 -> f32 is exact; f32 -> f16 within one step of the value.
    let wide = cast::to_dtype(&t, DType::F32).unwrap();
    assert_eq!(wide.dtype(), DType::F32);
    assert_eq!(wide.to_vec().unwrap(), back);
    let values: Vec<f32> = rng.vec(301).iter().map(|v| v * 1000.0).collect();
    let narrow = cast::to_dtype(&upload(&ctx, &[301], &values), DType::F16).unwrap();
    assert_close("cast to f16", &read16(&narrow), &to_f64(&values), F16_STORE);
    // A tensor already of the dtype is returned as it is (the same buffer).
    let same = cast::to_dtype(&narrow, DType::F16).unwrap();
    assert!(std::ptr::eq(same.buffer(), narrow.buffer()));
}

#[test]
fn elementwise_kernels_store_f16_within_one_step_of_the_reference() {
    let ctx = ctx();
    if !has_f16(&ctx, "f16 elementwise kernels") {
        return;
    }
    let mut rng = Rng::new(7);
    for shape in [vec![1usize, 3, 5, 7], vec![2, 3], vec![1]] {
        let n: usize = shape.iter().product();
        let (a, b) = (round16(&rng.vec(n)), round16(&rng.vec(n)));
        let (a64, b64) = (to_f64(&a), to_f64(&b));
        let (at, bt) = (upload16(&ctx, &shape, &a), upload16(&ctx, &shape, &b));
        let name = |what: &str| format!("{what} on {shape:?}");
        for (op, want) in [
            (
                BinaryOp::Add,
                a64.iter().zip(&b64).map(|(x, y)| x + y).collect(),
            ),
            (
                BinaryOp::Sub,
                a64.iter().zip(&b64).map(|(x, y)| x - y).collect(),
            ),
            (
                BinaryOp::Mul,
                a64.iter().zip(&b64).map(|(x, y)| x * y).collect(),
            ),
            (
                BinaryOp::ReluBackward,
                reference::activation::relu_backward(&a64, &b64),
            ),
        ] {
            let got = elementwise::binary(op, &at, &bt).unwrap();
            assert_close(&name(&format!("{op:?}")), &read16(&got), &want, F16_STORE);
        }
        let relu = elementwise::relu(&at).unwrap();
        let want = reference::activation::relu(&a64);
        assert_close(&name("relu"), &read16(&relu), &want, F16_STORE);
        // out = 0.5 a - 3 out, in place.
        let out = upload16(&ctx, &shape, &b);
        elementwise::axpby(0.5, &at, -3.0, &out).unwrap();
        let want: Vec<f64> = a64
            .iter()
            .zip(&b64)
            .map(|(x, y)| 0.5 * x - 3.0 * y)
            .collect();
        assert_close(&name("axpby"), &read16(&out), &want, F16_STORE);
        if shape.len() >= 2 {
            let c = shape[1];
            let scale_shift = rng.vec(2 * c);
            let plane = n / (shape[0] * c);
            let got =
                elementwise::channel_affine(&at, &upload(&ctx, &[2, c], &scale_shift)).unwrap();
            let want: Vec<f64> = (0..n)
                .map(|i| {
                    let ch = (i / plane) % c;
                    a64[i] * f64::from(scale_shift[ch]) + f64::from(scale_shift[c + ch])
                })
                .collect();
            assert_close(&name("channel_affine"), &read16(&got), &want, F16_STORE);
        }
    }
}

#[test]
fn pooling_kernels_store_f16_within_one_step_of_the_reference() {
    let ctx = ctx();
    if !has_f16(&ctx, "f16 pooling kernels") {
        return;
    }
    let mut rng = Rng::new(13);
    for window in [PoolWindow::PAIRS, PoolWindow::RESNET_STEM] {
        for (b, c, h, w) in [(1, 1, 7, 7), (2, 3, 8, 5), (1, 2, 3, 4)] {
            let name = format!("{window:?} on [{b}, {c}, {h}, {w}]");
            let planes = b * c;
            let x = round16(&rng.vec(planes * h * w));
            let (y64, arg) = reference::pool::max_pool(&to_f64(&x), planes, (h, w), window);
            let (oh, ow) = (window.out_side(h).unwrap(), window.out_side(w).unwrap());
            let dy = round16(&rng.vec(planes * oh * ow));
            let dx64 = reference::pool::max_pool_backward(&to_f64(&dy), &arg, planes, h * w);
            let xt = upload16(&ctx, &[b, c, h, w], &x);
            // A max is one of the stored inputs: exact.
            let y = pool::max_pool(&xt, window).unwrap();
            assert_eq!(
                read16(&y),
                y64.iter().map(|&v| v as f32).collect::<Vec<_>>()
            );
            let dyt = upload16(&ctx, &[b, c, oh, ow], &dy);
            let dx = pool::max_pool_backward(&xt, &dyt, window).unwrap();
            assert_close(&format!("{name} dx"), &read16(&dx), &dx64, F16_STORE);
        }
    }
    let (b, c, h, w) = (2, 3, 5, 7);
    let x = round16(&rng.vec(b * c * h * w));
    let y = pool::global_average(&upload16(&ctx, &[b, c, h, w], &x)).unwrap();
    let y64 = reference::pool::global_average(&to_f64(&x), b * c, h * w);
    assert_close("global average", &read16(&y), &y64, F16_STORE);
    let dy = round16(&rng.vec(b * c));
    let dx = pool::global_average_backward(&upload16(&ctx, &[b, c], &dy), &[b, c, h, w]).unwrap();
    let dx64 = reference::pool::global_average_backward(&to_f64(&dy), h * w);
    assert_close("global average dx", &read16(&dx), &dx64, F16_STORE);
}

#[test]
fn batchnorm_reads_and_writes_f16_activations_with_f32_statistics() {
    let ctx = ctx();
    if !has_f16(&ctx, "f16 BatchNorm kernels") {
        return;
    }
    let mut rng = Rng::new(17);
    let cfg = BatchNormConfig::default();
    for (b, c, plane, shape) in [
        (3, 5, 7, vec![3, 5, 7, 1]),
        (1, 2, 6, vec![1, 2, 2, 3]),
        (4, 3, 1, vec![4, 3]),
    ] {
        for relu in [false, true] {
            let name = |what: &str| format!("{what} on {shape:?}, relu {relu}");
            let x = round16(&rng.vec(b * c * plane));
            let dy = round16(&rng.vec(b * c * plane));
            let gamma = rng.vec(c);
            let beta = rng.vec(c);
            let running_mean = rng.vec(c);
            let running_var: Vec<f32> = rng.vec(c).iter().map(|v| v.abs() + 0.5).collect();
            let xt = upload16(&ctx, &shape, &x);
            let (gt, bt) = (upload(&ctx, &[c], &gamma), upload(&ctx, &[c], &beta));
            let (rm, rv) = (
                upload(&ctx, &[c], &running_mean),
                upload(&ctx, &[c], &running_var),
            );
            let (y, saved) =
                batchnorm::forward_train(&xt, &gt, &bt, &rm, &rv, &cfg, relu, None).unwrap();
            let r = reference::batchnorm::forward_train(
                &to_f64(&x),
                b,
                c,
                plane,
                &to_f64(&gamma),
                &to_f64(&beta),
                &to_f64(&running_mean),
                &to_f64(&running_var),
                1e-5,
                0.1,
            );
            let y64: Vec<f64> = if relu {
                reference::activation::relu(&r.y)
            } else {
                r.y.clone()
            };
            assert_close(&name("y"), &read16(&y), &y64, F16_STORE.scaled(&y64));
            assert_eq!(saved.mean.dtype(), DType::F32);
            assert_close(
                &name("mean"),
                &saved.mean.to_vec().unwrap(),
                &r.mean,
                F32_KERNEL,
            );
            let invstd = saved.invstd.to_vec().unwrap();
            assert_close(
                &name("invstd"),
                &invstd,
                &r.invstd,
                F32_KERNEL.scaled(&r.invstd),
            );
            let rv_got = rv.to_vec().unwrap();
            assert_close(&name("running_var"), &rv_got, &r.running_var, F32_KERNEL);
            let rm_got = rm.to_vec().unwrap();
            assert_close(&name("running_mean"), &rm_got, &r.running_mean, F32_KERNEL);

            let dyt = upload16(&ctx, &shape, &dy);
            let (dx, dgamma, dbeta) = batchnorm::backward(&xt, &dyt, &gt, &saved).unwrap();
            // Through the fused ReLU: dy masked where the pre-activation was not positive.
            let dy_in: Vec<f64> = if relu {
                reference::activation::relu_backward(&r.y, &to_f64(&dy))
            } else {
                to_f64(&dy)
            };
            let (dx64, dg64, db64) = reference::batchnorm::backward(
                &to_f64(&x),
                &dy_in,
                b,
                c,
                plane,
                &to_f64(&gamma),
                &r.mean,
                &r.invstd,
            );
            assert_close(&name("dx"), &read16(&dx), &dx64, F16_STORE.scaled(&dx64));
            assert_eq!(dgamma.dtype(), DType::F32);
            let dg = dgamma.to_vec().unwrap();
            assert_close(&name("dgamma"), &dg, &dg64, F32_KERNEL.scaled(&dg64));
            let db = dbeta.to_vec().unwrap();
            assert_close(&name("dbeta"), &db, &db64, F32_KERNEL.scaled(&db64));

            // Eval mode, from the running estimates the step just updated.
            let eval = batchnorm::forward_eval(&xt, &gt, &bt, &rm, &rv, &cfg, relu).unwrap();
            let e64 = reference::batchnorm::forward_eval(
                &to_f64(&x),
                b,
                c,
                plane,
                &to_f64(&gamma),
                &to_f64(&beta),
                &to_f64(&rm.to_vec().unwrap()),
                &to_f64(&rv_got),
                1e-5,
            );
            let e64 = if relu {
                reference::activation::relu(&e64)
            } else {
                e64
            };
            assert_close(
                &name("eval y"),
                &read16(&eval),
                &e64,
                F16_STORE.scaled(&e64),
            );
        }
    }
}

#[test]
fn kernels_refuse_tensors_of_another_dtype_naming_them() {
    let ctx = ctx();
    if !has_f16(&ctx, "dtype checks") {
        return;
    }
    let a = upload(&ctx, &[2, 3], &[1.0; 6]);
    let h = upload16(&ctx, &[2, 3], &[1.0; 6]);
    let err = elementwise::binary(BinaryOp::Add, &a, &h)
        .unwrap_err()
        .to_string();
    assert!(err.contains("f16") && err.contains("binary"), "{err}");
    // BatchNorm's parameters are f32: an f16 one is refused by name, before the running
    // estimates change.
    let gamma16 = upload16(&ctx, &[3], &[1.0; 3]);
    let (z, o) = (upload(&ctx, &[3], &[0.0; 3]), upload(&ctx, &[3], &[1.0; 3]));
    let (rm, rv) = (upload(&ctx, &[3], &[0.5; 3]), upload(&ctx, &[3], &[2.0; 3]));
    let cfg = BatchNormConfig::default();
    for (gamma, beta) in [(&gamma16, &z), (&o, &gamma16)] {
        let err = batchnorm::forward_train(&h, gamma, beta, &rm, &rv, &cfg, false, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("f16") && err.contains("BatchNorm's parameters"),
            "{err}"
        );
    }
    assert_eq!(rm.to_vec().unwrap(), [0.5; 3]);
    assert_eq!(rv.to_vec().unwrap(), [2.0; 3]);
    // channel_affine's scales and shifts are f32 too.
    let err = elementwise::channel_affine(&h, &upload16(&ctx, &[2, 3], &[1.0; 6]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("f16"), "{err}");
    // Kernels without an f16 variant (the matrix product, the loss) refuse an f16 input.
    let w = upload(&ctx, &[3, 4], &[0.1; 12]);
    let err = gemm::matmul(&h, Layout::AsIs, &w, Layout::AsIs, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is f16, the kernel reads f32"), "{err}");
    let labels = upload(&ctx, &[2], &[0.0, 1.0]);
    let err = loss::softmax_cross_entropy(&h, &labels)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is f16, the kernel reads f32"), "{err}");
    // Views of f16 tensors cover whole 4-byte words (their copies round up to them).
    let err = h.view(0, &[3]).unwrap_err().to_string();
    assert!(err.contains("view") && err.contains("f16"), "{err}");
    assert_eq!(h.view(0, &[2, 2]).unwrap().to_vec().unwrap(), [1.0; 4]);
}

/// A batch whose activations overflowed (an f16 infinity under mixed precision, or any
/// infinity) leaves that channel's running estimates as they were, instead of making them NaN
/// for good while the skipped step hides it; the other channels update as usual. f32 and f16
/// activations alike.
#[test]
fn an_overflowed_batch_leaves_the_running_estimates() {
    let ctx = ctx();
    let f16 = has_f16(&ctx, "the f16 half of the overflow check");
    let cfg = BatchNormConfig::default();
    // [2, 2, 1, 2]: channel 0 holds an infinity, channel 1 is finite.
    let x = [1.0, f32::INFINITY, 0.5, -0.5, 2.0, 3.0, 1.5, -1.5];
    let (gamma, beta) = (upload(&ctx, &[2], &[1.0; 2]), upload(&ctx, &[2], &[0.0; 2]));
    let dtypes: &[DType] = if f16 {
        &[DType::F32, DType::F16]
    } else {
        &[DType::F32]
    };
    for &dtype in dtypes {
        let xt = match dtype {
            DType::F32 => upload(&ctx, &[2, 2, 1, 2], &x),
            DType::F16 => upload16(&ctx, &[2, 2, 1, 2], &x),
        };
        let (rm, rv) = (
            upload(&ctx, &[2], &[0.25, 0.5]),
            upload(&ctx, &[2], &[2.0, 3.0]),
        );
        batchnorm::forward_train(&xt, &gamma, &beta, &rm, &rv, &cfg, false, None).unwrap();
        let (rm, rv) = (rm.to_vec().unwrap(), rv.to_vec().unwrap());
        assert_eq!((rm[0], rv[0]), (0.25, 2.0), "{dtype:?}: channel 0 kept");
        // Channel 1: values 0.5, -0.5, 1.5, -1.5: mean 0, unbiased variance 5/3.
        assert!(
            (rm[1] - 0.9 * 0.5).abs() < 1e-6,
            "{dtype:?}: running mean {}",
            rm[1]
        );
        let want = 0.9 * 3.0 + 0.1 * 5.0 / 3.0;
        assert!(
            (rv[1] - want).abs() < 1e-5,
            "{dtype:?}: running var {} vs {want}",
            rv[1]
        );
    }
}
