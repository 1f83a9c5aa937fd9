//! HetConv VGG-16 for CIFAR-10, exactly as the paper's PyTorch reproduction builds it:
//! 13 convs (conv 1 plain with bias, convs 2..13 HetConv(P) without bias), each followed by
//! BatchNorm2d and ReLU, a 2x2 max-pool after convs 2, 4, 7, 10 and 13, then
//! Linear -> BatchNorm1d -> ReLU -> Linear. Parameter names follow that model's state_dict.

use super::init::Init;
use super::layers::{BatchNorm, Conv2d, ConvMode, InputNormalize, Linear};
use super::params::{ParamStore, ParamStoreBuilder};
use crate::autograd::{Tape, Var, ops};
use crate::data::Normalize;
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::model::{Architecture, InputShape, Model};
use crate::tensor::Tensor;

/// The paper's conv widths.
pub const PAPER_WIDTHS: [usize; 13] = [
    64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512,
];

/// Convs (1-based) followed by a 2x2 max-pool.
const POOL_AFTER: [usize; 5] = [2, 4, 7, 10, 13];

/// The shape of a VGG-16.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VggConfig {
    /// Output channels of the 13 convs.
    pub widths: Vec<usize>,
    /// HetConv part P of convs 2..13.
    pub parts: usize,
    /// Input channels (3 for CIFAR-10, 1 for MNIST).
    pub in_channels: usize,
    /// Input height = width (a multiple of 32).
    pub image_size: usize,
    /// Output classes.
    pub classes: usize,
    /// Hidden size of the classifier (the paper: the last width, 512).
    pub hidden: usize,
    /// Fused or unfused HetConv kernels.
    pub mode: ConvMode,
    /// The normalisation the network applies to its input pixels in [0, 1] (none: it takes
    /// them as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalize>,
}

/// One layer of the network, in order, for naming and counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VggLayer {
    /// A 3x3 conv (+ BN + ReLU) at `features.{index}`.
    Conv {
        /// Index in the PyTorch `features` Sequential.
        index: usize,
        /// Input channels.
        cin: usize,
        /// Output channels.
        cout: usize,
        /// Height = width of input and output.
        size: usize,
        /// HetConv(P) (convs 2..13) or a plain conv with bias (conv 1).
        hetconv: bool,
    },
    /// A 2x2 max-pool at `features.{index}`.
    Pool {
        /// Index in `features`.
        index: usize,
    },
}

impl VggConfig {
    /// The paper's VGG-16 for CIFAR-10 with part `parts`.
    pub fn paper(parts: usize) -> Self {
        Self {
            widths: PAPER_WIDTHS.to_vec(),
            parts,
            in_channels: 3,
            image_size: 32,
            classes: 10,
            hidden: 512,
            mode: ConvMode::Fused,
            normalize: None,
        }
    }

    /// Scales every width (and the classifier's hidden size) by `mult`, rounding to a multiple
    /// of `parts` (at least `parts`).
    pub fn with_width_mult(mut self, mult: f64) -> Self {
        let p = self.parts.max(1);
        let scale = |w: usize| (((w as f64 * mult) / p as f64).round() as usize).max(1) * p;
        self.widths = self.widths.iter().map(|&w| scale(w)).collect();
        self.hidden = *self.widths.last().unwrap_or(&self.hidden);
        self
    }

    /// Checks that the shape is buildable; the error names what is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("VGG config: {m}")));
        if self.widths.len() != 13 {
            return bad(format!("needs 13 conv widths, got {}", self.widths.len()));
        }
        if self.parts == 0 {
            return bad("part P must be at least 1".into());
        }
        if self.image_size == 0 || !self.image_size.is_multiple_of(32) {
            return bad(format!(
                "image size {} is not a multiple of 32 (five 2x2 pools)",
                self.image_size
            ));
        }
        if self.in_channels == 0
            || self.classes == 0
            || self.hidden == 0
            || self.widths.contains(&0)
        {
            return bad("channels, classes, hidden size and widths must be positive".into());
        }
        let widest = self
            .widths
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(self.hidden);
        if self.in_channels > super::MAX_IN_CHANNELS
            || self.classes > super::MAX_CLASSES
            || self.image_size > super::MAX_IMAGE_SIDE
            || widest > super::MAX_WIDTH
        {
            return bad(format!(
                "{} input channels, {} classes, image size {}, a layer of {widest}: at most {}, {}, {} and {}",
                self.in_channels,
                self.classes,
                self.image_size,
                super::MAX_IN_CHANNELS,
                super::MAX_CLASSES,
                super::MAX_IMAGE_SIDE,
                super::MAX_WIDTH
            ));
        }
        // Within those bounds the count is far below 2^64 (at most about 2^43).
        let convs: u64 = std::iter::once(self.in_channels)
            .chain(self.widths.iter().copied())
            .zip(&self.widths)
            .map(|(cin, &cout)| (cin * cout * 9) as u64)
            .sum();
        let side = (self.image_size / 32) as u64;
        let (last, hidden) = (*self.widths.last().unwrap_or(&0) as u64, self.hidden as u64);
        let params = convs + last * side * side * hidden + hidden * self.classes as u64;
        if params > super::MAX_PARAMETERS {
            return bad(format!(
                "about {params} parameters, over the {} a network may have",
                super::MAX_PARAMETERS
            ));
        }
        if let Some(n) = &self.normalize {
            n.check(self.in_channels)
                .map_err(|m| Error::InvalidArgument(format!("VGG config: {m}")))?;
        }
        for (i, pair) in self.widths.windows(2).enumerate() {
            if pair[0] % self.parts != 0 || pair[1] % self.parts != 0 {
                return bad(format!(
                    "conv {} maps {} to {} channels; both must be divisible by P = {}",
                    i + 2,
                    pair[0],
                    pair[1],
                    self.parts
                ));
            }
        }
        Ok(())
    }

    /// The feature layers in order.
    pub fn layers(&self) -> Vec<VggLayer> {
        let mut layers = Vec::new();
        let (mut index, mut size, mut cin) = (0, self.image_size, self.in_channels);
        for (i, &cout) in self.widths.iter().enumerate() {
            layers.push(VggLayer::Conv {
                index,
                cin,
                cout,
                size,
                hetconv: i > 0,
            });
            index += 3;
            cin = cout;
            if POOL_AFTER.contains(&(i + 1)) {
                layers.push(VggLayer::Pool { index });
                index += 1;
                size /= 2;
            }
        }
        layers
    }

    /// Inputs of the classifier: the last width times the final feature map's area.
    pub fn classifier_inputs(&self) -> usize {
        let side = self.image_size / 32;
        self.widths.last().copied().unwrap_or(0) * side * side
    }
}

struct ConvLayer {
    /// `features.{index}`: the name profiles give the block's conv, BN + ReLU and pool.
    name: std::sync::Arc<str>,
    conv: Conv2d,
    bn: BatchNorm,
    pool_after: bool,
}

struct Classifier {
    fc1: Linear,
    bn: BatchNorm,
    fc2: Linear,
}

/// A HetConv VGG-16 whose parameters live on one GPU context.
pub struct Vgg16 {
    config: VggConfig,
    store: ParamStore,
    input: Option<InputNormalize>,
    convs: Vec<ConvLayer>,
    classifier: Classifier,
}

impl Vgg16 {
    /// Builds the network with the paper's initialisation: conv weights kaiming-normal
    /// (fan-out, ReLU gain), conv 1 bias 0, BN weight 1 and bias 0, linear weights N(0, 0.01²)
    /// and biases 0; the masked block of every 1x1 weight is exactly zero.
    pub fn new(ctx: &Context, config: VggConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        // The parameters live in one flat buffer (and so do their gradients and momentum):
        // refuse a model over the device's binding size before anything is allocated.
        let bytes = crate::flops::vgg_cost(&config)
            .params_stored
            .saturating_mul(4);
        if bytes > ctx.max_binding_bytes() {
            return Err(Error::Limit {
                op: "Vgg16::new (all parameters in one buffer)",
                limit: "max_storage_buffer_binding_size",
                asked: bytes,
                allowed: ctx.max_binding_bytes(),
            });
        }
        let (builder, convs, classifier) = Self::assemble(&config, seed)?;
        let input = config
            .normalize
            .as_ref()
            .map(|n| InputNormalize::new(ctx, n, config.in_channels))
            .transpose()?;
        Ok(Self {
            config,
            store: builder.build(ctx)?,
            input,
            convs,
            classifier,
        })
    }

    /// Every tensor a model of `config` has, in store order: (name, shape), without a GPU.
    pub fn layout(config: &VggConfig) -> Result<Vec<(String, Vec<usize>)>> {
        config.validate()?;
        Ok(Self::assemble(config, 0)?.0.layout())
    }

    /// The layers, their parameters registered (with initial values) in a builder.
    fn assemble(
        config: &VggConfig,
        seed: u64,
    ) -> Result<(ParamStoreBuilder, Vec<ConvLayer>, Classifier)> {
        let mut init = Init::new(seed);
        let mut b = ParamStoreBuilder::default();
        let mut convs = Vec::new();
        let layers = config.layers();
        for (i, layer) in layers.iter().enumerate() {
            let VggLayer::Conv {
                index,
                cin,
                cout,
                hetconv,
                ..
            } = *layer
            else {
                continue;
            };
            let pool_after = matches!(layers.get(i + 1), Some(VggLayer::Pool { .. }));
            let prefix = format!("features.{index}");
            let conv = if hetconv {
                Conv2d::hetconv(&mut b, &mut init, &prefix, (cin, cout), config.parts)?
                    .with_mode(config.mode)
            } else {
                Conv2d::standard(&mut b, &mut init, &prefix, (cin, cout), true)?
            };
            let bn = BatchNorm::new(&mut b, &format!("features.{}", index + 1), cout).with_relu();
            convs.push(ConvLayer {
                name: prefix.as_str().into(),
                conv,
                bn,
                pool_after,
            });
        }
        let (inputs, hidden, classes) = (config.classifier_inputs(), config.hidden, config.classes);
        let classifier = Classifier {
            fc1: Linear::new(&mut b, &mut init, "classifier.0", (inputs, hidden), 0.01),
            bn: BatchNorm::new(&mut b, "classifier.1", hidden).with_relu(),
            fc2: Linear::new(&mut b, &mut init, "classifier.3", (hidden, classes), 0.01),
        };
        Ok((b, convs, classifier))
    }

    /// The configuration.
    pub fn config(&self) -> &VggConfig {
        &self.config
    }

    /// The forward pass, each block recorded under its name (see [`Context::set_layer`]).
    fn layers(&self, tape: &mut Tape, x: &Tensor, train: bool) -> Result<Var> {
        let ctx = x.context();
        let mut h = ops::input(tape, x)?;
        if let Some(input) = &self.input {
            ctx.set_layer(Some("input".into()));
            h = input.forward(tape, &h)?;
        }
        let store = &self.store;
        for layer in &self.convs {
            ctx.set_layer(Some(layer.name.clone()));
            h = layer.conv.forward(tape, store, &h)?;
            h = layer.bn.forward(tape, store, &h, train)?;
            if layer.pool_after {
                h = ops::max_pool2(tape, &h)?;
            }
        }
        ctx.set_layer(Some("classifier".into()));
        let cl = &self.classifier;
        h = ops::flatten(tape, &h)?;
        h = cl.fc1.forward(tape, store, &h)?;
        h = cl.bn.forward(tape, store, &h, train)?;
        cl.fc2.forward(tape, store, &h)
    }
}

impl Model for Vgg16 {
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
        self.input().check("vgg16 forward", x)?;
        x.context().in_layers(|| self.layers(tape, x, train))
    }

    fn architecture(&self) -> Option<Architecture> {
        Some(Architecture::Vgg16(self.config.clone()))
    }
}
