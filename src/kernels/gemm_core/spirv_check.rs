//! The GEMM core's modules as a Vulkan driver receives them, checked without a GPU: every
//! kernel (each tile of each inner loop and precision, the 16x16x16 cooperative tiles that no
//! adapter here can run included) in every role, specialised by naga with the override constants
//! its dispatch uses, written as SPIR-V the way wgpu's Vulkan backend writes it (with and
//! without runtime checks), and validated by the Khronos validator for Vulkan 1.3.
//!
//! The validator is `$HETCONV_SPIRV_VAL`, else `spirv-val` on the PATH; it must be SPIRV-Tools
//! 2023.4 or later (the first to know SPV_KHR_cooperative_matrix; Debian trixie has 2025.1, which
//! `.ci/mesa26.sh` installs beside Mesa 26 and `.ci/spirv-val` runs). Without one the test says
//! so and passes, except under CI, which needs it.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use super::{COOP_TILES, CoreKernel, Role, SCATTER, SUM_SPLITS, TILE_SHAPES};
use crate::gpu::KernelSpec;
use crate::tensor::DType;

/// Subgroup sizes of the adapters the cooperative tiles are for: lavapipe (8), Apple and
/// NVIDIA (32), AMD (64; 32 in wave32 mode).
const LANES: [u32; 3] = [8, 32, 64];

/// One module to check: a spec's entry point with its override constants.
struct Case {
    label: String,
    spec: &'static KernelSpec,
    constants: Vec<(&'static str, f64)>,
}

/// Every dispatch the core can make, by its constants: each kernel (on each subgroup size its
/// tile runs on) on f32 and f16 activations, in each role with the operand layouts the role
/// uses (the matrix product: all four), at kernel sides 1 and 3; the split-sum and scatter
/// passes in each role they serve.
fn cases() -> Vec<Case> {
    let mut kernels: Vec<(CoreKernel, u32)> = Vec::new();
    for tile in TILE_SHAPES {
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
        (Role::ConvForward, true, false),
        (Role::ConvInputGrad, true, false),
        (Role::ConvWeightGrad, true, true),
        (Role::Matmul, true, false),
        (Role::Matmul, false, false),
        (Role::Matmul, true, true),
        (Role::Matmul, false, true),
    ];
    let mut out = Vec::new();
    for (kernel, lanes) in kernels {
        let activations: &[DType] = if kernel.is_mixed() {
            &[DType::F32, DType::F16]
        } else {
            &[DType::F32]
        };
        for &dtype in activations {
            for (role, a_kfast, b_kfast) in layouts {
                let sides: &[f64] = if role == Role::Matmul {
                    &[3.0]
                } else {
                    &[1.0, 3.0]
                };
                for &side in sides {
                    let mut constants = kernel.constants(lanes, role, a_kfast, b_kfast);
                    constants.push(("KS", side));
                    constants.push(("WG", f64::from(kernel.threads())));
                    out.push(Case {
                        label: format!(
                            "{} role {} kfast {a_kfast}/{b_kfast} KS {side} lanes {lanes}",
                            kernel.profile_name(role as u32, dtype),
                            role as u32
                        ),
                        spec: kernel.spec(dtype),
                        constants,
                    });
                }
            }
        }
    }
    for dtype in [DType::F32, DType::F16] {
        for role in [Role::ConvForward, Role::ConvInputGrad, Role::Matmul] {
            out.push(Case {
                label: super::sum_splits_profile_name(role as u32, dtype),
                spec: SUM_SPLITS.stored_as(dtype),
                constants: vec![("ROLE", f64::from(role as u32)), ("KS", 3.0), ("WG", 256.0)],
            });
        }
    }
    out.push(Case {
        label: "gemm_core::scatter_weight_grad".into(),
        spec: &SCATTER,
        constants: vec![("ROLE", 2.0), ("KS", 3.0), ("WG", 256.0)],
    });
    out
}

/// naga's capabilities for the device features a module needs.
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

/// The SPIR-V of `case` as wgpu 30's Vulkan backend writes it for a Vulkan 1.3 device, with its
/// runtime checks (index and buffer clamps, loop bounds, division guards) or without them
/// (`create_shader_module_trusted` with `ShaderRuntimeChecks::unchecked()`, as the core's
/// modules are created natively); never zero-initialising workgroup memory (the pipelines
/// turn that off).
fn spirv(case: &Case, checked: bool) -> Vec<u32> {
    use naga::back::spv;
    use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
    let shader = case.spec.shader;
    let module = naga::front::wgsl::parse_str(shader.source)
        .unwrap_or_else(|e| panic!("{}: {}", case.label, e.emit_to_string(shader.source)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        capabilities(shader.needs),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{}: {e:?}", case.label));
    let constants = case
        .constants
        .iter()
        .map(|(name, value)| (name.to_string(), *value))
        .collect();
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, case.spec.entry)),
        &constants,
    )
    .unwrap_or_else(|e| panic!("{}: the override constants: {e:?}", case.label));
    let policy = if checked {
        BoundsCheckPolicy::Restrict
    } else {
        BoundsCheckPolicy::Unchecked
    };
    let options = spv::Options {
        lang_version: (1, 6),
        flags: spv::WriterFlags::LABEL_VARYINGS | spv::WriterFlags::FORCE_POINT_SIZE,
        // Each binding as set 0, binding N: what wgpu's map gives for the one group.
        fake_missing_bindings: true,
        bounds_check_policies: BoundsCheckPolicies {
            index: policy,
            buffer: policy,
            image_load: policy,
            binding_array: BoundsCheckPolicy::Unchecked,
        },
        zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
        force_loop_bounding: checked,
        emit_int_div_checks: checked,
        ..spv::Options::default()
    };
    let pipeline = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: case.spec.entry.to_string(),
    };
    spv::write_vec(&module, &info, &options, Some(&pipeline))
        .unwrap_or_else(|e| panic!("{}: naga's SPIR-V writer: {e}", case.label))
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
            assert!(std::env::var_os("CI").is_none(), "{text} (CI needs it)");
            let _ = writeln!(std::io::stderr().lock(), "note: {text}");
            return;
        }
    };
    let cases = cases();
    let coop16 = cases
        .iter()
        .filter(|c| c.spec.shader.name.contains("coop16"))
        .count();
    assert!(coop16 >= 100, "{coop16} 16x16x16 cooperative cases");
    let dir = tempfile::tempdir().unwrap();
    // Two threads (the validator is a process per module).
    let failures: Vec<String> = std::thread::scope(|s| {
        let halves = cases.chunks(cases.len().div_ceil(2)).enumerate();
        let workers: Vec<_> = halves
            .map(|(i, half)| {
                let path = dir.path().join(format!("module{i}.spv"));
                let command = &command;
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for case in half {
                        for checked in [true, false] {
                            if let Some(why) = validate(command, &spirv(case, checked), &path) {
                                failed.push(format!("{} (checked: {checked}): {why}", case.label));
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
    assert!(
        failures.is_empty(),
        "{} of {} modules are not valid SPIR-V; the first: {}",
        failures.len(),
        2 * cases.len(),
        failures[0]
    );
}
