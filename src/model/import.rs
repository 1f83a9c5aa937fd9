//! Recognising the network of a PyTorch state_dict (a file without hetconv's metadata) from its
//! tensor names and shapes.

use std::collections::HashMap;

use super::Architecture;
use crate::nn::{ConvMode, PAPER_WIDTHS, ResNetConfig, ResNetLayout, VggConfig, VggLayer};

/// Infers the architecture from state_dict shapes; the error names the tensor that does not fit.
/// A torchvision-named ResNet (`conv1`, `layerS.B.*`, `fc`) or the paper's VGG-16 (`features.*`,
/// `classifier.*`).
pub(crate) fn infer(shapes: &HashMap<String, Vec<usize>>) -> Result<Architecture, String> {
    if shapes.contains_key("fc.weight") || shapes.contains_key("conv1.weight") {
        // Loading then refuses any tensor this network does not have, and any it lacks.
        return infer_resnet(shapes).map(Architecture::ResNet);
    }
    infer_vgg(shapes).map(Architecture::Vgg16)
}

/// A torchvision-named ResNet: the stem's kernel tells the layout (7x7: ImageNet, 3x3: CIFAR),
/// the blocks per stage and whether they have a `conv3` the depth, a HetConv layer's 1x1 and
/// 3x3 weights the part P (no `gwc`: P = 1, standard convs). The input size is not in the
/// weights: the layout's (224 or 32).
fn infer_resnet(shapes: &HashMap<String, Vec<usize>>) -> Result<ResNetConfig, String> {
    let stem = match shapes.get("conv1.weight").map(Vec::as_slice) {
        Some(&[width, channels, k, k2]) if k == k2 => (width, channels, k),
        Some(other) => {
            return Err(format!(
                "conv1.weight has shape {other:?}; [64, C, 7, 7] or [16, C, 3, 3] expected"
            ));
        }
        None => return Err("missing tensor conv1.weight (not a ResNet state_dict?)".into()),
    };
    let classes = match shapes.get("fc.weight").map(Vec::as_slice) {
        Some(&[classes, _]) => classes,
        Some(other) => {
            return Err(format!(
                "fc.weight has shape {other:?}; [classes, features] expected"
            ));
        }
        None => return Err("missing tensor fc.weight".into()),
    };
    // Blocks per stage: the largest B with a layerS.B.bn1.weight, plus one.
    let stages: Vec<usize> = (1..=4)
        .map(|s| {
            (0..)
                .take_while(|b| shapes.contains_key(&format!("layer{s}.{b}.bn1.weight")))
                .count()
        })
        .take_while(|&n| n > 0)
        .collect();
    let bottleneck = shapes.contains_key("layer1.0.conv3.weight");
    let (layout, depth) = match (stem.2, stages.as_slice(), bottleneck) {
        (7, [2, 2, 2, 2], false) => (ResNetLayout::ImageNet, 18),
        (7, [3, 4, 6, 3], false) => (ResNetLayout::ImageNet, 34),
        (7, [3, 4, 6, 3], true) => (ResNetLayout::ImageNet, 50),
        (7, [3, 4, 23, 3], true) => (ResNetLayout::ImageNet, 101),
        (7, [3, 8, 36, 3], true) => (ResNetLayout::ImageNet, 152),
        (3, &[a, b, c], false) if a == b && b == c => (ResNetLayout::Cifar, 6 * a + 2),
        _ => {
            return Err(format!(
                "a ResNet with a {0}x{0} stem and {stages:?} blocks per stage{1} is not one of the zoo's (resnet18/34/50/101/152, CIFAR resnet 6n+2)",
                stem.2,
                if bottleneck { " (bottleneck)" } else { "" }
            ));
        }
    };
    let hetconv = if bottleneck {
        "layer1.0.conv2"
    } else {
        "layer1.0.conv1"
    };
    let parts = match (
        shapes.get(&format!("{hetconv}.gwc.weight")),
        shapes.get(&format!("{hetconv}.pwc.weight")),
    ) {
        (Some(gw), Some(pw)) if gw.len() == 4 && pw.len() >= 2 && gw[1] > 0 => pw[1] / gw[1],
        (Some(gw), _) => {
            return Err(format!(
                "{hetconv}.gwc.weight has shape {gw:?} without a matching {hetconv}.pwc.weight [N, M, 1, 1]"
            ));
        }
        _ => 1,
    };
    let base = match layout {
        ResNetLayout::ImageNet => ResNetConfig::imagenet(depth, parts),
        ResNetLayout::Cifar => ResNetConfig::cifar(depth, parts),
    };
    Ok(ResNetConfig {
        in_channels: stem.1,
        classes,
        ..base
    })
}

/// The paper's VGG-16 from `features.*` and `classifier.*` shapes.
fn infer_vgg(shapes: &HashMap<String, Vec<usize>>) -> Result<VggConfig, String> {
    let skeleton = VggConfig::paper(1);
    let mut widths = Vec::new();
    let mut in_channels = 0;
    let mut parts = 1;
    for layer in skeleton.layers() {
        let VggLayer::Conv { index, hetconv, .. } = layer else {
            continue;
        };
        if hetconv {
            let name = format!("features.{index}.gwc.weight");
            let gw = shapes.get(&name).ok_or(format!("missing tensor {name}"))?;
            let pw_name = format!("features.{index}.pwc.weight");
            let pw = shapes
                .get(&pw_name)
                .ok_or(format!("missing tensor {pw_name}"))?;
            if gw.len() != 4 || pw.len() < 2 || gw[1] == 0 {
                return Err(format!("{name} has shape {gw:?}; [N, M/P, 3, 3] expected"));
            }
            if widths.len() == 1 {
                parts = pw[1] / gw[1];
            }
            widths.push(gw[0]);
        } else {
            let name = format!("features.{index}.weight");
            let w = shapes.get(&name).ok_or(format!(
                "missing tensor {name} (not a HetConv VGG-16 state_dict?)"
            ))?;
            if w.len() != 4 {
                return Err(format!("{name} has shape {w:?}; [N, C, 3, 3] expected"));
            }
            in_channels = w[1];
            widths.push(w[0]);
        }
    }
    let matrix = |name: &str| -> Result<[usize; 2], String> {
        match shapes.get(name).map(Vec::as_slice) {
            Some(&[rows, cols]) => Ok([rows, cols]),
            Some(other) => Err(format!(
                "{name} has shape {other:?}; [outputs, inputs] expected"
            )),
            None => Err(format!("missing tensor {name}")),
        }
    };
    let fc1 = matrix("classifier.0.weight")?;
    let fc2 = matrix("classifier.3.weight")?;
    let last = *widths.last().unwrap_or(&PAPER_WIDTHS[12]);
    let area = fc1[1] / last.max(1);
    let side = (area as f64).sqrt().round() as usize;
    Ok(VggConfig {
        widths,
        parts,
        in_channels,
        image_size: 32 * side.max(1),
        classes: fc2[0],
        hidden: fc1[0],
        mode: ConvMode::Fused,
        normalize: None,
    })
}
