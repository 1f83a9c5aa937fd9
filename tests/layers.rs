//! BatchNorm, ReLU, max-pool, linear, cross-entropy and SGD kernels vs the CPU reference and the
//! PyTorch float64 oracle; the reference vs finite differences.

mod common;

use common::*;
use hetconv::dist::{BatchNormSync, SingleProcess};
use hetconv::kernels::batchnorm::{self, BatchNormConfig};
use hetconv::kernels::elementwise::{self, BinaryOp};
use hetconv::kernels::gemm::{self, Layout};
use hetconv::kernels::{loss, pool, reduce, sgd};
use hetconv::reference;

#[test]
fn batchnorm_matches_pytorch_train_mode() {
    let ctx = ctx();
    for case in golden_cases("bn") {
        let shape = case.shape("x");
        let plane: usize = shape[2..].iter().product();
        let (b, c) = (shape[0], shape[1]);
        // Both paths of the kernels: the statistics in one pass, and in parts with the sums
        // exchanged in between (synchronised batch norm, here over one rank).
        let one_rank = BatchNormSync::new(std::rc::Rc::new(SingleProcess), b);
        for sync in [None, Some(&one_rank)] {
            let x = upload(&ctx, &shape, &case.f32("x"));
            let gamma = upload(&ctx, &[c], &case.f32("gamma"));
            let beta = upload(&ctx, &[c], &case.f32("beta"));
            let rm = upload(&ctx, &[c], &case.f32("running_mean"));
            let rv = upload(&ctx, &[c], &case.f32("running_var"));
            let cfg = BatchNormConfig::default();
            let (y, saved) =
                batchnorm::forward_train(&x, &gamma, &beta, &rm, &rv, &cfg, false, sync).unwrap();
            case.expect("y", "y", &y.to_vec().unwrap());
            case.expect("mean", "save_mean", &saved.mean.to_vec().unwrap());
            case.expect("invstd", "save_invstd", &saved.invstd.to_vec().unwrap());
            case.expect("running_mean", "running_mean_new", &rm.to_vec().unwrap());
            case.expect("running_var", "running_var_new", &rv.to_vec().unwrap());
            let dy = upload(&ctx, &shape, &case.f32("dy"));
            let (dx, dgamma, dbeta) = batchnorm::backward(&x, &dy, &gamma, &saved).unwrap();
            case.expect("dx", "dx", &dx.to_vec().unwrap());
            case.expect("dgamma", "dgamma", &dgamma.to_vec().unwrap());
            case.expect("dbeta", "dbeta", &dbeta.to_vec().unwrap());
        }

        // The CPU reference agrees with PyTorch too.
        let r = reference::batchnorm::forward_train(
            &case.f64("x"),
            b,
            c,
            plane,
            &case.f64("gamma"),
            &case.f64("beta"),
            &case.f64("running_mean"),
            &case.f64("running_var"),
            1e-5,
            0.1,
        );
        case.expect64("reference y", "y", &r.y);
        case.expect64("reference running_var", "running_var_new", &r.running_var);
        let (rdx, _, _) = reference::batchnorm::backward(
            &case.f64("x"),
            &case.f64("dy"),
            b,
            c,
            plane,
            &case.f64("gamma"),
            &r.mean,
            &r.invstd,
        );
        case.expect64("reference dx", "dx", &rdx);
    }
}

#[test]
fn batchnorm_eval_mode_and_fused_relu_match_reference() {
    let ctx = ctx();
    let mut rng = Rng::new(5);
    let (b, c, plane) = (3, 5, 7);
    let x = rng.vec(b * c * plane);
    let gamma = rng.vec(c);
    let beta = rng.vec(c);
    let rm = rng.vec(c);
    let rv: Vec<f32> = rng.vec(c).iter().map(|v| v.abs() + 0.5).collect();
    let want = reference::batchnorm::forward_eval(
        &to_f64(&x),
        b,
        c,
        plane,
        &to_f64(&gamma),
        &to_f64(&beta),
        &to_f64(&rm),
        &to_f64(&rv),
        1e-5,
    );
    let t = |v: &[f32], s: &[usize]| upload(&ctx, s, v);
    let cfg = BatchNormConfig::default();
    let y = batchnorm::forward_eval(
        &t(&x, &[b, c, 1, plane]),
        &t(&gamma, &[c]),
        &t(&beta, &[c]),
        &t(&rm, &[c]),
        &t(&rv, &[c]),
        &cfg,
        false,
    )
    .unwrap();
    assert_close("bn eval", &y.to_vec().unwrap(), &want, F32_KERNEL);
    let y = batchnorm::forward_eval(
        &t(&x, &[b, c, 1, plane]),
        &t(&gamma, &[c]),
        &t(&beta, &[c]),
        &t(&rm, &[c]),
        &t(&rv, &[c]),
        &cfg,
        true,
    )
    .unwrap();
    assert_close(
        "bn eval + relu",
        &y.to_vec().unwrap(),
        &reference::activation::relu(&want),
        F32_KERNEL,
    );
}

/// Training-mode BatchNorm with ReLU fused: forward, and backward through the ReLU (masked by the
/// recomputed pre-activation) vs the reference's BN backward of the ReLU-masked gradient. Some
/// outputs are negative before the ReLU, so the mask matters (checked).
#[test]
fn batchnorm_with_fused_relu_backward_matches_reference() {
    let ctx = ctx();
    let mut rng = Rng::new(9);
    let (b, c, plane) = (4, 3, 5);
    let (x, dy, gamma, beta) = (
        rng.vec(b * c * plane),
        rng.vec(b * c * plane),
        rng.vec(c),
        rng.vec(c),
    );
    let t = |v: &[f32], s: &[usize]| upload(&ctx, s, v);
    let (rm, rv) = (t(&[0.0; 3], &[c]), t(&[1.0; 3], &[c]));
    let cfg = BatchNormConfig::default();
    let xt = t(&x, &[b, c, 1, plane]);
    let (y, saved) = batchnorm::forward_train(
        &xt,
        &t(&gamma, &[c]),
        &t(&beta, &[c]),
        &rm,
        &rv,
        &cfg,
        true,
        None,
    )
    .unwrap();
    let r = reference::batchnorm::forward_train(
        &to_f64(&x),
        b,
        c,
        plane,
        &to_f64(&gamma),
        &to_f64(&beta),
        &[0.0; 3],
        &[1.0; 3],
        1e-5,
        0.1,
    );
    assert!(
        r.y.iter().any(|&v| v < -0.1),
        "some pre-activations are negative"
    );
    assert_close(
        "bn + relu forward",
        &y.to_vec().unwrap(),
        &reference::activation::relu(&r.y),
        F32_KERNEL,
    );
    let (dx, dgamma, dbeta) =
        batchnorm::backward(&xt, &t(&dy, &[b, c, 1, plane]), &t(&gamma, &[c]), &saved).unwrap();
    let masked = reference::activation::relu_backward(&r.y, &to_f64(&dy));
    let (want_dx, want_dgamma, want_dbeta) = reference::batchnorm::backward(
        &to_f64(&x),
        &masked,
        b,
        c,
        plane,
        &to_f64(&gamma),
        &r.mean,
        &r.invstd,
    );
    assert_close("bn + relu dx", &dx.to_vec().unwrap(), &want_dx, F32_KERNEL);
    assert_close(
        "bn + relu dgamma",
        &dgamma.to_vec().unwrap(),
        &want_dgamma,
        F32_KERNEL,
    );
    assert_close(
        "bn + relu dbeta",
        &dbeta.to_vec().unwrap(),
        &want_dbeta,
        F32_KERNEL,
    );
}

#[test]
fn batchnorm_reference_matches_finite_differences() {
    let mut rng = Rng::new(6);
    let (b, c, plane) = (3, 2, 4);
    let x = to_f64(&rng.vec(b * c * plane));
    let dy = to_f64(&rng.vec(b * c * plane));
    let gamma = to_f64(&rng.vec(c));
    let beta = to_f64(&rng.vec(c));
    let zeros = vec![0.0; c];
    let loss = |x: &[f64], gamma: &[f64]| -> f64 {
        let r = reference::batchnorm::forward_train(
            x, b, c, plane, gamma, &beta, &zeros, &zeros, 1e-5, 0.1,
        );
        r.y.iter().zip(&dy).map(|(a, g)| a * g).sum()
    };
    let r = reference::batchnorm::forward_train(
        &x, b, c, plane, &gamma, &beta, &zeros, &zeros, 1e-5, 0.1,
    );
    let (dx, dgamma, _) =
        reference::batchnorm::backward(&x, &dy, b, c, plane, &gamma, &r.mean, &r.invstd);
    let fd = finite_differences;
    let tol = Tolerance {
        rtol: 1e-5,
        atol: 1e-6,
    };
    assert_close64("bn dx", &dx, &fd(&x, &|v| loss(v, &gamma)), tol);
    assert_close64("bn dgamma", &dgamma, &fd(&gamma, &|v| loss(&x, v)), tol);
}

#[test]
fn relu_matches_pytorch() {
    let ctx = ctx();
    for case in golden_cases("relu") {
        let shape = case.shape("x");
        let x = upload(&ctx, &shape, &case.f32("x"));
        let dy = upload(&ctx, &shape, &case.f32("dy"));
        let y = elementwise::relu(&x).unwrap();
        case.expect("y", "y", &y.to_vec().unwrap());
        let dx = elementwise::binary(BinaryOp::ReluBackward, &x, &dy).unwrap();
        case.expect("dx", "dx", &dx.to_vec().unwrap());
        let reference_dx = reference::activation::relu_backward(&case.f64("x"), &case.f64("dy"));
        case.expect64("reference dx", "dx", &reference_dx);
    }
}

#[test]
fn max_pool_matches_pytorch_including_ties_and_odd_sizes() {
    let ctx = ctx();
    for case in golden_cases("maxpool2") {
        let shape = case.shape("x");
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
        let x = upload(&ctx, &shape, &case.f32("x"));
        let dy = upload(&ctx, &case.shape("dy"), &case.f32("dy"));
        let y = pool::max_pool2(&x).unwrap();
        assert_eq!(y.shape(), case.shape("y").as_slice());
        case.expect("y", "y", &y.to_vec().unwrap());
        let dx = pool::max_pool2_backward(&x, &dy).unwrap();
        case.expect("dx", "dx", &dx.to_vec().unwrap());
        // The reference's indices are PyTorch's (argmax_flat is stored as i32).
        let (_, arg) = reference::pool::max_pool2(&case.f64("x"), planes, h, w);
        let torch_arg: Vec<usize> = case
            .f32("argmax_flat")
            .iter()
            .map(|v| v.to_bits() as i32 as usize)
            .collect();
        assert_eq!(arg, torch_arg, "{} argmax", case.name);
        let rdx = reference::pool::max_pool2_backward(&case.f64("dy"), &arg, planes, h, w);
        case.expect64("reference dx", "dx", &rdx);
    }
}

#[test]
fn linear_matches_pytorch() {
    let ctx = ctx();
    for case in golden_cases("linear") {
        let (b, i, o) = (case.param("B"), case.param("IN"), case.param("OUT"));
        let x = upload(&ctx, &[b, i], &case.f32("x"));
        let w = upload(&ctx, &[o, i], &case.f32("w"));
        let bias = upload(&ctx, &[o], &case.f32("b"));
        let dy = upload(&ctx, &[b, o], &case.f32("dy"));
        let y = gemm::matmul(&x, Layout::AsIs, &w, Layout::Transposed, Some(&bias)).unwrap();
        case.expect("y", "y", &y.to_vec().unwrap());
        let dx = gemm::matmul(&dy, Layout::AsIs, &w, Layout::AsIs, None).unwrap();
        case.expect("dx", "dx", &dx.to_vec().unwrap());
        let dw = gemm::matmul(&dy, Layout::Transposed, &x, Layout::AsIs, None).unwrap();
        case.expect("dw", "dw", &dw.to_vec().unwrap());
        let db = reduce::sum_channels(&dy).unwrap();
        case.expect("db", "db", &db.to_vec().unwrap());
        let (rdx, rdw, rdb) = reference::gemm::linear_backward(
            &case.f64("x"),
            &case.f64("w"),
            &case.f64("dy"),
            b,
            i,
            o,
        );
        case.expect64(
            "reference y",
            "y",
            &reference::gemm::linear(&case.f64("x"), &case.f64("w"), &case.f64("b"), b, i, o),
        );
        case.expect64("reference dx", "dx", &rdx);
        case.expect64("reference dw", "dw", &rdw);
        case.expect64("reference db", "db", &rdb);
    }
}

#[test]
fn cross_entropy_matches_pytorch_including_large_logits() {
    let ctx = ctx();
    for case in golden_cases("ce_") {
        let shape = case.shape("logits");
        let labels: Vec<usize> = case
            .f32("labels")
            .iter()
            .map(|v| v.to_bits() as i32 as usize)
            .collect();
        let label_values: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
        let logits = upload(&ctx, &shape, &case.f32("logits"));
        let ce = loss::softmax_cross_entropy(&logits, &upload(&ctx, &[shape[0]], &label_values))
            .unwrap();
        case.expect("dlogits", "dlogits", &ce.dlogits.to_vec().unwrap());
        let (mean_loss, accuracy) = ce.mean_loss_and_accuracy().unwrap();
        case.expect("loss", "loss", &[mean_loss as f32]);
        let (rloss, rgrad, rlog) =
            reference::loss::softmax_cross_entropy(&case.f64("logits"), &labels, shape[1]);
        case.expect64("reference loss", "loss", &[rloss]);
        case.expect64("reference dlogits", "dlogits", &rgrad);
        case.expect64("reference log_softmax", "log_softmax", &rlog);
        let want_accuracy = reference::loss::accuracy(&case.f64("logits"), &labels, shape[1]);
        assert!(
            (accuracy - want_accuracy).abs() < 1e-12,
            "{} accuracy {accuracy} vs {want_accuracy}",
            case.name
        );
    }
}

/// Class probabilities for inference: PyTorch's log_softmax (float64) exponentiated, including
/// rows of large logits; then batch 1, an odd class count and more rows than a workgroup
/// against the reference's log-softmax. f32 kernel vs f64: |err| <= 1e-6 + 1e-5 |want|.
#[test]
fn softmax_matches_pytorch_and_the_reference() {
    let ctx = ctx();
    let tol = Tolerance {
        rtol: 1e-5,
        atol: 1e-6,
    };
    for case in golden_cases("ce_") {
        let logits = upload(&ctx, &case.shape("logits"), &case.f32("logits"));
        let got = loss::softmax(&logits).unwrap().to_vec().unwrap();
        let want: Vec<f64> = case.f64("log_softmax").iter().map(|v| v.exp()).collect();
        assert_close(&format!("{} softmax", case.name), &got, &want, tol);
    }
    let mut rng = Rng::new(11);
    for (batch, classes) in [(1, 7), (70, 3), (2, 1)] {
        let values: Vec<f32> = rng.vec(batch * classes).iter().map(|v| 30.0 * v).collect();
        let logits = upload(&ctx, &[batch, classes], &values);
        let got = loss::softmax(&logits).unwrap().to_vec().unwrap();
        let labels = vec![0; batch];
        let (_, _, log_softmax) =
            reference::loss::softmax_cross_entropy(&to_f64(&values), &labels, classes);
        let want: Vec<f64> = log_softmax.iter().map(|v| v.exp()).collect();
        assert_close(&format!("softmax [{batch}, {classes}]"), &got, &want, tol);
    }
    let message = loss::softmax(&upload(&ctx, &[2, 3, 1], &[0.0; 6]))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("softmax") && message.contains("[2, 3, 1]"),
        "{message}"
    );
}

#[test]
fn sgd_matches_pytorch_over_three_steps_and_keeps_masked_zeros() {
    let ctx = ctx();
    let case = &golden_cases("sgd_momentum_3steps")[0];
    // Weights and bias share one flat buffer, as the model's parameters do.
    let (w, b) = (case.f32("w"), case.f32("b"));
    let flat: Vec<f32> = w.iter().chain(&b).copied().collect();
    let weights = upload(&ctx, &[flat.len()], &flat);
    let momentum = hetconv::Tensor::zeros(&ctx, &[flat.len()]).unwrap();
    let step = sgd::SgdStep {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    };
    let (mut rw, mut rbuf) = (to_f64(&flat), vec![0.0; flat.len()]);
    for s in 1..=3 {
        let grads: Vec<f32> = case
            .f32(&format!("gw{s}"))
            .iter()
            .chain(&case.f32(&format!("gb{s}")))
            .copied()
            .collect();
        sgd::sgd_step(
            &upload(&ctx, &[grads.len()], &grads),
            &weights,
            &momentum,
            &step,
            None,
        )
        .unwrap();
        let got = weights.to_vec().unwrap();
        let want: Vec<f64> = case
            .f64(&format!("w_after{s}"))
            .into_iter()
            .chain(case.f64(&format!("b_after{s}")))
            .collect();
        assert_close(
            &format!("step {s} weights"),
            &got,
            &want,
            case.tolerance(&format!("w_after{s}")),
        );
        let want_buf: Vec<f64> = case
            .f64(&format!("buf_w_after{s}"))
            .into_iter()
            .chain(case.f64(&format!("buf_b_after{s}")))
            .collect();
        assert_close(
            &format!("step {s} momentum"),
            &momentum.to_vec().unwrap(),
            &want_buf,
            case.tolerance(&format!("buf_w_after{s}")),
        );
        for (i, &v) in w.iter().enumerate() {
            if v == 0.0 {
                // Exactly the stored zero (PyTorch's masking leaves some as -0.0).
                assert_eq!(
                    got[i].to_bits(),
                    v.to_bits(),
                    "masked weight {i} drifted after step {s}"
                );
            }
        }
        reference::optim::sgd_step(&mut rw, &to_f64(&grads), &mut rbuf, 0.1, 0.9, 5e-4, false);
        assert_close64(
            &format!("reference step {s}"),
            &rw,
            &want,
            case.tolerance(&format!("w_after{s}")),
        );
    }
}

#[test]
fn nesterov_sgd_matches_reference() {
    let ctx = ctx();
    let mut rng = Rng::new(11);
    let n = 300;
    let w0 = rng.vec(n);
    let weights = upload(&ctx, &[n], &w0);
    let momentum = hetconv::Tensor::zeros(&ctx, &[n]).unwrap();
    let (mut rw, mut rbuf) = (to_f64(&w0), vec![0.0; n]);
    let step = sgd::SgdStep {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 1e-3,
        nesterov: true,
    };
    for _ in 0..3 {
        let g = rng.vec(n);
        sgd::sgd_step(&upload(&ctx, &[n], &g), &weights, &momentum, &step, None).unwrap();
        reference::optim::sgd_step(&mut rw, &to_f64(&g), &mut rbuf, 0.05, 0.9, 1e-3, true);
    }
    assert_close("nesterov", &weights.to_vec().unwrap(), &rw, F32_KERNEL);
}

/// The input normalisation's kernel, `x * scale[c] + shift[c]` per channel, and its gradient
/// `dy * scale[c]` through the tape, vs the same arithmetic on the CPU (odd plane, batch 3, one
/// and three channels); bad shapes and statistics are refused by name.
#[test]
fn input_normalisation_and_its_gradient_match_the_reference() {
    use hetconv::autograd::Tape;
    use hetconv::data::Normalize;
    use hetconv::nn::InputNormalize;
    let ctx = ctx();
    for channels in [1usize, 3] {
        let (batch, plane) = (3, 5 * 7);
        let n = Normalize {
            mean: (0..channels).map(|c| 0.1 + 0.2 * c as f32).collect(),
            std: (0..channels).map(|c| 0.3 + 0.1 * c as f32).collect(),
        };
        let mut rng = Rng::new(4 + channels as u64);
        let x = rng.vec(batch * channels * plane);
        let dy = rng.vec(x.len());
        let layer = InputNormalize::new(&ctx, &n, channels).unwrap();
        let mut tape = Tape::new();
        let xt = tape.constant(upload(&ctx, &[batch, channels, 5, 7], &x));
        // A constant input records nothing to differentiate; check the map itself.
        let y = layer.forward(&mut tape, &xt).unwrap();
        let c = |i: usize| i / plane % channels;
        let want: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| (f64::from(v) - f64::from(n.mean[c(i)])) / f64::from(n.std[c(i)]))
            .collect();
        assert_close(
            "normalised",
            &y.value().to_vec().unwrap(),
            &want,
            F32_KERNEL,
        );
        // Its gradient, through a tape whose input needs one (x as a parameter).
        let mut b = hetconv::nn::ParamStoreBuilder::default();
        let id = b.param("x", &[batch, channels, 5, 7], x.clone());
        let mut store = b.build(&ctx).unwrap();
        let mut tape = Tape::new();
        let xv = tape.param(&store, id).unwrap();
        let y = layer.forward(&mut tape, &xv).unwrap();
        store.zero_grads();
        tape.backward(&y, upload(&ctx, y.value().shape(), &dy), &mut store)
            .unwrap();
        let want: Vec<f64> = dy
            .iter()
            .enumerate()
            .map(|(i, &g)| f64::from(g) / f64::from(n.std[c(i)]))
            .collect();
        let got = store.grad(id).unwrap().to_vec().unwrap();
        assert_close("gradient", &got, &want, F32_KERNEL);
    }
    let bad = [
        (Normalize::imagenet(), 1, "3 means and 3 stds for 1-channel"),
        (
            Normalize {
                mean: vec![0.5],
                std: vec![0.0],
            },
            1,
            "std 0 is not a positive",
        ),
        (
            Normalize {
                mean: vec![f32::NAN],
                std: vec![1.0],
            },
            1,
            "mean NaN is not finite",
        ),
    ];
    for (n, channels, says) in bad {
        let err = InputNormalize::new(&ctx, &n, channels)
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{err}");
    }
    assert_eq!("imagenet".parse::<Normalize>(), Ok(Normalize::imagenet()));
    assert_eq!(
        "0.5/0.25".parse::<Normalize>(),
        Ok(Normalize {
            mean: vec![0.5],
            std: vec![0.25]
        })
    );
    assert!("0.5,x/1".parse::<Normalize>().is_err());
}

/// A model that normalises its input computes what the same weights compute on input
/// normalised beforehand, and its checkpoint keeps the normalisation.
#[test]
fn a_model_with_input_normalisation_equals_normalising_first() {
    use hetconv::Architecture;
    use hetconv::data::Normalize;
    let ctx = ctx();
    let n = Normalize {
        mean: vec![0.4, 0.5, 0.6],
        std: vec![0.2, 0.25, 0.3],
    };
    let plain = Architecture::Vgg16(tiny_vgg(2, hetconv::nn::ConvMode::Fused));
    let normalising = plain.clone().with_normalize(Some(n.clone()));
    assert!(
        normalising
            .to_string()
            .contains("input normalised with mean [0.4, 0.5, 0.6]")
    );
    let a = normalising.build(&ctx, 5).unwrap();
    let b = plain.build(&ctx, 5).unwrap();
    let (x, _, pixels, _) = image_batch(&ctx, 2, 3);
    let normalised: Vec<f32> = pixels
        .iter()
        .enumerate()
        .map(|(i, &v)| (v - n.mean[i / 1024 % 3]) / n.std[i / 1024 % 3])
        .collect();
    let xn = upload(&ctx, &[2, 3, 32, 32], &normalised);
    let got = a.predict(&x).unwrap().to_vec().unwrap();
    let want: Vec<f64> = b
        .predict(&xn)
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    assert_close(
        "logits",
        &got,
        &want,
        Tolerance {
            rtol: 1e-4,
            atol: 1e-5,
        },
    );
    let ckpt = hetconv::checkpoint::Checkpoint::from_model_blocking(&a, false, Default::default())
        .unwrap();
    let again =
        hetconv::checkpoint::Checkpoint::from_bytes(&ckpt.to_bytes().unwrap(), "n").unwrap();
    assert_eq!(again.architecture, Some(normalising));
}
