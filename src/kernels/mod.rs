//! GPU kernels: one file per WGSL family. Typed parameters, shape checks and dispatch; no
//! autograd here.

pub mod batchnorm;
pub mod cast;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod gemm_core;
pub mod loss;
pub mod loss_scale;
pub mod pool;
pub mod reduce;
pub mod sgd;

use crate::error::Result;
use crate::gpu::Context;
use crate::tensor::Tensor;

/// A small scratch tensor bound where a kernel's entry point ignores a binding.
pub(crate) fn placeholder(ctx: &Context) -> Result<Tensor> {
    placeholder_as(ctx, crate::tensor::DType::F32)
}

/// [`placeholder`] of `dtype` (for a binding that holds activations).
pub(crate) fn placeholder_as(ctx: &Context, dtype: crate::tensor::DType) -> Result<Tensor> {
    Tensor::uninit_as(ctx, &[4], dtype)
}

/// Checks that every tensor lives on the same context as the first.
pub(crate) fn same_context(op: &'static str, tensors: &[&Tensor]) -> Result<()> {
    let first = tensors[0].context();
    if tensors
        .iter()
        .all(|t| std::sync::Arc::ptr_eq(&t.context().inner, &first.inner))
    {
        Ok(())
    } else {
        Err(crate::error::Error::shape(
            op,
            "tensors live on different GPU contexts",
        ))
    }
}

/// Every kernel entry point of the crate: its shader module, entry point and bindings (for
/// tests that reflect the WGSL and check the Rust side against it).
pub fn all_specs() -> Vec<&'static crate::gpu::KernelSpec> {
    [
        batchnorm::SPECS,
        cast::SPECS,
        conv::SPECS,
        elementwise::SPECS,
        gemm::SPECS,
        gemm_core::SPECS,
        loss::SPECS,
        loss_scale::SPECS,
        pool::SPECS,
        reduce::SPECS,
        sgd::SPECS,
    ]
    .concat()
}
