//! FLOPs and parameter counts of a network (the VGG-16 and the ResNets): the paper's convention, exact
//! multiply-accumulates, and the MACs each way of computing HetConv actually executes.

use crate::nn::{ResNetConfig, VggConfig, VggLayer};

/// Costs of one model for one input image (at the configuration's image size).
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

/// One layer as cost counting sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostLayer {
    /// A `kernel` x `kernel` conv producing `cout` maps of `out_area` pixels: standard
    /// (`parts` None) or HetConv(P) (`kernel` x `kernel` on the filter's own block of M/P input
    /// channels, 1x1 on the other channels).
    Conv {
        /// Input channels M.
        cin: usize,
        /// Output channels N.
        cout: usize,
        /// Kernel side.
        kernel: usize,
        /// Output pixels per map.
        out_area: usize,
        /// HetConv's part P (None: a standard conv).
        parts: Option<usize>,
        /// A bias per output channel.
        bias: bool,
    },
    /// BatchNorm's weight and bias over `channels`.
    BatchNorm {
        /// Channels.
        channels: usize,
    },
    /// A linear layer with bias.
    Linear {
        /// Inputs.
        inputs: usize,
        /// Outputs.
        outputs: usize,
    },
}

/// Counts the costs of a network made of `layers`. The paper's convention (its VGG table) adds
/// one add per conv output to the MACs and scales a HetConv layer's count by
/// R = 1/P + (1 - 1/P)/K² of the standard K x K conv's (K = 3: (P + 8) / 9P); its ResNet FLOPs
/// are the MACs.
pub fn layers_cost(layers: &[CostLayer]) -> ModelCost {
    // Fixed-denominator sums: every HetConv layer's K² P divides the denominator.
    let denominator = layers.iter().fold(1u128, |acc, layer| match layer {
        CostLayer::Conv {
            parts: Some(p),
            kernel,
            ..
        } => {
            let q = ((*p).max(1) * kernel * kernel) as u128;
            acc / gcd(acc, q) * q
        }
        _ => acc,
    });
    let mut numerator: u128 = 0;
    let (mut macs, mut pytorch, mut params, mut stored) = (0u64, 0u64, 0u64, 0u64);
    for layer in layers {
        match *layer {
            CostLayer::Conv {
                cin,
                cout,
                kernel,
                out_area,
                parts,
                bias,
            } => {
                let (m, n, area, taps) = (
                    cin as u64,
                    cout as u64,
                    out_area as u64,
                    (kernel * kernel) as u64,
                );
                let bias_params = if bias { n } else { 0 };
                let dense = taps * m * n * area;
                match parts {
                    Some(p) => {
                        let own = m / p.max(1) as u64;
                        macs += (taps * n * own + n * (m - own)) * area;
                        pytorch += (taps * n * own + n * m) * area;
                        // (K² MND² + ND²) R with R = (P + K² - 1) / (K² P).
                        let (p, t) = (p.max(1) as u128, u128::from(taps));
                        numerator +=
                            u128::from(dense + n * area) * (p + t - 1) * (denominator / (t * p));
                        params += taps * n * own + n * (m - own) + bias_params;
                        stored += taps * n * own + n * m + bias_params;
                    }
                    None => {
                        macs += dense;
                        pytorch += dense;
                        numerator += u128::from(dense + n * area) * denominator;
                        params += taps * m * n + bias_params;
                        stored += taps * m * n + bias_params;
                    }
                }
            }
            CostLayer::BatchNorm { channels } => {
                params += 2 * channels as u64;
                stored += 2 * channels as u64;
            }
            CostLayer::Linear { inputs, outputs } => {
                let (i, o) = (inputs as u64, outputs as u64);
                macs += i * o;
                pytorch += i * o;
                numerator += u128::from(i * o) * denominator;
                params += i * o + o;
                stored += i * o + o;
            }
        }
    }
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

fn gcd(a: u128, b: u128) -> u128 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Counts the costs of a VGG-16 configuration.
pub fn vgg_cost(config: &VggConfig) -> ModelCost {
    let mut layers = Vec::new();
    for layer in config.layers() {
        if let VggLayer::Conv {
            cin,
            cout,
            size,
            hetconv,
            ..
        } = layer
        {
            layers.push(CostLayer::Conv {
                cin,
                cout,
                kernel: 3,
                out_area: size * size,
                parts: hetconv.then_some(config.parts),
                bias: !hetconv,
            });
            layers.push(CostLayer::BatchNorm { channels: cout });
        }
    }
    let (inputs, hidden, classes) = (config.classifier_inputs(), config.hidden, config.classes);
    layers.push(CostLayer::Linear {
        inputs,
        outputs: hidden,
    });
    layers.push(CostLayer::BatchNorm { channels: hidden });
    layers.push(CostLayer::Linear {
        inputs: hidden,
        outputs: classes,
    });
    layers_cost(&layers)
}

/// Counts the costs of a ResNet configuration (the paper's ResNet FLOPs are its MACs).
pub fn resnet_cost(config: &ResNetConfig) -> ModelCost {
    let mut layers = Vec::new();
    for conv in config.convs() {
        layers.push(CostLayer::Conv {
            cin: conv.cin,
            cout: conv.cout,
            kernel: conv.kernel,
            out_area: conv.out_size * conv.out_size,
            // At P = 1 the blocks' 3x3 convs are standard convs (torchvision's).
            parts: (conv.hetconv && config.parts > 1).then_some(config.parts),
            bias: false,
        });
        layers.push(CostLayer::BatchNorm {
            channels: conv.cout,
        });
    }
    layers.push(CostLayer::Linear {
        inputs: config.features(),
        outputs: config.classes,
    });
    layers_cost(&layers)
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
