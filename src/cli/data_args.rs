//! The options that pick a data set, shared by train, eval and predict.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use hetconv::data::{self, DatasetKind, Splits};
use hetconv::{Error, Result};

/// Which data set a folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatasetArg {
    /// CIFAR-10, binary version (data_batch_1.bin .. data_batch_5.bin, test_batch.bin).
    Cifar10,
    /// MNIST as IDX files (train-images-idx3-ubyte[.gz], ...).
    Mnist,
    /// Fashion-MNIST as IDX files.
    FashionMnist,
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
}

impl DataArgs {
    /// Loads both splits.
    pub fn load(&self) -> Result<Splits> {
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
            None => guess(dir)?,
        };
        data::load_dir(dir, kind)
    }
}

fn guess(dir: &std::path::Path) -> Result<DatasetKind> {
    let has = |name: &str| dir.join(name).exists();
    if has("test_batch.bin") || (1..=5).any(|i| has(&format!("data_batch_{i}.bin"))) {
        Ok(DatasetKind::Cifar10)
    } else if has("train-images-idx3-ubyte.gz") || has("train-images-idx3-ubyte") {
        Err(Error::InvalidArgument(format!(
            "{} holds IDX files: say --dataset mnist or --dataset fashion-mnist",
            dir.display()
        )))
    } else {
        Err(Error::InvalidArgument(format!(
            "{}: no CIFAR-10 (data_batch_*.bin) or IDX (train-images-idx3-ubyte[.gz]) files found",
            dir.display()
        )))
    }
}
