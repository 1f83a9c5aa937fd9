//! Choosing a kernel variant for each (pass, layer shape, precision) on the running adapter.
//!
//! Every conv pass and the linear layer has candidates: the direct kernels and the tile shapes
//! of the GEMM core ([`crate::kernels::gemm_core`]), for products of few tiles also with a split
//! reduction ([`Variant::SplitK`]). What runs is decided, per key, by
//! - the context's [`crate::ConvAlgorithm`] (`Direct`, `TiledGemm` or a `Fixed` variant force it;
//!   `Auto` asks the tuner; `TiledGemm` takes the heuristic's tile wherever one fits the shape,
//!   the direct kernels elsewhere), then
//! - the tuner's [`TuneMode`]: `full` times the candidates that fit the device on the first use of
//!   a key (warm-up, a few samples, losers over 1.5x the leader dropped after one) and stores the
//!   winner in a cache file; `cached` takes the cache's entry where there is one; `off`, and every
//!   key the cache lacks outside `full`, get the [`heuristic`] choice, which needs no timing.
//!
//! The cache is one JSON file per adapter, driver and hetconv version (see [`cache`]), so a run
//! with a given cache makes the same choices every time.

pub mod cache;
mod choose;
mod heuristic;
#[cfg(not(target_arch = "wasm32"))]
mod timing;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub(crate) use choose::choose;
pub use heuristic::{best_kernel, candidates, f32_kernels, heuristic, kernels};

use crate::error::{Error, Result};
use crate::gpu::{Context, ConvAlgorithm, Precision};
use crate::kernels::gemm_core::{CoreKernel, TileShape};

/// One way of computing a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// The direct kernels (`shaders/conv.wgsl` and `conv_weight_grad.wgsl`, `shaders/gemm.wgsl`).
    Direct,
    /// A kernel of the GEMM core (f32, f16 or cooperative-matrix inner loop, and its tile).
    Core(CoreKernel),
    /// A kernel of the GEMM core with the reduction split over several workgroups per tile,
    /// for products of few tiles (small maps, small batches): each split writes partial
    /// products, which a second dispatch adds in a fixed order before the epilogue. (The
    /// weight gradient always splits its reduction: there it is the same as `Core`.)
    SplitK(CoreKernel),
}

impl Variant {
    /// The GEMM core with f32 operands and this tile shape.
    pub fn gemm(tile: TileShape) -> Self {
        Variant::Core(CoreKernel::F32(tile))
    }

    /// The GEMM core's kernel the variant runs (None for the direct kernels).
    pub fn core(&self) -> Option<CoreKernel> {
        match self {
            Variant::Direct => None,
            Variant::Core(kernel) | Variant::SplitK(kernel) => Some(*kernel),
        }
    }

    /// Whether the variant splits the reduction of a forward, input-gradient or matrix product.
    pub fn splits_reduction(&self) -> bool {
        matches!(self, Variant::SplitK(_))
    }

    /// The precision the variant computes in.
    pub fn precision(&self) -> Precision {
        match self.core() {
            Some(kernel) if kernel.is_mixed() => Precision::Mixed,
            _ => Precision::F32,
        }
    }
}

/// `direct`, `gemm:64x64/4x4/k16`, `gemm:f16:64x64/4x4/k16`,
/// `gemm:coop:64x64/16x16x16/k32/w128`, or with a split reduction `splitk:64x64/4x4/k16` (and
/// `splitk:f16:...`, `splitk:coop:...`).
impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variant::Direct => write!(f, "direct"),
            Variant::Core(kernel) => write!(f, "gemm:{kernel}"),
            Variant::SplitK(kernel) => write!(f, "splitk:{kernel}"),
        }
    }
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "direct" => Ok(Variant::Direct),
            _ => {
                if let Some(kernel) = s.strip_prefix("gemm:") {
                    kernel.parse().map(Variant::Core)
                } else if let Some(kernel) = s.strip_prefix("splitk:") {
                    kernel.parse().map(Variant::SplitK)
                } else {
                    Err(format!(
                        "{s:?} is not a kernel variant (direct, gemm:TMxTN/RMxRN/kKC, gemm:f16:TMxTN/RMxRN/kKC, gemm:coop:TMxTN/SxSxS/kKC/wTHREADS, or splitk: and one of those kernels)"
                    ))
                }
            }
        }
    }
}

/// The passes that have variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pass {
    /// Conv forward.
    ConvForward,
    /// Conv input gradient.
    ConvInputGrad,
    /// Conv weight gradient.
    ConvWeightGrad,
    /// Matrix product (the linear layer, both directions).
    Matmul,
}

impl Pass {
    /// Short name, as in cache keys and tables.
    pub fn name(self) -> &'static str {
        match self {
            Pass::ConvForward => "conv_forward",
            Pass::ConvInputGrad => "conv_input_grad",
            Pass::ConvWeightGrad => "conv_weight_grad",
            Pass::Matmul => "matmul",
        }
    }
}

/// A pass as a batched matrix product: what the heuristic and the candidate list look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The pass.
    pub pass: Pass,
    /// The precision it runs in (the context's).
    pub precision: Precision,
    /// Products in the batch (the conv's groups).
    pub groups: usize,
    /// Rows of one product.
    pub rows: usize,
    /// Columns of one product.
    pub cols: usize,
    /// The reduction length of one product.
    pub depth: usize,
}

/// How much the tuner may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TuneMode {
    /// The heuristic choice everywhere; the cache is neither read nor written.
    Off,
    /// The cache's entry where there is one, the heuristic elsewhere; nothing is timed.
    Cached,
    /// The cache's entry, or the candidates timed on first use and the winner stored.
    Full,
}

impl TuneMode {
    /// The default on an adapter: `full` on GPUs; `cached` on software adapters (lavapipe,
    /// SwiftShader), where the direct kernels are the known winner and timing costs more
    /// than it saves.
    pub fn default_for(device_type: wgpu::DeviceType) -> Self {
        if device_type == wgpu::DeviceType::Cpu {
            TuneMode::Cached
        } else {
            TuneMode::Full
        }
    }

    /// `HETCONV_TUNE` if set (an error names a value that is not a mode).
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var("HETCONV_TUNE") {
            Ok(v) => v
                .parse()
                .map(Some)
                .map_err(|e| Error::InvalidArgument(format!("HETCONV_TUNE: {e}"))),
            Err(_) => Ok(None),
        }
    }
}

impl FromStr for TuneMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "off" => Ok(TuneMode::Off),
            "cached" => Ok(TuneMode::Cached),
            "full" => Ok(TuneMode::Full),
            _ => Err(format!("{s:?} is not a tuning mode (off, cached or full)")),
        }
    }
}

impl fmt::Display for TuneMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TuneMode::Off => "off",
            TuneMode::Cached => "cached",
            TuneMode::Full => "full",
        })
    }
}

/// Where a choice came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Forced by the context's [`ConvAlgorithm`].
    Forced,
    /// Timed on this adapter now.
    Tuned,
    /// Read from the cache file.
    Cached,
    /// The heuristic.
    Heuristic,
}

/// What a context ran for one key.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// The variant.
    pub variant: Variant,
    /// Why.
    pub source: Source,
    /// Its measured time per run in ms, when it was timed (now or when the cache was written).
    pub ms: Option<f64>,
    /// When it was timed now: every candidate that ran and its time per run in ms (one that
    /// lost by over 1.5x after one sample: that sample).
    pub candidates: Vec<(Variant, f64)>,
}

/// What tuning has cost a context so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TuneStats {
    /// Keys whose candidates were timed.
    pub keys_timed: u64,
    /// Candidate runs, warm-ups included.
    pub candidate_runs: u64,
    /// Candidates whose outputs were checked against the reference variant's and matched.
    pub candidates_checked: u64,
    /// Candidates that failed to build or run, or computed other values than the reference
    /// (each named in a warning); never picked.
    pub candidates_failed: u64,
    /// Pipelines built before timing, the candidates' together ([`Self::pipeline_ms`]).
    pub pipelines_built: u64,
    /// The most threads those were built on at once.
    pub pipeline_threads: u64,
    /// Wall-clock time spent finding and building them, in ms (part of [`Self::ms`]).
    pub pipeline_ms: f64,
    /// Wall-clock time spent tuning, in ms.
    pub ms: f64,
}

/// The tuner's state, one per context.
pub(crate) struct Tuner {
    cache_path: Option<PathBuf>,
    cache: Option<cache::TuneCache>,
    /// The choice per key, per tuning mode and conv algorithm: a device's handles share them,
    /// but a handle in `off` mode never takes one tuned or read from the cache by a handle in
    /// another mode (nor the reverse), and a handle with `--conv direct` never replaces an
    /// `auto` handle's choices with its forced ones, so each stays what it alone would make.
    choices: BTreeMap<(TuneMode, ConvAlgorithm), BTreeMap<String, Choice>>,
    stats: TuneStats,
    /// The core's kernels the device runs, per precision (found once: the device's features
    /// and limits do not change).
    runnable: BTreeMap<Precision, Vec<CoreKernel>>,
    /// The variants whose outputs matched the reference's on this device, per check class
    /// ([`choose::check_class`]: the pass, the kernels' specialisation and the precision): checked
    /// once, on the first shape of the class they were timed on. (Nothing is timed in the
    /// browser.)
    #[cfg(not(target_arch = "wasm32"))]
    checked: std::collections::BTreeSet<(String, Variant)>,
    /// The variants whose outputs did not match, per check class: no candidates any more.
    #[cfg(not(target_arch = "wasm32"))]
    mismatched: std::collections::BTreeSet<(String, Variant)>,
}

impl Tuner {
    pub(crate) fn new(cache_path: Option<PathBuf>) -> Self {
        Self {
            cache_path,
            cache: None,
            choices: BTreeMap::new(),
            stats: TuneStats::default(),
            runnable: BTreeMap::new(),
            #[cfg(not(target_arch = "wasm32"))]
            checked: std::collections::BTreeSet::new(),
            #[cfg(not(target_arch = "wasm32"))]
            mismatched: std::collections::BTreeSet::new(),
        }
    }

    /// The cache, loaded on first use (a corrupt or foreign file is ignored with a warning).
    fn cache(&mut self, ctx: &Context) -> &mut cache::TuneCache {
        let path = &self.cache_path;
        self.cache.get_or_insert_with(|| {
            let identity = cache::Identity::of(ctx.adapter_info(), ctx.limits());
            let path = path.clone().or_else(|| cache::default_path(&identity));
            cache::TuneCache::load(identity, path)
        })
    }
}

impl Context {
    /// This handle's tuning mode (see [`Context::with_own_settings`]).
    pub fn tune_mode(&self) -> TuneMode {
        self.settings().tune
    }

    /// Sets this handle's tuning mode. Choices are remembered per mode and conv algorithm and
    /// shared by a device's handles with both alike: a shape timed for one is not timed again
    /// for another, and a handle in `off` mode keeps the heuristic's choices whatever others
    /// tuned.
    pub fn set_tune_mode(&self, mode: TuneMode) {
        self.settings_mut().tune = mode;
    }

    /// Uses `path` as the tune cache from now on (`None`: the platform's cache folder), and
    /// forgets the choices made so far.
    pub fn set_tune_cache(&self, path: Option<PathBuf>) {
        let mut tuner = self.tuner();
        tuner.cache_path = path;
        tuner.cache = None;
        tuner.choices.clear();
    }

    /// The tune cache file in use (none on wasm, or where no cache folder exists).
    pub fn tune_cache_path(&self) -> Option<PathBuf> {
        let mut tuner = self.tuner();
        tuner.cache(self).path().map(|p| p.to_path_buf())
    }

    /// Whether a tune cache file is in use and takes this context's results (false without a
    /// file, or for a file that is not a tune cache, which is never overwritten).
    pub fn tune_cache_writable(&self) -> bool {
        let mut tuner = self.tuner();
        let cache = tuner.cache(self);
        cache.path().is_some() && cache.replaceable()
    }

    /// Every key run on this device in this handle's tuning mode and with its conv algorithm,
    /// with the variant it ran and why (the benchmark's and `hetconv tune`'s table).
    pub fn kernel_choices(&self) -> Vec<(String, Choice)> {
        let slot = (self.tune_mode(), self.conv_algorithm());
        self.tuner()
            .choices
            .get(&slot)
            .map(|choices| {
                choices
                    .iter()
                    .map(|(k, c)| (k.clone(), c.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What tuning has cost so far.
    pub fn tune_stats(&self) -> TuneStats {
        self.tuner().stats
    }

    fn tuner(&self) -> std::sync::MutexGuard<'_, Tuner> {
        crate::gpu::lock(&self.inner.tuner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_and_modes_round_trip_their_names() {
        let tile = TileShape::new(64, 64, 4, 4, 16);
        for v in [
            Variant::Direct,
            Variant::gemm(tile),
            Variant::Core(CoreKernel::F16(tile)),
            Variant::Core(CoreKernel::Coop(crate::kernels::gemm_core::COOP_TILES[2])),
            Variant::SplitK(CoreKernel::F32(tile)),
            Variant::SplitK(CoreKernel::F16(tile)),
            Variant::SplitK(CoreKernel::Coop(crate::kernels::gemm_core::COOP_TILES[0])),
        ] {
            assert_eq!(v.to_string().parse::<Variant>(), Ok(v));
        }
        assert!("gemm:64x64".parse::<Variant>().is_err());
        assert_eq!(
            "gemm:coop:64x64/16x16x16/k32/w128".parse::<Variant>(),
            Ok(Variant::Core(CoreKernel::Coop(
                crate::kernels::gemm_core::CoopTile::new(64, 64, 16, 32, 128)
            )))
        );
        assert!(
            "gemm:coop:64x64/16x16x8/k32/w128"
                .parse::<Variant>()
                .is_err()
        );
        assert!(
            "gemm:coop:64x64/12x12x12/k36/w128"
                .parse::<Variant>()
                .is_err()
        );
        assert_eq!(
            "splitk:f16:64x64/4x4/k16".parse::<Variant>(),
            Ok(Variant::SplitK(CoreKernel::F16(tile)))
        );
        assert!("splitk:direct".parse::<Variant>().is_err());
        assert!("fast".parse::<Variant>().unwrap_err().contains("splitk:"));
        for m in [TuneMode::Off, TuneMode::Cached, TuneMode::Full] {
            assert_eq!(m.to_string().parse::<TuneMode>(), Ok(m));
        }
        assert!(
            "on".parse::<TuneMode>()
                .unwrap_err()
                .contains("off, cached or full")
        );
    }
}
