//! Data sets: CIFAR-10 (binary version), IDX (MNIST, Fashion-MNIST, gzipped or not), folders
//! of images (one sub-folder per class), single image files, the embedded Fashion-MNIST subset;
//! augmentation and batching.
//!
//! Parsers take bytes plus the name of their source, so the same code serves files on disk and
//! bytes fetched by a web page; errors name the source, the byte offset and what is wrong.

pub mod augment;
pub mod batcher;
pub mod cifar;
pub mod embedded;
pub mod idx;
#[cfg(not(target_arch = "wasm32"))]
pub mod image_file;
#[cfg(not(target_arch = "wasm32"))]
pub mod image_folder;

pub use augment::{Augment, Normalize, Region, ResizedCrop};
pub use batcher::{Batch, Batcher};

use crate::error::{Error, Result};

/// Images as bytes (0..=255), NCHW, with their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Where the data came from (for messages and checkpoint metadata).
    pub name: String,
    /// Pixels, `[len, channels, height, width]`.
    pub pixels: Vec<u8>,
    /// One label per image, `< classes`.
    pub labels: Vec<u8>,
    /// Channels per image.
    pub channels: usize,
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
    /// Human-readable class names.
    pub class_names: Vec<String>,
}

/// A training and a test split of one data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    /// Training images.
    pub train: Dataset,
    /// Test images.
    pub test: Dataset,
}

/// Which data set a directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    /// CIFAR-10 binary version.
    Cifar10,
    /// MNIST (IDX).
    Mnist,
    /// Fashion-MNIST (IDX).
    FashionMnist,
}

impl DatasetKind {
    /// Class names of the data set.
    pub fn class_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            DatasetKind::Cifar10 => &[
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ],
            DatasetKind::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The first `n` images (or all of them).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            name: self.name.clone(),
            pixels: self.pixels[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            ..self.clone()
        }
    }

    /// Checks that every label is a class index.
    pub fn validate(&self) -> Result<()> {
        if self.pixels.len() != self.labels.len() * self.image_len() {
            return Err(Error::InvalidArgument(format!(
                "{}: {} pixel bytes for {} images of {}x{}x{}",
                self.name,
                self.pixels.len(),
                self.labels.len(),
                self.channels,
                self.height,
                self.width
            )));
        }
        if let Some((i, &l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::from(l) >= self.classes())
        {
            return Err(Error::InvalidArgument(format!(
                "{}: label {l} of image {i} is not below {} classes",
                self.name,
                self.classes()
            )));
        }
        Ok(())
    }
}

/// Loads the data set in `dir` (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn load_dir(dir: &std::path::Path, kind: DatasetKind) -> Result<Splits> {
    match kind {
        DatasetKind::Cifar10 => cifar::load_dir(dir),
        DatasetKind::Mnist | DatasetKind::FashionMnist => idx::load_dir(dir, kind),
    }
}
