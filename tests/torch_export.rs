//! The PyTorch direction of hetconv's checkpoints: a model trained here, saved and written by
//! `hetconv export` as a PyTorch state_dict, loads with `strict=True` into PyTorch model
//! definitions written independently of hetconv (`scripts/torch_logits.py`: the paper's VGG-16
//! as the PyTorch reproduction writes it, torchvision's resnet18, a CIFAR ResNet with the
//! reproduction's HetConv) and gives hetconv's logits on the 20 real CIFAR-10 test images.
//! It needs a Python with `torch` and `safetensors` (`HETCONV_TORCH_PYTHON`, or `HETCONV_PYTHON`
//! or `python3` where they have them; torchvision for the resnet18 case); where there is none
//! it says so and checks nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::exported::{script_logits, trained_on_cifar20};
use common::*;
use hetconv::Architecture;
use hetconv::checkpoint::{self, Checkpoint};
use hetconv::nn::{ResNetConfig, VggConfig};

/// A Python that imports every module of `modules`, or None with a note.
fn python_with(modules: &str) -> Option<PathBuf> {
    let candidates = ["HETCONV_TORCH_PYTHON", "HETCONV_PYTHON"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .chain([PathBuf::from("python3")]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    note(&format!(
        "no Python with {modules} (pip install torch torchvision safetensors, then set \
         HETCONV_TORCH_PYTHON): this PyTorch check was not run"
    ));
    None
}

/// Trains `arch` 3 steps on the 20 images (so BatchNorm's running estimates are not their
/// start values), saves it, exports it with the command line, and compares PyTorch's logits
/// (`spec` names the PyTorch definition) with hetconv's.
fn check(python: &Path, arch: Architecture, spec: &str) {
    let size = arch.input().size.to_string();
    let trained = trained_on_cifar20(&arch, 5, 0.05);
    let saved = trained.dir.path().join("model.safetensors");
    let ckpt = Checkpoint::from_model_blocking(&*trained.model, true, Default::default()).unwrap();
    checkpoint::save(&saved, &ckpt).unwrap();
    let exported = trained.dir.path().join("state_dict.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_hetconv"))
        .arg("export")
        .arg("--weights")
        .arg(&saved)
        .arg("--output")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hetconv export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = [
        exported.as_os_str(),
        trained.images.as_os_str(),
        "20".as_ref(),
        "3".as_ref(),
        size.as_ref(),
        size.as_ref(),
        spec.as_ref(),
    ];
    let (result, got) = script_logits(python, "torch_logits.py", &args, spec);
    // hetconv computes in f32, PyTorch here in f64 from the same f32 weights: the difference
    // is hetconv's rounding, well within 1e-4 of the largest logit at these depths.
    let tol = Tolerance {
        rtol: 1e-4,
        atol: 1e-4,
    }
    .scaled(&trained.logits);
    assert_close64(spec, &got, &trained.logits, tol);
    eprintln!(
        "{spec}: {} tensors loaded strictly; logits match",
        result["tensors"]
    );
}

#[test]
fn exported_vgg16_loads_into_the_pytorch_reproductions_model() {
    let Some(python) = python_with("torch, safetensors") else {
        return;
    };
    for parts in [1, 4] {
        let config = VggConfig::paper(parts).with_width_mult(0.125);
        let widths: Vec<String> = config.widths.iter().map(|w| w.to_string()).collect();
        let spec = format!("vgg16:{parts}:{}", widths.join(","));
        check(&python, Architecture::Vgg16(config), &spec);
    }
}

#[test]
fn exported_resnets_load_into_pytorch_definitions() {
    let Some(python) = python_with("torch, safetensors") else {
        return;
    };
    check(
        &python,
        Architecture::ResNet(ResNetConfig::cifar(8, 4)),
        "cifar-resnet:8:4",
    );
    check(
        &python,
        Architecture::ResNet(ResNetConfig::cifar(8, 1)),
        "cifar-resnet:8:1",
    );
    if let Some(python) = python_with("torch, torchvision, safetensors") {
        let resnet18 = ResNetConfig {
            image_size: 64,
            classes: 10,
            ..ResNetConfig::imagenet(18, 1)
        };
        check(&python, Architecture::ResNet(resnet18), "resnet18");
    }
}
