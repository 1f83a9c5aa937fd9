// Conversions between f32 and f16 storage (mixed precision's boundaries: a model's input, a
// head kept in f32), after include/act_f16.wgsl (`act` = f16). f32 -> f16 rounds to a
// neighbouring f16 (WGSL leaves the direction to the device); f16 -> f32 is exact.

override WG: u32 = 64u;

struct Params {
    len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> wide_in: array<f32>;        // to_f16
@group(0) @binding(2) var<storage, read_write> narrow_out: array<act>; // to_f16
@group(0) @binding(3) var<storage, read> narrow_in: array<act>;      // to_f32
@group(0) @binding(4) var<storage, read_write> wide_out: array<f32>;  // to_f32

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn to_f16(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wid, nwg, lid);
    if i < p.len {
        narrow_out[i] = act(wide_in[i]);
    }
}

@compute @workgroup_size(WG)
fn to_f32(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wid, nwg, lid);
    if i < p.len {
        wide_out[i] = f32(narrow_in[i]);
    }
}
