//! Layer benchmark on the VGG-16 layer shapes, for every part P:
//! - `Standard`: a standard 3x3 conv;
//! - `PyTorchForm`: the PyTorch reproduction's HetConv: grouped 3x3 + a dense 1x1 conv on the
//!   masked weight (the zero block is multiplied), its weight gradient masked afterwards;
//! - `Unfused`: grouped 3x3 + hetconv's block-skipping masked 1x1, as two passes;
//! - `Fused`: hetconv's fused HetConv kernel (one pass per direction).
//!
//! Prints a Markdown table and writes it, with a JSON copy, to `--out` (default
//! `bench-results/layers.{md,json}`). Times are medians of `--reps` runs after one warm-up run,
//! measured around a submit-and-wait, all in one process on one adapter: compare the ratios,
//! not the absolute times across machines.
//!
//! ```text
//! cargo run --release --example layer_bench -- --batch 16
//! cargo run --release --example layer_bench -- --batch 4 --width-div 4   # a software adapter
//! ```

use std::time::Instant;

use clap::Parser;
use hetconv::kernels::conv::{self, ConvDims, ConvKind, ConvWeights};
use hetconv::kernels::elementwise::{self, BinaryOp};
use hetconv::{Context, ContextOptions, ConvAlgorithm, LimitsChoice, Result, Tensor};

#[derive(Parser, Debug)]
struct Args {
    /// Images per batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Divide every channel count by this (keeps a software adapter's run short).
    #[arg(long, default_value_t = 1)]
    width_div: usize,
    /// Parts P to run.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
    parts: Vec<usize>,
    /// Timed runs per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// `auto` (the tuner, per `HETCONV_TUNE`), `direct`, `tiled` (the GEMM core with the
    /// heuristic's tiles) or one variant, e.g. `gemm:64x64/4x4/k16`.
    #[arg(long, default_value = "auto")]
    conv: String,
    /// Output path without extension.
    #[arg(long, default_value = "bench-results/layers")]
    out: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    Standard,
    PyTorchForm,
    Unfused,
    Fused,
}

struct Row {
    layer: String,
    parts: usize,
    method: Method,
    forward_ms: f64,
    step_ms: f64,
    macs: u64,
    standard_step_ms: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(ctx: &Context, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    ctx.synchronize()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        ctx.synchronize()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(times))
}

fn filled(ctx: &Context, shape: &[usize], seed: u32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32
                - 0.5
        })
        .collect();
    Tensor::from_slice(ctx, shape, &data)
}

fn measure(
    ctx: &Context,
    d: &ConvDims,
    method: Method,
    p: usize,
    reps: usize,
) -> Result<(f64, f64)> {
    let x = filled(ctx, &[d.batch, d.cin, d.height, d.width], 1)?;
    let dy = filled(ctx, &[d.batch, d.cout, d.height, d.width], 2)?;
    let groups = if method == Method::Standard { 1 } else { p };
    let w3 = filled(ctx, &[d.cout, d.cin / groups, 3, 3], 3)?;
    let w1 = filled(ctx, &[d.cout, d.cin], 4)?;
    // 1 outside each filter's own block, 0 inside it: the PyTorch form's mask.
    let mask: Vec<f32> = (0..d.cout * d.cin)
        .map(|i| {
            let (o, c) = (i / d.cin, i % d.cin);
            f32::from(o / (d.cout / p) != c / (d.cin / p))
        })
        .collect();
    let mask = Tensor::from_slice(ctx, &[d.cout, d.cin], &mask)?;
    let dense_1x1 = ConvKind::pointwise();
    let w1_only = ConvWeights {
        w1: Some(&w1),
        ..Default::default()
    };
    let forward = || -> Result<()> {
        match method {
            Method::Standard => {
                conv::forward(
                    &ConvKind::standard3x3(),
                    &x,
                    &ConvWeights {
                        w3: Some(&w3),
                        ..Default::default()
                    },
                )?;
            }
            Method::PyTorchForm => {
                let y = conv::forward(
                    &ConvKind::grouped3x3(p),
                    &x,
                    &ConvWeights {
                        w3: Some(&w3),
                        ..Default::default()
                    },
                )?;
                conv::forward_into(&dense_1x1, &x, &w1_only, &y, true)?;
            }
            Method::Unfused => {
                conv::hetconv_unfused_forward(&ConvKind::hetconv(p), &x, &w3, &w1)?;
            }
            Method::Fused => {
                let w = ConvWeights {
                    w3: Some(&w3),
                    w1: Some(&w1),
                    bias: None,
                };
                conv::forward(&ConvKind::hetconv(p), &x, &w)?;
            }
        }
        Ok(())
    };
    let backward = || -> Result<()> {
        match method {
            Method::Standard => {
                let kind = ConvKind::standard3x3();
                conv::backward_input(
                    &kind,
                    &dy,
                    &ConvWeights {
                        w3: Some(&w3),
                        ..Default::default()
                    },
                    x.shape(),
                )?;
                conv::backward_weight(&kind, &x, &dy)?;
            }
            Method::PyTorchForm => {
                let grouped = ConvKind::grouped3x3(p);
                let dx3 = conv::backward_input(
                    &grouped,
                    &dy,
                    &ConvWeights {
                        w3: Some(&w3),
                        ..Default::default()
                    },
                    x.shape(),
                )?;
                let dx1 = conv::backward_input(&dense_1x1, &dy, &w1_only, x.shape())?;
                elementwise::binary(BinaryOp::Add, &dx3, &dx1)?;
                conv::backward_weight(&grouped, &x, &dy)?;
                let dw1 = conv::backward_weight(&dense_1x1, &x, &dy)?
                    .dw1
                    .expect("a 1x1 gradient");
                elementwise::binary(BinaryOp::Mul, &dw1, &mask)?;
            }
            Method::Unfused => {
                let kind = ConvKind::hetconv(p);
                conv::hetconv_unfused_backward_input(&kind, &dy, &w3, &w1, x.shape())?;
                conv::hetconv_unfused_backward_weight(&kind, &x, &dy)?;
            }
            Method::Fused => {
                let kind = ConvKind::hetconv(p);
                let w = ConvWeights {
                    w3: Some(&w3),
                    w1: Some(&w1),
                    bias: None,
                };
                conv::backward_input(&kind, &dy, &w, x.shape())?;
                conv::backward_weight(&kind, &x, &dy)?;
            }
        }
        Ok(())
    };
    let forward_ms = time(ctx, reps, forward)?;
    let step_ms = time(ctx, reps, || {
        forward()?;
        backward()
    })?;
    Ok((forward_ms, step_ms))
}

/// The paper's MAC ratio of HetConv(P) to a standard 3x3 conv: 1/P + (1 - 1/P)/9.
fn mac_ratio(p: usize) -> f64 {
    1.0 / p as f64 + (1.0 - 1.0 / p as f64) / 9.0
}

fn main() -> Result<()> {
    env_logger::init();
    let args = Args::parse();
    let conv_algorithm: ConvAlgorithm =
        args.conv.parse().map_err(hetconv::Error::InvalidArgument)?;
    let ctx = pollster::block_on(Context::new(ContextOptions {
        limits: LimitsChoice::AdapterMaximum,
        conv_algorithm,
        ..Default::default()
    }))?;
    let info = ctx.adapter_info().clone();
    let layers = [(64, 32), (256, 8), (512, 2)];
    let mut rows = Vec::new();
    for (channels, size) in layers {
        let c = channels / args.width_div;
        let d = ConvDims {
            batch: args.batch,
            cin: c,
            cout: c,
            height: size,
            width: size,
        };
        let layer = format!("{c}->{c} @{size}x{size}");
        let (f, s) = measure(&ctx, &d, Method::Standard, 1, args.reps)?;
        let standard_macs = ConvKind::standard3x3().forward_macs(&d);
        eprintln!("{layer}: standard fwd {f:.2} ms, fwd+bwd {s:.2} ms");
        rows.push(Row {
            layer: layer.clone(),
            parts: 1,
            method: Method::Standard,
            forward_ms: f,
            step_ms: s,
            macs: standard_macs,
            standard_step_ms: s,
        });
        for &p in args.parts.iter().filter(|&&p| c % p == 0) {
            for method in [Method::PyTorchForm, Method::Unfused, Method::Fused] {
                let (fw, st) = measure(&ctx, &d, method, p, args.reps)?;
                eprintln!("{layer}: P={p} {method:?} fwd {fw:.2} ms, fwd+bwd {st:.2} ms");
                // Useful MACs (the zero block not counted), so GFLOP/s compare like for like.
                let macs = ConvKind::hetconv(p).forward_macs(&d);
                rows.push(Row {
                    layer: layer.clone(),
                    parts: p,
                    method,
                    forward_ms: fw,
                    step_ms: st,
                    macs,
                    standard_step_ms: s,
                });
            }
        }
    }
    let mut md = format!(
        "Layer benchmark on {} ({:?}, {}), batch {}, channels / {}, conv {}, median of {} runs\n\n\
         | layer | P | method | fwd ms | fwd+bwd ms | fwd GFLOP/s | fwd+bwd time / standard | paper MAC ratio |\n\
         |---|---|---|---|---|---|---|---|\n",
        info.name, info.backend, info.driver, args.batch, args.width_div, args.conv, args.reps
    );
    let mut json = Vec::new();
    for r in &rows {
        let gflops = 2.0 * r.macs as f64 / (r.forward_ms * 1e6);
        let ratio = r.step_ms / r.standard_step_ms;
        let paper = if r.method == Method::Standard {
            1.0
        } else {
            mac_ratio(r.parts)
        };
        md += &format!(
            "| {} | {} | {:?} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} |\n",
            r.layer, r.parts, r.method, r.forward_ms, r.step_ms, gflops, ratio, paper
        );
        json.push(serde_json::json!({
            "layer": r.layer, "parts": r.parts, "method": format!("{:?}", r.method),
            "forward_ms": r.forward_ms, "forward_backward_ms": r.step_ms, "forward_gflops": gflops,
            "ratio_to_standard": ratio, "paper_mac_ratio": paper,
        }));
    }
    println!("{md}");
    let report = serde_json::json!({
        "adapter": info.name, "backend": format!("{:?}", info.backend), "driver": info.driver,
        "driver_info": info.driver_info, "batch": args.batch, "width_div": args.width_div,
        "reps": args.reps, "rows": json,
    });
    let out = std::path::Path::new(&args.out);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| hetconv::Error::Io {
            path: dir.into(),
            source: e,
        })?;
    }
    let write = |ext: &str, text: String| {
        let path = out.with_extension(ext);
        std::fs::write(&path, text).map_err(|e| hetconv::Error::Io { path, source: e })
    };
    write("md", md)?;
    write(
        "json",
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )?;
    Ok(())
}
