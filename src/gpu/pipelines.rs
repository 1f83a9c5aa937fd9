//! Compute pipelines, built lazily and cached by (shader, entry point, override constants).

use std::collections::HashMap;

use crate::error::Result;
use crate::shaders::ShaderSource;

/// Storage bindings 1..=n, in order, with the given accesses.
pub const fn storage<const N: usize>(accesses: [Access; N]) -> [(u32, Access); N] {
    let mut out = [(0, Access::Read); N];
    let mut i = 0;
    while i < N {
        out[i] = (i as u32 + 1, accesses[i]);
        i += 1;
    }
    out
}

/// How a kernel uses one storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read only.
    Read,
    /// Read and written.
    ReadWrite,
}

/// A kernel entry point: binding 0 is always the uniform parameter block, a `#[repr(C)]`
/// bytemuck struct on the Rust side of `params_size` bytes (a dispatch with another size is
/// refused); `bindings` lists the storage bindings the entry point uses, as (binding number,
/// access), in the order tensors are passed to a dispatch. The access and the size must match
/// the WGSL declarations (`tests/shaders.rs` checks both by reflection).
#[derive(Debug)]
pub struct KernelSpec {
    /// The WGSL file.
    pub shader: &'static ShaderSource,
    /// The entry point in it.
    pub entry: &'static str,
    /// Storage bindings: (binding number, access).
    pub bindings: &'static [(u32, Access)],
    /// Default invocations per workgroup (passed to the shader as the override constant `WG`).
    pub workgroup_size: u32,
    /// Bytes of the uniform parameter block (`size_of` of its Rust struct).
    pub params_size: usize,
    /// Which of the tensors passed to a dispatch hold activations (bit i: the i-th), stored as
    /// the module's [`ShaderSource::activations`]; every other tensor is f32. A dispatch with
    /// a tensor of another dtype is refused.
    pub activations: u8,
}

impl KernelSpec {
    /// The dtype the kernel reads and writes the `i`-th tensor of a dispatch as.
    pub fn dtype_of(&self, i: usize) -> crate::tensor::DType {
        if i < 8 && self.activations & (1 << i) != 0 {
            self.shader.activations
        } else {
            crate::tensor::DType::F32
        }
    }
}

/// One entry point compiled twice: with activations stored as f32 and as f16 (the same WGSL
/// file after `include/act_f32.wgsl` or `include/act_f16.wgsl`).
#[derive(Debug)]
pub struct TypedKernel {
    /// Activations stored as f32.
    pub f32: KernelSpec,
    /// Activations stored as f16.
    pub f16: KernelSpec,
}

impl TypedKernel {
    /// The two variants of `entry` (`bindings` and `activations` as in [`KernelSpec`]).
    pub const fn new(
        shaders: [&'static ShaderSource; 2],
        entry: &'static str,
        bindings: &'static [(u32, Access)],
        workgroup_size: u32,
        params_size: usize,
        activations: u8,
    ) -> Self {
        Self {
            f32: KernelSpec {
                shader: shaders[0],
                entry,
                bindings,
                workgroup_size,
                params_size,
                activations,
            },
            f16: KernelSpec {
                shader: shaders[1],
                entry,
                bindings,
                workgroup_size,
                params_size,
                activations,
            },
        }
    }

    /// The variant that stores activations as `dtype`.
    pub fn stored_as(&self, dtype: crate::tensor::DType) -> &KernelSpec {
        match dtype {
            crate::tensor::DType::F32 => &self.f32,
            crate::tensor::DType::F16 => &self.f16,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
}

/// A built pipeline together with the layout its bind groups use.
#[derive(Clone, Debug)]
pub struct CachedPipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Caches shader modules, bind group layouts and pipelines.
#[derive(Default)]
pub struct PipelineCache {
    /// Keep wgpu's runtime checks in every module, proven ones included.
    pub(crate) checked_shaders: bool,
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    layouts: HashMap<&'static [(u32, Access)], wgpu::BindGroupLayout>,
    pipelines: HashMap<PipelineKey, CachedPipeline>,
}

impl PipelineCache {
    /// Returns the pipeline for `spec` with the given override constants, building it once.
    pub fn get(
        &mut self,
        device: &wgpu::Device,
        spec: &KernelSpec,
        workgroup_size: u32,
        constants: &[(&'static str, f64)],
    ) -> Result<CachedPipeline> {
        let mut all_constants: Vec<(&'static str, f64)> = constants.to_vec();
        all_constants.push(("WG", f64::from(workgroup_size)));
        let key = PipelineKey {
            shader: spec.shader.name,
            entry: spec.entry,
            constants: all_constants
                .iter()
                .map(|(n, v)| (*n, v.to_bits()))
                .collect(),
        };
        if let Some(found) = self.pipelines.get(&key) {
            return Ok(found.clone());
        }
        check_storage_limit(device, spec)?;
        // Natively everything built for the pipeline is inside the scope: a device opened with
        // lower limits or fewer features than a kernel needs gives an error naming the kernel,
        // never a call to the device's uncaptured-error handler (an application's may panic).
        // What was built is cached only once the scope came back clean.
        let scope = ErrorScope::push(device);
        let checked = self.checked_shaders;
        let module = self
            .modules
            .get(spec.shader.name)
            .cloned()
            .unwrap_or_else(|| create_module(device, spec.shader, checked));
        let layout = self
            .layouts
            .get(spec.bindings)
            .cloned()
            .unwrap_or_else(|| bind_group_layout(device, spec.bindings));
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(spec.entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(spec.entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(spec.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &all_constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        scope.check(spec)?;
        self.modules.insert(spec.shader.name, module);
        self.layouts.insert(spec.bindings, layout.clone());
        let cached = CachedPipeline { pipeline, layout };
        self.pipelines.insert(key, cached.clone());
        Ok(cached)
    }
}

/// A shader module; natively, one whose indices are proven in bounds is created without wgpu's
/// runtime checks unless `checked`.
fn create_module(
    device: &wgpu::Device,
    shader: &ShaderSource,
    checked: bool,
) -> wgpu::ShaderModule {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(shader.name),
        source: wgpu::ShaderSource::Wgsl(shader.source.into()),
    };
    #[cfg(not(target_arch = "wasm32"))]
    if shader.bounds_proven && !checked {
        // SAFETY: the file's header proves every index in bounds and every divisor non-zero
        // given the host's checks (`kernels::gemm_core`), and its loops are bounded by uniform
        // sizes; `tests/unchecked.rs` compares it with the checked module on poisoned buffers.
        return unsafe {
            device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
        };
    }
    let _ = checked;
    device.create_shader_module(desc)
}

/// Refuses a kernel that binds more storage buffers than the device allows per shader stage
/// (an application's device opened with `Limits::downlevel_defaults()` allows 4), naming the
/// kernel, the limit and how to raise it.
fn check_storage_limit(device: &wgpu::Device, spec: &KernelSpec) -> Result<()> {
    let allowed = device.limits().max_storage_buffers_per_shader_stage as usize;
    if spec.bindings.len() <= allowed {
        return Ok(());
    }
    Err(crate::error::Error::Gpu {
        op: "create_compute_pipeline",
        message: format!(
            "{}::{} binds {} storage buffers; the device allows {allowed} per shader stage \
             (max_storage_buffers_per_shader_stage): open it with at least the WebGPU \
             defaults (wgpu::Limits::default())",
            spec.shader.name,
            spec.entry,
            spec.bindings.len()
        ),
        source: None,
    })
}

/// Natively, error scopes around a pipeline's creation (validation, and a driver's internal
/// error or lack of memory compiling it: [`super::ErrorScopes`]); in the browser none: a scope
/// resolves asynchronously there, and what it caught would be lost, while the device's handler
/// ([`crate::Context`]'s) keeps the message and reports it at the next submission.
struct ErrorScope(#[cfg(not(target_arch = "wasm32"))] super::ErrorScopes);

impl ErrorScope {
    fn push(device: &wgpu::Device) -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        return Self(super::ErrorScopes::push(device));
        #[cfg(target_arch = "wasm32")]
        {
            let _ = device;
            Self()
        }
    }

    /// Natively, the error the scope caught, naming the kernel.
    fn check(self, spec: &KernelSpec) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        return match self.0.pop() {
            None => Ok(()),
            Some(e) => Err(crate::error::Error::Gpu {
                op: "create_compute_pipeline",
                message: format!("{}::{}: {e}", spec.shader.name, spec.entry),
                source: Some(Box::new(e)),
            }),
        };
        #[cfg(target_arch = "wasm32")]
        {
            let _ = spec;
            Ok(())
        }
    }
}

fn bind_group_layout(device: &wgpu::Device, bindings: &[(u32, Access)]) -> wgpu::BindGroupLayout {
    let uniform = wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let storage = bindings
        .iter()
        .map(|&(binding, access)| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: access == Access::Read,
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
    let entries: Vec<_> = std::iter::once(uniform).chain(storage).collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("hetconv"),
        entries: &entries,
    })
}
