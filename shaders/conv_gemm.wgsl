// The conv family (see conv.wgsl) as a tiled implicit GEMM with workgroup-memory tiles, for
// real GPUs. One source, three roles chosen by the override constant ROLE:
//   0 forward:          C[o, pixel] = sum_k W[o, k] * X[k, pixel]
//   1 input gradient:   C[c, pixel] = sum_k W'[c, k] * dY[k, pixel]   (transposed, flipped taps)
//   2 weight gradient:  C[o, k]     = sum_pixel dY[o, pixel] * X[k, pixel]  (one split of pixels)
// The reduction space k of a row's group is: its own block's 3x3 taps (block channel, tap), then
// the 1x1 taps of the pointwise channels (all of them, or all but the own block when masked).
// The masked block is not in k at all: it is skipped, not multiplied. All rows of one tile
// belong to one group (the host picks TM dividing the rows per group), so they share that space.
// Each workgroup computes a TM x TN tile; each invocation a 4 x 4 block of it.

override WG: u32 = 256u;   // (TM / 4) * (TN / 4)
override TM: u32 = 64u;    // rows per tile: 4, 8, 16, 32 or 64
override ROLE: u32 = 0u;
const TN: u32 = 64u;
const KC: u32 = 16u;

struct Params {
    batch: u32,
    cin: u32,
    cout: u32,
    height: u32,
    width: u32,
    groups: u32,
    kernel3: u32,
    pointwise: u32,       // 0 none, 1 dense, 2 masked
    has_bias: u32,
    accumulate: u32,
    splits: u32,          // weight gradient: pixel splits
    split_len: u32,       // weight gradient: pixels per split (a multiple of KC)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;   // x (roles 0, 2) or dy (role 1)
@group(0) @binding(2) var<storage, read> src2: array<f32>;  // dy (role 2)
@group(0) @binding(3) var<storage, read> w3: array<f32>;
@group(0) @binding(4) var<storage, read> w1: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst: array<f32>;

var<workgroup> a_tile: array<f32, 1024>;  // [KC][TM], TM <= 64
var<workgroup> b_tile: array<f32, 1024>;  // [KC][TN]

fn pixels() -> u32 {
    return p.batch * p.height * p.width;
}

// Rows of one group: filters (roles 0, 2) or input channels (role 1).
fn rows_per_group() -> u32 {
    if ROLE == 1u {
        return p.cin / p.groups;
    }
    return p.cout / p.groups;
}

// Size of the 3x3 part of the reduction space and of its pointwise part.
fn k3_len() -> u32 {
    if p.kernel3 == 0u {
        return 0u;
    }
    if ROLE == 1u {
        return (p.cout / p.groups) * 9u;
    }
    return (p.cin / p.groups) * 9u;
}

fn kp_len() -> u32 {
    let other = select(p.cin, p.cout, ROLE == 1u);
    switch p.pointwise {
        case 1u: { return other; }
        case 2u: { return other - other / p.groups; }
        default: { return 0u; }
    }
}

// The j-th pointwise channel of group g among `count` channels (skipping g's block if masked).
fn pointwise_channel(j: u32, g: u32, count: u32) -> u32 {
    if p.pointwise == 2u {
        let block = count / p.groups;
        return select(j + block, j, j < g * block);
    }
    return j;
}

// Reads plane `plane` of `buf` at (row, col) shifted by (dy, dx), zero outside the image.
fn tap_value(from_src2: bool, plane: u32, pixel_in_image: u32, dy: i32, dx: i32) -> f32 {
    let y = i32(pixel_in_image / p.width) + dy;
    let x = i32(pixel_in_image % p.width) + dx;
    if y < 0 || x < 0 || y >= i32(p.height) || x >= i32(p.width) {
        return 0.0;
    }
    let index = (plane * p.height + u32(y)) * p.width + u32(x);
    if from_src2 {
        return src2[index];
    }
    return src[index];
}

// The reduction-space operand at (k, pixel) for a row of group g: the tapped input (forward,
// weight gradient) or the tapped output gradient (input gradient).
fn gathered(k: u32, pixel: u32, g: u32) -> f32 {
    let image = pixel / (p.height * p.width);
    let in_image = pixel % (p.height * p.width);
    let k3 = k3_len();
    var channel: u32;
    var tap: u32 = 4u;
    if k < k3 {
        if ROLE == 1u {
            channel = g * (p.cout / p.groups) + k / 9u;
        } else {
            channel = g * (p.cin / p.groups) + k / 9u;
        }
        tap = k % 9u;
    } else {
        channel = pointwise_channel(k - k3, g, select(p.cin, p.cout, ROLE == 1u));
    }
    let dy = i32(tap / 3u) - 1;
    let dx = i32(tap % 3u) - 1;
    if ROLE == 1u {
        // Output (y - dy, x - dx) saw input (y, x) through this tap.
        return tap_value(false, image * p.cout + channel, in_image, -dy, -dx);
    }
    return tap_value(false, image * p.cin + channel, in_image, dy, dx);
}

// The weight operand at (row, k) for roles 0 and 1.
fn weight(row: u32, k: u32, g: u32) -> f32 {
    let k3 = k3_len();
    let cpg = p.cin / p.groups;
    if ROLE == 0u {
        if k < k3 {
            return w3[row * cpg * 9u + k];
        }
        return w1[row * p.cin + pointwise_channel(k - k3, g, p.cin)];
    }
    // Input gradient: row is input channel c of group g; k walks the filters that read it.
    let opg = p.cout / p.groups;
    if k < k3 {
        let o = g * opg + k / 9u;
        return w3[(o * cpg + (row - g * cpg)) * 9u + k % 9u];
    }
    let o = pointwise_channel(k - k3, g, p.cout);
    return w1[o * p.cin + row];
}

@compute @workgroup_size(WG)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let rows = select(p.cout, p.cin, ROLE == 1u);
    let red_space = k3_len() + kp_len();
    // Columns: pixels (roles 0, 1) or the reduction space (role 2).
    let cols = select(pixels(), red_space, ROLE == 2u);
    let row_tiles = rows / TM;
    let col_tiles = (cols + TN - 1u) / TN;
    let flat = wid.x + wid.y * nwg.x;
    let splits = select(1u, p.splits, ROLE == 2u);
    // Workgroup-uniform exit: every invocation of a workgroup shares `flat`.
    if flat >= row_tiles * col_tiles * splits {
        return;
    }
    let row_tile = flat % row_tiles;
    let col_tile = (flat / row_tiles) % col_tiles;
    let split = flat / (row_tiles * col_tiles);
    let row0 = row_tile * TM;
    let col0 = col_tile * TN;
    let g = row0 / rows_per_group();
    // The reduction runs over k (roles 0, 1) or over this split's pixels (role 2).
    var red_begin = 0u;
    var red_end = red_space;
    if ROLE == 2u {
        red_begin = split * p.split_len;
        red_end = min(red_begin + p.split_len, pixels());
    }
    let tr = lid / (TN / 4u);
    let tc = lid % (TN / 4u);
    var acc: array<f32, 16>;
    for (var k0 = red_begin; k0 < red_end; k0 += KC) {
        // A tile: [KC][TM].
        for (var e = lid; e < KC * TM; e += WG) {
            let kk = e % KC;
            let m = e / KC;
            let k = k0 + kk;
            var v = 0.0;
            if k < red_end {
                if ROLE == 2u {
                    // dY[o, pixel k]
                    let image = k / (p.height * p.width);
                    v = src2[(image * p.cout + row0 + m) * p.height * p.width + k % (p.height * p.width)];
                } else {
                    v = weight(row0 + m, k, g);
                }
            }
            a_tile[kk * TM + m] = v;
        }
        // B tile: [KC][TN].
        for (var e = lid; e < KC * TN; e += WG) {
            let kk = e / TN;
            let n = e % TN;
            let k = k0 + kk;
            let col = col0 + n;
            var v = 0.0;
            if k < red_end && col < cols {
                if ROLE == 2u {
                    v = gathered(col, k, g);
                } else {
                    v = gathered(k, col, g);
                }
            }
            b_tile[kk * TN + n] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KC; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = a_tile[kk * TM + tr * 4u + i];
                b[i] = b_tile[kk * TN + tc * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(a[i], b[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + tr * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + tc * 4u + j;
            if col >= cols {
                continue;
            }
            var value = acc[i * 4u + j];
            if ROLE == 2u {
                dst[(split * rows + row) * red_space + col] = value;
            } else {
                let plane = p.height * p.width;
                let index = ((col / plane) * rows + row) * plane + col % plane;
                if ROLE == 0u && p.has_bias == 1u {
                    value += bias[row];
                }
                if p.accumulate == 1u {
                    value += dst[index];
                }
                dst[index] = value;
            }
        }
    }
}

// Weight gradient, second pass (run with ROLE = 2): sums the splits of C[o, k] and scatters
// them into dw3 [N, M/G, 3, 3] (k in the 3x3 part) and dw1 [N, M] (the pointwise part, with
// exact zeros on a masked block). One invocation per element of dw3, then of dw1.
@group(0) @binding(7) var<storage, read_write> dst2: array<f32>;

@compute @workgroup_size(WG)
fn scatter_weight_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let cpg = p.cin / p.groups;
    let opg = p.cout / p.groups;
    let n3 = select(0u, p.cout * cpg * 9u, p.kernel3 == 1u);
    let n1 = select(0u, p.cout * p.cin, p.pointwise != 0u);
    if i >= n3 + n1 {
        return;
    }
    let red_space = k3_len() + kp_len();
    var o: u32;
    var col: u32;
    if i < n3 {
        o = i / (cpg * 9u);
        col = i % (cpg * 9u);
    } else {
        let j = i - n3;
        o = j / p.cin;
        let c = j % p.cin;
        let lo = (o / opg) * cpg;
        if p.pointwise == 2u && c >= lo && c < lo + cpg {
            dst2[j] = 0.0;
            return;
        }
        col = k3_len() + select(c, select(c - cpg, c, c < lo), p.pointwise == 2u);
    }
    var total = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        total += src[(s * p.cout + o) * red_space + col];
    }
    if i < n3 {
        dst[i] = total;
    } else {
        dst2[i - n3] = total;
    }
}
