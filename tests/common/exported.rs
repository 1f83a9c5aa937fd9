//! What the export checks (`tests/onnx.rs`, `tests/torch_export.rs`) share: a model trained a
//! few steps on the 20 real CIFAR-10 images, those images as a raw file for a Python script, and
//! the logits such a script prints.

use std::path::{Path, PathBuf};
use std::process::Command;

use hetconv::kernels::sgd::SgdStep;
use hetconv::{Architecture, Model};

use super::{cifar20_batch, ctx, to_f64};

/// A model trained on the 20 images, its eval-mode logits on them, and the images as raw
/// little-endian f32 values (`images`, in the temporary folder `dir`, which lives as long as
/// this does).
pub struct TrainedOnCifar20 {
    pub model: Box<dyn Model>,
    pub logits: Vec<f64>,
    pub dir: tempfile::TempDir,
    pub images: PathBuf,
}

/// Builds `arch` from `seed` and trains it 3 SGD steps (learning rate `lr`, momentum 0.9,
/// weight decay 5e-4) on the 20 images, so that BatchNorm's running estimates are not their
/// start values.
///
/// # Shapes
/// the images: `[20, 3, size, size]` with the architecture's input size; logits `[20, classes]`
pub fn trained_on_cifar20(arch: &Architecture, seed: u64, lr: f32) -> TrainedOnCifar20 {
    let ctx = ctx();
    let size = arch.input().size;
    let mut model = arch.build(&ctx, seed).unwrap();
    let (x, labels, pixels) = cifar20_batch(&ctx, size);
    let step = SgdStep {
        lr,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    };
    for _ in 0..3 {
        model.train_step(&x, &labels, &step).unwrap();
    }
    let logits = to_f64(&model.predict(&x).unwrap().to_vec().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images.f32");
    let raw: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&images, raw).unwrap();
    TrainedOnCifar20 {
        model,
        logits,
        dir,
        images,
    }
}

/// Runs `scripts/<script>` with `python` on `args` and returns the JSON it prints and the
/// logits in it (rows concatenated); a failing script fails the test with its stderr, under
/// `label`.
pub fn script_logits(
    python: &Path,
    script: &str,
    args: &[&std::ffi::OsStr],
    label: &str,
) -> (serde_json::Value, Vec<f64>) {
    let out = Command::new(python)
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("scripts")
                .join(script),
        )
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{label}: {script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let logits = result["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|v| v.as_f64().unwrap())
        .collect();
    (result, logits)
}
