//! Converting images to the model's input: scaling to [0, 1], zero-padding to the model's size
//! (28x28 MNIST to 32x32), the paper's augmentation (random crop from a 4-pixel zero pad, random
//! horizontal flip) and optional per-channel normalisation.

use rand::Rng;

/// Random augmentation of training images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Zero padding around the image before a random crop of the original size (the paper: 4).
    pub crop_padding: usize,
    /// Random horizontal flip with probability 1/2.
    pub flip: bool,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            crop_padding: 4,
            flip: true,
        }
    }
}

/// Per-channel `(x - mean) / std`, applied after padding and cropping.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Standard deviation per channel.
    pub std: Vec<f32>,
}

/// Writes one image into `out` (`[channels, size, size]`): centred (zero-padded or cropped to
/// `size`), shifted by `(shift_y, shift_x)` with zeros entering at the border, optionally
/// mirrored, scaled to [0, 1] and normalised.
#[allow(clippy::too_many_arguments)]
pub fn place(
    pixels: &[u8],
    channels: usize,
    height: usize,
    width: usize,
    size: usize,
    shift: (isize, isize),
    flip: bool,
    normalize: Option<&Normalize>,
    out: &mut [f32],
) {
    let top = (size as isize - height as isize) / 2;
    let left = (size as isize - width as isize) / 2;
    for c in 0..channels {
        let (mean, std) = normalize.map_or((0.0, 1.0), |n| {
            (n.mean[c % n.mean.len()], n.std[c % n.std.len()])
        });
        for y in 0..size {
            for x in 0..size {
                let sx = if flip { size - 1 - x } else { x };
                let iy = y as isize + shift.0 - top;
                let ix = sx as isize + shift.1 - left;
                let value = if iy >= 0 && ix >= 0 && (iy as usize) < height && (ix as usize) < width
                {
                    f32::from(pixels[(c * height + iy as usize) * width + ix as usize]) / 255.0
                } else {
                    0.0
                };
                out[(c * size + y) * size + x] = (value - mean) / std;
            }
        }
    }
}

impl Augment {
    /// Draws this image's crop offset and flip.
    pub fn draw(&self, rng: &mut impl Rng) -> ((isize, isize), bool) {
        let p = self.crop_padding as i64;
        let shift = if p > 0 {
            (
                rng.random_range(-p..=p) as isize,
                rng.random_range(-p..=p) as isize,
            )
        } else {
            (0, 0)
        };
        let flip = self.flip && rng.random_bool(0.5);
        (shift, flip)
    }
}
