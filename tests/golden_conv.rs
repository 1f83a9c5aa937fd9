//! The conv family vs the independent PyTorch float64 oracle in `tests/fixtures/golden`
//! (copied from the project's shared fixtures; format in its manifest.json). Tolerance: the
//! manifest's hint, 1e-5 x max |reference| absolute plus 1e-5 relative.

mod common;

use common::*;
use hetconv::kernels::conv::{self, ConvDims, ConvKind, ConvWeights, Pointwise};
use hetconv::kernels::reduce;
use hetconv::reference::conv as cpu;

/// Every case runs along every conv path.
fn algorithms() -> Vec<ConvPath> {
    conv_paths(&ctx())
}

fn dims_of(case: &GoldenCase) -> ConvDims {
    ConvDims {
        batch: case.param("B"),
        cin: case.param("M"),
        cout: case.param("N"),
        height: case.param("H"),
        width: case.param("W"),
    }
}

#[test]
fn hetconv_fused_and_unfused_match_pytorch() {
    let ctx = ctx();
    for (algorithm, case) in algorithms()
        .into_iter()
        .flat_map(|a| golden_cases("hetconv_").into_iter().map(move |c| (a, c)))
    {
        use_path(&ctx, algorithm);
        let d = dims_of(&case);
        let p = case.param("P");
        let x = upload(&ctx, &case.shape("x"), &case.f32("x"));
        let dy = upload(&ctx, &case.shape("dy"), &case.f32("dy"));
        let w3 = upload(&ctx, &case.shape("w3"), &case.f32("w3"));
        let w1 = upload(&ctx, &case.shape("w1"), &case.f32("w1"));
        let weights = ConvWeights {
            w3: Some(&w3),
            w1: Some(&w1),
            bias: None,
        };
        let kind = ConvKind::hetconv(p);

        let fused = conv::forward(&kind, &x, &weights)
            .unwrap()
            .to_vec()
            .unwrap();
        case.expect("fused y", "y", &fused);
        let unfused = conv::hetconv_unfused_forward(&kind, &x, &w3, &w1)
            .unwrap()
            .to_vec()
            .unwrap();
        case.expect("unfused y", "y", &unfused);

        let dx = conv::backward_input(&kind, &dy, &weights, x.shape())
            .unwrap()
            .to_vec()
            .unwrap();
        case.expect("dx", "dx", &dx);

        let grads = conv::backward_weight(&kind, &x, &dy).unwrap();
        let dw3 = grads.dw3.unwrap().to_vec().unwrap();
        case.expect("dw3", "dw3", &dw3);
        let dw1 = grads.dw1.unwrap().to_vec().unwrap();
        case.expect("dw1 (masked)", "dw1", &dw1);

        // The unmasked form (dense 1x1 part) gives PyTorch's gradient before masking.
        let unmasked = ConvKind {
            pointwise: Pointwise::Dense,
            ..kind
        };
        let dw1_dense = conv::backward_weight(&unmasked, &x, &dy)
            .unwrap()
            .dw1
            .unwrap()
            .to_vec()
            .unwrap();
        case.expect("dw1 (unmasked)", "dw1_unmasked", &dw1_dense);

        // The reference's dense equivalent weight equals PyTorch's.
        let dense = cpu::hetconv_dense_equivalent(&d, p, &case.f64("w3"), &case.f64("w1"));
        case.expect64("w_dense_equiv", "w_dense_equiv", &dense);
    }
}

#[test]
fn convs_match_pytorch() {
    let ctx = ctx();
    let cases = ["conv3x3_std", "gconv3x3", "conv1x1"]
        .into_iter()
        .flat_map(golden_cases);
    for case in cases {
        let groups = case.param("groups");
        let kind = if case.param("K") == 1 {
            ConvKind::pointwise()
        } else {
            ConvKind::grouped3x3(groups)
        };
        let x = upload(&ctx, &case.shape("x"), &case.f32("x"));
        let dy = upload(&ctx, &case.shape("dy"), &case.f32("dy"));
        let w_shape = case.shape("w");
        let w = upload(&ctx, &w_shape, &case.f32("w"));
        let bias = case
            .has("b")
            .then(|| upload(&ctx, &case.shape("b"), &case.f32("b")));
        let weights = if kind.spatial() {
            ConvWeights {
                w3: Some(&w),
                w1: None,
                bias: bias.as_ref(),
            }
        } else {
            ConvWeights {
                w3: None,
                w1: Some(&w),
                bias: bias.as_ref(),
            }
        };
        let y = conv::forward(&kind, &x, &weights)
            .unwrap()
            .to_vec()
            .unwrap();
        case.expect("y", "y", &y);
        let dx = conv::backward_input(&kind, &dy, &weights, x.shape())
            .unwrap()
            .to_vec()
            .unwrap();
        case.expect("dx", "dx", &dx);
        let grads = conv::backward_weight(&kind, &x, &dy).unwrap();
        let dw = grads.dw3.or(grads.dw1).unwrap().to_vec().unwrap();
        case.expect("dw", "dw", &dw);
        if case.has("db") {
            let db = reduce::sum_channels(&dy).unwrap().to_vec().unwrap();
            case.expect("db", "db", &db);
        }
    }
}

#[test]
fn unfused_gradients_match_pytorch() {
    let ctx = ctx();
    for (algorithm, case) in algorithms()
        .into_iter()
        .flat_map(|a| golden_cases("hetconv_").into_iter().map(move |c| (a, c)))
    {
        use_path(&ctx, algorithm);
        let p = case.param("P");
        let x = upload(&ctx, &case.shape("x"), &case.f32("x"));
        let dy = upload(&ctx, &case.shape("dy"), &case.f32("dy"));
        let w3 = upload(&ctx, &case.shape("w3"), &case.f32("w3"));
        let w1 = upload(&ctx, &case.shape("w1"), &case.f32("w1"));
        let kind = ConvKind::hetconv(p);
        let dx = conv::hetconv_unfused_backward_input(&kind, &dy, &w3, &w1, x.shape()).unwrap();
        case.expect("unfused dx", "dx", &dx.to_vec().unwrap());
        let grads = conv::hetconv_unfused_backward_weight(&kind, &x, &dy).unwrap();
        let dw3 = grads.dw3.unwrap().to_vec().unwrap();
        case.expect("unfused dw3", "dw3", &dw3);
        let dw1 = grads.dw1.unwrap().to_vec().unwrap();
        case.expect("unfused dw1", "dw1", &dw1);
    }
}
