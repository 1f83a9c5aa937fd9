//! CIFAR-10, binary version: records of 1 label byte and 3072 pixel bytes (1024 R, 1024 G,
//! 1024 B, row-major 32x32), 10,000 per file.

use super::{Dataset, DatasetKind};
use crate::error::{Error, Result};

/// Bytes per record.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// Parses CIFAR-10 records from `bytes`; `source` names the file in errors.
pub fn parse(bytes: &[u8], source: &str) -> Result<Dataset> {
    let format = |offset: usize, message: String| Error::Format {
        path: source.into(),
        offset: offset as u64,
        message,
    };
    if bytes.is_empty() {
        return Err(format(0, "empty file: no CIFAR-10 record".into()));
    }
    if !bytes.len().is_multiple_of(RECORD) {
        let whole = bytes.len() / RECORD;
        return Err(format(
            whole * RECORD,
            format!(
                "{} bytes is not a whole number of {RECORD}-byte records: record {whole} is truncated",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut pixels = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] > 9 {
            return Err(format(
                i * RECORD,
                format!("label {} of record {i} is out of range 0..=9", record[0]),
            ));
        }
        labels.push(record[0]);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok(Dataset {
        name: source.to_string(),
        pixels,
        labels,
        channels: 3,
        height: 32,
        width: 32,
        class_names: DatasetKind::Cifar10.class_names(),
    })
}

/// Joins data sets of the same geometry.
pub fn concat(name: &str, parts: Vec<Dataset>) -> Option<Dataset> {
    let mut iter = parts.into_iter();
    let mut first = iter.next()?;
    for part in iter {
        first.pixels.extend(part.pixels);
        first.labels.extend(part.labels);
    }
    first.name = name.to_string();
    Some(first)
}

/// Loads `data_batch_{1..5}.bin` (those present) and `test_batch.bin` from `dir` (without
/// training batches the training split is empty and says why; without a test batch the
/// training images are evaluated, with a warning).
#[cfg(not(target_arch = "wasm32"))]
pub fn load_dir(dir: &std::path::Path) -> Result<super::Splits> {
    let read = |name: &str| -> Result<Option<Dataset>> {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    };
    let mut train = Vec::new();
    for i in 1..=5 {
        train.extend(read(&format!("data_batch_{i}.bin"))?);
    }
    let test = read("test_batch.bin")?;
    let name = format!("CIFAR-10 ({})", dir.display());
    match (concat(&name, train), test) {
        (Some(train), Some(test)) => Ok(super::Splits { train, test }),
        (Some(train), None) => {
            log::warn!(
                "{}: no test_batch.bin; evaluating on the training images",
                dir.display()
            );
            Ok(super::Splits {
                test: train.clone(),
                train,
            })
        }
        // Evaluation works; training is refused by the trainer (no images), never done on the
        // test set.
        (None, Some(test)) => Ok(super::Splits {
            train: Dataset {
                name: format!(
                    "the training split of {} (no data_batch_*.bin there, only test_batch.bin)",
                    dir.display()
                ),
                ..test.take(0)
            },
            test,
        }),
        (None, None) => Err(Error::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no data_batch_*.bin or test_batch.bin here",
            ),
        }),
    }
}
