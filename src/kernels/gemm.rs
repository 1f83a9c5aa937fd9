//! Matrix products: the direct kernel (`shaders/gemm.wgsl`, each invocation a 4 x 4 block) or
//! the GEMM core (`shaders/gemm_core.wgsl`), as the tuner picks.

use super::{gemm_core, placeholder, same_context};
use crate::error::{Error, Result};
use crate::gpu::{Access, KernelSpec, storage};
use crate::shaders;
use crate::tensor::Tensor;
use crate::tune::{self, Pass, Problem, Variant};

/// The uniform block of `shaders/gemm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    /// 1: a is stored [k, m].
    trans_a: u32,
    /// 1: b is stored [n, k].
    trans_b: u32,
    /// 1: add bias[n].
    has_bias: u32,
    /// 1: add to the existing c.
    accumulate: u32,
}

static MATMUL: KernelSpec = KernelSpec {
    shader: &shaders::GEMM,
    entry: "matmul",
    bindings: &storage([Access::Read, Access::Read, Access::Read, Access::ReadWrite]),
    workgroup_size: 64,
    params_size: size_of::<MatmulParams>(),
    activations: 0,
};

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// As stored (row-major).
    #[default]
    AsIs,
    /// Transposed.
    Transposed,
}

/// `op(a) @ op(b) (+ bias)`, where `op` transposes when the layout says so.
///
/// # Shapes
/// `op(a)`: `[m, k]`, `op(b)`: `[k, n]`, `bias`: `[n]` → `[m, n]`
pub fn matmul(
    a: &Tensor,
    la: Layout,
    b: &Tensor,
    lb: Layout,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let (m, k, n) = check("matmul", a, la, b, lb, bias)?;
    let out = Tensor::uninit(a.context(), &[m, n])?;
    record(a, la, b, lb, bias, &out, false, (m, k, n))?;
    Ok(out)
}

/// `out += op(a) @ op(b)`.
///
/// # Shapes
/// `op(a)`: `[m, k]`, `op(b)`: `[k, n]`, `out`: `[m, n]`
pub fn matmul_accumulate(
    a: &Tensor,
    la: Layout,
    b: &Tensor,
    lb: Layout,
    out: &Tensor,
) -> Result<()> {
    let (m, k, n) = check("matmul_accumulate", a, la, b, lb, None)?;
    if out.shape() != [m, n] {
        return Err(Error::shape(
            "matmul_accumulate",
            format!("out is {:?}, the product is [{m}, {n}]", out.shape()),
        ));
    }
    record(a, la, b, lb, None, out, true, (m, k, n))
}

fn check(
    op: &'static str,
    a: &Tensor,
    la: Layout,
    b: &Tensor,
    lb: Layout,
    bias: Option<&Tensor>,
) -> Result<(usize, usize, usize)> {
    same_context(op, &[a, b])?;
    let two_d = |t: &Tensor, name: &str| -> Result<(usize, usize)> {
        match t.shape() {
            [r, c] => Ok((*r, *c)),
            s => Err(Error::shape(op, format!("{name} must be 2-D, got {s:?}"))),
        }
    };
    let (ar, ac) = two_d(a, "a")?;
    let (br, bc) = two_d(b, "b")?;
    let (m, k) = if la == Layout::Transposed {
        (ac, ar)
    } else {
        (ar, ac)
    };
    let (k2, n) = if lb == Layout::Transposed {
        (bc, br)
    } else {
        (br, bc)
    };
    if k != k2 {
        return Err(Error::shape(
            op,
            format!(
                "inner dimensions differ: a {:?} ({la:?}), b {:?} ({lb:?})",
                a.shape(),
                b.shape()
            ),
        ));
    }
    if let Some(bias) = bias {
        if bias.shape() != [n] {
            return Err(Error::shape(
                op,
                format!("bias is {:?}, expected [{n}]", bias.shape()),
            ));
        }
    }
    Ok((m, k, n))
}

#[allow(clippy::too_many_arguments)]
fn record(
    a: &Tensor,
    la: Layout,
    b: &Tensor,
    lb: Layout,
    bias: Option<&Tensor>,
    out: &Tensor,
    accumulate: bool,
    (m, k, n): (usize, usize, usize),
) -> Result<()> {
    let ctx = a.context();
    let key = format!("matmul {m}x{k}x{n} {la:?}/{lb:?}");
    let problem = Problem {
        pass: Pass::Matmul,
        precision: ctx.precision(),
        groups: 1,
        rows: m,
        cols: n,
        depth: k,
    };
    let variant = tune::choose(ctx, &problem, &key, |v| {
        // Zeroed: an accumulating product adds to it, and the tuner compares the results.
        let scratch = Tensor::zeros(ctx, out.shape())?;
        record_with(v, a, la, b, lb, bias, &scratch, accumulate, (m, k, n))?;
        Ok(vec![scratch])
    })?;
    record_with(variant, a, la, b, lb, bias, out, accumulate, (m, k, n))
}

#[allow(clippy::too_many_arguments)]
fn record_with(
    variant: Variant,
    a: &Tensor,
    la: Layout,
    b: &Tensor,
    lb: Layout,
    bias: Option<&Tensor>,
    out: &Tensor,
    accumulate: bool,
    (m, k, n): (usize, usize, usize),
) -> Result<()> {
    let ctx = a.context();
    let spare = placeholder(ctx)?;
    if let Some(kernel) = variant.core() {
        return gemm_core::matmul(
            (&kernel, variant.splits_reduction()),
            a,
            la,
            b,
            lb,
            bias,
            out,
            accumulate,
            (m, k, n),
            &spare,
        );
    }
    let bias_buffer = bias.unwrap_or(&spare);
    let params = MatmulParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        trans_a: u32::from(la == Layout::Transposed),
        trans_b: u32::from(lb == Layout::Transposed),
        has_bias: u32::from(bias.is_some()),
        accumulate: u32::from(accumulate),
    };
    let tiles = (m.div_ceil(4) * n.div_ceil(4)) as u64;
    ctx.dispatch(&MATMUL, &[], &params, &[a, b, bias_buffer, out], tiles)
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[&MATMUL];
