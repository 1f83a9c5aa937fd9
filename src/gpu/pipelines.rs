//! Compute pipelines, built lazily and cached by (shader, entry point, override constants);
//! natively also several at once ([`super::prebuild`]).

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
#[derive(Clone, Copy, Debug)]
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
pub(super) struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
}

/// A pipeline to build: a kernel with its override constants, the workgroup size `WG` among
/// them.
#[derive(Clone, Debug)]
pub(crate) struct PipelineRequest {
    spec: KernelSpec,
    constants: Vec<(&'static str, f64)>,
    key: PipelineKey,
}

impl PipelineRequest {
    /// `spec` with its workgroup size and the other override constants.
    pub(crate) fn new(
        spec: &KernelSpec,
        workgroup_size: u32,
        constants: &[(&'static str, f64)],
    ) -> Self {
        let mut constants = constants.to_vec();
        constants.push(("WG", f64::from(workgroup_size)));
        let key = PipelineKey {
            shader: spec.shader.name,
            entry: spec.entry,
            constants: constants.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
        };
        Self {
            spec: *spec,
            constants,
            key,
        }
    }

    /// The pipeline, from `module` with bind groups of `layout` (errors go to the calling
    /// thread's error scopes).
    fn build(
        &self,
        device: &wgpu::Device,
        module: &wgpu::ShaderModule,
        layout: &wgpu::BindGroupLayout,
    ) -> wgpu::ComputePipeline {
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(self.spec.entry),
            bind_group_layouts: &[Some(layout)],
            immediate_size: 0,
        });
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(self.spec.entry),
            layout: Some(&pipeline_layout),
            module,
            entry_point: Some(self.spec.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &self.constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        })
    }
}

/// A built pipeline together with the layout its bind groups use.
#[derive(Clone, Debug)]
pub struct CachedPipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// A pipeline request with the module and bind group layout it is built from: what one of
/// several threads building pipelines at once needs.
#[cfg(not(target_arch = "wasm32"))]
pub(super) struct PreparedPipeline {
    request: PipelineRequest,
    module: wgpu::ShaderModule,
    layout: wgpu::BindGroupLayout,
}

#[cfg(not(target_arch = "wasm32"))]
impl PreparedPipeline {
    /// Builds the pipeline inside the calling thread's error scopes; None if wgpu or the
    /// driver reported an error (a dispatch that needs it builds it again and reports that).
    pub(super) fn build(&self, device: &wgpu::Device) -> Option<(PipelineKey, CachedPipeline)> {
        let scope = ErrorScope::push(device);
        let pipeline = self.request.build(device, &self.module, &self.layout);
        if let Err(e) = scope.check(&self.request.spec) {
            log::debug!("building pipelines ahead: {e}");
            return None;
        }
        let cached = CachedPipeline {
            pipeline,
            layout: self.layout.clone(),
        };
        Some((self.request.key.clone(), cached))
    }
}

/// Caches shader modules, bind group layouts and pipelines.
#[derive(Default)]
pub struct PipelineCache {
    /// Keep wgpu's runtime checks in every module, proven ones included.
    pub(crate) checked_shaders: bool,
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    layouts: HashMap<&'static [(u32, Access)], wgpu::BindGroupLayout>,
    pipelines: HashMap<PipelineKey, CachedPipeline>,
    /// The thread that collects the pipelines its dispatches need instead of recording them,
    /// and what it collected so far ([`PipelineCache::collects`]).
    #[cfg(not(target_arch = "wasm32"))]
    collecting: Option<(std::thread::ThreadId, Vec<PipelineRequest>)>,
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
        let request = PipelineRequest::new(spec, workgroup_size, constants);
        if let Some(found) = self.pipelines.get(&request.key) {
            return Ok(found.clone());
        }
        check_storage_limit(device, spec)?;
        // Natively everything built for the pipeline is inside the scope: a device opened with
        // lower limits or fewer features than a kernel needs gives an error naming the kernel,
        // never a call to the device's uncaptured-error handler (an application's may panic).
        // What was built is cached only once the scope came back clean.
        let scope = ErrorScope::push(device);
        let (module, layout) = self.module_and_layout(device, spec);
        let pipeline = request.build(device, &module, &layout);
        scope.check(spec)?;
        self.modules.insert(spec.shader.name, module);
        self.layouts.insert(spec.bindings, layout.clone());
        let cached = CachedPipeline { pipeline, layout };
        self.pipelines.insert(request.key, cached.clone());
        Ok(cached)
    }

    /// The module and bind group layout of `spec`: the cached ones, or new ones (not cached).
    fn module_and_layout(
        &self,
        device: &wgpu::Device,
        spec: &KernelSpec,
    ) -> (wgpu::ShaderModule, wgpu::BindGroupLayout) {
        let module = self
            .modules
            .get(spec.shader.name)
            .cloned()
            .unwrap_or_else(|| create_module(device, spec.shader, self.checked_shaders));
        let layout = self
            .layouts
            .get(spec.bindings)
            .cloned()
            .unwrap_or_else(|| bind_group_layout(device, spec.bindings));
        (module, layout)
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl PipelineCache {
    /// Makes the calling thread collect; false (and nothing changes) while another one does.
    pub(super) fn begin_collecting(&mut self) -> bool {
        if self.collecting.is_some() {
            return false;
        }
        self.collecting = Some((std::thread::current().id(), Vec::new()));
        true
    }

    /// Ends the calling thread's collecting and returns the pipelines it collected (none if
    /// it was not collecting).
    pub(super) fn end_collecting(&mut self) -> Vec<PipelineRequest> {
        if !self.collects_here() {
            return Vec::new();
        }
        self.collecting
            .take()
            .map(|(_, wanted)| wanted)
            .unwrap_or_default()
    }

    /// Whether the calling thread collects.
    pub(super) fn collects_here(&self) -> bool {
        matches!(&self.collecting, Some((thread, _)) if *thread == std::thread::current().id())
    }

    /// Whether the calling thread collects: then the pipeline of this dispatch is noted (unless
    /// built or noted already) and the dispatch is not to be recorded.
    pub(crate) fn collects(
        &mut self,
        spec: &KernelSpec,
        workgroup_size: u32,
        constants: &[(&'static str, f64)],
    ) -> bool {
        if !self.collects_here() {
            return false;
        }
        let Some((_, wanted)) = &mut self.collecting else {
            return false;
        };
        let request = PipelineRequest::new(spec, workgroup_size, constants);
        let known = self.pipelines.contains_key(&request.key);
        if !known && wanted.iter().all(|w| w.key != request.key) {
            wanted.push(request);
        }
        true
    }

    /// `requests` not built yet, each with its module and layout (made and cached here, one at
    /// a time: a kernel over the device's limits or whose module fails is left out, for its
    /// dispatch to report).
    pub(super) fn prepare(
        &mut self,
        device: &wgpu::Device,
        requests: Vec<PipelineRequest>,
    ) -> Vec<PreparedPipeline> {
        let mut prepared = Vec::new();
        for request in requests {
            let spec = &request.spec;
            if self.pipelines.contains_key(&request.key)
                || check_storage_limit(device, spec).is_err()
            {
                continue;
            }
            let scope = ErrorScope::push(device);
            let (module, layout) = self.module_and_layout(device, spec);
            if scope.check(spec).is_err() {
                continue;
            }
            self.modules.insert(spec.shader.name, module.clone());
            self.layouts.insert(spec.bindings, layout.clone());
            prepared.push(PreparedPipeline {
                request,
                module,
                layout,
            });
        }
        prepared
    }

    /// How many pipelines are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pipelines.len()
    }

    /// Caches pipelines built elsewhere.
    pub(super) fn insert_built(&mut self, built: Vec<(PipelineKey, CachedPipeline)>) {
        self.pipelines.extend(built);
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
