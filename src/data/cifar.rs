//! CIFAR-10, binary version: records of 1 label byte and 3072 pixel bytes (1024 R, 1024 G,
//! 1024 B, row-major 32x32), 10,000 per file.

use super::{Dataset, DatasetKind, Images};
use crate::error::{Error, Result};

/// Bytes per record.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// Parses CIFAR-10 records from `bytes`; `source` names the file in errors.
pub fn parse(bytes: &[u8], source: &str) -> Result<Dataset> {
    Ok(dataset(source.to_string(), parse_records(bytes, source)?))
}

/// The CIFAR-10 data set `name` of the records' (pixels, labels).
fn dataset(name: String, (pixels, labels): (Vec<u8>, Vec<u8>)) -> Dataset {
    Dataset {
        name,
        images: Images::Bytes(pixels),
        labels,
        channels: 3,
        height: 32,
        width: 32,
        class_names: DatasetKind::Cifar10.class_names(),
    }
}

/// The records' pixels and labels.
fn parse_records(bytes: &[u8], source: &str) -> Result<(Vec<u8>, Vec<u8>)> {
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
    Ok((pixels, labels))
}

/// Loads `data_batch_{1..5}.bin` (those present) and `test_batch.bin` from `dir` (without
/// training batches the training split is empty and says why; without a test batch the
/// training images are evaluated, with a warning).
#[cfg(not(target_arch = "wasm32"))]
pub fn load_dir(dir: &std::path::Path) -> Result<super::Splits> {
    let read = |name: &str| -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => parse_records(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    };
    let mut train: Option<(Vec<u8>, Vec<u8>)> = None;
    for i in 1..=5 {
        if let Some((pixels, labels)) = read(&format!("data_batch_{i}.bin"))? {
            let all = train.get_or_insert_default();
            all.0.extend(pixels);
            all.1.extend(labels);
        }
    }
    let name = format!("CIFAR-10 ({})", dir.display());
    let train = train.map(|records| dataset(name, records));
    let test = read("test_batch.bin")?
        .map(|records| dataset(dir.join("test_batch.bin").display().to_string(), records));
    match (train, test) {
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
