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
pub mod prefetch;

pub use augment::{Augment, Normalize, Region, ResizedCrop};
pub use batcher::{Batch, Batcher, StepBatches};
pub use prefetch::Prefetch;

use std::borrow::Cow;
#[cfg(not(target_arch = "wasm32"))]
use std::sync::Arc;

use crate::error::{Error, Result};

/// Where a data set's images are.
#[derive(Clone, Debug, PartialEq)]
pub enum Images {
    /// Decoded, in memory: bytes (0..=255), `[len, channels, height, width]`.
    Bytes(Vec<u8>),
    /// Image files, one per image, decoded when a batch needs them: resized (shorter side) and
    /// centre-cropped to the set's `height` x `width` with its `channels` (native only; a set
    /// too large for memory is read this way).
    #[cfg(not(target_arch = "wasm32"))]
    Files(Arc<[std::path::PathBuf]>),
}

/// Images with their labels, NCHW: in memory as bytes, or streamed from image files.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Where the data came from (for messages and checkpoint metadata).
    pub name: String,
    /// The images, `[len, channels, height, width]`.
    pub images: Images,
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

    /// The pixels of image `i`, `[channels, height, width]` bytes (decoded from its file
    /// when the set is streamed).
    pub fn image(&self, i: usize) -> Result<Cow<'_, [u8]>> {
        Ok(self.images_of(&[i])?.remove(0))
    }

    /// The pixels of the images `indices`, in that order: borrowed from memory, or decoded
    /// from their files on every core (an unreadable file is an error naming it).
    pub fn images_of(&self, indices: &[usize]) -> Result<Vec<Cow<'_, [u8]>>> {
        let n = self.image_len();
        match &self.images {
            Images::Bytes(bytes) => Ok(indices
                .iter()
                .map(|&i| Cow::Borrowed(&bytes[i * n..(i + 1) * n]))
                .collect()),
            #[cfg(not(target_arch = "wasm32"))]
            Images::Files(files) => {
                let paths: Vec<&std::path::Path> =
                    indices.iter().map(|&i| files[i].as_path()).collect();
                let stored = image_folder::StoredImage {
                    size: self.height,
                    channels: self.channels,
                };
                image_folder::read_stored(&paths, stored)?
                    .into_iter()
                    .map(|bytes| Ok(Cow::Owned(bytes)))
                    .collect()
            }
        }
    }

    /// Whether the images are read from their files as batches need them.
    pub fn is_streamed(&self) -> bool {
        !matches!(self.images, Images::Bytes(_))
    }

    /// The first `n` images (or all of them).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        let images = match &self.images {
            Images::Bytes(bytes) => Images::Bytes(bytes[..n * self.image_len()].to_vec()),
            #[cfg(not(target_arch = "wasm32"))]
            Images::Files(files) => Images::Files(files[..n].into()),
        };
        Dataset {
            name: self.name.clone(),
            images,
            labels: self.labels[..n].to_vec(),
            ..self.clone()
        }
    }

    /// Checks that there is one image per label and that every label is a class index.
    pub fn validate(&self) -> Result<()> {
        let (have, per_label, unit) = match &self.images {
            Images::Bytes(bytes) => (bytes.len(), self.image_len(), "pixel bytes"),
            #[cfg(not(target_arch = "wasm32"))]
            Images::Files(files) => (files.len(), 1, "image files"),
        };
        if have != self.labels.len() * per_label {
            return Err(Error::InvalidArgument(format!(
                "{}: {have} {unit} for {} images of {}x{}x{}",
                self.name,
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
