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
