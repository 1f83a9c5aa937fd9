//! The HetConv VGG-16 on the CPU in f64: forward in training mode (batch statistics), loss and
//! every parameter's gradient, composed from the reference ops. The oracle of the whole-model
//! gradient check.

use std::collections::HashMap;

use super::{activation, batchnorm, conv, gemm, loss, pool};
use crate::conv_kind::{ConvDims, ConvKind, Pointwise};
use crate::nn::{VggConfig, VggLayer};

/// Named parameter values (PyTorch state_dict names), f64.
pub type Params = HashMap<String, Vec<f64>>;

enum Saved {
    Conv {
        name: String,
        kind: ConvKind,
        d: ConvDims,
        x: Vec<f64>,
    },
    BatchNorm {
        prefix: String,
        x: Vec<f64>,
        channels: usize,
        plane: usize,
        mean: Vec<f64>,
        invstd: Vec<f64>,
        y: Vec<f64>,
    },
    Pool {
        x_planes: usize,
        height: usize,
        width: usize,
        argmax: Vec<usize>,
    },
    Linear {
        prefix: String,
        x: Vec<f64>,
        inputs: usize,
        outputs: usize,
    },
}

/// Mean cross-entropy of `x` (batch `batch`) and the gradient of every parameter.
///
/// # Shapes
/// `x`: `[B, in_channels, size, size]`, `labels`: `[B]`
pub fn loss_and_grads(
    config: &VggConfig,
    params: &Params,
    x: &[f64],
    batch: usize,
    labels: &[usize],
) -> (f64, Params) {
    let (logits, saved) = forward(config, params, x, batch);
    let (mean_loss, mut g, _) = loss::softmax_cross_entropy(&logits, labels, config.classes);
    let mut grads = Params::new();
    for layer in saved.into_iter().rev() {
        g = backward(layer, &g, params, batch, &mut grads);
    }
    (mean_loss, grads)
}

/// The parameter `name` of `params` (a missing one is a bug of the caller's test).
fn param<'a>(params: &'a Params, name: &str) -> &'a Vec<f64> {
    params
        .get(name)
        .unwrap_or_else(|| panic!("reference VGG: no parameter {name}"))
}

/// The logits of `x` in training mode, and what each layer saved for its backward pass, in
/// the order the layers ran.
///
/// # Shapes
/// `x`: `[B, in_channels, size, size]` -> `[B, classes]`
fn forward(config: &VggConfig, params: &Params, x: &[f64], batch: usize) -> (Vec<f64>, Vec<Saved>) {
    let p = |name: &str| param(params, name);
    let mut saved = Vec::new();
    let mut h = x.to_vec();
    for layer in config.layers() {
        match layer {
            VggLayer::Conv {
                index,
                cin,
                cout,
                size,
                hetconv,
            } => {
                let d = ConvDims {
                    batch,
                    cin,
                    cout,
                    height: size,
                    width: size,
                };
                let name = format!("features.{index}");
                let (kind, y) = if hetconv {
                    let kind = ConvKind::hetconv(config.parts);
                    let y = conv::forward(
                        &kind,
                        &d,
                        &h,
                        Some(p(&format!("{name}.gwc.weight"))),
                        Some(p(&format!("{name}.pwc.weight"))),
                        None,
                    );
                    (kind, y)
                } else {
                    let kind = ConvKind::standard3x3();
                    let y = conv::forward(
                        &kind,
                        &d,
                        &h,
                        Some(p(&format!("{name}.weight"))),
                        None,
                        Some(p(&format!("{name}.bias"))),
                    );
                    (kind, y)
                };
                saved.push(Saved::Conv {
                    name,
                    kind,
                    d,
                    x: std::mem::replace(&mut h, y),
                });
                h = bn_relu(
                    &mut saved,
                    &h,
                    &format!("features.{}", index + 1),
                    batch,
                    cout,
                    size * size,
                    params,
                );
            }
            VggLayer::Pool { .. } => {
                let (planes, side) = plane_geometry(&saved, batch);
                let (y, argmax) = pool::max_pool2(&h, planes, side, side);
                saved.push(Saved::Pool {
                    x_planes: planes,
                    height: side,
                    width: side,
                    argmax,
                });
                h = y;
            }
        }
    }
    let inputs = config.classifier_inputs();
    let (hidden, classes) = (config.hidden, config.classes);
    let y = gemm::linear(
        &h,
        p("classifier.0.weight"),
        p("classifier.0.bias"),
        batch,
        inputs,
        hidden,
    );
    saved.push(Saved::Linear {
        prefix: "classifier.0".into(),
        x: std::mem::replace(&mut h, y),
        inputs,
        outputs: hidden,
    });
    h = bn_relu(&mut saved, &h, "classifier.1", batch, hidden, 1, params);
    let logits = gemm::linear(
        &h,
        p("classifier.3.weight"),
        p("classifier.3.bias"),
        batch,
        hidden,
        classes,
    );
    saved.push(Saved::Linear {
        prefix: "classifier.3".into(),
        x: h,
        inputs: hidden,
        outputs: classes,
    });
    (logits, saved)
}

/// One layer's backward pass from what it `saved`: puts its parameters' gradients in `grads`
/// and returns the gradient of its input, given `g`, that of its output.
fn backward(
    saved: Saved,
    g: &[f64],
    params: &Params,
    batch: usize,
    grads: &mut Params,
) -> Vec<f64> {
    let p = |name: &str| param(params, name);
    match saved {
        Saved::Linear {
            prefix,
            x,
            inputs,
            outputs,
        } => {
            let (dx, dw, db) = gemm::linear_backward(
                &x,
                p(&format!("{prefix}.weight")),
                g,
                batch,
                inputs,
                outputs,
            );
            put_weight_and_bias(grads, &prefix, dw, db);
            dx
        }
        Saved::BatchNorm {
            prefix,
            x,
            channels,
            plane,
            mean,
            invstd,
            y,
        } => {
            let dy = activation::relu_backward(&y, g);
            let (dx, dgamma, dbeta) = batchnorm::backward(
                &x,
                &dy,
                batch,
                channels,
                plane,
                p(&format!("{prefix}.weight")),
                &mean,
                &invstd,
            );
            put_weight_and_bias(grads, &prefix, dgamma, dbeta);
            dx
        }
        Saved::Pool {
            x_planes,
            height,
            width,
            argmax,
        } => pool::max_pool2_backward(g, &argmax, x_planes, height, width),
        Saved::Conv { name, kind, d, x } => {
            let (w3, w1) = if kind.spatial() && kind.pointwise != Pointwise::None {
                (
                    params.get(&format!("{name}.gwc.weight")),
                    params.get(&format!("{name}.pwc.weight")),
                )
            } else {
                (params.get(&format!("{name}.weight")), None)
            };
            let (dw3, dw1) = conv::backward_weight(&kind, &d, &x, g);
            if let Some(dw1) = dw1 {
                grads.insert(format!("{name}.gwc.weight"), dw3.unwrap_or_default());
                grads.insert(format!("{name}.pwc.weight"), dw1);
            } else {
                grads.insert(format!("{name}.weight"), dw3.unwrap_or_default());
                grads.insert(format!("{name}.bias"), conv::bias_grad(&kind, &d, g));
            }
            conv::backward_input(&kind, &d, g, w3.map(Vec::as_slice), w1.map(Vec::as_slice))
        }
    }
}

/// Puts the gradients of the layer `prefix`'s weight and bias in `grads`.
fn put_weight_and_bias(grads: &mut Params, prefix: &str, weight: Vec<f64>, bias: Vec<f64>) {
    grads.insert(format!("{prefix}.weight"), weight);
    grads.insert(format!("{prefix}.bias"), bias);
}

/// (planes, side) of the activation produced by the last saved conv + BN (square maps).
fn plane_geometry(saved: &[Saved], batch: usize) -> (usize, usize) {
    for s in saved.iter().rev() {
        if let Saved::BatchNorm {
            channels, plane, ..
        } = s
        {
            return (batch * channels, (*plane as f64).sqrt().round() as usize);
        }
    }
    (0, 0)
}

fn bn_relu(
    saved: &mut Vec<Saved>,
    x: &[f64],
    prefix: &str,
    batch: usize,
    channels: usize,
    plane: usize,
    params: &Params,
) -> Vec<f64> {
    let zeros = vec![0.0; channels];
    let ones = vec![1.0; channels];
    let r = batchnorm::forward_train(
        x,
        batch,
        channels,
        plane,
        &params[&format!("{prefix}.weight")],
        &params[&format!("{prefix}.bias")],
        &zeros,
        &ones,
        1e-5,
        0.1,
    );
    let y = activation::relu(&r.y);
    saved.push(Saved::BatchNorm {
        prefix: prefix.into(),
        x: x.to_vec(),
        channels,
        plane,
        mean: r.mean,
        invstd: r.invstd,
        y: y.clone(),
    });
    y
}
