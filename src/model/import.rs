//! Recognising the network of a PyTorch state_dict (a file without hetconv's metadata) from its
//! tensor names and shapes.

use std::collections::HashMap;

use super::Architecture;
use crate::nn::{ConvMode, PAPER_WIDTHS, VggConfig, VggLayer};

/// Infers the architecture from state_dict shapes; the error names the tensor that does not fit.
pub(crate) fn infer(shapes: &HashMap<String, Vec<usize>>) -> Result<Architecture, String> {
    infer_vgg(shapes).map(Architecture::Vgg16)
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
    })
}
