// Batch normalisation over [batch, channels, plane] (plane = H*W for BatchNorm2d, 1 for
// BatchNorm1d). Training mode uses the batch's mean and biased variance and updates the running
// estimates (momentum, unbiased variance); eval mode uses the running estimates.
// Reductions run one workgroup per channel with a fixed-order tree (include/workgroup_sum.wgsl):
// deterministic. x, dy and y hold activations (`act`: include/act_f32.wgsl or act_f16.wgsl);
// statistics, parameters and sums are f32.

override WG: u32 = 64u;

struct Params {
    batch: u32,
    channels: u32,
    plane: u32,
    eps: f32,
    momentum: f32,
    from_running: u32, // normalize: 1 = eval mode, read the running estimates
    relu: u32,         // normalize: 1 = apply ReLU to the output (fused BN + ReLU);
                       // backward_reduce: 1 = the forward pass did, mask dy
    dbeta_offset: u32, // backward_reduce: where dbeta starts in `out` (after dgamma)
    phase: u32,        // stats: which part of the statistics (STATS_*)
    count: u32,        // stats: the values per channel the statistics are over (all ranks')
}

// The parts of `stats`. One process runs them all at once (STATS_ALL); a data-parallel run with
// synchronised batch norm runs them one by one and adds every rank's sums in between: the sum
// of x (into `mean`), then, from the mean over all ranks, the centred sum of squares (into
// `scale`), then, from the squares over all ranks, invstd and the running estimates.
const STATS_ALL: u32 = 0u;
const STATS_SUM: u32 = 1u;
const STATS_SQUARES: u32 = 2u;
const STATS_FINISH: u32 = 3u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> dy: array<act>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
// Training: the batch's mean and 1/sqrt(var + eps). Eval (normalize only): running mean and var.
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> scale: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> out2: array<f32>;
@group(0) @binding(9) var<storage, read_write> y: array<act>; // normalize's output

fn at(i: u32, channel: u32) -> u32 {
    let b = i / p.plane;
    return (b * p.channels + channel) * p.plane + i % p.plane;
}

fn channel_sum(lid: u32, channel: u32) -> f32 {
    var partial = 0.0;
    for (var i = lid; i < p.batch * p.plane; i += LANES) {
        partial += f32(x[at(i, channel)]);
    }
    return workgroup_sum(lid, partial);
}

fn centred_squares(lid: u32, channel: u32, mu: f32) -> f32 {
    var partial = 0.0;
    for (var i = lid; i < p.batch * p.plane; i += LANES) {
        let centred = f32(x[at(i, channel)]) - mu;
        partial += centred * centred;
    }
    return workgroup_sum(lid, partial);
}

// The batch statistics of `channel` from its mean and centred sum of squares over p.count
// values, and the running update. A batch whose statistics are not finite (an activation that
// overflowed f16 under mixed precision: that step's gradients are not finite either and its
// update is skipped) leaves the running estimates as they were instead of making them NaN for
// good (`is_finite`: include/finite.wgsl).
fn finish(channel: u32, mu: f32, squares: f32) {
    let var_biased = squares / f32(p.count);
    mean[channel] = mu;
    scale[channel] = inverseSqrt(var_biased + p.eps);
    let var_unbiased = squares / f32(max(p.count, 2u) - 1u);
    if is_finite(mu) && is_finite(var_unbiased) {
        out[channel] = (1.0 - p.momentum) * out[channel] + p.momentum * mu;
        out2[channel] = (1.0 - p.momentum) * out2[channel] + p.momentum * var_unbiased;
    }
}

// Batch statistics (two passes: mean, then centred sum of squares) and the running update, or
// one part of them (p.phase).
// Bindings: x, mean (out), scale = invstd (out), out = running_mean, out2 = running_var.
@compute @workgroup_size(LANES)
fn stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let channel = wid.x + wid.y * nwg.x;
    if channel >= p.channels {
        return;
    }
    if p.phase == STATS_SUM {
        let sum = channel_sum(lid, channel);
        if lid == 0u {
            mean[channel] = sum;
        }
    } else if p.phase == STATS_SQUARES {
        let squares = centred_squares(lid, channel, mean[channel]);
        if lid == 0u {
            scale[channel] = squares;
        }
    } else if p.phase == STATS_FINISH {
        if lid == 0u {
            finish(channel, mean[channel], scale[channel]);
        }
    } else {
        let mu = channel_sum(lid, channel) / f32(p.count);
        let squares = centred_squares(lid, channel, mu);
        if lid == 0u {
            finish(channel, mu, squares);
        }
    }
}

// y = (x - mean) * invstd * gamma + beta (then ReLU if asked).
// Bindings: x, gamma, beta, mean, scale (invstd, or running var in eval mode), y.
@compute @workgroup_size(WG)
fn normalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if i >= p.batch * p.channels * p.plane {
        return;
    }
    let channel = (i / p.plane) % p.channels;
    var invstd = scale[channel];
    if p.from_running == 1u {
        invstd = inverseSqrt(invstd + p.eps);
    }
    var value = (f32(x[i]) - mean[channel]) * invstd * gamma[channel] + beta[channel];
    if p.relu == 1u {
        value = max(value, 0.0);
    }
    y[i] = act(value);
}

// Per channel: dgamma = sum(dy * xhat) at out[channel], dbeta = sum(dy) at
// out[dbeta_offset + channel] (one buffer, so batchnorm_grad.wgsl stays within 8 storage
// bindings), with dy masked by the fused ReLU's derivative when `relu` is set.
// Bindings: x, dy, gamma, beta, mean, scale (invstd), out.
@compute @workgroup_size(LANES)
fn backward_reduce(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let channel = wid.x + wid.y * nwg.x;
    if channel >= p.channels {
        return;
    }
    let n = p.batch * p.plane;
    let mu = mean[channel];
    let invstd = scale[channel];
    let g_c = gamma[channel];
    let b_c = beta[channel];
    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    for (var i = lid; i < n; i += LANES) {
        let k = at(i, channel);
        let xhat = (f32(x[k]) - mu) * invstd;
        // The fused ReLU's derivative, from the pre-activation computed as normalize computes
        // it (the same operations in the same order; only a value within a rounding error of 0
        // could land on the other side, as the compiler contracts to fma or not).
        let g = select(f32(dy[k]), 0.0, p.relu == 1u && xhat * g_c + b_c <= 0.0);
        sum_dy += g;
        sum_dy_xhat += g * xhat;
    }
    let total_dy = workgroup_sum(lid, sum_dy);
    let total_dy_xhat = workgroup_sum(lid, sum_dy_xhat);
    if lid == 0u {
        out[channel] = total_dy_xhat;
        out[p.dbeta_offset + channel] = total_dy;
    }
}
