//! Your own network from hetconv's parts: a small HetConv CNN (not the VGG-16) built from the
//! parameter store, the layers and the differentiable ops. Implementing [`Model`] is all it
//! takes to train it with hetconv's [`Trainer`] on the embedded Fashion-MNIST subset, evaluate
//! it, and save and reload it as a safetensors checkpoint; it prints the falling loss, the test
//! accuracy, and the reloaded network's agreement with the trained one.
//!
//! ```text
//! cargo run --release --example custom_network
//! ```
//!
//! The network: a standard 3x3 conv (1 -> 16), then HetConv(P = 4) layers 16 -> 32 and 32 -> 64,
//! each followed by BatchNorm + ReLU and a 2x2 max-pool, then one linear layer.

use std::collections::HashMap;

use hetconv::autograd::{Tape, Var, ops};
use hetconv::checkpoint::{self, Checkpoint};
use hetconv::data::embedded;
use hetconv::model::InputShape;
use hetconv::nn::{BatchNorm, Conv2d, Init, Linear, ParamStore, ParamStoreBuilder};
use hetconv::optim::{LrSchedule, Schedule};
use hetconv::train::{Progress, TrainSettings, Trainer, evaluate};
use hetconv::{Context, Error, Model, Result, Tensor};

const PARTS: usize = 4;
const BATCH: usize = 64;
const STEPS: u64 = 300;

struct SmallNet {
    store: ParamStore,
    classes: usize,
    /// Conv + BatchNorm (+ ReLU), each followed by a 2x2 max-pool.
    blocks: Vec<(Conv2d, BatchNorm)>,
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
                Conv2d::standard(&mut b, &mut init, &prefix, (cin, cout), false)?
            } else {
                Conv2d::hetconv(&mut b, &mut init, &prefix, (cin, cout), PARTS)?
            };
            let bn = BatchNorm::new(&mut b, &format!("{prefix}.bn"), cout).with_relu();
            blocks.push((conv, bn));
        }
        let fc = Linear::new(&mut b, &mut init, "fc", (64 * 4 * 4, classes), 0.01);
        Ok(Self {
            store: b.build(ctx)?,
            classes,
            blocks,
            fc,
        })
    }
}

impl Model for SmallNet {
    fn store(&self) -> &ParamStore {
        &self.store
    }

    fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    fn input(&self) -> InputShape {
        InputShape {
            channels: 1,
            size: 32,
        }
    }

    fn classes(&self) -> usize {
        self.classes
    }

    /// # Shapes
    /// `x`: [B, 1, 32, 32] → [B, classes]
    fn forward(&self, tape: &mut Tape, x: &Tensor, train: bool) -> Result<Var> {
        self.input().check("SmallNet forward", x)?;
        // Stored as the precision's activations (f16 under mixed precision).
        let mut h = ops::input(tape, x)?;
        for (conv, bn) in &self.blocks {
            h = conv.forward(tape, &self.store, &h)?;
            h = bn.forward(tape, &self.store, &h, train)?;
            h = ops::max_pool2(tape, &h)?;
        }
        h = ops::flatten(tape, &h)?;
        self.fc.forward(tape, &self.store, &h)
    }
}

fn main() -> Result<()> {
    env_logger::init();
    let ctx = Context::new_blocking()?;
    let data = embedded::fashion_mnist_subset()?;
    let classes = data.train.classes();
    let net = SmallNet::new(&ctx, classes, 1)?;
    println!(
        "adapter: {}; {} parameters",
        ctx.adapter_info().name,
        net.store.numel()
    );
    let settings = TrainSettings {
        epochs: 100,
        max_steps: Some(STEPS),
        batch_size: BATCH,
        lr: LrSchedule {
            base_lr: 0.05,
            schedule: Schedule::Constant,
            warmup_epochs: 0.0,
        },
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
        augment: None,
        shuffle: true,
        seed: 1,
        report_every: 50,
        precision: Default::default(),
    };
    let mut trainer = Trainer::new(net, data.train.clone(), settings, Progress::default())?;
    while !trainer.is_done() {
        let report = pollster::block_on(trainer.step())?;
        if let Some((loss, accuracy)) = report.metrics {
            println!(
                "step {:4}: loss {loss:.4}, batch accuracy {:.1}%",
                report.step,
                100.0 * accuracy
            );
        }
    }
    let net = trainer.into_model();
    let report = pollster::block_on(evaluate(&net, &data.test, 100, None))?;
    println!(
        "test accuracy: {:.1}% on {} images",
        100.0 * report.accuracy,
        report.images
    );

    // Save, then load into a network built afresh (another seed): the same predictions.
    let path =
        std::env::temp_dir().join(format!("custom_network-{}.safetensors", std::process::id()));
    checkpoint::save(
        &path,
        &Checkpoint::from_model_blocking(&net, true, HashMap::new())?,
    )?;
    let mut reloaded = SmallNet::new(&ctx, classes, 2)?;
    checkpoint::load(&path)?.apply(&mut reloaded)?;
    std::fs::remove_file(&path).map_err(|e| Error::Io {
        path: path.clone(),
        source: e,
    })?;
    let again = pollster::block_on(evaluate(&reloaded, &data.test, 100, None))?;
    if again != report {
        return Err(Error::InvalidArgument(format!(
            "the reloaded network evaluates to {:.4}% (loss {}), the trained one to {:.4}% (loss {})",
            100.0 * again.accuracy,
            again.loss,
            100.0 * report.accuracy,
            report.loss
        )));
    }
    println!(
        "checkpoint round trip: the reloaded network gives the same loss ({:.6}) and accuracy",
        again.loss
    );
    Ok(())
}
