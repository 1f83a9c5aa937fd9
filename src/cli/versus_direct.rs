//! `hetconv bench --versus-direct`: the training step with the run's kernel choices against the
//! same step with the direct kernels alone, timed in pairs of steps within one process, the
//! order alternating from pair to pair. What drifts while the benchmark runs (a VM's
//! neighbours, clocks, a background job) falls on both sides of a pair alike, so the ratio of
//! each pair is steadier than the ratio of two separate runs.

use std::time::Instant;

use hetconv::{Context, Result};

/// One row's comparison: medians over the pairs, and the quartiles of the pairs' ratios.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct VersusDirect {
    pub pairs: usize,
    /// Median step with the run's kernel choices, ms.
    pub chosen_ms: f64,
    /// Median step with the direct kernels alone, ms.
    pub direct_ms: f64,
    /// Median of the pairs' chosen / direct ratios.
    pub ratio: f64,
    /// Its first and third quartiles.
    pub ratio_q1: f64,
    pub ratio_q3: f64,
    /// Pairs in which the chosen kernels' step was the slower one.
    pub chosen_slower: usize,
}

/// Times `pairs` pairs of one `chosen` step and one `direct` step (each from an idle device to
/// its end: wall clock), the chosen step first in even pairs and second in odd ones.
pub fn time_pairs(
    ctx: &Context,
    pairs: usize,
    mut chosen: impl FnMut() -> Result<()>,
    mut direct: impl FnMut() -> Result<()>,
) -> Result<VersusDirect> {
    let once = |step: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        ctx.synchronize()?;
        let start = Instant::now();
        step()?;
        ctx.synchronize()?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    let mut times = Vec::with_capacity(pairs);
    for pair in 0..pairs {
        let (c, d) = if pair % 2 == 0 {
            let c = once(&mut chosen)?;
            (c, once(&mut direct)?)
        } else {
            let d = once(&mut direct)?;
            (once(&mut chosen)?, d)
        };
        times.push((c, d));
    }
    Ok(summarise(&times))
}

/// The medians and quartiles of `(chosen ms, direct ms)` pairs.
fn summarise(times: &[(f64, f64)]) -> VersusDirect {
    let mut ratios: Vec<f64> = times.iter().map(|(c, d)| c / d).collect();
    let ratio_q1 = quantile(&mut ratios, 0.25);
    let ratio = quantile(&mut ratios, 0.5);
    let ratio_q3 = quantile(&mut ratios, 0.75);
    VersusDirect {
        pairs: times.len(),
        chosen_ms: quantile(&mut times.iter().map(|t| t.0).collect::<Vec<_>>(), 0.5),
        direct_ms: quantile(&mut times.iter().map(|t| t.1).collect::<Vec<_>>(), 0.5),
        ratio,
        ratio_q1,
        ratio_q3,
        chosen_slower: times.iter().filter(|(c, d)| c > d).count(),
    }
}

/// The `q` quantile of `values`, interpolated linearly between the closest ranks (NaN for
/// none).
fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = q * (values.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    values[low] + (values[high] - values[low]) * (rank - low as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let mut v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&mut v, 0.5), 2.5);
        assert_eq!(quantile(&mut v, 0.25), 1.75);
        assert_eq!(quantile(&mut v, 1.0), 4.0);
        assert_eq!(quantile(&mut [7.0], 0.75), 7.0);
        assert!(quantile(&mut [], 0.5).is_nan());
    }

    #[test]
    fn pairs_are_summarised_by_their_ratios() {
        let s = summarise(&[(1.0, 2.0), (3.0, 2.0), (2.0, 2.0), (1.0, 1.0)]);
        assert_eq!(s.pairs, 4);
        assert_eq!(s.chosen_ms, 1.5);
        assert_eq!(s.direct_ms, 2.0);
        // Ratios 0.5, 1.5, 1.0, 1.0.
        assert_eq!(s.ratio, 1.0);
        assert_eq!(s.ratio_q1, 0.875);
        assert_eq!(s.ratio_q3, 1.125);
        assert_eq!(s.chosen_slower, 1);
    }
}
