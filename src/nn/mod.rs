//! Networks: parameter storage, initialisation, layers, the HetConv VGG-16 and ResNets.

mod init;
mod layers;
mod params;
mod resnet;
mod resnet_shape;
mod vgg;

pub use init::Init;
pub use layers::{BatchNorm, Conv2d, ConvMode, InputNormalize, Linear};
pub use params::{BufferId, ParamId, ParamInfo, ParamSnapshot, ParamStore, ParamStoreBuilder};
pub use resnet::ResNet;
pub use resnet_shape::{ResNetConfig, ResNetConv, ResNetLayout};
pub use vgg::{PAPER_WIDTHS, Vgg16, VggConfig, VggLayer};

/// The largest input side a network is built for.
pub const MAX_IMAGE_SIDE: usize = 4096;
/// The most input channels.
pub const MAX_IN_CHANNELS: usize = 64;
/// The most classes.
pub const MAX_CLASSES: usize = 100_000;
/// The widest layer (channels or hidden units) of a VGG.
pub const MAX_WIDTH: usize = 16_384;
/// The most parameters a network may have (8 GiB of f32): a larger one is refused before
/// anything is allocated (a damaged checkpoint's shape, say).
pub const MAX_PARAMETERS: u64 = 1 << 31;
/// The deepest CIFAR ResNet (6n + 2 layers; He et al.'s deepest has 1202).
pub const MAX_CIFAR_RESNET_DEPTH: usize = 3002;
