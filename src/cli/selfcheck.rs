//! `hetconv selfcheck`: every kernel family once against the CPU reference.

use hetconv::kernels::conv::{self, ConvKind, ConvWeights};
use hetconv::kernels::gemm::{self, Layout};
use hetconv::reference;
use hetconv::{Context, Error, Result, Tensor};

/// Relative and absolute tolerance of the check (f32 kernels vs the f64 reference).
const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-4;

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn compare(name: &str, got: &[f32], want: &[f64]) -> Result<()> {
    let worst = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - w).abs() - RTOL * w.abs())
        .fold(f64::MIN, f64::max);
    let ok = got.len() == want.len() && worst <= ATOL;
    println!("  {name:<34} {}", if ok { "ok" } else { "MISMATCH" });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "selfcheck failed: {name} (worst excess error {worst:e})"
        )))
    }
}

/// Runs the checks and prints one line per kernel.
pub fn run(ctx: &Context) -> Result<()> {
    println!(
        "selfcheck on {} ({:?})",
        ctx.adapter_info().name,
        ctx.adapter_info().backend
    );
    let (m, k, n) = (13, 7, 9);
    let a = values(m * k, 1);
    let b = values(k * n, 2);
    let got = gemm::matmul(
        &Tensor::from_slice(ctx, &[m, k], &a)?,
        Layout::AsIs,
        &Tensor::from_slice(ctx, &[k, n], &b)?,
        Layout::AsIs,
        None,
    )?
    .to_vec()?;
    compare(
        "gemm 13x7 @ 7x9",
        &got,
        &reference::gemm::matmul(&to_f64(&a), &to_f64(&b), m, k, n),
    )?;

    let d = conv::ConvDims {
        batch: 2,
        cin: 8,
        cout: 8,
        height: 5,
        width: 7,
    };
    let kind = ConvKind::hetconv(4);
    let x = values(d.batch * d.cin * d.height * d.width, 3);
    let w3 = values(d.cout * d.cin / 4 * 9, 4);
    let w1 = values(d.cout * d.cin, 5);
    let weights = ConvWeights {
        w3: Some(&Tensor::from_slice(ctx, &[d.cout, d.cin / 4, 3, 3], &w3)?),
        w1: Some(&Tensor::from_slice(ctx, &[d.cout, d.cin], &w1)?),
        bias: None,
    };
    let xt = Tensor::from_slice(ctx, &[d.batch, d.cin, d.height, d.width], &x)?;
    let got = conv::forward(&kind, &xt, &weights)?.to_vec()?;
    let want = reference::conv::forward(
        &kind,
        &d,
        &to_f64(&x),
        Some(&to_f64(&w3)),
        Some(&to_f64(&w1)),
        None,
    );
    compare("fused HetConv P=4 forward", &got, &want)?;
    println!("all checks passed");
    Ok(())
}
