// Elementwise arithmetic over flat arrays: out = op(a, b), out = alpha * a + beta * out, ReLU,
// and a fixed per-channel affine map (input normalisation).

override WG: u32 = 64u;

struct Params {
    len: u32,
    op: u32,       // binary: 0 add, 1 subtract, 2 multiply, 3 relu backward (b where a > 0)
    alpha: f32,    // axpby
    beta: f32,     // axpby
    plane: u32,    // channel_affine: values per channel plane
    channels: u32, // channel_affine: channels
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn binary(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.len {
        return;
    }
    switch p.op {
        case 0u: { out[i] = a[i] + b[i]; }
        case 1u: { out[i] = a[i] - b[i]; }
        case 2u: { out[i] = a[i] * b[i]; }
        default: { out[i] = select(0.0, b[i], a[i] > 0.0); }
    }
}

// out = alpha * a + beta * out (b is not read).
@compute @workgroup_size(WG)
fn axpby(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.len {
        return;
    }
    if p.beta == 0.0 {
        out[i] = p.alpha * a[i];
    } else {
        out[i] = p.alpha * a[i] + p.beta * out[i];
    }
}

// out = max(a, 0) (b is not read).
@compute @workgroup_size(WG)
fn relu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.len {
        return;
    }
    out[i] = max(a[i], 0.0);
}

// out = a * b[c] + b[channels + c], c the channel of each value of a ([batch, channels, plane]):
// b holds the scales, then the shifts.
@compute @workgroup_size(WG)
fn channel_affine(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.len {
        return;
    }
    let c = (i / p.plane) % p.channels;
    out[i] = fma(a[i], b[c], b[p.channels + c]);
}
