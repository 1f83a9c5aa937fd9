// The GEMM core's stages hold f16 operands (precision mixed): each A and B value is rounded to
// half precision when it is staged; the inner loop accumulates the products in f32. After
// include/f16.wgsl.
alias operand = f16;
