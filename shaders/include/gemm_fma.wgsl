// The GEMM core's FMA inner loop (`shaders/gemm_core.wgsl` has the rest): each invocation
// accumulates RM x RN outputs in f32. The stages hold vec4s of operands (strides multiples of
// 4), and an invocation reads its B values four at a time (RN is 4 or 8), as its A values where
// RM is a multiple of 4: its columns are 4 tc .. 4 tc + 3 in each of the RN / 4 bands of
// 4 (TN / RN) columns (rows alike), so that neighbouring invocations read neighbouring vec4s;
// with RM below 4 its rows are tr + i (TM / RM), read one operand at a time. The product of
// two staged operands is exact in f32 (also of two f16 values), so only the staging and the
// f32 sums round.
const K_CONTIGUOUS: bool = false; // a stage row per reduction step: [KC][A_STRIDE], [KC][B_STRIDE]
override A_VLEN: u32 = 272u;  // A_LEN / 4
override B_VLEN: u32 = 272u;  // B_LEN / 4

var<workgroup> a_tile: array<vec4<operand>, A_VLEN>;  // [KC][A_STRIDE] operands
var<workgroup> b_tile: array<vec4<operand>, B_VLEN>;  // [KC][B_STRIDE] operands

// Stage entries by quad and lane (`stage_slot`).
fn put_a(slot: vec3<u32>, v: operand) {
    a_tile[slot.x][slot.y] = v;
}

fn put_b(slot: vec3<u32>, v: operand) {
    b_tile[slot.x][slot.y] = v;
}

// The tile row (column) of an invocation's i-th row (column): `t` is its index among the
// `n` = TM / RM (TN / RN) invocations along that side, `r` its RM (RN).
fn tile_index(i: u32, t: u32, n: u32, r: u32) -> u32 {
    if r % 4u == 0u {
        return (i / 4u) * 4u * n + 4u * t + i % 4u;
    }
    return t + i * n;
}

// An invocation's RM A operands of stage row kk (t: its tr), in `tile_index`'s order.
fn read_a(kk: u32, t: u32) -> array<f32, 8> {
    var out: array<f32, 8>;
    let n = TM / RM;
    if RM % 4u == 0u {
        for (var v = 0u; v < RM / 4u; v++) {
            let q = vec4<f32>(a_tile[(kk * A_STRIDE) / 4u + v * n + t]);
            for (var c = 0u; c < 4u; c++) {
                out[4u * v + c] = q[c];
            }
        }
    } else {
        for (var i = 0u; i < RM; i++) {
            let e = kk * A_STRIDE + t + i * n;
            out[i] = f32(a_tile[e / 4u][e % 4u]);
        }
    }
    return out;
}

// Its RN B operands of stage row kk (t: its tc), in `tile_index`'s order (RN % 4 == 0).
fn read_b(kk: u32, t: u32) -> array<f32, 8> {
    var out: array<f32, 8>;
    let n = TN / RN;
    for (var v = 0u; v < RN / 4u; v++) {
        let q = vec4<f32>(b_tile[(kk * B_STRIDE) / 4u + v * n + t]);
        for (var c = 0u; c < 4u; c++) {
            out[4u * v + c] = q[c];
        }
    }
    return out;
}

@compute @workgroup_size(WG)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let job = job_of(wid, nwg);
    let col_step = TN / RN;
    let tr = lid / col_step;
    let tc = lid % col_step;
    var q = column_pixel(job, lid);
    first_taps(job, lid);
    workgroupBarrier();
    var acc: array<f32, 64>;
    for (var k0 = job.red_lo; k0 < job.red_hi; k0 += KC) {
        q = stage(job, k0, lid, q);
        workgroupBarrier();
        for (var kk = 0u; kk < KC; kk++) {
            let a = read_a(kk, tr);
            let b = read_b(kk, tc);
            for (var i = 0u; i < RM; i++) {
                for (var j = 0u; j < RN; j++) {
                    acc[i * RN + j] = fma(a[i], b[j], acc[i * RN + j]);
                }
            }
        }
        workgroupBarrier();
    }
    // Column by column: the dst index's column part is found once for the RM rows.
    for (var j = 0u; j < RN; j++) {
        let col = job.col0 + tile_index(j, tc, TN / RN, RN);
        let base = column_base(col);
        for (var i = 0u; i < RM; i++) {
            let row = job.row0 + tile_index(i, tr, TM / RM, RM);
            store_checked(job, row, col, base, acc[i * RN + j]);
        }
    }
}
