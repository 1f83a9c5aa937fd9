//! Networks: parameter storage, initialisation, layers and the HetConv VGG-16.

mod init;
mod layers;
mod params;
mod vgg;

pub use init::Init;
pub use layers::{BatchNorm, Conv3x3, Linear};
pub use params::{BufferId, ParamId, ParamInfo, ParamSnapshot, ParamStore, ParamStoreBuilder};
pub use vgg::{ConvMode, PAPER_WIDTHS, StepOutput, Vgg16, VggConfig, VggLayer};
