// The heterogeneous convolution family, NCHW, f32: forward and input gradient (direct kernels).
// The kernel side KS and padding PAD come from include/conv_geometry.wgsl.
//
// One layer has up to two parts, selected by parameters (not by copies of this file):
//   spatial part: filter o reads the KS x KS taps of its own input block
//                 g = o / (cout / groups), channels [g * cin / groups, (g + 1) * cin / groups);
//                 weight w3 is [cout, cin / groups, KS, KS].
//   1x1 part:     none, dense (every input channel) or masked (every channel outside the filter's
//                 own block: HetConv's block layout; the skipped block is never read or
//                 multiplied); weight w1 is [cout, cin].
// Standard conv = groups 1 + spatial; grouped conv = groups G + spatial; pointwise = 1x1 dense;
// HetConv(P) fused = groups P + 3x3 + 1x1 masked, all in one pass; any of them strided.
//
// Each invocation owns OT channels x PT consecutive pixels of one row of what it writes (the
// output in the forward pass, the input gradient in the backward pass). The host picks OT so
// that the OT channels share one block (OT divides cout / groups, resp. cin / groups).
// The reduction runs over a list of "sources": the own block's channels (spatial taps), then the
// pointwise channels (1x1 taps). When a layer has few output values (deep layers, small
// images) the list is cut into `splits` slices, one invocation per slice, each writing its own
// partial result; `reduce.wgsl::sum_splits` adds them in a fixed order.

override WG: u32 = 64u;
override ST: u32 = 1u; // stride (a constant here, so that window sizes and loops are)
override OT: u32 = 4u; // channels per invocation, at most 4
override PT: u32 = 4u; // pixels per invocation along x, at most 4
// Window of input columns one forward tap row needs: (PT - 1) * ST + KS <= 3 * 4 + 7 = 19.
override XW: u32 = (PT - 1u) * ST + KS;
// Window of output columns one backward tap row needs (see backward_input): <= 10.
override DW: u32 = (PT + KS - 2u + ST - 1u) / ST + 1u;

struct Params {
    batch: u32,
    cin: u32,
    cout: u32,
    height: u32,     // input rows
    width: u32,      // input columns
    out_height: u32, // output rows: (height - 1) / ST + 1
    out_width: u32,
    groups: u32,
    spatial: u32,    // 1: the spatial part is present
    pointwise: u32,  // 0: none, 1: dense, 2: masked (skip the own block)
    has_bias: u32,   // forward only: add bias[o]
    accumulate: u32, // 1: add to what dst holds (only with one split)
    splits: u32,     // slices of the source list
    split_len: u32,  // sources per slice
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;  // x (forward) or dy (input gradient)
@group(0) @binding(2) var<storage, read> w3: array<f32>;
@group(0) @binding(3) var<storage, read> w1: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;  // [splits, batch, channels, rows, cols]

// Where one invocation works: slice, image b, first channel ch0 of its tile, row y, column x0
// (of what it writes).
struct Tile {
    split: u32,
    b: u32,
    ch0: u32,
    y: u32,
    x0: u32,
}

// Splits the flat invocation index over [splits, batch, channels / OT, rows, cols / PT].
// Returns false for the padding invocations of the last workgroup.
fn locate(flat: u32, channels: u32, rows: u32, cols: u32, tile: ptr<function, Tile>) -> bool {
    let tiles_x = (cols + PT - 1u) / PT;
    let tiles_c = channels / OT;
    let per_split = p.batch * tiles_c * rows * tiles_x;
    if flat >= p.splits * per_split {
        return false;
    }
    (*tile).split = flat / per_split;
    var r = flat % per_split;
    (*tile).x0 = (r % tiles_x) * PT;
    r /= tiles_x;
    (*tile).y = r % rows;
    r /= rows;
    (*tile).ch0 = (r % tiles_c) * OT;
    (*tile).b = r / tiles_c;
    return true;
}

// Value of plane `plane` (= image * channels + channel) of a rows x cols map at (row, col),
// 0 outside the map.
fn src_at(plane: u32, rows: u32, cols: u32, row: i32, col: i32) -> f32 {
    if row < 0 || col < 0 || row >= i32(rows) || col >= i32(cols) {
        return 0.0;
    }
    return src[(plane * rows + u32(row)) * cols + u32(col)];
}

// This invocation's slice [begin, end) of a source list of `total` sources.
fn slice(tile: Tile, total: u32) -> vec2<u32> {
    let begin = min(tile.split * p.split_len, total);
    return vec2<u32>(begin, min(begin + p.split_len, total));
}

// Pointwise source j among `count` channels of which group g's block is skipped when masked.
fn pointwise_source(j: u32, g: u32, count: u32) -> u32 {
    return outside_channel(j, g, count / p.groups, p.pointwise == 2u);
}

// Sources of the 1x1 part among `count` channels (0 without one).
fn pointwise_len(count: u32) -> u32 {
    return select(outside_count(count, count / p.groups, p.pointwise == 2u), 0u, p.pointwise == 0u);
}

fn store(tile: Tile, channels: u32, rows: u32, cols: u32, acc: ptr<function, array<f32, 16>>) {
    let slice_base = tile.split * p.batch * channels * rows * cols;
    for (var t = 0u; t < OT; t++) {
        let row_base = slice_base + ((tile.b * channels + tile.ch0 + t) * rows + tile.y) * cols;
        for (var px = 0u; px < PT; px++) {
            let col = tile.x0 + px;
            if col < cols {
                var value = (*acc)[t * PT + px];
                if p.accumulate == 1u {
                    value += dst[row_base + col];
                }
                dst[row_base + col] = value;
            }
        }
    }
}


// The KS taps of one kernel row starting at w3[w], as seven values (zeros past KS).
fn kernel_row(w: u32) -> array<f32, 7> {
    var row: array<f32, 7>;
    row[0] = w3[w];
    if KS > 1u { row[1] = w3[w + 1u]; row[2] = w3[w + 2u]; }
    if KS > 3u { row[3] = w3[w + 3u]; row[4] = w3[w + 4u]; }
    if KS > 5u { row[5] = w3[w + 5u]; row[6] = w3[w + 6u]; }
    return row;
}

// sum + row . window[x .. x + KS], taps added right to left (the order 3x3 layers have always
// added in). Written out for the odd sides up to 7, without a loop: every index is a constant
// once px is, which a loop over taps did not give on every driver.
fn row_dot(row: array<f32, 7>, window: ptr<function, array<f32, 19>>, x: u32, sum: f32) -> f32 {
    var s = sum;
    if KS > 5u {
        s = fma(row[6], (*window)[x + 6u], s);
        s = fma(row[5], (*window)[x + 5u], s);
    }
    if KS > 3u {
        s = fma(row[4], (*window)[x + 4u], s);
        s = fma(row[3], (*window)[x + 3u], s);
    }
    if KS > 1u {
        s = fma(row[2], (*window)[x + 2u], s);
        s = fma(row[1], (*window)[x + 1u], s);
    }
    return fma(row[0], (*window)[x], s);
}

// sum + row[kx] * window[(at + 2 PAD - kx) / ST] over the taps kx whose division is exact (all
// of them with stride 1), right to left as row_dot.
fn row_dot_transposed(row: array<f32, 7>, window: ptr<function, array<f32, 10>>, at: u32, sum: f32) -> f32 {
    var s = sum;
    if KS > 5u {
        s = tap_transposed(row, window, at, 6u, s);
        s = tap_transposed(row, window, at, 5u, s);
    }
    if KS > 3u {
        s = tap_transposed(row, window, at, 4u, s);
        s = tap_transposed(row, window, at, 3u, s);
    }
    if KS > 1u {
        s = tap_transposed(row, window, at, 2u, s);
        s = tap_transposed(row, window, at, 1u, s);
    }
    return tap_transposed(row, window, at, 0u, s);
}

fn tap_transposed(row: array<f32, 7>, window: ptr<function, array<f32, 10>>, at: u32, kx: u32, sum: f32) -> f32 {
    let offset = at + 2u * PAD - kx;
    if offset % ST != 0u {
        return sum;
    }
    return fma(row[kx], (*window)[offset / ST], sum);
}

@compute @workgroup_size(WG)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    var tile: Tile;
    if !locate((wid.x + wid.y * nwg.x) * WG + lid, p.cout, p.out_height, p.out_width, &tile) {
        return;
    }
    let out_per_group = p.cout / p.groups;
    let in_per_group = p.cin / p.groups;
    let group = tile.ch0 / out_per_group;
    let block_lo = group * in_per_group;
    let block = select(0u, in_per_group, p.spatial == 1u);
    let range = slice(tile, block + pointwise_len(p.cin));
    // Input column of the first tap of the tile's first pixel.
    let col0 = i32(tile.x0 * ST) - i32(PAD);
    var acc: array<f32, 16>;
    if p.has_bias == 1u && tile.split == 0u {
        for (var t = 0u; t < OT; t++) {
            for (var px = 0u; px < PT; px++) {
                acc[t * PT + px] = bias[tile.ch0 + t];
            }
        }
    }
    for (var s = range.x; s < min(range.y, block); s++) {
        let plane = tile.b * p.cin + block_lo + s;
        for (var ky = 0u; ky < KS; ky++) {
            let row = i32(tile.y * ST + ky) - i32(PAD);
            if row < 0 || row >= i32(p.height) {
                continue;
            }
            var xs: array<f32, 19>;
            for (var i = 0u; i < XW; i++) {
                xs[i] = src_at(plane, p.height, p.width, row, col0 + i32(i));
            }
            for (var t = 0u; t < OT; t++) {
                let row = kernel_row(((tile.ch0 + t) * in_per_group + s) * TAPS + ky * KS);
                for (var px = 0u; px < PT; px++) {
                    let a = t * PT + px;
                    acc[a] = row_dot(row, &xs, px * ST, acc[a]);
                }
            }
        }
    }
    for (var s = max(range.x, block); s < range.y; s++) {
        let c = pointwise_source(s - block, group, p.cin);
        let plane = tile.b * p.cin + c;
        var xs: array<f32, 4>;
        for (var px = 0u; px < PT; px++) {
            xs[px] = src_at(plane, p.height, p.width, i32(tile.y * ST), i32((tile.x0 + px) * ST));
        }
        for (var t = 0u; t < OT; t++) {
            let w = w1[(tile.ch0 + t) * p.cin + c];
            for (var px = 0u; px < PT; px++) {
                acc[t * PT + px] = fma(w, xs[px], acc[t * PT + px]);
            }
        }
    }
    store(tile, p.cout, p.out_height, p.out_width, &acc);
}

// dx[b, c] = sum over the filters o that read channel c of their taps, transposed: input pixel
// (y, x) was seen through tap (ky, kx) by output pixel ((y + PAD - ky) / ST, (x + PAD - kx) / ST)
// where both divisions are exact. Offsets are shifted by ST * KS so that the arithmetic stays
// unsigned: an output column ox appears as ox + KS.
@compute @workgroup_size(WG)
fn backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    var tile: Tile;
    if !locate((wid.x + wid.y * nwg.x) * WG + lid, p.cin, p.height, p.width, &tile) {
        return;
    }
    let out_per_group = p.cout / p.groups;
    let in_per_group = p.cin / p.groups;
    let group = tile.ch0 / in_per_group;
    let filters_lo = group * out_per_group;
    let first_in_block = tile.ch0 - group * in_per_group;
    let block = select(0u, out_per_group, p.spatial == 1u);
    let range = slice(tile, block + pointwise_len(p.cout));
    let shift = ST * KS;
    // The window starts at the shifted output column that tap (px 0, kx KS - 1) reaches,
    // rounded down; `phase` is what the rounding dropped (0 with stride 1). Tap (px, kx) then
    // reaches window entry (phase + px + 2 PAD - kx) / ST if that divides: a constant index
    // once the loops are unrolled with stride 1.
    let start = tile.x0 + shift - PAD;
    let win_lo = start / ST;
    let phase = start % ST;
    var acc: array<f32, 16>;
    for (var s = range.x; s < min(range.y, block); s++) {
        let o = filters_lo + s;
        let plane = tile.b * p.cout + o;
        for (var ky = 0u; ky < KS; ky++) {
            let row_shifted = tile.y + PAD + shift - ky;
            let row = i32(row_shifted / ST) - i32(KS);
            if row_shifted % ST != 0u || row < 0 || row >= i32(p.out_height) {
                continue;
            }
            var ds: array<f32, 10>;
            for (var i = 0u; i < DW; i++) {
                ds[i] = src_at(plane, p.out_height, p.out_width, row, i32(win_lo + i) - i32(KS));
            }
            for (var t = 0u; t < OT; t++) {
                let row = kernel_row((o * in_per_group + first_in_block + t) * TAPS + ky * KS);
                for (var px = 0u; px < PT; px++) {
                    let a = t * PT + px;
                    acc[a] = row_dot_transposed(row, &ds, phase + px, acc[a]);
                }
            }
        }
    }
    // 1x1 taps: input pixel (y, x) was read by output pixel (y / ST, x / ST) if both divide.
    let on_grid_row = tile.y % ST == 0u;
    for (var s = max(range.x, block); s < range.y; s++) {
        let o = pointwise_source(s - block, group, p.cout);
        let plane = tile.b * p.cout + o;
        var ds: array<f32, 4>;
        for (var px = 0u; px < PT; px++) {
            let col = tile.x0 + px;
            if on_grid_row && col % ST == 0u {
                ds[px] = src_at(plane, p.out_height, p.out_width, i32(tile.y / ST), i32(col / ST));
            }
        }
        for (var t = 0u; t < OT; t++) {
            let w = w1[o * p.cin + tile.ch0 + t];
            for (var px = 0u; px < PT; px++) {
                acc[t * PT + px] = fma(w, ds[px], acc[t * PT + px]);
            }
        }
    }
    store(tile, p.cin, p.height, p.width, &acc);
}
