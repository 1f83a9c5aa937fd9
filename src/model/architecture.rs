//! The zoo: every network hetconv can rebuild from a description, which checkpoints keep as
//! JSON metadata.

use serde::{Deserialize, Serialize};

use super::{InputShape, Model};
use crate::data::Normalize;
use crate::error::{Error, Result};
use crate::flops::{ModelCost, resnet_cost, vgg_cost};
use crate::gpu::Context;
use crate::nn::{ConvMode, ResNet, ResNetConfig, ResNetLayout, Vgg16, VggConfig};

/// A network of the zoo and its shape. Serialised with a `"model"` tag:
/// `{"model": "vgg16", "widths": [...], ...}`, `{"model": "resnet", "depth": 20, ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Architecture {
    /// The paper's HetConv VGG-16 (convs 2..13 HetConv(P)).
    Vgg16(VggConfig),
    /// A HetConv ResNet (every 3x3 conv of its blocks HetConv(P)): torchvision's ImageNet
    /// layout or He et al.'s CIFAR layout, by depth.
    ResNet(ResNetConfig),
}

/// The names `--model` takes: the VGG-16 and every ResNet depth of the zoo.
pub const MODEL_NAMES: [&str; 11] = [
    "vgg16",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
];

impl Architecture {
    /// The name `--model` takes and checkpoints record: `vgg16`, `resnet20`.
    pub fn name(&self) -> String {
        match self {
            Architecture::Vgg16(_) => "vgg16".into(),
            Architecture::ResNet(c) => c.name(),
        }
    }

    /// The network's title in reports: `HetConv VGG-16`, `HetConv ResNet-20`.
    pub fn title(&self) -> String {
        match self {
            Architecture::Vgg16(_) => "HetConv VGG-16".into(),
            Architecture::ResNet(c) => format!("HetConv ResNet-{}", c.depth),
        }
    }

    /// The VGG configuration, if it is a VGG.
    pub fn vgg(&self) -> Option<&VggConfig> {
        match self {
            Architecture::Vgg16(c) => Some(c),
            Architecture::ResNet(_) => None,
        }
    }

    /// The ResNet configuration, if it is a ResNet.
    pub fn resnet(&self) -> Option<&ResNetConfig> {
        match self {
            Architecture::ResNet(c) => Some(c),
            Architecture::Vgg16(_) => None,
        }
    }

    /// The images it takes.
    pub fn input(&self) -> InputShape {
        let (channels, size) = match self {
            Architecture::Vgg16(c) => (c.in_channels, c.image_size),
            Architecture::ResNet(c) => (c.in_channels, c.image_size),
        };
        InputShape { channels, size }
    }

    /// Output classes.
    pub fn classes(&self) -> usize {
        match self {
            Architecture::Vgg16(c) => c.classes,
            Architecture::ResNet(c) => c.classes,
        }
    }

    /// HetConv part P of its HetConv layers.
    pub fn parts(&self) -> usize {
        match self {
            Architecture::Vgg16(c) => c.parts,
            Architecture::ResNet(c) => c.parts,
        }
    }

    /// How its HetConv layers are computed.
    pub fn mode(&self) -> ConvMode {
        match self {
            Architecture::Vgg16(c) => c.mode,
            Architecture::ResNet(c) => c.mode,
        }
    }

    /// The same network with its HetConv layers computed in `mode` (the same function).
    pub fn with_mode(self, mode: ConvMode) -> Self {
        match self {
            Architecture::Vgg16(c) => Architecture::Vgg16(VggConfig { mode, ..c }),
            Architecture::ResNet(c) => Architecture::ResNet(ResNetConfig { mode, ..c }),
        }
    }

    /// The normalisation it applies to its input pixels, if any.
    pub fn normalize(&self) -> Option<&Normalize> {
        match self {
            Architecture::Vgg16(c) => c.normalize.as_ref(),
            Architecture::ResNet(c) => c.normalize.as_ref(),
        }
    }

    /// The same network normalising its input with `normalize` (the weights are the same).
    pub fn with_normalize(self, normalize: Option<Normalize>) -> Self {
        match self {
            Architecture::Vgg16(c) => Architecture::Vgg16(VggConfig { normalize, ..c }),
            Architecture::ResNet(c) => Architecture::ResNet(ResNetConfig { normalize, ..c }),
        }
    }

    /// Whether `other` has the same weights: the same network, however its HetConv layers
    /// are computed and its input normalised.
    pub fn same_network(&self, other: &Architecture) -> bool {
        let plain = |a: &Architecture| a.clone().with_mode(ConvMode::Fused).with_normalize(None);
        plain(self) == plain(other)
    }

    /// Checks that the shape is buildable; the error names what is wrong.
    pub fn validate(&self) -> Result<()> {
        match self {
            Architecture::Vgg16(c) => c.validate(),
            Architecture::ResNet(c) => c.validate(),
        }
    }

    /// FLOPs and parameter counts per image.
    pub fn cost(&self) -> ModelCost {
        match self {
            Architecture::Vgg16(c) => vgg_cost(c),
            Architecture::ResNet(c) => resnet_cost(c),
        }
    }

    /// Builds the network on `ctx` with the paper's initialisation from `seed`.
    pub fn build(&self, ctx: &Context, seed: u64) -> Result<Box<dyn Model>> {
        Ok(match self {
            Architecture::Vgg16(c) => Box::new(Vgg16::new(ctx, c.clone(), seed)?),
            Architecture::ResNet(c) => Box::new(ResNet::new(ctx, c.clone(), seed)?),
        })
    }

    /// Every tensor the network has, in store order: (name, shape), without a GPU.
    pub fn layout(&self) -> Result<Vec<(String, Vec<usize>)>> {
        match self {
            Architecture::Vgg16(c) => Vgg16::layout(c),
            Architecture::ResNet(c) => ResNet::layout(c),
        }
    }

    /// Recognises a PyTorch state_dict's network from its tensor shapes by name; the error
    /// names the tensor that does not fit.
    pub fn infer(
        shapes: &std::collections::HashMap<String, Vec<usize>>,
    ) -> std::result::Result<Self, String> {
        super::import::infer(shapes)
    }

    /// JSON, as checkpoints store it.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    /// Parses [`Architecture::to_json`]'s JSON, or a bare VGG configuration without the
    /// `"model"` tag (checkpoints written before the zoo had more than one network).
    pub fn from_json(json: &str) -> std::result::Result<Self, String> {
        match serde_json::from_str::<Architecture>(json) {
            Ok(arch) => Ok(arch),
            Err(tagged) => match serde_json::from_str::<VggConfig>(json) {
                Ok(vgg) if !json.contains("\"model\"") => Ok(Architecture::Vgg16(vgg)),
                _ => Err(tagged.to_string()),
            },
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let input = self.input();
        let (channels, size) = (input.channels, input.size);
        if let Some(n) = self.normalize() {
            let shown = self.clone().with_normalize(None);
            return write!(
                f,
                "{shown}, input normalised with mean {:?} std {:?}",
                n.mean, n.std
            );
        }
        match self {
            Architecture::Vgg16(c) => write!(
                f,
                "{}, P={}, widths {:?}, {channels}x{size}x{size} input, {} classes",
                self.title(),
                c.parts,
                c.widths,
                c.classes
            ),
            Architecture::ResNet(c) => write!(
                f,
                "{}, P={}, {} layout, {channels}x{size}x{size} input, {} classes",
                self.title(),
                c.parts,
                match c.layout() {
                    Some(ResNetLayout::ImageNet) => "ImageNet",
                    _ => "CIFAR",
                },
                c.classes
            ),
        }
    }
}
