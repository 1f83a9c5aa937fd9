//! Converting images to the model's input: scaling to [0, 1], zero-padding to the model's size
//! (28x28 MNIST to 32x32), the paper's augmentation (random crop from a 4-pixel zero pad, random
//! horizontal flip) or torchvision's random-resized crop (for images of your own), and optional
//! per-channel normalisation.

use rand::Rng;

/// Random augmentation of training images.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Zero padding around the image before a random crop of the original size (the paper: 4).
    pub crop_padding: usize,
    /// Random horizontal flip with probability 1/2.
    pub flip: bool,
    /// A random-resized crop instead of the padded crop (checkpoints written before it existed
    /// read as none).
    #[serde(default)]
    pub resized_crop: Option<ResizedCrop>,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            crop_padding: 4,
            flip: true,
            resized_crop: None,
        }
    }
}

impl Augment {
    /// torchvision's `RandomResizedCrop(scale=(min_scale, 1))` and a random horizontal flip.
    pub fn resized(min_scale: f32) -> Self {
        Self {
            crop_padding: 0,
            flip: true,
            resized_crop: Some(ResizedCrop { min_scale }),
        }
    }
}

/// torchvision's `RandomResizedCrop`: a region of a random fraction of the image's area in
/// `[min_scale, 1]` and a random aspect ratio in [3/4, 4/3] (log-uniform), resized to the
/// model's input with bilinear sampling; after 10 tries that do not fit, the centre crop of the
/// largest region within those ratios. It crops the image as stored (an image folder's images
/// are stored at `--image-size`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResizedCrop {
    /// The smallest fraction of the area a crop covers (torchvision: 0.08).
    pub min_scale: f32,
}

/// A region of the stored image, in pixels: top row, left column, height, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ResizedCrop {
    /// Draws a region of an image of `height` x `width` (torchvision's `get_params`).
    pub fn draw(&self, height: usize, width: usize, rng: &mut impl Rng) -> Region {
        let area = (height * width) as f64;
        let (low, high) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
        let min_scale = f64::from(self.min_scale).clamp(f64::MIN_POSITIVE, 1.0);
        for _ in 0..10 {
            let target = area * rng.random_range(min_scale..=1.0);
            let ratio = rng.random_range(low..=high).exp();
            let w = (target * ratio).sqrt().round() as usize;
            let h = (target / ratio).sqrt().round() as usize;
            if (1..=width).contains(&w) && (1..=height).contains(&h) {
                return Region {
                    top: rng.random_range(0..=height - h),
                    left: rng.random_range(0..=width - w),
                    height: h,
                    width: w,
                };
            }
        }
        let ratio = width as f64 / height as f64;
        let (h, w) = if ratio < 3.0 / 4.0 {
            (((width as f64) * 4.0 / 3.0).round() as usize, width)
        } else if ratio > 4.0 / 3.0 {
            (height, ((height as f64) * 4.0 / 3.0).round() as usize)
        } else {
            (height, width)
        };
        let (h, w) = (h.clamp(1, height), w.clamp(1, width));
        Region {
            top: (height - h) / 2,
            left: (width - w) / 2,
            height: h,
            width: w,
        }
    }
}

/// `region` of one image (`[channels, height, width]` bytes) resized back to the image's own
/// `height` x `width` with bilinear sampling (pixel centres aligned, the region's edges clamped,
/// rounded to bytes, as torchvision's PIL path does); [`place`] then fits it to the model's
/// input exactly as evaluation fits the whole image.
///
/// # Shapes
/// `pixels`: `[channels, height, width]` → the same
pub fn resized_crop(
    pixels: &[u8],
    channels: usize,
    (height, width): (usize, usize),
    region: Region,
) -> Vec<u8> {
    // The two source pixels of output pixel k along an axis of `out` pixels, from the region's
    // `len` pixels at `start`, and the weight of the second.
    let source = |k: usize, out: usize, start: usize, len: usize| -> (usize, usize, f32) {
        let last = (start + len.max(1) - 1) as f32;
        let at = start as f32 + (k as f32 + 0.5) * len as f32 / out as f32 - 0.5;
        let at = at.clamp(start as f32, last);
        let low = at.floor() as usize;
        (low, (low + 1).min(last as usize), at - low as f32)
    };
    let mut out = vec![0u8; channels * height * width];
    for c in 0..channels {
        let plane = &pixels[c * height * width..(c + 1) * height * width];
        let at = |y: usize, x: usize| f32::from(plane[y * width + x]);
        for y in 0..height {
            let (y0, y1, fy) = source(y, height, region.top, region.height);
            for x in 0..width {
                let (x0, x1, fx) = source(x, width, region.left, region.width);
                let top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * fx;
                let bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * fx;
                let value = top + (bottom - top) * fy;
                out[(c * height + y) * width + x] = value.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Per-channel `(x - mean) / std` of pixels in [0, 1]: applied after padding and cropping by a
/// [`crate::data::Batcher`], or by a zoo model to its own input (its configuration's
/// `normalize`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalize {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Standard deviation per channel.
    pub std: Vec<f32>,
}

impl Normalize {
    /// torchvision's ImageNet statistics (RGB).
    pub fn imagenet() -> Self {
        Self {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// Checks it for images of `channels` channels: one mean and one std per channel, finite,
    /// each std positive; the message says what is wrong.
    pub fn check(&self, channels: usize) -> std::result::Result<(), String> {
        if self.mean.len() != channels || self.std.len() != channels {
            return Err(format!(
                "normalisation has {} means and {} stds for {channels}-channel images",
                self.mean.len(),
                self.std.len()
            ));
        }
        if let Some(v) = self.mean.iter().find(|v| !v.is_finite()) {
            return Err(format!("normalisation mean {v} is not finite"));
        }
        if let Some(v) = self.std.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(format!("normalisation std {v} is not a positive number"));
        }
        Ok(())
    }

    /// The same map as scales `1 / std`, then shifts `-mean / std` (what
    /// [`crate::kernels::elementwise::channel_affine`] takes).
    ///
    /// # Shapes
    /// → `[2, C]` flattened
    pub fn scale_shift(&self) -> Vec<f32> {
        let scales = self.std.iter().map(|s| 1.0 / s);
        let shifts = self.mean.iter().zip(&self.std).map(|(m, s)| -m / s);
        scales.chain(shifts).collect()
    }
}

/// As `--normalize` takes it: `imagenet`, or MEANS/STDS.
impl std::fmt::Display for Normalize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Self::imagenet() {
            return f.write_str("imagenet");
        }
        let list = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
        write!(f, "{}/{}", list(&self.mean), list(&self.std))
    }
}

impl std::str::FromStr for Normalize {
    type Err = String;

    /// `imagenet`, or `MEAN,MEAN,.../STD,STD,...` (one of each per channel).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "imagenet" {
            return Ok(Self::imagenet());
        }
        let bad =
            || format!("{s:?} is not `imagenet` or MEANS/STDS like 0.5,0.5,0.5/0.25,0.25,0.25");
        let (mean, std) = s.split_once('/').ok_or_else(bad)?;
        let list = |t: &str| -> std::result::Result<Vec<f32>, String> {
            t.split(',')
                .map(|v| v.trim().parse::<f32>().map_err(|_| bad()))
                .collect()
        };
        let normalize = Self {
            mean: list(mean)?,
            std: list(std)?,
        };
        // Every check but the channel count, which the data decides.
        normalize.check(normalize.mean.len().max(normalize.std.len()))?;
        Ok(normalize)
    }
}

/// Writes one image into `out` (`[channels, size, size]`): centred (zero-padded or cropped to
/// `size`), shifted by `(shift_y, shift_x)` with zeros entering at the border, optionally
/// mirrored, scaled to [0, 1] and normalised.
///
/// # Shapes
/// `pixels`: `[channels, height, width]` → `out`: `[channels, size, size]`
///
/// # Panics
/// When `pixels` or `out` are shorter than those shapes, or `normalize` has fewer than
/// `channels` means or stds ([`Normalize::check`]); [`super::Batcher`] checks all three.
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
        let (mean, std) = normalize.map_or((0.0, 1.0), |n| (n.mean[c], n.std[c]));
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
    /// Draws this image's crop offset and flip (the padded crop).
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
