//! The GEMM core's modules as a Vulkan driver receives them, checked without a GPU: every
//! listed kernel (each tile of each inner loop and precision, on each subgroup size it runs on;
//! the 16x16x16 cooperative tiles that no adapter here can run included) in every role and
//! operand layout, at every kernel side, specialised by naga with the override constants its
//! dispatch uses, written as SPIR-V the way wgpu 30's Vulkan backend writes it for a Vulkan 1.3
//! device (each of [`Checks`]), and validated by the Khronos validator for Vulkan 1.3. This
//! checks that the SPIR-V is valid by the specification, not that a driver compiles it.
//!
//! The validator is `$HETCONV_SPIRV_VAL`, else `spirv-val` on the PATH; it must be SPIRV-Tools
//! 2023.4 or later (the first to know SPV_KHR_cooperative_matrix; Debian trixie has 2025.1, which
//! `.ci/mesa26.sh` installs beside Mesa 26 and `.ci/spirv-val` runs). Without one the test says
//! so and passes, except under CI (`CI` or `HETCONV_NEED_MESA26` set), which needs it.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use naga::back::spv;

use super::{COOP_TILES, CoreKernel, Role, SCATTER, SUM_SPLITS, Staging, TILE_SHAPES};
use crate::gpu::KernelSpec;
use crate::shaders::ShaderSource;
use crate::tensor::DType;

/// Subgroup sizes a Vulkan adapter may have: lavapipe's 4 (SSE) or 8 (AVX2), Intel's 16,
/// NVIDIA's 32, AMD's 64 (32 in wave32 mode).
const LANES: [u32; 5] = [4, 8, 16, 32, 64];

/// The kernel sides a conv can have (odd, 1 to `ConvKind::MAX_KERNEL`).
const SIDES: [f64; 4] = [1.0, 3.0, 5.0, 7.0];

/// One module to check: a spec's entry point with its override constants.
pub(super) struct Case {
    pub(super) label: String,
    pub(super) spec: &'static KernelSpec,
    /// Its override constants, `WG` (the workgroup size) among them.
    pub(super) constants: Vec<(&'static str, f64)>,
    /// The core kernel it is a pass of, and the subgroup size its constants are for (None for
    /// the split-sum and scatter passes).
    pub(super) kernel: Option<(CoreKernel, u32)>,
    /// Written each of [`Checks::ALL`] ways (the 3x3 kernels and the product), else only as
    /// natively dispatched ([`Checks::Unchecked`]): the kernel side is a scalar in the shader,
    /// so its other values need not be seen in every form.
    every_form: bool,
}

/// Every dispatch the core can make, by its constants: each kernel (a cooperative one on each
/// subgroup size its tile runs on) on f32 and f16 activations, in each role with the operand
/// layouts the role uses (the matrix product: all four), at every kernel side (the product has
/// none); the split-sum and scatter passes likewise.
pub(super) fn cases() -> Vec<Case> {
    let mut kernels: Vec<(CoreKernel, u32)> = Vec::new();
    for tile in TILE_SHAPES {
        // Their constants do not depend on the subgroup size.
        kernels.push((CoreKernel::F32(tile), 32));
        kernels.push((CoreKernel::F16(tile), 32));
    }
    for tile in COOP_TILES {
        for lanes in LANES {
            if tile.fragment_block(lanes).is_some() {
                kernels.push((CoreKernel::Coop(tile), lanes));
            }
        }
    }
    let layouts = [
        Staging::new(Role::ConvForward, true, false),
        Staging::new(Role::ConvInputGrad, true, false),
        Staging::new(Role::ConvInputGrad, true, false).for_stride(2),
        Staging::new(Role::ConvWeightGrad, true, true),
        Staging::new(Role::Matmul, true, false),
        Staging::new(Role::Matmul, false, false),
        Staging::new(Role::Matmul, true, true),
        Staging::new(Role::Matmul, false, true),
    ];
    let mut out = Vec::new();
    for (kernel, lanes) in kernels {
        let activations: &[DType] = if kernel.is_mixed() {
            &[DType::F32, DType::F16]
        } else {
            &[DType::F32]
        };
        for &dtype in activations {
            // The forward pass and the weight gradient also with A in quads, where the tile
            // allows.
            let quads = layouts
                .iter()
                .filter(|s| matches!(s.role, Role::ConvForward | Role::ConvWeightGrad))
                .map(|s| s.quads_if(&kernel, true))
                .filter(|s| s.a_quads);
            for staging in layouts.into_iter().chain(quads) {
                let Staging {
                    role,
                    a_kfast,
                    b_kfast,
                    a_quads,
                    strided,
                } = staging;
                let strided = if strided { " strided" } else { "" };
                for side in sides(role) {
                    let mut constants = kernel.constants(lanes, staging);
                    constants.extend(side.map(|s| ("KS", s)));
                    constants.push(("WG", f64::from(kernel.threads())));
                    out.push(Case {
                        label: format!(
                            "{} kfast {a_kfast}/{b_kfast}{strided} KS {side:?} lanes {lanes}",
                            kernel.profile_name(role as u32, dtype, a_quads),
                        ),
                        spec: kernel.spec(dtype, a_quads),
                        constants,
                        kernel: Some((kernel, lanes)),
                        every_form: matches!(side, None | Some(3.0)),
                    });
                }
            }
        }
    }
    for dtype in [DType::F32, DType::F16] {
        for role in [Role::ConvForward, Role::ConvInputGrad, Role::Matmul] {
            for side in sides(role) {
                let mut constants = vec![("ROLE", f64::from(role as u32)), ("WG", 256.0)];
                constants.extend(side.map(|s| ("KS", s)));
                out.push(Case {
                    label: format!(
                        "{} KS {side:?}",
                        super::sum_splits_profile_name(role as u32, dtype)
                    ),
                    spec: SUM_SPLITS.stored_as(dtype),
                    constants,
                    kernel: None,
                    every_form: matches!(side, None | Some(3.0)),
                });
            }
        }
    }
    for side in SIDES {
        out.push(Case {
            label: format!("gemm_core::scatter_weight_grad KS {side}"),
            spec: &SCATTER,
            constants: vec![("KS", side), ("WG", 256.0)],
            kernel: None,
            every_form: side == 3.0,
        });
    }
    out
}

/// The kernel sides a dispatch in `role` sets: none for the matrix product.
fn sides(role: Role) -> Vec<Option<f64>> {
    if role == Role::Matmul {
        vec![None]
    } else {
        SIDES.map(Some).to_vec()
    }
}

/// How wgpu 30's Vulkan backend writes a module (`wgpu-hal`'s `naga_options` and
/// `compile_stage`), never zero-initialising workgroup memory (the pipelines turn that off).
/// The core's modules run `Unchecked` natively; `Robust` or `Clamped` with `checked_shaders`;
/// `Debug` in builds with debug assertions.
#[derive(Clone, Copy, Debug)]
enum Checks {
    /// `create_shader_module` on a device with robustBufferAccess2 (NVIDIA, AMD, lavapipe):
    /// indices clamped, buffer accesses left to the driver, loops bounded, divisions guarded.
    Robust,
    /// The same on a device without it: buffer accesses clamped too.
    Clamped,
    /// As `Robust`, in a build with debug assertions, whose instance has the DEBUG flag: the
    /// module carries its WGSL source and line information.
    Debug,
    /// `create_shader_module_trusted` with `ShaderRuntimeChecks::unchecked()`, as the core's
    /// modules are created natively (their bounds are proven): no clamps, no loop bounds, no
    /// division guards.
    Unchecked,
}

impl Checks {
    const ALL: [Checks; 4] = [
        Checks::Robust,
        Checks::Clamped,
        Checks::Debug,
        Checks::Unchecked,
    ];

    fn options<'a>(self, shader: &'a ShaderSource) -> spv::Options<'a> {
        use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy as P};
        let checked = !matches!(self, Checks::Unchecked);
        let (index, buffer) = match self {
            Checks::Robust | Checks::Debug => (P::Restrict, P::Unchecked),
            Checks::Clamped => (P::Restrict, P::Restrict),
            Checks::Unchecked => (P::Unchecked, P::Unchecked),
        };
        let mut flags = spv::WriterFlags::LABEL_VARYINGS | spv::WriterFlags::FORCE_POINT_SIZE;
        flags.set(spv::WriterFlags::DEBUG, matches!(self, Checks::Debug));
        spv::Options {
            lang_version: (1, 6),
            flags,
            capabilities: Some(spirv_capabilities(shader.needs)),
            // Each binding where the WGSL puts it (wgpu numbers them consecutively instead,
            // which the validator does not see).
            fake_missing_bindings: true,
            bounds_check_policies: BoundsCheckPolicies {
                index,
                buffer,
                image_load: buffer,
                binding_array: P::Unchecked,
            },
            zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
            force_loop_bounding: checked,
            emit_int_div_checks: checked,
            // NVIDIA's drivers lack storageInputOutput16; a compute module has no such I/O.
            use_storage_input_output_16: false,
            debug_info: matches!(self, Checks::Debug).then_some(spv::DebugInfo {
                source_code: shader.source,
                file_name: shader.name,
                language: spv::SourceLanguage::WGSL,
            }),
            ..spv::Options::default()
        }
    }
}

/// The SPIR-V capabilities wgpu's Vulkan backend allows a device with the features a module
/// needs: those every Vulkan device has that a compute module may use, and those of each
/// feature (a module that uses another fails to write).
fn spirv_capabilities(needs: wgpu::Features) -> naga::FastHashSet<spv::Capability> {
    use spv::Capability as C;
    let mut caps = vec![C::Shader, C::Matrix, C::ImageQuery, C::DerivativeControl];
    if needs.contains(wgpu::Features::SHADER_F16) {
        caps.push(C::Float16);
    }
    if needs.contains(wgpu::Features::SUBGROUP) {
        caps.extend([
            C::GroupNonUniform,
            C::GroupNonUniformVote,
            C::GroupNonUniformArithmetic,
            C::GroupNonUniformBallot,
            C::GroupNonUniformShuffle,
            C::GroupNonUniformShuffleRelative,
            C::GroupNonUniformQuad,
        ]);
    }
    if needs.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        caps.extend([C::CooperativeMatrixKHR, C::VulkanMemoryModel]);
    }
    caps.into_iter().collect()
}

/// naga's validation capabilities for the device features a module needs.
fn capabilities(needs: wgpu::Features) -> naga::valid::Capabilities {
    use naga::valid::Capabilities as C;
    let mut caps = C::default();
    caps.set(
        C::SHADER_FLOAT16,
        needs.contains(wgpu::Features::SHADER_F16),
    );
    caps.set(C::SUBGROUP, needs.contains(wgpu::Features::SUBGROUP));
    caps.set(
        C::COOPERATIVE_MATRIX,
        needs.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
    );
    caps
}

/// A shader parsed and validated once.
type Parsed = (naga::Module, naga::valid::ModuleInfo);

fn parse(shader: &ShaderSource) -> Parsed {
    let module = naga::front::wgsl::parse_str(shader.source)
        .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        capabilities(shader.needs),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
    (module, info)
}

/// The SPIR-V of `case` (its shader `parsed`) as written with `checks`.
fn spirv(case: &Case, (module, info): &Parsed, checks: Checks) -> Vec<u32> {
    let constants = case
        .constants
        .iter()
        .map(|(name, value)| (name.to_string(), *value))
        .collect();
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((naga::ShaderStage::Compute, case.spec.entry)),
        &constants,
    )
    .unwrap_or_else(|e| panic!("{}: the override constants: {e:?}", case.label));
    let pipeline = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: case.spec.entry.to_string(),
    };
    spv::write_vec(
        &module,
        &info,
        &checks.options(case.spec.shader),
        Some(&pipeline),
    )
    .unwrap_or_else(|e| panic!("{} ({checks:?}): naga's SPIR-V writer: {e}", case.label))
}

/// The validator's command, if one that knows cooperative matrices runs here; else why not.
fn validator() -> Result<String, String> {
    let command = std::env::var("HETCONV_SPIRV_VAL").unwrap_or_else(|_| "spirv-val".into());
    let version = Command::new(&command)
        .arg("--version")
        .output()
        .map_err(|e| format!("{command} does not run ({e})"))?;
    let text = String::from_utf8_lossy(&version.stdout);
    // "SPIRV-Tools v2025.1 ..."
    let release = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix('v'))
        .and_then(|v| v.split_once('.'))
        .and_then(|(year, minor)| {
            let minor: String = minor.chars().take_while(char::is_ascii_digit).collect();
            Some((year.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
        });
    match release {
        Some(r) if r >= (2023, 4) => Ok(command),
        _ => Err(format!(
            "{command} is not SPIRV-Tools 2023.4 or later (it says {:?})",
            text.lines().next().unwrap_or_default()
        )),
    }
}

/// Runs the validator on `words` (written to `path`); its complaint if it has one.
fn validate(command: &str, words: &[u32], path: &Path) -> Option<String> {
    std::fs::write(path, bytemuck::cast_slice::<u32, u8>(words)).unwrap();
    let out = Command::new(command)
        .args(["--target-env", "vulkan1.3"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    (!out.status.success()).then(|| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn every_core_module_is_valid_spirv_for_vulkan() {
    let command = match validator() {
        Ok(command) => command,
        Err(why) => {
            let text =
                format!("no SPIR-V validator: {why}; the GEMM core's SPIR-V was not checked");
            let ci = ["CI", "HETCONV_NEED_MESA26"].map(|v| std::env::var_os(v).is_some());
            assert!(!ci.contains(&true), "{text} (CI needs it)");
            let _ = writeln!(std::io::stderr().lock(), "note: {text}");
            return;
        }
    };
    let cases = cases();
    let coop16 = cases
        .iter()
        .filter(|c| c.spec.shader.name.contains("coop16"))
        .count();
    assert!(coop16 >= 500, "{coop16} 16x16x16 cooperative cases");
    let mut parsed: HashMap<&str, Parsed> = HashMap::new();
    for case in &cases {
        let shader = case.spec.shader;
        parsed.entry(shader.name).or_insert_with(|| parse(shader));
    }
    let dir = tempfile::tempdir().unwrap();
    // Two threads (the validator is a process per module).
    let failures: Vec<String> = std::thread::scope(|s| {
        let halves = cases.chunks(cases.len().div_ceil(2)).enumerate();
        let workers: Vec<_> = halves
            .map(|(i, half)| {
                let path = dir.path().join(format!("module{i}.spv"));
                let (command, parsed) = (&command, &parsed);
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for case in half {
                        let shader = &parsed[case.spec.shader.name];
                        let forms: &[Checks] = if case.every_form {
                            &Checks::ALL
                        } else {
                            &[Checks::Unchecked]
                        };
                        for &checks in forms {
                            let words = spirv(case, shader, checks);
                            if let Some(why) = validate(command, &words, &path) {
                                failed.push(format!("{} ({checks:?}): {why}", case.label));
                            }
                        }
                    }
                    failed
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let modules: usize = cases
        .iter()
        .map(|c| if c.every_form { Checks::ALL.len() } else { 1 })
        .sum();
    assert!(
        failures.is_empty(),
        "{} of {modules} modules are not valid SPIR-V; the first: {}",
        failures.len(),
        failures[0]
    );
}
