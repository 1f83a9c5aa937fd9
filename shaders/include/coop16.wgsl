// The GEMM core on 16x16x16 cooperative matrices (tensor cores): f16 operands, f32 accumulators.
enable wgpu_cooperative_matrix;
alias operand = f16;
const S: u32 = 16u;
alias coop_a = coop_mat16x16<f16, A>;
alias coop_b = coop_mat16x16<f16, B>;
alias coop_c = coop_mat16x16<f32, C>;
