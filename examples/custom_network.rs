//! Your own network from hetconv's parts: a small HetConv CNN (not the VGG-16) built from the
//! parameter store, the tape and the differentiable ops, trained with SGD on the embedded
//! Fashion-MNIST subset; it prints the falling loss and the test accuracy.
//!
//! ```text
//! cargo run --release --example custom_network
//! ```
//!
//! The network: a standard 3x3 conv (1 -> 16), then HetConv(P = 4) layers 16 -> 32 and 32 -> 64,
//! each followed by BatchNorm + ReLU and a 2x2 max-pool, then one linear layer.

use hetconv::autograd::{Tape, Var, ops};
use hetconv::data::{Batcher, Dataset, embedded};
use hetconv::kernels::loss;
use hetconv::kernels::sgd::SgdStep;
use hetconv::nn::{BatchNorm, Conv3x3, Init, Linear, ParamStore, ParamStoreBuilder};
use hetconv::{Context, Result, Tensor};

const PARTS: usize = 4;
const BATCH: usize = 64;
const STEPS: usize = 300;

struct SmallNet {
    store: ParamStore,
    /// Conv + BatchNorm (+ ReLU), each followed by a 2x2 max-pool.
    blocks: Vec<(Conv3x3, BatchNorm)>,
    fc: Linear,
}

impl SmallNet {
    fn new(ctx: &Context, classes: usize, seed: u64) -> Result<Self> {
        let mut init = Init::new(seed);
        let mut b = ParamStoreBuilder::default();
        let mut blocks = Vec::new();
        for (i, (cin, cout)) in [(1, 16), (16, 32), (32, 64)].into_iter().enumerate() {
            let prefix = format!("block{i}");
            let conv = if i == 0 {
                Conv3x3::standard(&mut b, &mut init, &prefix, (cin, cout), false)?
            } else {
                Conv3x3::hetconv(&mut b, &mut init, &prefix, (cin, cout), PARTS)?
            };
            let bn = BatchNorm::new(&mut b, &format!("{prefix}.bn"), cout).with_relu();
            blocks.push((conv, bn));
        }
        let fc = Linear::new(&mut b, &mut init, "fc", (64 * 4 * 4, classes), 0.01);
        Ok(Self {
            store: b.build(ctx)?,
            blocks,
            fc,
        })
    }

    /// Logits; in training mode BatchNorm uses batch statistics and the tape records the
    /// backward pass.
    ///
    /// # Shapes
    /// `x`: [B, 1, 32, 32] → [B, classes]
    fn forward(&self, tape: &mut Tape, x: &Tensor, train: bool) -> Result<Var> {
        let mut h = tape.constant(x.clone());
        for (conv, bn) in &self.blocks {
            h = conv.forward(tape, &self.store, &h)?;
            h = bn.forward(tape, &self.store, &h, train)?;
            h = ops::max_pool2(tape, &h)?;
        }
        h = ops::flatten(tape, &h)?;
        self.fc.forward(tape, &self.store, &h)
    }

    /// One SGD step; returns the per-row (loss, correct) values, still on the GPU.
    fn train_step(&mut self, x: &Tensor, labels: &Tensor, step: &SgdStep) -> Result<Tensor> {
        self.store.zero_grads();
        let mut tape = Tape::new();
        let logits = self.forward(&mut tape, x, true)?;
        let ce = loss::softmax_cross_entropy(logits.value(), labels)?;
        tape.backward(&logits, ce.dlogits, &mut self.store)?;
        self.store.sgd_step(step, None)?;
        Ok(ce.rows)
    }
}

fn upload(
    ctx: &Context,
    batcher: &Batcher,
    data: &Dataset,
    indices: &[usize],
    step: u64,
) -> Result<(Tensor, Tensor)> {
    let batch = batcher.batch(data, indices, step);
    let x = Tensor::from_slice(ctx, &[batch.len, 1, 32, 32], &batch.pixels)?;
    let labels = Tensor::from_slice(ctx, &[batch.len], &batch.labels)?;
    Ok((x, labels))
}

fn main() -> Result<()> {
    env_logger::init();
    let ctx = Context::new_blocking()?;
    let data = embedded::fashion_mnist_subset()?;
    let mut net = SmallNet::new(&ctx, data.train.classes(), 1)?;
    println!(
        "adapter: {}; {} parameters",
        ctx.adapter_info().name,
        net.store.numel()
    );
    let batcher = Batcher {
        batch_size: BATCH,
        size: 32,
        channels: 1,
        augment: None,
        normalize: None,
        shuffle: true,
        seed: 1,
    };
    let sgd = SgdStep {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    };

    let steps_per_epoch = batcher.steps_per_epoch(data.train.len());
    let mut order = Vec::new();
    for step in 0..STEPS {
        let (epoch, within) = (step / steps_per_epoch, step % steps_per_epoch);
        if within == 0 {
            order = batcher.epoch_order(data.train.len(), epoch);
        }
        let (x, labels) = upload(
            &ctx,
            &batcher,
            &data.train,
            &order[within * BATCH..(within + 1) * BATCH],
            step as u64,
        )?;
        let rows = net.train_step(&x, &labels, &sgd)?;
        if step % 50 == 0 || step == STEPS - 1 {
            let (loss, accuracy) = loss::summarize(&rows.to_vec()?);
            println!(
                "step {step:4}: loss {loss:.4}, batch accuracy {:.1}%",
                100.0 * accuracy
            );
        }
    }

    // Test accuracy with the running BatchNorm estimates.
    let test = &data.test;
    let (mut correct, mut seen) = (0.0, 0);
    let all: Vec<usize> = (0..test.len()).collect();
    for (i, chunk) in all.chunks(100).enumerate() {
        let (x, labels) = upload(&ctx, &batcher, test, chunk, i as u64)?;
        let logits = net.forward(&mut Tape::inference(), &x, false)?;
        let (_, accuracy) = loss::summarize(
            &loss::softmax_cross_entropy(logits.value(), &labels)?
                .rows
                .to_vec()?,
        );
        correct += accuracy * chunk.len() as f64;
        seen += chunk.len();
    }
    println!(
        "test accuracy: {:.1}% on {seen} images",
        100.0 * correct / seen as f64
    );
    Ok(())
}
