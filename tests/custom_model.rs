//! The model interface: a network that is not the zoo's trains with the shared trainer,
//! evaluates, and round-trips through a checkpoint into a network built afresh; the zoo's
//! VGG-16 built through `Architecture` is the VGG-16 built directly, bit for bit.

mod common;

use std::collections::HashMap;

use common::{ctx, fixtures, tiny_vgg};
use hetconv::autograd::{Tape, Var, ops};
use hetconv::checkpoint::{CUSTOM_MODEL, Checkpoint, META_CONFIG, META_MODEL};
use hetconv::data::{Dataset, Normalize, cifar};
use hetconv::model::InputShape;
use hetconv::nn::{
    BatchNorm, Conv2d, ConvMode, Init, Linear, ParamStore, ParamStoreBuilder, Vgg16,
};
use hetconv::optim::{LrSchedule, Schedule};
use hetconv::train::{Progress, TrainSettings, Trainer, evaluate};
use hetconv::{Architecture, Context, Model, Result, Tensor};

/// Conv 3 -> `width` (standard), HetConv(2) `width` -> `width`, each with BN + ReLU and a 2x2
/// pool, then a linear layer: not a network of the zoo.
struct TwoBlockNet {
    store: ParamStore,
    blocks: Vec<(Conv2d, BatchNorm)>,
    fc: Linear,
}

impl TwoBlockNet {
    fn new(ctx: &Context, width: usize, seed: u64) -> Result<Self> {
        let mut init = Init::new(seed);
        let mut b = ParamStoreBuilder::default();
        let first = Conv2d::standard(&mut b, &mut init, "stem", (3, width), true)?;
        let first_bn = BatchNorm::new(&mut b, "stem_bn", width).with_relu();
        let second = Conv2d::hetconv(&mut b, &mut init, "body", (width, width), 2)?;
        let second_bn = BatchNorm::new(&mut b, "body_bn", width).with_relu();
        let fc = Linear::new(&mut b, &mut init, "head", (width * 8 * 8, 10), 0.01);
        Ok(Self {
            store: b.build(ctx)?,
            blocks: vec![(first, first_bn), (second, second_bn)],
            fc,
        })
    }
}

impl Model for TwoBlockNet {
    fn store(&self) -> &ParamStore {
        &self.store
    }

    fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    fn input(&self) -> InputShape {
        InputShape {
            channels: 3,
            size: 32,
        }
    }

    fn classes(&self) -> usize {
        10
    }

    fn forward(&self, tape: &mut Tape, x: &Tensor, train: bool) -> Result<Var> {
        self.input().check("TwoBlockNet forward", x)?;
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

fn cifar20() -> Dataset {
    cifar::parse(
        &std::fs::read(fixtures().join("cifar10_test_first20.bin")).unwrap(),
        "cifar20",
    )
    .unwrap()
}

fn settings() -> TrainSettings {
    TrainSettings {
        epochs: 2,
        max_steps: None,
        batch_size: 5,
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
        seed: 4,
        report_every: 1,
        precision: Default::default(),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_custom_network_trains_evaluates_and_round_trips_through_a_checkpoint() {
    let ctx = ctx();
    let data = cifar20();
    let mut trainer = Trainer::new(
        TwoBlockNet::new(&ctx, 4, 1).unwrap(),
        data.clone(),
        settings(),
        Progress::default(),
    )
    .unwrap();
    let before = pollster::block_on(trainer.model().store().snapshot()).unwrap();
    let mut losses = Vec::new();
    while !trainer.is_done() {
        let report = pollster::block_on(trainer.step()).unwrap();
        losses.push(report.metrics.unwrap().0);
    }
    assert_eq!(losses.len(), 8, "2 epochs of 20 images in batches of 5");
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let net = trainer.into_model();
    let after = pollster::block_on(net.store().snapshot()).unwrap();
    assert_ne!(before.params, after.params, "training changed no parameter");
    assert_ne!(
        before.buffers, after.buffers,
        "BatchNorm's running estimates never moved"
    );
    let report = pollster::block_on(evaluate(&net, &data, 7, None)).unwrap();
    assert_eq!(report.images, 20);

    let ckpt = Checkpoint::from_model_blocking(&net, true, HashMap::new()).unwrap();
    assert_eq!(ckpt.architecture, None);
    assert_eq!(
        ckpt.metadata.get(META_MODEL).map(String::as_str),
        Some(CUSTOM_MODEL)
    );
    assert!(!ckpt.metadata.contains_key(META_CONFIG));
    let bytes = ckpt.to_bytes().unwrap();
    let loaded = Checkpoint::from_bytes(&bytes, "custom.safetensors").unwrap();
    assert_eq!(loaded.architecture, None);
    // A custom network's gwc/pwc pair may be anything: it is never folded.
    let mut edited = ckpt.clone();
    edited.tensors.get_mut("body.pwc.weight").unwrap()[0] = 0.5;
    let reread = Checkpoint::from_bytes(&edited.to_bytes().unwrap(), "edited").unwrap();
    assert_eq!(reread.folded, 0);
    assert_eq!(reread.tensors["body.pwc.weight"][0], 0.5);
    let names: Vec<&str> = loaded.layout.iter().map(|(n, _)| n.as_str()).collect();
    for name in [
        "stem.weight",
        "body.gwc.weight",
        "body_bn.running_var",
        "head.bias",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let err = loaded
        .build_model(&ctx, ConvMode::Fused)
        .err()
        .expect("a custom network cannot be rebuilt from the file alone")
        .to_string();
    assert!(err.contains("custom network"), "{err}");

    // Loaded into a network built afresh from another seed: the same parameters, momentum,
    // running estimates and eval-mode logits, bit for bit.
    let mut fresh = TwoBlockNet::new(&ctx, 4, 99).unwrap();
    loaded.apply(&mut fresh).unwrap();
    let restored = pollster::block_on(fresh.store().snapshot()).unwrap();
    assert_eq!(restored, after);
    let (x, _, _, _) = common::image_batch(&ctx, 3, 5);
    assert_eq!(
        bits(&net.predict(&x).unwrap().to_vec().unwrap()),
        bits(&fresh.predict(&x).unwrap().to_vec().unwrap())
    );
    assert_eq!(
        pollster::block_on(evaluate(&fresh, &data, 7, None)).unwrap(),
        report
    );

    // Into a network of another shape: an error naming the tensor and both shapes.
    let mut wider = TwoBlockNet::new(&ctx, 6, 1).unwrap();
    let err = loaded.apply(&mut wider).unwrap_err().to_string();
    assert!(
        err.contains("stem.weight") && err.contains("[4, 3, 3, 3]") && err.contains("[6, 3, 3, 3]"),
        "{err}"
    );
    // Into the zoo's VGG: the first tensor the checkpoint lacks is named.
    let mut vgg = Vgg16::new(&ctx, tiny_vgg(2, ConvMode::Fused), 0).unwrap();
    let err = loaded.apply(&mut vgg).unwrap_err().to_string();
    assert!(err.contains("features.0.weight"), "{err}");
}

#[test]
fn the_zoo_builds_the_same_vgg_as_the_constructor_and_names_it_in_checkpoints() {
    let ctx = ctx();
    let config = tiny_vgg(2, ConvMode::Fused);
    let direct = Vgg16::new(&ctx, config.clone(), 7).unwrap();
    let arch = Architecture::Vgg16(config.clone());
    let boxed = arch.build(&ctx, 7).unwrap();
    assert_eq!(boxed.architecture(), Some(arch.clone()));
    assert_eq!(
        pollster::block_on(direct.store().snapshot()).unwrap(),
        pollster::block_on(boxed.store().snapshot()).unwrap()
    );
    assert_eq!(arch.layout().unwrap(), direct.store().layout());

    let ckpt = Checkpoint::from_model_blocking(&boxed, false, HashMap::new()).unwrap();
    assert_eq!(
        ckpt.metadata.get(META_MODEL).map(String::as_str),
        Some("vgg16")
    );
    let json = &ckpt.metadata[META_CONFIG];
    assert!(json.contains("\"model\":\"vgg16\""), "{json}");
    assert_eq!(Architecture::from_json(json).unwrap(), arch);
    // Checkpoints written before the zoo had a tag hold the bare VGG config.
    let bare = serde_json::to_string(&config).unwrap();
    assert_eq!(Architecture::from_json(&bare).unwrap(), arch);
    assert!(Architecture::from_json("{\"model\":\"vgg17\"}").is_err());

    // Another VGG's checkpoint does not load: both networks are named.
    let other = Vgg16::new(&ctx, tiny_vgg(4, ConvMode::Fused), 7).unwrap();
    let mut other = other;
    let err = ckpt.apply(&mut other).unwrap_err().to_string();
    assert!(err.contains("P=2") && err.contains("P=4"), "{err}");

    // Weights trained on normalised input do not go silently into a model that feeds them raw
    // pixels; weights that record no normalisation (a PyTorch file) go into either.
    let normalised = arch.clone().with_normalize(Some(Normalize::imagenet()));
    let trained = normalised.build(&ctx, 7).unwrap();
    let normalised_ckpt = Checkpoint::from_model_blocking(&trained, false, HashMap::new()).unwrap();
    let mut plain = arch.build(&ctx, 7).unwrap();
    let err = normalised_ckpt.apply(&mut plain).unwrap_err().to_string();
    assert!(err.contains("normalis") && err.contains("0.485"), "{err}");
    let mut again = normalised.build(&ctx, 1).unwrap();
    normalised_ckpt.apply(&mut again).unwrap();
    ckpt.apply(&mut again).unwrap();
}
