// Weight gradients of the heterogeneous convolution family (see conv.wgsl for the layout; the
// kernel side KS and padding PAD come from include/conv_geometry.wgsl).
//
// One invocation owns OT filters and one split of the reduction over the batch's output rows,
// and either one input channel of the filters' own block (KS x KS spatial taps) or CT channels
// outside it (1x1 taps); each x value and each dy value is read once per output row and serves
// every tap that needs it. In the masked (HetConv) form the own block's 1x1 gradient is written
// as an exact zero: it is never computed, so masked weights can never drift. Partial sums go to
// [splits, ...] buffers that `reduce.wgsl::sum_splits` adds up in a fixed order (deterministic,
// no float atomics).

override WG: u32 = 64u;
override ST: u32 = 1u; // stride (a constant here, so that window sizes and loops are)
override OT: u32 = 4u; // filters per invocation, at most 4, dividing the filters per group; OT * TAPS <= 49
override CT: u32 = 4u; // input channels per invocation, at most 4, dividing the channels per group

struct Params {
    batch: u32,
    cin: u32,
    cout: u32,
    height: u32,     // input rows
    width: u32,      // input columns
    out_height: u32, // rows of dy
    out_width: u32,
    groups: u32,
    spatial: u32,
    pointwise: u32,     // 0: none, 1: dense, 2: masked
    splits: u32,
    rows_per_split: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad3: array<f32>; // [splits, cout, cin / groups, KS, KS]
@group(0) @binding(4) var<storage, read_write> grad1: array<f32>; // [splits, cout, cin]

// Output rows [lo, hi) of the batch (batch * out_height of them) in one split of the reduction.
struct Rows {
    lo: u32,
    hi: u32,
}

// x of channel c at input row `row` (whose offset is `base`) and column `col`; 0 outside.
fn x_at(base: u32, row_ok: bool, col: i32) -> f32 {
    if !row_ok || col < 0 || col >= i32(p.width) {
        return 0.0;
    }
    return x[base + u32(col)];
}

// The KS x KS taps (and, by the centre tap, the 1x1 gradient) of filters o0..o0+OT on input
// channel c of their own block.
fn own_block_taps(c: u32, o0: u32, split: u32, block_lo: u32, rows: Rows) {
    var acc: array<f32, 49>;
    // Declared once (each row rewrites the entries it uses): no zeroing per row.
    var rows_ok: array<bool, 7>;
    var x_rows: array<u32, 7>;
    var win: array<f32, 49>;
    let in_per_group = p.cin / p.groups;
    let dy_filter = p.out_height * p.out_width;
    for (var r = rows.lo; r < rows.hi; r++) {
        let b = r / p.out_height;
        let y = r % p.out_height;
        let dy_row = ((b * p.cout + o0) * p.out_height + y) * p.out_width;
        // The KS input rows of output row y as sliding windows of KS columns: win[ky * KS + kx]
        // holds the value tap (ky, kx) sees at the current output column; moving one column
        // right shifts each window by ST and loads the ST new columns. Rows and columns outside
        // the image read as zeros.
        for (var ky = 0u; ky < KS; ky++) {
            let iy = i32(y * ST + ky) - i32(PAD);
            rows_ok[ky] = iy >= 0 && iy < i32(p.height);
            x_rows[ky] = ((b * p.cin + c) * p.height + u32(clamp(iy, 0, i32(p.height) - 1))) * p.width;
            for (var kx = 0u; kx < KS; kx++) {
                win[ky * KS + kx] = x_at(x_rows[ky], rows_ok[ky], i32(kx) - i32(PAD));
            }
        }
        for (var col = 0u; col < p.out_width; col++) {
            for (var t = 0u; t < OT; t++) {
                let d = dy[dy_row + t * dy_filter + col];
                for (var k = 0u; k < TAPS; k++) {
                    acc[t * TAPS + k] = fma(d, win[k], acc[t * TAPS + k]);
                }
            }
            let next = i32((col + 1u) * ST) - i32(PAD);
            for (var ky = 0u; ky < KS; ky++) {
                for (var kx = 0u; kx < KS; kx++) {
                    if kx + ST < KS {
                        win[ky * KS + kx] = win[ky * KS + kx + ST];
                    } else {
                        win[ky * KS + kx] = x_at(x_rows[ky], rows_ok[ky], next + i32(kx));
                    }
                }
            }
        }
    }
    let centre = PAD * KS + PAD;
    for (var t = 0u; t < OT; t++) {
        let o = o0 + t;
        let base = ((split * p.cout + o) * in_per_group + (c - block_lo)) * TAPS;
        for (var k = 0u; k < TAPS; k++) {
            grad3[base + k] = acc[t * TAPS + k];
        }
        // The centre tap is exactly the 1x1 gradient of the same pair.
        let at1 = (split * p.cout + o) * p.cin + c;
        if p.pointwise == 1u {
            grad1[at1] = acc[t * TAPS + centre];
        } else if p.pointwise == 2u {
            grad1[at1] = 0.0;
        }
    }
}

// The 1x1 gradients of filters o0..o0+OT on channels c0..c0+CT: per pixel CT x loads and OT dy
// loads for CT x OT multiply-adds.
fn pointwise_taps(c0: u32, o0: u32, split: u32, rows: Rows) {
    var acc: array<f32, 16>;
    let plane = p.height * p.width;
    let dy_plane = p.out_height * p.out_width;
    for (var r = rows.lo; r < rows.hi; r++) {
        let b = r / p.out_height;
        let y = r % p.out_height;
        let dy_row = ((b * p.cout + o0) * p.out_height + y) * p.out_width;
        // Output pixel (y, col) reads input pixel (y * ST, col * ST).
        let x_row = ((b * p.cin + c0) * p.height + y * ST) * p.width;
        for (var col = 0u; col < p.out_width; col++) {
            var xs: array<f32, 4>;
            for (var ci = 0u; ci < CT; ci++) {
                xs[ci] = x[x_row + ci * plane + col * ST];
            }
            for (var t = 0u; t < OT; t++) {
                let d = dy[dy_row + t * dy_plane + col];
                for (var ci = 0u; ci < CT; ci++) {
                    acc[t * CT + ci] = fma(d, xs[ci], acc[t * CT + ci]);
                }
            }
        }
    }
    for (var t = 0u; t < OT; t++) {
        for (var ci = 0u; ci < CT; ci++) {
            grad1[(split * p.cout + o0 + t) * p.cin + c0 + ci] = acc[t * CT + ci];
        }
    }
}

// A masked 1x1 without a 3x3 part: the skipped block's gradient (filters o0..o0+OT on channel
// c) is the exact zero it starts as.
fn masked_block_zeros(c: u32, o0: u32, split: u32) {
    for (var t = 0u; t < OT; t++) {
        grad1[(split * p.cout + o0 + t) * p.cin + c] = 0.0;
    }
}

// Channels of the own block that one filter tile visits (spatial taps, or the zero writes of a
// masked 1x1 without a 3x3 part), and channels it visits with 1x1 taps only.
fn block_channels() -> u32 {
    if p.spatial == 1u || p.pointwise == 2u {
        return p.cin / p.groups;
    }
    return 0u;
}

fn pointwise_channels() -> u32 {
    if p.pointwise == 0u {
        return 0u;
    }
    return p.cin - block_channels();
}

// The grid is [splits, cout / OT, block channels + pointwise channels / CT]: first one
// invocation per own-block channel, then one per CT channels outside the block, so that
// neighbouring invocations take the same branch.
@compute @workgroup_size(WG)
fn weight_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let flat = (wid.x + wid.y * nwg.x) * WG + lid;
    let tiles_o = p.cout / OT;
    let in_block = block_channels();
    let per_tile = in_block + pointwise_channels() / CT;
    if flat >= p.splits * tiles_o * per_tile {
        return;
    }
    let j = flat % per_tile;
    let o0 = ((flat / per_tile) % tiles_o) * OT;
    let split = flat / (per_tile * tiles_o);
    let in_per_group = p.cin / p.groups;
    // The OT filters share one group (OT divides the filters per group), so one block.
    let group = o0 / (p.cout / p.groups);
    let block_lo = group * in_per_group;
    let row_lo = split * p.rows_per_split;
    let rows = Rows(row_lo, min(row_lo + p.rows_per_split, p.batch * p.out_height));
    if j < in_block {
        if p.spatial == 1u {
            own_block_taps(block_lo + j, o0, split, block_lo, rows);
        } else {
            masked_block_zeros(block_lo + j, o0, split);
        }
        return;
    }
    // The j-th tile of channels outside the block (all channels when the tiles visit no
    // block); CT divides the block, so a tile never straddles it.
    let c0 = outside_channel((j - in_block) * CT, group, in_per_group, in_block > 0u);
    pointwise_taps(c0, o0, split, rows);
}
