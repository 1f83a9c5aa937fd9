// The GEMM core's A staging one value at a time (`shaders/gemm_core.wgsl` has the rest): the
// operand bindings 2 to 4 hold scalars. Every role and layout runs on it.
const A_QUADS: u32 = 0u;

@group(0) @binding(2) var<storage, read> src2: array<act>;  // dy (role 2), b (role 3)
@group(0) @binding(3) var<storage, read> w3: array<f32>;
@group(0) @binding(4) var<storage, read> w1: array<f32>;

// Element i of src2.
fn src2_at(i: u32) -> act {
    return src2[i];
}

// A[row, k] for row `row` of column `c` (`a_column`), or 0 where `ok` is false. Without a
// branch but on `c.in_w3` (which `stage` makes a constant): outside the product it reads
// element 0 of the binding (every operand binding holds one) and selects 0, in the type the
// binding holds (then converts to `operand`, as every gather does).
fn a_value(c: AColumn, row: u32, ok: bool) -> operand {
    let i = select(0u, c.base + row * c.stride, ok);
    switch ROLE {
        case 0u, 1u: {
            var w: f32;
            if c.in_w3 {
                w = w3[i];
            } else {
                w = w1[i];
            }
            return operand(select(0.0, w, ok));
        }
        case 2u: {
            return operand(select(act(), src2[i], ok));
        }
        default: {
            return operand(select(act(), src[i], ok));
        }
    }
}

// `stage`'s A part (`walk`): with A_KFAST the column of the invocation's one reduction step is
// `fixed`; else each step is located.
fn stage_a(job: Job, k0: u32, lid: u32, q: Pixel, full: bool, fixed: AColumn) {
    let order = walk(A_KFAST == 1u, TM, lid);
    for (var i = 0u; i < KC * TM / WG; i++) {
        let kk = order.first.x + i * order.step.x;
        let m = order.first.y + i * order.step.y;
        var column = fixed;
        if A_KFAST == 0u {
            column = a_column(k0 + kk, job.g, q);
        }
        let ok = full | ((job.row0 + m < p.rows) & (k0 + kk < job.red_hi));
        put_a(stage_slot(order, i, A_STRIDE), a_value(column, job.row0 + m, ok));
    }
}
