// Input gradient of training-mode batch normalisation:
// dx = gamma * invstd / n * (n * dy - sum(dy) - xhat * sum(dy * xhat)).

override WG: u32 = 64u;

struct Params {
    batch: u32,
    channels: u32,
    plane: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> invstd: array<f32>;
@group(0) @binding(6) var<storage, read> sum_dy_xhat: array<f32>;
@group(0) @binding(7) var<storage, read> sum_dy: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;

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
    let n = f32(p.batch * p.plane);
    let xhat = (x[i] - mean[c]) * invstd[c];
    dx[i] = gamma[c] * invstd[c] / n * (n * dy[i] - sum_dy[c] - xhat * sum_dy_xhat[c]);
}
