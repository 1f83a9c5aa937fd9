// The GEMM core's stages hold f32 operands (precision f32).
alias operand = f32;
