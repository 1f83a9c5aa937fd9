//! ONNX export checked in a real runtime: the exported VGG-16 (P = 1, 4, 16) and ResNets (CIFAR
//! and ImageNet layouts, one with input normalisation) run in ONNX Runtime (Python,
//! `scripts/onnx_logits.py`) on the 20 real CIFAR-10 test images and give hetconv's own logits,
//! with the HetConv and BatchNorm layers kept or folded. ONNX Runtime comes from the package
//! registry: `.ci/deps.sh` installs it into a virtual environment; a machine without it says so,
//! and CI fails.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use hetconv::checkpoint::Checkpoint;
use hetconv::data::Normalize;
use hetconv::kernels::sgd::SgdStep;
use hetconv::nn::{ConvMode, ResNetConfig, VggConfig};
use hetconv::onnx::{OnnxOptions, proto};
use hetconv::{Architecture, Model};
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
fn check(python: &PathBuf, arch: Architecture, options: &[OnnxOptions]) {
    let ctx = ctx();
    let size = arch.input().size;
    let mut model = arch.build(&ctx, 11).unwrap();
    let (x, labels, pixels) = cifar20_batch(&ctx, size);
    let step = SgdStep {
        lr: 0.02,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    };
    for _ in 0..3 {
        model.train_step(&x, &labels, &step).unwrap();
    }
    let want: Vec<f64> = model
        .predict(&x)
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let ckpt = Checkpoint::from_model_blocking(&model, false, Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images.f32");
    let raw: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&images, raw).unwrap();
    for &option in options {
        let label = format!("{} {option:?}", arch);
        let bytes = hetconv::onnx::export(&ckpt, option).unwrap();
        let decoded = proto::ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.opset_import[0].version, hetconv::onnx::OPSET);
        let path = dir.path().join("model.onnx");
        std::fs::write(&path, &bytes).unwrap();
        let out = Command::new(python)
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/onnx_logits.py"))
            .arg(&path)
            .arg(&images)
            .args(["20", "3", &size.to_string(), &size.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{label}: ONNX Runtime failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result["inputs"], serde_json::json!(["input"]), "{label}");
        assert_eq!(result["outputs"], serde_json::json!(["logits"]), "{label}");
        let got: Vec<f32> = result["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter())
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        // Within 1e-4 of the largest logit: ONNX Runtime sums in another order (and a folded
        // graph rounds the folded weights once).
        let tol = Tolerance {
            rtol: 1e-4,
            atol: 1e-4,
        }
        .scaled(&want);
        assert_close(&label, &got, &want, tol);
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
