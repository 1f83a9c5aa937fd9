//! IDX files (MNIST, Fashion-MNIST): big-endian magic 2051 for images (u8 [n, rows, cols]) and
//! 2049 for labels, gzipped or not.

use std::io::Read;

use super::{Dataset, DatasetKind, Images};
use crate::error::{Error, Result};

fn format_error(source: &str, offset: usize, message: String) -> Error {
    Error::Format {
        path: source.into(),
        offset: offset as u64,
        message,
    }
}

/// The most bytes a gzipped IDX file may inflate to (Fashion-MNIST's training images take 47
/// MB): a corrupt or hostile stream is refused instead of filling the memory.
pub const MAX_INFLATED_BYTES: u64 = 1 << 30;

/// Un-gzips `bytes` if they start with the gzip magic.
pub fn maybe_gunzip(bytes: &[u8], source: &str) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_INFLATED_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::Decode {
                path: source.into(),
                what: "bad gzip stream",
                source: Box::new(e),
            })?;
        if out.len() as u64 > MAX_INFLATED_BYTES {
            return Err(Error::File {
                path: source.into(),
                message: format!(
                    "gzip stream inflates to more than {} MiB",
                    MAX_INFLATED_BYTES >> 20
                ),
            });
        }
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

fn be_u32(bytes: &[u8], offset: usize, source: &str) -> Result<u32> {
    bytes
        .get(offset..offset + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format_error(source, offset, "file ends inside the header".into()))
}

/// Parses an IDX image file: returns (count, rows, cols, pixels).
pub fn parse_images(bytes: &[u8], source: &str) -> Result<(usize, usize, usize, Vec<u8>)> {
    let data = maybe_gunzip(bytes, source)?;
    let magic = be_u32(&data, 0, source)?;
    if magic != 2051 {
        return Err(format_error(
            source,
            0,
            format!("bad magic {magic}: IDX images have 2051"),
        ));
    }
    let n = be_u32(&data, 4, source)? as usize;
    let rows = be_u32(&data, 8, source)? as usize;
    let cols = be_u32(&data, 12, source)? as usize;
    let Some(need) = n.checked_mul(rows).and_then(|p| p.checked_mul(cols)) else {
        return Err(format_error(
            source,
            4,
            format!("header promises {n} images of {rows}x{cols}: more bytes than any file holds"),
        ));
    };
    let body = &data[16..];
    if body.len() < need {
        return Err(format_error(
            source,
            16 + body.len(),
            format!(
                "truncated: header promises {n} images of {rows}x{cols} ({need} bytes), {} present",
                body.len()
            ),
        ));
    }
    Ok((n, rows, cols, body[..need].to_vec()))
}

/// Parses an IDX label file.
pub fn parse_labels(bytes: &[u8], source: &str, classes: usize) -> Result<Vec<u8>> {
    let data = maybe_gunzip(bytes, source)?;
    let magic = be_u32(&data, 0, source)?;
    if magic != 2049 {
        return Err(format_error(
            source,
            0,
            format!("bad magic {magic}: IDX labels have 2049"),
        ));
    }
    let n = be_u32(&data, 4, source)? as usize;
    let body = &data[8..];
    if body.len() < n {
        return Err(format_error(
            source,
            8 + body.len(),
            format!(
                "truncated: header promises {n} labels, {} present",
                body.len()
            ),
        ));
    }
    if let Some(i) = body[..n].iter().position(|&l| usize::from(l) >= classes) {
        return Err(format_error(
            source,
            8 + i,
            format!("label {} is out of range 0..{classes}", body[i]),
        ));
    }
    Ok(body[..n].to_vec())
}

/// Builds a data set from an image file and a label file.
pub fn parse_pair(
    images: &[u8],
    images_source: &str,
    labels: &[u8],
    labels_source: &str,
    kind: DatasetKind,
) -> Result<Dataset> {
    let class_names = kind.class_names();
    let (n, rows, cols, pixels) = parse_images(images, images_source)?;
    let labels = parse_labels(labels, labels_source, class_names.len())?;
    if labels.len() != n {
        return Err(Error::InvalidArgument(format!(
            "{images_source} has {n} images but {labels_source} has {} labels",
            labels.len()
        )));
    }
    Ok(Dataset {
        name: images_source.to_string(),
        images: Images::Bytes(pixels),
        labels,
        channels: 1,
        height: rows,
        width: cols,
        class_names,
    })
}

/// Loads `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` from `dir`.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_dir(dir: &std::path::Path, kind: DatasetKind) -> Result<super::Splits> {
    let read = |stem: &str| -> Result<(Vec<u8>, String)> {
        for name in [format!("{stem}.gz"), stem.to_string()] {
            let path = dir.join(&name);
            if path.exists() {
                let bytes = std::fs::read(&path).map_err(|e| Error::Io {
                    path: path.clone(),
                    source: e,
                })?;
                return Ok((bytes, path.display().to_string()));
            }
        }
        Err(Error::Io {
            path: dir.join(stem),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "missing (also tried .gz)"),
        })
    };
    let split = |prefix: &str| -> Result<Dataset> {
        let (images, images_source) = read(&format!("{prefix}-images-idx3-ubyte"))?;
        let (labels, labels_source) = read(&format!("{prefix}-labels-idx1-ubyte"))?;
        parse_pair(&images, &images_source, &labels, &labels_source, kind)
    };
    Ok(super::Splits {
        train: split("train")?,
        test: split("t10k")?,
    })
}
