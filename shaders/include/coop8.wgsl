// The GEMM core on 8x8x8 cooperative matrices (tensor cores): f16 operands, f32 accumulators.
enable wgpu_cooperative_matrix;
alias operand = f16;
const S: u32 = 8u;
alias coop_a = coop_mat8x8<f16, A>;
alias coop_b = coop_mat8x8<f16, B>;
alias coop_c = coop_mat8x8<f32, C>;
