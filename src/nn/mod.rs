//! Networks: parameter storage, initialisation, layers and the HetConv VGG-16.

mod init;
mod layers;
mod params;
mod resnet_shape;
mod vgg;

pub use init::Init;
pub use layers::{BatchNorm, Conv3x3, ConvMode, Linear};
pub use params::{BufferId, ParamId, ParamInfo, ParamSnapshot, ParamStore, ParamStoreBuilder};
pub use resnet_shape::{ResNetConfig, ResNetConv, ResNetLayout};
pub use vgg::{PAPER_WIDTHS, Vgg16, VggConfig, VggLayer};
