// Register-tiled f32 matrix product: c[m, n] = sum_k a[m, k] * b[k, n] (+ bias[n]) (+ c).
// Either operand may be stored transposed. Each invocation owns a TM x TN block of c.

override WG: u32 = 64u;
const TM: u32 = 4u;
const TN: u32 = 4u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,    // 1: a is stored [k, m]
    trans_b: u32,    // 1: b is stored [n, k]
    has_bias: u32,   // 1: add bias[n]
    accumulate: u32, // 1: add to the existing c
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn a_at(row: u32, kk: u32) -> f32 {
    if p.trans_a == 1u {
        return a[kk * p.m + row];
    }
    return a[row * p.k + kk];
}

fn b_at(kk: u32, col: u32) -> f32 {
    if p.trans_b == 1u {
        return b[col * p.k + kk];
    }
    return b[kk * p.n + col];
}

@compute @workgroup_size(WG)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let flat = (wid.x + wid.y * nwg.x) * WG + lid;
    let tiles_n = (p.n + TN - 1u) / TN;
    let tiles_m = (p.m + TM - 1u) / TM;
    if flat >= tiles_m * tiles_n {
        return;
    }
    let row0 = (flat / tiles_n) * TM;
    let col0 = (flat % tiles_n) * TN;
    var acc: array<f32, 16>;
    for (var kk = 0u; kk < p.k; kk++) {
        var av: array<f32, 4>;
        var bv: array<f32, 4>;
        for (var r = 0u; r < TM; r++) {
            av[r] = a_at(min(row0 + r, p.m - 1u), kk);
        }
        for (var s = 0u; s < TN; s++) {
            bv[s] = b_at(kk, min(col0 + s, p.n - 1u));
        }
        for (var r = 0u; r < TM; r++) {
            for (var s = 0u; s < TN; s++) {
                acc[r * TN + s] = fma(av[r], bv[s], acc[r * TN + s]);
            }
        }
    }
    for (var r = 0u; r < TM; r++) {
        let row = row0 + r;
        for (var s = 0u; s < TN; s++) {
            let col = col0 + s;
            if row < p.m && col < p.n {
                var value = acc[r * TN + s];
                if p.has_bias == 1u {
                    value += bias[col];
                }
                let idx = row * p.n + col;
                if p.accumulate == 1u {
                    value += c[idx];
                }
                c[idx] = value;
            }
        }
    }
}
