// The GEMM core's cooperative-matrix inner loop (`shaders/gemm_core.wgsl` has the rest; a
// `coop*.wgsl` piece sets the fragment side S): the tile is (TM / S) x (TN / S) fragments;
// subgroup s of n owns fragments s, s + n, ..., s + (FRAGS - 1) n (the host makes FRAGS * n the
// fragment count, FRAGS <= 8: no branch on the subgroup, whose control flow must be uniform),
// each an f32 accumulator fed by coopMultiplyAdd of f16 fragments loaded from the stages
// (A column-major, B row-major, strides padded to multiples of 8 halves = 16 bytes). The
// epilogue stores one fragment per subgroup at a time into its own S x S slot of `c_stage` and
// writes it through the role's epilogue, S * S / subgroup size values per invocation.
override FRAGS: u32 = 1u;  // fragments per subgroup (<= 8)
override C_LEN: u32 = 64u; // S * S * subgroups

var<workgroup> c_stage: array<f32, C_LEN>;

@compute @workgroup_size(WG)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(num_subgroups) subgroups: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) lanes: u32,
) {
    let job = job_of(wid, nwg);
    let frags_m = TM / S;
    var q = column_pixel(job, lid);
    var acc: array<coop_c, 8>;
    for (var k0 = job.red_lo; k0 < job.red_hi; k0 += KC) {
        q = stage(job, k0, lid, q);
        workgroupBarrier();
        for (var i = 0u; i < FRAGS; i++) {
            let f = sg + i * subgroups;
            let m0 = (f % frags_m) * S;
            let n0 = (f / frags_m) * S;
            for (var kk = 0u; kk < KC; kk += S) {
                let a = coopLoad<coop_a>(&a_tile[kk * A_STRIDE + m0], A_STRIDE);
                let b = coopLoadT<coop_b>(&b_tile[kk * B_STRIDE + n0], B_STRIDE);
                acc[i] = coopMultiplyAdd(a, b, acc[i]);
            }
        }
        workgroupBarrier();
    }
    let slot = sg * S * S;
    for (var i = 0u; i < FRAGS; i++) {
        let f = sg + i * subgroups;
        coopStoreT(acc[i], &c_stage[slot], S);
        workgroupBarrier();
        let m0 = job.row0 + (f % frags_m) * S;
        let n0 = job.col0 + (f / frags_m) * S;
        for (var e = lane; e < S * S; e += lanes) {
            // Row-major: element (r, c) of the fragment at r * S + c, so that neighbouring
            // lanes write neighbouring columns.
            store_checked(job, m0 + e / S, n0 + e % S, c_stage[slot + e]);
        }
        workgroupBarrier();
    }
}
