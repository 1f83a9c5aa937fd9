// Softmax and softmax cross-entropy over rows of logits, one invocation per row.
//   softmax_cross_entropy: mean-reduced loss and gradient in one pass:
//     out = dlogits = (softmax(z) - onehot(label)) / batch; rows[b] = (loss_b, correct_b).
//   softmax: out = softmax(z) (inference: class probabilities).

override WG: u32 = 64u;

struct Params {
    batch: u32,
    classes: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;  // class indices, exact in f32
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // dlogits or probabilities
@group(0) @binding(4) var<storage, read_write> rows: array<f32>;

// Log-sum-exp of one row of logits and its arg-max (the first index of the maximum).
struct RowStats {
    lse: f32,
    arg: u32,
}

fn row_stats(base: u32) -> RowStats {
    var best = logits[base];
    var arg = 0u;
    for (var j = 1u; j < p.classes; j++) {
        if logits[base + j] > best {
            best = logits[base + j];
            arg = j;
        }
    }
    var total = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        total += exp(logits[base + j] - best);
    }
    return RowStats(best + log(total), arg);
}

fn row_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn softmax_cross_entropy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = row_index(wid, nwg, lid);
    if b >= p.batch {
        return;
    }
    let base = b * p.classes;
    let label = u32(labels[b]);
    let stats = row_stats(base);
    for (var j = 0u; j < p.classes; j++) {
        let prob = exp(logits[base + j] - stats.lse);
        out[base + j] = (prob - select(0.0, 1.0, j == label)) / f32(p.batch);
    }
    rows[2u * b] = stats.lse - logits[base + label];
    rows[2u * b + 1u] = select(0.0, 1.0, stats.arg == label);
}

@compute @workgroup_size(WG)
fn softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = row_index(wid, nwg, lid);
    if b >= p.batch {
        return;
    }
    let base = b * p.classes;
    let lse = row_stats(base).lse;
    for (var j = 0u; j < p.classes; j++) {
        out[base + j] = exp(logits[base + j] - lse);
    }
}
