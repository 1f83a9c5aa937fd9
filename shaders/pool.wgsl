// Pooling over NCHW planes: max-pool with a K x K window, stride S and zero padding P (floor
// mode, as PyTorch's max_pool2d: padded positions never win; a last partial window is dropped),
// and global average pooling. The VGG uses 2x2 stride 2; a ResNet's stem 3x3 stride 2 padding 1.
// Max-pool ties go to the first maximum in row-major order inside the window, as in PyTorch.
// x, dy and out hold activations (`act`: include/act_f32.wgsl or act_f16.wgsl); sums are f32.

override WG: u32 = 64u;

struct Params {
    planes: u32,  // batch * channels
    height: u32,  // input
    width: u32,
    kernel: u32,  // max-pool window side K
    stride: u32,  // S
    padding: u32, // P (at most K / 2, so every window holds an input pixel)
    out_h: u32,   // (height + 2P - K) / S + 1
    out_w: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> dy: array<act>;  // backward only
@group(0) @binding(3) var<storage, read_write> out: array<act>;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Flat index in plane `plane`'s H*W of the first maximum of output window (oy, ox).
fn window_argmax(plane: u32, oy: u32, ox: u32) -> u32 {
    let top = i32(oy * p.stride) - i32(p.padding);
    let left = i32(ox * p.stride) - i32(p.padding);
    var best = 0.0;
    var arg = 0xffffffffu;
    for (var ky = 0u; ky < p.kernel; ky++) {
        let row = top + i32(ky);
        if row < 0 || row >= i32(p.height) {
            continue;
        }
        for (var kx = 0u; kx < p.kernel; kx++) {
            let col = left + i32(kx);
            if col < 0 || col >= i32(p.width) {
                continue;
            }
            let k = u32(row) * p.width + u32(col);
            let v = f32(x[plane * p.height * p.width + k]);
            if arg == 0xffffffffu || v > best {
                best = v;
                arg = k;
            }
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
    let i = flat_index(wid, nwg, lid);
    if i >= p.planes * p.out_h * p.out_w {
        return;
    }
    let ox = i % p.out_w;
    let oy = (i / p.out_w) % p.out_h;
    let plane = i / (p.out_w * p.out_h);
    out[i] = x[plane * p.height * p.width + window_argmax(plane, oy, ox)];
}

// One invocation per input element: the sum of dy over the windows (at most ceil(K/S)² of them)
// whose maximum it is.
@compute @workgroup_size(WG)
fn backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wid, nwg, lid);
    if i >= p.planes * p.height * p.width {
        return;
    }
    let col = i % p.width;
    let row = (i / p.width) % p.height;
    let plane = i / (p.width * p.height);
    let own = row * p.width + col;
    // Windows oy with oy * S - P <= row < oy * S - P + K.
    let last_y = min((row + p.padding) / p.stride, p.out_h - 1u);
    let last_x = min((col + p.padding) / p.stride, p.out_w - 1u);
    let first_y = select(0u, (row + p.padding + 1u - p.kernel + p.stride - 1u) / p.stride, row + p.padding + 1u > p.kernel);
    let first_x = select(0u, (col + p.padding + 1u - p.kernel + p.stride - 1u) / p.stride, col + p.padding + 1u > p.kernel);
    var grad = 0.0;
    for (var oy = first_y; oy <= last_y; oy++) {
        for (var ox = first_x; ox <= last_x; ox++) {
            if window_argmax(plane, oy, ox) == own {
                grad += f32(dy[(plane * p.out_h + oy) * p.out_w + ox]);
            }
        }
    }
    out[i] = act(grad);
}

// Global average pooling: one invocation per plane, out[plane] = mean of its H*W values.
@compute @workgroup_size(WG)
fn global_average(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let plane = flat_index(wid, nwg, lid);
    if plane >= p.planes {
        return;
    }
    let area = p.height * p.width;
    var sum = 0.0;
    for (var k = 0u; k < area; k++) {
        sum += f32(x[plane * area + k]);
    }
    out[plane] = act(sum / f32(area));
}

// Its gradient: every input element of a plane receives dy[plane] / (H * W).
@compute @workgroup_size(WG)
fn global_average_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wid, nwg, lid);
    let area = p.height * p.width;
    if i >= p.planes * area {
        return;
    }
    out[i] = act(f32(dy[i / area]) / f32(area));
}
