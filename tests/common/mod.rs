//! Helpers shared by the integration tests: a GPU context, seeded data, tolerances, fixtures.
#![allow(dead_code)]

pub mod exported;

use std::path::PathBuf;

use hetconv::kernels::gemm_core::{COOP_TILES, CoreKernel, TILE_SHAPES};
use hetconv::reference::compare::{check_bounds, f16_sum_bound};
use hetconv::tune::Variant;
use hetconv::{Context, Tensor};

/// A context on the default adapter (lavapipe in CI), with the tuner off: tests neither read
/// nor write the user's tune cache, and `Auto` takes the heuristic's choice.
pub fn ctx() -> Context {
    let ctx =
        Context::new_blocking().expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)");
    ctx.set_tune_mode(hetconv::tune::TuneMode::Off);
    ctx
}

/// A small deterministic generator (PCG-style LCG); tests stay reproducible without a crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    /// Uniform in [-1, 1).
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// `v` rounded to f16 values (nearest, ties to even), as f32.
pub fn round16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

pub use hetconv::reference::compare::Tolerance;

/// f32 GPU kernels vs the f64 reference on values in [-1, 1) with short reductions
/// (at most a few hundred terms): rounding stays far below this.
pub const F32_KERNEL: Tolerance = Tolerance::F32_KERNEL;

#[track_caller]
pub fn assert_close(name: &str, got: &[f32], want: &[f64], tol: Tolerance) {
    if let Err(m) = tol.check(got, want) {
        panic!("{name}: {m} ({tol:?})");
    }
}

/// Same check between two f64 slices (reference vs reference, finite differences).
#[track_caller]
pub fn assert_close64(name: &str, got: &[f64], want: &[f64], tol: Tolerance) {
    if let Err(m) = tol.check(got, want) {
        panic!("{name}: {m} ({tol:?})");
    }
}

/// Central finite differences of `f` at `v` (step 1e-6, f64).
pub fn finite_differences(v: &[f64], f: &dyn Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-6;
    (0..v.len())
        .map(|i| {
            let (mut up, mut down) = (v.to_vec(), v.to_vec());
            up[i] += h;
            down[i] -= h;
            (f(&up) - f(&down)) / (2.0 * h)
        })
        .collect()
}

pub fn upload(ctx: &Context, shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_slice(ctx, shape, data).unwrap()
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One case of the PyTorch-generated oracle (`tests/fixtures/golden/manifest.json`).
#[derive(Clone)]
pub struct GoldenCase {
    pub name: String,
    pub params: serde_json::Value,
    tensors: serde_json::Map<String, serde_json::Value>,
}

impl GoldenCase {
    pub fn shape(&self, key: &str) -> Vec<usize> {
        self.tensors[key]["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    }

    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The raw little-endian f32 values of tensor `key`.
    pub fn f32(&self, key: &str) -> Vec<f32> {
        let path = fixtures()
            .join("golden")
            .join(self.tensors[key]["file"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    pub fn f64(&self, key: &str) -> Vec<f64> {
        to_f64(&self.f32(key))
    }

    pub fn param(&self, key: &str) -> usize {
        self.params[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: param {key}", self.name)) as usize
    }

    /// Checks a GPU result against tensor `key` with the manifest's tolerance; `label` names the
    /// check in the failure message.
    #[track_caller]
    pub fn expect(&self, label: &str, key: &str, got: &[f32]) {
        assert_close(
            &format!("{} {label}", self.name),
            got,
            &self.f64(key),
            self.tolerance(key),
        );
    }

    /// Checks a CPU reference result against tensor `key`, as [`GoldenCase::expect`].
    #[track_caller]
    pub fn expect64(&self, label: &str, key: &str, got: &[f64]) {
        assert_close64(
            &format!("{} {label}", self.name),
            got,
            &self.f64(key),
            self.tolerance(key),
        );
    }

    /// The manifest's tolerance hint: 1e-5 x max |reference| (at least 1e-6).
    pub fn tolerance(&self, key: &str) -> Tolerance {
        let max = self.tensors[key]["torch_f32_err"]["max_abs_ref"]
            .as_f64()
            .unwrap_or(1.0);
        Tolerance {
            rtol: 1e-5,
            atol: (1e-5 * max).max(1e-6),
        }
    }
}

/// Every case whose name starts with `prefix`.
pub fn golden_cases(prefix: &str) -> Vec<GoldenCase> {
    let text = std::fs::read_to_string(fixtures().join("golden/manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases: Vec<GoldenCase> = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with(prefix))
        .map(|c| GoldenCase {
            name: c["name"].as_str().unwrap().to_string(),
            params: c["params"].clone(),
            tensors: c["tensors"].as_object().unwrap().clone(),
        })
        .collect();
    assert!(!cases.is_empty(), "no golden case starts with {prefix}");
    cases
}

/// The ways the conv family and the linear layer can be computed: the direct kernels, the
/// direct kernels with their reduction cut into slices (forced on small shapes), and the GEMM
/// core with each of its tile shapes. A new variant is tested by being listed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPath {
    Direct,
    DirectSliced,
    Variant(Variant),
}

/// Every path; tile shapes that need more workgroup memory than `ctx` was opened with are left
/// out, and the output says so (tests on an adapter-maximum context cover them). Under
/// `HETCONV_ONLY_MIXED=1` (test.sh's second run, on Mesa 26 lavapipe for the cooperative
/// tiles) none: the run without it covers them, and the output says so.
pub fn conv_paths(ctx: &Context) -> Vec<ConvPath> {
    if std::env::var_os("HETCONV_ONLY_MIXED").is_some() {
        note(
            "HETCONV_ONLY_MIXED is set: the direct and f32 paths were left out (the run without it covers them)",
        );
        return Vec::new();
    }
    let mut paths = vec![ConvPath::Direct, ConvPath::DirectSliced];
    for tile in TILE_SHAPES {
        if tile.fits(ctx.limits()) {
            paths.push(ConvPath::Variant(Variant::gemm(tile)));
        } else {
            note(&format!(
                "tile {tile} needs {} B of workgroup memory, this context allows {} B: not run on it",
                tile.workgroup_bytes(),
                ctx.limits().max_compute_workgroup_storage_size
            ));
        }
    }
    paths
}

/// The mixed-precision kernels `ctx` can run: every f16 tile and every cooperative tile; each
/// one left out is named with the reason. Under `HETCONV_REQUIRE_COOP=1` (CI's run on Mesa 26
/// lavapipe) a device without any cooperative tile fails instead, as does leaving out a
/// cooperative tile whose fragment size the device offers (each tile stages its own way: the
/// 32x32/8x8x8/w32 tile alone takes `stage_slot`'s general path); without `shader-f16` so does
/// every run under `CI`.
pub fn mixed_paths(ctx: &Context) -> Vec<ConvPath> {
    let all = TILE_SHAPES
        .iter()
        .map(|t| CoreKernel::F16(*t))
        .chain(COOP_TILES.iter().map(|t| CoreKernel::Coop(*t)));
    let require_coop = std::env::var_os("HETCONV_REQUIRE_COOP").is_some();
    let mut paths = Vec::new();
    for kernel in all {
        match kernel.runnable(ctx) {
            Ok(()) => paths.push(ConvPath::Variant(Variant::Core(kernel))),
            Err(e) => {
                let note = format!("{kernel} not run: {e}");
                if let CoreKernel::Coop(tile) = kernel {
                    assert!(
                        !(require_coop && offers_fragments(ctx, tile.size)),
                        "{note} (HETCONV_REQUIRE_COOP is set, and the device offers {0}x{0}x{0} fragments)",
                        tile.size
                    );
                }
                self::note(&note);
            }
        }
    }
    let adapter = &ctx.adapter_info().name;
    let f16 = paths
        .iter()
        .any(|p| matches!(p, ConvPath::Variant(Variant::Core(CoreKernel::F16(_)))));
    assert!(
        f16 || std::env::var_os("CI").is_none(),
        "{adapter} runs no f16 kernel (CI needs them)"
    );
    let coop = paths
        .iter()
        .any(|p| matches!(p, ConvPath::Variant(Variant::Core(CoreKernel::Coop(_)))));
    if !coop {
        let note =
            format!("{adapter} has no cooperative matrices: the cooperative tiles were not run");
        assert!(!require_coop, "{note} (HETCONV_REQUIRE_COOP is set)");
        self::note(&note);
    }
    paths
}

/// Whether `ctx` lists `size` x `size` x `size` f16 -> f32 cooperative matrices.
fn offers_fragments(ctx: &Context, size: u32) -> bool {
    ctx.cooperative_matrices().iter().any(|c| {
        use wgpu::CooperativeScalarType::{F16, F32};
        (c.m_size, c.n_size, c.k_size) == (size, size, size) && c.ab_type == F16 && c.cr_type == F32
    })
}

/// The cooperative tiles `ctx` runs once their fragment blocks are laid out for half its
/// subgroup size (each subgroup then owns two blocks); None, with a note, where it has none
/// (under `HETCONV_REQUIRE_COOP`, a failure) or its subgroups cannot be halved.
pub fn coop_paths_on_half_subgroups(ctx: &Context) -> Option<Vec<ConvPath>> {
    let (min, max) = ctx.subgroup_sizes();
    let halved = min >= 2 && ctx.set_cooperative_layout_lanes(min / 2).is_ok();
    let coop: Vec<ConvPath> = if halved {
        mixed_paths(ctx)
            .into_iter()
            .filter(|p| matches!(p, ConvPath::Variant(Variant::Core(CoreKernel::Coop(_)))))
            .collect()
    } else {
        Vec::new()
    };
    if coop.is_empty() {
        let text = format!(
            "{} (subgroups of {min}..{max}): no cooperative tile ran with two blocks per subgroup",
            ctx.adapter_info().name
        );
        assert!(
            std::env::var_os("HETCONV_REQUIRE_COOP").is_none(),
            "{text} (HETCONV_REQUIRE_COOP is set)"
        );
        note(&text);
        return None;
    }
    Some(coop)
}

/// The GEMM core's kernels with a split reduction: each f32 tile that fits `ctx` and each
/// mixed-precision kernel it runs (those left out are named, as by [`conv_paths`] and
/// [`mixed_paths`]).
pub fn split_paths(ctx: &Context) -> Vec<ConvPath> {
    conv_paths(ctx)
        .into_iter()
        .chain(mixed_paths(ctx))
        .filter_map(|path| match path {
            ConvPath::Variant(Variant::Core(kernel)) => {
                Some(ConvPath::Variant(Variant::SplitK(kernel)))
            }
            _ => None,
        })
        .collect()
}

/// Whether `ctx` has f16 (`shader-f16`), which mixed precision needs; without it the caller's
/// check is skipped with a note naming `what`, and under `CI` (lavapipe has f16) the test fails.
pub fn has_f16(ctx: &Context, what: &str) -> bool {
    if ctx.features().contains(hetconv::wgpu::Features::SHADER_F16) {
        return true;
    }
    let text = format!(
        "{} has no shader-f16: {what} was not checked",
        ctx.adapter_info().name
    );
    assert!(std::env::var_os("CI").is_none(), "{text} (CI needs it)");
    note(&text);
    false
}

/// Prints `note: {text}` once per test process, straight to the process's standard error:
/// libtest captures `eprintln!` of a passing test, and a check that did not run must show.
pub fn note(text: &str) {
    use std::io::Write;
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if seen.insert(text.to_string()) {
        let _ = writeln!(std::io::stderr().lock(), "note: {text}");
    }
}

/// `got` within [`f16_sum_bound`] of `want`, element by element: a product whose operands were
/// rounded to f16 and whose `k` products were summed in f32; `abs_sum` is the reference on the
/// operands' absolute values.
#[track_caller]
pub fn assert_within_f16_bound(name: &str, got: &[f32], want: &[f64], abs_sum: &[f64], k: usize) {
    assert_within_f16_bound_then(name, got, want, abs_sum, k, |bound, _| bound);
}

/// [`assert_within_f16_bound`] with each element's bound passed through `then(bound, want)`
/// (one more rounding where the result is stored as f16).
#[track_caller]
pub fn assert_within_f16_bound_then(
    name: &str,
    got: &[f32],
    want: &[f64],
    abs_sum: &[f64],
    k: usize,
    then: impl Fn(f64, f64) -> f64,
) {
    assert_eq!(abs_sum.len(), want.len(), "{name}: abs_sum's length");
    let bound = |i: usize, w: f64| then(f16_sum_bound(abs_sum[i], k, w), w);
    if let Err(m) = check_bounds(got, want, bound) {
        panic!("{name}: {m} (f16 bound, k = {k})");
    }
}

/// Whether `path` computes in mixed precision.
pub fn is_mixed(path: ConvPath) -> bool {
    variant_of(path).precision() == hetconv::Precision::Mixed
}

/// Makes `ctx` compute convolutions and products along `path`.
pub fn use_path(ctx: &Context, path: ConvPath) {
    let (algorithm, min_invocations) = match path {
        ConvPath::Direct => (hetconv::ConvAlgorithm::Direct, 0),
        ConvPath::DirectSliced => (hetconv::ConvAlgorithm::Direct, 1 << 24),
        ConvPath::Variant(v) => (hetconv::ConvAlgorithm::Fixed(v), 0),
    };
    ctx.set_conv_algorithm(algorithm);
    ctx.set_conv_min_invocations(min_invocations);
}

/// The variant `path` runs.
pub fn variant_of(path: ConvPath) -> Variant {
    match path {
        ConvPath::Direct | ConvPath::DirectSliced => Variant::Direct,
        ConvPath::Variant(v) => v,
    }
}

/// The kernels `f` dispatches (`shader::entry`, with tile and role for the GEMM core), from a
/// profile; None, with a note, on a device without timestamp queries (CI needs them).
pub fn kernels_run(ctx: &Context, f: impl FnOnce()) -> Option<Vec<String>> {
    if !ctx.can_profile() {
        let note = format!(
            "{} has no timestamp queries: which kernels ran is not checked",
            ctx.adapter_info().name
        );
        assert!(std::env::var_os("CI").is_none(), "{note} (CI needs it)");
        eprintln!("note: {note}");
        f();
        return None;
    }
    ctx.begin_profile().unwrap();
    f();
    let (times, untimed) = pollster::block_on(ctx.end_profile()).unwrap();
    assert_eq!(untimed, 0);
    Some(times.into_iter().map(|t| t.kernel).collect())
}

/// Asserts that `kernels` (from [`kernels_run`]) are `want`'s: the GEMM core's dispatches with
/// its tile in each of `roles` (on f32 activations; each role with whether it stages A a vec4
/// at a time, see [`conv_roles`]), or the listed direct `entries`, and none of the other kind.
#[track_caller]
pub fn assert_kernels(kernels: &[String], want: Variant, roles: &[(u32, bool)], entries: &[&str]) {
    assert_kernels_on(kernels, want, hetconv::tensor::DType::F32, roles, entries)
}

/// The GEMM core's passes of a conv of `kind` on `d` run by `variant`, as (role, whether it
/// stages A a vec4 at a time): the forward pass (0) does where the tile reads whole quads of A
/// (`CoreKernel::reads_quads`) and cin / groups is a multiple of 4, so that a filter's weights
/// of each part, and a masked block's edges, lie in aligned quads; the input gradient (1)
/// never; the weight gradient (2, where `weight_grad`) where the tile reads quads and the
/// output's plane is a multiple of 4, so that a quad of dy's pixels lies in one image.
pub fn conv_roles(
    variant: Variant,
    kind: &hetconv::kernels::conv::ConvKind,
    d: &hetconv::kernels::conv::ConvDims,
    weight_grad: bool,
) -> Vec<(u32, bool)> {
    let reads = match variant {
        Variant::Core(kernel) | Variant::SplitK(kernel) => kernel.reads_quads(),
        Variant::Direct => false,
    };
    let (oh, ow) = kind.out_hw(d);
    let mut roles = vec![
        (0, reads && (d.cin / kind.groups).is_multiple_of(4)),
        (1, false),
    ];
    if weight_grad {
        roles.push((2, reads && (oh * ow).is_multiple_of(4)));
    }
    roles
}

/// [`assert_kernels`] on activations stored as `activations` (the core's module differs).
#[track_caller]
pub fn assert_kernels_on(
    kernels: &[String],
    want: Variant,
    activations: hetconv::tensor::DType,
    roles: &[(u32, bool)],
    entries: &[&str],
) {
    let core = |k: &String| k.starts_with("gemm_core");
    match want {
        Variant::Core(kernel) | Variant::SplitK(kernel) => {
            for &(role, quads) in roles {
                let name = kernel.profile_name(role, activations, quads);
                assert!(kernels.contains(&name), "{name} did not run: {kernels:?}");
                let other = kernel.profile_name(role, activations, !quads);
                assert!(!kernels.contains(&other), "{other} ran: {kernels:?}");
                // A split reduction (the callers' shapes are long enough to split) is added
                // up by a second pass; the weight gradient's always is, by its scatter.
                let sum = hetconv::kernels::gemm_core::sum_splits_profile_name(role, activations);
                let split = want.splits_reduction() && role != 2;
                let state = if split { "did not run" } else { "ran" };
                assert_eq!(kernels.contains(&sum), split, "{sum} {state}: {kernels:?}");
            }
            for entry in entries {
                assert!(
                    !kernels.iter().any(|k| k == entry),
                    "{entry} ran: {kernels:?}"
                );
            }
        }
        Variant::Direct => {
            for entry in entries {
                assert!(
                    kernels.iter().any(|k| k == entry),
                    "{entry} did not run: {kernels:?}"
                );
            }
            assert!(!kernels.iter().any(core), "the GEMM core ran: {kernels:?}");
        }
    }
}

/// A VGG-16 of widths 4 and 8 on 32x32x3 images, 10 classes: small enough for lavapipe.
pub fn tiny_vgg(parts: usize, mode: hetconv::nn::ConvMode) -> hetconv::nn::VggConfig {
    hetconv::nn::VggConfig {
        widths: vec![4, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8],
        parts,
        in_channels: 3,
        image_size: 32,
        classes: 10,
        hidden: 8,
        mode,
        normalize: None,
    }
}

/// `n` seeded 32x32x3 images in [0, 1) and labels `(7 i + seed) % 10`: the tensors, then their
/// host copies.
pub fn image_batch(ctx: &Context, n: usize, seed: u64) -> (Tensor, Tensor, Vec<f32>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = rng
        .vec(n * 3 * 32 * 32)
        .iter()
        .map(|v| 0.5 + 0.5 * v)
        .collect();
    let labels: Vec<usize> = (0..n).map(|i| (i * 7 + seed as usize) % 10).collect();
    let label_values: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    (
        upload(ctx, &[n, 3, 32, 32], &x),
        upload(ctx, &[n], &label_values),
        x,
        labels,
    )
}

/// A context with everything the adapter offers (the largest tile shapes need it).
pub fn max_ctx() -> Context {
    pollster::block_on(Context::new(hetconv::ContextOptions {
        limits: hetconv::LimitsChoice::AdapterMaximum,
        tune: Some(hetconv::tune::TuneMode::Off),
        ..Default::default()
    }))
    .expect("a GPU adapter")
}

/// Every parameter of `store` by name, read back as f64 (the reference models' input).
pub fn param_values(
    store: &hetconv::nn::ParamStore,
) -> std::collections::HashMap<String, Vec<f64>> {
    store
        .params()
        .iter()
        .enumerate()
        .map(|(i, info)| {
            let values = store
                .value(hetconv::nn::ParamId(i))
                .unwrap()
                .to_vec()
                .unwrap();
            (info.name.clone(), to_f64(&values))
        })
        .collect()
}

/// Every parameter's gradient in `store` matches the reference's `want` (one per parameter):
/// f32 through a chain of BatchNorm layers, so errors scale with the tensor's largest gradient
/// (relative + absolute 1e-4 of it).
pub fn assert_grads_match(
    label: &str,
    store: &hetconv::nn::ParamStore,
    want: &std::collections::HashMap<String, Vec<f64>>,
) {
    assert_eq!(
        want.len(),
        store.params().len(),
        "{label}: every parameter gets a gradient"
    );
    for (i, info) in store.params().iter().enumerate() {
        let got = store
            .grad(hetconv::nn::ParamId(i))
            .unwrap()
            .to_vec()
            .unwrap();
        let want = &want[&info.name];
        let tol = Tolerance {
            rtol: 1e-4,
            atol: 1e-4,
        }
        .scaled(want);
        assert_close(&format!("{label} {}", info.name), &got, want, tol);
    }
}

/// Every HetConv 1x1 weight (`*.pwc.weight`, `[N, M, 1, 1]`) of `store` is an exact +0 on each
/// filter's own block at part `parts`; returns how many values were checked.
pub fn assert_masked_blocks_zero(store: &hetconv::nn::ParamStore, parts: usize) -> usize {
    let mut checked = 0;
    for (i, info) in store.params().iter().enumerate() {
        if !info.name.ends_with("pwc.weight") {
            continue;
        }
        let (cout, cin) = (info.shape[0], info.shape[1]);
        let w = store
            .value(hetconv::nn::ParamId(i))
            .unwrap()
            .to_vec()
            .unwrap();
        for o in 0..cout {
            let g = o / (cout / parts);
            for c in g * (cin / parts)..(g + 1) * (cin / parts) {
                assert_eq!(w[o * cin + c].to_bits(), 0, "{}[{o},{c}]", info.name);
                checked += 1;
            }
        }
    }
    checked
}

/// Trains `model` on one fixed batch (SGD, lr 0.05, momentum 0.9, weight decay 5e-4) for at
/// most `steps` steps, stopping once the batch is classified right after step 20, and asserts
/// that it was and that the loss fell by half.
pub fn assert_overfits<M: hetconv::Model + ?Sized>(
    model: &mut M,
    x: &Tensor,
    labels: &Tensor,
    steps: usize,
) {
    let step = hetconv::kernels::sgd::SgdStep {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    };
    let mut first_loss = None;
    let mut last = (f64::MAX, 0.0);
    for i in 0..steps {
        let out = model.train_step(x, labels, &step).unwrap();
        if i % 10 == 0 || i + 1 == steps {
            last = hetconv::kernels::loss::summarize(&out.rows.to_vec().unwrap());
            first_loss.get_or_insert(last.0);
            if last.1 == 1.0 && i > 20 {
                break;
            }
        }
    }
    let first = first_loss.unwrap_or(f64::NAN);
    assert!(
        last.1 == 1.0 && last.0 < first * 0.5,
        "train accuracy {} (loss {} from {first})",
        last.1,
        last.0
    );
}

/// The 20 real CIFAR-10 test images of the fixtures as a model input of `size` x `size`
/// (zero-padded when larger than 32), their labels, and the same pixels on the host.
///
/// # Shapes
/// → `[20, 3, size, size]`, `[20]`, 20 x 3 x size x size values
pub fn cifar20_batch(ctx: &Context, size: usize) -> (Tensor, Tensor, Vec<f32>) {
    let bytes = std::fs::read(fixtures().join("cifar10_test_first20.bin")).unwrap();
    let data = hetconv::data::cifar::parse(&bytes, "cifar10_test_first20.bin").unwrap();
    let batcher = hetconv::data::Batcher {
        batch_size: 20,
        size,
        channels: 3,
        augment: None,
        normalize: None,
        shuffle: false,
        seed: 0,
    };
    let batch = batcher
        .batch(&data, &(0..20).collect::<Vec<_>>(), 0)
        .unwrap();
    let x = upload(ctx, &[20, 3, size, size], &batch.pixels);
    let labels = upload(ctx, &[20], &batch.labels);
    (x, labels, batch.pixels)
}
