//! `hetconv tune`: times the kernel variants of every pass of the HetConv VGG-16 (training step
//! and inference, at the given batch sizes and parts P) on this adapter and stores the winners
//! in the tune cache, so that training starts with tuned kernels. Prints what each pass runs.

use std::time::Instant;

use clap::Args;
use hetconv::Model;
use hetconv::gpu::Prebuilt;
use hetconv::kernels::sgd::SgdStep;
use hetconv::nn::Vgg16;
use hetconv::tune::{TuneMode, Variant};
use hetconv::{Context, Error, Result, Tensor};

/// Options of `hetconv tune`.
#[derive(Args, Debug)]
pub struct TuneArgs {
    /// Batch sizes (training steps; inference at each size and at one image).
    #[arg(long, value_delimiter = ',', default_value = "128", value_parser = super::args::at_least_one)]
    pub batch: Vec<usize>,
    /// Parts P.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16", value_parser = super::args::at_least_one)]
    pub parts: Vec<usize>,
    /// Width multiplier of the paper's widths.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = super::args::width_mult)]
    pub width_mult: f64,
    /// Also write the table to OUT.md and OUT.json.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// Runs the command.
pub fn run(ctx: &Context, args: TuneArgs) -> Result<()> {
    check_destinations(ctx, &args)?;
    // Every network is checked before the first is tuned.
    let width_mult = (args.width_mult != 1.0).then_some(args.width_mult);
    let configs = args
        .parts
        .iter()
        .map(|&parts| super::scaled_vgg("--parts", parts, width_mult))
        .collect::<Result<Vec<_>>>()?;
    if ctx.tune_mode() != TuneMode::Full {
        eprintln!(
            "tune: tuning mode was {}, full for this command",
            ctx.tune_mode()
        );
        ctx.set_tune_mode(TuneMode::Full);
    }
    let info = ctx.adapter_info();
    eprintln!(
        "adapter: {} ({:?}, {} {})",
        info.name, info.backend, info.driver, info.driver_info
    );
    let started = Instant::now();
    // Every key's candidates' pipelines first, built together on all the CPU's threads (each
    // key's alone would use only as many threads as it has new pipelines).
    let mut found = Ok(());
    let prebuilt = ctx.prebuild_pipelines(|| {
        found = (|| {
            for config in &configs {
                let mut model = Vgg16::new(ctx, config.clone(), 0)?;
                for &batch in &args.batch {
                    let (x, y) = inputs(ctx, batch)?;
                    run_every_pass(ctx, &mut model, &x, &y)?;
                }
            }
            Ok(())
        })();
    });
    found?;
    // The throwaway networks' buffers go.
    ctx.trim();
    eprintln!(
        "tune: {} pipelines built first, {:.1} s on {} threads",
        prebuilt.built,
        prebuilt.ms / 1e3,
        prebuilt.threads
    );
    for (&parts, config) in args.parts.iter().zip(configs) {
        let mut model = Vgg16::new(ctx, config, 0)?;
        for &batch in &args.batch {
            let (x, y) = inputs(ctx, batch)?;
            let before = ctx.tune_stats();
            let t = Instant::now();
            run_every_pass(ctx, &mut model, &x, &y)?;
            let after = ctx.tune_stats();
            eprintln!(
                "P={parts} batch {batch}: {} keys timed, {:.1} s",
                after.keys_timed - before.keys_timed,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let (md, choices) = choices_table(ctx, &args, &prebuilt);
    println!("{md}");
    let cached = ctx
        .kernel_choices()
        .iter()
        .filter(|(_, c)| c.source == hetconv::tune::Source::Cached)
        .count();
    if cached > 0 {
        eprintln!(
            "tune: {cached} keys came from the cache and were not timed again (delete the cache file to re-time them)"
        );
    }
    println!(
        "{:.1} s in all; cache: {}",
        started.elapsed().as_secs_f64(),
        ctx.tune_cache_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none (no cache folder)".into())
    );
    if let Some(out) = &args.out {
        write_report(ctx, &args, out, &md, choices, &prebuilt)?;
    }
    Ok(())
}

/// Refuses to start where the results could not be kept: an --out file or a tune cache file
/// that cannot be written, or a tune cache file that is not one (tuning ahead of time would be
/// pointless).
fn check_destinations(ctx: &Context, args: &TuneArgs) -> Result<()> {
    if let Some(out) = &args.out {
        for ext in ["md", "json"] {
            super::check_writable(&out.with_extension(ext))?;
        }
    }
    if let Some(path) = ctx.tune_cache_path().filter(|_| !ctx.tune_cache_writable()) {
        return Err(Error::InvalidArgument(format!(
            "{}: not a tune cache, so tune would not store its results there: remove it or name another file (--tune-cache, HETCONV_TUNE_CACHE)",
            path.display()
        )));
    }
    if let Some(path) = ctx.tune_cache_path() {
        super::check_writable(&path).map_err(|e| {
            Error::InvalidArgument(format!(
                "the tune cache (--tune-cache, HETCONV_TUNE_CACHE) cannot be written: {e}"
            ))
        })?;
    }
    Ok(())
}

/// A batch of `batch` blank CIFAR-10-shaped images and labels cycling through the classes.
fn inputs(ctx: &Context, batch: usize) -> Result<(Tensor, Tensor)> {
    let labels: Vec<f32> = (0..batch).map(|i| (i % 10) as f32).collect();
    Ok((
        Tensor::zeros(ctx, &[batch, 3, 32, 32])?,
        Tensor::from_slice(ctx, &[batch], &labels)?,
    ))
}

/// Runs every pass `model` has at the batch `x`, `y` once, so that each key is tuned: a
/// training step, inference at the batch and at one image.
fn run_every_pass(ctx: &Context, model: &mut Vgg16, x: &Tensor, y: &Tensor) -> Result<()> {
    // The learning rate does not change what is timed; 0 leaves the weights alone.
    let sgd = SgdStep {
        lr: 0.0,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    };
    model.train_step(x, y, &sgd)?;
    model.predict(x)?;
    model.predict_probabilities(&x.view(0, &[1, 3, 32, 32])?)?;
    ctx.synchronize()
}

/// The table of what every key runs (Markdown, with the tuning's cost in its header), and the
/// same choices with every candidate's time as JSON values.
fn choices_table(
    ctx: &Context,
    args: &TuneArgs,
    prebuilt: &Prebuilt,
) -> (String, Vec<serde_json::Value>) {
    let info = ctx.adapter_info();
    let stats = ctx.tune_stats();
    let mut md = format!(
        "Kernel variants of the HetConv VGG-16 (width x{}, P = {:?}, batch {:?}) on {} ({:?}, {} {})\n\
         {} pipelines built first, all keys' candidates' together ({:.1} s on {} threads), then {} keys timed ({} candidate runs) in {:.1} s ({} more pipelines built while timing, {:.1} s); {} candidates' outputs checked against the reference variant's, {} candidates failed (never picked; the warnings name them)\n\n\
         | pass and shape | variant | from | ms | direct ms | direct / variant | candidates timed |\n\
         |---|---|---|---|---|---|---|\n",
        args.width_mult,
        args.parts,
        args.batch,
        info.name,
        info.backend,
        info.driver,
        info.driver_info,
        prebuilt.built,
        prebuilt.ms / 1e3,
        prebuilt.threads,
        stats.keys_timed,
        stats.candidate_runs,
        stats.ms / 1e3,
        stats.pipelines_built,
        stats.pipeline_ms / 1e3,
        stats.candidates_checked,
        stats.candidates_failed,
    );
    let mut json = Vec::new();
    for (key, choice) in ctx.kernel_choices() {
        let direct = choice
            .candidates
            .iter()
            .find(|(v, _)| *v == Variant::Direct)
            .map(|(_, ms)| *ms);
        let cell = |v: Option<f64>| v.map(|m| format!("{m:.3}")).unwrap_or_default();
        let ratio = match (direct, choice.ms) {
            (Some(d), Some(ms)) if ms > 0.0 => format!("{:.2}x", d / ms),
            _ => String::new(),
        };
        md += &format!(
            "| {key} | {} | {:?} | {} | {} | {ratio} | {} |\n",
            choice.variant,
            choice.source,
            cell(choice.ms),
            cell(direct),
            choice.candidates.len()
        );
        json.push(serde_json::json!({
            "key": key, "variant": choice.variant.to_string(), "source": choice.source,
            "ms": choice.ms, "direct_ms": direct,
            "candidates": choice.candidates.iter()
                .map(|(v, ms)| serde_json::json!({"variant": v.to_string(), "ms": ms}))
                .collect::<Vec<_>>(),
        }));
    }
    (md, json)
}

/// Writes the table `md` to OUT.md, and to OUT.json the run's adapter, networks, tuning cost
/// (`prebuilt`: the pipelines built before timing) and `choices`.
fn write_report(
    ctx: &Context,
    args: &TuneArgs,
    out: &std::path::Path,
    md: &str,
    choices: Vec<serde_json::Value>,
    prebuilt: &Prebuilt,
) -> Result<()> {
    let info = ctx.adapter_info();
    let stats = ctx.tune_stats();
    let report = serde_json::json!({
        "adapter": info.name, "backend": format!("{:?}", info.backend),
        "driver": info.driver, "driver_info": info.driver_info,
        "width_mult": args.width_mult, "parts": args.parts, "batch": args.batch,
        "keys_timed": stats.keys_timed, "tuning_ms": stats.ms,
        "pipelines_built_first": prebuilt.built, "pipelines_first_ms": prebuilt.ms,
        "pipeline_threads": prebuilt.threads,
        "pipelines_built_while_timing": stats.pipelines_built,
        "pipelines_while_timing_ms": stats.pipeline_ms,
        "candidates_checked": stats.candidates_checked, "candidates_failed": stats.candidates_failed,
        "choices": choices,
    });
    write(&out.with_extension("md"), md)?;
    write(
        &out.with_extension("json"),
        &serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
}

fn write(path: &std::path::Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.into(),
            source,
        })?;
    }
    hetconv::checkpoint::write_atomic(path, text.as_bytes())
}
