// SGD with momentum, weight decay and optional Nesterov, PyTorch semantics, over every
// parameter at once (one flat buffer): g = grad + wd * w; buf = momentum * buf + g;
// w -= lr * (nesterov ? g + momentum * buf : buf). The momentum buffer starts at zero, so the
// first step sets buf = g exactly, as PyTorch does. With `skippable`, the step changes nothing
// while word 2 of the loss scaler's state is raised (a non-finite gradient under mixed
// precision: `shaders/loss_scale.wgsl`).

override WG: u32 = 64u;

struct Params {
    len: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: u32,
    skippable: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf: array<f32>;
@group(0) @binding(4) var<storage, read> scaler: array<u32>;

@compute @workgroup_size(WG)
fn step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if i >= p.len || (p.skippable == 1u && scaler[2] != 0u) {
        return;
    }
    let g = grad[i] + p.weight_decay * w[i];
    let b = p.momentum * buf[i] + g;
    buf[i] = b;
    var update = b;
    if p.nesterov == 1u {
        update = g + p.momentum * b;
    }
    w[i] = w[i] - p.lr * update;
}
