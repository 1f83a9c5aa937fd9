//! HetConv VGG-16 for CIFAR-10, exactly as the paper's PyTorch reproduction builds it:
//! 13 convs (conv 1 plain with bias, convs 2..13 HetConv(P) without bias), each followed by
//! BatchNorm2d and ReLU, a 2x2 max-pool after convs 2, 4, 7, 10 and 13, then
//! Linear -> BatchNorm1d -> ReLU -> Linear. Parameter names follow that model's state_dict.

use super::init::Init;
use super::params::{BufferId, ParamId, ParamStore, ParamStoreBuilder};
use crate::autograd::{Tape, Var, ops};
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::kernels::batchnorm::{self, BatchNormConfig};
use crate::kernels::conv::ConvKind;
use crate::kernels::loss;
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
    kind: ConvKind,
    w3: ParamId,
    w1: Option<ParamId>,
    bias: Option<ParamId>,
    bn_weight: ParamId,
    bn_bias: ParamId,
    running_mean: BufferId,
    running_var: BufferId,
    pool_after: bool,
}

struct Classifier {
    fc1_weight: ParamId,
    fc1_bias: ParamId,
    bn_weight: ParamId,
    bn_bias: ParamId,
    running_mean: BufferId,
    running_var: BufferId,
    fc2_weight: ParamId,
    fc2_bias: ParamId,
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
    bn: BatchNormConfig,
}

fn bn_params(
    b: &mut ParamStoreBuilder,
    prefix: &str,
    c: usize,
) -> (ParamId, ParamId, BufferId, BufferId) {
    (
        b.param(format!("{prefix}.weight"), &[c], vec![1.0; c]),
        b.param(format!("{prefix}.bias"), &[c], vec![0.0; c]),
        b.buffer(format!("{prefix}.running_mean"), &[c], vec![0.0; c]),
        b.buffer(format!("{prefix}.running_var"), &[c], vec![1.0; c]),
    )
}

impl Vgg16 {
    /// Builds the network with the paper's initialisation: conv weights kaiming-normal
    /// (fan-out, ReLU gain), conv 1 bias 0, BN weight 1 and bias 0, linear weights N(0, 0.01²)
    /// and biases 0; the masked block of every 1x1 weight is exactly zero.
    pub fn new(ctx: &Context, config: VggConfig, seed: u64) -> Result<Self> {
        config.validate()?;
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
            let p = config.parts;
            let (kind, w3, w1, bias) = if hetconv {
                let w3_shape = [cout, cin / p, 3, 3];
                let w3 = b.param(
                    format!("features.{index}.gwc.weight"),
                    &w3_shape,
                    init.kaiming_fan_out(&w3_shape),
                );
                let mut w1_values = init.kaiming_fan_out(&[cout, cin, 1, 1]);
                for o in 0..cout {
                    let g = o / (cout / p);
                    for c in g * (cin / p)..(g + 1) * (cin / p) {
                        w1_values[o * cin + c] = 0.0;
                    }
                }
                let w1 = b.param(
                    format!("features.{index}.pwc.weight"),
                    &[cout, cin, 1, 1],
                    w1_values,
                );
                (ConvKind::hetconv(p), w3, Some(w1), None)
            } else {
                let shape = [cout, cin, 3, 3];
                let w3 = b.param(
                    format!("features.{index}.weight"),
                    &shape,
                    init.kaiming_fan_out(&shape),
                );
                let bias = b.param(format!("features.{index}.bias"), &[cout], vec![0.0; cout]);
                (ConvKind::standard3x3(), w3, None, Some(bias))
            };
            let (bn_weight, bn_bias, running_mean, running_var) =
                bn_params(&mut b, &format!("features.{}", index + 1), cout);
            convs.push(ConvLayer {
                kind,
                w3,
                w1,
                bias,
                bn_weight,
                bn_bias,
                running_mean,
                running_var,
                pool_after,
            });
        }
        let (inputs, hidden, classes) = (config.classifier_inputs(), config.hidden, config.classes);
        let fc1_weight = b.param(
            "classifier.0.weight",
            &[hidden, inputs],
            init.normal(hidden * inputs, 0.01),
        );
        let fc1_bias = b.param("classifier.0.bias", &[hidden], vec![0.0; hidden]);
        let (bn_weight, bn_bias, running_mean, running_var) =
            bn_params(&mut b, "classifier.1", hidden);
        let fc2_weight = b.param(
            "classifier.3.weight",
            &[classes, hidden],
            init.normal(classes * hidden, 0.01),
        );
        let fc2_bias = b.param("classifier.3.bias", &[classes], vec![0.0; classes]);
        let classifier = Classifier {
            fc1_weight,
            fc1_bias,
            bn_weight,
            bn_bias,
            running_mean,
            running_var,
            fc2_weight,
            fc2_bias,
        };
        Ok(Self {
            config,
            store: b.build(ctx)?,
            convs,
            classifier,
            bn: BatchNormConfig::default(),
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
    /// `x`: [B, in_channels, image_size, image_size] → logits [B, classes]
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
        let mut h = tape.constant(x.clone());
        for layer in &self.convs {
            let w3 = tape.param(&self.store, layer.w3)?;
            let w1 = layer.w1.map(|id| tape.param(&self.store, id)).transpose()?;
            let bias = layer
                .bias
                .map(|id| tape.param(&self.store, id))
                .transpose()?;
            h = match (self.config.mode, &w1) {
                (ConvMode::Unfused, Some(w1)) => {
                    ops::hetconv_unfused(tape, layer.kind.groups, &h, &w3, w1)?
                }
                _ => ops::conv(tape, layer.kind, &h, Some(&w3), w1.as_ref(), bias.as_ref())?,
            };
            h = self.batch_norm_relu(
                tape,
                &h,
                layer.bn_weight,
                layer.bn_bias,
                layer.running_mean,
                layer.running_var,
                train,
            )?;
            if layer.pool_after {
                h = ops::max_pool2(tape, &h)?;
            }
        }
        let cl = &self.classifier;
        h = ops::flatten(tape, &h)?;
        let (w, b) = (
            tape.param(&self.store, cl.fc1_weight)?,
            tape.param(&self.store, cl.fc1_bias)?,
        );
        h = ops::linear(tape, &h, &w, &b)?;
        h = self.batch_norm_relu(
            tape,
            &h,
            cl.bn_weight,
            cl.bn_bias,
            cl.running_mean,
            cl.running_var,
            train,
        )?;
        let (w, b) = (
            tape.param(&self.store, cl.fc2_weight)?,
            tape.param(&self.store, cl.fc2_bias)?,
        );
        ops::linear(tape, &h, &w, &b)
    }

    #[allow(clippy::too_many_arguments)]
    fn batch_norm_relu(
        &self,
        tape: &mut Tape,
        x: &Var,
        weight: ParamId,
        bias: ParamId,
        mean: BufferId,
        var: BufferId,
        train: bool,
    ) -> Result<Var> {
        let gamma = tape.param(&self.store, weight)?;
        let beta = tape.param(&self.store, bias)?;
        let (mean, var) = (self.store.buffer(mean)?, self.store.buffer(var)?);
        if train {
            ops::batch_norm_train(tape, x, &gamma, &beta, mean, var, &self.bn, true)
        } else {
            let y = batchnorm::forward_eval(
                x.value(),
                gamma.value(),
                beta.value(),
                mean,
                var,
                &self.bn,
                true,
            )?;
            Ok(tape.constant(y))
        }
    }

    /// One SGD training step on a batch: forward, cross-entropy, backward, update. Everything
    /// is recorded into the open command encoder; nothing is submitted or read back.
    ///
    /// # Shapes
    /// `x`: [B, in_channels, size, size], `labels`: [B] (class indices as f32)
    pub fn train_step(
        &mut self,
        x: &Tensor,
        labels: &Tensor,
        step: &SgdStep,
    ) -> Result<StepOutput> {
        self.store.zero_grads();
        let mut tape = Tape::new();
        let logits = self.forward(&mut tape, x, true)?;
        let ce = loss::softmax_cross_entropy(logits.value(), labels)?;
        tape.backward(&logits, ce.dlogits, &mut self.store)?;
        self.store.sgd_step(step)?;
        Ok(StepOutput { rows: ce.rows })
    }

    /// Eval-mode logits (running BatchNorm estimates).
    ///
    /// # Shapes
    /// `x`: [B, in_channels, size, size] → [B, classes]
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        let mut tape = Tape::inference();
        Ok(self.forward(&mut tape, x, false)?.value().clone())
    }

    /// Eval-mode class probabilities: the softmax of [`Vgg16::predict`]'s logits, on the GPU.
    ///
    /// # Shapes
    /// `x`: [B, in_channels, size, size] → [B, classes]
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
