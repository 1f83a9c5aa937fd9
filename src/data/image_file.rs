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

/// Decodes `path` (PNG or JPEG, recognised by content) under the size limits; the error names
/// the file and what is wrong.
pub fn decode(path: &Path) -> Result<image::DynamicImage> {
    let bad = |message: String| Error::Format {
        path: path.into(),
        offset: 0,
        message,
    };
    let io = |e| Error::Io {
        path: path.into(),
        source: e,
    };
    let mut reader = image::ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)?;
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
    if image.width() == 0 || image.height() == 0 {
        return Err(bad("image has no pixels".into()));
    }
    Ok(image)
}

/// The centre square of `image` (cropped before resizing, so a huge thin image costs no huge
/// resize) resized to `size` x `size`: a resize of the shorter side to `size` and a centre crop.
pub fn centre_square(image: &image::DynamicImage, size: usize) -> image::DynamicImage {
    let (w, h) = (image.width(), image.height());
    let side = w.min(h);
    image
        .crop_imm((w - side) / 2, (h - side) / 2, side, side)
        .resize_exact(size as u32, size as u32, FilterType::Triangle)
}

/// `image` (already `size` x `size`) as `channels` planes of bytes (1 channel: luma; 3: RGB).
pub fn planes(image: &image::DynamicImage, channels: usize) -> Vec<u8> {
    let area = (image.width() * image.height()) as usize;
    let mut out = vec![0u8; channels * area];
    if channels == 1 {
        for (i, p) in image.to_luma8().pixels().enumerate() {
            out[i] = p.0[0];
        }
    } else {
        for (i, p) in image.to_rgb8().pixels().enumerate() {
            for c in 0..channels {
                out[c * area + i] = p.0[c % 3];
            }
        }
    }
    out
}

/// Loads `path` as `[channels, size, size]` f32 values in [0, 1] (1 channel: luma).
///
/// # Shapes
/// → `[channels, size, size]`
pub fn load(path: &Path, channels: usize, size: usize) -> Result<Vec<f32>> {
    let square = centre_square(&decode(path)?, size);
    Ok(planes(&square, channels)
        .into_iter()
        .map(|v| f32::from(v) / 255.0)
        .collect())
}
