// The GEMM core's cooperative-matrix inner loop (`shaders/gemm_core.wgsl` has the rest; a
// `coop*.wgsl` piece sets the fragment side S): the tile is (TM / S) x (TN / S) fragments,
// numbered row by row; subgroup s owns fragments s FRAGS .. (s + 1) FRAGS - 1 (the host makes
// FRAGS x subgroups the fragment count, FRAGS <= 8 and a divisor of TN / S: no branch on the
// subgroup, whose control flow must be uniform), so its fragments lie in one row of fragments
// and share one A fragment per reduction step, loaded once for all of them. Each is an f32
// accumulator fed by coopMultiplyAdd of f16 fragments loaded from the stages
// (A column-major, B row-major, strides padded to multiples of 8 halves = 16 bytes). The
// epilogue stores one fragment per subgroup at a time into its own S x S slot of `c_stage` and
// writes it through the role's epilogue, S * S / subgroup size values per invocation.
override FRAGS: u32 = 1u;  // fragments per subgroup (<= 8)
override C_LEN: u32 = 64u; // S * S * subgroups

var<workgroup> a_tile: array<operand, A_LEN>;  // [KC][A_STRIDE]: A_STRIDE >= TM
var<workgroup> b_tile: array<operand, B_LEN>;  // [KC][B_STRIDE]: B_STRIDE >= TN
var<workgroup> c_stage: array<f32, C_LEN>;

fn put_a(i: u32, v: operand) {
    a_tile[i] = v;
}

fn put_b(i: u32, v: operand) {
    b_tile[i] = v;
}

@compute @workgroup_size(WG)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) lanes: u32,
) {
    let job = job_of(wid, nwg);
    let frags_n = TN / S;
    let first = sg * FRAGS;
    // This subgroup's row of fragments, and the column of its first.
    let m0 = (first / frags_n) * S;
    let n_first = (first % frags_n) * S;
    var q = column_pixel(job, lid);
    var acc: array<coop_c, 8>;
    for (var k0 = job.red_lo; k0 < job.red_hi; k0 += KC) {
        q = stage(job, k0, lid, q);
        workgroupBarrier();
        for (var kk = 0u; kk < KC; kk += S) {
            let a = coopLoad<coop_a>(&a_tile[kk * A_STRIDE + m0], A_STRIDE);
            for (var i = 0u; i < FRAGS; i++) {
                let b = coopLoadT<coop_b>(&b_tile[kk * B_STRIDE + n_first + i * S], B_STRIDE);
                acc[i] = coopMultiplyAdd(a, b, acc[i]);
            }
        }
        workgroupBarrier();
    }
    let slot = sg * S * S;
    for (var i = 0u; i < FRAGS; i++) {
        coopStoreT(acc[i], &c_stage[slot], S);
        workgroupBarrier();
        let row0 = job.row0 + m0;
        let n0 = job.col0 + n_first + i * S;
        // A lane keeps its column where the subgroup's size is a multiple of S: the dst index's
        // column part is then found once per fragment.
        let lane_base = column_base(n0 + lane % S);
        for (var e = lane; e < S * S; e += lanes) {
            // Row-major: element (r, c) of the fragment at r * S + c, so that neighbouring
            // lanes write neighbouring columns.
            let col = n0 + e % S;
            var base = lane_base;
            if lanes % S != 0u {
                base = column_base(col);
            }
            store_checked(job, row0 + e / S, col, base, c_stage[slot + e]);
        }
        workgroupBarrier();
    }
}
