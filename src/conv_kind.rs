//! The convolution family's description, shared by the kernels, the CPU reference, the layers
//! and the tuner: what a layer computes ([`ConvKind`]), its sizes ([`ConvDims`]), its weights
//! ([`ConvWeights`]), the checks of all three against each other, and its multiply-accumulates.
//!
//! Every member has an optional spatial part of side K (odd, padding K / 2) with `groups`
//! groups, an optional 1x1 part that is dense or masked in HetConv's block layout (filter `o` of
//! part `g = o / (N/P)` skips input channels `[g*M/P, (g+1)*M/P)`), and one stride for both.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The 1x1 part of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pointwise {
    /// No 1x1 part.
    None,
    /// 1x1 taps on every input channel.
    Dense,
    /// 1x1 taps on every input channel outside the filter's own block (HetConv). The block is
    /// skipped, never multiplied; its weight gradient is exactly zero.
    Masked,
}

/// One member of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvKind {
    /// Groups of the spatial part; also the part count P that defines the 1x1 mask.
    pub groups: usize,
    /// Side K of the spatial (K x K, grouped) part: odd, at most [`ConvKind::MAX_KERNEL`],
    /// zero-padded by K / 2 on each side; 0 for a layer without one.
    pub kernel: usize,
    /// Stride of both parts (at most [`ConvKind::MAX_STRIDE`]): output pixel (y, x) centres the
    /// spatial taps and reads the 1x1 taps at input pixel (y * stride, x * stride).
    pub stride: usize,
    /// What the 1x1 part does.
    pub pointwise: Pointwise,
}

impl ConvKind {
    /// The largest spatial kernel side the kernels take (a ResNet stem's 7x7).
    pub const MAX_KERNEL: usize = 7;
    /// The largest stride the kernels take.
    pub const MAX_STRIDE: usize = 4;

    /// A standard 3x3 conv.
    pub fn standard3x3() -> Self {
        Self::grouped3x3(1)
    }

    /// A standard K x K conv (padding K / 2), e.g. a ResNet stem's 7x7.
    pub fn standard(kernel: usize) -> Self {
        Self {
            kernel,
            ..Self::standard3x3()
        }
    }

    /// A grouped 3x3 conv (`groups` = channels gives a depthwise conv).
    pub fn grouped3x3(groups: usize) -> Self {
        Self {
            groups,
            kernel: 3,
            stride: 1,
            pointwise: Pointwise::None,
        }
    }

    /// A plain 1x1 conv.
    pub fn pointwise() -> Self {
        Self {
            groups: 1,
            kernel: 0,
            stride: 1,
            pointwise: Pointwise::Dense,
        }
    }

    /// HetConv's masked 1x1 conv with `parts` parts, alone.
    pub fn masked_pointwise(parts: usize) -> Self {
        Self {
            groups: parts,
            kernel: 0,
            stride: 1,
            pointwise: Pointwise::Masked,
        }
    }

    /// The fused HetConv layer with part `parts` (P).
    pub fn hetconv(parts: usize) -> Self {
        Self {
            groups: parts,
            kernel: 3,
            stride: 1,
            pointwise: Pointwise::Masked,
        }
    }

    /// The same layer with stride `stride` (both parts: a HetConv filter's 3x3 and 1x1 kernels
    /// are strided alike, as in the per-filter definition).
    pub fn with_stride(self, stride: usize) -> Self {
        Self { stride, ..self }
    }

    /// Whether the layer has a spatial (K x K) part.
    pub fn spatial(&self) -> bool {
        self.kernel > 0
    }

    /// Taps of one spatial kernel, K x K (0 without a spatial part).
    pub fn taps(&self) -> usize {
        self.kernel * self.kernel
    }

    /// Zero padding on each side of the spatial part: K / 2.
    pub fn padding(&self) -> usize {
        self.kernel / 2
    }

    /// The output side of an input side: `(side + 2 * (K / 2) - K) / stride + 1`, which for
    /// odd K (and the 1x1 part) is `(side - 1) / stride + 1`.
    pub fn out_side(&self, side: usize) -> usize {
        side.saturating_sub(1) / self.stride.max(1) + 1
    }
}

/// The weights of one layer; which ones must be present follows from the [`ConvKind`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvWeights<'a> {
    /// Spatial (K x K) weights, `[cout, cin / groups, K, K]` (3x3 in VGG and HetConv).
    pub w3: Option<&'a Tensor>,
    /// 1x1 weights, `[cout, cin]` or `[cout, cin, 1, 1]`.
    pub w1: Option<&'a Tensor>,
    /// Bias, `[cout]` (forward only; its gradient is [`crate::kernels::reduce::sum_channels`]
    /// of `dy`).
    pub bias: Option<&'a Tensor>,
}

/// Sizes of one convolution: the input's (the output's follow from the kind's stride,
/// [`ConvKind::out_hw`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvDims {
    /// Images.
    pub batch: usize,
    /// Input channels (M).
    pub cin: usize,
    /// Output channels (N).
    pub cout: usize,
    /// Input rows.
    pub height: usize,
    /// Input columns.
    pub width: usize,
}

impl ConvKind {
    /// Output rows and columns of a layer of sizes `d`.
    pub fn out_hw(&self, d: &ConvDims) -> (usize, usize) {
        (self.out_side(d.height), self.out_side(d.width))
    }

    /// The output's shape, `[B, N, OH, OW]`.
    pub fn out_shape(&self, d: &ConvDims) -> [usize; 4] {
        let (oh, ow) = self.out_hw(d);
        [d.batch, d.cout, oh, ow]
    }

    /// The spatial weight's shape, `[N, M / G, K, K]`.
    pub fn spatial_shape(&self, d: &ConvDims) -> [usize; 4] {
        [d.cout, d.cin / self.groups.max(1), self.kernel, self.kernel]
    }

    /// Checks the kind itself: a spatial part, a 1x1 part or both, an odd kernel side and a
    /// stride within the kernels' limits, at least one group.
    pub fn check(&self, op: &'static str) -> Result<()> {
        if !self.spatial() && self.pointwise == Pointwise::None {
            return Err(Error::shape(
                op,
                "a conv needs a spatial (K x K) part, a 1x1 part, or both",
            ));
        }
        if self.spatial() && (self.kernel.is_multiple_of(2) || self.kernel > Self::MAX_KERNEL) {
            return Err(Error::shape(
                op,
                format!(
                    "kernel side {} is not odd and at most {} (padding is K / 2 on each side)",
                    self.kernel,
                    Self::MAX_KERNEL
                ),
            ));
        }
        if !(1..=Self::MAX_STRIDE).contains(&self.stride) {
            return Err(Error::shape(
                op,
                format!(
                    "stride {} is not between 1 and {}",
                    self.stride,
                    Self::MAX_STRIDE
                ),
            ));
        }
        if self.groups == 0 {
            return Err(Error::shape(op, "groups/parts must be at least 1"));
        }
        Ok(())
    }

    /// Checks the kind against the input shape and the weights; returns the sizes.
    pub fn dims(&self, op: &'static str, input: &[usize], w: &ConvWeights) -> Result<ConvDims> {
        self.check(op)?;
        let [batch, cin, height, width] = *input else {
            return Err(Error::shape(
                op,
                format!("input must be [batch, channels, height, width], got {input:?}"),
            ));
        };
        if input.contains(&0) {
            return Err(Error::shape(
                op,
                format!("input {input:?} has a zero-sized dimension"),
            ));
        }
        let g = self.groups;
        if !cin.is_multiple_of(g) {
            return Err(Error::shape(
                op,
                format!("{cin} input channels are not divisible by groups/parts {g}"),
            ));
        }
        let cout = match (w.w3, w.w1) {
            (Some(t), _) | (None, Some(t)) => t.shape().first().copied().unwrap_or(0),
            (None, None) => return Err(Error::shape(op, "no weights given")),
        };
        if cout == 0 || !cout.is_multiple_of(g) {
            return Err(Error::shape(
                op,
                format!("{cout} filters are not a positive multiple of groups/parts {g}"),
            ));
        }
        let d = ConvDims {
            batch,
            cin,
            cout,
            height,
            width,
        };
        let k = self.kernel;
        match (self.spatial(), w.w3) {
            (true, Some(t)) if t.shape() != self.spatial_shape(&d) => {
                return Err(Error::shape(
                    op,
                    format!(
                        "{k}x{k} weight is {:?}, expected {:?} for {cin} inputs and {g} groups",
                        t.shape(),
                        self.spatial_shape(&d)
                    ),
                ));
            }
            (true, None) => {
                return Err(Error::shape(
                    op,
                    format!("the {k}x{k} part needs a {k}x{k} weight"),
                ));
            }
            (false, Some(_)) => {
                return Err(Error::shape(
                    op,
                    "a spatial weight was given to a layer without a spatial part",
                ));
            }
            _ => {}
        }
        match (self.pointwise, w.w1) {
            (Pointwise::None, Some(_)) => {
                return Err(Error::shape(
                    op,
                    "a 1x1 weight was given to a layer without a 1x1 part",
                ));
            }
            (Pointwise::None, None) => {}
            (_, None) => return Err(Error::shape(op, "the 1x1 part needs a 1x1 weight")),
            (_, Some(t)) => {
                if t.shape() != [cout, cin] && t.shape() != [cout, cin, 1, 1] {
                    return Err(Error::shape(
                        op,
                        format!(
                            "1x1 weight is {:?}, expected [{cout}, {cin}] or [{cout}, {cin}, 1, 1]",
                            t.shape()
                        ),
                    ));
                }
            }
        }
        if let Some(b) = w.bias {
            if b.shape() != [cout] {
                return Err(Error::shape(
                    op,
                    format!("bias is {:?}, expected [{cout}]", b.shape()),
                ));
            }
        }
        Ok(d)
    }

    /// Multiply-accumulates of the forward pass: the skipped block is not counted, taps that
    /// fall on padding are (as FLOPs tables count them).
    ///
    /// ```
    /// use hetconv::conv_kind::{ConvDims, ConvKind};
    /// let d = ConvDims { batch: 1, cin: 64, cout: 64, height: 32, width: 32 };
    /// let standard = ConvKind::standard3x3().forward_macs(&d) as f64;
    /// let hetconv = ConvKind::hetconv(4).forward_macs(&d) as f64;
    /// // The paper's ratio 1/P + (1 - 1/P)/9 = 1/3 at P = 4.
    /// assert!((hetconv / standard - 1.0 / 3.0).abs() < 1e-12);
    /// // Stride 2 computes a quarter of the pixels.
    /// let strided = ConvKind::hetconv(4).with_stride(2).forward_macs(&d) as f64;
    /// assert_eq!(strided * 4.0, hetconv);
    /// ```
    pub fn forward_macs(&self, d: &ConvDims) -> u64 {
        let (oh, ow) = self.out_hw(d);
        let pixels = (d.batch * oh * ow) as u64;
        let per_pixel_spatial = self.taps() * d.cin * d.cout / self.groups;
        let per_pixel_1 = match self.pointwise {
            Pointwise::None => 0,
            Pointwise::Dense => d.cin * d.cout,
            Pointwise::Masked => d.cin * d.cout - d.cin * d.cout / self.groups,
        };
        pixels * (per_pixel_spatial + per_pixel_1) as u64
    }
}
