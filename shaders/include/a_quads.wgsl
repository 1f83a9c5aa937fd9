// The GEMM core's A staging a vec4 at a time (`shaders/gemm_core.wgsl` has the rest): 4
// reduction steps of one row of A per read. For the forward pass and the weight gradient with
// A_KFAST, where the host found each row of A in its binding as whole aligned vec4s (see the
// core's bounds argument); the operand bindings 2 to 4 hold vec4s, element e at [e / 4][e % 4]
// (the host binds whole 16-byte units).
const A_QUADS: u32 = 1u;

@group(0) @binding(2) var<storage, read> src2: array<vec4<act>>;  // dy (role 2), b (role 3)
@group(0) @binding(3) var<storage, read> w3: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> w1: array<vec4<f32>>;

// Element i of src2.
fn src2_at(i: u32) -> act {
    return src2[i / 4u][i % 4u];
}

// A[row, k .. k + 4] for row `row` of column `c` (`a_column` of k, a multiple of 4) as one
// vec4 (c.base and c.stride are multiples of 4 and the 4 steps consecutive in one row of the
// binding), or 0 where `ok` is false: read at index 0 and selected away, in the type the
// binding holds, then converted to `operand`.
fn a_quad(c: AColumn, row: u32, ok: bool) -> vec4<operand> {
    let i = select(0u, (c.base + row * c.stride) / 4u, ok);
    if ROLE == 2u {
        return vec4<operand>(select(vec4<act>(), src2[i], ok));
    }
    var w: vec4<f32>;
    if c.in_w3 {
        w = w3[i];
    } else {
        w = w1[i];
    }
    return vec4<operand>(select(vec4<f32>(), w, ok));
}

// `stage`'s A part: the invocation's quad of steps `a_lane` .. + 3 (its column `fixed`) over
// rows first.y + i step.y: entry (kk + j, m) is entry (kk, m)'s slot plus j stage rows, or
// where the stages keep reduction steps contiguous (K_CONTIGUOUS) plus j elements, the quad's
// 4 neighbours.
fn stage_a(job: Job, k0: u32, lid: u32, q: Pixel, full: bool, fixed: AColumn) {
    let order = Walk(vec2<u32>(a_lane(lid), lid / (KC / 4u)), vec2<u32>(0u, 4u * WG / KC));
    let quads = A_STRIDE / 4u;
    for (var i = 0u; i < KC * TM / (4u * WG); i++) {
        let m = order.first.y + i * order.step.y;
        let ok = full | ((job.row0 + m < p.rows) & (k0 + order.first.x < job.red_hi));
        let v = a_quad(fixed, job.row0 + m, ok);
        let slot = stage_slot(order, i, A_STRIDE);
        for (var j = 0u; j < 4u; j++) {
            let rows_on = vec3<u32>(j * quads, 0u, j * A_STRIDE);
            put_a(slot + select(rows_on, vec3<u32>(0u, 0u, j), K_CONTIGUOUS), v[j]);
        }
    }
}
