//! Trains a small HetConv VGG-16 (P = 4, widths / 8) on synthetic images and prints the falling
//! loss. Each class is a bright square at its own place on a noisy background.
//!
//! ```text
//! cargo run --release --example train_synthetic
//! ```

use hetconv::Model;
use hetconv::kernels::loss::summarize;
use hetconv::kernels::sgd::SgdStep;
use hetconv::nn::{Init, Vgg16, VggConfig};
use hetconv::{Context, Result, Tensor};

const BATCH: usize = 16;
const CLASSES: usize = 4;

/// A batch of synthetic 3x32x32 images and their labels.
fn synthetic_batch(init: &mut Init, step: usize) -> (Vec<f32>, Vec<f32>) {
    let noise = init.normal(BATCH * 3 * 32 * 32, 0.1);
    let mut pixels = vec![0.0f32; BATCH * 3 * 32 * 32];
    let mut labels = Vec::with_capacity(BATCH);
    for b in 0..BATCH {
        let label = (b + step) % CLASSES;
        labels.push(label as f32);
        let (top, left) = (4 + 14 * (label / 2), 4 + 14 * (label % 2));
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let i = ((b * 3 + c) * 32 + y) * 32 + x;
                    let square = (top..top + 10).contains(&y) && (left..left + 10).contains(&x);
                    pixels[i] = (0.3 + if square { 0.6 } else { 0.0 } + noise[i]).clamp(0.0, 1.0);
                }
            }
        }
    }
    (pixels, labels)
}

fn main() -> Result<()> {
    env_logger::init();
    let ctx = Context::new_blocking()?;
    let mut config = VggConfig::paper(4).with_width_mult(1.0 / 8.0);
    config.classes = CLASSES;
    println!(
        "{} — VGG-16 P=4, widths {:?}",
        ctx.adapter_info().name,
        config.widths
    );
    let mut model = Vgg16::new(&ctx, config, 1)?;
    let mut data = Init::new(2);
    let step = SgdStep {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    };
    for i in 0..30 {
        let (pixels, labels) = synthetic_batch(&mut data, i);
        let x = Tensor::from_slice(&ctx, &[BATCH, 3, 32, 32], &pixels)?;
        let y = Tensor::from_slice(&ctx, &[BATCH], &labels)?;
        let out = model.train_step(&x, &y, &step)?;
        if i % 5 == 0 || i == 29 {
            let (loss, accuracy) = summarize(&out.rows.to_vec()?);
            println!(
                "step {i:>3}  loss {loss:.4}  batch accuracy {:.0}%",
                accuracy * 100.0
            );
        }
    }
    Ok(())
}
