//! Timing candidates on the device, after a warm-up run that builds the pipelines: GPU
//! timestamps around each of the candidate's dispatches where the device has them (no
//! submission or wait in the number), else wall-clock around whole submissions. The warm-up
//! run's outputs may be checked against a reference variant's first ([`Check`]): a candidate
//! that computes other values (a driver's miscompiled tile, a cooperative-matrix layout the
//! device reads otherwise) fails and is never picked.

use std::time::Instant;

use super::Variant;
use crate::error::{Error, Result};
use crate::gpu::{Context, Prebuilt};
use crate::tensor::Tensor;

/// Samples per surviving candidate (the minimum is kept).
const SAMPLES: usize = 3;
/// A candidate whose first sample is this much slower than the leader is dropped.
const ELIMINATE_OVER: f64 = 1.5;
/// Runs per sample are raised until a sample lasts about this long.
const SAMPLE_MS: f64 = 1.0;
/// At most this many runs per sample.
const MAX_RUNS: usize = 16;
/// The direct kernels (where they are a candidate; else the heuristic's guess, the first) are
/// kept unless another is this much faster: differences inside the timing noise neither move a
/// layer off today's kernels nor make a tuned layer slower than they are.
const MIN_GAIN: f64 = 0.05;

/// Checks the candidates' outputs against `reference`'s (a variant the project's tests trust
/// most: the direct kernels, or for mixed precision the f16 FMA core), on the very inputs being
/// tuned; those in `trusted` (already checked on this device) are not checked again.
pub(super) struct Check {
    pub reference: Variant,
    /// Largest difference allowed, as a fraction of the reference output's largest magnitude.
    pub tolerance: f64,
    pub trusted: Vec<Variant>,
}

#[derive(Default)]
pub(super) struct Outcome {
    /// The winner and its time per run in ms: the fastest candidate that ran, or the direct
    /// kernels (else the first candidate) where within 5% of it.
    pub best: Option<(Variant, f64)>,
    /// Every candidate that ran, with its time per run (a dropped one: its first sample).
    pub timed: Vec<(Variant, f64)>,
    /// Why the others that failed did.
    pub failures: Vec<String>,
    /// The candidates whose outputs matched the reference's.
    pub checked: Vec<Variant>,
    /// The candidates whose outputs did not (also among `failures`).
    pub mismatched: Vec<Variant>,
    /// Candidate runs, warm-ups included.
    pub runs: u64,
    /// The pipelines the candidates needed, built together before any ran.
    pub prebuilt: Prebuilt,
    pub wall_ms: f64,
}

/// Times each candidate (the first is the heuristic's guess, a good early leader; the direct
/// kernels, or without them the guess, are kept unless another is 5% faster). `run` records
/// the pass with a variant and returns its outputs. A candidate that fails to build or run, or
/// (with `check`) computes other values than the reference, is reported and never picked.
/// Work recorded before is submitted first; a profile in progress does not see the tuning
/// runs.
pub(super) fn time_candidates(
    ctx: &Context,
    candidates: &[Variant],
    check: Option<Check>,
    mut run: impl FnMut(Variant) -> Result<Vec<Tensor>>,
) -> Result<Outcome> {
    let started = Instant::now();
    ctx.synchronize()?;
    let profile = ctx.pause_profile()?;
    let mut outcome = Outcome {
        prebuilt: prebuild(ctx, candidates, check.as_ref(), &mut run),
        ..Outcome::default()
    };
    let expected = reference_values(ctx, candidates, check.as_ref(), &mut run);
    // Runs per sample of the leader. Without timestamps a sample's wall time holds a submission
    // and a wait: a first sample of one run would carry all of it against the leader's spread
    // over several, and drop faster candidates; so first samples take the leader's count there.
    let mut leader_runs = 1usize;
    for &variant in candidates {
        let checking = check
            .as_ref()
            .filter(|c| needs_check(c, variant))
            .zip(expected.as_ref());
        let mut sampler = Sampler {
            ctx,
            variant,
            run: &mut run,
            runs_done: &mut outcome.runs,
        };
        let leader = Leader {
            ms: outcome.best.map(|(_, ms)| ms).unwrap_or(f64::INFINITY),
            runs: leader_runs,
        };
        let mut mismatch = false;
        let measured = scoped(ctx, || sampler.measure(checking, leader, &mut mismatch));
        if measured.is_ok() && checking.is_some() {
            outcome.checked.push(variant);
        }
        if mismatch {
            outcome.mismatched.push(variant);
        }
        match measured {
            Ok(m) => {
                log::debug!(
                    "tune: {variant}: {:.3} ms{}",
                    m.ms,
                    if m.survived {
                        ""
                    } else {
                        " (dropped after one sample)"
                    }
                );
                outcome.timed.push((variant, m.ms));
                if m.survived && outcome.best.is_none_or(|(_, b)| m.ms < b) {
                    outcome.best = Some((variant, m.ms));
                    leader_runs = m.runs;
                }
            }
            Err(e) => {
                log::debug!("tune: {variant} failed: {e}");
                outcome.failures.push(format!("{variant}: {e}"));
            }
        }
    }
    ctx.resume_profile(profile);
    outcome.best = keep_preferred(candidates, &outcome.timed, outcome.best);
    outcome.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(outcome)
}

/// Builds the pipelines of every candidate (and of the reference) on the CPU's threads at
/// once, so that a candidate's warm-up run does not compile its own one by one. A run that
/// fails here fails again, and is reported, when its candidate is timed.
fn prebuild(
    ctx: &Context,
    candidates: &[Variant],
    check: Option<&Check>,
    run: &mut impl FnMut(Variant) -> Result<Vec<Tensor>>,
) -> Prebuilt {
    let reference = check.map(|c| c.reference);
    let prebuilt = ctx.prebuild_pipelines(|| {
        run_for_pipelines(ctx, reference.iter().chain(candidates).copied(), run)
    });
    log::debug!(
        "tune: {} pipelines built in {:.1} ms on {} threads",
        prebuilt.built,
        prebuilt.ms,
        prebuilt.threads
    );
    prebuilt
}

/// Runs each of `variants` once while this thread collects pipelines
/// ([`Context::prebuild_pipelines`]), so that their pipelines are noted. Each run is flushed
/// before its outputs go, so that its scratch returns to the pool at once (instead of every
/// run's adding up until a submission), and runs inside error scopes, as when timing: a
/// variant that cannot run (say, its scratch does not fit) is passed over.
pub(super) fn run_for_pipelines(
    ctx: &Context,
    variants: impl Iterator<Item = Variant>,
    run: &mut impl FnMut(Variant) -> Result<Vec<Tensor>>,
) {
    for variant in variants {
        let ran = scoped(ctx, || {
            run(variant).and_then(|out| ctx.flush().map(|()| out))
        });
        if let Err(e) = ran {
            log::debug!("tune: {variant} failed while finding its pipelines: {e}");
        }
    }
}

/// The reference's outputs for `check`, unless every candidate is trusted already (or there is
/// no check). A reference that cannot run leaves the candidates unchecked (the failure
/// surfaces as its own candidacy's). Its scratch is poisoned, as the candidates' is.
fn reference_values(
    ctx: &Context,
    candidates: &[Variant],
    check: Option<&Check>,
    run: &mut impl FnMut(Variant) -> Result<Vec<Tensor>>,
) -> Option<Vec<Vec<f32>>> {
    let check = check.filter(|c| candidates.iter().any(|v| needs_check(c, *v)))?;
    let _poisoned = Poisoned::new(ctx);
    match scoped(ctx, || {
        run(check.reference).and_then(|outputs| read_all(&outputs))
    }) {
        Ok(values) => Some(values),
        Err(e) => {
            log::warn!("tune: the reference {} did not run: {e}", check.reference);
            None
        }
    }
}

/// The leader so far: its time per run (infinite before the first) and its runs per sample.
#[derive(Clone, Copy)]
struct Leader {
    ms: f64,
    runs: usize,
}

/// A candidate's time per run, whether it survived elimination after its first sample, and its
/// runs per sample.
struct Measured {
    ms: f64,
    survived: bool,
    runs: usize,
}

/// Timed runs of one candidate; `runs_done` counts them.
struct Sampler<'a, R> {
    ctx: &'a Context,
    variant: Variant,
    run: &'a mut R,
    runs_done: &'a mut u64,
}

impl<R: FnMut(Variant) -> Result<Vec<Tensor>>> Sampler<'_, R> {
    /// Time per run over `runs` runs, and the last run's outputs: GPU timestamps around the
    /// dispatches where the device has them, else wall-clock time up to a wait for the device.
    fn sample(&mut self, runs: usize) -> Result<(f64, Vec<Tensor>)> {
        let ctx = self.ctx;
        let timestamps = ctx.can_profile();
        let t = Instant::now();
        if timestamps {
            ctx.begin_profile()?;
        }
        let ran = (0..runs).try_fold(Vec::new(), |_, _| {
            *self.runs_done += 1;
            (self.run)(self.variant)
        });
        let gpu_ms = if timestamps {
            // End the profile whether or not the runs succeeded.
            let (times, _) = pollster::block_on(ctx.end_profile())?;
            Some(times.iter().map(|k| k.ms).sum::<f64>())
        } else {
            ctx.synchronize()?;
            None
        };
        let outputs = ran?;
        let ms = gpu_ms.unwrap_or_else(|| t.elapsed().as_secs_f64() * 1e3);
        Ok((ms / runs as f64, outputs))
    }

    /// A warm-up (pipeline build and the driver's compile), whose outputs are compared with
    /// the reference's where `checking` says so (`mismatch` set where they differ), then a
    /// first sample, dropped where over [`ELIMINATE_OVER`] times the leader's, else the best of
    /// [`SAMPLES`] samples of enough runs to last about [`SAMPLE_MS`].
    fn measure(
        &mut self,
        checking: Option<(&Check, &Vec<Vec<f32>>)>,
        leader: Leader,
        mismatch: &mut bool,
    ) -> Result<Measured> {
        if let Some((c, expected)) = checking {
            // On scratch filled with NaN, so that what the candidate leaves unwritten shows.
            let outputs = {
                let _poisoned = Poisoned::new(self.ctx);
                self.sample(1)?.1
            };
            compare(&read_all(&outputs)?, expected, c).inspect_err(|_| *mismatch = true)?;
        } else {
            self.sample(1)?;
        }
        let first_runs = if self.ctx.can_profile() {
            1
        } else {
            leader.runs
        };
        let (first, _) = self.sample(first_runs)?;
        if first > ELIMINATE_OVER * leader.ms {
            return Ok(Measured {
                ms: first,
                survived: false,
                runs: first_runs,
            });
        }
        let runs = ((SAMPLE_MS / first.max(1e-3)).ceil() as usize).clamp(1, MAX_RUNS);
        let mut best = first;
        for _ in 1..SAMPLES {
            best = best.min(self.sample(runs)?.0);
        }
        Ok(Measured {
            ms: best,
            survived: true,
            runs,
        })
    }
}

/// The winner: `fastest`, unless the direct kernels (where they are a candidate; else the
/// first candidate, the heuristic's guess) were timed within [`MIN_GAIN`] of it.
fn keep_preferred(
    candidates: &[Variant],
    timed: &[(Variant, f64)],
    fastest: Option<(Variant, f64)>,
) -> Option<(Variant, f64)> {
    let preferred = candidates
        .iter()
        .find(|v| **v == Variant::Direct)
        .or(candidates.first())?;
    let (_, fastest_ms) = fastest?;
    match timed.iter().find(|(v, _)| v == preferred) {
        Some(&(variant, ms)) if ms <= fastest_ms * (1.0 + MIN_GAIN) => Some((variant, ms)),
        _ => fastest,
    }
}

/// Runs `f` inside error scopes ([`crate::gpu::ErrorScopes`]), so that what wgpu reports
/// meanwhile fails this run instead of reaching the device's handler. After an out-of-memory
/// error the pool's free buffers are dropped: one of them may be the invalid buffer the failed
/// allocation returned, which must not serve later work outside the scopes.
pub(super) fn scoped<T>(ctx: &Context, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let scopes = crate::gpu::ErrorScopes::push(ctx.device());
    let result = f();
    let Some(e) = scopes.pop() else {
        return result;
    };
    if matches!(e, wgpu::Error::OutOfMemory { .. }) {
        // The buffers the run released are free after a submission.
        ctx.synchronize()?;
        ctx.trim();
    }
    Err(Error::Gpu {
        op: "tune",
        message: e.to_string(),
        source: Some(Box::new(e)),
    })
}

/// Fills every tensor handed out uninitialised with NaN while it lives (see
/// `ContextInner::poison_scratch`).
struct Poisoned<'a>(&'a Context);

impl<'a> Poisoned<'a> {
    fn new(ctx: &'a Context) -> Self {
        ctx.inner
            .poison_scratch
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Self(ctx)
    }
}

impl Drop for Poisoned<'_> {
    fn drop(&mut self) {
        self.0
            .inner
            .poison_scratch
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether `variant`'s outputs are to be checked: neither the reference nor trusted.
fn needs_check(check: &Check, variant: Variant) -> bool {
    variant != check.reference && !check.trusted.contains(&variant)
}

fn read_all(outputs: &[Tensor]) -> Result<Vec<Vec<f32>>> {
    outputs.iter().map(Tensor::to_vec).collect()
}

/// Refuses `got` unless each output is within the tolerance of the reference's (a fraction of
/// its largest finite magnitude) wherever the reference's is finite; a non-finite value there
/// is a failure. Where the reference overflowed (an f16 infinity on a first mixed step), any
/// value goes: two correct kernels may round a sum at the edge of the range apart.
fn compare(got: &[Vec<f32>], expected: &[Vec<f32>], check: &Check) -> Result<()> {
    let wrong = |message: String| Error::Gpu {
        op: "tune",
        message: format!(
            "computes other values than {} on the same inputs: {message}",
            check.reference
        ),
        source: None,
    };
    if got.len() != expected.len() {
        return Err(wrong(format!(
            "{} outputs, {} expected",
            got.len(),
            expected.len()
        )));
    }
    for (o, (got, expected)) in got.iter().zip(expected).enumerate() {
        if got.len() != expected.len() {
            return Err(wrong(format!("output {o} has {} values", got.len())));
        }
        let largest = expected
            .iter()
            .filter(|v| v.is_finite())
            .fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
        let allowed = check.tolerance * largest.max(f64::MIN_POSITIVE);
        let off = got.iter().zip(expected).position(|(&g, &e)| {
            let (g, e) = (f64::from(g), f64::from(e));
            e.is_finite() && !(g.is_finite() && (g - e).abs() <= allowed)
        });
        if let Some(i) = off {
            return Err(wrong(format!(
                "output {o}[{i}] is {}, the reference's {} (allowed: {allowed:.3e})",
                got[i], expected[i]
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::{self, ConvDims, ConvKind, ConvWeights};
    use crate::kernels::gemm_core::{CoreKernel, TileShape};
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
        let outcome = time_candidates(&ctx, &candidates, None, |v| {
            conv::forward_with(v, &kind, &d, &x, &w, &y, false).map(|_| vec![y.clone()])
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

    /// Every pipeline the candidates' runs need (a split reduction's second pass included) is
    /// built before the first of them runs: timing builds none of its own.
    #[test]
    fn the_candidates_pipelines_are_built_before_any_is_timed() {
        let ctx = Context::new_blocking().expect("a GPU adapter");
        let kind = ConvKind::standard3x3();
        let d = ConvDims {
            batch: 2,
            cin: 16,
            cout: 8,
            height: 5,
            width: 3,
        };
        let x = Tensor::zeros(&ctx, &[2, 16, 5, 3]).unwrap();
        let w3 = Tensor::zeros(&ctx, &[8, 16, 3, 3]).unwrap();
        let w = ConvWeights {
            w3: Some(&w3),
            w1: None,
            bias: None,
        };
        let split = CoreKernel::F32(TileShape::new(8, 64, 2, 4, 16));
        assert!(split.reduction_splits((1, 8, 30), 144, u64::MAX).0 > 1);
        let candidates = [
            Variant::Direct,
            Variant::Core(split),
            Variant::gemm(TileShape::new(32, 32, 4, 4, 16)),
            Variant::SplitK(split),
        ];
        let cached = || crate::gpu::lock(&ctx.inner.pipelines).len();
        let before = cached();
        let outcome = time_candidates(&ctx, &candidates, None, |v| {
            let y = Tensor::zeros(&ctx, &[2, 8, 5, 3])?;
            conv::forward_with(v, &kind, &d, &x, &w, &y, false).map(|_| vec![y])
        })
        .unwrap();
        assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
        assert_eq!(outcome.timed.len(), candidates.len());
        // One per whole-product candidate; the split shares its tile's and adds its sum pass.
        assert!(
            outcome.prebuilt.built >= candidates.len(),
            "{}",
            outcome.prebuilt.built
        );
        assert_eq!(cached() - before, outcome.prebuilt.built);
    }

    /// A candidate that runs but computes other values than the reference (here: one value
    /// off by a tenth of the largest) is reported and never picked, however fast; the ones that
    /// match are reported as checked; a trusted one is not checked again.
    #[test]
    fn a_candidate_that_computes_other_values_is_never_picked() {
        let ctx = Context::new_blocking().expect("a GPU adapter");
        let kind = ConvKind::hetconv(2);
        let d = ConvDims {
            batch: 2,
            cin: 4,
            cout: 6,
            height: 5,
            width: 3,
        };
        let values = |n: usize, k: usize| -> Vec<f32> {
            (0..n).map(|i| ((i * k) % 17) as f32 / 8.0 - 1.0).collect()
        };
        let x = Tensor::from_slice(&ctx, &[2, 4, 5, 3], &values(120, 7)).unwrap();
        let w3 = Tensor::from_slice(&ctx, &[6, 2, 3, 3], &values(108, 5)).unwrap();
        let w1 = Tensor::from_slice(&ctx, &[6, 4], &values(24, 3)).unwrap();
        let w = ConvWeights {
            w3: Some(&w3),
            w1: Some(&w1),
            bias: None,
        };
        let good = Variant::gemm(TileShape::new(8, 64, 2, 4, 16));
        let bad = Variant::gemm(TileShape::new(32, 32, 4, 4, 16));
        let run = |v: Variant| -> Result<Vec<Tensor>> {
            let y = Tensor::zeros(&ctx, &[2, 6, 5, 3])?;
            conv::forward_with(v, &kind, &d, &x, &w, &y, false)?;
            if v != bad {
                return Ok(vec![y]);
            }
            let mut wrong = y.to_vec()?;
            let largest = wrong.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            wrong[17] += 0.1 * largest;
            Ok(vec![Tensor::from_slice(&ctx, &[2, 6, 5, 3], &wrong)?])
        };
        let check = |trusted: Vec<Variant>| Check {
            reference: Variant::Direct,
            tolerance: 1e-3,
            trusted,
        };
        let outcome = time_candidates(
            &ctx,
            &[bad, Variant::Direct, good],
            Some(check(vec![])),
            run,
        )
        .unwrap();
        assert_ne!(outcome.best.map(|(v, _)| v), Some(bad));
        assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
        let failure = &outcome.failures[0];
        assert!(
            failure.starts_with("gemm:32x32/4x4/k16")
                && failure.contains("other values than direct")
                && failure.contains("output 0[17]"),
            "{failure}"
        );
        assert_eq!(outcome.checked, [good]);

        // Trusted (checked before on this device): not checked, so it stays a candidate.
        let outcome =
            time_candidates(&ctx, &[bad, good], Some(check(vec![bad, good])), run).unwrap();
        assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
        assert!(outcome.checked.is_empty());
    }

    /// The direct kernels stay unless another candidate is over 5% faster, also where the
    /// heuristic guessed a tile; without them, the guess (the first candidate) stays so.
    #[test]
    fn the_direct_kernels_stay_unless_another_is_5_percent_faster() {
        let tile = Variant::gemm(TileShape::new(32, 32, 4, 4, 16));
        let other = Variant::gemm(TileShape::new(64, 64, 4, 4, 16));
        let pick = |candidates: &[Variant], timed: &[(Variant, f64)]| {
            let fastest = timed.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
            keep_preferred(candidates, timed, fastest).map(|(v, _)| v)
        };
        let order = [tile, Variant::Direct, other];
        assert_eq!(
            pick(
                &order,
                &[(tile, 1.0), (Variant::Direct, 1.04), (other, 1.2)]
            ),
            Some(Variant::Direct)
        );
        assert_eq!(
            pick(
                &order,
                &[(tile, 1.0), (Variant::Direct, 1.06), (other, 1.2)]
            ),
            Some(tile)
        );
        // The direct kernels failed (not timed): the fastest.
        assert_eq!(pick(&order, &[(tile, 1.04), (other, 1.0)]), Some(other));
        let order = [tile, other];
        assert_eq!(pick(&order, &[(tile, 1.04), (other, 1.0)]), Some(tile));
        assert_eq!(pick(&order, &[(tile, 1.06), (other, 1.0)]), Some(other));
        assert_eq!(pick(&order, &[]), None);
    }

    /// What wgpu reports while a candidate runs (here a validation error: a buffer whose usage
    /// is not allowed) fails that candidate, named; on an application's own device it never
    /// reaches the application's error handler.
    #[test]
    fn a_wgpu_error_while_a_candidate_runs_fails_it_on_an_application_device() {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter =
            pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
                .expect("an adapter");
        let (device, queue) =
            pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
                .expect("a device");
        let handled = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = handled.clone();
        device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string())
        }));
        let ctx = Context::from_device(device, queue);
        let layer = Pointwise::new(&ctx);
        let faulty = Variant::gemm(TileShape::new(32, 32, 4, 4, 16));
        let run = |v: Variant| -> Result<Vec<Tensor>> {
            if v == faulty {
                let _ = ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: 16,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                });
            }
            Ok(vec![layer.forward(Variant::Direct)?])
        };
        let outcome = time_candidates(&ctx, &[faulty, Variant::Direct], None, run).unwrap();
        assert_eq!(outcome.best.map(|(v, _)| v), Some(Variant::Direct));
        assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
        assert!(
            outcome.failures[0].starts_with("gemm:32x32/4x4/k16"),
            "{:?}",
            outcome.failures
        );
        assert!(handled.lock().unwrap().is_empty(), "{handled:?}");
        let y = layer.forward(Variant::Direct).unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![0.5; 36]);
    }

    /// A 4 -> 4 pointwise layer on a 3x3 map whose every output is 0.5.
    struct Pointwise {
        x: Tensor,
        w1: Tensor,
    }

    impl Pointwise {
        fn new(ctx: &Context) -> Self {
            Self {
                x: Tensor::from_slice(ctx, &[1, 4, 3, 3], &[0.5; 36]).unwrap(),
                w1: Tensor::from_slice(ctx, &[4, 4], &[0.25; 16]).unwrap(),
            }
        }

        /// The output left uninitialised, as the tuner's scratch is.
        fn output(&self) -> Result<Tensor> {
            Tensor::uninit(self.x.context(), &[1, 4, 3, 3])
        }

        /// `variant`'s forward pass into a new output.
        fn forward(&self, variant: Variant) -> Result<Tensor> {
            let d = ConvDims {
                batch: 1,
                cin: 4,
                cout: 4,
                height: 3,
                width: 3,
            };
            let w = ConvWeights {
                w1: Some(&self.w1),
                ..Default::default()
            };
            let y = self.output()?;
            conv::forward_with(variant, &ConvKind::pointwise(), &d, &self.x, &w, &y, false)?;
            Ok(y)
        }
    }

    /// A candidate that writes nothing is caught although the buffer it is handed was the
    /// reference's a moment before (the pool recycles it, holding the right values): the
    /// checked runs get their scratch filled with NaN first.
    #[test]
    fn a_candidate_that_leaves_its_output_unwritten_is_caught() {
        let ctx = Context::new_blocking().expect("a GPU adapter");
        let layer = Pointwise::new(&ctx);
        let lazy = Variant::gemm(TileShape::new(32, 32, 4, 4, 16));
        let run = |v: Variant| -> Result<Vec<Tensor>> {
            Ok(vec![if v == lazy {
                layer.output()?
            } else {
                layer.forward(v)?
            }])
        };
        let check = Check {
            reference: Variant::Direct,
            tolerance: 1e-3,
            trusted: Vec::new(),
        };
        let outcome = time_candidates(&ctx, &[lazy, Variant::Direct], Some(check), run).unwrap();
        assert_eq!(outcome.best.map(|(v, _)| v), Some(Variant::Direct));
        assert_eq!(outcome.mismatched, [lazy], "{:?}", outcome.failures);
        assert!(
            outcome.failures[0].contains("NaN"),
            "{:?}",
            outcome.failures
        );
    }
}
