//! The shape of a HetConv ResNet: which convs it has, in forward order, with torchvision's
//! names, channels, strides and feature-map sizes. HetConv(P) replaces every 3x3 conv of the
//! residual blocks (the strided ones included); the stem, the 1x1 convs and the projection
//! shortcuts stay standard, as in the paper's ResNet-50.
//!
//! Two layouts: torchvision's ImageNet ResNets (`resnet18/34` with basic blocks, `resnet50/101/152`
//! with bottlenecks: 7x7 stride-2 stem, 3x3 stride-2 max-pool, stages of 64..512 channels, stride
//! in the 3x3 conv as torchvision's v1.5) and the CIFAR ResNets of He et al.
//! (`resnet20/32/44/56/110`: 3x3 stem of 16 channels, three stages of 16/32/64 with basic
//! blocks), here with option-B projection shortcuts (1x1 conv + BN where a block changes shape)
//! where the paper's CIFAR runs used option A (zero-padded identity): ResNet-20 has 2,752 more
//! parameters (272,474 instead of 269,722).

use serde::{Deserialize, Serialize};

use super::layers::ConvMode;
use crate::data::Normalize;
use crate::error::{Error, Result};

/// A ResNet's depth, part P and data shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Layers: 18, 34, 50, 101, 152 (ImageNet layout) or 20, 32, 44, 56, 110 (CIFAR layout).
    pub depth: usize,
    /// HetConv part P of the blocks' 3x3 convs.
    pub parts: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height = width.
    pub image_size: usize,
    /// Output classes.
    pub classes: usize,
    /// Fused or unfused HetConv kernels.
    #[serde(default)]
    pub mode: ConvMode,
    /// The normalisation the network applies to its input pixels in [0, 1] (none: it takes
    /// them as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalize>,
}

/// Which of the two families a depth belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResNetLayout {
    /// torchvision's ImageNet ResNets: 7x7 stem, max-pool, four stages.
    ImageNet,
    /// He et al.'s CIFAR ResNets: 3x3 stem, three stages of basic blocks.
    Cifar,
}

/// One conv of the network (each is followed by BatchNorm `bn`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResNetConv {
    /// The conv's state_dict prefix, e.g. `layer2.0.conv2` or `layer2.0.downsample.0`.
    pub name: String,
    /// The BatchNorm's prefix, e.g. `layer2.0.bn2` or `layer2.0.downsample.1`.
    pub bn: String,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side (7, 3 or 1).
    pub kernel: usize,
    /// Stride (1 or 2).
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Input height = width.
    pub in_size: usize,
    /// Output height = width.
    pub out_size: usize,
    /// HetConv(P) (a block's 3x3 conv) or standard.
    pub hetconv: bool,
}

/// The side of a conv or pool's output.
fn out_side(size: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (size + 2 * padding).saturating_sub(kernel) / stride + 1
}

impl ResNetConfig {
    /// torchvision's ImageNet ResNet of `depth` at P = `parts`: 3 x 224 x 224 input,
    /// 1000 classes.
    pub fn imagenet(depth: usize, parts: usize) -> Self {
        Self {
            depth,
            parts,
            in_channels: 3,
            image_size: 224,
            classes: 1000,
            mode: ConvMode::Fused,
            normalize: None,
        }
    }

    /// He et al.'s CIFAR ResNet of `depth` at P = `parts`: 3 x 32 x 32 input, 10 classes.
    pub fn cifar(depth: usize, parts: usize) -> Self {
        Self {
            depth,
            parts,
            in_channels: 3,
            image_size: 32,
            classes: 10,
            mode: ConvMode::Fused,
            normalize: None,
        }
    }

    /// The model's name: `resnet50`.
    pub fn name(&self) -> String {
        format!("resnet{}", self.depth)
    }

    /// The family of the depth (None: not a depth either family has).
    pub fn layout(&self) -> Option<ResNetLayout> {
        match self.depth {
            18 | 34 | 50 | 101 | 152 => Some(ResNetLayout::ImageNet),
            d if (8..=super::MAX_CIFAR_RESNET_DEPTH).contains(&d) && (d - 2).is_multiple_of(6) => {
                Some(ResNetLayout::Cifar)
            }
            _ => None,
        }
    }

    /// Blocks per stage, the stages' widths, and whether the blocks are bottlenecks
    /// (1x1, 3x3, 1x1 with 4x expansion) rather than basic (3x3, 3x3).
    fn stages(&self) -> Option<(Vec<usize>, Vec<usize>, bool)> {
        let imagenet = |blocks: [usize; 4], bottleneck| {
            Some((blocks.to_vec(), vec![64, 128, 256, 512], bottleneck))
        };
        match (self.layout()?, self.depth) {
            (ResNetLayout::ImageNet, 18) => imagenet([2, 2, 2, 2], false),
            (ResNetLayout::ImageNet, 34) => imagenet([3, 4, 6, 3], false),
            (ResNetLayout::ImageNet, 50) => imagenet([3, 4, 6, 3], true),
            (ResNetLayout::ImageNet, 101) => imagenet([3, 4, 23, 3], true),
            (ResNetLayout::ImageNet, 152) => imagenet([3, 8, 36, 3], true),
            (ResNetLayout::ImageNet, _) => None,
            (ResNetLayout::Cifar, d) => Some((vec![(d - 2) / 6; 3], vec![16, 32, 64], false)),
        }
    }

    /// Checks that the shape is buildable; the error names what is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("{}: {m}", self.name())));
        let Some((_, widths, _)) = self.stages() else {
            return bad(
                "no such ResNet: depth 18, 34, 50, 101 or 152 (ImageNet layout) or 6n + 2 \
                 (CIFAR layout: 20, 32, 44, 56, 110, ... up to 3002)"
                    .into(),
            );
        };
        if self.parts == 0 {
            return bad("part P must be at least 1".into());
        }
        if let Some(w) = widths.iter().find(|w| !w.is_multiple_of(self.parts)) {
            return bad(format!(
                "a stage of {w} channels is not divisible by P = {}",
                self.parts
            ));
        }
        if self.in_channels == 0 || self.classes == 0 {
            return bad("channels and classes must be positive".into());
        }
        if self.in_channels > super::MAX_IN_CHANNELS
            || self.classes > super::MAX_CLASSES
            || self.image_size > super::MAX_IMAGE_SIDE
        {
            return bad(format!(
                "{} input channels, {} classes, image size {}: at most {}, {} and {}",
                self.in_channels,
                self.classes,
                self.image_size,
                super::MAX_IN_CHANNELS,
                super::MAX_CLASSES,
                super::MAX_IMAGE_SIDE
            ));
        }
        if let Some(Err(m)) = self.normalize.as_ref().map(|n| n.check(self.in_channels)) {
            return bad(m);
        }
        let smallest = match self.layout() {
            Some(ResNetLayout::ImageNet) => 32,
            _ => 4,
        };
        if self.image_size < smallest {
            return bad(format!(
                "image size {} is below {smallest} (the last stage would have no pixels left)",
                self.image_size
            ));
        }
        Ok(())
    }

    /// Every conv in forward order: the stem, then each block's convs, its projection shortcut
    /// (where the block changes shape) last. Empty for a depth neither family has.
    pub fn convs(&self) -> Vec<ResNetConv> {
        let Some((blocks, widths, bottleneck)) = self.stages() else {
            return Vec::new();
        };
        let imagenet = self.layout() == Some(ResNetLayout::ImageNet);
        let (stem_kernel, stem_stride, stem_width) = if imagenet { (7, 2, 64) } else { (3, 1, 16) };
        let mut convs = Vec::new();
        let mut size = self.image_size;
        let mut conv = |name: String,
                        bn: String,
                        (cin, cout): (usize, usize),
                        (kernel, stride): (usize, usize),
                        size: usize,
                        hetconv: bool| {
            let padding = kernel / 2;
            let out_size = out_side(size, kernel, stride, padding);
            convs.push(ResNetConv {
                name,
                bn,
                cin,
                cout,
                kernel,
                stride,
                padding,
                in_size: size,
                out_size,
                hetconv,
            });
            out_size
        };
        size = conv(
            "conv1".into(),
            "bn1".into(),
            (self.in_channels, stem_width),
            (stem_kernel, stem_stride),
            size,
            false,
        );
        if imagenet {
            size = out_side(size, 3, 2, 1);
        }
        let expansion = if bottleneck { 4 } else { 1 };
        let mut cin = stem_width;
        for (stage, (&count, &width)) in blocks.iter().zip(&widths).enumerate() {
            for block in 0..count {
                let stride = if block == 0 && stage > 0 { 2 } else { 1 };
                let prefix = format!("layer{}.{block}", stage + 1);
                let name = |part: &str| format!("{prefix}.{part}");
                let cout = width * expansion;
                let block_in = size;
                if bottleneck {
                    let s = conv(
                        name("conv1"),
                        name("bn1"),
                        (cin, width),
                        (1, 1),
                        size,
                        false,
                    );
                    let s = conv(
                        name("conv2"),
                        name("bn2"),
                        (width, width),
                        (3, stride),
                        s,
                        true,
                    );
                    size = conv(name("conv3"), name("bn3"), (width, cout), (1, 1), s, false);
                } else {
                    let s = conv(
                        name("conv1"),
                        name("bn1"),
                        (cin, width),
                        (3, stride),
                        size,
                        true,
                    );
                    size = conv(name("conv2"), name("bn2"), (width, width), (3, 1), s, true);
                }
                if stride != 1 || cin != cout {
                    conv(
                        name("downsample.0"),
                        name("downsample.1"),
                        (cin, cout),
                        (1, stride),
                        block_in,
                        false,
                    );
                }
                cin = cout;
            }
        }
        convs
    }

    /// Inputs of the final linear layer (the last stage's channels after global average pooling).
    pub fn features(&self) -> usize {
        self.convs().last().map_or(0, |c| c.cout)
    }
}
