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
}

/// A module from `shaders/FILE.wgsl`, preceded by the listed `shaders/include/*.wgsl` pieces
/// (WGSL has no include of its own). `proven` marks a file whose indices are proven in bounds
/// (see [`ShaderSource::bounds_proven`]); `needs` lists the device features it uses.
macro_rules! shader {
    ($ident:ident, $file:literal $(, $include:literal)*) => {
        shader!(@make $ident, $file, $file, false, wgpu::Features::empty() $(, $include)*);
    };
    ($ident:ident = $name:literal: proven $file:literal needs $needs:expr $(, $include:literal)*) => {
        shader!(@make $ident, $name, $file, true, $needs $(, $include)*);
    };
    (@make $ident:ident, $name:literal, $file:literal, $proven:literal, $needs:expr $(, $include:literal)*) => {
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
        };
    };
}

/// What the cooperative-matrix modules need of the device.
const COOP: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);

shader!(GEMM, "gemm");
shader!(ELEMENTWISE, "elementwise");
shader!(CONV, "conv", "conv_geometry");
shader!(REDUCE, "reduce", "workgroup_sum");
shader!(CONV_WEIGHT_GRAD, "conv_weight_grad", "conv_geometry");
shader!(GEMM_CORE = "gemm_core": proven "gemm_core" needs wgpu::Features::empty(), "operand_f32", "conv_geometry", "gemm_fma");
shader!(GEMM_CORE_F16 = "gemm_core_f16": proven "gemm_core" needs wgpu::Features::SHADER_F16, "operand_f16", "conv_geometry", "gemm_fma");
shader!(GEMM_CORE_COOP8 = "gemm_core_coop8": proven "gemm_core" needs COOP, "coop8", "conv_geometry", "gemm_coop");
shader!(GEMM_CORE_COOP16 = "gemm_core_coop16": proven "gemm_core" needs COOP, "coop16", "conv_geometry", "gemm_coop");
shader!(POOL, "pool");
shader!(BATCHNORM, "batchnorm", "workgroup_sum");
shader!(BATCHNORM_GRAD, "batchnorm_grad");
shader!(LOSS, "loss");
shader!(SGD, "sgd");
shader!(LOSS_SCALE, "loss_scale");

/// Every shader of the crate (a test checks this list against the files in `shaders/`).
pub static ALL: &[&ShaderSource] = &[
    &GEMM,
    &ELEMENTWISE,
    &CONV,
    &CONV_WEIGHT_GRAD,
    &GEMM_CORE,
    &GEMM_CORE_F16,
    &GEMM_CORE_COOP8,
    &GEMM_CORE_COOP16,
    &REDUCE,
    &POOL,
    &BATCHNORM,
    &BATCHNORM_GRAD,
    &LOSS,
    &SGD,
    &LOSS_SCALE,
];
