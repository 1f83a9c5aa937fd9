// 2x2 max-pool, stride 2, no padding, floor mode (a last odd row or column is dropped).
// Ties go to the first maximum in row-major order inside the window, as in PyTorch.

override WG: u32 = 64u;

struct Params {
    planes: u32,  // batch * channels
    height: u32,  // input
    width: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;  // backward only
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Offset (0..4, row-major) of the first maximum of window (oy, ox) of plane `plane`.
fn window_argmax(plane: u32, oy: u32, ox: u32) -> u32 {
    let base = (plane * p.height + 2u * oy) * p.width + 2u * ox;
    var best = x[base];
    var arg = 0u;
    for (var k = 1u; k < 4u; k++) {
        let v = x[base + (k / 2u) * p.width + (k % 2u)];
        if v > best {
            best = v;
            arg = k;
        }
    }
    return arg;
}

@compute @workgroup_size(WG)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let oh = p.height / 2u;
    let ow = p.width / 2u;
    let i = flat_index(wid, nwg, lid);
    if i >= p.planes * oh * ow {
        return;
    }
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = i / (ow * oh);
    let k = window_argmax(plane, oy, ox);
    out[i] = x[(plane * p.height + 2u * oy + k / 2u) * p.width + 2u * ox + k % 2u];
}

// One invocation per input element: it receives dy of its window if it is the window's argmax.
@compute @workgroup_size(WG)
fn backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let oh = p.height / 2u;
    let ow = p.width / 2u;
    let i = flat_index(wid, nwg, lid);
    if i >= p.planes * p.height * p.width {
        return;
    }
    let col = i % p.width;
    let row = (i / p.width) % p.height;
    let plane = i / (p.width * p.height);
    let oy = row / 2u;
    let ox = col / 2u;
    var grad = 0.0;
    if oy < oh && ox < ow && window_argmax(plane, oy, ox) == (row % 2u) * 2u + col % 2u {
        grad = dy[(plane * oh + oy) * ow + ox];
    }
    out[i] = grad;
}
