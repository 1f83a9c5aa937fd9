//! HetConv ResNets, built from a [`ResNetConfig`] with torchvision's parameter names:
//! torchvision's ImageNet ResNets (`resnet18/34` basic blocks, `resnet50/101/152` bottlenecks)
//! and He et al.'s CIFAR ResNets (`resnet20/32/44/56/110`). Every 3x3 conv of a residual block
//! is HetConv(P) (`layerS.B.convN.gwc.weight` / `.pwc.weight`; the strided ones included, both
//! parts strided); the stem, the 1x1 convs and the projection shortcuts stay standard. At P = 1
//! the blocks' 3x3 convs are standard convs named as torchvision names them
//! (`layerS.B.convN.weight`), so a torchvision checkpoint saved as safetensors loads.

use std::sync::Arc;

use super::init::Init;
use super::layers::{BatchNorm, Conv2d, ConvMode, InputNormalize, Linear};
use super::params::{ParamStore, ParamStoreBuilder};
use super::resnet_shape::{ResNetConfig, ResNetConv, ResNetLayout};
use crate::autograd::{Tape, Var, ops};
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::kernels::pool::PoolWindow;
use crate::model::{Architecture, InputShape, Model};
use crate::tensor::Tensor;

/// A conv and the BatchNorm after it (with ReLU in the same kernel, or without).
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: &Var, train: bool) -> Result<Var> {
        let h = self.conv.forward(tape, store, x)?;
        self.bn.forward(tape, store, &h, train)
    }
}

/// One residual block: its convs (ReLU after each BN but the last), the projection shortcut
/// where the block changes shape, then `relu(body + shortcut)`.
struct Block {
    /// `layerS.B`: the name profiles give the block.
    name: Arc<str>,
    body: Vec<ConvBn>,
    shortcut: Option<ConvBn>,
}

/// A HetConv ResNet whose parameters live on one GPU context.
pub struct ResNet {
    config: ResNetConfig,
    store: ParamStore,
    input: Option<InputNormalize>,
    stem: ConvBn,
    blocks: Vec<Block>,
    fc: Linear,
}

/// The conv of one [`ResNetConv`]: HetConv(P) for a block's 3x3 conv when P > 1, standard
/// (no bias) otherwise, with its stride.
fn conv_layer(
    b: &mut ParamStoreBuilder,
    init: &mut Init,
    conv: &ResNetConv,
    parts: usize,
    mode: ConvMode,
) -> Result<Conv2d> {
    let channels = (conv.cin, conv.cout);
    let layer = if conv.hetconv && parts > 1 {
        Conv2d::hetconv(b, init, &conv.name, channels, parts)?.with_mode(mode)
    } else {
        Conv2d::square(b, init, &conv.name, channels, conv.kernel, false)?
    };
    layer.with_stride(conv.stride)
}

impl ResNet {
    /// Builds the network with torchvision's initialisation: conv weights kaiming-normal
    /// (fan-out, ReLU gain), BN weight 1 and bias 0; the final linear layer N(0, 0.01²) with
    /// bias 0 (as the VGG's classifier); the masked block of every 1x1 weight is exactly zero.
    pub fn new(ctx: &Context, config: ResNetConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let bytes = crate::flops::resnet_cost(&config)
            .params_stored
            .saturating_mul(4);
        if bytes > ctx.max_binding_bytes() {
            return Err(Error::Limit {
                op: "ResNet::new (all parameters in one buffer)",
                limit: "max_storage_buffer_binding_size",
                asked: bytes,
                allowed: ctx.max_binding_bytes(),
            });
        }
        let (builder, stem, blocks, fc) = Self::assemble(&config, seed)?;
        let input = config
            .normalize
            .as_ref()
            .map(|n| InputNormalize::new(ctx, n, config.in_channels))
            .transpose()?;
        Ok(Self {
            config,
            store: builder.build(ctx)?,
            input,
            stem,
            blocks,
            fc,
        })
    }

    /// Every tensor a model of `config` has, in store order: (name, shape), without a GPU.
    pub fn layout(config: &ResNetConfig) -> Result<Vec<(String, Vec<usize>)>> {
        config.validate()?;
        Ok(Self::assemble(config, 0)?.0.layout())
    }

    /// The layers, their parameters registered (with initial values) in a builder in
    /// torchvision's order: conv1, bn1, each block's convs and BNs, its downsample, then fc.
    fn assemble(
        config: &ResNetConfig,
        seed: u64,
    ) -> Result<(ParamStoreBuilder, ConvBn, Vec<Block>, Linear)> {
        let mut init = Init::new(seed);
        let mut b = ParamStoreBuilder::default();
        let mut convs = config.convs().into_iter();
        let stem = convs.next().ok_or_else(|| {
            Error::InvalidArgument(format!("{}: the network has no convs", config.name()))
        })?;
        let stem = ConvBn {
            conv: conv_layer(&mut b, &mut init, &stem, config.parts, config.mode)?,
            bn: BatchNorm::new(&mut b, &stem.bn, stem.cout).with_relu(),
        };
        let mut blocks: Vec<Block> = Vec::new();
        for conv in convs {
            // `layerS.B.convN` or `layerS.B.downsample.0`: the block is the first two parts.
            let block: String = conv.name.split('.').take(2).collect::<Vec<_>>().join(".");
            if blocks.last().is_none_or(|b| *b.name != *block) {
                blocks.push(Block {
                    name: block.as_str().into(),
                    body: Vec::new(),
                    shortcut: None,
                });
            }
            let layer = conv_layer(&mut b, &mut init, &conv, config.parts, config.mode)?;
            let bn = BatchNorm::new(&mut b, &conv.bn, conv.cout);
            let current = blocks.last_mut().expect("a block was pushed above");
            if conv.name.ends_with(".downsample.0") {
                current.shortcut = Some(ConvBn { conv: layer, bn });
            } else {
                current.body.push(ConvBn { conv: layer, bn });
            }
        }
        // ReLU follows every BN of a block's body but the last (it follows the sum instead).
        for block in &mut blocks {
            let last = block.body.len().saturating_sub(1);
            for layer in &mut block.body[..last] {
                layer.bn = layer.bn.clone().with_relu();
            }
        }
        let fc = Linear::new(
            &mut b,
            &mut init,
            "fc",
            (config.features(), config.classes),
            0.01,
        );
        Ok((b, stem, blocks, fc))
    }

    /// The configuration.
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// The forward pass, each block recorded under its name (see [`Context::set_layer`]).
    fn layers(&self, tape: &mut Tape, x: &Tensor, train: bool) -> Result<Var> {
        let ctx = x.context();
        let store = &self.store;
        let mut input = ops::input(tape, x)?;
        if let Some(normalize) = &self.input {
            ctx.set_layer(Some("input".into()));
            input = normalize.forward(tape, &input)?;
        }
        ctx.set_layer(Some("conv1".into()));
        let mut h = self.stem.forward(tape, store, &input, train)?;
        if self.config.layout() == Some(ResNetLayout::ImageNet) {
            h = ops::max_pool(tape, &h, PoolWindow::RESNET_STEM)?;
        }
        for block in &self.blocks {
            ctx.set_layer(Some(block.name.clone()));
            let mut body = h.clone();
            for layer in &block.body {
                body = layer.forward(tape, store, &body, train)?;
            }
            let shortcut = match &block.shortcut {
                Some(projection) => projection.forward(tape, store, &h, train)?,
                None => h,
            };
            let sum = ops::add(tape, &body, &shortcut)?;
            h = ops::relu(tape, &sum)?;
        }
        ctx.set_layer(Some("fc".into()));
        let pooled = ops::global_average_pool(tape, &h)?;
        self.fc.forward(tape, store, &pooled)
    }
}

impl Model for ResNet {
    fn store(&self) -> &ParamStore {
        &self.store
    }

    fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    fn input(&self) -> InputShape {
        InputShape {
            channels: self.config.in_channels,
            size: self.config.image_size,
        }
    }

    fn classes(&self) -> usize {
        self.config.classes
    }

    fn forward(&self, tape: &mut Tape, x: &Tensor, train: bool) -> Result<Var> {
        self.input().check("resnet forward", x)?;
        x.context().in_layers(|| self.layers(tape, x, train))
    }

    fn architecture(&self) -> Option<Architecture> {
        Some(Architecture::ResNet(self.config.clone()))
    }
}
