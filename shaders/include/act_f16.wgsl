// Activations stored as f16 (mixed precision; after include/f16.wgsl); kernels widen what they
// read to f32 (the GEMM core's gathers convert to its operand type, f16 staying f16), compute
// in f32 and round once when they store.
alias act = f16;
