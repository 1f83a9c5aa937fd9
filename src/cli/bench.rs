//! `hetconv bench`: the whole training step of the HetConv VGG-16 for CIFAR-10, a fixed,
//! documented workload to hold against other libraries: batch sizes x parts P x kernel forms,
//! warm-up steps excluded, SGD with momentum, random data of the right shape.
//! Prints a Markdown table and writes it with a JSON copy (adapter, backend, driver included).

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use hetconv::flops::vgg_cost;
use hetconv::kernels::sgd::SgdStep;
use hetconv::nn::{ConvMode, Init, Vgg16, VggConfig};
use hetconv::{Context, Error, Result, Tensor};

/// Options of `hetconv bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "16,128")]
    pub batch: Vec<usize>,
    /// Parts P.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub parts: Vec<usize>,
    /// Width multiplier of the paper's widths (use 0.25 on a software adapter).
    #[arg(long, default_value_t = 1.0)]
    pub width_mult: f64,
    /// Untimed steps first (pipeline compilation, allocation).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Also time the unfused HetConv form (grouped 3x3 + masked 1x1 passes).
    #[arg(long)]
    pub unfused: bool,
    /// Output path without extension.
    #[arg(long, default_value = "bench-results/steps")]
    pub out: PathBuf,
}

#[derive(serde::Serialize)]
struct Row {
    batch: usize,
    parts: usize,
    mode: String,
    width_mult: f64,
    step_ms: f64,
    forward_ms: f64,
    images_per_second: f64,
    train_gflops: f64,
    dispatches_per_step: u64,
    submissions_per_step: u64,
    macs_per_image: u64,
}

fn time_steps(ctx: &Context, n: usize, mut step: impl FnMut() -> Result<()>) -> Result<f64> {
    ctx.synchronize()?;
    let start = Instant::now();
    for _ in 0..n {
        step()?;
        ctx.flush()?;
    }
    ctx.synchronize()?;
    Ok(start.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64)
}

fn measure(
    ctx: &Context,
    args: &BenchArgs,
    batch: usize,
    parts: usize,
    mode: ConvMode,
) -> Result<Row> {
    let mut config = VggConfig::paper(parts);
    if args.width_mult != 1.0 {
        config = config.with_width_mult(args.width_mult);
    }
    config.mode = mode;
    let macs = vgg_cost(&config).macs;
    let mut model = Vgg16::new(ctx, config, 0)?;
    let mut init = Init::new(1);
    let pixels: Vec<f32> = init
        .normal(batch * 3 * 32 * 32, 0.5)
        .iter()
        .map(|v| v.abs().min(1.0))
        .collect();
    let labels: Vec<f32> = (0..batch).map(|i| (i % 10) as f32).collect();
    let x = Tensor::from_slice(ctx, &[batch, 3, 32, 32], &pixels)?;
    let y = Tensor::from_slice(ctx, &[batch], &labels)?;
    let sgd = SgdStep {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    };
    for _ in 0..args.warmup {
        model.train_step(&x, &y, &sgd)?;
        ctx.synchronize()?;
    }
    let before = ctx.record_stats();
    model.train_step(&x, &y, &sgd)?;
    ctx.flush()?;
    let after = ctx.record_stats();
    let step_ms = time_steps(ctx, args.steps, || {
        model.train_step(&x, &y, &sgd).map(|_| ())
    })?;
    for _ in 0..args.warmup {
        model.predict(&x)?;
        ctx.synchronize()?;
    }
    let forward_ms = time_steps(ctx, args.steps, || model.predict(&x).map(|_| ()))?;
    Ok(Row {
        batch,
        parts,
        mode: format!("{mode:?}"),
        width_mult: args.width_mult,
        step_ms,
        forward_ms,
        images_per_second: batch as f64 / (step_ms / 1e3),
        // A training step does about three forward passes of work (forward, input and weight
        // gradients); two FLOPs per multiply-accumulate.
        train_gflops: 3.0 * 2.0 * macs as f64 * batch as f64 / (step_ms * 1e6),
        dispatches_per_step: after.dispatches - before.dispatches,
        submissions_per_step: after.submissions - before.submissions,
        macs_per_image: macs,
    })
}

/// Runs the command.
pub fn run(ctx: &Context, args: BenchArgs) -> Result<()> {
    let info = ctx.adapter_info().clone();
    let modes: Vec<ConvMode> = if args.unfused {
        vec![ConvMode::Fused, ConvMode::Unfused]
    } else {
        vec![ConvMode::Fused]
    };
    let mut rows = Vec::new();
    for &batch in &args.batch {
        for &parts in &args.parts {
            for &mode in &modes {
                let row = measure(ctx, &args, batch, parts, mode)?;
                eprintln!(
                    "batch {batch} P={parts} {mode:?}: {:.2} ms/step, {:.0} images/s",
                    row.step_ms, row.images_per_second
                );
                rows.push(row);
            }
        }
    }
    let mut md = format!(
        "Training step of HetConv VGG-16 (CIFAR-10 shape, width x{}) on {} ({:?}, {} {}); SGD momentum; {} warm-up steps excluded, mean of {} steps\n\n\
         | batch | P | kernels | step ms | forward ms | images/s | GFLOP/s (3x fwd) | dispatches/step | submissions/step |\n|---|---|---|---|---|---|---|---|---|\n",
        args.width_mult,
        info.name,
        info.backend,
        info.driver,
        info.driver_info,
        args.warmup,
        args.steps
    );
    for r in &rows {
        md += &format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.1} | {} | {} |\n",
            r.batch,
            r.parts,
            r.mode,
            r.step_ms,
            r.forward_ms,
            r.images_per_second,
            r.train_gflops,
            r.dispatches_per_step,
            r.submissions_per_step
        );
    }
    println!("{md}");
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let report = serde_json::json!({
        "workload": "HetConv VGG-16 for CIFAR-10 (32x32x3, 10 classes), SGD momentum 0.9, wd 5e-4",
        "adapter": info.name, "backend": format!("{:?}", info.backend), "driver": info.driver,
        "driver_info": info.driver_info, "unix_time": stamp, "warmup": args.warmup, "steps": args.steps, "rows": rows,
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
        let path = args.out.with_extension(ext);
        std::fs::write(&path, text).map_err(|e| Error::Io { path, source: e })?;
    }
    Ok(())
}
