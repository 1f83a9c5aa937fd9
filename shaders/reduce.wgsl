// Deterministic reductions (fixed summation order, no atomics); the per-channel tree is
// include/workgroup_sum.wgsl. sum_splits adds f32 partials; sum_channels reads activations
// (`act`: include/act_f32.wgsl or act_f16.wgsl) and sums in f32.

override WG: u32 = 64u;

struct Params {
    len: u32,        // sum_splits: values per split; sum_channels: channels
    count: u32,      // sum_splits: number of splits; sum_channels: batch
    plane: u32,      // sum_channels: values per (image, channel)
    accumulate: u32, // 1: add to what dst holds
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> values: array<act>;  // sum_channels

// dst[i] (+)= sum_s src[s * len + i]
@compute @workgroup_size(WG)
fn sum_splits(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if i >= p.len {
        return;
    }
    var total = 0.0;
    for (var s = 0u; s < p.count; s++) {
        total += src[s * p.len + i];
    }
    if p.accumulate == 1u {
        total += dst[i];
    }
    dst[i] = total;
}

// dst[c] (+)= sum over images b and positions k of values[(b * len + c) * plane + k]:
// one workgroup per channel, a tree over its 64 lanes.
@compute @workgroup_size(LANES)
fn sum_channels(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let channel = wid.x + wid.y * nwg.x;
    // Uniform control flow: every lane of a workgroup takes the same branch.
    if channel >= p.len {
        return;
    }
    var total = 0.0;
    let n = p.count * p.plane;
    for (var i = lid; i < n; i += LANES) {
        let b = i / p.plane;
        total += f32(values[(b * p.len + channel) * p.plane + i % p.plane]);
    }
    let sum = workgroup_sum(lid, total);
    if lid == 0u {
        var value = sum;
        if p.accumulate == 1u {
            value += dst[channel];
        }
        dst[channel] = value;
    }
}
