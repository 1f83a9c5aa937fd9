//! ONNX export of the zoo's networks (opset 13), for ONNX Runtime, TensorRT, OpenVINO and the
//! converters that take ONNX. The graph is written from a checkpoint (its network's description
//! and its tensors), so it needs no GPU.
//!
//! - Input `input`: `[batch, C, H, W]` f32 pixels in [0, 1], the batch free; output `logits`:
//!   `[batch, classes]`. A network that normalises its input (`--normalize`) does it in the graph
//!   (`Mul` + `Add`).
//! - A HetConv layer is `Conv` (group P, 3x3, the layer's stride) on its `gwc` weight plus a 1x1
//!   `Conv` on its `pwc` weight (the own block's zeros kept) and `Add`, as the PyTorch
//!   reproduction computes it; or, with [`OnnxOptions::fold_hetconv`], one dense 3x3 `Conv`
//!   whose centre taps hold the 1x1 weights (the same function, the standard conv's cost).
//! - BatchNorm is `BatchNormalization` (eval mode: the running estimates), or with
//!   [`OnnxOptions::fold_batchnorm`] folded into the conv (or linear layer) before it.

mod graph;
pub mod proto;

use std::collections::HashMap;

use graph::{Attr, Graph};
use prost::Message;
use proto::{ModelProto, OperatorSetIdProto, StringStringEntryProto};

use crate::Architecture;
use crate::checkpoint::Checkpoint;
use crate::conv_kind::ConvDims;
use crate::error::{Error, Result};
use crate::kernels::batchnorm::BatchNormConfig;
use crate::nn::{ResNetConfig, ResNetLayout, VggConfig, VggLayer};

/// The operator set the graphs use.
pub const OPSET: i64 = 13;

/// The IR version of opset 13 (ONNX 1.8).
const IR_VERSION: i64 = 7;

/// How the graph is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OnnxOptions {
    /// Each HetConv layer as one dense 3x3 `Conv` (instead of grouped 3x3 + 1x1 + `Add`).
    pub fold_hetconv: bool,
    /// Each BatchNorm folded into the conv or linear layer before it.
    pub fold_batchnorm: bool,
}

/// The ONNX model of `checkpoint`'s network (one of the zoo's) with its weights.
pub fn export(checkpoint: &Checkpoint, options: OnnxOptions) -> Result<Vec<u8>> {
    let arch = checkpoint.architecture.as_ref().ok_or_else(|| {
        Error::InvalidArgument(
            "ONNX export: the checkpoint holds a custom network; only the zoo's networks are \
             described well enough to be written as ONNX"
                .into(),
        )
    })?;
    arch.validate()?;
    let mut out = Writer {
        tensors: &checkpoint.tensors,
        graph: Graph::default(),
        options,
        eps: BatchNormConfig::default().eps,
    };
    let input = arch.input();
    let mut x = "input".to_string();
    if let Some(n) = arch.normalize() {
        let c = input.channels;
        let affine = n.scale_shift();
        let scale = out.graph.weight("input.scale", &[1, c, 1, 1], &affine[..c]);
        let shift = out.graph.weight("input.shift", &[1, c, 1, 1], &affine[c..]);
        let scaled = out.graph.op("Mul", "input.scaled", &[&x, &scale], vec![]);
        x = out
            .graph
            .op("Add", "input.normalised", &[&scaled, &shift], vec![]);
    }
    let logits = match arch {
        Architecture::Vgg16(c) => out.vgg(c, &x)?,
        Architecture::ResNet(c) => out.resnet(c, &x)?,
    };
    let graph = out.graph.finish(
        &arch.name(),
        ("input", &[input.channels, input.size, input.size]),
        (&logits, "logits", arch.classes()),
    );
    let mut metadata = vec![StringStringEntryProto {
        key: crate::checkpoint::META_CONFIG.into(),
        value: arch.to_json()?,
    }];
    if let Some(names) = checkpoint.class_names() {
        metadata.push(StringStringEntryProto {
            key: crate::checkpoint::META_CLASSES.into(),
            value: serde_json::to_string(&names).unwrap_or_default(),
        });
    }
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "hetconv".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: arch.to_string(),
        graph: Some(graph),
        metadata_props: metadata,
    };
    Ok(model.encode_to_vec())
}

/// The spatial part of one conv as the graph writes it.
#[derive(Clone, Copy)]
enum ConvSpec {
    /// A standard K x K conv (`{name}.weight`, and `{name}.bias` if it has one).
    Standard { kernel: usize, bias: bool },
    /// HetConv(P) (`{name}.gwc.weight`, `{name}.pwc.weight`).
    HetConv { parts: usize },
}

/// One conv of a network: its names, channels, stride and kind.
struct ConvLayer<'a> {
    name: &'a str,
    bn: &'a str,
    channels: (usize, usize),
    stride: usize,
    spec: ConvSpec,
}

/// A BatchNorm folded into the conv before it (eval mode): each filter's weights times
/// `scale`, `shift` added as its bias; scale 1 and shift 0 where the BatchNorm is kept.
struct BnFold {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl BnFold {
    /// `w` (rows of one filter's values each) with every filter's row times its scale.
    fn scaled(&self, mut w: Vec<f32>) -> Vec<f32> {
        let per_filter = w.len() / self.scale.len();
        for (row, s) in w.chunks_exact_mut(per_filter).zip(&self.scale) {
            row.iter_mut().for_each(|v| *v *= s);
        }
        w
    }
}

/// A `Conv` node's attributes: a square `kernel` padded by half its side on every edge.
fn conv_attrs(kernel: usize, stride: usize, group: usize) -> Vec<(&'static str, Attr)> {
    let pad = (kernel / 2) as i64;
    vec![
        ("kernel_shape", Attr::Ints(vec![kernel as i64; 2])),
        ("pads", Attr::Ints(vec![pad; 4])),
        ("strides", Attr::Ints(vec![stride as i64; 2])),
        ("group", Attr::Int(group as i64)),
    ]
}

/// Writes a network's layers into a graph.
struct Writer<'a> {
    tensors: &'a HashMap<String, Vec<f32>>,
    graph: Graph,
    options: OnnxOptions,
    eps: f32,
}

impl Writer<'_> {
    /// The checkpoint's tensor `name` of `len` values; the error names it.
    fn tensor(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        match self.tensors.get(name) {
            Some(t) if t.len() == len => Ok(t.clone()),
            Some(t) => Err(Error::InvalidArgument(format!(
                "ONNX export: tensor {name} holds {} values, the network's has {len}",
                t.len()
            ))),
            None => Err(Error::InvalidArgument(format!(
                "ONNX export: the checkpoint has no tensor {name}"
            ))),
        }
    }

    /// BatchNorm `bn` of `channels` as a per-channel scale and shift (eval mode).
    fn bn_affine(&self, bn: &str, channels: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let gamma = self.tensor(&format!("{bn}.weight"), channels)?;
        let beta = self.tensor(&format!("{bn}.bias"), channels)?;
        let mean = self.tensor(&format!("{bn}.running_mean"), channels)?;
        let var = self.tensor(&format!("{bn}.running_var"), channels)?;
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + self.eps).sqrt())
            .collect();
        let shift = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        Ok((scale, shift))
    }

    /// `BatchNormalization` of `bn` on `x` (kept, not folded).
    fn batchnorm(&mut self, bn: &str, channels: usize, x: &str) -> Result<String> {
        let mut names = Vec::new();
        for part in ["weight", "bias", "running_mean", "running_var"] {
            let name = format!("{bn}.{part}");
            let values = self.tensor(&name, channels)?;
            names.push(self.graph.weight(&name, &[channels], &values));
        }
        let inputs: Vec<&str> = std::iter::once(x)
            .chain(names.iter().map(String::as_str))
            .collect();
        Ok(self.graph.op(
            "BatchNormalization",
            bn,
            &inputs,
            vec![("epsilon", Attr::Float(self.eps))],
        ))
    }

    /// A conv, its BatchNorm and optionally ReLU.
    fn conv_bn(&mut self, layer: &ConvLayer, x: &str, relu: bool) -> Result<String> {
        let cout = layer.channels.1;
        let fold = self.options.fold_batchnorm;
        let bn = if fold {
            let (scale, shift) = self.bn_affine(layer.bn, cout)?;
            BnFold { scale, shift }
        } else {
            BnFold {
                scale: vec![1.0; cout],
                shift: vec![0.0; cout],
            }
        };
        let y = match layer.spec {
            ConvSpec::Standard { kernel, bias } => {
                self.standard_conv(layer, x, (kernel, bias), &bn)?
            }
            ConvSpec::HetConv { parts } => self.hetconv(layer, x, parts, &bn)?,
        };
        let y = if fold {
            y
        } else {
            self.batchnorm(layer.bn, cout, &y)?
        };
        Ok(if relu {
            self.graph
                .op("Relu", &format!("{}.relu", layer.bn), &[&y], vec![])
        } else {
            y
        })
    }

    /// A standard `kernel` x `kernel` conv (with its bias where `has_bias`) as one `Conv`, the
    /// BatchNorm folded in by `bn` (which has a bias then, even without the conv's).
    fn standard_conv(
        &mut self,
        layer: &ConvLayer,
        x: &str,
        (kernel, has_bias): (usize, bool),
        bn: &BnFold,
    ) -> Result<String> {
        let (cin, cout) = layer.channels;
        let name = layer.name;
        let w = self.tensor(&format!("{name}.weight"), cout * cin * kernel * kernel)?;
        let b = if has_bias {
            self.tensor(&format!("{name}.bias"), cout)?
        } else {
            vec![0.0; cout]
        };
        let w = self.graph.weight(
            &format!("{name}.weight"),
            &[cout, cin, kernel, kernel],
            &bn.scaled(w),
        );
        let mut bias = None;
        if has_bias || self.options.fold_batchnorm {
            let b: Vec<f32> = b
                .iter()
                .zip(&bn.scale)
                .zip(&bn.shift)
                .map(|((b, s), t)| b * s + t)
                .collect();
            bias = Some(self.graph.weight(&format!("{name}.bias"), &[cout], &b));
        }
        let inputs: Vec<&str> = [x, &w].into_iter().chain(bias.as_deref()).collect();
        Ok(self
            .graph
            .op("Conv", name, &inputs, conv_attrs(kernel, layer.stride, 1)))
    }

    /// A HetConv of `parts` parts, the BatchNorm's scale folded into both weights by `bn` (its
    /// shift as the bias when folding): as one dense 3x3 `Conv` with `fold_hetconv`, else as
    /// the PyTorch form, a grouped 3x3 `Conv` plus a 1x1 `Conv`, added.
    fn hetconv(&mut self, layer: &ConvLayer, x: &str, parts: usize, bn: &BnFold) -> Result<String> {
        let (cin, cout) = layer.channels;
        let name = layer.name;
        let gwc = self.tensor(&format!("{name}.gwc.weight"), cout * cin / parts * 9)?;
        let pwc = self.tensor(&format!("{name}.pwc.weight"), cout * cin)?;
        let (gwc, pwc) = (bn.scaled(gwc), bn.scaled(pwc));
        let bias = self.options.fold_batchnorm.then(|| {
            self.graph
                .weight(&format!("{name}.bias"), &[cout], &bn.shift)
        });
        let conv = |kernel: usize, group: usize| conv_attrs(kernel, layer.stride, group);
        if self.options.fold_hetconv {
            let d = ConvDims {
                batch: 1,
                cin,
                cout,
                height: 1,
                width: 1,
            };
            let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
            let dense: Vec<f32> = crate::reference::conv::hetconv_dense_equivalent(
                &d,
                parts,
                &wide(&gwc),
                &wide(&pwc),
            )
            .iter()
            .map(|&v| v as f32)
            .collect();
            let w = self
                .graph
                .weight(&format!("{name}.weight"), &[cout, cin, 3, 3], &dense);
            let inputs: Vec<&str> = [x, &w].into_iter().chain(bias.as_deref()).collect();
            return Ok(self.graph.op("Conv", name, &inputs, conv(3, 1)));
        }
        let g = self.graph.weight(
            &format!("{name}.gwc.weight"),
            &[cout, cin / parts, 3, 3],
            &gwc,
        );
        let p = self
            .graph
            .weight(&format!("{name}.pwc.weight"), &[cout, cin, 1, 1], &pwc);
        let inputs: Vec<&str> = [x, &g].into_iter().chain(bias.as_deref()).collect();
        let grouped = self
            .graph
            .op("Conv", &format!("{name}.gwc"), &inputs, conv(3, parts));
        let pointwise = self
            .graph
            .op("Conv", &format!("{name}.pwc"), &[x, &p], conv(1, 1));
        Ok(self.graph.op("Add", name, &[&grouped, &pointwise], vec![]))
    }

    /// A linear layer `{name}` (`[outputs, inputs]` weight) as `Gemm`, followed by BatchNorm
    /// `bn` (folded into it, or kept) if given.
    fn linear(
        &mut self,
        name: &str,
        (inputs, outputs): (usize, usize),
        bn: Option<&str>,
        x: &str,
    ) -> Result<String> {
        let mut w = self.tensor(&format!("{name}.weight"), outputs * inputs)?;
        let mut b = self.tensor(&format!("{name}.bias"), outputs)?;
        let fold = bn.filter(|_| self.options.fold_batchnorm);
        if let Some(bn) = fold {
            let (scale, shift) = self.bn_affine(bn, outputs)?;
            for (o, row) in w.chunks_exact_mut(inputs).enumerate() {
                row.iter_mut().for_each(|v| *v *= scale[o]);
                b[o] = b[o] * scale[o] + shift[o];
            }
        }
        let w = self
            .graph
            .weight(&format!("{name}.weight"), &[outputs, inputs], &w);
        let b = self.graph.weight(&format!("{name}.bias"), &[outputs], &b);
        let y = self
            .graph
            .op("Gemm", name, &[x, &w, &b], vec![("transB", Attr::Int(1))]);
        match bn {
            Some(bn) if fold.is_none() => self.batchnorm(bn, outputs, &y),
            _ => Ok(y),
        }
    }

    fn max_pool(&mut self, name: &str, x: &str, (kernel, stride, pad): (i64, i64, i64)) -> String {
        self.graph.op(
            "MaxPool",
            name,
            &[x],
            vec![
                ("kernel_shape", Attr::Ints(vec![kernel; 2])),
                ("strides", Attr::Ints(vec![stride; 2])),
                ("pads", Attr::Ints(vec![pad; 4])),
            ],
        )
    }

    /// The paper's VGG-16: 13 convs (conv 1 standard with bias, the rest HetConv(P)) with
    /// BatchNorm + ReLU, 2x2 max-pools, then Linear, BatchNorm1d + ReLU, Linear.
    fn vgg(&mut self, config: &VggConfig, input: &str) -> Result<String> {
        let mut x = input.to_string();
        for layer in config.layers() {
            match layer {
                VggLayer::Conv {
                    index,
                    cin,
                    cout,
                    hetconv,
                    ..
                } => {
                    let (name, bn) = (
                        format!("features.{index}"),
                        format!("features.{}", index + 1),
                    );
                    let spec = if hetconv {
                        ConvSpec::HetConv {
                            parts: config.parts,
                        }
                    } else {
                        ConvSpec::Standard {
                            kernel: 3,
                            bias: true,
                        }
                    };
                    let layer = ConvLayer {
                        name: &name,
                        bn: &bn,
                        channels: (cin, cout),
                        stride: 1,
                        spec,
                    };
                    x = self.conv_bn(&layer, &x, true)?;
                }
                VggLayer::Pool { index } => {
                    x = self.max_pool(&format!("features.{index}"), &x, (2, 2, 0));
                }
            }
        }
        let flat = self.graph.op(
            "Flatten",
            "classifier.flatten",
            &[&x],
            vec![("axis", Attr::Int(1))],
        );
        let (inputs, hidden) = (config.classifier_inputs(), config.hidden);
        let h = self.linear(
            "classifier.0",
            (inputs, hidden),
            Some("classifier.1"),
            &flat,
        )?;
        let h = self.graph.op("Relu", "classifier.2", &[&h], vec![]);
        self.linear("classifier.3", (hidden, config.classes), None, &h)
    }

    /// A HetConv ResNet: the stem (and, in the ImageNet layout, its max-pool), the residual
    /// blocks (`relu(body + shortcut)`), global average pooling and `fc`.
    fn resnet(&mut self, config: &ResNetConfig, input: &str) -> Result<String> {
        let convs = config.convs();
        let layer = |c: &crate::nn::ResNetConv| {
            let hetconv = c.hetconv && config.parts > 1;
            (
                c.name.clone(),
                c.bn.clone(),
                (c.cin, c.cout),
                c.stride,
                if hetconv {
                    ConvSpec::HetConv {
                        parts: config.parts,
                    }
                } else {
                    ConvSpec::Standard {
                        kernel: c.kernel,
                        bias: false,
                    }
                },
            )
        };
        let emit = |w: &mut Self, c: &crate::nn::ResNetConv, x: &str, relu: bool| {
            let (name, bn, channels, stride, spec) = layer(c);
            let conv = ConvLayer {
                name: &name,
                bn: &bn,
                channels,
                stride,
                spec,
            };
            w.conv_bn(&conv, x, relu)
        };
        let Some((stem, rest)) = convs.split_first() else {
            return Err(Error::InvalidArgument(format!(
                "ONNX export: {} has no convs",
                config.name()
            )));
        };
        let mut x = emit(self, stem, input, true)?;
        if config.layout() == Some(ResNetLayout::ImageNet) {
            x = self.max_pool("maxpool", &x, (3, 2, 1));
        }
        let mut rest = rest;
        while let Some(first) = rest.first() {
            let block: Vec<&str> = first.name.split('.').take(2).collect();
            let len = rest
                .iter()
                .take_while(|c| c.name.split('.').take(2).collect::<Vec<_>>() == block)
                .count();
            let (body, projection): (Vec<_>, Vec<_>) = rest[..len]
                .iter()
                .partition(|c| !c.name.ends_with(".downsample.0"));
            let mut h = x.clone();
            for (i, c) in body.iter().enumerate() {
                h = emit(self, c, &h, i + 1 < body.len())?;
            }
            let shortcut = match projection.first() {
                Some(c) => emit(self, c, &x, false)?,
                None => x.clone(),
            };
            let name = block.join(".");
            let sum = self
                .graph
                .op("Add", &format!("{name}.add"), &[&h, &shortcut], vec![]);
            x = self
                .graph
                .op("Relu", &format!("{name}.relu"), &[&sum], vec![]);
            rest = &rest[len..];
        }
        let pooled = self.graph.op("GlobalAveragePool", "avgpool", &[&x], vec![]);
        let flat = self.graph.op(
            "Flatten",
            "flatten",
            &[&pooled],
            vec![("axis", Attr::Int(1))],
        );
        self.linear("fc", (config.features(), config.classes), None, &flat)
    }
}
