// The GEMM core's cooperative-matrix inner loop (`shaders/gemm_core.wgsl` has the rest; a
// `coop*.wgsl` piece sets the fragment side S): the tile is (TM / S) x (TN / S) fragments, cut into
// `blocks` blocks of FRAG_ROWS x FRAG_COLS fragments numbered row by row, one per subgroup when
// subgroups are as small as the adapter allows; where the driver makes them wider, there are fewer
// subgroups and subgroup s owns blocks s, s + subgroups, ... (the host makes the blocks tile the
// tile, at most 8 fragments per subgroup at the widest: no branch on the subgroup, whose control
// flow must be uniform). Per reduction step a subgroup loads the A fragments of a block's rows and
// the B fragments of its columns once each and multiplies every pair (a 2 x 4 block: 6 loads for 8
// products). Each fragment is an f32 accumulator fed by coopMultiplyAdd of f16 fragments loaded
// from the stages, which keep reduction steps contiguous (K_CONTIGUOUS: A row-major [TM][A_STRIDE],
// B column-major [TN][B_STRIDE], strides KC plus 8 halves, multiples of 16 bytes and an odd number
// of 16-byte units where KC is a multiple of 16): the layout a tensor core's fragment holds in each
// lane (pairs of reduction steps on NVIDIA, runs of them on AMD), so that a fragment loads without
// a transpose (the 4-way bank conflicts of 16-bit stores that fill neighbouring rows at one step
// move from A's stores to B's in roles 0, 1 and 3). The epilogue stores one fragment per subgroup
// at a time into its own S x S slot of `c_stage` and writes it through the role's epilogue, S * S /
// subgroup size values per invocation.
override FRAG_ROWS: u32 = 1u; // fragment rows per block
override FRAG_COLS: u32 = 1u; // fragment columns per block (blocks owned x FRAG_ROWS x FRAG_COLS <= 8)
override C_LEN: u32 = 64u;    // S * S * blocks (a slot per subgroup at most)

const K_CONTIGUOUS: bool = true;
var<workgroup> a_tile: array<operand, A_LEN>;  // [TM][A_STRIDE]: A_STRIDE >= KC
var<workgroup> b_tile: array<operand, B_LEN>;  // [TN][B_STRIDE]: B_STRIDE >= KC
var<workgroup> c_stage: array<f32, C_LEN>;

// Stage entries by element (`stage_slot`).
fn put_a(slot: vec3<u32>, v: operand) {
    a_tile[slot.z] = v;
}

fn put_b(slot: vec3<u32>, v: operand) {
    b_tile[slot.z] = v;
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
    let blocks_n = TN / (S * FRAG_COLS);
    let blocks = (TM / (S * FRAG_ROWS)) * blocks_n;
    // The blocks this subgroup owns: sg + r * subgroups for r < owned (subgroups divides
    // `blocks`, as both are WG over a power of two, the subgroup size being the larger).
    let subgroups = WG / lanes;
    let owned = blocks / subgroups;
    var q = column_pixel(job, lid);
    first_taps(job, lid);
    workgroupBarrier();
    var acc: array<coop_c, 8>; // fragment (i, j) of owned block r at (r * FRAG_ROWS + i) * FRAG_COLS + j
    var a: array<coop_a, 8>; // the A fragments of a block's rows, per reduction step
    for (var k0 = job.red_lo; k0 < job.red_hi; k0 += KC) {
        q = stage(job, k0, lid, q);
        workgroupBarrier();
        for (var kk = 0u; kk < KC; kk += S) {
            // Up to the most blocks a subgroup can hold, a constant, so that the loop unrolls
            // and every acc index is a constant: `owned` comes from the subgroup size.
            for (var r = 0u; r < 8u / (FRAG_ROWS * FRAG_COLS); r++) {
                if r >= owned {
                    break;
                }
                // The block's first row and first column in the tile.
                let block = sg + r * subgroups;
                let m0 = (block / blocks_n) * FRAG_ROWS * S;
                let n0 = (block % blocks_n) * FRAG_COLS * S;
                for (var i = 0u; i < FRAG_ROWS; i++) {
                    a[i] = coopLoadT<coop_a>(&a_tile[(m0 + i * S) * A_STRIDE + kk], A_STRIDE);
                }
                for (var j = 0u; j < FRAG_COLS; j++) {
                    let b = coopLoad<coop_b>(&b_tile[(n0 + j * S) * B_STRIDE + kk], B_STRIDE);
                    for (var i = 0u; i < FRAG_ROWS; i++) {
                        let f = (r * FRAG_ROWS + i) * FRAG_COLS + j;
                        acc[f] = coopMultiplyAdd(a[i], b, acc[f]);
                    }
                }
            }
        }
        workgroupBarrier();
    }
    let slot = sg * S * S;
    for (var f = 0u; f < owned * FRAG_ROWS * FRAG_COLS; f++) {
        // acc[f] by a constant index in each case: a loop holding a barrier is not unrolled,
        // and some compilers (Mesa's NAK) keep a dynamically indexed array of fragments in
        // local memory, loading and storing the accumulators around every product.
        switch f {
            case 0u: { coopStoreT(acc[0], &c_stage[slot], S); }
            case 1u: { coopStoreT(acc[1], &c_stage[slot], S); }
            case 2u: { coopStoreT(acc[2], &c_stage[slot], S); }
            case 3u: { coopStoreT(acc[3], &c_stage[slot], S); }
            case 4u: { coopStoreT(acc[4], &c_stage[slot], S); }
            case 5u: { coopStoreT(acc[5], &c_stage[slot], S); }
            case 6u: { coopStoreT(acc[6], &c_stage[slot], S); }
            default: { coopStoreT(acc[7], &c_stage[slot], S); }
        }
        workgroupBarrier();
        let block = sg + (f / (FRAG_ROWS * FRAG_COLS)) * subgroups;
        let in_block = f % (FRAG_ROWS * FRAG_COLS);
        let row0 = job.row0 + (block / blocks_n) * FRAG_ROWS * S + (in_block / FRAG_COLS) * S;
        let col0 = job.col0 + (block % blocks_n) * FRAG_COLS * S + (in_block % FRAG_COLS) * S;
        // A lane keeps its column where the subgroup's size is a multiple of S: the dst index's
        // column part is then found once per fragment.
        let lane_base = column_base(col0 + lane % S);
        for (var e = lane; e < S * S; e += lanes) {
            // Row-major: element (r, c) of the fragment at r * S + c, so that neighbouring
            // lanes write neighbouring columns.
            let col = col0 + e % S;
            var base = lane_base;
            if lanes % S != 0u {
                base = column_base(col);
            }
            store_checked(job, row0 + e / S, col, base, c_stage[slot + e]);
        }
        workgroupBarrier();
    }
}
