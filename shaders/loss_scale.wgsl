// Dynamic loss scaling for mixed precision, with PyTorch GradScaler's semantics, kept on the GPU
// (no read-back inside a step). The state is four words:
//   [0] the scale (f32 bits), [1] clean steps since the scale last changed,
//   [2] 1 if this step's gradients hold a non-finite value, [3] steps skipped so far.
// A step: `scale_grad` multiplies the loss gradient by the scale; backward runs; `unscale`
// divides every gradient by it and raises [2] on an infinity or NaN; SGD skips its update while
// [2] is raised; `update` halves the scale and counts a skipped step if it was, else doubles
// the scale after GROWTH_INTERVAL clean steps, and lowers [2] for the next step.

override WG: u32 = 64u;

struct Params {
    len: u32,
    growth_interval: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: array<atomic<u32>, 4>;

fn scale() -> f32 {
    return bitcast<f32>(atomicLoad(&state[0]));
}

// An infinity or NaN: every exponent bit set.
fn is_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(WG)
fn scale_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if i < p.len {
        values[i] = values[i] * scale();
    }
}

@compute @workgroup_size(WG)
fn unscale(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if i < p.len {
        // The scale is a power of two: its inverse and the product are exact.
        let g = values[i] * (1.0 / scale());
        values[i] = g;
        if !is_finite(g) {
            atomicMax(&state[2], 1u);
        }
    }
}

@compute @workgroup_size(1)
fn update() {
    if atomicLoad(&state[2]) != 0u {
        atomicStore(&state[0], bitcast<u32>(scale() * 0.5));
        atomicStore(&state[1], 0u);
        atomicAdd(&state[3], 1u);
        atomicStore(&state[2], 0u);
        return;
    }
    let clean = atomicLoad(&state[1]) + 1u;
    if clean >= p.growth_interval {
        atomicStore(&state[0], bitcast<u32>(scale() * 2.0));
        atomicStore(&state[1], 0u);
    } else {
        atomicStore(&state[1], clean);
    }
}
