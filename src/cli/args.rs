//! Value parsers for the command line's numbers: every flag is checked when it is parsed, before
//! any work, and a bad value is refused with a message naming the value and the range.

/// The largest `--width-mult`: 8x the paper's widths is 4096 channels in the last layers.
const MAX_WIDTH_MULT: f64 = 8.0;

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))
}

/// A whole number of at least 1 (epochs, steps, batch sizes, parts, limits, intervals).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match number::<usize>(s)? {
        0 => Err("must be at least 1, got 0".into()),
        n => Ok(n),
    }
}

/// A stored image side: 1 to 4096 pixels.
pub fn image_side(s: &str) -> Result<usize, String> {
    let max = hetconv::data::image_folder::MAX_STORED_SIDE;
    match at_least_one(s)? {
        n if n > max => Err(format!("must be at most {max}, got {n}")),
        n => Ok(n),
    }
}

/// [`at_least_one`] for step counts.
pub fn steps(s: &str) -> Result<u64, String> {
    at_least_one(s).map(|n| n as u64)
}

/// A finite number of at least 0 (learning rate, weight decay, warm-up epochs).
pub fn non_negative(s: &str) -> Result<f64, String> {
    let v: f64 = number(s)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number >= 0, got {s}"))
    }
}

/// A momentum factor in [0, 1).
pub fn momentum(s: &str) -> Result<f64, String> {
    let v: f64 = number(s)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be in [0, 1), got {s}"))
    }
}

/// A factor in (0, 1] (the multistep schedule's gamma, the smallest area of a random-resized
/// crop).
pub fn factor(s: &str) -> Result<f64, String> {
    let v: f64 = number(s)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("must be in (0, 1], got {s}"))
    }
}

/// A width multiplier in (0, 8].
pub fn width_mult(s: &str) -> Result<f64, String> {
    let v: f64 = number(s)?;
    if v > 0.0 && v <= MAX_WIDTH_MULT {
        Ok(v)
    } else {
        Err(format!("must be in (0, {MAX_WIDTH_MULT}], got {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_numbers_are_refused_by_value() {
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").unwrap_err().contains("at least 1"));
        assert!(at_least_one("-1").unwrap_err().contains("\"-1\""));
        assert_eq!(non_negative("0.05"), Ok(0.05));
        for bad in ["-0.5", "NaN", "inf", "x"] {
            assert!(non_negative(bad).is_err(), "{bad}");
            assert!(width_mult(bad).is_err(), "{bad}");
        }
        assert!(
            width_mult("0").is_err() && width_mult("16").is_err() && width_mult("1e30").is_err()
        );
        assert_eq!(width_mult("0.125"), Ok(0.125));
        assert!(momentum("1").is_err() && momentum("0.9").is_ok());
        assert!(factor("0").is_err() && factor("0.2").is_ok());
    }
}

/// A network of the zoo, by name (`--model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelName {
    /// The paper's VGG-16.
    Vgg16,
    /// A ResNet of this depth (ImageNet layout for 18/34/50/101/152, CIFAR layout for 6n + 2).
    ResNet(usize),
}

impl std::fmt::Display for ModelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelName::Vgg16 => f.write_str("vgg16"),
            ModelName::ResNet(depth) => write!(f, "resnet{depth}"),
        }
    }
}

/// An input normalisation: `imagenet` or MEANS/STDS (checked against the model's channels
/// when the model is built).
pub fn normalize(s: &str) -> Result<hetconv::data::Normalize, String> {
    s.parse()
}

/// `vgg16`, or `resnetN` for a depth a ResNet family has.
pub fn model_name(s: &str) -> Result<ModelName, String> {
    let known = "vgg16, resnet18, resnet34, resnet50, resnet101, resnet152 or a CIFAR ResNet \
                 resnet20, resnet32, resnet44, resnet56, resnet110 (depth 6n + 2, up to 3002)";
    if s == "vgg16" {
        return Ok(ModelName::Vgg16);
    }
    let depth = s
        .strip_prefix("resnet")
        .and_then(|d| d.parse::<usize>().ok())
        .ok_or_else(|| format!("{s:?} is not a model: {known}"))?;
    match hetconv::nn::ResNetConfig::cifar(depth, 1).layout() {
        Some(_) => Ok(ModelName::ResNet(depth)),
        None => Err(format!("{s:?} is not a model: {known}")),
    }
}
