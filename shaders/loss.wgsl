// Softmax cross-entropy with mean reduction, forward and gradient in one pass, one invocation
// per row: dlogits = (softmax(z) - onehot(label)) / batch; rows[b] = (loss_b, correct_b).

override WG: u32 = 64u;

struct Params {
    batch: u32,
    classes: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;  // class indices, exact in f32
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> rows: array<f32>;

@compute @workgroup_size(WG)
fn softmax_cross_entropy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = (wid.x + wid.y * nwg.x) * WG + lid;
    if b >= p.batch {
        return;
    }
    let base = b * p.classes;
    let label = u32(labels[b]);
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
    let lse = best + log(total);
    for (var j = 0u; j < p.classes; j++) {
        let prob = exp(logits[base + j] - lse);
        dlogits[base + j] = (prob - select(0.0, 1.0, j == label)) / f32(p.batch);
    }
    rows[2u * b] = lse - logits[base + label];
    rows[2u * b + 1u] = select(0.0, 1.0, arg == label);
}
