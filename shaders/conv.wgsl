// The heterogeneous convolution family, stride 1, NCHW, f32: forward and input gradient.
//
// One layer has up to two parts, selected by parameters (not by copies of this file):
//   3x3 part:  filter o reads the 3x3 taps (padding 1) of its own input block
//              g = o / (cout / groups), channels [g * cin / groups, (g + 1) * cin / groups);
//              weight w3 is [cout, cin / groups, 3, 3].
//   1x1 part:  none, dense (every input channel) or masked (every channel outside the filter's
//              own block: HetConv's block layout; the skipped block is never read or multiplied);
//              weight w1 is [cout, cin].
// Standard conv = groups 1 + 3x3; grouped conv = groups G + 3x3; pointwise = 1x1 dense;
// HetConv(P) fused = groups P + 3x3 + 1x1 masked, all in one pass.
//
// Each invocation owns OT channels x PT consecutive pixels of one output row. The host picks OT
// so that the OT channels share one block (OT divides cout / groups, resp. cin / groups).
// The reduction runs over a list of "sources": the own block's channels (3x3 taps), then the
// pointwise channels (1x1 taps). When a layer has few output values (deep layers, small
// images) the list is cut into `splits` slices, one invocation per slice, each writing its own
// partial result; `reduce.wgsl::sum_splits` adds them in a fixed order.

override WG: u32 = 64u;
override OT: u32 = 4u; // channels per invocation, at most 4
override PT: u32 = 4u; // pixels per invocation along x, at most 4

struct Params {
    batch: u32,
    cin: u32,
    cout: u32,
    height: u32,
    width: u32,
    groups: u32,
    kernel3: u32,    // 1: the 3x3 part is present
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
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;  // [splits, batch, channels, h, w]

// Where one invocation works: slice, image b, first channel ch0 of its tile, row y, column x0.
struct Tile {
    split: u32,
    b: u32,
    ch0: u32,
    y: u32,
    x0: u32,
}

// Splits the flat invocation index over [splits, batch, channels / OT, height, width / PT].
// Returns false for the padding invocations of the last workgroup.
fn locate(flat: u32, channels: u32, tile: ptr<function, Tile>) -> bool {
    let tiles_x = (p.width + PT - 1u) / PT;
    let tiles_c = channels / OT;
    let per_split = p.batch * tiles_c * p.height * tiles_x;
    if flat >= p.splits * per_split {
        return false;
    }
    (*tile).split = flat / per_split;
    var r = flat % per_split;
    (*tile).x0 = (r % tiles_x) * PT;
    r /= tiles_x;
    (*tile).y = r % p.height;
    r /= p.height;
    (*tile).ch0 = (r % tiles_c) * OT;
    (*tile).b = r / tiles_c;
    return true;
}

// Value of plane `plane` (= image * channels + channel) at (row, col), 0 outside the image.
fn src_at(plane: u32, row: i32, col: i32) -> f32 {
    if row < 0 || col < 0 || row >= i32(p.height) || col >= i32(p.width) {
        return 0.0;
    }
    return src[(plane * p.height + u32(row)) * p.width + u32(col)];
}

// This invocation's slice [begin, end) of a source list with `block` 3x3 sources first.
fn slice(tile: Tile, total: u32) -> vec2<u32> {
    let begin = min(tile.split * p.split_len, total);
    return vec2<u32>(begin, min(begin + p.split_len, total));
}

// Pointwise source j among `count` channels of which group g's block is skipped when masked.
fn pointwise_source(j: u32, g: u32, count: u32) -> u32 {
    let block = count / p.groups;
    if p.pointwise == 2u && j >= g * block {
        return j + block;
    }
    return j;
}

fn pointwise_len(count: u32) -> u32 {
    switch p.pointwise {
        case 1u: { return count; }
        case 2u: { return count - count / p.groups; }
        default: { return 0u; }
    }
}

fn store(tile: Tile, channels: u32, acc: ptr<function, array<f32, 16>>) {
    let slice_base = tile.split * p.batch * channels * p.height * p.width;
    for (var t = 0u; t < OT; t++) {
        let row_base = slice_base + ((tile.b * channels + tile.ch0 + t) * p.height + tile.y) * p.width;
        for (var px = 0u; px < PT; px++) {
            let col = tile.x0 + px;
            if col < p.width {
                var value = (*acc)[t * PT + px];
                if p.accumulate == 1u {
                    value += dst[row_base + col];
                }
                dst[row_base + col] = value;
            }
        }
    }
}

@compute @workgroup_size(WG)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    var tile: Tile;
    if !locate((wid.x + wid.y * nwg.x) * WG + lid, p.cout, &tile) {
        return;
    }
    let out_per_group = p.cout / p.groups;
    let in_per_group = p.cin / p.groups;
    let group = tile.ch0 / out_per_group;
    let block_lo = group * in_per_group;
    let block3 = select(0u, in_per_group, p.kernel3 == 1u);
    let range = slice(tile, block3 + pointwise_len(p.cin));
    var acc: array<f32, 16>;
    if p.has_bias == 1u && tile.split == 0u {
        for (var t = 0u; t < OT; t++) {
            for (var px = 0u; px < PT; px++) {
                acc[t * PT + px] = bias[tile.ch0 + t];
            }
        }
    }
    for (var s = range.x; s < min(range.y, block3); s++) {
        let c = block_lo + s;
        let plane = tile.b * p.cin + c;
        for (var ky = 0u; ky < 3u; ky++) {
            let row = i32(tile.y + ky) - 1;
            if row < 0 || row >= i32(p.height) {
                continue;
            }
            var xs: array<f32, 6>;
            for (var i = 0u; i < PT + 2u; i++) {
                xs[i] = src_at(plane, row, i32(tile.x0 + i) - 1);
            }
            for (var t = 0u; t < OT; t++) {
                let w = ((tile.ch0 + t) * in_per_group + s) * 9u + ky * 3u;
                let wa = w3[w];
                let wb = w3[w + 1u];
                let wc = w3[w + 2u];
                for (var px = 0u; px < PT; px++) {
                    let a = t * PT + px;
                    acc[a] = fma(wa, xs[px], fma(wb, xs[px + 1u], fma(wc, xs[px + 2u], acc[a])));
                }
            }
        }
    }
    for (var s = max(range.x, block3); s < range.y; s++) {
        let c = pointwise_source(s - block3, group, p.cin);
        let plane = tile.b * p.cin + c;
        var xs: array<f32, 4>;
        for (var px = 0u; px < PT; px++) {
            xs[px] = src_at(plane, i32(tile.y), i32(tile.x0 + px));
        }
        for (var t = 0u; t < OT; t++) {
            let w = w1[(tile.ch0 + t) * p.cin + c];
            for (var px = 0u; px < PT; px++) {
                acc[t * PT + px] = fma(w, xs[px], acc[t * PT + px]);
            }
        }
    }
    store(tile, p.cout, &acc);
}

// dx[b, c] = sum over the filters o that read channel c of the transposed, flipped taps.
@compute @workgroup_size(WG)
fn backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    var tile: Tile;
    if !locate((wid.x + wid.y * nwg.x) * WG + lid, p.cin, &tile) {
        return;
    }
    let out_per_group = p.cout / p.groups;
    let in_per_group = p.cin / p.groups;
    let group = tile.ch0 / in_per_group;
    let filters_lo = group * out_per_group;
    let first_in_block = tile.ch0 - group * in_per_group;
    let block3 = select(0u, out_per_group, p.kernel3 == 1u);
    let range = slice(tile, block3 + pointwise_len(p.cout));
    var acc: array<f32, 16>;
    for (var s = range.x; s < min(range.y, block3); s++) {
        let o = filters_lo + s;
        let plane = tile.b * p.cout + o;
        for (var ky = 0u; ky < 3u; ky++) {
            // Output row y + 1 - ky saw input row y through tap ky.
            let row = i32(tile.y + 1u) - i32(ky);
            if row < 0 || row >= i32(p.height) {
                continue;
            }
            var ds: array<f32, 6>;
            for (var i = 0u; i < PT + 2u; i++) {
                ds[i] = src_at(plane, row, i32(tile.x0 + i) - 1);
            }
            for (var t = 0u; t < OT; t++) {
                let w = (o * in_per_group + first_in_block + t) * 9u + ky * 3u;
                let wa = w3[w];
                let wb = w3[w + 1u];
                let wc = w3[w + 2u];
                for (var px = 0u; px < PT; px++) {
                    let a = t * PT + px;
                    acc[a] = fma(wa, ds[px + 2u], fma(wb, ds[px + 1u], fma(wc, ds[px], acc[a])));
                }
            }
        }
    }
    for (var s = max(range.x, block3); s < range.y; s++) {
        let o = pointwise_source(s - block3, group, p.cout);
        let plane = tile.b * p.cout + o;
        var ds: array<f32, 4>;
        for (var px = 0u; px < PT; px++) {
            ds[px] = src_at(plane, i32(tile.y), i32(tile.x0 + px));
        }
        for (var t = 0u; t < OT; t++) {
            let w = w1[o * p.cin + tile.ch0 + t];
            for (var px = 0u; px < PT; px++) {
                acc[t * PT + px] = fma(w, ds[px], acc[t * PT + px]);
            }
        }
    }
    store(tile, p.cin, &acc);
}
