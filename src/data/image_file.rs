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

/// How large an image the decoder accepts: a few hundred bytes of JPEG header may promise
/// 16,384 x 16,384 pixels, so the limits, not the file size, bound the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest side, in pixels.
    pub max_side: u32,
    /// The most memory the decoder may allocate.
    pub max_bytes: u64,
}

impl Default for DecodeLimits {
    /// [`MAX_SIDE`] and [`MAX_DECODE_BYTES`]: what `predict` and the image folders use.
    fn default() -> Self {
        Self {
            max_side: MAX_SIDE,
            max_bytes: MAX_DECODE_BYTES,
        }
    }
}

/// Decodes `path` (PNG or JPEG, recognised by content) under the size limits; the error names
/// the file and what is wrong.
pub fn decode(path: &Path) -> Result<image::DynamicImage> {
    decode_with_limits(open(path)?, path, DecodeLimits::default())
}

/// Decodes an image file's bytes (PNG or JPEG, recognised by content) under `limits`, as
/// [`decode`] decodes a file under the default ones; `path` names it in errors.
pub fn decode_bytes(
    bytes: &[u8],
    path: &Path,
    limits: DecodeLimits,
) -> Result<image::DynamicImage> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Io {
            path: path.into(),
            source: e,
        })?;
    decode_with_limits(reader, path, limits)
}

/// Whether `path` holds a grey image, read from its header alone (the pixels are not decoded):
/// errors as [`decode`]'s for a file that is not an image, has no pixels or is over the limits.
pub fn probe_grey(path: &Path) -> Result<bool> {
    use image::ImageDecoder;
    let reader = open(path)?;
    let limits = DecodeLimits::default();
    let decoder = limited(reader, limits)
        .into_decoder()
        .map_err(|e| decode_error(e, path, limits))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(no_pixels(path));
    }
    Ok(!decoder.color_type().has_color())
}

fn open(path: &Path) -> Result<image::ImageReader<std::io::BufReader<std::fs::File>>> {
    let io = |e| Error::Io {
        path: path.into(),
        source: e,
    };
    image::ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)
}

/// `reader` with `limits` applied.
fn limited<R: std::io::BufRead + std::io::Seek>(
    mut reader: image::ImageReader<R>,
    DecodeLimits {
        max_side,
        max_bytes,
    }: DecodeLimits,
) -> image::ImageReader<R> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(max_bytes);
    reader.limits(limits);
    reader
}

fn decode_error(e: image::ImageError, path: &Path, limits: DecodeLimits) -> Error {
    match e {
        image::ImageError::Limits(l) => Error::File {
            path: path.into(),
            message: format!(
                "image over the decoding limits ({} pixels a side, {} MiB): {l}",
                limits.max_side,
                limits.max_bytes >> 20
            ),
        },
        other => Error::Decode {
            path: path.into(),
            what: "cannot decode the image",
            source: Box::new(other),
        },
    }
}

fn no_pixels(path: &Path) -> Error {
    Error::File {
        path: path.into(),
        message: "image has no pixels".into(),
    }
}

fn decode_with_limits<R: std::io::BufRead + std::io::Seek>(
    reader: image::ImageReader<R>,
    path: &Path,
    limits: DecodeLimits,
) -> Result<image::DynamicImage> {
    let image = limited(reader, limits)
        .decode()
        .map_err(|e| decode_error(e, path, limits))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(no_pixels(path));
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

/// Loads `path` as `[channels, size, size]` f32 values in [0, 1], its channels brought to
/// `channels` as a data set's are for the model ([`super::Batcher`]): a grey image repeated
/// into every channel, a colour image's R, G and B as they are for 3 channels, else averaged
/// into each. So an image predicted from its file gets the input it would get from its folder.
///
/// # Shapes
/// → `[channels, size, size]`
pub fn load(path: &Path, channels: usize, size: usize) -> Result<Vec<f32>> {
    let image = decode(path)?;
    let have = if image.color().has_color() { 3 } else { 1 };
    let square = centre_square(&image, size);
    let own: Vec<f32> = planes(&square, have)
        .into_iter()
        .map(|v| f32::from(v) / 255.0)
        .collect();
    let mut out = vec![0.0; channels * size * size];
    super::batcher::adapt_channels(&own, have, channels, size * size, &mut out);
    Ok(out)
}
