//! The `hetconv` command line end to end on the embedded Fashion-MNIST subset: train (learns,
//! writes metrics, chart and checkpoint), eval, predict (CSV, JSON, image files), export, init,
//! and Ctrl-C followed by --resume.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Whether the default adapter has f16 (mixed precision); says so when it has not.
fn adapter_has_f16(what: &str) -> bool {
    common::has_f16(&common::ctx(), what)
}

fn hetconv(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_hetconv"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hetconv {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SMALL: &[&str] = &[
    "--width-mult",
    "0.125",
    "--part",
    "2",
    "--batch-size",
    "32",
    "--lr",
    "0.05",
    "--schedule",
    "constant",
    "--eval-limit",
    "300",
];

fn train(out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["train", "--out", out.to_str().unwrap()];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    stdout(&hetconv(&args))
}

fn final_accuracy(text: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with("final test accuracy"))
        .unwrap_or_else(|| panic!("no final accuracy in:\n{text}"));
    line.split_whitespace()
        .nth(3)
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap()
}

#[test]
fn train_learns_and_the_outputs_serve_eval_predict_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let text = train(
        &run,
        &["--epochs", "1", "--max-steps", "60", "--report-every", "5"],
    );
    let accuracy = final_accuracy(&text);
    assert!(
        accuracy > 30.0,
        "60 steps on real Fashion-MNIST should beat chance (10%) by far, got {accuracy}%\n{text}"
    );
    for file in [
        "checkpoint.safetensors",
        "curves.png",
        "steps.csv",
        "epochs.jsonl",
    ] {
        assert!(run.join(file).exists(), "{file} missing");
    }
    let steps = std::fs::read_to_string(run.join("steps.csv")).unwrap();
    assert_eq!(steps.lines().next(), Some("step,epoch,lr,loss,accuracy"));
    assert_eq!(steps.lines().count(), 1 + 12);
    let ckpt = run.join("checkpoint.safetensors");
    let ckpt = ckpt.to_str().unwrap();

    // eval on the same 300 test images reproduces the accuracy the trainer reported.
    let eval = stdout(&hetconv(&["eval", "--weights", ckpt, "--limit", "300"]));
    assert!(eval.contains(&format!("accuracy {accuracy:.2}%")), "{eval}");
    assert!(
        eval.contains("Ankle boot"),
        "confusion matrix rows are named: {eval}"
    );

    // predict: JSON with probabilities; CSV on stdout.
    let json_path = dir.path().join("p.json");
    hetconv(&[
        "predict",
        "--weights",
        ckpt,
        "--limit",
        "5",
        "--output",
        json_path.to_str().unwrap(),
    ]);
    let predictions: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let predictions = predictions.as_array().unwrap();
    assert_eq!(predictions.len(), 5);
    for p in predictions {
        let probs: Vec<f64> = p["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        let best = probs
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > probs[b] { i } else { b });
        assert_eq!(p["predicted"].as_u64().unwrap() as usize, best);
    }
    let csv = stdout(&hetconv(&["predict", "--weights", ckpt, "--limit", "3"]));
    assert!(
        csv.starts_with("image,predicted,class,label,logit_0"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4);
    // Over several of predict's batches of 100: every image once, in order, with its label.
    let csv = stdout(&hetconv(&["predict", "--weights", ckpt, "--limit", "205"]));
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 205);
    for (i, row) in rows.iter().enumerate() {
        let fields: Vec<&str> = row.split(',').collect();
        assert!(fields[0].ends_with(&format!("#{i}")), "row {i}: {row}");
        assert!(
            fields[3].parse::<usize>().is_ok_and(|l| l < 10),
            "row {i}: {row}"
        );
    }

    // An image file is resized to the model's input and classified.
    let png = dir.path().join("shoe.png");
    image::GrayImage::from_fn(40, 30, |x, y| image::Luma([((x * 5 + y * 3) % 256) as u8]))
        .save(&png)
        .unwrap();
    let one = stdout(&hetconv(&[
        "predict",
        "--weights",
        ckpt,
        png.to_str().unwrap(),
    ]));
    assert!(
        one.lines()
            .nth(1)
            .unwrap()
            .starts_with(png.to_str().unwrap()),
        "{one}"
    );

    // export writes a plain state_dict; training can start from it.
    let exported = dir.path().join("model.safetensors");
    hetconv(&[
        "export",
        "--weights",
        ckpt,
        "--output",
        exported.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&exported).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names = file.names();
    assert!(names.contains(&"features.3.pwc.weight"));
    assert!(names.contains(&"features.1.num_batches_tracked"));
    assert!(
        !names.iter().any(|n| n.starts_with("optimizer.")),
        "no optimizer state in an export"
    );
    // An f16 export: half the bytes, f16 tensors, and it evaluates to the f32 export's accuracy
    // within 1 image in 100 (each weight rounded to f16: relative error 2^-11).
    let half_export = dir.path().join("model-f16.safetensors");
    let out = stdout(&hetconv(&[
        "export",
        "--weights",
        ckpt,
        "--output",
        half_export.to_str().unwrap(),
        "--dtype",
        "f16",
    ]));
    assert!(out.contains("F16"), "{out}");
    let half_bytes = std::fs::read(&half_export).unwrap();
    assert!(
        half_bytes.len() * 10 < bytes.len() * 6,
        "{} vs {}",
        half_bytes.len(),
        bytes.len()
    );
    let half_file = safetensors::SafeTensors::deserialize(&half_bytes).unwrap();
    assert_eq!(
        half_file.tensor("features.3.pwc.weight").unwrap().dtype(),
        safetensors::Dtype::F16
    );
    let (full, halved) = (
        eval_accuracy(&[], &exported, "100"),
        eval_accuracy(&[], &half_export, "100"),
    );
    assert!(
        (full - halved).abs() <= 1.0,
        "f32 export {full}% vs f16 export {halved}%"
    );
    assert!(
        !Command::new(env!("CARGO_BIN_EXE_hetconv"))
            .args([
                "export",
                "--weights",
                ckpt,
                "--output",
                "x.safetensors",
                "--dtype",
                "f8"
            ])
            .output()
            .unwrap()
            .status
            .success()
    );

    let text = train(
        &dir.path().join("again"),
        &[
            "--init",
            exported.to_str().unwrap(),
            "--epochs",
            "1",
            "--max-steps",
            "3",
        ],
    );
    assert!(final_accuracy(&text) > 20.0, "{text}");
}

/// Starts a training run into `run` and sends it `signal` after a few steps; returns its output.
fn interrupted_run(run: &std::path::Path, signal: &str) -> Output {
    let mut args = vec![
        "train",
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "1",
        "--max-steps",
        "150",
        "--report-every",
        "1",
    ];
    args.extend_from_slice(SMALL);
    let child = Command::new(env!("CARGO_BIN_EXE_hetconv"))
        .args(&args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for a few steps, then interrupt.
    let steps = run.join("steps.csv");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(&steps).map_or(0, |s| s.lines().count()) < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "training did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait_with_output().unwrap()
}

/// Ctrl-C and SIGTERM both save a checkpoint and exit with code 130; resuming finishes the run.
#[test]
fn ctrl_c_saves_a_checkpoint_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let terminated = dir.path().join("terminated");
    let out = interrupted_run(&terminated, "-TERM");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted at step"), "{err}");
    assert!(terminated.join("checkpoint.safetensors").exists());

    let run = dir.path().join("run");
    let out = interrupted_run(&run, "-INT");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted at step"), "{err}");
    let ckpt = run.join("checkpoint.safetensors");
    assert!(ckpt.exists());
    let resumed = stdout(&hetconv(&[
        "train",
        "--resume",
        ckpt.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--eval-limit",
        "300",
    ]));
    assert!(resumed.contains("resuming"), "{resumed}");
    assert!(final_accuracy(&resumed) > 20.0, "{resumed}");
    let last = std::fs::read_to_string(run.join("steps.csv"))
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(
        last.starts_with("150,"),
        "the resumed run ends at step 150: {last}"
    );
}

/// `hetconv selfcheck` runs every kernel family (direct kernels and every tile shape of the GEMM
/// core that fits the device, whole and with a split reduction) against the CPU
/// reference on this adapter and succeeds only if each matches.
#[test]
fn selfcheck_covers_every_kernel_family_and_passes() {
    let text = stdout(&hetconv(&["selfcheck"]));
    for family in [
        "gemm",
        "linear",
        "standard 3x3 conv input gradient",
        "grouped 3x3 conv G=2 3x3 weight gradient",
        "pointwise conv 1x1 weight gradient",
        "HetConv P=4 (fused) 1x1 weight gradient",
        "HetConv P=2 (gemm 64x64/4x4/k16) forward",
        "HetConv P=2 (gemm 8x64/2x4/k16) 1x1 weight gradient",
        "gemm 13x300 @ 300x9 (splitk 8x64/2x4/k16)",
        "HetConv P=2 64 channels (splitk 64x64/4x4/k16) input gradient",
        "max-pool 2x2 backward",
        "relu backward",
        "batch norm input gradient",
        "softmax cross-entropy gradient",
        "SGD momentum, then Nesterov",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    if adapter_has_f16("selfcheck's mixed kernels") {
        for family in [
            "HetConv P=2 (gemm f16:64x64/4x4/k16) input gradient",
            "gemm 13x7 @ 7x9 (gemm f16:8x64/2x4/k16)",
            "HetConv P=2 64 channels (splitk f16:64x64/4x4/k16) (f16) forward",
        ] {
            assert!(text.contains(family), "{family} missing:\n{text}");
        }
    }
    assert!(!text.contains("MISMATCH"), "{text}");
    let checks = text.lines().filter(|l| l.ends_with(" ok")).count();
    assert!(
        text.contains(&format!("all {checks} checks passed")),
        "{text}"
    );
}

/// `hetconv bench` on a tiny model: the Markdown table and its JSON copy, one row per kernel
/// form with positive times, one submission per step and no bind group built per step after
/// warm-up, a per-kernel profile, and each row against the direct kernels in pairs of steps.
#[test]
fn bench_writes_the_step_table_and_its_json() {
    let mixed = adapter_has_f16("bench's mixed-precision rows");
    let precisions = if mixed { "f32,mixed" } else { "f32" };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("steps");
    let text = stdout(&hetconv(&[
        "bench",
        "--batch",
        "2",
        "--parts",
        "4",
        "--width-mult",
        "0.0625",
        "--warmup",
        "1",
        "--steps",
        "2",
        "--unfused",
        "--profile",
        "--versus-direct",
        "--precisions",
        precisions,
        "--out",
        out.to_str().unwrap(),
    ]));
    let md = std::fs::read_to_string(out.with_extension("md")).unwrap();
    assert!(md.contains("| batch | P | precision |"), "{md}");
    assert!(
        text.contains("1-image inference ms") && md.contains("| kernel |"),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    let rows = json["rows"].as_array().unwrap();
    let modes: Vec<&str> = rows.iter().map(|r| r["mode"].as_str().unwrap()).collect();
    let per_precision = ["Fused", "Unfused"];
    assert_eq!(modes, per_precision.repeat(if mixed { 2 } else { 1 }));
    let precisions: Vec<&str> = rows
        .iter()
        .map(|r| r["precision"].as_str().unwrap())
        .collect();
    let want: &[&str] = if mixed {
        &["f32", "f32", "mixed", "mixed"]
    } else {
        &["f32", "f32"]
    };
    assert_eq!(precisions, want);
    for row in rows {
        for key in ["step_ms", "forward_ms", "one_image_ms", "images_per_second"] {
            assert!(row[key].as_f64().unwrap() > 0.0, "{key}: {row}");
        }
        assert_eq!(row["submissions_per_step"], 1, "{row}");
        assert_eq!(row["bind_groups_built_per_step"], 0, "{row}");
        assert!(row["dispatches_per_step"].as_u64().unwrap() > 50, "{row}");
        let versus = &row["versus_direct"];
        assert_eq!(versus["pairs"], 2, "{row}");
        for key in ["chosen_ms", "direct_ms", "ratio", "ratio_q1", "ratio_q3"] {
            assert!(versus[key].as_f64().unwrap() > 0.0, "{key}: {row}");
        }
    }
    assert!(md.contains("against the direct kernels alone"), "{md}");
    assert!(
        rows[0]["profile"].as_array().is_some_and(|p| !p.is_empty()),
        "{}",
        rows[0]
    );
}

/// `hetconv tune` on a tiny model builds every candidate's pipelines first, times the
/// candidates of every pass into the cache it is given and prints the table; `bench` with that cache then runs the cached choices, and a bad
/// `--conv` or `--tune` value is refused by name.
#[test]
fn tune_fills_the_cache_that_bench_then_uses() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.json");
    let cache_arg = cache.to_str().unwrap();
    let out = dir.path().join("tune");
    let text = stdout(&hetconv(&[
        "--tune-cache",
        cache_arg,
        "tune",
        "--batch",
        "2",
        "--parts",
        "2",
        "--width-mult",
        "0.0625",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        text.contains("| conv_forward g2 k3 s1 pw=Masked b2 "),
        "{text}"
    );
    assert!(text.contains("| Tuned |"), "{text}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    let entries = file["entries"].as_object().unwrap();
    assert!(entries.len() >= 20, "{} cache entries", entries.len());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    assert!(report["keys_timed"].as_u64().unwrap() >= 20, "{report}");
    // Every key's candidates' pipelines were found and built before the first was timed.
    assert!(
        report["pipelines_built_first"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["pipelines_built_while_timing"], 0, "{report}");

    let bench_out = dir.path().join("steps");
    let text = stdout(&hetconv(&[
        "--tune-cache",
        cache_arg,
        "--tune",
        "cached",
        "bench",
        "--batch",
        "2",
        "--parts",
        "2",
        "--width-mult",
        "0.0625",
        "--warmup",
        "1",
        "--steps",
        "1",
        "--out",
        bench_out.to_str().unwrap(),
    ]));
    assert!(text.contains("| Cached |"), "{text}");
    assert!(text.contains("0 keys timed"), "{text}");

    for bad in [["--conv", "gemm:64x64"], ["--tune", "always"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_hetconv"))
            .args(bad)
            .arg("flops")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(bad[1]), "{err}");
    }
}

/// Bad numbers on the command line are refused when they are parsed, before any work, with a
/// message naming the flag and the value; negative numbers are values, not flags.
#[test]
fn bad_flag_values_are_refused_by_name_before_any_work() {
    let cases: &[&[&str]] = &[
        &["train", "--lr", "-0.5"],
        &["train", "--lr=-0.5"],
        &["train", "--lr", "NaN"],
        &["train", "--width-mult", "inf"],
        &["train", "--width-mult", "1e30"],
        &["train", "--width-mult", "0"],
        &["train", "--width-mult", "-1"],
        &["train", "--width-mult", "NaN"],
        &["train", "--warmup-epochs", "NaN"],
        &["train", "--momentum", "1.5"],
        &["train", "--weight-decay", "-1"],
        &["train", "--gamma", "0"],
        &["train", "--epochs", "0"],
        &["train", "--max-steps", "0"],
        &["train", "--batch-size", "0"],
        &["train", "--part", "0"],
        &["train", "--checkpoint-every", "0"],
        &["eval", "--weights", "x.safetensors", "--limit", "0"],
        &["bench", "--parts", "0"],
        &["bench", "--batch", "16,0"],
        &["tune", "--parts", "4,0"],
        &["flops", "--width-mult", "0"],
        &["--precision", "f8", "info"],
        &["train", "--precision", "half"],
    ];
    for args in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_hetconv"))
            .args(*args)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // The flag and its value (of a list, the refused item: the last here): `--lr -0.5`
        // must be refused as a value, not read as a flag with the value missing.
        let at = args.iter().rposition(|a| a.starts_with("--")).unwrap();
        let (flag, value) = match args[at].split_once('=') {
            Some((flag, value)) => (flag, value),
            None => (args[at], args[at + 1]),
        };
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(flag)
                && err.contains(&format!("'{}'", value.rsplit(',').next().unwrap()))
                && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

/// The accuracy `hetconv [global] eval --weights W --limit N` prints, in percent.
fn eval_accuracy(global: &[&str], weights: &Path, limit: &str) -> f64 {
    let mut args = global.to_vec();
    args.extend([
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--limit",
        limit,
    ]);
    let out = stdout(&hetconv(&args));
    let line = out
        .lines()
        .find(|l| l.contains("accuracy"))
        .unwrap_or_else(|| panic!("no accuracy in:\n{out}"));
    line.split_whitespace()
        .last()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap()
}

/// Mixed precision from the command line: the run says so, learns, and its checkpoint
/// evaluates in either precision to nearly the same accuracy.
#[test]
fn mixed_precision_trains_and_its_checkpoint_evaluates_in_both_precisions() {
    if !adapter_has_f16("mixed-precision training from the command line") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = stdout(&hetconv(&[
        "--precision",
        "mixed",
        "--tune",
        "off",
        "train",
        "--out",
        dir.path().to_str().unwrap(),
        "--width-mult",
        "0.125",
        "--part",
        "2",
        "--batch-size",
        "16",
        "--max-steps",
        "12",
        "--train-limit",
        "192",
        "--eval-limit",
        "64",
        "--lr",
        "0.05",
        "--schedule",
        "constant",
    ]));
    assert!(text.contains("precision mixed"), "{text}");
    let weights = dir.path().join("checkpoint.safetensors");
    let accuracy = |precision: &str| {
        eval_accuracy(&["--precision", precision, "--tune", "off"], &weights, "64")
    };
    let (single, mixed) = (accuracy("f32"), accuracy("mixed"));
    // 64 images: one image is 1.6 points; f16 rounding may flip a borderline one or two.
    assert!(
        (single - mixed).abs() <= 3.2,
        "f32 {single}% vs mixed {mixed}%"
    );
}

/// A model too big for the device is refused by the limit it breaks, at once (its weights
/// are never built on the host: 8x the paper's widths is about 1.2 G parameters at P = 4).
#[test]
fn a_model_over_the_device_limits_is_refused_before_it_is_built() {
    let err = hetconv_fails(&[
        "--tune",
        "off",
        "train",
        "--width-mult",
        "8",
        "--out",
        "/tmp/hetconv-never",
    ]);
    assert!(
        err.contains("max_storage_buffer_binding_size") && err.contains("Vgg16::new"),
        "{err}"
    );
}

/// A `--data` that does not exist, or that is a file, is named as such.
#[test]
fn a_missing_or_file_data_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data_batch_1.bin");
    std::fs::write(&file, b"x").unwrap();
    let missing = dir.path().join("nowhere");
    for (path, says) in [(&missing, "No such file"), (&file, "is a file")] {
        let out = Command::new(env!("CARGO_BIN_EXE_hetconv"))
            .args([
                "train",
                "--max-steps",
                "1",
                "--data",
                path.to_str().unwrap(),
            ])
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains(path.to_str().unwrap()) && err.contains(says),
            "{err}"
        );
    }
}

/// Runs hetconv expecting failure; returns stderr.
fn hetconv_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hetconv"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "hetconv {args:?} succeeded");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Trains for a few seconds into `run`: a width-1/16 P = 2 VGG on 32 images, 4 steps an
/// epoch, the loss read back every step, 16 test images; `extra` flags after these.
fn tiny_train(run: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "--tune",
        "off",
        "train",
        "--width-mult",
        "0.0625",
        "--part",
        "2",
        "--batch-size",
        "8",
        "--train-limit",
        "32",
        "--eval-limit",
        "16",
        "--report-every",
        "1",
        "--out",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    stdout(&hetconv(&args))
}

/// A run resumed in the middle of an epoch reports that epoch's training means over the whole
/// epoch, as the uninterrupted run does (they were over the resumed steps only).
#[test]
fn a_mid_epoch_resume_keeps_the_epochs_means() {
    let dir = tempfile::tempdir().unwrap();
    let train = |run: &Path, extra: &[&str]| {
        let mut args = vec!["--epochs", "1", "--checkpoint-every", "1"];
        args.extend_from_slice(extra);
        tiny_train(run, &args);
    };
    let (whole, cut) = (dir.path().join("whole"), dir.path().join("cut"));
    train(&whole, &[]);
    train(&cut, &["--max-steps", "2"]);
    let ckpt = cut.join("checkpoint.safetensors");
    hetconv(&[
        "train",
        "--tune",
        "off",
        "--resume",
        ckpt.to_str().unwrap(),
        "--max-steps",
        "4",
    ]);
    let means = |run: &Path| -> (f64, f64, f64, f64) {
        let text = std::fs::read_to_string(run.join("epochs.jsonl")).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 1, "{text}");
        let f = |k: &str| rows[0][k].as_f64().unwrap();
        (
            f("train_loss"),
            f("train_accuracy"),
            f("test_loss"),
            f("test_accuracy"),
        )
    };
    assert_eq!(means(&cut), means(&whole));
}

/// A run stopped during an epoch's evaluation saved the epoch's checkpoint but not its row; the
/// resumed run evaluates that epoch first, so that its rows match an uninterrupted run's (the
/// time excepted, which is lost): at an epoch's end within the run and at the run's end. A row
/// that is there is kept, and a resume into another folder makes none up.
#[test]
fn an_epoch_whose_evaluation_was_cut_is_evaluated_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let train = |run: &Path, extra: &[&str]| {
        let mut args = vec!["--epochs", "2"];
        args.extend_from_slice(extra);
        tiny_train(run, &args)
    };
    let rows = |run: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(run.join("epochs.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // The evaluation's figures and where the row stands: all but the time.
    let figures = |row: &serde_json::Value| -> Vec<String> {
        [
            "epoch",
            "step",
            "train_loss",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
        ]
        .iter()
        .map(|k| row[*k].to_string())
        .collect()
    };
    let drop_last_row = |run: &Path| {
        let path = run.join("epochs.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.pop().unwrap();
        std::fs::write(
            &path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
    };
    let (whole, cut) = (dir.path().join("whole"), dir.path().join("cut"));
    train(&whole, &[]);
    let whole_rows = rows(&whole);
    assert_eq!(whole_rows.len(), 2);

    // Stopped at the end of epoch 1, as if during its evaluation.
    train(&cut, &["--max-steps", "4"]);
    drop_last_row(&cut);
    let ckpt = cut.join("checkpoint.safetensors");
    let ckpt_s = ckpt.to_str().unwrap();
    let resumed = train(&cut, &["--resume", ckpt_s, "--max-steps", "8"]);
    assert!(resumed.contains("evaluated on resume"), "{resumed}");
    let cut_rows = rows(&cut);
    assert_eq!(cut_rows.len(), 2, "{cut_rows:?}");
    for (cut_row, whole_row) in cut_rows.iter().zip(&whole_rows) {
        assert_eq!(figures(cut_row), figures(whole_row));
    }
    assert!(cut_rows[0]["seconds"].is_null(), "{cut_rows:?}");
    assert!(
        cut_rows[1]["seconds"].as_f64().unwrap() > 0.0,
        "{cut_rows:?}"
    );

    // Stopped during the last evaluation: the finished run gets its last row back.
    drop_last_row(&cut);
    let resumed = train(&cut, &["--resume", ckpt_s]);
    let cut_rows = rows(&cut);
    assert_eq!(cut_rows.len(), 2, "{cut_rows:?}");
    assert_eq!(figures(&cut_rows[1]), figures(&whole_rows[1]));
    assert_eq!(
        final_accuracy(&resumed),
        final_accuracy(&train(&dir.path().join("again"), &[]))
    );

    // A run that ends within an epoch, resumed as it is: its rows stay as they were (timed),
    // nothing is evaluated again.
    let short = dir.path().join("short");
    train(&short, &["--max-steps", "6"]);
    let short_rows = rows(&short);
    assert_eq!(short_rows.len(), 2, "{short_rows:?}");
    let short_ckpt = short.join("checkpoint.safetensors");
    let resumed = train(&short, &["--resume", short_ckpt.to_str().unwrap()]);
    assert!(!resumed.contains("evaluated on resume"), "{resumed}");
    assert_eq!(rows(&short), short_rows);

    // Resumed into another folder, which holds none of the run's steps: no made-up row.
    let elsewhere = dir.path().join("elsewhere");
    let resumed = train(&elsewhere, &["--resume", ckpt_s]);
    assert!(!resumed.contains("evaluated on resume"), "{resumed}");
    assert!(rows(&elsewhere).is_empty());
}

/// A resume keeps the run's folder, data limit and checkpoint interval, cuts the run's
/// steps.csv and epochs.jsonl back to the checkpoint's step (no duplicate rows after resuming
/// an older checkpoint), and refuses a training flag or model shape that differs from the run's
/// instead of ignoring it; --init refuses a shape its checkpoint does not have, and a new run a
/// P larger than a scaled width.
#[test]
fn resume_keeps_the_runs_flags_cuts_its_metrics_back_and_refuses_changes() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let base = [
        "--tune",
        "off",
        "train",
        "--width-mult",
        "0.0625",
        "--part",
        "2",
        "--batch-size",
        "16",
        "--epochs",
        "3",
        "--train-limit",
        "32",
        "--eval-limit",
        "32",
        "--report-every",
        "1",
        "--checkpoint-every",
        "1",
    ];
    let mut first = base.to_vec();
    first.extend(["--out", run_s, "--max-steps", "2"]);
    hetconv(&first);
    let ckpt = run.join("checkpoint.safetensors");
    let early = dir.path().join("early.safetensors");
    std::fs::copy(&ckpt, &early).unwrap();
    let (ckpt_s, early_s) = (ckpt.to_str().unwrap(), early.to_str().unwrap());

    // No --out, no --train-limit: the run's own are used.
    let text = stdout(&hetconv(&[
        "--tune",
        "off",
        "train",
        "--resume",
        ckpt_s,
        "--max-steps",
        "4",
    ]));
    assert!(text.contains(&format!("metrics    {run_s}")), "{text}");
    assert!(text.contains("32 training images"), "{text}");
    // The run's --eval-limit too: 32 of the 1,000 test images evaluated.
    assert!(text.contains("(32 images)"), "{text}");
    let steps = |path: &Path| -> Vec<u64> {
        std::fs::read_to_string(path.join("steps.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect()
    };
    assert_eq!(steps(&run), [1, 2, 3, 4]);

    // Resuming the older checkpoint (step 2) into the same folder: rows after step 2 are cut
    // back and written again once.
    hetconv(&[
        "--tune",
        "off",
        "train",
        "--resume",
        early_s,
        "--max-steps",
        "4",
        "--out",
        run_s,
    ]);
    assert_eq!(steps(&run), [1, 2, 3, 4]);
    let epochs = std::fs::read_to_string(run.join("epochs.jsonl")).unwrap();
    assert_eq!(epochs.lines().count(), 2, "{epochs}");

    for (flag, value) in [
        ("--lr", "0.5"),
        ("--train-limit", "16"),
        ("--seed", "9"),
        ("--schedule", "cosine"),
        ("--part", "4"),
        ("--width-mult", "0.125"),
    ] {
        let err = hetconv_fails(&["--tune", "off", "train", "--resume", ckpt_s, flag, value]);
        assert!(err.contains(flag) && err.contains(ckpt_s), "{flag}: {err}");
    }
    let err = hetconv_fails(&[
        "--precision",
        "mixed",
        "--tune",
        "off",
        "train",
        "--resume",
        ckpt_s,
    ]);
    assert!(err.contains("--precision mixed differs"), "{err}");
    let err = hetconv_fails(&[
        "--tune",
        "off",
        "train",
        "--init",
        ckpt_s,
        "--part",
        "4",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(err.contains("--part 4") && err.contains("P = 2"), "{err}");
    let err = hetconv_fails(&[
        "--tune",
        "off",
        "train",
        "--part",
        "64",
        "--width-mult",
        "0.0625",
        "--out",
        dir.path().join("y").to_str().unwrap(),
    ]);
    assert!(
        err.contains("--part 64") && err.contains("fewer than P"),
        "{err}"
    );
}

/// An image folder trains, and the checkpoint keeps its class names for predict.
#[test]
fn an_image_folder_trains_and_predict_names_its_classes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shapes");
    // Two classes a small net tells apart: dark and bright images of assorted sizes.
    for (class, value) in [("dark", 20u8), ("bright", 230u8)] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..20u32 {
            let image = image::RgbImage::from_fn(30 + i, 40, |x, y| {
                let noise = ((x * 7 + y * 13 + i * 3) % 17) as u8;
                image::Rgb([value.saturating_add(noise); 3])
            });
            image
                .save(data.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    std::fs::write(data.join("dark/broken.png"), b"not a png").unwrap();
    let run = dir.path().join("run");
    let data_arg = data.to_str().unwrap();
    let failed = Command::new(env!("CARGO_BIN_EXE_hetconv"))
        .args(["train", "--data", data_arg, "--max-steps", "1", "--out"])
        .arg(&run)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("broken.png"), "{err}");

    let train = |run: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            data_arg,
            "--skip-bad-images",
            "--width-mult",
            "0.125",
            "--part",
            "2",
            "--batch-size",
            "6",
            "--epochs",
            "2",
            "--lr",
            "0.05",
            "--schedule",
            "constant",
            "--out",
            run.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        stdout(&hetconv(&args))
    };
    let text = train(&run, &[]);
    assert!(text.contains("skipped 1 unreadable file"), "{text}");
    // Streamed from the files (decoded per batch on the prefetch thread), the run is the same
    // run: the same batches, so the same losses step by step.
    let streamed_run = dir.path().join("streamed");
    let streamed = train(&streamed_run, &["--stream-images"]);
    assert!(
        streamed.contains("streaming 40 images from") && streamed.contains("skipped 1"),
        "{streamed}"
    );
    let steps = |run: &Path| std::fs::read_to_string(run.join("steps.csv")).unwrap();
    assert_eq!(steps(&streamed_run), steps(&run));
    assert!(steps(&run).lines().count() > 2, "{}", steps(&run));
    // Images of your own get torchvision's random-resized crop unless told otherwise.
    assert!(
        text.contains("augment  random-resized crop (0.08..1 of the area"),
        "{text}"
    );
    assert!(
        text.contains("36 training images, 4 test images, 2 classes"),
        "{text}"
    );
    let ckpt = run.join("checkpoint.safetensors");
    let picture = data.join("bright/3.png");
    let out = stdout(&hetconv(&[
        "predict",
        "--weights",
        ckpt.to_str().unwrap(),
        picture.to_str().unwrap(),
    ]));
    assert!(
        out.contains("bright") || out.contains("dark"),
        "class names from the checkpoint:\n{out}"
    );
    let refused = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hetconv"))
            .args(args)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A folder of other classes is refused, as eval refuses it: its rows would name the
    // folder's classes for the model's outputs.
    let other = dir.path().join("other");
    for class in ["cat", "dog"] {
        std::fs::create_dir_all(other.join(class)).unwrap();
        // Ten each: one held out as the test split.
        for i in 0..10 {
            std::fs::copy(&picture, other.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let err = refused(&[
        "predict",
        "--weights",
        ckpt.to_str().unwrap(),
        "--data",
        other.to_str().unwrap(),
    ]);
    assert!(err.contains("bright") && err.contains("cat"), "{err}");
    // The options of a data set do not apply to image files: refused, not ignored.
    for flag in [
        &["--limit", "1"][..],
        &["--split", "train"],
        &["--skip-bad-images"],
    ] {
        let mut args = vec!["predict", "--weights", ckpt.to_str().unwrap()];
        args.extend_from_slice(flag);
        args.push(picture.to_str().unwrap());
        let err = refused(&args);
        assert!(err.contains(flag[0]), "{flag:?}: {err}");
    }
}

/// Outside a desktop session, Mesa's device-select layer made libwayland print
/// "error: XDG_RUNTIME_DIR is invalid ..." on every command; the command line switches that
/// layer off there, and nothing else it prints is lost.
#[test]
fn no_stray_xdg_runtime_dir_errors_outside_a_desktop_session() {
    let out = Command::new(env!("CARGO_BIN_EXE_hetconv"))
        .arg("info")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("NODEVICE_SELECT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("adapter:"));
}

/// A ResNet goes through the same commands as the VGG: train (--model), eval, predict, resume,
/// export; the checkpoint records the network, and flags that describe another are refused.
#[test]
fn a_resnet_trains_evaluates_resumes_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("resnet");
    let run_s = run.to_str().unwrap();
    let text = stdout(&hetconv(&[
        "--tune",
        "off",
        "train",
        "--model",
        "resnet8",
        "--part",
        "2",
        "--batch-size",
        "16",
        "--epochs",
        "2",
        "--train-limit",
        "32",
        "--eval-limit",
        "32",
        "--checkpoint-every",
        "1",
        "--max-steps",
        "2",
        "--normalize",
        "0.3/0.35",
        "--out",
        run_s,
    ]));
    assert!(
        text.contains("HetConv ResNet-8, P=2, CIFAR layout, 1x28x28 input")
            && text.contains("input normalised with mean [0.3] std [0.35]"),
        "{text}"
    );
    let ckpt = run.join("checkpoint.safetensors");
    let ckpt_s = ckpt.to_str().unwrap();
    let text = stdout(&hetconv(&["eval", "--weights", ckpt_s, "--limit", "20"]));
    assert!(text.contains("accuracy"), "{text}");
    let text = stdout(&hetconv(&[
        "--tune",
        "off",
        "train",
        "--resume",
        ckpt_s,
        "--max-steps",
        "4",
    ]));
    assert!(
        text.contains("resuming") && text.contains("ResNet-8"),
        "{text}"
    );
    let json = dir.path().join("p.json");
    hetconv(&[
        "predict",
        "--weights",
        ckpt_s,
        "--limit",
        "3",
        "--output",
        json.to_str().unwrap(),
    ]);
    let predictions: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(predictions.as_array().map(Vec::len), Some(3));
    let exported = dir.path().join("torch.safetensors");
    hetconv(&[
        "export",
        "--weights",
        ckpt_s,
        "--output",
        exported.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&exported).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = file.names().into_iter().map(String::from).collect();
    for name in [
        "conv1.weight",
        "layer1.0.conv1.gwc.weight",
        "layer2.0.downsample.0.weight",
        "fc.weight",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    // ONNX, chosen by the extension; the folds only shape ONNX graphs.
    let onnx = dir.path().join("model.onnx");
    let text = stdout(&hetconv(&[
        "export",
        "--weights",
        ckpt_s,
        "--output",
        onnx.to_str().unwrap(),
        "--fold-batchnorm",
    ]));
    assert!(text.contains("ONNX opset 13"), "{text}");
    let model = <hetconv::onnx::proto::ModelProto as prost::Message>::decode(
        std::fs::read(&onnx).unwrap().as_slice(),
    )
    .unwrap();
    let graph = model.graph.unwrap();
    assert_eq!(graph.input[0].name, "input");
    assert_eq!(graph.output[0].name, "logits");
    assert!(!graph.node.iter().any(|n| n.op_type == "BatchNormalization"));
    let err = hetconv_fails(&[
        "export",
        "--weights",
        ckpt_s,
        "--output",
        dir.path().join("x.safetensors").to_str().unwrap(),
        "--fold-hetconv",
    ]);
    assert!(err.contains("ONNX graph"), "{err}");
    // The checkpoint's model normalises its input itself; predict refuses another one.
    let err = hetconv_fails(&["predict", "--weights", ckpt_s, "--normalize", "0.5/0.5"]);
    assert!(err.contains("leave --normalize out"), "{err}");
    // Flags that describe another network are refused by name.
    let other = dir.path().join("other");
    let other_s = other.to_str().unwrap();
    for (flags, says) in [
        (vec!["--init", ckpt_s, "--model", "vgg16"], "--model vgg16"),
        (vec!["--resume", ckpt_s, "--part", "4"], "--part 4"),
        (
            vec!["--resume", ckpt_s, "--normalize", "0.5/0.5"],
            "--normalize",
        ),
        (
            vec!["--model", "resnet8", "--normalize", "imagenet"],
            "3 means",
        ),
        (
            vec!["--model", "resnet8", "--crop-scale", "0.3"],
            "--crop-scale",
        ),
        (
            vec!["--model", "resnet20", "--width-mult", "0.5"],
            "--width-mult",
        ),
        (vec!["--model", "resnet21"], "resnet21"),
    ] {
        let mut args = vec!["--tune", "off", "train", "--out", other_s];
        args.extend(flags);
        let err = hetconv_fails(&args);
        assert!(err.contains(says), "{says}: {err}");
    }
}

/// A new run never writes over a previous one: a previous run in its folder (the default
/// runs/latest or one named with --out) is moved, whole, to the first free OUT.N, and the
/// command says so; --overwrite replaces it in place; an existing --save file outside the
/// folder is refused, naming it, and left as it was.
#[test]
fn a_new_run_never_writes_over_a_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["train"];
        args.extend_from_slice(SMALL);
        args.extend_from_slice(&["--max-steps", "2"]);
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_hetconv"))
            .args(&args)
            .current_dir(dir.path())
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
            .unwrap()
    };
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    };
    let read = |path: &str| std::fs::read(dir.path().join(path)).unwrap();
    let latest = "runs/latest/checkpoint.safetensors";
    ok(run(&[]));
    let first = read(latest);
    let text = ok(run(&["--seed", "1"]));
    assert!(
        text.contains("moved the previous run in runs/latest to runs/latest.1"),
        "{text}"
    );
    assert_eq!(read("runs/latest.1/checkpoint.safetensors"), first);
    assert!(!read("runs/latest.1/steps.csv").is_empty());
    assert!(!read("runs/latest.1/epochs.jsonl").is_empty());
    let second = read(latest);
    assert_ne!(second, first, "another seed, another checkpoint");
    // Named with --out: the same, to the next free number.
    let text = ok(run(&["--out", "runs/latest", "--seed", "2"]));
    assert!(text.contains("to runs/latest.2"), "{text}");
    assert_eq!(read("runs/latest.2/checkpoint.safetensors"), second);
    let third = read(latest);
    ok(run(&["--out", "runs/latest", "--overwrite", "--seed", "3"]));
    assert_ne!(read(latest), third, "replaced");
    assert!(!dir.path().join("runs/latest.3").exists());
    // A run moved aside resumes where it now lives, not in the folder the newer run holds.
    let newest = read(latest);
    let text = ok(Command::new(env!("CARGO_BIN_EXE_hetconv"))
        .args(["train", "--resume", "runs/latest.1/checkpoint.safetensors"])
        .args(["--max-steps", "3"])
        .current_dir(dir.path())
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap());
    assert!(text.contains("at step 2"), "{text}");
    assert_eq!(read(latest), newest, "the newest run untouched");
    assert_ne!(
        read("runs/latest.1/checkpoint.safetensors"),
        first,
        "the resumed run went on"
    );

    std::fs::write(dir.path().join("mine.safetensors"), b"not to be lost").unwrap();
    let refused = run(&["--out", "elsewhere", "--save", "mine.safetensors"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--save mine.safetensors exists already") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(read("mine.safetensors"), b"not to be lost");
}

/// `export --normalize` puts a normalisation into the ONNX graph of a checkpoint that records
/// none (and says so); without it the graph has none and the message says what input it takes;
/// a safetensors export refuses the flag instead of ignoring it.
#[test]
fn export_puts_a_given_normalisation_into_the_onnx_graph() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    tiny_train(&run, &["--epochs", "1"]);
    let ckpt = run.join("checkpoint.safetensors");
    let ckpt_s = ckpt.to_str().unwrap();
    let export = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "export",
            "--weights",
            ckpt_s,
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        (stdout(&hetconv(&args)), std::fs::read(&out).unwrap())
    };
    let has_scale = |bytes: &[u8]| {
        let model = <hetconv::onnx::proto::ModelProto as prost::Message>::decode(bytes).unwrap();
        let graph = model.graph.unwrap();
        graph
            .node
            .iter()
            .any(|n| n.output.iter().any(|o| o == "input.normalised"))
    };
    let (said, plain) = export("plain.onnx", &[]);
    assert!(
        !has_scale(&plain) && said.contains("no normalisation"),
        "{said}"
    );
    let (said, normalised) = export("normalised.ONNX", &["--normalize", "0.5/0.25"]);
    assert!(has_scale(&normalised), "no normalisation in the graph");
    assert!(said.contains("normalised with 0.5/0.25"), "{said}");
    let err = hetconv_fails(&[
        "export",
        "--weights",
        ckpt_s,
        "--output",
        dir.path().join("x.safetensors").to_str().unwrap(),
        "--normalize",
        "0.5/0.25",
    ]);
    assert!(err.contains("--normalize"), "{err}");
}
