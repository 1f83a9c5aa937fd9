//! The HetConv VGG-16: whole-model gradients vs the CPU reference model, state_dict names,
//! a tiny model overfitting a fixed batch, masked weights staying exactly zero.

mod common;

use common::*;
use hetconv::Model;
use hetconv::kernels::gemm_core::{CoreKernel, TILE_SHAPES};
use hetconv::kernels::loss_scale::LossScaler;
use hetconv::kernels::sgd::SgdStep;
use hetconv::nn::{ConvMode, Vgg16, VggConfig};
use hetconv::tune::Variant;
use hetconv::{Context, ConvAlgorithm, Precision, Tensor, reference};

fn tiny(parts: usize, mode: ConvMode) -> VggConfig {
    tiny_vgg(parts, mode)
}

fn batch(ctx: &Context, n: usize, seed: u64) -> (Tensor, Tensor, Vec<f32>, Vec<usize>) {
    image_batch(ctx, n, seed)
}

#[test]
fn whole_model_gradients_match_the_cpu_reference() {
    let ctx = ctx();
    for mode in [ConvMode::Fused, ConvMode::Unfused] {
        let mut model = Vgg16::new(&ctx, tiny(2, mode), 3).unwrap();
        let params = param_values(model.store());
        let (x, labels, x_host, labels_host) = batch(&ctx, 3, 1);
        let out = model.compute_gradients(&x, &labels).unwrap();
        let (want_loss, want_grads) = reference::vgg::loss_and_grads(
            model.config(),
            &params,
            &to_f64(&x_host),
            3,
            &labels_host,
        );
        let (loss, _) = hetconv::kernels::loss::summarize(&out.rows.to_vec().unwrap());
        assert!(
            (loss - want_loss).abs() < 1e-4 * want_loss.abs().max(1.0),
            "{mode:?}: loss {loss} vs {want_loss}"
        );
        assert_grads_match(&format!("{mode:?}"), model.store(), &want_grads);
    }
}

#[test]
fn parameter_names_follow_the_pytorch_state_dict() {
    let ctx = ctx();
    let model = Vgg16::new(&ctx, tiny(4, ConvMode::Fused), 0).unwrap();
    let names: Vec<(String, Vec<usize>)> = model
        .store()
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.shape.clone()))
        .collect();
    let find = |n: &str| {
        names
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, s)| s.clone())
    };
    assert_eq!(find("features.0.weight"), Some(vec![4, 3, 3, 3]));
    assert_eq!(find("features.0.bias"), Some(vec![4]));
    assert_eq!(find("features.1.weight"), Some(vec![4]));
    assert_eq!(find("features.3.gwc.weight"), Some(vec![4, 1, 3, 3]));
    assert_eq!(find("features.3.pwc.weight"), Some(vec![4, 4, 1, 1]));
    assert_eq!(
        find("features.7.gwc.weight"),
        Some(vec![8, 1, 3, 3]),
        "pool at features.6"
    );
    assert_eq!(
        find("features.40.pwc.weight"),
        Some(vec![8, 8, 1, 1]),
        "conv 13"
    );
    assert_eq!(
        find("features.41.running_mean"),
        None,
        "running stats are buffers"
    );
    assert_eq!(find("classifier.0.weight"), Some(vec![8, 8]));
    assert_eq!(find("classifier.1.bias"), Some(vec![8]));
    assert_eq!(find("classifier.3.weight"), Some(vec![10, 8]));
    let buffers: Vec<&str> = model
        .store()
        .buffers()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(
        buffers.contains(&"features.4.running_var")
            && buffers.contains(&"classifier.1.running_mean")
    );
}

#[test]
fn a_tiny_model_overfits_a_fixed_batch_and_masked_weights_stay_zero() {
    let ctx = ctx();
    let mut model = Vgg16::new(&ctx, tiny(2, ConvMode::Fused), 7).unwrap();
    let (x, labels, _, _) = batch(&ctx, 8, 2);
    assert_overfits(&mut model, &x, &labels, 150);
    // Masked 1x1 weights are still exactly zero.
    assert!(assert_masked_blocks_zero(model.store(), 2) > 0);
}

/// A training step of fixed shapes is built once: from its second run on it allocates no
/// buffer, builds no bind group and is one submission. Along the direct kernels (lavapipe's
/// default), the GEMM core with a split reduction (partials and a second pass) and mixed
/// precision (f16 activations, the loss scaler), so that no path takes fresh scratch each step.
#[test]
fn a_repeated_training_step_reuses_buffers_and_bind_groups() {
    let root = ctx();
    let smallest = TILE_SHAPES.iter().rev().find(|t| t.fits(root.limits()));
    let split = Variant::SplitK(CoreKernel::F32(*smallest.unwrap()));
    let mut settings = vec![
        ("direct", ConvAlgorithm::Direct, Precision::F32),
        ("split", ConvAlgorithm::Fixed(split), Precision::F32),
    ];
    if has_f16(&root, "the repeated mixed-precision step") {
        settings.push(("mixed", ConvAlgorithm::TiledGemm, Precision::Mixed));
    }
    for (name, algorithm, precision) in settings {
        let ctx = root.with_own_settings();
        ctx.set_conv_algorithm(algorithm);
        ctx.set_precision(precision).unwrap();
        let scaler =
            (precision == Precision::Mixed).then(|| LossScaler::with_defaults(&ctx).unwrap());
        // The last convs are wide enough (a reduction of 5 x 32) for the split to cut theirs.
        let config = VggConfig {
            widths: vec![4, 4, 8, 8, 8, 8, 8, 8, 8, 32, 32, 32, 32],
            ..tiny(2, ConvMode::Fused)
        };
        let mut model = Vgg16::new(&ctx, config, 3).unwrap();
        let (x, labels, _, _) = batch(&ctx, 4, 5);
        let step = SgdStep {
            lr: 0.01,
            ..sgd_momentum()
        };
        let mut train = || {
            model
                .train_step_scaled(&x, &labels, &step, scaler.as_ref())
                .unwrap();
        };
        // The first step builds everything; with a split reduction it shows the second pass.
        let kernels = kernels_run(&ctx, &mut train);
        if let (Some(kernels), ConvAlgorithm::Fixed(_)) = (kernels, algorithm) {
            let sum = "gemm_core::sum_splits";
            assert!(
                kernels.iter().any(|k| k.starts_with(sum)),
                "{name}: no {sum} ran: {kernels:?}"
            );
        }
        ctx.synchronize().unwrap();
        let before = ctx.record_stats();
        let buffers = ctx.buffers_created();
        for _ in 0..3 {
            train();
            ctx.flush().unwrap();
        }
        ctx.synchronize().unwrap();
        let after = ctx.record_stats();
        assert_eq!(ctx.buffers_created(), buffers, "{name}: no new buffer");
        assert_eq!(
            after.bind_groups_created, before.bind_groups_created,
            "{name}: no new bind group"
        );
        assert_eq!(
            after.submissions - before.submissions,
            3,
            "{name}: one submission a step"
        );
        assert!(
            after.dispatches - before.dispatches >= 3 * 13,
            "{name}: every conv dispatched"
        );
    }
}

/// The paper's SGD: momentum 0.9, weight decay 5e-4 (set the learning rate).
fn sgd_momentum() -> SgdStep {
    SgdStep {
        lr: 0.0,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    }
}

/// The HetConv 1x1 initialisation: kaiming-normal values except each filter's own input block,
/// which is exactly zero (filters 2g, 2g+1 of 8 own channels 3g..3g+3 of 12 at P = 4).
#[test]
fn hetconv_pointwise_init_zeroes_exactly_the_own_block() {
    let masked = hetconv::nn::Init::new(3).hetconv_pointwise(8, 12, 4);
    let plain = hetconv::nn::Init::new(3).kaiming_fan_out(&[8, 12, 1, 1]);
    for o in 0..8 {
        for c in 0..12 {
            let own = c / 3 == o / 2;
            let (m, p) = (masked[o * 12 + c], plain[o * 12 + c]);
            if own {
                assert_eq!(m, 0.0, "filter {o} channel {c}");
            } else {
                assert_eq!(m, p, "filter {o} channel {c}");
                assert_ne!(m, 0.0, "filter {o} channel {c}");
            }
        }
    }
}

/// The layer constructors and the store refuse what would break later: channels P does not
/// divide or zero channels, a name used twice (names are checkpoint keys), values that do not
/// fill their shape, and an eval-mode BatchNorm on a tape that records gradients.
#[test]
fn layers_and_the_store_refuse_bad_input_with_clear_errors() {
    use hetconv::autograd::Tape;
    use hetconv::nn::{BatchNorm, Conv2d, Init, ParamStoreBuilder};
    let ctx = ctx();
    let mut init = Init::new(1);
    let mut b = ParamStoreBuilder::default();
    let message = Conv2d::hetconv(&mut b, &mut init, "c", (6, 8), 4)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("6 -> 8") && message.contains("P = 4"),
        "{message}"
    );
    let message = Conv2d::standard(&mut b, &mut init, "c", (0, 8), false)
        .unwrap_err()
        .to_string();
    assert!(message.contains("positive"), "{message}");

    let mut b = ParamStoreBuilder::default();
    BatchNorm::new(&mut b, "bn", 4);
    BatchNorm::new(&mut b, "bn", 4);
    let message = b.build(&ctx).err().unwrap().to_string();
    assert!(message.contains("\"bn.weight\" is used twice"), "{message}");

    let mut b = ParamStoreBuilder::default();
    b.param("w", &[2, 3], vec![0.0; 5]);
    let message = b.build(&ctx).err().unwrap().to_string();
    assert!(message.contains("w has shape [2, 3] and 5"), "{message}");

    let mut b = ParamStoreBuilder::default();
    let bn = BatchNorm::new(&mut b, "bn", 2);
    let store = b.build(&ctx).unwrap();
    let x = upload(&ctx, &[3, 2], &[0.5, -1.0, 2.0, 0.0, 1.0, 1.5]);
    let mut tape = Tape::new();
    let h = tape.constant(x.clone());
    let message = bn
        .forward(&mut tape, &store, &h, false)
        .unwrap_err()
        .to_string();
    assert!(message.contains("recording tape"), "{message}");
    let mut inference = Tape::inference();
    let h = inference.constant(x);
    assert_eq!(
        bn.forward(&mut inference, &store, &h, false)
            .unwrap()
            .value()
            .shape(),
        [3, 2]
    );
}

/// A profile of a training step names the layer each kernel ran for, the backward pass's
/// kernels included: one entry per conv block (`features.N`), the classifier, and the loss and
/// SGD step outside any layer.
#[test]
fn a_profile_of_a_training_step_names_every_layer() {
    let ctx = ctx();
    if !ctx.can_profile() {
        let text = format!(
            "{} has no timestamp queries: the layer profile is not checked",
            ctx.adapter_info().name
        );
        assert!(std::env::var_os("CI").is_none(), "{text} (CI needs it)");
        note(&text);
        return;
    }
    let mut model = Vgg16::new(&ctx, tiny(2, ConvMode::Fused), 3).unwrap();
    let x = Tensor::zeros(&ctx, &[2, 3, 32, 32]).unwrap();
    let y = Tensor::from_slice(&ctx, &[2], &[1.0, 7.0]).unwrap();
    let sgd = SgdStep {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    };
    model.train_step(&x, &y, &sgd).unwrap();
    ctx.synchronize().unwrap();
    ctx.begin_profile().unwrap();
    model.train_step(&x, &y, &sgd).unwrap();
    let (times, _) = pollster::block_on(ctx.end_profile()).unwrap();
    let layers: std::collections::BTreeSet<Option<String>> =
        times.iter().map(|t| t.layer.clone()).collect();
    let blocks = layers
        .iter()
        .flatten()
        .filter(|l| l.starts_with("features."))
        .count();
    assert_eq!(blocks, 13, "{layers:?}");
    assert!(
        layers.contains(&Some("classifier".to_string())),
        "{layers:?}"
    );
    assert!(layers.contains(&None), "loss and SGD run outside any layer");
    let first_block = |what: &str| {
        times
            .iter()
            .any(|t| t.layer.as_deref() == Some("features.0") && t.kernel.contains(what))
    };
    assert!(
        first_block("::forward") && first_block("weight_grad"),
        "{times:?}"
    );
    assert_eq!(ctx.layer(), None, "the layer is cleared after the step");
}
