// Weight gradients of the heterogeneous convolution family (see conv.wgsl for the layout).
//
// One invocation owns OT filters x one input channel c and one split of the reduction over the
// batch's rows (each x value and each dy value is read once per output row and serves all the
// taps that need it). Pairs inside the filters' own block get the nine 3x3 taps; pairs outside
// it get the 1x1 tap. In the masked (HetConv) form the own block's 1x1 gradient is written as
// an exact zero: it is never computed, so masked weights can never drift. Partial sums go to
// [splits, ...] buffers that `reduce.wgsl::sum_splits` adds up in a fixed order (deterministic,
// no float atomics).

override WG: u32 = 64u;
override OT: u32 = 4u; // filters per invocation, at most 4, dividing the filters per group

struct Params {
    batch: u32,
    cin: u32,
    cout: u32,
    height: u32,
    width: u32,
    groups: u32,
    kernel3: u32,
    pointwise: u32,     // 0: none, 1: dense, 2: masked
    splits: u32,
    rows_per_split: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad3: array<f32>; // [splits, cout, cin / groups, 9]
@group(0) @binding(4) var<storage, read_write> grad1: array<f32>; // [splits, cout, cin]

@compute @workgroup_size(WG)
fn weight_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let flat = (wid.x + wid.y * nwg.x) * WG + lid;
    let tiles_o = p.cout / OT;
    if flat >= p.splits * tiles_o * p.cin {
        return;
    }
    let c = flat % p.cin;
    let o0 = ((flat / p.cin) % tiles_o) * OT;
    let split = flat / (p.cin * tiles_o);
    let out_per_group = p.cout / p.groups;
    let in_per_group = p.cin / p.groups;
    // The OT filters share one group (OT divides the filters per group), so one block.
    let block_lo = (o0 / out_per_group) * in_per_group;
    let in_block = c >= block_lo && c < block_lo + in_per_group;
    let rows = p.batch * p.height;
    let row_lo = split * p.rows_per_split;
    let row_hi = min(row_lo + p.rows_per_split, rows);

    if p.kernel3 == 1u && in_block {
        var acc: array<f32, 36>;
        for (var r = row_lo; r < row_hi; r++) {
            let b = r / p.height;
            let y = r % p.height;
            let dy_row = ((b * p.cout + o0) * p.height + y) * p.width;
            let dy_filter = p.height * p.width;
            // Rows y-1, y, y+1 of channel c as three sliding windows (left, mid, right): each
            // column loads three x values and OT dy values for 9 x OT multiply-adds. Rows
            // outside the image read as zeros.
            var rows_ok: array<bool, 3>;
            var x_rows: array<u32, 3>;
            var win: array<f32, 9>;
            for (var ky = 0u; ky < 3u; ky++) {
                let iy = i32(y + ky) - 1;
                rows_ok[ky] = iy >= 0 && iy < i32(p.height);
                x_rows[ky] = ((b * p.cin + c) * p.height + u32(clamp(iy, 0, i32(p.height) - 1))) * p.width;
                win[ky * 3u + 1u] = select(0.0, x[x_rows[ky]], rows_ok[ky]);
            }
            for (var col = 0u; col < p.width; col++) {
                let has_right = col + 1u < p.width;
                for (var ky = 0u; ky < 3u; ky++) {
                    let at = x_rows[ky] + min(col + 1u, p.width - 1u);
                    win[ky * 3u + 2u] = select(0.0, x[at], rows_ok[ky] && has_right);
                }
                for (var t = 0u; t < OT; t++) {
                    let d = dy[dy_row + t * dy_filter + col];
                    for (var k = 0u; k < 9u; k++) {
                        acc[t * 9u + k] = fma(d, win[k], acc[t * 9u + k]);
                    }
                }
                for (var ky = 0u; ky < 3u; ky++) {
                    win[ky * 3u] = win[ky * 3u + 1u];
                    win[ky * 3u + 1u] = win[ky * 3u + 2u];
                }
            }
        }
        for (var t = 0u; t < OT; t++) {
            let o = o0 + t;
            let base = ((split * p.cout + o) * in_per_group + (c - block_lo)) * 9u;
            for (var k = 0u; k < 9u; k++) {
                grad3[base + k] = acc[t * 9u + k];
            }
            // The centre tap is exactly the 1x1 gradient of the same pair.
            let at1 = (split * p.cout + o) * p.cin + c;
            if p.pointwise == 1u {
                grad1[at1] = acc[t * 9u + 4u];
            } else if p.pointwise == 2u {
                grad1[at1] = 0.0;
            }
        }
        return;
    }
    if p.pointwise == 0u {
        return;
    }
    var acc1: array<f32, 4>;
    if !(p.pointwise == 2u && in_block) {
        for (var r = row_lo; r < row_hi; r++) {
            let b = r / p.height;
            let y = r % p.height;
            let dy_row = ((b * p.cout + o0) * p.height + y) * p.width;
            let x_row = ((b * p.cin + c) * p.height + y) * p.width;
            for (var col = 0u; col < p.width; col++) {
                let xv = x[x_row + col];
                for (var t = 0u; t < OT; t++) {
                    acc1[t] = fma(dy[dy_row + t * p.height * p.width + col], xv, acc1[t]);
                }
            }
        }
    }
    // A masked pair's gradient stays the exact zero it started as.
    for (var t = 0u; t < OT; t++) {
        grad1[(split * p.cout + o0 + t) * p.cin + c] = acc1[t];
    }
}
