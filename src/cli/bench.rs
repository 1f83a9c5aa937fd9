//! `hetconv bench`: the whole training step of a zoo network (the HetConv VGG-16 for CIFAR-10
//! by default, or a ResNet), a fixed, documented workload to hold against other libraries:
//! batch sizes x parts P x kernel forms, warm-up steps excluded, SGD with momentum, random data
//! of the right shape.
//! Prints a Markdown table and writes it with a JSON copy (adapter, backend, driver included).

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use hetconv::kernels::loss_scale::LossScaler;
use hetconv::kernels::sgd::SgdStep;
use hetconv::nn::{ConvMode, Init, ResNetConfig, ResNetLayout};
use hetconv::{Architecture, Model};
use hetconv::{Context, ConvAlgorithm, Error, KernelTime, Precision, Result, Tensor};

use super::args::ModelName;
use super::versus_direct::{self, VersusDirect};

/// Options of `hetconv bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The network: vgg16 (CIFAR-10 shape), a CIFAR ResNet (resnet20, ...: CIFAR-10 shape) or
    /// an ImageNet ResNet (resnet18, ...: 224x224x3, 1000 classes).
    #[arg(long, default_value = "vgg16", value_parser = super::args::model_name)]
    pub model: ModelName,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "16,128", value_parser = super::args::at_least_one)]
    pub batch: Vec<usize>,
    /// Parts P.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16", value_parser = super::args::at_least_one)]
    pub parts: Vec<usize>,
    /// Width multiplier of the VGG's paper widths (use 0.25 on a software adapter).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = super::args::width_mult)]
    pub width_mult: f64,
    /// Untimed steps first (pipeline compilation, allocation; the first is also reported as
    /// "first step ms").
    #[arg(long, default_value_t = 3, value_parser = super::args::at_least_one)]
    pub warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10, value_parser = super::args::at_least_one)]
    pub steps: usize,
    /// Precisions to time, e.g. f32,mixed (default: the global --precision). Mixed steps include
    /// the loss scaling.
    #[arg(long, value_delimiter = ',', value_parser = parse_precision)]
    pub precisions: Vec<Precision>,
    /// Also time the unfused HetConv form (grouped 3x3 + masked 1x1 passes).
    #[arg(long)]
    pub unfused: bool,
    /// Also time one step kernel by kernel (GPU timestamps; each dispatch in a pass of its
    /// own) and print where the time goes.
    #[arg(long)]
    pub profile: bool,
    /// Also time each row's step against the same step with the direct kernels alone (`--conv
    /// direct`), in pairs of steps that alternate which runs first (as many pairs as --steps):
    /// what the tuner's or --conv's choices gain, measured so that the machine's drift falls
    /// on both alike.
    #[arg(long)]
    pub versus_direct: bool,
    /// Output path without extension.
    #[arg(long, default_value = "bench-results/steps")]
    pub out: PathBuf,
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    s.parse()
}

#[derive(serde::Serialize)]
struct Row {
    batch: usize,
    parts: usize,
    precision: String,
    mode: String,
    width_mult: f64,
    step_ms: f64,
    /// The first step: pipeline builds, allocation and, in `full` mode, tuning of new shapes.
    first_step_ms: f64,
    record_ms_per_step: f64,
    forward_ms: f64,
    /// Eval-mode class probabilities of one image (an embedding application's latency).
    one_image_ms: f64,
    images_per_second: f64,
    train_gflops: f64,
    dispatches_per_step: u64,
    submissions_per_step: u64,
    bind_groups_built_per_step: u64,
    macs_per_image: u64,
    /// GPU time per kernel entry point over one step (with `--profile`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    profile: Vec<KernelTime>,
    /// The step against the direct kernels alone (with `--versus-direct`).
    #[serde(skip_serializing_if = "Option::is_none")]
    versus_direct: Option<VersusDirect>,
}

/// Milliseconds per call: wall clock until the GPU is done, and the time the CPU spends
/// recording the commands (before they are submitted; how long a submission takes is the
/// driver's: lavapipe runs the work inside it).
struct Timing {
    wall_ms: f64,
    host_ms: f64,
}

fn time_steps(ctx: &Context, n: usize, mut step: impl FnMut() -> Result<()>) -> Result<Timing> {
    ctx.synchronize()?;
    let mut host = 0.0;
    let start = Instant::now();
    for _ in 0..n {
        let recording = Instant::now();
        step()?;
        host += recording.elapsed().as_secs_f64();
        ctx.flush()?;
    }
    ctx.synchronize()?;
    let per_step = |seconds: f64| seconds * 1e3 / n.max(1) as f64;
    Ok(Timing {
        wall_ms: per_step(start.elapsed().as_secs_f64()),
        host_ms: per_step(host),
    })
}

fn measure(
    ctx: &Context,
    args: &BenchArgs,
    batch: usize,
    parts: usize,
    mode: ConvMode,
    precision: Precision,
) -> Result<Row> {
    ctx.set_precision(precision)?;
    let scaler = match precision {
        Precision::Mixed => Some(LossScaler::with_defaults(ctx)?),
        Precision::F32 => None,
    };
    let arch = architecture(args, parts)?.with_mode(mode);
    let macs = arch.cost().macs;
    let mut model = arch.build(ctx, 0)?;
    let (x, y) = random_batch(ctx, &arch, batch)?;
    let sgd = SgdStep {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    };
    let mut train_step = || {
        model
            .train_step_scaled(&x, &y, &sgd, scaler.as_ref())
            .map(drop)
    };
    ctx.synchronize()?;
    let first = Instant::now();
    train_step()?;
    ctx.synchronize()?;
    let first_step_ms = first.elapsed().as_secs_f64() * 1e3;
    for _ in 1..args.warmup {
        train_step()?;
        ctx.synchronize()?;
    }
    let before = ctx.record_stats();
    train_step()?;
    ctx.flush()?;
    let after = ctx.record_stats();
    let step = time_steps(ctx, args.steps, &mut train_step)?;
    let step_ms = step.wall_ms;
    let versus_direct = if args.versus_direct {
        // The same network and weights on a handle of the same device that runs the direct
        // kernels alone (its own loss scaler: the scale is training state).
        let direct_ctx = ctx.with_own_settings();
        direct_ctx.set_conv_algorithm(ConvAlgorithm::Direct);
        let mut direct_model = arch.build(&direct_ctx, 0)?;
        let direct_scaler = match precision {
            Precision::Mixed => Some(LossScaler::with_defaults(&direct_ctx)?),
            Precision::F32 => None,
        };
        let mut direct_step = || {
            direct_model
                .train_step_scaled(&x, &y, &sgd, direct_scaler.as_ref())
                .map(drop)
        };
        for _ in 0..args.warmup {
            direct_step()?;
            ctx.synchronize()?;
        }
        Some(versus_direct::time_pairs(
            ctx,
            args.steps,
            &mut train_step,
            direct_step,
        )?)
    } else {
        None
    };
    let profile = if args.profile {
        profile_one(ctx, train_step)?
    } else {
        Vec::new()
    };
    let (forward_ms, one_image_ms) = inference_ms(ctx, model.as_ref(), &x, args)?;
    Ok(Row {
        batch,
        parts,
        precision: precision.to_string(),
        mode: format!("{mode:?}"),
        width_mult: args.width_mult,
        step_ms,
        first_step_ms,
        record_ms_per_step: step.host_ms,
        forward_ms,
        one_image_ms,
        images_per_second: batch as f64 / (step_ms / 1e3),
        // A training step does about three forward passes of work (forward, input and weight
        // gradients); two FLOPs per multiply-accumulate.
        train_gflops: 3.0 * 2.0 * macs as f64 * batch as f64 / (step_ms * 1e6),
        dispatches_per_step: after.dispatches - before.dispatches,
        submissions_per_step: after.submissions - before.submissions,
        bind_groups_built_per_step: after.bind_groups_created - before.bind_groups_created,
        macs_per_image: macs,
        profile,
        versus_direct,
    })
}

/// A batch of `batch` random images of `arch`'s input shape, pixels in [0, 1], and labels
/// cycling through its classes.
fn random_batch(ctx: &Context, arch: &Architecture, batch: usize) -> Result<(Tensor, Tensor)> {
    let (channels, side) = (arch.input().channels, arch.input().size);
    let mut init = Init::new(1);
    let pixels: Vec<f32> = init
        .normal(batch * channels * side * side, 0.5)
        .iter()
        .map(|v| v.abs().min(1.0))
        .collect();
    let classes = arch.classes();
    let labels: Vec<f32> = (0..batch).map(|i| (i % classes) as f32).collect();
    Ok((
        Tensor::from_slice(ctx, &[batch, channels, side, side], &pixels)?,
        Tensor::from_slice(ctx, &[batch], &labels)?,
    ))
}

/// GPU time per kernel over one `step` (timestamps; each dispatch in a pass of its own),
/// slowest first.
fn profile_one(ctx: &Context, mut step: impl FnMut() -> Result<()>) -> Result<Vec<KernelTime>> {
    ctx.synchronize()?;
    ctx.begin_profile()?;
    step()?;
    let (mut times, untimed) = pollster::block_on(ctx.end_profile())?;
    if untimed > 0 {
        eprintln!("profile: {untimed} dispatches went untimed (query set full)");
    }
    times.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    Ok(times)
}

/// Milliseconds of `model`'s inference on the batch `x` and on its first image (eval-mode class
/// probabilities), each after the warm-up.
fn inference_ms(
    ctx: &Context,
    model: &dyn Model,
    x: &Tensor,
    args: &BenchArgs,
) -> Result<(f64, f64)> {
    for _ in 0..args.warmup {
        model.predict(x)?;
        ctx.synchronize()?;
    }
    let forward_ms = time_steps(ctx, args.steps, || model.predict(x).map(|_| ()))?.wall_ms;
    let mut one_shape = x.shape().to_vec();
    one_shape[0] = 1;
    let one = x.view(0, &one_shape)?;
    for _ in 0..args.warmup {
        model.predict_probabilities(&one)?;
        ctx.synchronize()?;
    }
    let one_image_ms = time_steps(ctx, args.steps, || {
        model.predict_probabilities(&one).map(|_| ())
    })?
    .wall_ms;
    Ok((forward_ms, one_image_ms))
}

/// The benchmarked network at part `parts`: the VGG-16 for CIFAR-10 (at the width
/// multiplier), or a ResNet in its layout's shape (CIFAR-10's, or ImageNet's 224x224, 1000
/// classes).
fn architecture(args: &BenchArgs, parts: usize) -> Result<Architecture> {
    match args.model {
        ModelName::Vgg16 => Ok(Architecture::Vgg16(super::scaled_vgg(
            "--parts",
            parts,
            (args.width_mult != 1.0).then_some(args.width_mult),
        )?)),
        ModelName::ResNet(_) if args.width_mult != 1.0 => Err(Error::InvalidArgument(
            "--width-mult scales the VGG-16's widths; a ResNet has its paper widths".into(),
        )),
        ModelName::ResNet(depth) => {
            let cifar = ResNetConfig::cifar(depth, parts);
            let config = match cifar.layout() {
                Some(ResNetLayout::ImageNet) => ResNetConfig::imagenet(depth, parts),
                _ => cifar,
            };
            config.validate()?;
            Ok(Architecture::ResNet(config))
        }
    }
}

/// Runs the command.
pub fn run(ctx: &Context, args: BenchArgs) -> Result<()> {
    for ext in ["md", "json"] {
        super::check_writable(&args.out.with_extension(ext))?;
    }
    if args.profile && !ctx.can_profile() {
        return Err(Error::InvalidArgument(format!(
            "--profile times kernels with GPU timestamps (TIMESTAMP_QUERY), which {} does not offer: leave --profile out",
            ctx.adapter_info().name
        )));
    }
    // Every network is checked before the first is timed.
    for &parts in &args.parts {
        architecture(&args, parts)?;
    }
    let info = ctx.adapter_info().clone();
    let modes: Vec<ConvMode> = if args.unfused {
        vec![ConvMode::Fused, ConvMode::Unfused]
    } else {
        vec![ConvMode::Fused]
    };
    let precisions = if args.precisions.is_empty() {
        vec![ctx.precision()]
    } else {
        args.precisions.clone()
    };
    let start_precision = ctx.precision();
    let mut rows = Vec::new();
    for &batch in &args.batch {
        for &parts in &args.parts {
            for &precision in &precisions {
                for &mode in &modes {
                    let row = measure(ctx, &args, batch, parts, mode, precision)?;
                    eprintln!(
                        "batch {batch} P={parts} {precision} {mode:?}: {:.2} ms/step, {:.0} images/s",
                        row.step_ms, row.images_per_second
                    );
                    rows.push(row);
                }
            }
        }
    }
    ctx.set_precision(start_precision)?;
    let arch = architecture(&args, 1)?;
    let input = arch.input();
    let workload = match &arch {
        Architecture::Vgg16(_) => format!(
            "HetConv VGG-16 (CIFAR-10 shape, width x{})",
            args.width_mult
        ),
        _ => format!(
            "{} ({}x{}x{} input, {} classes)",
            arch.title(),
            input.channels,
            input.size,
            input.size,
            arch.classes()
        ),
    };
    let mut md = format!(
        "Training step of {workload} on {} ({:?}, {} {}); SGD momentum; {} warm-up steps excluded, mean of {} steps\n\n\
         | batch | P | precision | kernels | step ms | first step ms | record ms/step | forward ms | 1-image inference ms | images/s | GFLOP/s (3x fwd) | dispatches/step | submissions/step | bind groups built/step |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        info.name, info.backend, info.driver, info.driver_info, args.warmup, args.steps
    );
    for r in &rows {
        md += &format!(
            "| {} | {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {} | {} | {} |\n",
            r.batch,
            r.parts,
            r.precision,
            r.mode,
            r.step_ms,
            r.first_step_ms,
            r.record_ms_per_step,
            r.forward_ms,
            r.one_image_ms,
            r.images_per_second,
            r.train_gflops,
            r.dispatches_per_step,
            r.submissions_per_step,
            r.bind_groups_built_per_step
        );
    }
    if args.versus_direct {
        md += &versus_direct_table(ctx, &rows);
    }
    for r in rows.iter().filter(|r| !r.profile.is_empty()) {
        md += &profile_table(r);
    }
    md += &choices_table(ctx);
    println!("{md}");
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let report = serde_json::json!({
        "workload": format!("{workload}, SGD momentum 0.9, wd 5e-4"),
        "adapter": info.name, "backend": format!("{:?}", info.backend), "driver": info.driver,
        "driver_info": info.driver_info, "unix_time": stamp, "warmup": args.warmup, "steps": args.steps, "rows": rows,
        "tune_mode": ctx.tune_mode().to_string(),
        "kernel_choices": ctx.kernel_choices().iter().map(|(key, c)| serde_json::json!({
            "key": key, "variant": c.variant.to_string(), "source": c.source, "ms": c.ms,
        })).collect::<Vec<_>>(),
    });
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.into(),
            source: e,
        })?;
    }
    for (ext, text) in [
        ("md", md),
        (
            "json",
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        ),
    ] {
        hetconv::checkpoint::write_atomic(&args.out.with_extension(ext), text.as_bytes())?;
    }
    Ok(())
}

/// Each row's step with this run's kernels against the direct kernels alone, in pairs.
fn versus_direct_table(ctx: &Context, rows: &[Row]) -> String {
    let mut md = format!(
        "\nThe same step with this run's kernels (conv algorithm {:?}, tuning mode {}) against the direct kernels alone: pairs of steps in this process, alternating which runs first; medians over the pairs\n\n\
         | batch | P | precision | kernels | pairs | this run ms | direct ms | this run / direct (median of pairs) | quartiles of the ratio | pairs this run was slower |\n|---|---|---|---|---|---|---|---|---|---|\n",
        ctx.conv_algorithm(),
        ctx.tune_mode()
    );
    for r in rows {
        if let Some(v) = &r.versus_direct {
            md += &format!(
                "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.3} | {:.3}-{:.3} | {} |\n",
                r.batch,
                r.parts,
                r.precision,
                r.mode,
                v.pairs,
                v.chosen_ms,
                v.direct_ms,
                v.ratio,
                v.ratio_q1,
                v.ratio_q3,
                v.chosen_slower
            );
        }
    }
    md
}

/// What each pass and layer shape ran, and why (tuned now, from the cache, the heuristic, or
/// forced by `--conv`).
fn choices_table(ctx: &Context) -> String {
    let stats = ctx.tune_stats();
    let mut md = format!(
        "\nKernel variant per pass and layer shape (tuning mode {}; {} keys timed in {:.1} s)\n\n\
         | pass and shape | variant | from | ms when timed |\n|---|---|---|---|\n",
        ctx.tune_mode(),
        stats.keys_timed,
        stats.ms / 1e3
    );
    for (key, c) in ctx.kernel_choices() {
        let ms = c.ms.map(|m| format!("{m:.3}")).unwrap_or_default();
        md += &format!("| {key} | {} | {:?} | {ms} |\n", c.variant, c.source);
    }
    md
}

/// Where one step's GPU time goes: kernel by kernel (summed over layers), then layer by layer
/// (summed over kernels), largest first.
fn profile_table(row: &Row) -> String {
    let total: f64 = row.profile.iter().map(|t| t.ms).sum();
    let share = |ms: f64| 100.0 * ms / total.max(f64::MIN_POSITIVE);
    let grouped = |key: &dyn Fn(&KernelTime) -> String| {
        let mut groups: Vec<(String, u64, f64)> = Vec::new();
        for t in &row.profile {
            let k = key(t);
            match groups.iter_mut().find(|g| g.0 == k) {
                Some(g) => {
                    g.1 += t.dispatches;
                    g.2 += t.ms;
                }
                None => groups.push((k, t.dispatches, t.ms)),
            }
        }
        groups.sort_by(|a, b| b.2.total_cmp(&a.2));
        groups
    };
    let mut md = format!(
        "\nGPU time per kernel, one step, batch {} P={} {} (each dispatch timed in a pass of its own; sum {:.2} ms)\n\n\
         | kernel | dispatches | ms | share |\n|---|---|---|---|\n",
        row.batch, row.parts, row.mode, total
    );
    for (kernel, dispatches, ms) in grouped(&|t| t.kernel.clone()) {
        md += &format!(
            "| {kernel} | {dispatches} | {ms:.3} | {:.1}% |\n",
            share(ms)
        );
    }
    md += "\nThe same step per layer (forward and backward; loss and SGD outside any layer)\n\n\
           | layer | dispatches | ms | share |\n|---|---|---|---|\n";
    let layer = |t: &KernelTime| t.layer.clone().unwrap_or_else(|| "(no layer)".into());
    for (name, dispatches, ms) in grouped(&layer) {
        md += &format!("| {name} | {dispatches} | {ms:.3} | {:.1}% |\n", share(ms));
    }
    md
}
