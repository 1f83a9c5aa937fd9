//! FLOPs and parameter counts of a VGG configuration: the paper's convention, exact
//! multiply-accumulates, and the MACs each way of computing HetConv actually executes.

use crate::nn::{VggConfig, VggLayer};

/// Costs of one model for one 32x32 (or `image_size`) image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelCost {
    /// The paper's count: MACs plus one add per conv output, HetConv convs scaled by
    /// R = 1/P + (1 - 1/P)/9, classifier MACs; exact, as a fraction `numerator / denominator`.
    pub paper_numerator: u128,
    /// See `paper_numerator`.
    pub paper_denominator: u128,
    /// Multiply-accumulates of the model as defined (masked block not counted).
    pub macs: u64,
    /// MACs the PyTorch reproduction executes (grouped 3x3 + dense 1x1 on the masked weight).
    pub macs_pytorch_form: u64,
    /// MACs hetconv's fused and block-skipping kernels execute (= `macs`).
    pub macs_hetconv: u64,
    /// Trainable parameters, the masked zeros of the 1x1 weights not counted.
    pub params: u64,
    /// Trainable parameters as stored (masked zeros included).
    pub params_stored: u64,
}

impl ModelCost {
    /// The paper's FLOPs in millions, truncated (not rounded) to 0.01M as the paper prints them.
    ///
    /// ```
    /// use hetconv::flops::vgg_cost;
    /// use hetconv::nn::VggConfig;
    /// assert_eq!(vgg_cost(&VggConfig::paper(4)).paper_millions(), "105.98M");
    /// ```
    pub fn paper_millions(&self) -> String {
        let hundredths = self.paper_numerator / (self.paper_denominator * 10_000);
        format!("{}.{:02}M", hundredths / 100, hundredths % 100)
    }
}

/// Rounds to 0.01M: `313463808` → `"313.46M"`.
pub fn millions(value: u64) -> String {
    format!("{:.2}M", value as f64 / 1e6)
}

/// Counts the costs of `config`.
pub fn vgg_cost(config: &VggConfig) -> ModelCost {
    let p = config.parts.max(1) as u128;
    // Fixed-denominator sums: every HetConv term is (9MND² + ND²)(P + 8) / (9P).
    let denominator = 9 * p;
    let mut numerator: u128 = 0;
    let (mut macs, mut pytorch, mut params, mut stored) = (0u64, 0u64, 0u64, 0u64);
    for layer in config.layers() {
        let VggLayer::Conv {
            cin,
            cout,
            size,
            hetconv,
            ..
        } = layer
        else {
            continue;
        };
        let (m, n, area) = (cin as u64, cout as u64, (size * size) as u64);
        params += 2 * n; // BatchNorm weight and bias
        stored += 2 * n;
        if hetconv {
            let own = m / config.parts as u64;
            let per_pixel = 9 * n * own + n * (m - own);
            macs += per_pixel * area;
            pytorch += (9 * n * own + n * m) * area;
            numerator += u128::from((9 * m * n + n) * area) * (p + 8);
            params += 9 * n * own + n * (m - own);
            stored += 9 * n * own + n * m;
        } else {
            let conv_macs = 9 * m * n * area;
            macs += conv_macs;
            pytorch += conv_macs;
            numerator += u128::from(conv_macs + n * area) * denominator;
            params += 9 * m * n + n;
            stored += 9 * m * n + n;
        }
    }
    let (inputs, hidden, classes) = (
        config.classifier_inputs() as u64,
        config.hidden as u64,
        config.classes as u64,
    );
    let classifier_macs = inputs * hidden + hidden * classes;
    macs += classifier_macs;
    pytorch += classifier_macs;
    numerator += u128::from(classifier_macs) * denominator;
    let classifier_params = inputs * hidden + hidden + 2 * hidden + hidden * classes + classes;
    params += classifier_params;
    stored += classifier_params;
    ModelCost {
        paper_numerator: numerator,
        paper_denominator: denominator,
        macs,
        macs_pytorch_form: pytorch,
        macs_hetconv: macs,
        params,
        params_stored: stored,
    }
}

/// The paper's table: P, FLOPs as printed, CIFAR-10 accuracy (paper), accuracy (PyTorch
/// reproduction).
pub const PAPER_TABLE: [(usize, &str, f64, f64); 7] = [
    (1, "313.74M", 94.06, 94.1),
    (2, "175.23M", 93.89, 93.9),
    (4, "105.98M", 93.93, 93.9),
    (8, "71.35M", 93.92, 93.9),
    (16, "54.04M", 93.96, 93.9),
    (32, "45.38M", 93.73, 93.8),
    (64, "41.05M", 93.42, 93.4),
];
