//! ONNX export checked in a real runtime: the exported VGG-16 (P = 1, 4, 16) and ResNets (CIFAR
//! and ImageNet layouts, one with input normalisation) run in ONNX Runtime (Python,
//! `scripts/onnx_logits.py`) on the 20 real CIFAR-10 test images and give hetconv's own logits,
//! with the HetConv and BatchNorm layers kept or folded. ONNX Runtime comes from the package
//! registry: `.ci/deps.sh` installs it into a virtual environment; a machine without it says so,
//! and CI fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::exported::{script_logits, trained_on_cifar20};
use common::*;
use hetconv::Architecture;
use hetconv::checkpoint::Checkpoint;
use hetconv::data::Normalize;
use hetconv::nn::{ConvMode, ResNetConfig, VggConfig};
use hetconv::onnx::{OnnxOptions, proto};
use prost::Message;

/// A Python with onnxruntime: `HETCONV_PYTHON`, the virtual environment `.ci/deps.sh` makes,
/// or `python3`; None (with a note; under CI a failure) when none has it.
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/hetconv/venv/bin/python"));
    let candidates = std::env::var_os("HETCONV_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(venv)
        .chain([PathBuf::from("python3")]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", "import onnxruntime, numpy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    let text = "no Python with onnxruntime (run .ci/deps.sh, or set HETCONV_PYTHON): the ONNX models were not run";
    assert!(std::env::var_os("CI").is_none(), "{text} (CI needs it)");
    note(text);
    None
}

/// Builds `arch`, trains it 3 steps on the images (so BatchNorm's running estimates are not
/// their start values), then checks every option against ONNX Runtime.
fn check(python: &Path, arch: Architecture, options: &[OnnxOptions]) {
    let size = arch.input().size.to_string();
    let trained = trained_on_cifar20(&arch, 11, 0.02);
    let ckpt = Checkpoint::from_model_blocking(&*trained.model, false, Default::default()).unwrap();
    for &option in options {
        let label = format!("{} {option:?}", arch);
        let bytes = hetconv::onnx::export(&ckpt, option).unwrap();
        let decoded = proto::ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.opset_import[0].version, hetconv::onnx::OPSET);
        let path = trained.dir.path().join("model.onnx");
        std::fs::write(&path, &bytes).unwrap();
        let args = [
            path.as_os_str(),
            trained.images.as_os_str(),
            "20".as_ref(),
            "3".as_ref(),
            size.as_ref(),
            size.as_ref(),
        ];
        let (result, got) = script_logits(python, "onnx_logits.py", &args, &label);
        assert_eq!(result["inputs"], serde_json::json!(["input"]), "{label}");
        assert_eq!(result["outputs"], serde_json::json!(["logits"]), "{label}");
        // Within 1e-4 of the largest logit: ONNX Runtime sums in another order (and a folded
        // graph rounds the folded weights once).
        let tol = Tolerance {
            rtol: 1e-4,
            atol: 1e-4,
        }
        .scaled(&trained.logits);
        assert_close64(&label, &got, &trained.logits, tol);
    }
}

const KEPT: OnnxOptions = OnnxOptions {
    fold_hetconv: false,
    fold_batchnorm: false,
};
const FOLDED: OnnxOptions = OnnxOptions {
    fold_hetconv: true,
    fold_batchnorm: true,
};

#[test]
fn exported_vgg16_runs_in_onnx_runtime_with_hetconvs_logits() {
    let Some(python) = python() else { return };
    for parts in [1, 4, 16] {
        // A quarter of the paper's widths (16..128 channels: every width divisible by 16).
        let config = VggConfig::paper(parts).with_width_mult(0.25);
        let options: &[OnnxOptions] = if parts == 4 {
            &[
                KEPT,
                FOLDED,
                OnnxOptions {
                    fold_hetconv: true,
                    fold_batchnorm: false,
                },
                OnnxOptions {
                    fold_hetconv: false,
                    fold_batchnorm: true,
                },
            ]
        } else {
            &[KEPT, FOLDED]
        };
        check(&python, Architecture::Vgg16(config), options);
    }
}

#[test]
fn exported_resnets_run_in_onnx_runtime_with_hetconvs_logits() {
    let Some(python) = python() else { return };
    // The CIFAR ResNet-20 at P = 4, normalising its input in the graph.
    let cifar = ResNetConfig {
        normalize: Some(Normalize {
            mean: vec![0.49, 0.48, 0.45],
            std: vec![0.25, 0.24, 0.26],
        }),
        ..ResNetConfig::cifar(20, 4)
    };
    check(&python, Architecture::ResNet(cifar), &[KEPT, FOLDED]);
    // torchvision's ResNet-18 layout (7x7 stride-2 stem, max-pool, strided HetConv,
    // projections) at P = 2, on the images at 64x64 (zero-padded).
    let imagenet = ResNetConfig {
        image_size: 64,
        classes: 10,
        mode: ConvMode::Fused,
        ..ResNetConfig::imagenet(18, 2)
    };
    check(&python, Architecture::ResNet(imagenet), &[KEPT, FOLDED]);
}

#[test]
fn a_custom_network_or_a_broken_checkpoint_is_refused_by_name() {
    let ctx = ctx();
    let model = Architecture::Vgg16(tiny_vgg(2, ConvMode::Fused))
        .build(&ctx, 1)
        .unwrap();
    let mut ckpt = Checkpoint::from_model_blocking(&model, false, Default::default()).unwrap();
    ckpt.tensors.remove("features.3.pwc.weight");
    let err = hetconv::onnx::export(&ckpt, KEPT).unwrap_err().to_string();
    assert!(err.contains("features.3.pwc.weight"), "{err}");
    ckpt.architecture = None;
    let err = hetconv::onnx::export(&ckpt, KEPT).unwrap_err().to_string();
    assert!(err.contains("custom network"), "{err}");
}
