//! Networks: parameter storage, initialisation and the HetConv VGG-16.

mod init;
mod params;
mod vgg;

pub use init::Init;
pub use params::{BufferId, ParamId, ParamInfo, ParamSnapshot, ParamStore, ParamStoreBuilder};
pub use vgg::{ConvMode, PAPER_WIDTHS, StepOutput, Vgg16, VggConfig, VggLayer};
