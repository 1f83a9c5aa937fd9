// The GEMM core's FMA inner loop (`shaders/gemm_core.wgsl` has the rest): each invocation
// accumulates RM x RN outputs in f32, at rows tr + i * (TM / RM) and columns tc + j * (TN / RN)
// of the tile (strided, so that neighbouring invocations read neighbouring workgroup-memory
// words and write neighbouring columns). The product of two staged operands is exact in f32
// (also of two f16 values), so only the staging and the f32 sums round.
@compute @workgroup_size(WG)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let job = job_of(wid, nwg);
    let row_step = TM / RM;
    let col_step = TN / RN;
    let tr = lid / col_step;
    let tc = lid % col_step;
    var q = column_pixel(job, lid);
    var acc: array<f32, 64>;
    for (var k0 = job.red_lo; k0 < job.red_hi; k0 += KC) {
        q = stage(job, k0, lid, q);
        workgroupBarrier();
        for (var kk = 0u; kk < KC; kk++) {
            var a: array<f32, 8>;
            var b: array<f32, 8>;
            for (var i = 0u; i < RM; i++) {
                a[i] = f32(a_tile[kk * A_STRIDE + tr + i * row_step]);
            }
            for (var j = 0u; j < RN; j++) {
                b[j] = f32(b_tile[kk * B_STRIDE + tc + j * col_step]);
            }
            for (var i = 0u; i < RM; i++) {
                for (var j = 0u; j < RN; j++) {
                    acc[i * RN + j] = fma(a[i], b[j], acc[i * RN + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < RM; i++) {
        for (var j = 0u; j < RN; j++) {
            let row = job.row0 + tr + i * row_step;
            store_checked(job, row, job.col0 + tc + j * col_step, acc[i * RN + j]);
        }
    }
}
