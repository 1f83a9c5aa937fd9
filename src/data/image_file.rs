//! Single image files (PNG, JPEG) for `predict`: decoded with the `image` crate, resized so the
//! shorter side fits the model, centre-cropped, scaled to [0, 1].

use std::path::Path;

use image::imageops::FilterType;

use crate::error::{Error, Result};

/// Loads `path` as `[channels, size, size]` f32 values in [0, 1] (1 channel: luma).
pub fn load(path: &Path, channels: usize, size: usize) -> Result<Vec<f32>> {
    let image = image::open(path).map_err(|e| Error::Format {
        path: path.into(),
        offset: 0,
        message: format!("cannot decode image: {e}"),
    })?;
    let (w, h) = (image.width(), image.height());
    if w == 0 || h == 0 {
        return Err(Error::Format {
            path: path.into(),
            offset: 0,
            message: "image has no pixels".into(),
        });
    }
    let scale = size as f64 / f64::from(w.min(h));
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(size as u32),
        ((f64::from(h) * scale).round() as u32).max(size as u32),
    );
    let resized = image.resize_exact(nw, nh, FilterType::Triangle);
    let cropped = resized.crop_imm(
        (nw - size as u32) / 2,
        (nh - size as u32) / 2,
        size as u32,
        size as u32,
    );
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
