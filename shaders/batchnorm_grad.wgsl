// Input gradient of training-mode batch normalisation:
// dx = gamma * invstd / n * (n * dy - sum(dy) - xhat * sum(dy * xhat)),
// with dy masked by ReLU's derivative (pre-activation xhat * gamma + beta > 0) when the forward
// pass fused ReLU; the sums come from batchnorm.wgsl::backward_reduce, masked the same way.
// n (p.count) is the values per channel the statistics were over: this batch's, or with
// synchronised batch norm every rank's, whose sums then fill `sums`. x, dy and dx hold
// activations (`act`: include/act_f32.wgsl or act_f16.wgsl); the rest is f32.

override WG: u32 = 64u;

struct Params {
    batch: u32,
    channels: u32,
    plane: u32,
    relu: u32,
    dbeta_offset: u32,
    count: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> dy: array<act>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read> mean: array<f32>;
@group(0) @binding(6) var<storage, read> invstd: array<f32>;
// sum(dy * xhat) per channel, then sum(dy) per channel from dbeta_offset on.
@group(0) @binding(7) var<storage, read> sums: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<act>;

@compute @workgroup_size(WG)
fn backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if i >= p.batch * p.channels * p.plane {
        return;
    }
    let c = (i / p.plane) % p.channels;
    let n = f32(p.count);
    let xhat = (f32(x[i]) - mean[c]) * invstd[c];
    // The fused ReLU's derivative, from the pre-activation as batchnorm.wgsl::normalize computes it.
    let g = select(f32(dy[i]), 0.0, p.relu == 1u && xhat * gamma[c] + beta[c] <= 0.0);
    dx[i] = act(gamma[c] * invstd[c] / n * (n * g - sums[p.dbeta_offset + c] - xhat * sums[c]));
}
