//! burn 0.22 (wgpu backend, its default autotune + fusion) peer of `hetconv bench`: the same
//! workload — HetConv VGG-16 for CIFAR-10, SGD momentum 0.9, weight decay 5e-4, random data,
//! warm-up steps excluded — with HetConv written as the PyTorch reproduction computes it: a grouped
//! 3x3 conv plus a dense 1x1 conv whose own block is masked (the weight is multiplied by the mask
//! in the forward pass, so its gradient is masked too).
//!
//! ```text
//! cargo run --release --manifest-path bench/burn-peer/Cargo.toml -- --batch 16 --parts 4 \
//!     --width-mult 0.25 --out bench-results/burn-lavapipe
//! ```

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use clap::Parser;

/// The paper's VGG-16 widths; pools follow convs 2, 4, 7, 10 and 13.
const WIDTHS: [usize; 13] = [
    64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512,
];
const POOL_AFTER: [usize; 5] = [2, 4, 7, 10, 13];

#[derive(Parser, Debug)]
struct Args {
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "16,128")]
    batch: Vec<usize>,
    /// Parts P.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    parts: Vec<usize>,
    /// Width multiplier, rounded exactly as `hetconv bench` rounds it.
    #[arg(long, default_value_t = 1.0)]
    width_mult: f64,
    /// Untimed steps first (autotune, compilation, allocation).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Output path without extension (Markdown + JSON).
    #[arg(long, default_value = "bench-results/burn")]
    out: String,
}

/// HetConv in the PyTorch reproduction's form.
#[derive(Module, Debug)]
struct HetConv {
    gwc: Conv2d,
    pwc: Param<Tensor<4>>,
    #[module(skip)]
    mask: Tensor<4>,
}

impl HetConv {
    fn new(cin: usize, cout: usize, parts: usize, device: &Device) -> Self {
        let gwc = Conv2dConfig::new([cin, cout], [3, 3])
            .with_groups(parts)
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .with_initializer(kaiming_fan_out())
            .init(device);
        let mut mask = vec![1.0f32; cout * cin];
        for o in 0..cout {
            let g = o / (cout / parts);
            let per = cin / parts;
            mask[o * cin + g * per..o * cin + (g + 1) * per].fill(0.0);
        }
        let mask = Tensor::from_data(TensorData::new(mask, [cout, cin, 1, 1]), device);
        let weight: Param<Tensor<4>> =
            kaiming_fan_out().init_with([cout, cin, 1, 1], Some(cin), Some(cout), device);
        // The masked block starts at zero; detached, so the product is a leaf of every step.
        let pwc = Param::from_tensor((weight.val() * mask.clone()).detach());
        Self { gwc, pwc, mask }
    }

    /// # Shapes
    /// `x`: [n, cin, h, w] -> [n, cout, h, w]
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let masked = self.pwc.val() * self.mask.clone();
        let pointwise = conv2d(
            x.clone(),
            masked,
            None,
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        );
        self.gwc.forward(x) + pointwise
    }
}

#[derive(Module, Debug)]
struct Block {
    standard: Option<Conv2d>,
    het: Option<HetConv>,
    bn: BatchNorm,
}

#[derive(Module, Debug)]
struct Vgg {
    blocks: Vec<Block>,
    pool: MaxPool2d,
    fc1: Linear,
    bn1: BatchNorm,
    fc2: Linear,
}

fn kaiming_fan_out() -> Initializer {
    Initializer::KaimingNormal {
        gain: 2f64.sqrt(),
        fan_out_only: true,
    }
}

impl Vgg {
    fn new(widths: &[usize], parts: usize, device: &Device) -> Self {
        let mut cin = 3;
        let blocks = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let (standard, het) = if i == 0 {
                    let conv = Conv2dConfig::new([cin, w], [3, 3])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .with_initializer(kaiming_fan_out())
                        .init(device);
                    (Some(conv), None)
                } else {
                    (None, Some(HetConv::new(cin, w, parts, device)))
                };
                cin = w;
                Block {
                    standard,
                    het,
                    bn: BatchNormConfig::new(w).init(device),
                }
            })
            .collect();
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        };
        Self {
            blocks,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(cin, cin)
                .with_initializer(normal.clone())
                .init(device),
            bn1: BatchNormConfig::new(cin).init(device),
            fc2: LinearConfig::new(cin, 10)
                .with_initializer(normal)
                .init(device),
        }
    }

    /// # Shapes
    /// `x`: [n, 3, 32, 32] -> logits [n, 10]
    fn forward(&self, mut x: Tensor<4>) -> Tensor<2> {
        for (i, block) in self.blocks.iter().enumerate() {
            x = match (&block.standard, &block.het) {
                (Some(conv), _) => conv.forward(x),
                (None, Some(het)) => het.forward(x),
                (None, None) => unreachable!("every block has one conv"),
            };
            x = relu(block.bn.forward(x));
            if POOL_AFTER.contains(&(i + 1)) {
                x = self.pool.forward(x);
            }
        }
        let x: Tensor<2> = x.flatten(1, 3);
        self.fc2
            .forward(relu(self.bn1.forward(self.fc1.forward(x))))
    }
}

/// `hetconv`'s width rounding: a multiple of P, at least P.
fn scaled_widths(mult: f64, parts: usize) -> Vec<usize> {
    WIDTHS
        .iter()
        .map(|&w| (((w as f64 * mult) / parts as f64).round() as usize).max(1) * parts)
        .collect()
}

struct Timing {
    step_ms: f64,
    forward_ms: f64,
}

fn measure(args: &Args, batch: usize, parts: usize) -> Timing {
    let device = Device::wgpu(Default::default()).autodiff();
    let widths = scaled_widths(args.width_mult, parts);
    let mut model = Vgg::new(&widths, parts, &device);
    let x: Tensor<4> = Tensor::random([batch, 3, 32, 32], Distribution::Default, &device);
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    let y: Tensor<1, Int> = Tensor::from_data(TensorData::new(labels, [batch]), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
        .with_weight_decay(Some(WeightDecayConfig::new(5e-4)))
        .init();
    let mut step = |model: Vgg| {
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(0.01, model, grads)
    };
    for _ in 0..args.warmup {
        model = step(model);
        device.sync().expect("sync");
    }
    let start = Instant::now();
    for _ in 0..args.steps {
        model = step(model);
    }
    device.sync().expect("sync");
    let step_ms = start.elapsed().as_secs_f64() * 1e3 / args.steps as f64;

    let inference = model.valid();
    let x = x.inner();
    let forward = || inference.forward(x.clone());
    for _ in 0..args.warmup {
        let _ = forward();
        device.sync().expect("sync");
    }
    let start = Instant::now();
    for _ in 0..args.steps {
        let _ = forward();
    }
    device.sync().expect("sync");
    Timing {
        step_ms,
        forward_ms: start.elapsed().as_secs_f64() * 1e3 / args.steps as f64,
    }
}

fn main() {
    let args = Args::parse();
    let mut rows = Vec::new();
    for &batch in &args.batch {
        for &parts in &args.parts {
            let t = measure(&args, batch, parts);
            eprintln!(
                "burn batch {batch} P={parts}: {:.2} ms/step, {:.2} ms forward",
                t.step_ms, t.forward_ms
            );
            rows.push(serde_json::json!({
                "batch": batch, "parts": parts, "width_mult": args.width_mult,
                "step_ms": t.step_ms, "forward_ms": t.forward_ms,
                "images_per_second": batch as f64 / (t.step_ms / 1e3),
            }));
        }
    }
    let mut md = format!(
        "burn 0.22 (wgpu backend, autotune + fusion) training step of HetConv VGG-16 \
         (PyTorch reproduction's form, width x{}); SGD momentum; {} warm-up steps excluded, mean of {} steps\n\n\
         | batch | P | step ms | forward ms | images/s |\n|---|---|---|---|---|\n",
        args.width_mult, args.warmup, args.steps
    );
    for r in &rows {
        md += &format!(
            "| {} | {} | {:.2} | {:.2} | {:.0} |\n",
            r["batch"],
            r["parts"],
            r["step_ms"].as_f64().unwrap_or(f64::NAN),
            r["forward_ms"].as_f64().unwrap_or(f64::NAN),
            r["images_per_second"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!("{md}");
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let report = serde_json::json!({
        "library": "burn 0.22.0 (wgpu backend, default features: autotune, fusion)",
        "workload": "HetConv VGG-16 for CIFAR-10 (32x32x3, 10 classes), SGD momentum 0.9, wd 5e-4",
        "unix_time": stamp, "warmup": args.warmup, "steps": args.steps, "rows": rows,
    });
    std::fs::write(format!("{}.md", args.out), md).expect("write Markdown");
    std::fs::write(
        format!("{}.json", args.out),
        serde_json::to_string_pretty(&report).expect("JSON"),
    )
    .expect("write JSON");
}
