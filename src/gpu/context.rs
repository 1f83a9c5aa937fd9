//! The device context: adapter choice, device limits, and the shared state every op uses
//! (pipeline cache, buffer pool, the open command encoder).

use std::sync::{Arc, Mutex};

use super::encoder::Recorder;
use super::pipelines::PipelineCache;
use super::pool::BufferPool;
use crate::error::{Error, Result};
use crate::tune::{TuneMode, Tuner};

/// Which limits to ask the device for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitsChoice {
    /// The WebGPU defaults: what passes here also runs in a browser.
    #[default]
    WebGpuDefaults,
    /// Everything the adapter offers (bigger buffers and bindings on a real GPU).
    AdapterMaximum,
}

/// How the conv family and the linear layer are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvAlgorithm {
    /// The tuner decides per pass and shape (see [`crate::tune`]).
    #[default]
    Auto,
    /// Direct loops everywhere: each invocation a few channels x pixels (`shaders/conv.wgsl`,
    /// `shaders/gemm.wgsl`).
    Direct,
    /// The register-tiled GEMM core (`shaders/gemm_core.wgsl`) everywhere, with the tile shape
    /// the heuristic picks for each shape.
    TiledGemm,
    /// One variant everywhere (tests and benchmarks of a single tile shape).
    Fixed(crate::tune::Variant),
}

/// `auto`, `direct`, `tiled`, or a variant such as `gemm:64x64/4x4/k16` (one variant
/// everywhere).
impl std::str::FromStr for ConvAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(ConvAlgorithm::Auto),
            "direct" => Ok(ConvAlgorithm::Direct),
            "tiled" => Ok(ConvAlgorithm::TiledGemm),
            _ => s
                .parse::<crate::tune::Variant>()
                .map(ConvAlgorithm::Fixed)
                .map_err(|e| format!("{e}; or one of auto, direct, tiled")),
        }
    }
}

/// The precision of the conv family's and the linear layer's products.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 operands and sums everywhere.
    #[default]
    F32,
    /// f16 operands with f32 accumulation in the GEMM core (cooperative matrices where the
    /// adapter has them, f16 FMA elsewhere), activations stored as f16 between layers; weights,
    /// gradients of weights, statistics and every sum stay f32 (see the README's "Precision").
    Mixed,
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "mixed" => Ok(Precision::Mixed),
            _ => Err(format!("{s:?} is not a precision (f32 or mixed)")),
        }
    }
}

impl Precision {
    /// How activations are stored in this precision: f32, or f16 under mixed precision (half
    /// the memory and traffic between layers; every kernel still computes in f32).
    pub fn activations(self) -> crate::tensor::DType {
        match self {
            Precision::F32 => crate::tensor::DType::F32,
            Precision::Mixed => crate::tensor::DType::F16,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Mixed => "mixed",
        })
    }
}

/// How to pick and open the device.
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// Limits to request.
    pub limits: LimitsChoice,
    /// Prefer a low-power adapter over a high-performance one.
    pub low_power: bool,
    /// How convolutions are computed.
    pub conv_algorithm: ConvAlgorithm,
    /// The precision of the conv family's and the linear layer's products.
    pub precision: Precision,
    /// Direct convolution kernels cut their reduction into slices until a dispatch has about
    /// this many invocations (None: 131,072 on GPUs, no slicing on software adapters, whose
    /// few cores are busy without it).
    pub conv_min_invocations: Option<u64>,
    /// How much the tuner may do (None: `HETCONV_TUNE`, else [`TuneMode::default_for`] the
    /// adapter).
    pub tune: Option<TuneMode>,
    /// The tune cache file (None: `HETCONV_TUNE_CACHE`, else the platform's cache folder).
    pub tune_cache: Option<std::path::PathBuf>,
    /// Keep wgpu's runtime checks (index clamps, division guards) in every shader, also in
    /// those whose indices hetconv proves in bounds, which natively run without them (a
    /// debugging aid; slower).
    pub checked_shaders: bool,
    /// Open the adapter at this index (modulo their count) of the machine's adapters on the
    /// native backends, GPUs before software ones, in the order wgpu lists them (None: the
    /// default adapter). A data-parallel run sets it to each process's local rank
    /// (`hetconv --adapter-per-rank`), so that the ranks on one host take different GPUs.
    pub adapter_index: Option<usize>,
}

/// A GPU device with everything hetconv keeps per device. Cheap to clone (shared handle).
///
/// The kernel settings (conv algorithm, precision, tuning mode) belong to a handle and its
/// clones, not to the device: [`Context::with_own_settings`] gives a handle on the same device,
/// buffers, pipelines and tune cache whose settings change apart from the others. A model keeps
/// the handle it was built with (its tensors carry it, and an op runs with the settings of the
/// handle of its input), so two models on one device can use different settings; one call can
/// use settings of its own by giving its input on such a handle
/// (`Tensor::from_slice(&model.context().with_own_settings(), ...)`).
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<ContextInner>,
    settings: Arc<std::sync::Mutex<KernelSettings>>,
}

/// The kernel settings of a [`Context`] handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSettings {
    /// How convolutions are computed.
    pub conv_algorithm: ConvAlgorithm,
    /// The precision of the conv family's and the linear layer's products.
    pub precision: Precision,
    /// How much the tuner may do for this handle's work.
    pub tune: TuneMode,
}

pub(crate) struct ContextInner {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    pub(crate) pipelines: Mutex<PipelineCache>,
    pub(crate) pool: Arc<Mutex<BufferPool>>,
    pub(crate) recorder: Mutex<Recorder>,
    pub(crate) conv_min_invocations: std::sync::atomic::AtomicU64,
    pub(crate) tuner: Mutex<Tuner>,
    /// The adapter's cooperative-matrix configurations (empty unless the device has the
    /// feature).
    pub(crate) cooperative: Vec<wgpu::CooperativeMatrixProperties>,
    /// The device's features (read once: every dispatch checks its module's needs).
    pub(crate) features: wgpu::Features,
    /// Errors that wgpu reported outside an error scope (only for devices we created).
    pub(crate) uncaptured: Arc<Mutex<Vec<String>>>,
    /// The smallest subgroup size the cooperative kernels lay their fragments out for: the
    /// adapter's, unless [`Context::set_cooperative_layout_lanes`] lowered it.
    pub(crate) layout_lanes: std::sync::atomic::AtomicU32,
    /// While set (the tuner's checked runs), every tensor handed out uninitialised is first
    /// filled with NaN bits: an output a kernel leaves unwritten cannot pass for a value that a
    /// reused buffer still held.
    pub(crate) poison_scratch: std::sync::atomic::AtomicBool,
}

impl Context {
    /// Opens the default adapter with default options, blocking until it is ready (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Self> {
        pollster::block_on(Self::new(ContextOptions::default()))
    }

    /// Picks an adapter and opens a device on it.
    ///
    /// Honours `WGPU_BACKEND` (which backends to try), `WGPU_POWER_PREF` and `WGPU_ADAPTER_NAME`
    /// (a case-insensitive substring of the adapter's name).
    pub async fn new(options: ContextOptions) -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pick_adapter(&instance, &options).await?;
        let info = adapter.get_info();
        let limits = match options.limits {
            LimitsChoice::WebGpuDefaults => wgpu::Limits::default(),
            LimitsChoice::AdapterMaximum => adapter.limits(),
        };
        let limits = clamp_to_adapter(limits, &adapter.limits());
        // Timestamps let `begin_profile` time each kernel; f16, subgroups and cooperative
        // matrices serve the mixed-precision kernels. Each is asked for only where offered.
        let required_features = adapter.features() & wanted_features();
        let cooperative =
            if required_features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
                adapter.cooperative_matrix_properties()
            } else {
                Vec::new()
            };
        let experimental_features = if cooperative.is_empty() {
            wgpu::ExperimentalFeatures::disabled()
        } else {
            // SAFETY: wgpu's cooperative-matrix support is experimental (its validation may be
            // incomplete). hetconv's only cooperative kernels (`shaders/include/gemm_coop.wgsl`)
            // keep every fragment inside its workgroup stage (the bounds argument in
            // `shaders/gemm_core.wgsl`) and are checked against the reference in the tests.
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("hetconv"),
                required_features,
                required_limits: limits.clone(),
                experimental_features,
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|source| Error::RequestDevice {
                adapter: info.name.clone(),
                source,
            })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("wgpu: {e}");
            super::lock(&sink).push(e.to_string());
        }));
        let ctx = Self::assemble(device, queue, info, uncaptured, cooperative);
        super::lock(&ctx.inner.pipelines).checked_shaders = options.checked_shaders;
        let tune = match options.tune {
            Some(mode) => mode,
            None => TuneMode::from_env()?.unwrap_or(ctx.tune_mode()),
        };
        ctx.set_tune_mode(tune);
        if options.tune_cache.is_some() {
            ctx.set_tune_cache(options.tune_cache.clone());
        }
        ctx.set_conv_algorithm(options.conv_algorithm);
        ctx.set_precision(options.precision)?;
        if let Some(n) = options.conv_min_invocations {
            ctx.set_conv_min_invocations(n);
        }
        Ok(ctx)
    }

    /// Wraps a device and queue that the application already owns (a game or renderer), so
    /// hetconv's networks run on it. hetconv never changes the device's error handler; the
    /// application's own handler sees any validation error. The tuner starts in
    /// [`TuneMode::Cached`]: timing a new shape would submit and wait in the middle of the
    /// application's frame; tune ahead of time (`hetconv tune`, or
    /// [`Context::set_tune_mode`] during loading) to use the tuned kernels.
    ///
    /// The mixed-precision kernels use what the device was opened with: f16 needs
    /// `Features::SHADER_F16`; the cooperative-matrix ones need the adapter's configurations,
    /// which a device cannot report: see [`Context::from_adapter_device`].
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self::from_device_with(device, queue, Vec::new())
    }

    /// As [`Context::from_device`], also told the adapter's cooperative-matrix configurations
    /// (used where the device was opened with `Features::EXPERIMENTAL_COOPERATIVE_MATRIX`).
    pub fn from_adapter_device(
        adapter: &wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
    ) -> Self {
        let cooperative = if device
            .features()
            .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
        {
            adapter.cooperative_matrix_properties()
        } else {
            Vec::new()
        };
        Self::from_device_with(device, queue, cooperative)
    }

    fn from_device_with(
        device: wgpu::Device,
        queue: wgpu::Queue,
        cooperative: Vec<wgpu::CooperativeMatrixProperties>,
    ) -> Self {
        let info = device.adapter_info();
        let ctx = Self::assemble(
            device,
            queue,
            info,
            Arc::new(Mutex::new(Vec::new())),
            cooperative,
        );
        ctx.set_tune_mode(TuneMode::Cached);
        ctx
    }

    fn assemble(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        uncaptured: Arc<Mutex<Vec<String>>>,
        cooperative: Vec<wgpu::CooperativeMatrixProperties>,
    ) -> Self {
        let limits = device.limits();
        let features = device.features();
        let tune = TuneMode::default_for(info.device_type);
        let min_invocations = default_conv_min_invocations(info.device_type);
        let layout_lanes = std::sync::atomic::AtomicU32::new(info.subgroup_min_size);
        Self {
            inner: Arc::new(ContextInner {
                device,
                queue,
                info,
                limits,
                pipelines: Mutex::new(PipelineCache::default()),
                pool: Arc::new(Mutex::new(BufferPool::default())),
                recorder: Mutex::new(Recorder::default()),
                conv_min_invocations: std::sync::atomic::AtomicU64::new(min_invocations),
                tuner: Mutex::new(Tuner::new(None)),
                cooperative,
                features,
                uncaptured,
                layout_lanes,
                poison_scratch: std::sync::atomic::AtomicBool::new(false),
            }),
            settings: Arc::new(Mutex::new(KernelSettings {
                conv_algorithm: ConvAlgorithm::Auto,
                precision: Precision::F32,
                tune,
            })),
        }
    }

    /// A handle on the same device (buffers, pipelines, tune cache shared; tensors of either
    /// work with the other) whose kernel settings start as this one's and change apart from
    /// it: for a model, or a call, with a conv algorithm, precision or tuning mode of its own.
    pub fn with_own_settings(&self) -> Context {
        Context {
            inner: self.inner.clone(),
            settings: Arc::new(Mutex::new(self.settings())),
        }
    }

    /// This handle's kernel settings.
    pub fn settings(&self) -> KernelSettings {
        *super::lock(&self.settings)
    }

    /// Sets all of this handle's kernel settings (mixed precision is refused, as by
    /// [`Context::set_precision`], where the device lacks f16).
    pub fn set_settings(&self, settings: KernelSettings) -> Result<()> {
        self.set_precision(settings.precision)?;
        self.set_conv_algorithm(settings.conv_algorithm);
        self.set_tune_mode(settings.tune);
        Ok(())
    }

    pub(crate) fn settings_mut(&self) -> std::sync::MutexGuard<'_, KernelSettings> {
        super::lock(&self.settings)
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// Name, backend, driver and type of the adapter.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The subgroup sizes the cooperative kernels are made for, (smallest, largest): the
    /// adapter's, unless [`Context::set_cooperative_layout_lanes`] lowered the smallest. Their
    /// fragment blocks are laid out one per subgroup of the smallest; where the driver makes
    /// subgroups wider (AMD's of 32..64 lanes), each owns several blocks.
    pub fn subgroup_sizes(&self) -> (u32, u32) {
        let min = self
            .inner
            .layout_lanes
            .load(std::sync::atomic::Ordering::Relaxed);
        (min, self.inner.info.subgroup_max_size)
    }

    /// Lays the cooperative kernels' fragment blocks out for subgroups of `lanes`, a power of
    /// two dividing the adapter's smallest subgroup size, on this device (every handle): each
    /// of the adapter's subgroups then owns several blocks, as on an adapter whose driver picks
    /// wider subgroups than its smallest. For tests of that path on an adapter whose subgroup
    /// size is fixed.
    #[doc(hidden)]
    pub fn set_cooperative_layout_lanes(&self, lanes: u32) -> Result<()> {
        let smallest = self.inner.info.subgroup_min_size;
        if !lanes.is_power_of_two() || !smallest.is_multiple_of(lanes) {
            return Err(Error::InvalidArgument(format!(
                "cooperative layout for subgroups of {lanes} lanes: a power of two dividing the adapter's smallest subgroup size ({smallest}) expected"
            )));
        }
        self.inner
            .layout_lanes
            .store(lanes, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// The features the device was opened with.
    pub fn features(&self) -> wgpu::Features {
        self.inner.features
    }

    /// The cooperative-matrix configurations the kernels may use (empty unless the device was
    /// opened with `Features::EXPERIMENTAL_COOPERATIVE_MATRIX`).
    pub fn cooperative_matrices(&self) -> &[wgpu::CooperativeMatrixProperties] {
        &self.inner.cooperative
    }

    /// The limits the device was opened with.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// Where a view of a tensor ([`crate::Tensor::view`]) may start, in bytes: the device's
    /// storage-offset alignment, and at least 16, so that kernels may bind every tensor as
    /// whole 16-byte vec4s without reaching into the next view of its buffer.
    pub fn view_alignment(&self) -> u64 {
        u64::from(self.inner.limits.min_storage_buffer_offset_alignment).max(16)
    }

    /// Largest buffer, in bytes, that one storage binding may hold on this device, and never
    /// over 2^32 - 1: the shaders index with u32, and their bounds arguments rely on every
    /// element index of a binding fitting in 31 bits (a backend may allow larger bindings).
    pub fn max_binding_bytes(&self) -> u64 {
        self.inner
            .limits
            .max_storage_buffer_binding_size
            .min(self.inner.limits.max_buffer_size)
            .min(u64::from(u32::MAX))
    }

    /// How this handle's convolutions are computed now.
    pub fn conv_algorithm(&self) -> ConvAlgorithm {
        self.settings().conv_algorithm
    }

    /// How this handle's convolutions are computed from now on (see
    /// [`Context::with_own_settings`] for one model or call).
    pub fn set_conv_algorithm(&self, algorithm: ConvAlgorithm) {
        self.settings_mut().conv_algorithm = algorithm;
    }

    /// The precision of this handle's products now.
    pub fn precision(&self) -> Precision {
        self.settings().precision
    }

    /// The precision of the products from now on. Mixed precision needs f16 (`shader-f16`)
    /// on the device; an error says so where it is missing.
    pub fn set_precision(&self, precision: Precision) -> Result<()> {
        if precision == Precision::Mixed && !self.features().contains(wgpu::Features::SHADER_F16) {
            return Err(Error::Unsupported {
                op: "precision mixed",
                feature: "shader-f16".to_string(),
                adapter: self.adapter_info().name.clone(),
            });
        }
        self.settings_mut().precision = precision;
        Ok(())
    }

    /// See [`ContextOptions::conv_min_invocations`].
    pub fn set_conv_min_invocations(&self, invocations: u64) {
        self.inner
            .conv_min_invocations
            .store(invocations, std::sync::atomic::Ordering::Relaxed);
    }

    /// See [`ContextOptions::conv_min_invocations`].
    pub fn conv_min_invocations(&self) -> u64 {
        self.inner
            .conv_min_invocations
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns (and forgets) the wgpu errors reported outside error scopes since the last call.
    pub(crate) fn take_uncaptured_errors(&self) -> Vec<String> {
        std::mem::take(&mut *super::lock(&self.inner.uncaptured))
    }
}

/// The names of the optional features hetconv uses that `features` holds (`hetconv info`,
/// errors).
pub fn feature_names(features: wgpu::Features) -> String {
    let names: Vec<&str> = [
        (wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
        (wgpu::Features::SHADER_F16, "shader-f16"),
        (wgpu::Features::SUBGROUP, "subgroups"),
        (
            wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
            "cooperative-matrix",
        ),
    ]
    .into_iter()
    .filter(|(f, _)| features.contains(*f))
    .map(|(_, name)| name)
    .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The optional features hetconv uses where the adapter offers them.
fn wanted_features() -> wgpu::Features {
    let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16;
    // Cooperative matrices are native-only in wgpu; subgroups serve them.
    #[cfg(not(target_arch = "wasm32"))]
    let wanted =
        wanted | wgpu::Features::SUBGROUP | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
    wanted
}

async fn pick_adapter(
    instance: &wgpu::Instance,
    options: &ContextOptions,
) -> Result<wgpu::Adapter> {
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted = wanted.to_lowercase();
        let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
            .ok_or_else(|| Error::NoAdapter {
                reason: format!("WGPU_ADAPTER_NAME={wanted:?} matches none of {names:?}"),
                source: None,
            });
    }
    if let Some(index) = options.adapter_index {
        let mut adapters = instance.enumerate_adapters(wgpu::Backends::PRIMARY).await;
        adapters.sort_by_key(|a| a.get_info().device_type == wgpu::DeviceType::Cpu);
        if adapters.is_empty() {
            return Err(Error::NoAdapter {
                reason: format!(
                    "adapter {index} asked for, but no adapter on {:?}",
                    wgpu::Backends::PRIMARY
                ),
                source: None,
            });
        }
        let count = adapters.len();
        return Ok(adapters.swap_remove(index % count));
    }
    let default_pref = if options.low_power {
        wgpu::PowerPreference::LowPower
    } else {
        wgpu::PowerPreference::HighPerformance
    };
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::from_env().unwrap_or(default_pref),
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        })
        .await
        .map_err(|e| Error::NoAdapter {
            reason: e.to_string(),
            source: Some(e),
        })
}

/// Never ask for more than the adapter has (some software adapters sit below a default).
fn clamp_to_adapter(wanted: wgpu::Limits, adapter: &wgpu::Limits) -> wgpu::Limits {
    if wanted.check_limits(adapter) {
        return wanted;
    }
    let mut clamped = wanted.clone();
    clamped.max_storage_buffer_binding_size = wanted
        .max_storage_buffer_binding_size
        .min(adapter.max_storage_buffer_binding_size);
    clamped.max_buffer_size = wanted.max_buffer_size.min(adapter.max_buffer_size);
    clamped.max_compute_invocations_per_workgroup = wanted
        .max_compute_invocations_per_workgroup
        .min(adapter.max_compute_invocations_per_workgroup);
    clamped.max_compute_workgroup_storage_size = wanted
        .max_compute_workgroup_storage_size
        .min(adapter.max_compute_workgroup_storage_size);
    clamped
}

impl Context {
    /// How many tensor buffers the pool has created so far (a repeated step should add none).
    pub fn buffers_created(&self) -> u64 {
        super::lock(&self.inner.pool).created
    }
}

/// [`ContextOptions::conv_min_invocations`] where none is given: 131,072 on GPUs, 0 (no
/// slicing) on software adapters.
pub(crate) fn default_conv_min_invocations(device_type: wgpu::DeviceType) -> u64 {
    if device_type == wgpu::DeviceType::Cpu {
        0
    } else {
        131_072
    }
}
