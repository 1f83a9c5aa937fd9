// Activations stored as f16 (mixed precision; after include/f16.wgsl); kernels widen what they
// read to f32, compute in f32 and round once when they store.
alias act = f16;
