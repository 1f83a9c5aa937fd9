//! The GEMM core's modules compiled by the adapter's own driver: every dispatch form of
//! [`super::spirv_check::cases`] that the device can take (its features, its cooperative-matrix
//! fragment sizes, its subgroup sizes, its limits) made into a pipeline the way a dispatch makes
//! it (the context's pipeline cache: the module as natively created, the dispatch's override
//! constants, no zero-initialised workgroup memory), failing on any error the driver or wgpu
//! reports. It prints `driver-check: <form>` to standard error before each pipeline, so that a
//! driver's own statistics printed while it compiles (Mesa's `RADV_DEBUG=shaderstats`,
//! `NAK_DEBUG=print`) can be told apart: `bench/driver-compile.sh` runs it on Mesa's AMD and
//! NVIDIA compilers for simulated GPUs (drm-shim) and tabulates their registers and spills.
//!
//! Compiling the ~1,900 forms takes minutes on a real driver and far longer on lavapipe, so the
//! test runs only when `HETCONV_DRIVER_COMPILE` is set, and otherwise says that it did not run;
//! set to anything but `1`, it compiles only the forms whose name contains it. It reports how
//! long the forms took one at a time and, with `HETCONV_DRIVER_COMPILE_THREADS` set, builds them
//! again on a new device on all the CPU's threads at once, as the tuner builds its candidates'
//! pipelines (through `compile_forms` of `bench/drm-shim.sh`, which turns Mesa's shader disk
//! cache off: a driver's cache would let the second device skip its compiles).

use super::spirv_check::{Case, cases};
use crate::gpu::{Context, ContextOptions, LimitsChoice, PipelineRequest};

/// Why the device would not take `case` (a feature, fragment size, subgroup layout or limit it
/// lacks: [`super::CoreKernel::runnable`]), if it would not; a cooperative form runs only laid
/// out for the device's smallest subgroups, as a dispatch makes it.
fn not_for_this_device(ctx: &Context, case: &Case) -> Option<String> {
    let missing = case.spec.shader.needs - ctx.features();
    if !missing.is_empty() {
        return Some(crate::gpu::feature_names(missing));
    }
    let (kernel, lanes) = case.kernel?;
    if let Err(e) = kernel.runnable(ctx) {
        return Some(e.to_string());
    }
    let (min, max) = ctx.subgroup_sizes();
    (matches!(kernel, super::CoreKernel::Coop(_)) && lanes != min)
        .then(|| format!("laid out for subgroups of {lanes}, the device's are {min}..{max}"))
}

#[test]
fn every_core_module_compiles_on_the_adapters_driver() {
    let Some(only) = std::env::var("HETCONV_DRIVER_COMPILE").ok() else {
        println!(
            "note: the driver compile check did not run (set HETCONV_DRIVER_COMPILE; \
             bench/driver-compile.sh runs it on Mesa's AMD and NVIDIA compilers)"
        );
        return;
    };
    let ctx = pollster::block_on(Context::new(ContextOptions {
        limits: LimitsChoice::AdapterMaximum,
        ..ContextOptions::default()
    }))
    .expect("a GPU adapter");
    let info = ctx.adapter_info();
    eprintln!("driver-check: adapter {} ({})", info.name, info.driver_info);
    let (mut compiled, mut left_out, mut failures) = (0, Vec::new(), Vec::new());
    let mut requests = Vec::new();
    let started = std::time::Instant::now();
    for case in cases() {
        if only != "1" && !case.label.contains(&only) {
            continue;
        }
        if let Some(why) = not_for_this_device(&ctx, &case) {
            left_out.push(format!("{}: {why}", case.label));
            continue;
        }
        let (workgroup, constants): (Vec<_>, Vec<_>) =
            case.constants.iter().partition(|(name, _)| *name == "WG");
        let workgroup = workgroup.first().map_or(256, |(_, v)| *v as u32);
        eprintln!("driver-check: {}", case.label);
        let made = crate::gpu::lock(&ctx.inner.pipelines).get(
            ctx.device(),
            case.spec,
            workgroup,
            &constants,
        );
        match made {
            Ok(_) => compiled += 1,
            Err(e) => failures.push(format!("{}: {e}", case.label)),
        }
        requests.push(PipelineRequest::new(case.spec, workgroup, &constants));
    }
    let one_at_a_time = started.elapsed().as_secs_f64();
    eprintln!("driver-check: done");
    println!(
        "{compiled} forms compiled on {} in {one_at_a_time:.1} s (one at a time, {:.0} ms each on \
         average), {} failed, {} not for this device",
        info.name,
        1e3 * one_at_a_time / f64::from(compiled.max(1)),
        failures.len(),
        left_out.len()
    );
    if std::env::var_os("HETCONV_DRIVER_COMPILE_THREADS").is_some() {
        // The same forms on a new device, built as the tuner builds its candidates'.
        let fresh = pollster::block_on(Context::new(ContextOptions {
            limits: LimitsChoice::AdapterMaximum,
            ..ContextOptions::default()
        }))
        .expect("a second device on the adapter");
        let built = fresh.build_pipelines(requests);
        println!(
            "the same {} forms on a new device, {} threads at once: {:.1} s ({:.2}x faster)",
            built.built,
            built.threads,
            built.ms / 1e3,
            1e3 * one_at_a_time / built.ms
        );
    }
    for line in &left_out {
        println!("  not for this device: {line}");
    }
    assert!(compiled > 0, "nothing compiled");
    assert!(
        failures.is_empty(),
        "{} forms failed to compile:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
