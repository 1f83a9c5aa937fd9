//! Timing candidates on the device, after a warm-up run that builds the pipelines: GPU
//! timestamps around each of the candidate's dispatches where the device has them (no
//! submission or wait in the number), else wall-clock around whole submissions.

use std::time::Instant;

use super::Variant;
use crate::error::Result;
use crate::gpu::Context;

/// Samples per surviving candidate (the minimum is kept).
const SAMPLES: usize = 3;
/// A candidate whose first sample is this much slower than the leader is dropped.
const ELIMINATE_OVER: f64 = 1.5;
/// Runs per sample are raised until a sample lasts about this long.
const SAMPLE_MS: f64 = 1.0;
/// At most this many runs per sample.
const MAX_RUNS: usize = 16;
/// The heuristic's guess (the first candidate) is kept unless another is this much faster:
/// differences inside the timing noise do not move a layer off the rule-based choice.
const MIN_GAIN: f64 = 0.05;

pub(super) struct Outcome {
    /// The fastest candidate that ran, and its time per run in ms.
    pub best: Option<(Variant, f64)>,
    /// Every candidate that ran, with its time per run (a dropped one: its first sample).
    pub timed: Vec<(Variant, f64)>,
    /// Why the others that failed did.
    pub failures: Vec<String>,
    /// Candidate runs, warm-ups included.
    pub runs: u64,
    pub wall_ms: f64,
}

/// Times each candidate (the first is the heuristic's guess, a good early leader, kept unless
/// another is 5% faster). A candidate that fails to build or run is reported and never picked. Work recorded before is submitted
/// first; a profile in progress does not see the tuning runs.
pub(super) fn time_candidates(
    ctx: &Context,
    candidates: &[Variant],
    mut run: impl FnMut(Variant) -> Result<()>,
) -> Result<Outcome> {
    let started = Instant::now();
    ctx.synchronize()?;
    let profile = ctx.pause_profile()?;
    let mut outcome = Outcome {
        best: None,
        timed: Vec::new(),
        failures: Vec::new(),
        runs: 0,
        wall_ms: 0.0,
    };
    let runs_done = std::cell::Cell::new(0u64);
    for &variant in candidates {
        let timestamps = ctx.can_profile();
        let mut sample = |runs: usize| -> Result<f64> {
            let t = Instant::now();
            if timestamps {
                ctx.begin_profile()?;
            }
            let ran = (0..runs).try_for_each(|_| {
                runs_done.set(runs_done.get() + 1);
                run(variant)
            });
            let gpu_ms = if timestamps {
                // End the profile whether or not the runs succeeded.
                let (times, _) = pollster::block_on(ctx.end_profile())?;
                Some(times.iter().map(|k| k.ms).sum::<f64>())
            } else {
                ctx.synchronize()?;
                None
            };
            ran?;
            let ms = gpu_ms.unwrap_or_else(|| t.elapsed().as_secs_f64() * 1e3);
            Ok(ms / runs as f64)
        };
        let leader = outcome.best.map(|(_, ms)| ms).unwrap_or(f64::INFINITY);
        let measured = (|| -> Result<(f64, bool)> {
            sample(1)?; // warm-up: pipeline build and the driver's compile
            let first = sample(1)?;
            if first > ELIMINATE_OVER * leader {
                return Ok((first, false));
            }
            let runs = ((SAMPLE_MS / first.max(1e-3)).ceil() as usize).clamp(1, MAX_RUNS);
            let mut best = first;
            for _ in 1..SAMPLES {
                best = best.min(sample(runs)?);
            }
            Ok((best, true))
        })();
        match measured {
            Ok((ms, survived)) => {
                log::debug!(
                    "tune: {variant}: {ms:.3} ms{}",
                    if survived {
                        ""
                    } else {
                        " (dropped after one sample)"
                    }
                );
                outcome.timed.push((variant, ms));
                if survived && outcome.best.is_none_or(|(_, b)| ms < b) {
                    outcome.best = Some((variant, ms));
                }
            }
            Err(e) => {
                log::debug!("tune: {variant} failed: {e}");
                outcome.failures.push(format!("{variant}: {e}"));
            }
        }
    }
    ctx.resume_profile(profile);
    outcome.runs = runs_done.get();
    if let (Some((_, best_ms)), Some(&(guess, guess_ms))) = (outcome.best, outcome.timed.first()) {
        if candidates.first() == Some(&guess) && guess_ms <= best_ms * (1.0 + MIN_GAIN) {
            outcome.best = Some((guess, guess_ms));
        }
    }
    outcome.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::{self, ConvDims, ConvKind, ConvWeights};
    use crate::kernels::gemm_core::TileShape;
    use crate::tensor::Tensor;

    #[test]
    fn a_candidate_that_fails_validation_is_reported_and_never_picked() {
        let ctx = Context::new_blocking().expect("a GPU adapter");
        // 1024 invocations per workgroup: over the WebGPU default limit the context was opened
        // with (the core refuses it: wgpu 30 does not check override-sized workgroups).
        let too_big = TileShape::new(128, 128, 4, 4, 16);
        assert!(too_big.check().is_ok());
        assert!(too_big.threads() > ctx.limits().max_compute_invocations_per_workgroup);
        let kind = ConvKind::hetconv(2);
        let d = ConvDims {
            batch: 1,
            cin: 4,
            cout: 4,
            height: 3,
            width: 5,
        };
        let x = Tensor::zeros(&ctx, &[1, 4, 3, 5]).unwrap();
        let w3 = Tensor::zeros(&ctx, &[4, 2, 3, 3]).unwrap();
        let w1 = Tensor::zeros(&ctx, &[4, 4]).unwrap();
        let y = Tensor::zeros(&ctx, &[1, 4, 3, 5]).unwrap();
        let w = ConvWeights {
            w3: Some(&w3),
            w1: Some(&w1),
            bias: None,
        };
        let candidates = [Variant::gemm(too_big), Variant::Direct];
        let outcome = time_candidates(&ctx, &candidates, |v| {
            conv::forward_with(v, &kind, &d, &x, &w, &y, false)
        })
        .unwrap();
        assert_eq!(outcome.best.map(|(v, _)| v), Some(Variant::Direct));
        assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
        assert!(
            outcome.failures[0].starts_with("gemm:128x128/4x4/k16"),
            "{:?}",
            outcome.failures
        );
    }
}
