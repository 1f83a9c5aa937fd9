//! The WGSL sources, compiled into the binary (so the wasm build carries them too).

/// One WGSL file from `shaders/`.
#[derive(Debug)]
pub struct ShaderSource {
    /// File stem, used as the cache key and in error messages.
    pub name: &'static str,
    /// The WGSL text.
    pub source: &'static str,
    /// Whether the file's header proves every index in bounds (given the host's checks), so
    /// that native builds may create it without wgpu's runtime checks
    /// (`ShaderRuntimeChecks::unchecked`: no index clamps, no division guards).
    pub bounds_proven: bool,
}

/// A shader from `shaders/NAME.wgsl`, preceded by the listed `shaders/include/*.wgsl` pieces
/// (WGSL has no include of its own).
/// `proven` marks a file whose indices are proven in bounds (see [`ShaderSource::bounds_proven`]).
macro_rules! shader {
    (proven $ident:ident, $name:literal) => {
        shader!(@make $ident, $name, true);
    };
    ($ident:ident, $name:literal $(, $include:literal)*) => {
        shader!(@make $ident, $name, false $(, $include)*);
    };
    (@make $ident:ident, $name:literal, $proven:literal $(, $include:literal)*) => {
        #[doc = concat!("`shaders/", $name, ".wgsl`")]
        pub static $ident: ShaderSource = ShaderSource {
            name: $name,
            source: concat!(
                $(include_str!(concat!("../shaders/include/", $include, ".wgsl")),)*
                include_str!(concat!("../shaders/", $name, ".wgsl"))
            ),
            bounds_proven: $proven,
        };
    };
}

shader!(GEMM, "gemm");
shader!(ELEMENTWISE, "elementwise");
shader!(CONV, "conv");
shader!(REDUCE, "reduce", "workgroup_sum");
shader!(CONV_WEIGHT_GRAD, "conv_weight_grad");
shader!(proven GEMM_CORE, "gemm_core");
shader!(POOL, "pool");
shader!(BATCHNORM, "batchnorm", "workgroup_sum");
shader!(BATCHNORM_GRAD, "batchnorm_grad");
shader!(LOSS, "loss");
shader!(SGD, "sgd");

/// Every shader of the crate (a test checks this list against the files in `shaders/`).
pub static ALL: &[&ShaderSource] = &[
    &GEMM,
    &ELEMENTWISE,
    &CONV,
    &CONV_WEIGHT_GRAD,
    &GEMM_CORE,
    &REDUCE,
    &POOL,
    &BATCHNORM,
    &BATCHNORM_GRAD,
    &LOSS,
    &SGD,
];
