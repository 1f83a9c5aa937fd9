//! Layers whose parameters live in a [`ParamStore`]: each registers its parameters under
//! PyTorch-style names with the paper's initialisation while the store is being built, then
//! runs itself on a [`Tape`]. The VGG-16 is made of them; so can any other network be
//! (`examples/custom_network.rs`).

use super::init::Init;
use super::params::{BufferId, ParamId, ParamStore, ParamStoreBuilder};
use crate::autograd::{Tape, Var, ops};
use crate::conv_kind::ConvKind;
use crate::data::Normalize;
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::kernels::batchnorm::{self, BatchNormConfig};
use crate::tensor::Tensor;

/// How HetConv layers are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConvMode {
    /// One fused kernel per direction (the default).
    #[default]
    Fused,
    /// Grouped 3x3 + masked 1x1 as separate passes (the PyTorch reproduction's form).
    Unfused,
}

/// A convolution of the family: a standard K x K conv (padding K / 2, with or without bias; a
/// 1x1 conv for K = 1) or HetConv(P) (3x3 kernels on each filter's own block, 1x1 on the
/// rest), any stride.
#[derive(Clone, Debug)]
pub struct Conv2d {
    kind: ConvKind,
    /// The spatial weight, `[cout, cin / groups, K, K]` (none for a 1x1 conv).
    weight3: Option<ParamId>,
    /// The 1x1 weight of a HetConv layer or a 1x1 conv, `[cout, cin, 1, 1]`.
    weight1: Option<ParamId>,
    /// The bias, `[cout]` (standard convs only).
    bias: Option<ParamId>,
    /// Fused kernels, or HetConv as the two passes of the PyTorch reproduction.
    mode: ConvMode,
}

fn check_channels(layer: &str, cin: usize, cout: usize) -> Result<()> {
    if cin == 0 || cout == 0 {
        return Err(Error::InvalidArgument(format!(
            "{layer}: {cin} -> {cout} channels, both must be positive"
        )));
    }
    Ok(())
}

impl Conv2d {
    /// A standard 3x3 conv: `{prefix}.weight` `[cout, cin, 3, 3]` kaiming-normal (fan-out) and,
    /// with `bias`, `{prefix}.bias` `[cout]` zeros.
    pub fn standard(
        b: &mut ParamStoreBuilder,
        init: &mut Init,
        prefix: &str,
        channels: (usize, usize),
        bias: bool,
    ) -> Result<Self> {
        Self::square(b, init, prefix, channels, 3, bias)
    }

    /// A standard K x K conv (K odd, at most [`ConvKind::MAX_KERNEL`]; padding K / 2):
    /// `{prefix}.weight` `[cout, cin, K, K]` kaiming-normal (fan-out) and, with `bias`,
    /// `{prefix}.bias` `[cout]` zeros. K = 1 is a plain 1x1 conv (a ResNet's projection).
    pub fn square(
        b: &mut ParamStoreBuilder,
        init: &mut Init,
        prefix: &str,
        (cin, cout): (usize, usize),
        kernel: usize,
        bias: bool,
    ) -> Result<Self> {
        check_channels(prefix, cin, cout)?;
        if kernel.is_multiple_of(2) || kernel > ConvKind::MAX_KERNEL {
            return Err(Error::InvalidArgument(format!(
                "{prefix}: kernel side {kernel} is not odd and at most {}",
                ConvKind::MAX_KERNEL
            )));
        }
        let shape = [cout, cin, kernel, kernel];
        let weight = b.param(
            format!("{prefix}.weight"),
            &shape,
            init.kaiming_fan_out(&shape),
        );
        let bias = bias.then(|| b.param(format!("{prefix}.bias"), &[cout], vec![0.0; cout]));
        let (kind, weight3, weight1) = if kernel == 1 {
            (ConvKind::pointwise(), None, Some(weight))
        } else {
            (ConvKind::standard(kernel), Some(weight), None)
        };
        Ok(Self {
            kind,
            weight3,
            weight1,
            bias,
            mode: ConvMode::Fused,
        })
    }

    /// HetConv(`parts`) without bias: `{prefix}.gwc.weight` `[cout, cin / P, 3, 3]` (the 3x3
    /// kernels of each filter on its own block of input channels) and `{prefix}.pwc.weight`
    /// `[cout, cin, 1, 1]` (1x1 kernels on the other channels; the own block is exactly zero and
    /// never read), both kaiming-normal (fan-out).
    pub fn hetconv(
        b: &mut ParamStoreBuilder,
        init: &mut Init,
        prefix: &str,
        (cin, cout): (usize, usize),
        parts: usize,
    ) -> Result<Self> {
        check_channels(prefix, cin, cout)?;
        if parts == 0 || !cin.is_multiple_of(parts) || !cout.is_multiple_of(parts) {
            return Err(Error::InvalidArgument(format!(
                "HetConv {prefix}: {cin} -> {cout} channels, both must be divisible by P = {parts}"
            )));
        }
        let shape = [cout, cin / parts, 3, 3];
        let weight3 = b.param(
            format!("{prefix}.gwc.weight"),
            &shape,
            init.kaiming_fan_out(&shape),
        );
        let weight1 = b.param(
            format!("{prefix}.pwc.weight"),
            &[cout, cin, 1, 1],
            init.hetconv_pointwise(cout, cin, parts),
        );
        Ok(Self {
            kind: ConvKind::hetconv(parts),
            weight3: Some(weight3),
            weight1: Some(weight1),
            bias: None,
            mode: ConvMode::Fused,
        })
    }

    /// The same layer with stride `stride` (both parts of a HetConv layer take it). Refused
    /// when the kernels do not take it.
    pub fn with_stride(self, stride: usize) -> Result<Self> {
        let kind = self.kind.with_stride(stride);
        kind.check("Conv2d::with_stride")?;
        Ok(Self { kind, ..self })
    }

    /// The same layer computed in `mode` (it only changes how a HetConv layer is computed; a
    /// standard conv is one kernel either way).
    pub fn with_mode(self, mode: ConvMode) -> Self {
        Self { mode, ..self }
    }

    /// What the kernels compute.
    pub fn kind(&self) -> ConvKind {
        self.kind
    }

    /// Runs the layer.
    ///
    /// # Shapes
    /// `x`: `[B, cin, H, W]` → `[B, cout, (H - 1) / stride + 1, (W - 1) / stride + 1]`
    pub fn forward(&self, tape: &mut Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let w3 = self.weight3.map(|id| tape.param(store, id)).transpose()?;
        let w1 = self.weight1.map(|id| tape.param(store, id)).transpose()?;
        let bias = self.bias.map(|id| tape.param(store, id)).transpose()?;
        match (self.mode, &w3, &w1) {
            (ConvMode::Unfused, Some(w3), Some(w1)) => {
                ops::hetconv_unfused(tape, self.kind, x, w3, w1)
            }
            _ => ops::conv(tape, self.kind, x, w3.as_ref(), w1.as_ref(), bias.as_ref()),
        }
    }
}

/// BatchNorm over the channels of `[B, C]` or `[B, C, H, W]`, optionally followed by ReLU in
/// the same kernel ([`BatchNorm::with_relu`]).
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// Scale, `[C]`.
    pub weight: ParamId,
    /// Shift, `[C]`.
    pub bias: ParamId,
    /// Running mean, `[C]`.
    pub running_mean: BufferId,
    /// Running (unbiased) variance, `[C]`.
    pub running_var: BufferId,
    /// Epsilon and momentum (PyTorch's defaults).
    pub config: BatchNormConfig,
    /// ReLU after the normalisation, in the same kernel.
    pub relu: bool,
}

impl BatchNorm {
    /// `{prefix}.weight` ones, `{prefix}.bias` zeros, `{prefix}.running_mean` zeros and
    /// `{prefix}.running_var` ones, `[channels]` each.
    pub fn new(b: &mut ParamStoreBuilder, prefix: &str, channels: usize) -> Self {
        let c = channels;
        Self {
            weight: b.param(format!("{prefix}.weight"), &[c], vec![1.0; c]),
            bias: b.param(format!("{prefix}.bias"), &[c], vec![0.0; c]),
            running_mean: b.buffer(format!("{prefix}.running_mean"), &[c], vec![0.0; c]),
            running_var: b.buffer(format!("{prefix}.running_var"), &[c], vec![1.0; c]),
            config: BatchNormConfig::default(),
            relu: false,
        }
    }

    /// The same layer followed by ReLU (in the same kernel, forward and backward).
    pub fn with_relu(self) -> Self {
        Self { relu: true, ..self }
    }

    /// In training mode: batch statistics, the running estimates updated, the backward pass
    /// recorded. In eval mode: the running estimates, for inference: on a tape that records
    /// (not [`Tape::inference`]) it is an error, since no gradient would flow back through it.
    ///
    /// # Shapes
    /// `x`: `[B, C]` or `[B, C, H, W]` → the same
    pub fn forward(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        x: &Var,
        train: bool,
    ) -> Result<Var> {
        let gamma = tape.param(store, self.weight)?;
        let beta = tape.param(store, self.bias)?;
        let (mean, var) = (
            store.buffer(self.running_mean)?,
            store.buffer(self.running_var)?,
        );
        let relu = self.relu;
        if train {
            ops::batch_norm_train(tape, x, &gamma, &beta, mean, var, &self.config, relu)
        } else if tape.is_recording() {
            Err(Error::InvalidArgument(
                "batch norm in eval mode on a recording tape: no gradient would flow back \
                 through it; train in train mode, run eval mode on Tape::inference()"
                    .into(),
            ))
        } else {
            let y = batchnorm::forward_eval(
                x.value(),
                gamma.value(),
                beta.value(),
                mean,
                var,
                &self.config,
                relu,
            )?;
            Ok(tape.constant(y))
        }
    }
}

/// A fully connected layer `y = x @ weight^T + bias` (PyTorch layout).
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[outputs, inputs]`.
    pub weight: ParamId,
    /// `[outputs]`.
    pub bias: ParamId,
}

impl Linear {
    /// `{prefix}.weight` `[outputs, inputs]` from N(0, std²) and `{prefix}.bias` zeros.
    pub fn new(
        b: &mut ParamStoreBuilder,
        init: &mut Init,
        prefix: &str,
        (inputs, outputs): (usize, usize),
        std: f32,
    ) -> Self {
        Self {
            weight: b.param(
                format!("{prefix}.weight"),
                &[outputs, inputs],
                init.normal(outputs * inputs, std),
            ),
            bias: b.param(format!("{prefix}.bias"), &[outputs], vec![0.0; outputs]),
        }
    }

    /// Runs the layer.
    ///
    /// # Shapes
    /// `x`: `[B, inputs]` → `[B, outputs]`
    pub fn forward(&self, tape: &mut Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let w = tape.param(store, self.weight)?;
        let b = tape.param(store, self.bias)?;
        ops::linear(tape, x, &w, &b)
    }
}

/// A network's input normalisation, `(x - mean) / std` per channel, as its first op (so that
/// every caller, the page and an embedding application included, feeds pixels in [0, 1]).
#[derive(Clone, Debug)]
pub struct InputNormalize {
    /// `[2, C]`: `1 / std`, then `-mean / std`.
    scale_shift: Tensor,
    /// `[2, C]`: `1 / std`, then zeros (the map's derivative).
    scale_zero: Tensor,
}

impl InputNormalize {
    /// The map of `normalize` for `channels`-channel images on `ctx`; refused (naming what is
    /// wrong) unless it has one finite mean and one positive std per channel.
    pub fn new(ctx: &Context, normalize: &Normalize, channels: usize) -> Result<Self> {
        normalize.check(channels).map_err(Error::InvalidArgument)?;
        let scale_shift = normalize.scale_shift();
        let mut scale_zero = scale_shift.clone();
        scale_zero[channels..].fill(0.0);
        Ok(Self {
            scale_shift: Tensor::from_slice(ctx, &[2, channels], &scale_shift)?,
            scale_zero: Tensor::from_slice(ctx, &[2, channels], &scale_zero)?,
        })
    }

    /// Runs it.
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` → the same
    pub fn forward(&self, tape: &mut Tape, x: &Var) -> Result<Var> {
        ops::channel_affine(tape, x, &self.scale_shift, &self.scale_zero)
    }
}
