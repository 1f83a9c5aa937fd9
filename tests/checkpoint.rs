//! Checkpoints: bit-exact round trips, atomic writes, PyTorch import (shape inference, folding
//! of the masked block), clear errors; resuming continues the same trajectory; one SGD step
//! from an imported checkpoint equals the CPU reference.

mod common;

use std::collections::HashMap;

use common::*;
use hetconv::checkpoint::{self, Checkpoint, META_CONFIG, StoredDtype};
use hetconv::data::{Dataset, Images, cifar};
use hetconv::nn::{ConvMode, Vgg16, VggConfig};
use hetconv::optim::{LrSchedule, Schedule};
use hetconv::train::{Progress, TrainSettings, Trainer};
use hetconv::{Architecture, Model};
use hetconv::{Context, reference};

fn tiny() -> VggConfig {
    tiny_vgg(2, ConvMode::Fused)
}

fn cifar20() -> Dataset {
    cifar::parse(
        &std::fs::read(fixtures().join("cifar10_test_first20.bin")).unwrap(),
        "cifar20",
    )
    .unwrap()
}

fn settings(augment: bool, shuffle: bool) -> TrainSettings {
    TrainSettings {
        epochs: 3,
        max_steps: None,
        batch_size: 4,
        lr: LrSchedule {
            base_lr: 0.1,
            schedule: Schedule::Cosine { total_epochs: 3 },
            warmup_epochs: 0.5,
        },
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
        augment: augment.then(Default::default),
        shuffle,
        seed: 5,
        report_every: 1,
        precision: hetconv::Precision::F32,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn trained(ctx: &Context, steps: usize) -> Vgg16 {
    let model = Vgg16::new(ctx, tiny(), 1).unwrap();
    let mut trainer =
        Trainer::new(model, cifar20(), settings(true, true), Progress::default()).unwrap();
    for _ in 0..steps {
        pollster::block_on(trainer.step()).unwrap();
    }
    trainer.into_model()
}

#[test]
fn round_trip_is_bit_exact_including_momentum_and_running_stats() {
    let ctx = ctx();
    let model = trained(&ctx, 2);
    let saved = Checkpoint::from_model_blocking(&model, true, HashMap::new()).unwrap();
    let bytes = saved.to_bytes().unwrap();
    let loaded = Checkpoint::from_bytes(&bytes, "mem").unwrap();
    assert_eq!(loaded, saved);
    let restored = loaded.build_model(&ctx, ConvMode::Fused).unwrap();
    let (a, b) = (
        model.store().snapshot_blocking().unwrap(),
        restored.store().snapshot_blocking().unwrap(),
    );
    for ((name, x), (_, y)) in a
        .params
        .iter()
        .chain(&a.momentum)
        .chain(&a.buffers)
        .zip(b.params.iter().chain(&b.momentum).chain(&b.buffers))
    {
        assert_eq!(bits(x), bits(y), "{name}");
    }
    assert!(
        a.momentum.iter().any(|(_, m)| m.iter().any(|&v| v != 0.0)),
        "momentum was saved after steps"
    );
}

/// Stored as f16, every value comes back as its nearest f16 (the `half` crate's rounding), and
/// a value f16 cannot hold is refused by name instead of becoming an infinity.
#[test]
fn an_f16_checkpoint_holds_each_value_rounded_to_f16_and_refuses_out_of_range_ones() {
    let ctx = ctx();
    let model = trained(&ctx, 2);
    let saved = Checkpoint::from_model_blocking(&model, false, HashMap::new()).unwrap();
    let bytes = saved.to_bytes_as(StoredDtype::F16).unwrap();
    // Two bytes fewer per value (the header, with the config, is the same but for offsets).
    let values: usize = saved.tensors.values().map(Vec::len).sum();
    let full = saved.to_bytes().unwrap().len();
    assert!(
        bytes.len() + 2 * values - 64 <= full,
        "{} vs {full}",
        bytes.len()
    );
    let loaded = Checkpoint::from_bytes(&bytes, "mem").unwrap();
    for (name, values) in &saved.tensors {
        let want: Vec<u32> = values
            .iter()
            .map(|&v| half::f16::from_f32(v).to_f32().to_bits())
            .collect();
        assert_eq!(bits(&loaded.tensors[name]), want, "{name}");
    }
    let mut huge = saved.clone();
    let name = "features.0.weight".to_string();
    huge.tensors.get_mut(&name).unwrap()[3] = 1e6;
    let err = huge.to_bytes_as(StoredDtype::F16).unwrap_err().to_string();
    assert!(err.contains(&name) && err.contains("value 3"), "{err}");
}

#[test]
fn atomic_write_replaces_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    checkpoint::write_atomic(&path, b"first").unwrap();
    checkpoint::write_atomic(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // A temporary file of a process that is gone (a crash, a kill -9) is removed by the next
    // write; one of a live process (this one's parent) is left alone.
    let stale = dir
        .path()
        .join(format!(".ckpt.safetensors.tmp-{}", u32::MAX - 1));
    let live = dir.path().join(format!(
        ".ckpt.safetensors.tmp-{}",
        std::os::unix::process::parent_id()
    ));
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    std::fs::write(&live, b"being written").unwrap();
    checkpoint::write_atomic(&path, b"third").unwrap();
    assert!(!stale.exists(), "the stale temporary file is still there");
    assert!(live.exists(), "a live process's temporary file was removed");
    std::fs::remove_file(&live).unwrap();

    // A write that fails (the target is a folder, so the rename fails) leaves no temporary file.
    let folder = dir.path().join("a-folder");
    std::fs::create_dir(folder.join("inside").parent().unwrap()).unwrap();
    std::fs::write(folder.join("inside"), b"x").unwrap();
    let err = checkpoint::write_atomic(&folder, b"fourth")
        .unwrap_err()
        .to_string();
    assert!(err.contains("a-folder"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// A PyTorch-style file: the model's tensors with state_dict names and no hetconv metadata.
fn pytorch_file(model: &Vgg16, edit: impl FnOnce(&mut HashMap<String, Vec<f32>>)) -> Vec<u8> {
    let mut ckpt = Checkpoint::from_model_blocking(model, false, HashMap::new()).unwrap();
    edit(&mut ckpt.tensors);
    let bytes = ckpt.to_bytes().unwrap();
    // Rewrite without metadata, as safetensors.torch.save_file(state_dict) would.
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = file.tensors();
    safetensors::serialize(tensors, None).unwrap()
}

#[test]
fn pytorch_import_infers_the_config_and_folds_the_masked_block() {
    let ctx = ctx();
    let model = trained(&ctx, 1);
    let plain = Checkpoint::from_bytes(&pytorch_file(&model, |_| {}), "torch.safetensors").unwrap();
    assert!(!plain.metadata.contains_key(META_CONFIG));
    assert_eq!(plain.architecture, Some(Architecture::Vgg16(tiny())));
    assert_eq!(plain.folded, 0);
    // Filter 0 of conv 2 (features.3, P=2, 4 inputs): its own block is input channels 0 and 1.
    let delta = 0.25f32;
    let folded = Checkpoint::from_bytes(
        &pytorch_file(&model, |t| {
            t.get_mut("features.3.pwc.weight").unwrap()[1] = delta;
        }),
        "unmasked.safetensors",
    )
    .unwrap();
    assert_eq!(folded.folded, 1);
    assert_eq!(
        folded.tensors["features.3.pwc.weight"],
        plain.tensors["features.3.pwc.weight"]
    );
    let mut want = plain.tensors["features.3.gwc.weight"].clone();
    want[(3 + 1) * 3 + 1] += delta; // filter 0, block channel 1, centre tap
    assert_eq!(folded.tensors["features.3.gwc.weight"], want);
}

#[test]
fn shape_mismatches_and_garbage_are_clear_errors() {
    let ctx = ctx();
    let model = trained(&ctx, 0);
    // A PyTorch file whose last linear layer has the wrong shape: the error names it.
    let good = pytorch_file(&model, |_| {});
    let file = safetensors::SafeTensors::deserialize(&good).unwrap();
    let wrong = vec![0u8; 10 * 4 * 4];
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            if name == "classifier.3.weight" {
                (
                    name,
                    safetensors::tensor::TensorView::new(
                        safetensors::Dtype::F32,
                        vec![10, 4],
                        &wrong,
                    )
                    .unwrap(),
                )
            } else {
                (name, view)
            }
        })
        .collect();
    let bad = safetensors::serialize(tensors, None).unwrap();
    let err = Checkpoint::from_bytes(&bad, "bad.safetensors")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.safetensors")
            && err.contains("classifier.3.weight")
            && err.contains("[10, 4]"),
        "{err}"
    );
    let err = Checkpoint::from_bytes(b"not a checkpoint at all", "garbage.bin")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("garbage.bin") && err.contains("safetensors"),
        "{err}"
    );
    let err = checkpoint::load(std::path::Path::new("/nonexistent/ckpt.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/ckpt.safetensors"), "{err}");
}

#[test]
fn resuming_continues_the_same_trajectory() {
    let ctx = ctx();
    let run = |trainer: &mut Trainer, n: usize| -> Vec<u64> {
        (0..n)
            .map(|_| {
                pollster::block_on(trainer.step())
                    .unwrap()
                    .metrics
                    .unwrap()
                    .0
                    .to_bits()
            })
            .collect()
    };
    let mut straight = Trainer::new(
        Architecture::Vgg16(tiny()).build(&ctx, 3).unwrap(),
        cifar20(),
        settings(true, true),
        Progress::default(),
    )
    .unwrap();
    let all = run(&mut straight, 7);

    let mut first = Trainer::new(
        Architecture::Vgg16(tiny()).build(&ctx, 3).unwrap(),
        cifar20(),
        settings(true, true),
        Progress::default(),
    )
    .unwrap();
    let head = run(&mut first, 4);
    let progress = first.progress();
    let bytes = Checkpoint::from_model_blocking(first.model(), true, HashMap::new())
        .unwrap()
        .to_bytes()
        .unwrap();
    drop(first);
    let model = Checkpoint::from_bytes(&bytes, "resume")
        .unwrap()
        .build_model(&ctx, ConvMode::Fused)
        .unwrap();
    let mut second = Trainer::new(model, cifar20(), settings(true, true), progress).unwrap();
    let tail = run(&mut second, 3);
    assert_eq!(
        [head, tail].concat(),
        all,
        "losses of the resumed run (bit patterns)"
    );
    let (a, b) = (
        straight.model().store().snapshot_blocking().unwrap(),
        second.model().store().snapshot_blocking().unwrap(),
    );
    for ((name, x), (_, y)) in a.params.iter().zip(&b.params) {
        assert_eq!(bits(x), bits(y), "{name}");
    }
}

/// A mixed-precision run keeps its loss scaler's state in the progress a checkpoint stores, and
/// a trainer built from that progress continues from it (not from GradScaler's defaults).
#[test]
fn a_mixed_run_resumes_with_its_loss_scale() {
    let ctx = ctx();
    if !has_f16(&ctx, "resuming a mixed-precision run") {
        return;
    }
    let mixed = TrainSettings {
        precision: hetconv::Precision::Mixed,
        ..settings(false, false)
    };
    let mut trainer = Trainer::new(
        Vgg16::new(&ctx, tiny(), 3).unwrap(),
        cifar20(),
        mixed.clone(),
        Progress::default(),
    )
    .unwrap();
    for _ in 0..3 {
        pollster::block_on(trainer.step()).unwrap();
    }
    let progress = pollster::block_on(trainer.checkpoint_progress()).unwrap();
    let state = progress.loss_scale.expect("a mixed run has a loss scale");
    assert_eq!(
        (state.scale, state.clean_steps, state.skipped),
        (65536.0, 3, 0)
    );
    // Through the checkpoint's JSON and back, with a state the defaults would not give.
    let saved = Progress {
        loss_scale: Some(hetconv::kernels::loss_scale::ScalerState {
            scale: 1024.0,
            clean_steps: 7,
            skipped: 2,
        }),
        ..progress
    };
    let json = serde_json::to_string(&saved).unwrap();
    let restored: Progress = serde_json::from_str(&json).unwrap();
    let resumed = Trainer::new(
        Vgg16::new(&ctx, tiny(), 3).unwrap(),
        cifar20(),
        mixed,
        restored,
    )
    .unwrap();
    assert_eq!(
        pollster::block_on(resumed.checkpoint_progress()).unwrap(),
        saved
    );
    // An f32 run has none, and old checkpoints without the field still load.
    let old: Progress = serde_json::from_str(r#"{"step": 4}"#).unwrap();
    assert_eq!(old.loss_scale, None);
}

/// From a PyTorch-style checkpoint, with no augmentation or shuffling, one step of the paper's
/// SGD (lr 0.1, momentum 0.9, weight decay 5e-4) on the first batch gives the weights the CPU
/// reference computes (reference VGG gradients + reference SGD, both checked against PyTorch).
#[test]
fn one_step_from_an_imported_checkpoint_matches_the_reference() {
    let ctx = ctx();
    let source = Vgg16::new(&ctx, tiny(), 11).unwrap();
    let imported =
        Checkpoint::from_bytes(&pytorch_file(&source, |_| {}), "init.safetensors").unwrap();
    let model = imported.build_model(&ctx, ConvMode::Fused).unwrap();
    let mut s = settings(false, false);
    s.lr = LrSchedule {
        base_lr: 0.1,
        schedule: Schedule::Constant,
        warmup_epochs: 0.0,
    };
    let data = cifar20();
    let mut trainer = Trainer::new(model, data.clone(), s, Progress::default()).unwrap();
    pollster::block_on(trainer.step()).unwrap();
    let after = trainer.model().store().snapshot_blocking().unwrap();

    let params: HashMap<String, Vec<f64>> = imported
        .tensors
        .iter()
        .map(|(k, v)| (k.clone(), to_f64(v)))
        .collect();
    let x: Vec<f64> = (0..4)
        .flat_map(|i| {
            data.image(i)
                .unwrap()
                .iter()
                .map(|&b| f64::from(b) / 255.0)
                .collect::<Vec<_>>()
        })
        .collect();
    let labels: Vec<usize> = data.labels[..4].iter().map(|&l| l as usize).collect();
    let (_, grads) = reference::vgg::loss_and_grads(&tiny(), &params, &x, 4, &labels);
    for (name, got) in &after.params {
        let mut w = params[name].clone();
        let mut buf = vec![0.0; w.len()];
        reference::optim::sgd_step(&mut w, &grads[name], &mut buf, 0.1, 0.9, 5e-4, false);
        let moved: Vec<f64> = w.iter().zip(&params[name]).map(|(a, b)| a - b).collect();
        assert_close(
            name,
            got,
            &w,
            Tolerance {
                rtol: 1e-4,
                atol: 1e-4,
            }
            .scaled(&moved),
        );
    }
}

/// A run whose learning rate is far too high: the trainer reports the non-finite loss as
/// `Diverged` (naming the step), and saving the diverged model is refused, leaving the good
/// checkpoint on disk as it was.
#[test]
fn a_diverged_run_is_an_error_and_never_overwrites_a_checkpoint() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let good = Checkpoint::from_model_blocking(&trained(&ctx, 1), true, HashMap::new()).unwrap();
    checkpoint::save(&path, &good).unwrap();
    let before = std::fs::read(&path).unwrap();

    let mut wild = settings(false, false);
    wild.lr = LrSchedule {
        base_lr: 1e12,
        schedule: Schedule::Constant,
        warmup_epochs: 0.0,
    };
    let model = Vgg16::new(&ctx, tiny(), 1).unwrap();
    let mut trainer = Trainer::new(model, cifar20(), wild, Progress::default()).unwrap();
    let error = (0..10)
        .find_map(|_| pollster::block_on(trainer.step()).err())
        .expect("the loss becomes non-finite within 10 steps");
    let message = error.to_string();
    assert!(
        matches!(error, hetconv::Error::Diverged { step, .. } if (1..=10).contains(&step)),
        "{message}"
    );
    assert!(message.contains("loss is"), "{message}");

    let diverged = Checkpoint::from_model_blocking(trainer.model(), true, HashMap::new()).unwrap();
    let (name, _, value) = diverged
        .first_non_finite()
        .expect("the weights are non-finite too");
    let message = checkpoint::save(&path, &diverged).unwrap_err().to_string();
    assert!(
        message.contains(&name) && message.contains(&value.to_string()),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the good checkpoint is kept"
    );
}

/// Rewrites `bytes` (a safetensors file) with tensor `name` replaced by `shape` and `values`.
fn with_tensor(bytes: &[u8], name: &str, shape: Vec<usize>, values: &[f32]) -> Vec<u8> {
    let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let metadata = header.metadata().clone();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .map(|(n, view)| {
            if n == name {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    &data,
                )
                .unwrap();
                (n, view)
            } else {
                (n, view)
            }
        })
        .collect();
    safetensors::serialize(tensors, metadata).unwrap()
}

/// A checkpoint is validated on load, naming the file and the tensor: non-finite values, a
/// negative BatchNorm variance, a tensor of another shape with the same number of values, and
/// 0-D or 1-D classifier weights in a PyTorch file are refused (they were accepted, or panicked).
#[test]
fn bad_tensor_values_and_shapes_are_refused_on_load() {
    let ctx = ctx();
    let model = trained(&ctx, 1);
    let own = Checkpoint::from_model_blocking(&model, true, HashMap::new())
        .unwrap()
        .to_bytes()
        .unwrap();
    let torch = pytorch_file(&model, |_| {});
    let values = |name: &str| Checkpoint::from_bytes(&own, "own").unwrap().tensors[name].clone();
    let w3 = values("features.0.weight");
    let shape3 = vec![4, 3, 3, 3];
    let mut cases: Vec<(&str, Vec<u8>, &[&str])> = Vec::new();
    for bad in [f32::NAN, f32::INFINITY] {
        let mut v = w3.clone();
        v[5] = bad;
        cases.push((
            "non-finite weight",
            with_tensor(&own, "features.0.weight", shape3.clone(), &v),
            &["features.0.weight", "value 5"],
        ));
    }
    let mut var = values("features.1.running_var");
    var[2] = -0.5;
    cases.push((
        "negative variance",
        with_tensor(&own, "features.1.running_var", vec![var.len()], &var),
        &["features.1.running_var", "never negative"],
    ));
    cases.push((
        "same count, other shape",
        with_tensor(&own, "features.0.weight", vec![9, 12], &w3),
        &["features.0.weight", "[9, 12]"],
    ));
    let fc2 = values("classifier.3.weight");
    cases.push((
        "1-D classifier",
        with_tensor(&torch, "classifier.3.weight", vec![fc2.len()], &fc2),
        &["classifier.3.weight", "[outputs, inputs]"],
    ));
    cases.push((
        "0-D classifier",
        with_tensor(&torch, "classifier.0.weight", vec![], &[1.0]),
        &["classifier.0.weight"],
    ));
    for (what, bytes, wanted) in cases {
        let err = Checkpoint::from_bytes(&bytes, "ckpt.safetensors")
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"))
            .to_string();
        assert!(err.contains("ckpt.safetensors"), "{what}: {err}");
        for w in wanted {
            assert!(err.contains(w), "{what}: {err}");
        }
    }
}

/// Evaluating a model on data of more classes than it has outputs is an error naming both,
/// not a panic.
#[test]
fn evaluating_on_data_of_other_classes_is_an_error() {
    let ctx = ctx();
    let mut config = tiny();
    config.classes = 5;
    let model = Vgg16::new(&ctx, config, 0).unwrap();
    let data = cifar20();
    let err = pollster::block_on(hetconv::train::evaluate(&model, &data, 10, None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("5 classes") && err.contains("10"), "{err}");
}

/// Evaluation accepts what training accepts, so an epoch's evaluation never refuses the data
/// the epoch trained on (it once refused them after a whole epoch of `--init` training): a set
/// with fewer classes than the model, and a grey set on a colour model (its plane repeated, as
/// the batcher documents). A set that is not valid is refused by name, not a panic.
#[test]
fn evaluation_accepts_what_training_accepts_and_refuses_invalid_sets() {
    let ctx = ctx();
    let model = Vgg16::new(&ctx, tiny(), 0).unwrap();
    let colour = cifar20();
    let plane = colour.height * colour.width;
    let Images::Bytes(bytes) = &colour.images else {
        unreachable!("CIFAR is decoded")
    };
    // The first 4 classes' images, each made grey (the mean of its planes).
    let (mut grey_bytes, mut labels) = (Vec::new(), Vec::new());
    for (image, &label) in bytes.chunks_exact(3 * plane).zip(&colour.labels) {
        if label < 4 {
            grey_bytes.extend(
                (0..plane).map(|k| {
                    ((0..3).map(|c| u32::from(image[c * plane + k])).sum::<u32>() / 3) as u8
                }),
            );
            labels.push(label);
        }
    }
    let grey = Dataset {
        name: "grey".into(),
        images: Images::Bytes(grey_bytes.clone()),
        labels: labels.clone(),
        channels: 1,
        class_names: colour.class_names[..4].to_vec(),
        ..colour.clone()
    };
    // The same images with the grey plane written three times.
    let repeated = Dataset {
        name: "repeated".into(),
        images: Images::Bytes(
            grey_bytes
                .chunks_exact(plane)
                .flat_map(|p| p.iter().chain(p).chain(p).copied().collect::<Vec<_>>())
                .collect(),
        ),
        channels: 3,
        ..grey.clone()
    };
    let report = pollster::block_on(hetconv::train::evaluate(&model, &grey, 3, None)).unwrap();
    assert_eq!(report.images, labels.len());
    assert!(labels.len() > 3 && labels.len() < 20, "{labels:?}");
    assert_eq!(
        report,
        pollster::block_on(hetconv::train::evaluate(&model, &repeated, 3, None)).unwrap()
    );
    let train = Trainer::new(
        model,
        grey.clone(),
        settings(false, false),
        Progress::default(),
    );
    let model = train.unwrap().into_model();

    let invalid = [
        (
            "a label beyond the classes",
            Dataset {
                labels: labels.iter().map(|&l| l + 4).collect(),
                ..grey.clone()
            },
            "is not below 4 classes",
        ),
        (
            "too few pixel bytes",
            Dataset {
                images: Images::Bytes(grey_bytes[1..].to_vec()),
                ..grey.clone()
            },
            "pixel bytes",
        ),
    ];
    for (what, data, wanted) in invalid {
        let err = pollster::block_on(hetconv::train::evaluate(&model, &data, 3, None))
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"))
            .to_string();
        assert!(
            err.contains("grey") && err.contains(wanted),
            "{what}: {err}"
        );
    }
}
