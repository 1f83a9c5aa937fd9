//! Choosing the variant of one key, in this order: the choice already made for it by a handle
//! alike, the one the conv algorithm forces, the cache's entry, a timing now (`full` mode), the
//! heuristic's (see the parent module's doc).

#[cfg(not(target_arch = "wasm32"))]
use super::timing;
use super::{
    Choice, Pass, Problem, Source, TuneMode, Tuner, Variant, best_kernel, candidates, heuristic,
    kernels,
};
#[cfg(not(target_arch = "wasm32"))]
use crate::error::Error;
use crate::error::Result;
use crate::gpu::{Context, ConvAlgorithm, Precision};
use crate::kernels::gemm_core::CoreKernel;
use crate::tensor::Tensor;

/// A handle's tuning mode and conv algorithm: the choices are remembered per slot.
type Slot = (TuneMode, ConvAlgorithm);

/// Picks the variant for `key` (the pass and shape; the precision is added to it and to
/// `problem`: the context's, or mixed where `problem` says so, as for f16 activations; see the
/// module doc) and records the choice. `run` records the pass with a given variant on scratch
/// outputs (zeroed where the pass adds to them) and returns them; the tuner calls it while
/// timing, and checks the outputs of each variant new on this device against the reference's
/// (see [`timing::Check`]).
pub(crate) fn choose(
    ctx: &Context,
    problem: &Problem,
    key: &str,
    run: impl FnMut(Variant) -> Result<Vec<Tensor>>,
) -> Result<Variant> {
    let precision = ctx.precision().max(problem.precision);
    let problem = &Problem {
        precision,
        ..*problem
    };
    let key = &full_key(ctx, problem, key);
    let mode = ctx.tune_mode();
    let slot = (mode, ctx.conv_algorithm());
    if let Some(c) = ctx.tuner().choices.get(&slot).and_then(|c| c.get(key)) {
        return Ok(c.variant);
    }
    if let Some(variant) = forced(ctx, slot.1, problem) {
        let mut tuner = ctx.tuner();
        return Ok(record(&mut tuner, slot, key, variant, Source::Forced, None));
    }
    let kernels = runnable_kernels(ctx, precision);
    let mut tuner = ctx.tuner();
    let listed = candidates(&kernels, problem);
    if mode != TuneMode::Off {
        if let Some((variant, ms)) = tuner.cache(ctx).get(key) {
            if listed.contains(&variant) {
                return Ok(record(&mut tuner, slot, key, variant, Source::Cached, ms));
            }
            log::warn!("tune cache: {key}: {variant} is not a candidate here; choosing again");
        }
    }
    let guess = heuristic(ctx.adapter_info().device_type, &kernels, problem);
    #[cfg(not(target_arch = "wasm32"))]
    let (listed, guess) = without_mismatched(&tuner, &check_class(key), listed, guess);
    #[cfg(not(target_arch = "wasm32"))]
    if mode == TuneMode::Full && listed.len() > 1 {
        // Timing submits: not while hetconv records into the application's encoder. The
        // heuristic's choice serves, unremembered, so that a call outside it times the key.
        if ctx.records_into_application_encoder() {
            return Ok(guess);
        }
        let check = check_for(&tuner, key, &listed, &kernels, precision);
        if ctx.collects_pipelines_here() {
            // Only pipelines are wanted (`Context::prebuild_pipelines`): every candidate's and
            // the reference's are noted, none is timed (their dispatches are not recorded),
            // and the heuristic's choice serves, unremembered, as above.
            drop(tuner);
            let mut run = run;
            let reference = check.map(|c| c.reference);
            timing::run_for_pipelines(ctx, reference.into_iter().chain(listed), &mut run);
            return Ok(guess);
        }
        drop(tuner);
        let mut order = vec![guess];
        order.extend(listed.into_iter().filter(|v| *v != guess));
        return tune_now(ctx, slot, key, &order, check, run);
    }
    #[cfg(target_arch = "wasm32")]
    let _ = run;
    Ok(record(
        &mut tuner,
        slot,
        key,
        guess,
        Source::Heuristic,
        None,
    ))
}

/// `key` with what else decides its choice: the direct conv kernels' slicing, where the
/// context's minimum of invocations is not the adapter's default (such a value has keys and
/// timings of its own), and the precision.
fn full_key(ctx: &Context, problem: &Problem, key: &str) -> String {
    let invocations = ctx.conv_min_invocations();
    let default = crate::gpu::default_conv_min_invocations(ctx.adapter_info().device_type);
    let slicing = if matches!(problem.pass, Pass::Matmul) || invocations == default {
        String::new()
    } else {
        format!(" mi={invocations}")
    };
    format!("{key}{slicing} {}", problem.precision)
}

/// The variant `algorithm` forces, if it forces one (not `Auto`): `TiledGemm` takes the best
/// tile that fits the shape (under mixed precision the heuristic's choice), else the direct
/// kernels.
fn forced(ctx: &Context, algorithm: ConvAlgorithm, problem: &Problem) -> Option<Variant> {
    match algorithm {
        ConvAlgorithm::Auto => None,
        ConvAlgorithm::Direct => Some(Variant::Direct),
        ConvAlgorithm::TiledGemm => {
            let kernels = runnable_kernels(ctx, problem.precision);
            let tiled = match problem.precision {
                Precision::F32 => best_kernel(&kernels, problem).map(Variant::Core),
                Precision::Mixed => {
                    Some(heuristic(ctx.adapter_info().device_type, &kernels, problem))
                }
            };
            Some(tiled.unwrap_or(Variant::Direct))
        }
        // A tile shape the device cannot run is refused where it is dispatched.
        ConvAlgorithm::Fixed(v) => Some(v),
    }
}

/// `listed` without the variants that computed other values than the reference on a shape of
/// `class` (no candidates any more), and the heuristic's `guess`, or the first variant kept
/// where the guess was one of them.
#[cfg(not(target_arch = "wasm32"))]
fn without_mismatched(
    tuner: &Tuner,
    class: &str,
    listed: Vec<Variant>,
    guess: Variant,
) -> (Vec<Variant>, Variant) {
    let refused = |v: &Variant| tuner.mismatched.contains(&(class.to_string(), *v));
    let kept: Vec<Variant> = listed.into_iter().filter(|v| !refused(v)).collect();
    let guess = match kept.first() {
        Some(&first) if refused(&guess) => first,
        _ => guess,
    };
    (kept, guess)
}

/// How `key`'s candidates are checked: against [`reference`], with the precision's tolerance;
/// those already checked on a shape of the key's class are trusted. None where no reference
/// exists.
#[cfg(not(target_arch = "wasm32"))]
fn check_for(
    tuner: &Tuner,
    key: &str,
    listed: &[Variant],
    kernels: &[CoreKernel],
    precision: Precision,
) -> Option<timing::Check> {
    let class = check_class(key);
    reference(listed, kernels, precision).map(|reference| timing::Check {
        reference,
        tolerance: match precision {
            Precision::F32 => F32_CHECK_TOLERANCE,
            Precision::Mixed => MIXED_CHECK_TOLERANCE,
        },
        trusted: listed
            .iter()
            .copied()
            .filter(|v| tuner.checked.contains(&(class.clone(), *v)))
            .collect(),
    })
}

/// Times the candidates of `key` in `order` (the heuristic's guess first), takes in what that
/// found ([`Tuner::learn`]), stores the winner in the cache and records it for `slot`, with
/// every candidate's time.
#[cfg(not(target_arch = "wasm32"))]
fn tune_now(
    ctx: &Context,
    slot: Slot,
    key: &str,
    order: &[Variant],
    check: Option<timing::Check>,
    run: impl FnMut(Variant) -> Result<Vec<Tensor>>,
) -> Result<Variant> {
    let outcome = timing::time_candidates(ctx, order, check, run)?;
    let mut tuner = ctx.tuner();
    tuner.learn(key, &outcome);
    let Some((variant, ms)) = outcome.best else {
        return Err(Error::Gpu {
            op: "tune",
            message: format!("{key}: no candidate ran ({})", outcome.failures.join("; ")),
            source: None,
        });
    };
    let cache = tuner.cache(ctx);
    cache.insert(key, variant, ms);
    cache.save_or_warn();
    record(&mut tuner, slot, key, variant, Source::Tuned, Some(ms));
    if let Some(c) = tuner.choices.get_mut(&slot).and_then(|c| c.get_mut(key)) {
        c.candidates = outcome.timed;
    }
    // A handle in `cached` mode that took the heuristic for this key takes the cache's new
    // entry on its next call.
    if let Some(cached) = tuner.choices.get_mut(&(TuneMode::Cached, slot.1)) {
        cached.remove(key);
    }
    Ok(variant)
}

#[cfg(not(target_arch = "wasm32"))]
impl Tuner {
    /// Takes in what timing `key`'s candidates found: which variants matched the reference on
    /// the key's check class and which did not (handles of every mode that chose one of those
    /// on a key of the class choose again, among the others, on their next call), what the
    /// timing cost, and each failure, in a warning.
    fn learn(&mut self, key: &str, outcome: &timing::Outcome) {
        let class = check_class(key);
        for &variant in &outcome.checked {
            self.checked.insert((class.clone(), variant));
        }
        for &variant in &outcome.mismatched {
            self.mismatched.insert((class.clone(), variant));
        }
        if !outcome.mismatched.is_empty() {
            for choices in self.choices.values_mut() {
                choices.retain(|k, c| {
                    !(outcome.mismatched.contains(&c.variant) && check_class(k) == class)
                });
            }
        }
        self.stats.keys_timed += 1;
        self.stats.candidate_runs += outcome.runs;
        self.stats.candidates_checked += outcome.checked.len() as u64;
        self.stats.candidates_failed += outcome.failures.len() as u64;
        for failure in &outcome.failures {
            log::warn!("tune: {key}: {failure}");
        }
        self.stats.pipelines_built += outcome.prebuilt.built as u64;
        self.stats.pipeline_threads = self
            .stats
            .pipeline_threads
            .max(outcome.prebuilt.threads as u64);
        self.stats.pipeline_ms += outcome.prebuilt.ms;
        self.stats.ms += outcome.wall_ms;
    }
}

/// A candidate's outputs may differ from the reference's by this fraction of the largest
/// reference value: f32 variants differ only in their summation order (about 1e-6 relative at
/// a CNN's depths); a wrong index or layout is off by the values' own size.
#[cfg(not(target_arch = "wasm32"))]
const F32_CHECK_TOLERANCE: f64 = 1e-3;
/// As [`F32_CHECK_TOLERANCE`] for mixed precision: the variants round the same f16 operands and
/// sum in f32 (a cooperative-matrix unit may order or block its sums otherwise).
#[cfg(not(target_arch = "wasm32"))]
const MIXED_CHECK_TOLERANCE: f64 = 1e-2;

/// What a check covers: the key without its shape (batch, channels, map or product sizes) and
/// the direct kernels' slicing (`mi=`), so
/// the pass, the kernels' specialisation (groups, kernel side, stride, 1x1 mode, operand
/// layouts, f16 activations) and the precision:
/// `conv_forward g4 k3 s1 pw=Masked b128 64->64 32x32 act=f16 mixed` is checked as
/// `conv_forward g4 k3 s1 pw=Masked act=f16 mixed`.
#[cfg(not(target_arch = "wasm32"))]
fn check_class(key: &str) -> String {
    let numeric =
        |t: &str, extra: char| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == extra);
    key.split(' ')
        .filter(|t| {
            let batch = t.strip_prefix('b').is_some_and(|n| numeric(n, '0'));
            !(batch || t.starts_with("mi=") || t.contains("->") || numeric(t, 'x'))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The variant the candidates are checked against: the direct kernels (what every test compares
/// with the CPU reference first), or under mixed precision the f16 FMA core (no cooperative
/// matrices, no split reduction): a candidate one, else the smallest the device runs (a shape
/// its tiles would leave over half empty still computes right, only slowly); None where
/// neither exists.
#[cfg(not(target_arch = "wasm32"))]
fn reference(listed: &[Variant], kernels: &[CoreKernel], precision: Precision) -> Option<Variant> {
    match precision {
        Precision::F32 => listed.iter().copied().find(|v| *v == Variant::Direct),
        Precision::Mixed => listed
            .iter()
            .copied()
            .find(|v| matches!(v, Variant::Core(CoreKernel::F16(_))))
            .or_else(|| {
                kernels
                    .iter()
                    .copied()
                    .filter(|k| matches!(k, CoreKernel::F16(_)))
                    .min_by_key(|k| k.rows() * k.cols())
                    .map(Variant::Core)
            }),
    }
}

/// [`kernels`], found once per context and precision.
fn runnable_kernels(ctx: &Context, precision: Precision) -> Vec<CoreKernel> {
    if let Some(found) = ctx.tuner().runnable.get(&precision) {
        return found.clone();
    }
    let found = kernels(ctx, precision);
    ctx.tuner().runnable.insert(precision, found.clone());
    found
}

fn record(
    tuner: &mut Tuner,
    slot: Slot,
    key: &str,
    variant: Variant,
    source: Source,
    ms: Option<f64>,
) -> Variant {
    tuner.choices.entry(slot).or_default().insert(
        key.to_string(),
        Choice {
            variant,
            source,
            ms,
            candidates: Vec::new(),
        },
    );
    variant
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A variant that tuning finds to compute wrong values is dropped from the choices of
    /// handles in every mode: an `off` handle whose heuristic had picked it chooses again, and
    /// never it. (The outputs here are made up per variant: only the tuner is under test.)
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_variant_found_wrong_leaves_every_modes_choices() {
        let ctx = Context::new_blocking().expect("a GPU adapter");
        if !ctx.features().contains(wgpu::Features::SHADER_F16) {
            // Straight to stderr (libtest captures a passing test's prints); CI needs the check.
            let text = format!(
                "{} has no shader-f16: the mixed-precision tuner check was not run",
                ctx.adapter_info().name
            );
            assert!(std::env::var_os("CI").is_none(), "{text} (CI needs it)");
            use std::io::Write;
            let _ = writeln!(std::io::stderr().lock(), "note: {text}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        ctx.set_tune_cache(Some(dir.path().join("tune.json")));
        let off = ctx.with_own_settings();
        off.set_tune_mode(TuneMode::Off);
        let full = ctx.with_own_settings();
        full.set_tune_mode(TuneMode::Full);
        let problem = Problem {
            pass: Pass::ConvForward,
            precision: Precision::Mixed,
            groups: 1,
            rows: 16,
            cols: 64,
            depth: 36,
        };
        let key = "conv_forward g1 k3 s1 pw=None b1 4->16 8x8";
        let never = |_: Variant| -> Result<Vec<crate::tensor::Tensor>> {
            unreachable!("off mode times nothing")
        };
        let guess = choose(&off, &problem, key, never).unwrap();
        let on = &full;
        let wrong = move |v: Variant| -> Result<Vec<crate::tensor::Tensor>> {
            let value = if v == guess { 2.0 } else { 1.0 };
            Ok(vec![crate::tensor::Tensor::from_slice(
                on,
                &[4],
                &[value; 4],
            )?])
        };
        let kernels = runnable_kernels(&full, Precision::Mixed);
        let listed = candidates(&kernels, &problem);
        assert_ne!(
            reference(&listed, &kernels, Precision::Mixed),
            Some(guess),
            "the heuristic's guess is checked against another variant"
        );
        let tuned = choose(&full, &problem, key, wrong).unwrap();
        assert_ne!(tuned, guess);
        assert_eq!(full.tune_stats().candidates_failed, 1);
        let again = choose(&off, &problem, key, never).unwrap();
        assert_ne!(
            again, guess,
            "off mode chose again, without the wrong variant"
        );
        let choices = off.kernel_choices();
        assert_eq!(choices.len(), 1, "{choices:?}");
        assert_eq!(choices[0].1.source, Source::Heuristic);
    }

    #[test]
    fn a_check_class_is_the_key_without_its_shape() {
        assert_eq!(
            check_class("conv_forward g4 k3 s1 pw=Masked b128 64->64 32x32 act=f16 mixed"),
            "conv_forward g4 k3 s1 pw=Masked act=f16 mixed"
        );
        assert_eq!(
            check_class("conv_weight_grad g1 k3 s2 pw=None b1 3->16 7x6 mi=0 f32"),
            "conv_weight_grad g1 k3 s2 pw=None f32"
        );
        assert_eq!(
            check_class("matmul 64x128x10 AsIs/Transposed mixed"),
            "matmul AsIs/Transposed mixed"
        );
    }
}
