//! The pooling a ResNet needs, and the VGG's: max-pool with every window of the family
//! (2x2 stride 2, 3x3 stride 2 padding 1, 3x3 stride 1 padding 1, odd sizes, batch 1, ties) and
//! global average pooling vs the CPU reference, the reference vs finite differences, and the
//! residual add's gradient through the tape.

mod common;

use common::*;
use hetconv::autograd::{Tape, ops};
use hetconv::kernels::pool::{self, PoolWindow};
use hetconv::nn::ParamStoreBuilder;
use hetconv::reference;

const WINDOWS: [PoolWindow; 4] = [
    PoolWindow::PAIRS,
    PoolWindow::RESNET_STEM,
    PoolWindow {
        kernel: 3,
        stride: 1,
        padding: 1,
    },
    PoolWindow {
        kernel: 2,
        stride: 1,
        padding: 0,
    },
];

/// Values of `n` elements; with `ties`, rounded to a few levels so that windows tie often.
fn values(rng: &mut Rng, n: usize, ties: bool) -> Vec<f32> {
    rng.vec(n)
        .into_iter()
        .map(|v| if ties { (v * 2.0).round() } else { v })
        .collect()
}

#[test]
fn max_pool_matches_the_reference_for_every_window() {
    let ctx = ctx();
    let mut rng = Rng::new(11);
    for window in WINDOWS {
        for (b, c, h, w) in [(1, 1, 7, 7), (2, 3, 8, 5), (1, 2, 3, 4), (3, 1, 9, 11)] {
            for ties in [false, true] {
                let name = format!("{window:?} on [{b}, {c}, {h}, {w}], ties {ties}");
                let x = values(&mut rng, b * c * h * w, ties);
                let planes = b * c;
                let (y64, arg) = reference::pool::max_pool(&to_f64(&x), planes, (h, w), window);
                let (oh, ow) = (window.out_side(h).unwrap(), window.out_side(w).unwrap());
                let dy = values(&mut rng, planes * oh * ow, false);
                let dx64 = reference::pool::max_pool_backward(&to_f64(&dy), &arg, planes, h * w);
                let xt = upload(&ctx, &[b, c, h, w], &x);
                let y = pool::max_pool(&xt, window).unwrap();
                assert_eq!(y.shape(), [b, c, oh, ow], "{name}");
                // A max is one of the inputs, and its gradient a sum of at most 4 dy values.
                assert_close(&format!("{name} y"), &y.to_vec().unwrap(), &y64, F32_KERNEL);
                let dyt = upload(&ctx, &[b, c, oh, ow], &dy);
                let dx = pool::max_pool_backward(&xt, &dyt, window).unwrap();
                assert_close(
                    &format!("{name} dx"),
                    &dx.to_vec().unwrap(),
                    &dx64,
                    F32_KERNEL,
                );
            }
        }
    }
}

#[test]
fn the_reference_max_pool_matches_finite_differences_and_pytorch_sizes() {
    let mut rng = Rng::new(12);
    for window in WINDOWS {
        let (planes, h, w) = (2, 7, 6);
        // Distinct values: every max is strict, so the function is smooth where it is probed.
        let x: Vec<f64> = (0..planes * h * w)
            .map(|i| (i as f64 * 0.618_034).fract() + rng.vec(1)[0] as f64 * 1e-3)
            .collect();
        let (y, arg) = reference::pool::max_pool(&x, planes, (h, w), window);
        let weights: Vec<f64> = (0..y.len()).map(|i| 1.0 + (i % 5) as f64).collect();
        let loss = |v: &[f64]| {
            let (y, _) = reference::pool::max_pool(v, planes, (h, w), window);
            y.iter().zip(&weights).map(|(a, b)| a * b).sum::<f64>()
        };
        let analytic = reference::pool::max_pool_backward(&weights, &arg, planes, h * w);
        let numeric = finite_differences(&x, &loss);
        assert_close64(
            &format!("{window:?}"),
            &analytic,
            &numeric,
            Tolerance {
                rtol: 1e-6,
                atol: 1e-6,
            },
        );
    }
    // torch.nn.MaxPool2d's output sizes (floor mode): 112 -> 56 for the ResNet stem,
    // 7 -> 3 for 2x2 stride 2, and 1 -> 1 for 3x3 stride 2 padding 1.
    assert_eq!(PoolWindow::RESNET_STEM.out_side(112), Some(56));
    assert_eq!(PoolWindow::PAIRS.out_side(7), Some(3));
    assert_eq!(PoolWindow::RESNET_STEM.out_side(1), Some(1));
    assert_eq!(PoolWindow::PAIRS.out_side(1), None);
}

#[test]
fn bad_windows_and_shapes_are_errors_naming_them() {
    let ctx = ctx();
    let x = upload(&ctx, &[1, 1, 1, 1], &[1.0]);
    let err = pool::max_pool(&x, PoolWindow::PAIRS)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_pool") && err.contains("[1, 1, 1, 1]"),
        "{err}"
    );
    let wide_pad = PoolWindow {
        kernel: 2,
        stride: 1,
        padding: 2,
    };
    let x = upload(&ctx, &[1, 1, 4, 4], &[0.0; 16]);
    let err = pool::max_pool(&x, wide_pad).unwrap_err().to_string();
    assert!(err.contains("padding <= kernel / 2"), "{err}");
    let dy = upload(&ctx, &[1, 1, 3, 3], &[0.0; 9]);
    let err = pool::max_pool_backward(&x, &dy, PoolWindow::PAIRS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[1, 1, 2, 2]"), "{err}");
    let flat = upload(&ctx, &[4, 4], &[0.0; 16]);
    assert!(pool::global_average(&flat).is_err());
}

#[test]
fn global_average_pool_matches_the_reference_and_finite_differences() {
    let ctx = ctx();
    let mut rng = Rng::new(13);
    for (b, c, h, w) in [(1, 1, 1, 1), (2, 3, 7, 5), (1, 4, 8, 8)] {
        let x = rng.vec(b * c * h * w);
        let y = pool::global_average(&upload(&ctx, &[b, c, h, w], &x)).unwrap();
        let y64 = reference::pool::global_average(&to_f64(&x), b * c, h * w);
        // A mean of at most 64 values in [-1, 1).
        assert_close("global average", &y.to_vec().unwrap(), &y64, F32_KERNEL);
        let dy = rng.vec(b * c);
        let dx = pool::global_average_backward(&upload(&ctx, &[b, c], &dy), &[b, c, h, w]).unwrap();
        let dx64 = reference::pool::global_average_backward(&to_f64(&dy), h * w);
        assert_close(
            "global average dx",
            &dx.to_vec().unwrap(),
            &dx64,
            F32_KERNEL,
        );
        let loss = |v: &[f64]| {
            reference::pool::global_average(v, b * c, h * w)
                .iter()
                .zip(&dy)
                .map(|(a, g)| a * f64::from(*g))
                .sum::<f64>()
        };
        let numeric = finite_differences(&to_f64(&x), &loss);
        assert_close64(
            "global average vs finite differences",
            &dx64,
            &numeric,
            Tolerance {
                rtol: 1e-6,
                atol: 1e-7,
            },
        );
    }
}

/// y = a + pool(a) reshaped: the residual add sends dy to both branches, and a parameter used
/// on both sides receives the sum (checked against the reference's gradients).
#[test]
fn the_residual_add_sends_the_gradient_to_both_branches() {
    let ctx = ctx();
    let mut rng = Rng::new(14);
    let (b, c, h, w) = (2, 3, 4, 4);
    let values = rng.vec(b * c * h * w);
    let mut builder = ParamStoreBuilder::default();
    let id = builder.param("a", &[b, c, h, w], values.clone());
    let mut store = builder.build(&ctx).unwrap();
    let mut tape = Tape::new();
    let a = tape.param(&store, id).unwrap();
    let pooled = ops::max_pool(
        &mut tape,
        &a,
        PoolWindow {
            kernel: 3,
            stride: 1,
            padding: 1,
        },
    )
    .unwrap();
    let sum = ops::add(&mut tape, &a, &pooled).unwrap();
    let averaged = ops::global_average_pool(&mut tape, &sum).unwrap();
    let seed_values = rng.vec(b * c);
    let seed = upload(&ctx, &[b, c], &seed_values);
    tape.backward(&averaged, seed, &mut store).unwrap();
    let grad = store.grad(id).unwrap().to_vec().unwrap();

    let window = PoolWindow {
        kernel: 3,
        stride: 1,
        padding: 1,
    };
    let (_, arg) = reference::pool::max_pool(&to_f64(&values), b * c, (h, w), window);
    let dsum = reference::pool::global_average_backward(&to_f64(&seed_values), h * w);
    let through_pool = reference::pool::max_pool_backward(&dsum, &arg, b * c, h * w);
    let want: Vec<f64> = dsum.iter().zip(&through_pool).map(|(d, p)| d + p).collect();
    assert_close("gradient of a", &grad, &want, F32_KERNEL);
    assert!(
        through_pool.contains(&0.0) && want.iter().all(|&g| g != 0.0),
        "both branches must contribute: the identity one everywhere"
    );
}

/// A gradient or a backward seed of the wrong shape is refused by name, even with the right
/// element count (a [1, 3, 2, 1] gradient does not belong to a [1, 2, 3, 1] parameter).
#[test]
fn gradients_and_seeds_of_another_shape_are_refused() {
    let ctx = ctx();
    let mut builder = ParamStoreBuilder::default();
    let id = builder.param("x", &[1, 2, 3, 1], vec![1.0; 6]);
    let mut store = builder.build(&ctx).unwrap();
    let swapped = upload(&ctx, &[1, 3, 2, 1], &[0.5; 6]);
    let err = store.accumulate_grad(id, &swapped).unwrap_err().to_string();
    assert!(
        err.contains("accumulate_grad") && err.contains("[1, 3, 2, 1]"),
        "{err}"
    );
    let mut tape = Tape::new();
    let x = tape.param(&store, id).unwrap();
    let pooled = ops::global_average_pool(&mut tape, &x).unwrap();
    assert_eq!(pooled.value().shape(), [1, 2]);
    let err = tape
        .backward(&pooled, upload(&ctx, &[2, 1], &[1.0, 1.0]), &mut store)
        .unwrap_err()
        .to_string();
    assert!(err.contains("seed of shape [2, 1]"), "{err}");
}
