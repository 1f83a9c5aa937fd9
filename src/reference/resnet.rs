//! A HetConv ResNet on the CPU in f64: forward in training mode (batch statistics), loss and
//! every parameter's gradient, composed from the reference ops. The oracle of the whole-ResNet
//! gradient check. Each op returns its output and a closure that maps the output's gradient to
//! the input's (adding its parameters' gradients), so the residual sum and the shared block
//! input are written as they are.

use super::vgg::Params;
use super::{activation, batchnorm, conv, gemm, loss, pool};
use crate::conv_kind::{ConvDims, ConvKind};
use crate::kernels::pool::PoolWindow;
use crate::nn::{ResNetConfig, ResNetConv, ResNetLayout};

/// Maps an op's output gradient to its input gradient, recording parameter gradients.
type Backward<'a> = Box<dyn FnOnce(Vec<f64>, &mut Params) -> Vec<f64> + 'a>;

/// An activation: values of `batch` images of `channels` planes of `side` x `side`.
struct Act {
    values: Vec<f64>,
    channels: usize,
    side: usize,
}

fn get<'a>(params: &'a Params, name: &str) -> &'a [f64] {
    params
        .get(name)
        .unwrap_or_else(|| panic!("reference ResNet: no parameter {name}"))
}

/// The conv of one [`ResNetConv`], as the model builds it.
fn conv_op<'a>(
    params: &'a Params,
    layer: &ResNetConv,
    parts: usize,
    batch: usize,
    x: &Act,
) -> (Act, Backward<'a>) {
    let hetconv = layer.hetconv && parts > 1;
    let kind = match (hetconv, layer.kernel) {
        (true, _) => ConvKind::hetconv(parts),
        (false, 1) => ConvKind::pointwise(),
        (false, k) => ConvKind::standard(k),
    }
    .with_stride(layer.stride);
    let d = ConvDims {
        batch,
        cin: layer.cin,
        cout: layer.cout,
        height: x.side,
        width: x.side,
    };
    let name = layer.name.clone();
    let (w3_name, w1_name) = match (hetconv, layer.kernel) {
        (true, _) => (
            Some(format!("{name}.gwc.weight")),
            Some(format!("{name}.pwc.weight")),
        ),
        (false, 1) => (None, Some(format!("{name}.weight"))),
        (false, _) => (Some(format!("{name}.weight")), None),
    };
    let w3 = w3_name.as_deref().map(|n| get(params, n));
    let w1 = w1_name.as_deref().map(|n| get(params, n));
    let y = conv::forward(&kind, &d, &x.values, w3, w1, None);
    let input = x.values.clone();
    let out = Act {
        values: y,
        channels: layer.cout,
        side: kind.out_side(x.side),
    };
    let back = Box::new(move |g: Vec<f64>, grads: &mut Params| {
        let (dw3, dw1) = conv::backward_weight(&kind, &d, &input, &g);
        for (name, dw) in [(w3_name, dw3), (w1_name, dw1)] {
            if let (Some(name), Some(dw)) = (name, dw) {
                grads.insert(name, dw);
            }
        }
        conv::backward_input(&kind, &d, &g, w3, w1)
    });
    (out, back)
}

/// Training-mode BatchNorm (eps 1e-5), optionally followed by ReLU.
fn bn_op<'a>(
    params: &'a Params,
    prefix: &str,
    batch: usize,
    x: Act,
    relu: bool,
) -> (Act, Backward<'a>) {
    let (channels, plane) = (x.channels, x.side * x.side);
    let gamma = get(params, &format!("{prefix}.weight"));
    let beta = get(params, &format!("{prefix}.bias"));
    let (zeros, ones) = (vec![0.0; channels], vec![1.0; channels]);
    let r = batchnorm::forward_train(
        &x.values, batch, channels, plane, gamma, beta, &zeros, &ones, 1e-5, 0.1,
    );
    let y = if relu {
        activation::relu(&r.y)
    } else {
        r.y.clone()
    };
    let prefix = prefix.to_string();
    let out = Act {
        values: y,
        channels,
        side: x.side,
    };
    let back = Box::new(move |g: Vec<f64>, grads: &mut Params| {
        let g = if relu {
            activation::relu_backward(&r.y, &g)
        } else {
            g
        };
        let (dx, dgamma, dbeta) = batchnorm::backward(
            &x.values, &g, batch, channels, plane, gamma, &r.mean, &r.invstd,
        );
        grads.insert(format!("{prefix}.weight"), dgamma);
        grads.insert(format!("{prefix}.bias"), dbeta);
        dx
    });
    (out, back)
}

/// A conv and its BatchNorm.
fn conv_bn<'a>(
    params: &'a Params,
    layer: &ResNetConv,
    parts: usize,
    batch: usize,
    x: &Act,
    relu: bool,
) -> (Act, Backward<'a>) {
    let (h, conv_back) = conv_op(params, layer, parts, batch, x);
    let (y, bn_back) = bn_op(params, &layer.bn, batch, h, relu);
    let back = Box::new(move |g: Vec<f64>, grads: &mut Params| {
        let g = bn_back(g, grads);
        conv_back(g, grads)
    });
    (y, back)
}

/// One residual block (`convs`: its body in order, then its projection if it has one):
/// `relu(body(x) + shortcut(x))`.
fn block<'a>(
    params: &'a Params,
    convs: &[ResNetConv],
    parts: usize,
    batch: usize,
    x: Act,
) -> (Act, Backward<'a>) {
    let (projection, body): (Vec<&ResNetConv>, Vec<&ResNetConv>) = convs
        .iter()
        .partition(|c| c.name.ends_with(".downsample.0"));
    let mut h = Act {
        values: x.values.clone(),
        channels: x.channels,
        side: x.side,
    };
    let mut body_backs = Vec::new();
    for (i, layer) in body.iter().enumerate() {
        let (y, back) = conv_bn(params, layer, parts, batch, &h, i + 1 < body.len());
        body_backs.push(back);
        h = y;
    }
    let (shortcut, shortcut_back) = match projection.first() {
        Some(layer) => {
            let (y, back) = conv_bn(params, layer, parts, batch, &x, false);
            (y.values, Some(back))
        }
        None => (x.values.clone(), None),
    };
    let sum: Vec<f64> = h.values.iter().zip(&shortcut).map(|(a, b)| a + b).collect();
    let out = Act {
        values: activation::relu(&sum),
        channels: h.channels,
        side: h.side,
    };
    let back = Box::new(move |g: Vec<f64>, grads: &mut Params| {
        let g = activation::relu_backward(&sum, &g);
        let mut body_grad = g.clone();
        for back in body_backs.into_iter().rev() {
            body_grad = back(body_grad, grads);
        }
        let shortcut_grad = match shortcut_back {
            Some(back) => back(g, grads),
            None => g,
        };
        body_grad
            .iter()
            .zip(&shortcut_grad)
            .map(|(a, b)| a + b)
            .collect()
    });
    (out, back)
}

/// Mean cross-entropy of `x` (batch `batch`) and the gradient of every parameter.
///
/// # Shapes
/// `x`: `[B, in_channels, size, size]`, `labels`: `[B]`
pub fn loss_and_grads(
    config: &ResNetConfig,
    params: &Params,
    x: &[f64],
    batch: usize,
    labels: &[usize],
) -> (f64, Params) {
    let convs = config.convs();
    let parts = config.parts;
    let input = Act {
        values: x.to_vec(),
        channels: config.in_channels,
        side: config.image_size,
    };
    let mut backs: Vec<Backward> = Vec::new();
    let (mut h, back) = conv_bn(params, &convs[0], parts, batch, &input, true);
    backs.push(back);
    if config.layout() == Some(ResNetLayout::ImageNet) {
        let window = PoolWindow::RESNET_STEM;
        let planes = batch * h.channels;
        let (y, argmax) = pool::max_pool(&h.values, planes, (h.side, h.side), window);
        let area = h.side * h.side;
        backs.push(Box::new(move |g, _| {
            pool::max_pool_backward(&g, &argmax, planes, area)
        }));
        h = Act {
            values: y,
            channels: h.channels,
            side: window.out_side(h.side).unwrap_or(0),
        };
    }
    // Blocks: consecutive convs sharing their `layerS.B` prefix.
    let mut rest = &convs[1..];
    while let Some(first) = rest.first() {
        let prefix: Vec<&str> = first.name.split('.').take(2).collect();
        let len = rest
            .iter()
            .take_while(|c| c.name.split('.').take(2).collect::<Vec<_>>() == prefix)
            .count();
        let (y, back) = block(params, &rest[..len], parts, batch, h);
        backs.push(back);
        h = y;
        rest = &rest[len..];
    }
    let (planes, area, features) = (batch * h.channels, h.side * h.side, h.channels);
    let pooled = pool::global_average(&h.values, planes, area);
    backs.push(Box::new(move |g, _| {
        pool::global_average_backward(&g, area)
    }));
    let (w, b) = (get(params, "fc.weight"), get(params, "fc.bias"));
    let logits = gemm::linear(&pooled, w, b, batch, features, config.classes);
    let (mean_loss, dlogits, _) = loss::softmax_cross_entropy(&logits, labels, config.classes);
    let mut grads = Params::new();
    let (mut g, dw, db) =
        gemm::linear_backward(&pooled, w, &dlogits, batch, features, config.classes);
    grads.insert("fc.weight".into(), dw);
    grads.insert("fc.bias".into(), db);
    for back in backs.into_iter().rev() {
        g = back(g, &mut grads);
    }
    (mean_loss, grads)
}
