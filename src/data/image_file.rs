//! Single image files (PNG, JPEG) for `predict`: recognised by their contents (not their
//! extension), decoded with the `image` crate under size limits, centre-cropped to a square
//! (before resizing, so a huge thin image costs no huge resize), resized to the model's input
//! and scaled to [0, 1].

use std::path::Path;

use image::imageops::FilterType;

use crate::error::{Error, Result};

/// The largest image side decoded.
pub const MAX_SIDE: u32 = 16_384;
/// The most memory the decoder may allocate for one image.
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

/// Loads `path` as `[channels, size, size]` f32 values in [0, 1] (1 channel: luma).
pub fn load(path: &Path, channels: usize, size: usize) -> Result<Vec<f32>> {
    let bad = |message: String| Error::Format {
        path: path.into(),
        offset: 0,
        message,
    };
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| Error::Io {
            path: path.into(),
            source: e,
        })?
        .with_guessed_format()
        .map_err(|e| Error::Io {
            path: path.into(),
            source: e,
        })?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => bad(format!(
            "image over the decoding limits ({MAX_SIDE} pixels a side, {} MiB): {l}",
            MAX_DECODE_BYTES >> 20
        )),
        other => bad(format!("cannot decode image: {other}")),
    })?;
    let (w, h) = (image.width(), image.height());
    if w == 0 || h == 0 {
        return Err(bad("image has no pixels".into()));
    }
    let side = w.min(h);
    let cropped = image
        .crop_imm((w - side) / 2, (h - side) / 2, side, side)
        .resize_exact(size as u32, size as u32, FilterType::Triangle);
    let mut out = vec![0.0f32; channels * size * size];
    if channels == 1 {
        let grey = cropped.to_luma8();
        for (i, p) in grey.pixels().enumerate() {
            out[i] = f32::from(p.0[0]) / 255.0;
        }
    } else {
        let rgb = cropped.to_rgb8();
        for (i, p) in rgb.pixels().enumerate() {
            for c in 0..channels {
                out[c * size * size + i] = f32::from(p.0[c % 3]) / 255.0;
            }
        }
    }
    Ok(out)
}
