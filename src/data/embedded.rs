//! The embedded default data set: a real Fashion-MNIST subset (the first 6,000 training and
//! 1,000 test images of the original files, from Debian's `dataset-fashion-mnist`; made by
//! `scripts/make_embedded_data.py`), so training works with no download.

use super::{DatasetKind, Splits, idx};
use crate::error::Result;

const TRAIN_IMAGES: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz");

/// Name used in messages and checkpoint metadata.
pub const NAME: &str = "fashion-mnist-subset (embedded)";

/// Decodes the embedded subset.
pub fn fashion_mnist_subset() -> Result<Splits> {
    let kind = DatasetKind::FashionMnist;
    let mut train = idx::parse_pair(
        TRAIN_IMAGES,
        "embedded train-images",
        TRAIN_LABELS,
        "embedded train-labels",
        kind,
    )?;
    let mut test = idx::parse_pair(
        TEST_IMAGES,
        "embedded t10k-images",
        TEST_LABELS,
        "embedded t10k-labels",
        kind,
    )?;
    train.name = NAME.into();
    test.name = NAME.into();
    Ok(Splits { train, test })
}
