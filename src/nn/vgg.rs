//! HetConv VGG-16 for CIFAR-10, exactly as the paper's PyTorch reproduction builds it:
//! 13 convs (conv 1 plain with bias, convs 2..13 HetConv(P) without bias), each followed by
//! BatchNorm2d and ReLU, a 2x2 max-pool after convs 2, 4, 7, 10 and 13, then
//! Linear -> BatchNorm1d -> ReLU -> Linear. Parameter names follow that model's state_dict.

use super::init::Init;
use super::layers::{BatchNorm, Conv3x3, Linear};
use super::params::{ParamStore, ParamStoreBuilder};
use crate::autograd::{Tape, Var, ops};
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::kernels::loss;
use crate::kernels::loss_scale::LossScaler;
use crate::kernels::sgd::SgdStep;
use crate::tensor::Tensor;

/// The paper's conv widths.
pub const PAPER_WIDTHS: [usize; 13] = [
    64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512,
];

/// Convs (1-based) followed by a 2x2 max-pool.
const POOL_AFTER: [usize; 5] = [2, 4, 7, 10, 13];

/// How HetConv layers are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConvMode {
    /// One fused kernel per direction (the default).
    #[default]
    Fused,
    /// Grouped 3x3 + masked 1x1 as separate passes (the PyTorch reproduction's form).
    Unfused,
}

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
    conv: Conv3x3,
    bn: BatchNorm,
    pool_after: bool,
}

struct Classifier {
    fc1: Linear,
    bn: BatchNorm,
    fc2: Linear,
}

/// What one training step leaves on the GPU.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// Per image (loss, correct) `[B, 2]`: read it back only when the numbers are wanted.
    pub rows: Tensor,
}

/// A HetConv VGG-16 whose parameters live on one GPU context.
pub struct Vgg16 {
    config: VggConfig,
    store: ParamStore,
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
                Conv3x3::hetconv(&mut b, &mut init, &prefix, (cin, cout), config.parts)?
                    .with_mode(config.mode)
            } else {
                Conv3x3::standard(&mut b, &mut init, &prefix, (cin, cout), true)?
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
        Ok(Self {
            config,
            store: b.build(ctx)?,
            convs,
            classifier,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VggConfig {
        &self.config
    }

    /// The parameters and buffers.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// The parameters and buffers, mutably (loading a checkpoint).
    pub fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    /// Runs the network; in training mode BatchNorm uses batch statistics and updates its
    /// running estimates, and `tape` records the backward pass.
    ///
    /// # Shapes
    /// `x`: `[B, in_channels, image_size, image_size]` → logits `[B, classes]`
    pub fn forward(&self, tape: &mut Tape, x: &Tensor, train: bool) -> Result<Var> {
        let c = &self.config;
        let expected = [
            x.shape().first().copied().unwrap_or(0),
            c.in_channels,
            c.image_size,
            c.image_size,
        ];
        if x.shape() != expected || expected[0] == 0 {
            return Err(Error::shape(
                "vgg16 forward",
                format!(
                    "input is {:?}, expected [B, {}, {}, {}]",
                    x.shape(),
                    c.in_channels,
                    c.image_size,
                    c.image_size
                ),
            ));
        }
        let ctx = x.context();
        let outer = ctx.layer();
        let logits = self.layers(tape, x, train);
        ctx.set_layer(outer);
        logits
    }

    /// The forward pass, each block recorded under its name (see [`Context::set_layer`]).
    fn layers(&self, tape: &mut Tape, x: &Tensor, train: bool) -> Result<Var> {
        let ctx = x.context();
        let mut h = tape.constant(x.clone());
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

    /// One SGD training step on a batch: forward, cross-entropy, backward, update. Everything
    /// is recorded into the open command encoder; nothing is submitted or read back.
    ///
    /// # Shapes
    /// `x`: `[B, in_channels, size, size]`, `labels`: `[B]` (class indices as f32)
    pub fn train_step(
        &mut self,
        x: &Tensor,
        labels: &Tensor,
        step: &SgdStep,
    ) -> Result<StepOutput> {
        self.train_step_scaled(x, labels, step, None)
    }

    /// [`Vgg16::train_step`] with dynamic loss scaling (mixed precision): the loss gradient is
    /// scaled before backward, the gradients unscaled after it, the update skipped when one is
    /// not finite, and the scale updated (see [`LossScaler`]).
    ///
    /// # Shapes
    /// as [`Vgg16::train_step`]
    pub fn train_step_scaled(
        &mut self,
        x: &Tensor,
        labels: &Tensor,
        step: &SgdStep,
        scaler: Option<&LossScaler>,
    ) -> Result<StepOutput> {
        self.store.zero_grads();
        let mut tape = Tape::new();
        let logits = self.forward(&mut tape, x, true)?;
        let ce = loss::softmax_cross_entropy(logits.value(), labels)?;
        if let Some(scaler) = scaler {
            scaler.scale_grad(&ce.dlogits)?;
        }
        tape.backward(&logits, ce.dlogits, &mut self.store)?;
        if let Some(scaler) = scaler {
            scaler.unscale(self.store.flat().1)?;
        }
        self.store.sgd_step(step, scaler)?;
        if let Some(scaler) = scaler {
            scaler.update()?;
        }
        Ok(StepOutput { rows: ce.rows })
    }

    /// Eval-mode logits (running BatchNorm estimates).
    ///
    /// # Shapes
    /// `x`: `[B, in_channels, size, size]` → `[B, classes]`
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        let mut tape = Tape::inference();
        Ok(self.forward(&mut tape, x, false)?.value().clone())
    }

    /// Eval-mode class probabilities: the softmax of [`Vgg16::predict`]'s logits, on the GPU.
    ///
    /// # Shapes
    /// `x`: `[B, in_channels, size, size]` → `[B, classes]`
    pub fn predict_probabilities(&self, x: &Tensor) -> Result<Tensor> {
        crate::kernels::loss::softmax(&self.predict(x)?)
    }

    /// Gradients only (no update): for tests and gradient checks. Returns the per-row loss.
    ///
    /// # Shapes
    /// as [`Vgg16::train_step`]
    pub fn compute_gradients(&mut self, x: &Tensor, labels: &Tensor) -> Result<StepOutput> {
        self.store.zero_grads();
        let mut tape = Tape::new();
        let logits = self.forward(&mut tape, x, true)?;
        let ce = loss::softmax_cross_entropy(logits.value(), labels)?;
        tape.backward(&logits, ce.dlogits, &mut self.store)?;
        Ok(StepOutput { rows: ce.rows })
    }
}
