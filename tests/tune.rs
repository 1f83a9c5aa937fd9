//! The tuner on this adapter: timing in `full` mode, the cache file (round trip, a corrupt or
//! foreign file, a file that is not a cache kept, an entry that is not a candidate here), and
//! the same cache giving the same choices and bit-identical results.

mod common;

use std::path::Path;

use common::*;
use hetconv::kernels::conv::{self, ConvDims, ConvKind, ConvWeights};
use hetconv::reference::conv as cpu;
use hetconv::tune::{Source, TuneMode, Variant};
use hetconv::{Context, ContextOptions, Precision};

fn tuned_ctx(mode: TuneMode, cache: &Path) -> Context {
    tuned_ctx_in(mode, cache, Precision::F32)
}

fn tuned_ctx_in(mode: TuneMode, cache: &Path, precision: Precision) -> Context {
    pollster::block_on(Context::new(ContextOptions {
        tune: Some(mode),
        tune_cache: Some(cache.to_path_buf()),
        precision,
        ..Default::default()
    }))
    .expect("a GPU adapter")
}

/// One HetConv layer's forward pass (16 filters per part: the GEMM core's tiles are candidates).
const D: ConvDims = ConvDims {
    batch: 2,
    cin: 8,
    cout: 32,
    height: 6,
    width: 5,
};

fn inputs() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(5);
    let x = rng.vec(D.batch * D.cin * D.height * D.width);
    let w3 = rng.vec(D.cout * D.cin / 2 * 9);
    let mut w1 = rng.vec(D.cout * D.cin);
    for o in 0..D.cout {
        for c in cpu::own_block(&ConvKind::hetconv(2), &D, o) {
            w1[o * D.cin + c] = 0.0;
        }
    }
    (x, w3, w1)
}

fn forward(ctx: &Context) -> Vec<f32> {
    let (x, w3, w1) = inputs();
    let x = upload(ctx, &[D.batch, D.cin, D.height, D.width], &x);
    let w3 = upload(ctx, &[D.cout, D.cin / 2, 3, 3], &w3);
    let w1 = upload(ctx, &[D.cout, D.cin], &w1);
    let w = ConvWeights {
        w3: Some(&w3),
        w1: Some(&w1),
        bias: None,
    };
    conv::forward(&ConvKind::hetconv(2), &x, &w)
        .unwrap()
        .to_vec()
        .unwrap()
}

fn the_choice(ctx: &Context) -> (String, hetconv::tune::Choice) {
    let choices = ctx.kernel_choices();
    assert_eq!(choices.len(), 1, "{choices:?}");
    choices.into_iter().next().unwrap()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn full_tuning_stores_the_winner_and_the_same_cache_gives_the_same_choice_and_bits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("tune.json");
    let first = tuned_ctx(TuneMode::Full, &path);
    let y = forward(&first);
    let (x, w3, w1) = inputs();
    let want = cpu::forward(
        &ConvKind::hetconv(2),
        &D,
        &to_f64(&x),
        Some(&to_f64(&w3)),
        Some(&to_f64(&w1)),
        None,
    );
    assert_close("tuned forward", &y, &want, F32_KERNEL);
    let (key, choice) = the_choice(&first);
    assert_eq!(choice.source, Source::Tuned);
    assert!(choice.ms.is_some_and(|ms| ms > 0.0), "{choice:?}");
    let stats = first.tune_stats();
    assert_eq!(stats.keys_timed, 1);
    assert!(stats.candidate_runs >= 4, "{stats:?}");
    // Every tile computed what the direct kernels compute on the tuned inputs.
    assert_eq!(stats.candidates_failed, 0, "{stats:?}");
    assert!(stats.candidates_checked >= 2, "{stats:?}");
    // The file holds the key, the winner and the adapter it was timed on.
    let file = read_json(&path);
    assert_eq!(file["format"], "hetconv-tune-1");
    assert_eq!(
        file["identity"]["adapter"],
        first.adapter_info().name.as_str()
    );
    assert_eq!(
        file["entries"][&key]["variant"],
        choice.variant.to_string().as_str()
    );

    for mode in [TuneMode::Cached, TuneMode::Full] {
        let again = tuned_ctx(mode, &path);
        let y_again = forward(&again);
        let (key_again, cached) = the_choice(&again);
        assert_eq!(key_again, key);
        assert_eq!(cached.variant, choice.variant, "{mode}");
        assert_eq!(cached.source, Source::Cached, "{mode}");
        assert_eq!(again.tune_stats().keys_timed, 0, "{mode}: nothing timed");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y_again), bits(&y), "{mode}: same variant, same bits");
    }
}

/// A file that is not a tune cache is ignored, and kept: the tuner still times, but a file named
/// by mistake (a checkpoint, notes) is never overwritten. A tune cache of another adapter is
/// ignored here and replaced by this adapter's.
#[test]
fn a_corrupt_or_foreign_cache_is_ignored_and_only_a_cache_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.json");
    std::fs::write(&path, "{ not json").unwrap();
    let cached = tuned_ctx(TuneMode::Cached, &path);
    forward(&cached);
    assert_eq!(the_choice(&cached).1.source, Source::Heuristic);
    // Full mode times the key, and the file stays as it was.
    let full = tuned_ctx(TuneMode::Full, &path);
    forward(&full);
    assert_eq!(the_choice(&full).1.source, Source::Tuned);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");
    // JSON of another kind is kept too.
    std::fs::write(&path, r#"{"format": "something else"}"#).unwrap();
    forward(&tuned_ctx(TuneMode::Full, &path));
    assert_eq!(read_json(&path)["format"], "something else");

    // A cache written for another adapter is not used here, and replaced by a full run.
    let path = dir.path().join("tune.json");
    forward(&tuned_ctx(TuneMode::Full, &path));
    let mut file = read_json(&path);
    assert_eq!(file["format"], "hetconv-tune-1");
    file["identity"]["adapter"] = "Some Other GPU".into();
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    let foreign = tuned_ctx(TuneMode::Cached, &path);
    forward(&foreign);
    assert_eq!(the_choice(&foreign).1.source, Source::Heuristic);
    let full = tuned_ctx(TuneMode::Full, &path);
    forward(&full);
    assert_eq!(the_choice(&full).1.source, Source::Tuned);
    assert_eq!(
        read_json(&path)["identity"]["adapter"],
        full.adapter_info().name.as_str()
    );
}

#[test]
fn a_cached_variant_that_is_not_a_candidate_here_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tune.json");
    let full = tuned_ctx(TuneMode::Full, &path);
    forward(&full);
    let (key, _) = the_choice(&full);
    // 128x128/8x8/k16 needs more workgroup memory than the WebGPU default limits allow.
    let mut file = read_json(&path);
    file["entries"][&key]["variant"] = "gemm:128x128/8x8/k16".into();
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    let cached = tuned_ctx(TuneMode::Cached, &path);
    forward(&cached);
    let (_, choice) = the_choice(&cached);
    assert_eq!(choice.source, Source::Heuristic);
    assert_ne!(choice.variant.to_string(), "gemm:128x128/8x8/k16");
    // A variant name that does not parse is ignored the same way.
    file["entries"][&key]["variant"] = "gemm:64x64".into();
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    let cached = tuned_ctx(TuneMode::Cached, &path);
    forward(&cached);
    assert_eq!(the_choice(&cached).1.source, Source::Heuristic);
}

#[test]
fn off_mode_takes_the_heuristic_and_leaves_the_cache_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tune.json");
    let off = tuned_ctx(TuneMode::Off, &path);
    forward(&off);
    let (_, choice) = the_choice(&off);
    assert_eq!(choice.source, Source::Heuristic);
    if off.adapter_info().device_type == hetconv::wgpu::DeviceType::Cpu {
        assert_eq!(
            choice.variant,
            Variant::Direct,
            "software adapters stay direct"
        );
    }
    assert!(!path.exists(), "off mode writes no cache");
}

/// Choices are shared by a device's handles per tuning mode and conv algorithm: a handle in
/// `off` mode keeps the heuristic's choice after another handle of the device tuned the key
/// (and the reverse: the tuning handle times although `off` chose first); a handle in `cached`
/// mode that took the heuristic before the key was tuned takes the cache's new entry; a handle
/// forced onto the direct kernels leaves the tuned choice as it was.
#[test]
fn handles_in_other_tuning_modes_keep_their_own_choices() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tune.json");
    let off = tuned_ctx(TuneMode::Off, &path);
    let cached = off.with_own_settings();
    cached.set_tune_mode(TuneMode::Cached);
    let full = off.with_own_settings();
    full.set_tune_mode(TuneMode::Full);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let y_off = forward(&off);
    assert_eq!(the_choice(&off).1.source, Source::Heuristic);
    forward(&cached);
    assert_eq!(the_choice(&cached).1.source, Source::Heuristic);
    forward(&full);
    let (key, tuned) = the_choice(&full);
    assert_eq!(
        tuned.source,
        Source::Tuned,
        "off's choice does not stop the tuning"
    );
    assert_eq!(full.tune_stats().keys_timed, 1);
    assert_eq!(bits(&forward(&off)), bits(&y_off));
    let (off_key, after) = the_choice(&off);
    assert_eq!(off_key, key);
    assert_eq!(
        after.source,
        Source::Heuristic,
        "off never takes a tuned choice"
    );
    forward(&cached);
    let (_, now) = the_choice(&cached);
    assert_eq!(now.source, Source::Cached);
    assert_eq!(now.variant, tuned.variant);
    let direct = full.with_own_settings();
    direct.set_conv_algorithm(hetconv::ConvAlgorithm::Direct);
    forward(&direct);
    let (_, forced) = the_choice(&direct);
    assert_eq!(
        (forced.source, forced.variant),
        (Source::Forced, Variant::Direct)
    );
    forward(&full);
    let (_, still) = the_choice(&full);
    assert_eq!(still.source, Source::Tuned);
    assert_eq!(still.candidates, tuned.candidates);
    assert_eq!(full.tune_stats().keys_timed, 1, "timed once");
}

/// A context whose direct kernels slice their reductions otherwise than the adapter's default
/// (`ContextOptions::conv_min_invocations`) has keys of its own: a time taken with one slicing
/// never stands for the other.
#[test]
fn another_reduction_slicing_has_keys_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tune.json");
    let ctx = tuned_ctx(TuneMode::Off, &path);
    forward(&ctx);
    let (key, _) = the_choice(&ctx);
    assert!(!key.contains("mi="), "{key}");
    let sliced = pollster::block_on(Context::new(ContextOptions {
        tune: Some(TuneMode::Off),
        tune_cache: Some(path.clone()),
        conv_min_invocations: Some(12_345),
        ..Default::default()
    }))
    .expect("a GPU adapter");
    forward(&sliced);
    let (sliced_key, _) = the_choice(&sliced);
    assert_eq!(sliced_key, key.replace(" f32", " mi=12345 f32"));
}

/// Full tuning in mixed precision checks each candidate's outputs against the f16 FMA core's on
/// the tuned inputs, and none fails here; the winner is within the f16 bound of the CPU
/// reference. On Mesa 26 lavapipe (test.sh, HETCONV_REQUIRE_COOP) the cooperative-matrix tiles
/// are among the checked candidates.
#[test]
fn full_tuning_in_mixed_precision_checks_every_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = tuned_ctx_in(
        TuneMode::Full,
        &dir.path().join("tune.json"),
        Precision::Mixed,
    );
    if !has_f16(&ctx, "mixed-precision tuning") {
        return;
    }
    let y = forward(&ctx);
    let (x, w3, w1) = inputs();
    let reference = |x: &[f32], w3: &[f32], w1: &[f32]| {
        cpu::forward(
            &ConvKind::hetconv(2),
            &D,
            &to_f64(x),
            Some(&to_f64(w3)),
            Some(&to_f64(w1)),
            None,
        )
    };
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    // Each output sums its own block's 9 x 4 taps and all 8 channels' 1x1 products.
    let terms = 9 * D.cin / 2 + D.cin;
    assert_within_f16_bound(
        "mixed tuned forward",
        &y,
        &reference(&x, &w3, &w1),
        &reference(&abs(&x), &abs(&w3), &abs(&w1)),
        terms,
    );
    let stats = ctx.tune_stats();
    assert_eq!(stats.candidates_failed, 0, "{stats:?}");
    assert!(stats.candidates_checked >= 1, "{stats:?}");
    if std::env::var_os("HETCONV_REQUIRE_COOP").is_some() {
        let (_, choice) = the_choice(&ctx);
        assert!(
            choice
                .candidates
                .iter()
                .any(|(v, _)| v.to_string().starts_with("gemm:coop")),
            "no cooperative-matrix tile among {:?}",
            choice.candidates
        );
    }
}

/// The 20 real CIFAR-10 images of the fixtures.
fn cifar20() -> hetconv::data::Dataset {
    let bytes = std::fs::read(fixtures().join("cifar10_test_first20.bin")).unwrap();
    hetconv::data::cifar::parse(&bytes, "cifar20").unwrap()
}

/// A trainer's settings for one SGD step of batch 4 (no augmentation, no shuffling).
fn one_step_settings() -> hetconv::train::TrainSettings {
    hetconv::train::TrainSettings {
        epochs: 1,
        max_steps: Some(1),
        batch_size: 4,
        lr: hetconv::optim::LrSchedule {
            base_lr: 0.1,
            schedule: hetconv::optim::Schedule::Constant,
            warmup_epochs: 0.0,
        },
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
        augment: None,
        shuffle: false,
        seed: 5,
        report_every: 1,
        precision: Precision::F32,
    }
}

/// A trainer's first step in `full` mode builds the pipelines of every key's candidates ahead,
/// together, from a throwaway network's step: timing the keys then builds none of its own, and
/// the step trains as it does without tuning (the same loss as with the direct kernels).
#[test]
fn a_trainers_first_step_builds_every_candidates_pipelines_ahead() {
    use hetconv::nn::{ConvMode, Vgg16};
    use hetconv::train::{Progress, Trainer};
    let dir = tempfile::tempdir().unwrap();
    let settings = one_step_settings();
    let first_loss = |ctx: &Context| {
        let model = Vgg16::new(ctx, tiny_vgg(2, ConvMode::Fused), 1).unwrap();
        let mut trainer =
            Trainer::new(model, cifar20(), settings.clone(), Progress::default()).unwrap();
        let report = pollster::block_on(trainer.step()).unwrap();
        report.metrics.expect("the loss of the first step").0
    };
    let tuned = tuned_ctx(TuneMode::Full, &dir.path().join("tune.json"));
    let loss = first_loss(&tuned);
    let stats = tuned.tune_stats();
    assert!(stats.keys_timed > 0, "{stats:?}");
    assert_eq!(stats.pipelines_built, 0, "{stats:?}");
    let direct = tuned_ctx(TuneMode::Off, &dir.path().join("unused.json"));
    direct.set_conv_algorithm(hetconv::ConvAlgorithm::Direct);
    let want = first_loss(&direct);
    assert!((loss - want).abs() <= 1e-5 * want.abs(), "{loss} vs {want}");
}

/// The throwaway step that builds a trainer's pipelines ahead gives its buffers back before the
/// real first step, which takes them again: that step creates no more buffers than the
/// throwaway network's parameters plus one step's own (a plain step on another context,
/// counted), where buffers still parked when the real step starts would be created twice.
#[test]
fn a_trainers_first_step_reuses_the_throwaway_steps_buffers() {
    use hetconv::Tensor;
    use hetconv::kernels::sgd::SgdStep;
    use hetconv::model::Model;
    use hetconv::nn::{ConvMode, Vgg16};
    use hetconv::train::{Progress, Trainer};
    let dir = tempfile::tempdir().unwrap();
    let data = cifar20();
    let settings = one_step_settings();
    let batch = settings.batch_size;
    let config = tiny_vgg(2, ConvMode::Fused);

    // A plain step: the buffers of the network, then of its first step.
    let plain = tuned_ctx(TuneMode::Off, &dir.path().join("plain.json"));
    let start = plain.buffers_created();
    let mut model = Vgg16::new(&plain, config.clone(), 1).unwrap();
    let network = plain.buffers_created() - start;
    let pixels = Rng::new(7).vec(batch * 3 * 32 * 32);
    let x = Tensor::from_slice(&plain, &[batch, 3, 32, 32], &pixels).unwrap();
    let labels = Tensor::from_slice(&plain, &[batch], &[1.0, 3.0, 0.0, 9.0]).unwrap();
    let sgd = SgdStep {
        lr: settings.lr.base_lr as f32,
        momentum: settings.momentum as f32,
        weight_decay: settings.weight_decay as f32,
        nesterov: settings.nesterov,
    };
    let before_step = plain.buffers_created();
    model.train_step(&x, &labels, &sgd).unwrap();
    plain.synchronize().unwrap();
    let step = plain.buffers_created() - before_step;

    // The trainer's first step, its throwaway included.
    let ctx = tuned_ctx(TuneMode::Off, &dir.path().join("trainer.json"));
    let model = Vgg16::new(&ctx, config, 1).unwrap();
    let mut trainer = Trainer::new(model, data, settings, Progress::default()).unwrap();
    let before_first = ctx.buffers_created();
    pollster::block_on(trainer.step()).unwrap();
    ctx.synchronize().unwrap();
    let first = ctx.buffers_created() - before_first;
    let inputs = 2;
    println!(
        "network {network} buffers, a plain step {step} (+ {inputs} inputs), the trainer's first step {first}"
    );
    assert!(
        step > network / 2,
        "a step's buffers must dominate for this test to tell: {step} vs {network}"
    );
    // Slack of a tenth of a step for buffers a trainer may add; twice a step's would fail it.
    assert!(
        first <= network + step + inputs + step / 10,
        "the first step created {first} buffers: over the throwaway network's {network} + a step's {step} + {inputs} inputs"
    );
}
