// Dynamic loss scaling for mixed precision, with PyTorch GradScaler's semantics, kept on the GPU
// (no read-back inside a step). The state is four words:
//   [0] the scale (f32 bits), [1] clean steps since the scale last changed,
//   [2] 1 if this step's gradients hold a non-finite value, [3] steps skipped so far.
// A step: `scale_grad` multiplies the loss gradient by the scale; backward runs; `unscale`
// divides every gradient by it and raises [2] on an infinity or NaN; SGD skips its update while
// [2] is raised; `update` halves the scale and counts a skipped step if it was, else doubles
// the scale after GROWTH_INTERVAL clean steps (unless the double is not finite: the scale then
// stays, as GradScaler's does), and lowers [2] for the next step. `is_finite`:
// include/finite.wgsl.

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
        let grown = scale() * 2.0;
        if is_finite(grown) {
            atomicStore(&state[0], bitcast<u32>(grown));
        }
        atomicStore(&state[1], 0u);
    } else {
        atomicStore(&state[1], clean);
    }
}
