// One register-tiled GEMM core for the conv family and the linear layer (the tfjs-webgpu
// pattern): C[row, col] = sum_k A[row, k] * B[k, col] for each group g of a batched product,
// with the operand gathers and the epilogue chosen by the override constant ROLE:
//   0 conv forward:         rows = filters of g, cols = output pixels, k = own block's KS x KS
//                           taps, then the 1x1 channels (all, or all outside the block when
//                           masked)
//   1 conv input gradient:  rows = input channels of g, cols = input pixels, k = the filters that
//                           read them (transposed taps; with a stride, a tap that no output
//                           pixel used gives 0), then the 1x1 filters
//   2 conv weight gradient: rows = filters of g, cols = the forward k space, k = the output
//                           pixels of one split (split-K partial products;
//                           `scatter_weight_grad` sums them)
//   3 matmul:               rows = m, cols = n, k = k (either operand may be stored transposed)
// In roles 0, 1 and 3 the host may split k too (products of few tiles: small maps, small
// batches): each split writes partial products and `sum_splits` adds them in a fixed order and
// applies the epilogue.
// A masked block is not in k at all: it is skipped, never multiplied. The spatial kernel (KS,
// PAD, TAPS) comes from include/conv_geometry.wgsl, which precedes this file; the stride is a
// uniform, so that layers of every stride share one pipeline per tile, but for the input
// gradient's gather at a stride over 1 (STRIDED = 1, set by the host exactly when role 1's
// stride is over 1: the stride-1 pipeline then carries none of its code or registers).
//
// Composition: an activation piece from `include/` comes first and defines `act`, how the
// activations (src, src2, dst) are stored (`act_f32`, or `act_f16` for mixed precision's f16
// activations); then a precision piece that defines `operand`, the type of the workgroup stages
// (`operand_f32`, `operand_f16`, or `coop8` / `coop16`, which also define the cooperative-matrix
// types), then an inner loop with the `gemm` entry point (`gemm_fma`: per-invocation register
// tiles, or `gemm_coop`: cooperative matrices), then an A piece that declares bindings 2 to 4
// and stages A (`a_scalar`: a value at a time, every role; `a_quads`: 4 reduction steps of a
// row at a time, with A_QUADS = 1, for the forward pass and the weight gradient where the host
// found A's rows in aligned quads), then this file: the operand gathers, the
// epilogue and the staging they share. Gathers convert what they read to `operand` once (so
// f16 activations staged as f16 operands are never converted); the epilogue adds in f32 and
// rounds to `act` once. Weights, bias and the weight gradient's partials are f32.
//
// Tiles: each workgroup computes TM x TN of one group's C. A and B are staged KC reduction steps at
// a time in workgroup memory, as operands: [KC][A_STRIDE] and [KC][B_STRIDE] with strides A_STRIDE
// >= TM and B_STRIDE >= TN, or where the inner loop keeps reduction steps contiguous (its constant
// K_CONTIGUOUS: the cooperative loop) [TM][A_STRIDE] and [TN][B_STRIDE] with both strides >= KC;
// padded against bank conflicts in the inner loop's reads (stores that fill neighbouring stage rows
// from neighbouring lanes still meet conflicts, 4-way in the cooperative tiles: A's with A_KFAST
// without K_CONTIGUOUS, B's in roles 0, 1 and 3 with it). The host guarantees: WG divisible by TM,
// TN and KC, KC * TM and KC * TN divisible by WG, A_LEN and B_LEN the stages' rows times their
// strides, TAB_LEN = max(2 KC, TN), B_KFAST = 0 in roles 0 and 1, A_KFAST = B_KFAST = 1 in role 2
// (so that the pixel of an invocation's fixed reduction step is the one its A and B values use);
// for `gemm_fma` WG = (TM / RM) * (TN / RN), RM at most 8, RN 4 or 8, TM and TN multiples of 4,
// both strides multiples of 4, A_VLEN = A_LEN / 4 and B_VLEN = B_LEN / 4; for `gemm_coop` TM, TN
// and KC multiples of S, both strides multiples of 8, WG a multiple of the largest subgroup size,
// FRAG_ROWS dividing TM / S and FRAG_COLS dividing TN / S, (TM / (S FRAG_ROWS)) (TN / (S
// FRAG_COLS)) = WG / the smallest subgroup size, FRAG_ROWS FRAG_COLS (largest / smallest) <= 8, and
// C_LEN = S * S * WG / the smallest subgroup size.
// With those, each invocation loads B values of one fixed column (roles 0, 1: a pixel decoded
// and its taps' bounds found once per tile) or of one fixed reduction step (role 2: once per
// stage), and the channel and tap of each reduction entry (role 0, role 1 at stride 1) or
// column (role 2) are found once per workgroup into the `taps` table (the CUTLASS "optimized
// iterator" idea), so an im2col value costs a table read, a mask test and one add: no
// division per element (role 1 at a stride over 1 still divides, in `strided_tap`). Where an
// invocation loads one fixed reduction step of A (A_KFAST), that column's index is found once
// per stage too (`a_column`).
//
// Bounds (the argument that lets native builds create this module without wgpu's runtime
// checks; the host's side is `dispatch` in src/kernels/gemm_core/mod.rs, with the tiles' layout
// rules in tiles.rs):
// - Workgroup stages: `a_scalar`'s `stage_a` stages element e = lid + i WG (i < KC TM / WG)
//   of A as kk = e / TM = lid / TM + i (WG / TM), m = e % TM = lid % TM (exact as WG is a
//   multiple of TM), or with A_KFAST kk = `reduction_lane`(lid) = lid % KC = e % KC and
//   m = e / KC = lid / KC + i (WG / KC) (WG a multiple of KC), so kk < KC and m < TM since
//   e < KC TM (`stage` alike for B with TN, and lid % TN, lid / TN + i (WG / TN) without
//   B_KFAST, WG a multiple of TN; with K_CONTIGUOUS and without the KFAST flag, kk = (lid / TM)
//   (KC TM / WG) + i instead, below (WG / TM) (KC TM / WG) = KC); kk < KC and m < TM (n < TN)
//   give element kk * A_STRIDE + m < KC A_STRIDE = A_LEN (B_LEN), or with K_CONTIGUOUS
//   m * A_STRIDE + kk < TM A_STRIDE = A_LEN, which `stage_slot` returns as z (the only form
//   the cooperative loop uses), and (for `gemm_fma`) as quad x = (kk * A_STRIDE + m) / 4
//   and lane y = m % 4 (the stride is a multiple of 4; with step.y a multiple of 4, base + i
//   (step.x * quads + step.y / 4) is that same quad of kk = first.x + i step.x, m = first.y +
//   i step.y). `a_quads`'s `stage_a` (A_QUADS = 1, A_KFAST; the host: KC a multiple of 4 and KC TM
//   of 4 WG) stages quad e = lid + i WG (i < KC TM / (4 WG)) as kk = 4 (e % (KC / 4)) =
//   `a_lane`(lid) and m = e / (KC / 4) = lid / (KC / 4) + i (4 WG / KC) (WG a multiple of KC / 4),
//   so kk + 3 < KC and m < TM, its 4 values at entries (kk + j, m), `stage_slot`'s slot plus j rows
//   (with K_CONTIGUOUS plus j elements). There `reduction_lane` permutes the steps lid % KC among
//   themselves (a function of lid % KC that is a bijection of 0 .. KC), so the B_KFAST walk covers
//   the same entries.
//   `gemm_fma` keeps them as vec4s, element e at [e / 4][e % 4], e / 4 < A_LEN / 4 = A_VLEN,
//   and reads vec4 (kk * A_STRIDE) / 4 + v * (TM / RM) + tr for v < RM / 4 and tr < TM / RM:
//   operands 4 of those up to kk * A_STRIDE + TM - 1 < A_LEN (B alike, TN, RN, tc).
//   A cooperative fragment load covers kk .. kk + S <= KC and m0 .. m0 + S <= TM (n0, TN), so
//   its last element (m0 + S - 1) * A_STRIDE + kk + S - 1 < TM * A_STRIDE = A_LEN (B_LEN, TN).
//   A subgroup's blocks sg + r * subgroups (r < owned = BLOCKS / subgroups, subgroups = WG /
//   subgroup size) are below the block count BLOCKS = (TM / (S FRAG_ROWS)) (TN / (S
//   FRAG_COLS)) = WG / (the smallest subgroup size) (the host lays the blocks out for it; a
//   wider subgroup size is a power-of-two multiple of it, so subgroups divides BLOCKS), so a
//   block's row block / blocks_n < TM / (S FRAG_ROWS) and its first row m0 <= TM - S
//   FRAG_ROWS: fragment row m0 + i S (i < FRAG_ROWS) ends by TM; columns alike (block %
//   blocks_n, TN).
// - Private arrays: i < RM <= 8, j < RN <= 8, so acc[i * RN + j] < 64, a[i], b[j] < 8 (read_a
//   and read_b fill out[4 v + c] for v < RM / 4 (RN / 4) and c < 4, below 8); the
//   cooperative fragments a[i]: i < FRAG_ROWS <= 8 and acc[(r * FRAG_ROWS + i) * FRAG_COLS +
//   j]: below owned FRAG_ROWS FRAG_COLS <= 8 (the host's bound at the widest subgroup size,
//   where owned is largest).
// - c_stage: subgroup ids are below WG / subgroup size <= BLOCKS = C_LEN / (S * S) and
//   e < S * S, so slot + e < C_LEN.
// - Every global read of the gathers (`a_value` or `a_quad`, `b_value`, `read_tap`,
//   `strided_tap`) is at
//   index 0 of its binding, in range as every binding they read holds a value (the host
//   dispatches nothing when rows or cols are 0, refuses convs with an empty map or no
//   channels, and binds a placeholder of 4 values for an absent part or operand; a matrix
//   product with k = 0 has red_hi = red_lo, so no stage reads), or
//   happens for row < rows, col < cols, k < red_hi (edge tiles check
//   them; a tile is interior only if all of its rows and columns are in range, and `full` adds
//   k0 + KC <= red_hi; B values read through `taps` check them as mask bits: an entry at
//   k >= red_hi (roles 0, 1) or col >= cols (role 2) is `outside()`, whose bits no mask has,
//   and a column >= cols (roles 0, 1; `column_pixel`) or a reduction step >= red_hi (role 2)
//   has a pixel with no mask bit set). For such (row, k, col): weights index o < cout
//   (role 0: o = g * rows + row with g < groups, rows = cout / groups; role 1: o = g * opg +
//   k / TAPS, or the pointwise filter of k, and row < cpg) times their row lengths (an A
//   index is `a_column`'s base of k plus row * stride: the sum is that index); a
//   tapped value is read only inside its map: through `taps`, where bit t = ty KS + tx of
//   the pixel's `inside` is set, which `with_taps` sets exactly when tap row y0 + dir * ty
//   and column x0 + dir * tx are both inside the map (ty, tx < KS <= 7, ConvKind::MAX_KERNEL,
//   so t < 49 < 64), and then at index base + channel * plane + dir * (ty * map width + tx)
//   (`locate`), that row and column of the channel's map; `strided_tap` (role 1 with
//   STRIDED) checks dy's row and column against out_height and out_width (either value of
//   STRIDED keeps the reads in range; the results need the host's); of an image <
//   batch (col or k < batch * the pixels of its space, which is the map the image index is
//   decoded in) and a channel < cin (cout); a spatial tap index is < TAPS (k % TAPS); role 3
//   reads a[m, k], b[k, n] within m * k and k * n; bias is read only when the host bound one
//   of cout (role 3: n) values. `a_quads` binds src2, w3 and w1 as vec4s; the host binds
//   every tensor over whole 16-byte units (its range rounded up to 16 bytes, within its
//   buffer), so element i < the values the tensor holds is in vec4 i / 4, inside the
//   binding. `a_quad` reads the vec4 of elements i .. i + 3 for i the index of A[row, k] (a
//   multiple of 4), those of A[row, k .. k + 3], which lie in that row and are in range when
//   k < red_hi: the host uses `a_quads` only where a row's steps in one binding come in
//   aligned quads (role 0: cpg a multiple of 4, so that the 3x3 row length cpg TAPS, cin and
//   the masked block's edges g cpg are too; role 2: the pixel plane a multiple of 4, so that
//   a quad of pixels is in one image), and red_hi (a split's end, or red) is a multiple of 4
//   there.
// - `taps`: roles 0 and 1 read and write entries slot * KC + kk with slot < 2 and kk < KC,
//   role 2 entries n < TN, both below TAB_LEN = max(2 KC, TN); each entry a stage reads was
//   written first (by `first_taps`, or by the previous stage, across a barrier), since
//   invocations lid < KC (role 2: lid < TN) fill all of a half (of the columns) and WG is a
//   multiple of KC and TN.
// - Writes: the same (row, col) conditions, for a split < splits; partials (role 2, or any
//   role with splits > 1) are bound with splits * groups * rows * cols values (role 2: groups
//   * rows = cout), and (split * groups * rows + g * rows + row) * cols + col is below that.
//   sum_splits reads partials only for i < groups * rows * cols (so (s * groups * rows + r) *
//   cols + col with s < splits, r < groups * rows, col < cols is in range) and writes dst at
//   the epilogue's index of (r % rows, col, group r / rows), as the single-pass store does.
//   That index is column_base(col) + channel * plane, which equals ((image * channels +
//   channel) * H + y) * W + x; a column outside the product gets a column_base too (u32
//   arithmetic wraps in WGSL), which no write uses.
//   scatter_weight_grad writes grad3 only for i < n3 (0 when there is no 3x3 part) and grad1
//   only for i - n3 < n1.
// - No u32 product wraps: the host binds under 2^32 bytes (Context::max_binding_bytes, which
//   every tensor and the partials are sized within), so every index above that is below a
//   binding's element count is below 2^31. Only a spare workgroup's red_lo (split >= splits)
//   and the column_base of a column outside the product may wrap, and neither indexes
//   anything read or written: red_hi = red_lo makes that reduction empty (its `first_taps`
//   may locate a meaningless k, written in range to `taps` and never read), and no write uses
//   that base. `a_column` of a step outside the reduction (k >= red_hi) may be meaningless
//   too: its values are read at index 0 and discarded (its `in_w3` only picks which of w3[0]
//   and w1[0]).
// - Divisors: tiles_m, tiles_n and groups are non-zero in every role, and so are rows and cols
//   (the host dispatches nothing, sum_splits included, when rows or cols are 0); width, height, cin, cpg and opg in the conv roles (the host
//   refuses empty shapes; role 3 never divides by them), and out_height, out_width (at least 1
//   for a non-empty input) and stride (ConvKind::check: 1..=4); KC, TN, TM, RN, RM, KS, TAPS
//   are positive constants (TileShape::check, ConvKind::check).

override WG: u32 = 256u;
override TM: u32 = 64u;
override TN: u32 = 64u;
override RM: u32 = 4u;
override RN: u32 = 4u;
override KC: u32 = 16u;
override ROLE: u32 = 0u;
override A_KFAST: u32 = 1u;  // 1: neighbouring invocations load neighbouring k of A
override B_KFAST: u32 = 0u;  // 1: neighbouring invocations load neighbouring k of B
override A_STRIDE: u32 = 68u;  // TM (K_CONTIGUOUS: KC) + padding against bank conflicts
override B_STRIDE: u32 = 68u;  // TN (K_CONTIGUOUS: KC) + padding
override A_LEN: u32 = 1088u;   // KC (K_CONTIGUOUS: TM) * A_STRIDE
override B_LEN: u32 = 1088u;   // KC (K_CONTIGUOUS: TN) * B_STRIDE
override TAB_LEN: u32 = 64u;   // max(2 KC, TN): entries of `taps`
override STRIDED: u32 = 0u;    // 1: role 1 at a stride over 1 (B gathered by `strided_tap`)

struct Params {
    batch: u32,
    cin: u32,
    cout: u32,
    height: u32,
    width: u32,
    groups: u32,
    spatial: u32,    // 1: the spatial (KS x KS) part is present
    pointwise: u32,  // 0 none, 1 dense, 2 masked
    has_bias: u32,
    accumulate: u32, // 1: add to what dst holds
    rows: u32,       // rows of one group's product
    cols: u32,       // its columns
    red: u32,        // its reduction length (role 2: all pixels)
    split_len: u32,  // reduction steps per split, a multiple of KC (red when not split)
    splits: u32,     // splits of the reduction (role 2: at least 1; others: 1 = not split)
    tiles_m: u32,
    tiles_n: u32,
    trans_a: u32,    // role 3: a is stored [k, m]
    trans_b: u32,    // role 3: b is stored [n, k]
    cpg: u32,        // cin / groups (no division per element)
    opg: u32,        // cout / groups
    out_height: u32, // output rows: (height - 1) / stride + 1
    out_width: u32,
    stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<act>;   // x (roles 0, 2), dy (role 1), a (role 3)
// Bindings 2 (src2: dy in role 2, b in role 3), 3 (w3) and 4 (w1) are the A piece's.
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst: array<act>;       // roles 0, 1, 3
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;  // split products

// The stages, [KC][A_STRIDE] and [KC][B_STRIDE] operands (K_CONTIGUOUS: [TM][A_STRIDE] and
// [TN][B_STRIDE]), are the inner loop's (it declares them as it reads them: scalars or vec4s,
// and sets K_CONTIGUOUS), written through its put_a and put_b.

// A pixel of the batch: image, row, column; for the fixed column of roles 0 and 1 also where
// its taps read (`with_taps`): the index of tap (0, 0) of channel 0 in the read map (`base`,
// possibly negative), and which taps read inside the map: bit t % 32 of word t / 32 of
// `inside` for tap t = ty * KS + tx (KS <= 7: 49 taps at most; word 1 is 0 up to KS = 5).
struct Pixel {
    image: u32,
    y: i32,
    x: i32,
    base: i32,
    inside: vec2<u32>,
}

// Rows and columns of the maps whose pixels the role's columns (roles 0, 1) or reduction steps
// (role 2) count: the input's for the input gradient, the output's otherwise.
fn pixel_space() -> vec2<u32> {
    if ROLE == 1u {
        return vec2<u32>(p.height, p.width);
    }
    return vec2<u32>(p.out_height, p.out_width);
}

fn decode(pixel: u32) -> Pixel {
    let space = pixel_space();
    let plane = space.x * space.y;
    let in_image = pixel % plane;
    return Pixel(pixel / plane, i32(in_image / space.y), i32(in_image % space.y), 0, vec2<u32>());
}

// q with its taps located: tap (ty, tx) of a channel reads the map at row y0 + dir * ty and
// column x0 + dir * tx, where role 0 reads x around output pixel q (y0 = q.y * stride - PAD,
// dir = 1) and role 1 reads dy from input pixel q at stride 1 (y0 = q.y + PAD, dir = -1);
// role 2 reads x around output pixel q as role 0 does.
fn with_taps(q: Pixel) -> Pixel {
    let channels = select(p.cin, p.cout, ROLE == 1u);
    let map_h = i32(select(p.height, p.out_height, ROLE == 1u));
    let map_w = i32(select(p.width, p.out_width, ROLE == 1u));
    let stride = i32(p.stride);
    var y0 = q.y * stride - i32(PAD);
    var x0 = q.x * stride - i32(PAD);
    var dir = 1;
    if ROLE == 1u {
        y0 = q.y + i32(PAD);
        x0 = q.x + i32(PAD);
        dir = -1;
    }
    // Bit t of `cols_ok`: tap column t reads inside the map.
    var cols_ok = 0u;
    for (var t = 0u; t < KS; t++) {
        let x = x0 + dir * i32(t);
        cols_ok |= select(0u, 1u << t, x >= 0 && x < map_w);
    }
    var r = q;
    // Tap row ty's KS taps are bits s = ty KS .. s + KS - 1, which may straddle the two words
    // (every shift below is by 0 .. 31: s < 32 in the first branch, and 32 - s < KS there when
    // the row reaches word 1; s - 32 < 49 - 32 in the second).
    for (var ty = 0u; ty < KS; ty++) {
        let y = y0 + dir * i32(ty);
        let row = select(0u, cols_ok, y >= 0 && y < map_h);
        let s = ty * KS;
        if s < 32u {
            r.inside.x |= row << s;
            if s + KS > 32u {
                r.inside.y |= row >> (32u - s);
            }
        } else {
            r.inside.y |= row << (s - 32u);
        }
    }
    r.base = i32(q.image * channels) * map_h * map_w + y0 * map_w + x0;
    return r;
}

// Where a B value's tap reads, relative to its pixel's `base` (see `with_taps`): `offset` =
// channel * plane + dir * (ty * map width + tx), and `bits`, which bit of the pixel's `inside`
// is set where tap t = ty * KS + tx reads inside the map: up to 32 taps (KS <= 5) that bit
// itself, 1 << t (so that the test is one AND), else t (word t / 32, bit t % 32).
// `outside()` (no bit up to 32 taps, else bit 63: no mask has it, as there are at most 49)
// reads element 0 and discards it: an entry outside the product.
struct Tap {
    offset: i32,
    bits: u32,
}

// (A function, not a constant: naga 30 fails to process the override constants of a module
// holding a constant of a struct type.)
fn outside() -> Tap {
    return Tap(0, select(0u, 63u, TAPS > 32u));
}

// `Tap::bits` of tap t. (A shift by t >= 32, in the arm that over 32 taps discards, is by t %
// 32 in WGSL.)
fn tap_bits(t: u32) -> u32 {
    return select(1u << t, t, TAPS > 32u);
}

// Whether B values come through `taps` (roles 0 and 2, and role 1 at stride 1): each reduction
// entry (roles 0, 1) or column (role 2) is located once per workgroup, not once per value.
// A constant: the stride-1 input gradient's pipeline has no `strided_tap` path.
fn uses_taps() -> bool {
    return ROLE == 0u || ROLE == 2u || (ROLE == 1u && STRIDED == 0u);
}

// The located entries: roles 0 and 1 keep two stages' reduction entries, [2][KC] (a stage reads
// one half while its staging fills the other for the next stage); role 2 the tile's TN
// columns, located once per job.
var<workgroup> taps: array<Tap, TAB_LEN>;

// Reduction entry k of group g (forward space for roles 0 and 2, over the cin channels of x;
// input-gradient space for role 1, over the cout channels of dy): its channel (role 1: the
// filter) and its tap (the centre, where a 1x1 tap reads, for the pointwise part).
fn channel_and_tap(k: u32, g: u32) -> vec2<u32> {
    let per_group = select(p.cpg, p.opg, ROLE == 1u);
    let k3 = select(0u, per_group * TAPS, p.spatial == 1u);
    if k < k3 {
        return vec2<u32>(g * per_group + k / TAPS, k % TAPS);
    }
    return vec2<u32>(outside_channel(k - k3, g, per_group, p.pointwise == 2u), TAPS / 2u);
}

// Reduction entry k of group g, located: its channel and tap (`channel_and_tap`) as a `Tap`.
fn locate(k: u32, g: u32) -> Tap {
    let entry = channel_and_tap(k, g);
    let channel = entry.x;
    let tap = entry.y;
    let ty = tap / KS;
    let tx = tap - ty * KS;
    let map_w = select(p.width, p.out_width, ROLE == 1u);
    let plane = select(p.height * p.width, p.out_height * p.out_width, ROLE == 1u);
    let step = i32(ty * map_w + tx);
    return Tap(i32(channel * plane) + select(step, -step, ROLE == 1u), tap_bits(tap));
}

// The B value entry `t` reads for pixel q: 0 where its tap falls outside the map (or `t` or q
// lies outside the product), else its value. Without a branch: such a tap reads element 0
// (every activation binding holds one: the host refuses empty shapes) and selects 0.
fn read_tap(t: Tap, q: Pixel) -> operand {
    // Up to 32 taps (KS <= 5: the choice folds away) every tap's bit is in word 0.
    let word = select(q.inside.x, q.inside.y, t.bits >= 32u);
    let in_word = ((word >> (t.bits % 32u)) & 1u) != 0u;
    let inside = select((q.inside.x & t.bits) != 0u, in_word, TAPS > 32u);
    return operand(select(act(), src[select(0u, u32(q.base + t.offset), inside)], inside));
}

// Fills half `slot` of `taps` (roles 0 and 1) with the job's reduction entries k0 .. k0 + KC
// (`outside()` from red_hi on), one entry per invocation below KC; in role 2 locates the tile's
// columns (`outside()` from cols on), one per invocation below TN. The caller puts a barrier
// between this and the reads.
fn fill_taps(job: Job, k0: u32, slot: u32, lid: u32) {
    if ROLE == 2u {
        if lid < TN {
            let col = job.col0 + lid;
            var t = outside();
            if col < p.cols {
                t = locate(col, job.g);
            }
            taps[lid] = t;
        }
    } else if lid < KC {
        let k = k0 + lid;
        var t = outside();
        if k < job.red_hi {
            t = locate(k, job.g);
        }
        taps[slot * KC + lid] = t;
    }
}

// Input-gradient entry k of group g, over the cout channels of dy, seen from input pixel q, at
// a stride over 1 (the other strides and roles read through `taps`); 0 where `ok` is false.
// Without a branch, as `read_tap`: a value no output pixel made reads element 0.
fn strided_tap(k: u32, g: u32, q: Pixel, ok: bool) -> operand {
    let entry = channel_and_tap(k, g);
    let channel = entry.x;
    let tap = entry.y;
    let stride = i32(p.stride);
    // Output pixel ((y - ky) / stride, (x - kx) / stride) saw input (y, x) through this tap,
    // if both divisions are exact and it lies inside the output.
    let y = q.y - (i32(tap / KS) - i32(PAD));
    let x = q.x - (i32(tap % KS) - i32(PAD));
    let oy = u32(y / stride);
    let ox = u32(x / stride);
    let made = ok & (y >= 0) & (x >= 0) & (y % stride == 0) & (x % stride == 0)
        & (oy < p.out_height) & (ox < p.out_width);
    let i = ((q.image * p.cout + channel) * p.out_height + oy) * p.out_width + ox;
    return operand(select(act(), src[select(0u, i, made)], made));
}

// Where column k of group g's A lies: A[row, k] is element base + row * stride of w3 (`in_w3`)
// or w1 (roles 0, 1), of dy (role 2), of a (role 3). An invocation that loads one fixed
// reduction step of A (A_KFAST) locates it once per stage.
struct AColumn {
    base: u32,
    stride: u32,
    in_w3: bool,
}

// Column k of group g's A; q is this invocation's pixel for role 2 (A[row, k] = dy of filter
// g * rows + row at pixel k).
fn a_column(k: u32, g: u32, q: Pixel) -> AColumn {
    switch ROLE {
        case 0u: {
            // w3[o * k3 + k], w1[o * cin + channel] for o = g * rows + row.
            let k3 = select(0u, p.cpg * TAPS, p.spatial == 1u);
            if k < k3 {
                return AColumn(g * p.rows * k3 + k, k3, true);
            }
            return AColumn(g * p.rows * p.cin + channel_and_tap(k, g).x, p.cin, false);
        }
        case 1u: {
            // w3[(o * cpg + row) * TAPS + tap] for k's filter o and tap; w1[o * cin + g * cpg
            // + row] for k's pointwise filter o.
            let k3 = select(0u, p.opg * TAPS, p.spatial == 1u);
            let entry = channel_and_tap(k, g);
            if k < k3 {
                return AColumn(entry.x * p.cpg * TAPS + entry.y, TAPS, true);
            }
            return AColumn(entry.x * p.cin + g * p.cpg, 1u, false);
        }
        case 2u: {
            // With A_QUADS q is the pixel of a step of k's quad, in the same image (the host
            // found the plane a multiple of 4), and the quad's first pixel is q's rounded down
            // to a multiple of 4 (pixel % 4 = k % 4 as plane % 4 = 0).
            let plane = p.out_height * p.out_width;
            var pixel = u32(q.y) * p.out_width + u32(q.x);
            if A_QUADS == 1u {
                pixel &= ~3u;
            }
            return AColumn((q.image * p.cout + g * p.rows) * plane + pixel, plane, false);
        }
        default: {
            if p.trans_a == 1u {
                return AColumn(k * p.rows, 1u, false);
            }
            return AColumn(k, p.red, false);
        }
    }
}

// B[k, col] of group g where it does not come through `taps` (role 1 at a stride over 1, role
// 3), or 0 where `ok` is false (without a branch, as `a_value`); q is this invocation's pixel
// (of col).
fn b_value(k: u32, col: u32, g: u32, q: Pixel, ok: bool) -> operand {
    if ROLE == 1u {
        return strided_tap(k, g, q, ok);
    }
    let i = select(0u, select(k * p.cols + col, col * p.red + k, p.trans_b == 1u), ok);
    return operand(select(act(), src2_at(i), ok));
}

// Writes C[row, col] of group g: a partial product of its split where the reduction is split
// (always in role 2, where `scatter_weight_grad` sums them; in the other roles when the host
// splits it, and `sum_splits` sums them), else through the role's epilogue. `base`:
// `column_base(col)`.
fn store(row: u32, col: u32, base: u32, g: u32, split: u32, c: f32) {
    if ROLE == 2u || p.splits > 1u {
        partials[(split * p.groups * p.rows + g * p.rows + row) * p.cols + col] = c;
        return;
    }
    epilogue(row, col, base, g, c);
}

// The part of the epilogue's dst index that depends on the column alone (roles 0 and 1), found
// once per column rather than per value: column col is pixel y * W + x of image i = col /
// plane (plane = H * W of the role's pixel space), which channel c holds at ((i * channels + c)
// * H + y) * W + x = col + i * (channels - 1) * plane + c * plane; this is all but the last
// term (channels >= 1: the host refuses empty shapes). Role 3 indexes by col itself.
fn column_base(col: u32) -> u32 {
    if ROLE < 2u {
        let space = pixel_space();
        let plane = space.x * space.y;
        let channels = select(p.cout, p.cin, ROLE == 1u);
        return col + (col / plane) * (channels - 1u) * plane;
    }
    return col;
}

// The role's epilogue (roles 0, 1 and 3): C[row, col] of group g plus the bias, plus what dst
// holds when accumulating, rounded once to `act` into dst. `base`: `column_base(col)`.
fn epilogue(row: u32, col: u32, base: u32, g: u32, c: f32) {
    var value = c;
    var index: u32;
    if ROLE < 2u {
        let channel = g * p.rows + row;
        let space = pixel_space();
        index = base + channel * space.x * space.y;
        if ROLE == 0u && p.has_bias == 1u {
            value += bias[channel];
        }
    } else {
        index = row * p.cols + col;
        if p.has_bias == 1u {
            value += bias[col];
        }
    }
    if p.accumulate == 1u {
        value += f32(dst[index]);
    }
    dst[index] = act(value);
}

// One workgroup's share of the product: group g, split, the tile's first row and column, its
// reduction range, and whether all of its rows and columns are in range.
struct Job {
    g: u32,
    split: u32,
    row0: u32,
    col0: u32,
    red_lo: u32,
    red_hi: u32,
    interior: bool,
}

// The job of workgroup `wid`. One past the grid's last tile (split >= p.splits) gets an empty
// reduction and stores nothing (no early return: cooperative matrices need uniform control
// flow).
fn job_of(wid: vec3<u32>, nwg: vec3<u32>) -> Job {
    // Tile index over [splits, groups, tiles_m, tiles_n]: the group is the batch axis.
    var t = wid.x + wid.y * nwg.x;
    let tile_n = t % p.tiles_n;
    t /= p.tiles_n;
    let tile_m = t % p.tiles_m;
    t /= p.tiles_m;
    let g = t % p.groups;
    let split = t / p.groups;
    let row0 = tile_m * TM;
    let col0 = tile_n * TN;
    let red_lo = split * p.split_len;
    var red_hi = min(red_lo + p.split_len, p.red);
    if split >= p.splits {
        red_hi = red_lo;
    }
    let interior = row0 + TM <= p.rows && col0 + TN <= p.cols;
    return Job(g, split, row0, col0, red_lo, red_hi, interior);
}

// The pixel of this invocation's fixed B column (roles 0 and 1; role 2 decodes per stage).
fn column_pixel(job: Job, lid: u32) -> Pixel {
    if ROLE < 2u && job.col0 + lid % TN < p.cols {
        return with_taps(decode(job.col0 + lid % TN));
    }
    return Pixel(0u, 0, 0, 0, vec2<u32>());
}

// Before the first stage (the caller puts a barrier after it): locates the first stage's
// reduction entries (roles 0 and 1) or the tile's columns (role 2) into `taps`.
fn first_taps(job: Job, lid: u32) {
    if uses_taps() {
        fill_taps(job, job.red_lo, 0u, lid);
    }
}

// Stages A[row0.., k0..k0 + KC] and B[k0.., col0..] in workgroup memory as operands (zeros
// outside the product); returns this invocation's pixel (role 2: of its fixed reduction step,
// with its taps located; roles 0 and 1: `pixel`, of its fixed column). Roles 0 and 1 read B
// through the half of `taps` the previous stage filled (or `first_taps`) and fill the other
// half for the next stage: the barrier after staging orders the fill before those reads, and
// the two barriers of a stage order this stage's reads of a half before its next fill.
// Every value is read without a branch (`a_value`, `b_value`, `read_tap`).
fn stage(job: Job, k0: u32, lid: u32, pixel: Pixel) -> Pixel {
    var q = pixel;
    let full = job.interior && k0 + KC <= job.red_hi;
    let slot = ((k0 - job.red_lo) / KC) % 2u;
    if ROLE == 2u {
        let k = k0 + reduction_lane(lid);
        q = Pixel(0u, 0, 0, 0, vec2<u32>()); // no taps inside the map: every value discarded
        if k < job.red_hi {
            q = with_taps(decode(k));
        }
    } else if uses_taps() {
        fill_taps(job, k0 + KC, 1u - slot, lid);
    }
    // With A_KFAST (always in roles 0 and 1) an invocation loads one reduction step (with
    // A_QUADS one quad of steps, `a_lane`), so one buffer of weights: the loop is made once per
    // buffer, each with its buffer a constant.
    let fixed_a = a_column(k0 + a_lane(lid), job.g, q);
    if fixed_a.in_w3 {
        stage_a(job, k0, lid, q, full, AColumn(fixed_a.base, fixed_a.stride, true));
    } else {
        stage_a(job, k0, lid, q, full, AColumn(fixed_a.base, fixed_a.stride, false));
    }
    let order = walk(B_KFAST == 1u, TN, lid);
    for (var i = 0u; i < KC * TN / WG; i++) {
        let kk = order.first.x + i * order.step.x;
        let n = order.first.y + i * order.step.y;
        var v: operand;
        if uses_taps() {
            // Bounds are in the entries and the pixel's masks (`outside()`, or no bit set).
            v = read_tap(taps[select(slot * KC + kk, n, ROLE == 2u)], q);
        } else {
            let ok = full | ((job.col0 + n < p.cols) & (k0 + kk < job.red_hi));
            v = b_value(k0 + kk, job.col0 + n, job.g, q, ok);
        }
        put_b(stage_slot(order, i, B_STRIDE), v);
    }
    return q;
}

// The stage entries (kk, m) = first + i step, i < KC * side / WG, that an invocation stages of
// an operand whose tile has `side` rows (A: TM) or columns (B: TN): without `kfast` one row or
// column, lid % side, over reduction steps lid / side + i WG / side (WG is a multiple of side),
// or where the stages keep reduction steps contiguous (K_CONTIGUOUS) over the KC side / WG
// consecutive steps from (lid / side) KC side / WG, so that an invocation's entries are
// neighbours and the compiler may store them together; with `kfast` one reduction step,
// lid % KC, over rows or columns lid / KC + i WG / KC (WG is a multiple of KC).
struct Walk {
    first: vec2<u32>,
    step: vec2<u32>,
}

fn walk(kfast: bool, side: u32, lid: u32) -> Walk {
    if kfast {
        return Walk(vec2<u32>(reduction_lane(lid), lid / KC), vec2<u32>(0u, WG / KC));
    }
    if K_CONTIGUOUS {
        let steps = KC * side / WG;
        return Walk(vec2<u32>((lid / side) * steps, lid % side), vec2<u32>(1u, 0u));
    }
    return Walk(vec2<u32>(lid / side, lid % side), vec2<u32>(WG / side, 0u));
}

// The reduction step (within a stage) an invocation loads where it loads one (A_KFAST, B_KFAST):
// lid % KC, or with A_QUADS the same steps permuted, 4 (lid % (KC / 4)) + (lid / (KC / 4)) % 4, so
// that the step lies in the quad of steps `a_lane` gives the invocation's A loads (role 2 decodes
// one pixel per stage for both). For lid < KC, lid / (KC / 4) < 4: a permutation of 0 .. KC, and
// lid's value is (lid % KC)'s.
fn reduction_lane(lid: u32) -> u32 {
    if A_QUADS == 1u {
        return 4u * (lid % (KC / 4u)) + (lid / (KC / 4u)) % 4u;
    }
    return lid % KC;
}

// The first reduction step (within a stage) of an invocation's A loads with A_KFAST: its one
// step, or with A_QUADS the first of its quad of steps, 4 (lid % (KC / 4)).
fn a_lane(lid: u32) -> u32 {
    if A_QUADS == 1u {
        return reduction_lane(lid) & ~3u;
    }
    return reduction_lane(lid);
}

// Where entry i of `order` goes, as `put_a` and `put_b` take it: entry (kk, m) of a stage with
// rows of `stride` operands is element kk * stride + m (z), that is lane m % 4 (y) of quad kk *
// stride / 4 + m / 4 (x; the strides are multiples of 4); the inner loop uses one form or the
// other. Where step.y is a multiple of 4, the lane is first's and the quad first's plus i
// times a constant: no division per entry, and once the loop over i is unrolled, addresses the
// compiler can fold (the element's always are). Where the inner loop keeps reduction steps
// contiguous (K_CONTIGUOUS: the cooperative loop, whose only form is z) the stage is
// [side][stride] instead, entry (kk, m) at element m * stride + kk.
fn stage_slot(order: Walk, i: u32, stride: u32) -> vec3<u32> {
    let first = order.first;
    let step = order.step;
    let quads = stride / 4u;
    var element = first.x * stride + first.y + i * (step.x * stride + step.y);
    if K_CONTIGUOUS {
        element = first.y * stride + first.x + i * (step.y * stride + step.x);
    }
    if step.y % 4u == 0u {
        let base = first.x * quads + first.y / 4u;
        return vec3<u32>(base + i * (step.x * quads + step.y / 4u), first.y % 4u, element);
    }
    let m = first.y + i * step.y;
    return vec3<u32>((first.x + i * step.x) * quads + m / 4u, m % 4u, element);
}

// Writes C[row, col] of the job if it is inside the product. `base`: `column_base(col)`.
fn store_checked(job: Job, row: u32, col: u32, base: u32, c: f32) {
    if job.split < p.splits && (job.interior || (row < p.rows && col < p.cols)) {
        store(row, col, base, job.g, job.split, c);
    }
}

// Split reduction, second pass (roles 0, 1 and 3, when the host split the reduction): sums the
// splits of C (partials: [splits, groups * rows, cols]) in a fixed order and writes each sum
// through the role's epilogue. One invocation per element of C.
@compute @workgroup_size(WG)
fn sum_splits(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let all_rows = p.groups * p.rows;
    if i >= all_rows * p.cols {
        return;
    }
    let r = i / p.cols;
    let col = i % p.cols;
    var total = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        total += partials[(s * all_rows + r) * p.cols + col];
    }
    epilogue(r % p.rows, col, column_base(col), r / p.rows, total);
}

// Weight gradient, second pass: sums the splits of C[o, k] (partials: [splits, cout, cols]) and
// scatters them into grad3 = dw3 [N, M/G, KS, KS] (k in the spatial part) and grad1 = dw1 [N, M]
// (the pointwise part, with exact zeros on a masked block). One invocation per element of dw3,
// then of dw1.
@group(0) @binding(8) var<storage, read_write> grad3: array<f32>;
@group(0) @binding(9) var<storage, read_write> grad1: array<f32>;

@compute @workgroup_size(WG)
fn scatter_weight_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let cpg = p.cpg;
    let opg = p.opg;
    let k3 = select(0u, cpg * TAPS, p.spatial == 1u);
    let n3 = select(0u, p.cout * cpg * TAPS, p.spatial == 1u);
    let n1 = select(0u, p.cout * p.cin, p.pointwise != 0u);
    if i >= n3 + n1 {
        return;
    }
    var o: u32;
    var col: u32;
    if i < n3 {
        o = i / (cpg * TAPS);
        col = i % (cpg * TAPS);
    } else {
        let j = i - n3;
        o = j / p.cin;
        let c = j % p.cin;
        let g = o / opg;
        let masked = p.pointwise == 2u;
        if masked && c >= g * cpg && c < (g + 1u) * cpg {
            grad1[j] = 0.0;
            return;
        }
        col = k3 + outside_index(c, g, cpg, masked);
    }
    var total = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        total += partials[(s * p.cout + o) * p.cols + col];
    }
    if i < n3 {
        grad3[i] = total;
    } else {
        grad1[i - n3] = total;
    }
}
