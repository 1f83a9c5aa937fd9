// Elementwise arithmetic over flat arrays: out = op(a, b), out = alpha * a + beta * out, ReLU,
// and a fixed per-channel affine map (input normalisation). a, b and out hold activations
// (`act`, from include/act_f32.wgsl or act_f16.wgsl); arithmetic is f32.

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
@group(0) @binding(1) var<storage, read> a: array<act>;
@group(0) @binding(2) var<storage, read> b: array<act>;
@group(0) @binding(3) var<storage, read_write> out: array<act>;
@group(0) @binding(4) var<storage, read> scale_shift: array<f32>; // channel_affine

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
    let x = f32(a[i]);
    let y = f32(b[i]);
    switch p.op {
        case 0u: { out[i] = act(x + y); }
        case 1u: { out[i] = act(x - y); }
        case 2u: { out[i] = act(x * y); }
        default: { out[i] = act(select(0.0, y, x > 0.0)); }
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
        out[i] = act(p.alpha * f32(a[i]));
    } else {
        out[i] = act(p.alpha * f32(a[i]) + p.beta * f32(out[i]));
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
    out[i] = act(max(f32(a[i]), 0.0));
}

// out = a * scale_shift[c] + scale_shift[channels + c], c the channel of each value of a
// ([batch, channels, plane]): the scales, then the shifts (b is not read).
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
    out[i] = act(fma(f32(a[i]), scale_shift[c], scale_shift[p.channels + c]));
}
