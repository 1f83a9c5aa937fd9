//! The WGSL sources, compiled into the binary (so the wasm build carries them too).

/// One shader module: a WGSL file from `shaders/`, preceded by pieces from `shaders/include/`.
#[derive(Debug)]
pub struct ShaderSource {
    /// The module's name, unique among the crate's modules: the pipeline cache's key and what
    /// error messages and profiles show.
    pub name: &'static str,
    /// Stem of the file in `shaders/` that ends the source.
    pub file: &'static str,
    /// The WGSL text.
    pub source: &'static str,
    /// Whether the file's header proves every index in bounds (given the host's checks), so
    /// that native builds may create it without wgpu's runtime checks
    /// (`ShaderRuntimeChecks::unchecked`: no index clamps, no division guards).
    pub bounds_proven: bool,
    /// Device features the module needs (f16, subgroups, cooperative matrices); a kernel of it
    /// is refused with [`crate::Error::Unsupported`] on a device without them.
    pub needs: wgpu::Features,
    /// How the module stores activations (the bindings its kernel specs list in
    /// [`crate::gpu::KernelSpec::activations`]): f32, or f16 where `include/act_f16.wgsl`
    /// precedes it.
    pub activations: crate::tensor::DType,
}

/// A module from `shaders/FILE.wgsl`, preceded by the listed `shaders/include/*.wgsl` pieces
/// (WGSL has no include of its own). `proven` marks a file whose indices are proven in bounds
/// (see [`ShaderSource::bounds_proven`]); `needs` lists the device features it uses. A module
/// with the piece `act_f16` stores its activations as f16, any other as f32.
macro_rules! shader {
    ($ident:ident, $file:literal $(, $include:literal)*) => {
        shader!(@make $ident, $file, $file, false, wgpu::Features::empty() $(, $include)*);
    };
    ($ident:ident = $name:literal: proven $file:literal needs $needs:expr $(, $include:literal)*) => {
        shader!(@make $ident, $name, $file, true, $needs $(, $include)*);
    };
    ($ident:ident = $name:literal: $file:literal needs $needs:expr $(, $include:literal)*) => {
        shader!(@make $ident, $name, $file, false, $needs $(, $include)*);
    };
    (@make $ident:ident, $name:expr, $file:literal, $proven:literal, $needs:expr $(, $include:literal)*) => {
        #[doc = concat!("`", $name, "`: `shaders/", $file, ".wgsl`")]
        $(#[doc = concat!(" after `include/", $include, ".wgsl`")])*
        pub static $ident: ShaderSource = ShaderSource {
            name: $name,
            file: $file,
            source: concat!(
                $(include_str!(concat!("../shaders/include/", $include, ".wgsl")),)*
                include_str!(concat!("../shaders/", $file, ".wgsl"))
            ),
            bounds_proven: $proven,
            needs: $needs,
            activations: activations(&[$($include),*]),
        };
    };
}

/// The activation storage of a module with these pieces: f16 after `act_f16`, else f32.
const fn activations(includes: &[&str]) -> crate::tensor::DType {
    let mut i = 0;
    while i < includes.len() {
        if same(includes[i].as_bytes(), b"act_f16") {
            return crate::tensor::DType::F16;
        }
        i += 1;
    }
    crate::tensor::DType::F32
}

/// `a == b` in a const context.
const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// What the cooperative-matrix modules need of the device.
const COOP: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);

shader!(GEMM, "gemm");
shader!(ELEMENTWISE, "elementwise", "act_f32");
shader!(ELEMENTWISE_F16 = "elementwise_f16": "elementwise" needs wgpu::Features::SHADER_F16, "f16", "act_f16");
shader!(CAST = "cast": "cast" needs wgpu::Features::SHADER_F16, "f16", "act_f16");
shader!(CONV, "conv", "conv_geometry");
shader!(REDUCE, "reduce", "act_f32", "workgroup_sum");
shader!(REDUCE_F16 = "reduce_f16": "reduce" needs wgpu::Features::SHADER_F16, "f16", "act_f16", "workgroup_sum");
shader!(CONV_WEIGHT_GRAD, "conv_weight_grad", "conv_geometry");
/// The GEMM core's two modules for one inner loop and precision (`shaders/gemm_core.wgsl` after
/// the listed pieces): staging A a value at a time (`include/a_scalar.wgsl`), and a vec4 at a
/// time (`include/a_quads.wgsl`; the name ends in `_quads`).
macro_rules! gemm_core {
    ($scalar:ident, $quads:ident = $name:literal needs $needs:expr $(, $include:literal)*) => {
        shader!(@make $scalar, $name, "gemm_core", true, $needs $(, $include)*, "a_scalar");
        shader!(@make $quads, concat!($name, "_quads"), "gemm_core", true, $needs $(, $include)*, "a_quads");
    };
}

gemm_core!(GEMM_CORE, GEMM_CORE_QUADS = "gemm_core" needs wgpu::Features::empty(), "act_f32", "operand_f32", "conv_geometry", "gemm_fma");
gemm_core!(GEMM_CORE_F16, GEMM_CORE_F16_QUADS = "gemm_core_f16" needs wgpu::Features::SHADER_F16, "f16", "act_f32", "operand_f16", "conv_geometry", "gemm_fma");
gemm_core!(GEMM_CORE_COOP8, GEMM_CORE_COOP8_QUADS = "gemm_core_coop8" needs COOP, "f16", "coop8", "act_f32", "conv_geometry", "gemm_coop");
gemm_core!(GEMM_CORE_COOP16, GEMM_CORE_COOP16_QUADS = "gemm_core_coop16" needs COOP, "f16", "coop16", "act_f32", "conv_geometry", "gemm_coop");
gemm_core!(GEMM_CORE_F16_ACT16, GEMM_CORE_F16_ACT16_QUADS = "gemm_core_f16_act16" needs wgpu::Features::SHADER_F16, "f16", "act_f16", "operand_f16", "conv_geometry", "gemm_fma");
gemm_core!(GEMM_CORE_COOP8_ACT16, GEMM_CORE_COOP8_ACT16_QUADS = "gemm_core_coop8_act16" needs COOP, "f16", "coop8", "act_f16", "conv_geometry", "gemm_coop");
gemm_core!(GEMM_CORE_COOP16_ACT16, GEMM_CORE_COOP16_ACT16_QUADS = "gemm_core_coop16_act16" needs COOP, "f16", "coop16", "act_f16", "conv_geometry", "gemm_coop");
shader!(POOL, "pool", "act_f32");
shader!(POOL_F16 = "pool_f16": "pool" needs wgpu::Features::SHADER_F16, "f16", "act_f16");
shader!(BATCHNORM, "batchnorm", "act_f32", "workgroup_sum", "finite");
shader!(BATCHNORM_F16 = "batchnorm_f16": "batchnorm" needs wgpu::Features::SHADER_F16, "f16", "act_f16", "workgroup_sum", "finite");
shader!(BATCHNORM_GRAD, "batchnorm_grad", "act_f32");
shader!(BATCHNORM_GRAD_F16 = "batchnorm_grad_f16": "batchnorm_grad" needs wgpu::Features::SHADER_F16, "f16", "act_f16");
shader!(LOSS, "loss");
shader!(SGD, "sgd");
shader!(LOSS_SCALE, "loss_scale", "finite");

/// Every shader of the crate (a test checks this list against the files in `shaders/`).
pub static ALL: &[&ShaderSource] = &[
    &GEMM,
    &ELEMENTWISE,
    &ELEMENTWISE_F16,
    &CAST,
    &CONV,
    &CONV_WEIGHT_GRAD,
    &GEMM_CORE,
    &GEMM_CORE_F16,
    &GEMM_CORE_COOP8,
    &GEMM_CORE_COOP16,
    &GEMM_CORE_F16_ACT16,
    &GEMM_CORE_COOP8_ACT16,
    &GEMM_CORE_COOP16_ACT16,
    &GEMM_CORE_QUADS,
    &GEMM_CORE_F16_QUADS,
    &GEMM_CORE_COOP8_QUADS,
    &GEMM_CORE_COOP16_QUADS,
    &GEMM_CORE_F16_ACT16_QUADS,
    &GEMM_CORE_COOP8_ACT16_QUADS,
    &GEMM_CORE_COOP16_ACT16_QUADS,
    &REDUCE,
    &REDUCE_F16,
    &POOL,
    &POOL_F16,
    &BATCHNORM,
    &BATCHNORM_F16,
    &BATCHNORM_GRAD,
    &BATCHNORM_GRAD_F16,
    &LOSS,
    &SGD,
    &LOSS_SCALE,
];
