//! CPU implementations in f64 of every GPU op, written for clarity, not speed: the oracle that
//! the kernels are tested against. Each is itself checked against finite differences and the
//! PyTorch-generated fixtures in `tests/fixtures/golden`. [`compare`] holds a result against
//! it.

pub mod activation;
pub mod batchnorm;
pub mod compare;
pub mod conv;
pub mod gemm;
pub mod loss;
pub mod optim;
pub mod pool;
pub mod resnet;
pub mod vgg;
