// Included before the shaders that reduce one channel per workgroup (see src/shaders.rs):
// a fixed-order tree sum over LANES invocations, so results do not depend on scheduling.

const LANES: u32 = 64u;

var<workgroup> lanes: array<f32, LANES>;

// Sum of `value` over the workgroup; every lane gets the result. Call it in uniform control flow.
fn workgroup_sum(lid: u32, value: f32) -> f32 {
    lanes[lid] = value;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            lanes[lid] += lanes[lid + stride];
        }
        workgroupBarrier();
    }
    let total = lanes[0];
    workgroupBarrier();
    return total;
}

