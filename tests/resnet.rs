//! The HetConv ResNets: whole-model gradients vs the CPU reference model (CIFAR layout with
//! projections, and torchvision's ImageNet layout with its 7x7 stride-2 stem, max-pool and
//! strided HetConv), torchvision's parameter names and counts, a torchvision-named state_dict
//! recognised and loaded, a tiny ResNet overfitting a batch with its masked weights exactly zero.

mod common;

use std::collections::HashMap;

use common::*;
use hetconv::checkpoint::Checkpoint;
use hetconv::nn::{ConvMode, ResNet, ResNetConfig};
use hetconv::{Architecture, Model, reference};

/// A CIFAR ResNet-8 (one basic block per stage, projections into stages 2 and 3) on 32x32.
fn resnet8(parts: usize, mode: ConvMode) -> ResNetConfig {
    ResNetConfig {
        mode,
        ..ResNetConfig::cifar(8, parts)
    }
}

fn check_gradients(config: ResNetConfig, batch: usize) {
    let ctx = ctx();
    let label = format!("{} P={} {:?}", config.name(), config.parts, config.mode);
    let side = config.image_size;
    let mut model = ResNet::new(&ctx, config, 3).unwrap();
    let params = param_values(model.store());
    let mut rng = Rng::new(1);
    let x_host: Vec<f32> = rng.vec(batch * 3 * side * side);
    let labels_host: Vec<usize> = (0..batch).map(|i| (i * 7 + 1) % 10).collect();
    let x = upload(&ctx, &[batch, 3, side, side], &x_host);
    let label_values: Vec<f32> = labels_host.iter().map(|&l| l as f32).collect();
    let labels = upload(&ctx, &[batch], &label_values);
    let out = model.compute_gradients(&x, &labels).unwrap();
    let (want_loss, want_grads) = reference::resnet::loss_and_grads(
        model.config(),
        &params,
        &to_f64(&x_host),
        batch,
        &labels_host,
    );
    let (loss, _) = hetconv::kernels::loss::summarize(&out.rows.to_vec().unwrap());
    assert!(
        (loss - want_loss).abs() < 1e-4 * want_loss.abs().max(1.0),
        "{label}: loss {loss} vs {want_loss}"
    );
    assert_grads_match(&label, model.store(), &want_grads);
}

#[test]
fn cifar_resnet_gradients_match_the_cpu_reference() {
    for (parts, mode) in [
        (2, ConvMode::Fused),
        (4, ConvMode::Unfused),
        (1, ConvMode::Fused),
    ] {
        check_gradients(resnet8(parts, mode), 3);
    }
}

/// The ImageNet layout: 7x7 stride-2 stem, 3x3 stride-2 max-pool, stride-2 HetConv in the first
/// block of stages 2..4 with 1x1 stride-2 projections; on 64x64 images, whose last stage has
/// 2x2 maps (on 1x1 maps of two images, BatchNorm normalises pairs of values, and its gradient
/// amplifies f32 rounding past any fair f32 vs f64 tolerance).
#[test]
fn imagenet_resnet18_gradients_match_the_cpu_reference() {
    let config = ResNetConfig {
        image_size: 64,
        classes: 10,
        ..ResNetConfig::imagenet(18, 4)
    };
    check_gradients(config, 4);
}

#[test]
fn parameter_names_and_counts_follow_torchvision() {
    let layout: HashMap<String, Vec<usize>> = ResNet::layout(&ResNetConfig::imagenet(18, 1))
        .unwrap()
        .into_iter()
        .collect();
    for (name, shape) in [
        ("conv1.weight", vec![64, 3, 7, 7]),
        ("bn1.running_var", vec![64]),
        ("layer1.0.conv1.weight", vec![64, 64, 3, 3]),
        ("layer1.1.bn2.bias", vec![64]),
        ("layer2.0.conv1.weight", vec![128, 64, 3, 3]),
        ("layer2.0.downsample.0.weight", vec![128, 64, 1, 1]),
        ("layer2.0.downsample.1.running_mean", vec![128]),
        ("layer4.1.conv2.weight", vec![512, 512, 3, 3]),
        ("fc.weight", vec![1000, 512]),
        ("fc.bias", vec![1000]),
    ] {
        assert_eq!(layout.get(name), Some(&shape), "{name}");
    }
    // torchvision's parameter counts (BatchNorm's running statistics are buffers).
    let ctx = ctx();
    for (config, params) in [
        (ResNetConfig::imagenet(18, 1), 11_689_512),
        (ResNetConfig::cifar(20, 1), 272_474),
    ] {
        let model = ResNet::new(&ctx, config.clone(), 0).unwrap();
        let count: usize = model.store().params().iter().map(|p| p.numel()).sum();
        assert_eq!(count, params, "{}", config.name());
    }
    // At P > 1 the blocks' 3x3 convs are HetConv pairs (the bottleneck's conv2), the stem, the
    // 1x1 convs and the projections stay standard.
    let layout: HashMap<String, Vec<usize>> = ResNet::layout(&ResNetConfig::imagenet(50, 4))
        .unwrap()
        .into_iter()
        .collect();
    for (name, shape) in [
        ("conv1.weight", vec![64, 3, 7, 7]),
        ("layer1.0.conv1.weight", vec![64, 64, 1, 1]),
        ("layer1.0.conv2.gwc.weight", vec![64, 16, 3, 3]),
        ("layer1.0.conv2.pwc.weight", vec![64, 64, 1, 1]),
        ("layer1.0.conv3.weight", vec![256, 64, 1, 1]),
        ("layer1.0.downsample.0.weight", vec![256, 64, 1, 1]),
        ("layer3.0.conv2.gwc.weight", vec![256, 64, 3, 3]),
        ("fc.weight", vec![1000, 2048]),
    ] {
        assert_eq!(layout.get(name), Some(&shape), "{name}");
    }
    assert!(!layout.contains_key("layer1.0.conv2.weight"));
}

/// A state_dict with torchvision's names and no hetconv metadata (as
/// `safetensors.torch.save_file(model.state_dict())` writes it) is recognised, depth, layout and
/// P from its shapes, and loads into a network that computes the same logits.
#[test]
fn a_torchvision_named_state_dict_is_recognised_and_loads() {
    // Recognition from the shapes alone, for every depth of both layouts and P = 1 and 4.
    for config in [18, 34, 50, 101, 152]
        .map(|d| ResNetConfig::imagenet(d, 1))
        .into_iter()
        .chain([20, 32, 56].map(|d| ResNetConfig::cifar(d, 4)))
        .chain([ResNetConfig::imagenet(50, 4)])
    {
        let shapes: HashMap<String, Vec<usize>> =
            ResNet::layout(&config).unwrap().into_iter().collect();
        assert_eq!(
            Architecture::infer(&shapes),
            Ok(Architecture::ResNet(config.clone())),
            "{} P={}",
            config.name(),
            config.parts
        );
    }
    let ctx = ctx();
    for parts in [1, 4] {
        let model = ResNet::new(&ctx, ResNetConfig::cifar(20, parts), 5).unwrap();
        let ckpt = Checkpoint::from_model_blocking(&model, false, HashMap::new()).unwrap();
        let bytes = ckpt.to_bytes().unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let plain = safetensors::serialize(file.tensors(), None).unwrap();
        let loaded = Checkpoint::from_bytes(&plain, "resnet20.safetensors").unwrap();
        assert_eq!(
            loaded.architecture,
            Some(Architecture::ResNet(ResNetConfig::cifar(20, parts)))
        );
        let rebuilt = loaded.build_model(&ctx, ConvMode::Fused).unwrap();
        let (x, _, _, _) = image_batch(&ctx, 2, 9);
        let want = model.predict(&x).unwrap().to_vec().unwrap();
        let got = rebuilt.predict(&x).unwrap().to_vec().unwrap();
        assert_eq!(
            got, want,
            "P={parts}: the same weights give the same logits"
        );
    }
    // A state_dict of an unknown ResNet shape is refused by name.
    let mut shapes: HashMap<String, Vec<usize>> = ResNet::layout(&ResNetConfig::cifar(20, 1))
        .unwrap()
        .into_iter()
        .collect();
    shapes.retain(|name, _| !name.starts_with("layer3."));
    let err = Architecture::infer(&shapes).unwrap_err();
    assert!(err.contains("[3, 3] blocks per stage"), "{err}");
}

#[test]
fn a_tiny_resnet_overfits_a_fixed_batch_and_masked_weights_stay_zero() {
    let ctx = ctx();
    let mut model = ResNet::new(&ctx, resnet8(4, ConvMode::Fused), 7).unwrap();
    let (x, labels, _, _) = image_batch(&ctx, 8, 2);
    assert_overfits(&mut model, &x, &labels, 100);
    let checked = assert_masked_blocks_zero(model.store(), 4);
    assert!(checked > 0, "the ResNet has HetConv layers");
}
