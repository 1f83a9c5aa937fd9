//! The options that pick a data set, shared by train, eval and predict.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use hetconv::data::image_folder::{self, FolderOptions};
use hetconv::data::{self, DatasetKind, Splits};
use hetconv::{Error, Result};
use indicatif::HumanBytes;

/// Which data set a folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatasetArg {
    /// CIFAR-10, binary version (data_batch_1.bin .. data_batch_5.bin, test_batch.bin).
    Cifar10,
    /// MNIST as IDX files (train-images-idx3-ubyte[.gz], ...).
    Mnist,
    /// Fashion-MNIST as IDX files.
    FashionMnist,
    /// A folder of images: one sub-folder per class, or train/ and val/ (or test/, valid/,
    /// validation/) splits of class folders.
    Images,
}

/// Where the images come from.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Folder with a data set; without it, the embedded Fashion-MNIST subset (6,000 training and
    /// 1,000 test images) is used.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// What the folder holds (guessed from the file names when left out).
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetArg>,
    /// Side of the square an image folder's images are resized and centre-cropped to (default:
    /// the model's input, 32 for a new VGG-16).
    #[arg(long, value_parser = super::args::image_side)]
    pub image_size: Option<usize>,
    /// Leave out (and count) the files of an image folder that are not readable images, instead
    /// of stopping at the first.
    #[arg(long)]
    pub skip_bad_images: bool,
    /// Read an image folder's files as batches need them (decoded on every core by a
    /// background thread while the GPU trains) instead of decoding them all up front; the
    /// default for a folder whose decoded images would take over 4 GiB.
    #[arg(long)]
    pub stream_images: bool,
}

impl DataArgs {
    /// Loads both splits; an image folder's images at `--image-size`, else `model_size` (the
    /// input of the checkpoint's model), else 32.
    pub fn load(&self, model_size: Option<usize>) -> Result<Splits> {
        let Some(dir) = &self.data else {
            return data::embedded::fashion_mnist_subset();
        };
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::InvalidArgument(format!(
                    "--data {}: is a file; give the folder that holds the data set's files",
                    dir.display()
                )));
            }
            Err(source) => {
                return Err(Error::Io {
                    path: dir.clone(),
                    source,
                });
            }
        }
        let kind = match self.dataset {
            Some(DatasetArg::Cifar10) => DatasetKind::Cifar10,
            Some(DatasetArg::Mnist) => DatasetKind::Mnist,
            Some(DatasetArg::FashionMnist) => DatasetKind::FashionMnist,
            Some(DatasetArg::Images) => return self.load_folder(dir, model_size),
            None => match guess(dir)? {
                Some(kind) => kind,
                None if image_folder::is_image_folder(dir) => {
                    return self.load_folder(dir, model_size);
                }
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "{}: no CIFAR-10 (data_batch_*.bin) or IDX (train-images-idx3-ubyte[.gz]) files and no class folders of images found",
                        dir.display()
                    )));
                }
            },
        };
        if self.image_size.is_some() || self.skip_bad_images || self.stream_images {
            return Err(Error::InvalidArgument(format!(
                "--image-size, --skip-bad-images and --stream-images read image folders; {} holds {kind:?} files",
                dir.display()
            )));
        }
        data::load_dir(dir, kind)
    }

    /// Whether `--data` is read as a folder of images (not CIFAR-10 or IDX files).
    pub fn reads_image_folder(&self) -> bool {
        match (&self.data, self.dataset) {
            (_, Some(DatasetArg::Images)) => true,
            (Some(dir), None) => {
                matches!(guess(dir), Ok(None)) && image_folder::is_image_folder(dir)
            }
            _ => false,
        }
    }

    fn load_folder(&self, dir: &std::path::Path, model_size: Option<usize>) -> Result<Splits> {
        if let (Some(given), Some(model)) = (self.image_size, model_size) {
            if given != model {
                return Err(Error::InvalidArgument(format!(
                    "--image-size {given}: the checkpoint's model takes {model}x{model} images; leave it out"
                )));
            }
        }
        let size = self.image_size.or(model_size).unwrap_or(32);
        let (splits, report) = image_folder::load(
            dir,
            FolderOptions {
                size,
                skip_bad: self.skip_bad_images,
                memory_limit: if self.stream_images {
                    0
                } else {
                    image_folder::DEFAULT_MEMORY_LIMIT
                },
            },
        )?;
        if report.streamed {
            println!(
                "streaming {} images from {} ({} decoded){}",
                splits.train.len() + splits.test.len(),
                dir.display(),
                HumanBytes(report.decoded_bytes),
                if self.stream_images {
                    String::new()
                } else {
                    format!(
                        ": over the {} kept in memory",
                        HumanBytes(image_folder::DEFAULT_MEMORY_LIMIT)
                    )
                }
            );
        }
        if !report.skipped.is_empty() {
            println!(
                "skipped {} unreadable file(s) in {}; the first: {}",
                report.skipped.len(),
                dir.display(),
                report.skipped[0].1
            );
        }
        Ok(splits)
    }
}

/// The data set `dir`'s file names say it holds (None: no CIFAR-10 or IDX files).
fn guess(dir: &std::path::Path) -> Result<Option<DatasetKind>> {
    let has = |name: &str| dir.join(name).exists();
    if has("test_batch.bin") || (1..=5).any(|i| has(&format!("data_batch_{i}.bin"))) {
        Ok(Some(DatasetKind::Cifar10))
    } else if has("train-images-idx3-ubyte.gz") || has("train-images-idx3-ubyte") {
        Err(Error::InvalidArgument(format!(
            "{} holds IDX files: say --dataset mnist or --dataset fashion-mnist",
            dir.display()
        )))
    } else {
        Ok(None)
    }
}
