//! The register-tiled GEMM core (`shaders/gemm_core.wgsl`): one WGSL source serves the conv
//! family's forward pass, input gradient and weight gradient (split-K) and the linear layer's
//! matrix product (whose reductions may be split too, see [`CoreKernel::reduction_splits`]);
//! the role and the tile shape are override constants. Grouped convs and HetConv
//! are a batched product with the group as the batch axis; every shape is accepted (edge tiles
//! are bounds-checked, interior ones are not).

use std::fmt;
use std::str::FromStr;

use super::conv::{ConvDims, ConvKind, Pointwise};
use super::gemm::Layout;
use crate::error::{Error, Result};
use crate::gpu::{Access, Context, KernelSpec, TypedKernel};
use crate::shaders;
use crate::tensor::{DType, Tensor};

use Access::{Read, ReadWrite};

/// Tensors of a `gemm` dispatch: src, src2, w3, w1, bias, dst, partials.
const GEMM_BINDINGS: &[(u32, Access)] = &[
    (1, Read),
    (2, Read),
    (3, Read),
    (4, Read),
    (5, Read),
    (6, ReadWrite),
    (7, ReadWrite),
];

/// Which of them are activations (src, src2, dst: stored as the module's `act`).
const GEMM_ACTIVATIONS: u8 = 0b10_0011;

/// The `gemm` entry point of one of the core's modules.
macro_rules! gemm_spec {
    ($ident:ident, $shader:ident) => {
        static $ident: KernelSpec = KernelSpec {
            shader: &shaders::$shader,
            entry: "gemm",
            bindings: GEMM_BINDINGS,
            workgroup_size: 256,
            params_size: size_of::<Params>(),
            activations: GEMM_ACTIVATIONS,
        };
    };
}
gemm_spec!(GEMM, GEMM_CORE);
gemm_spec!(GEMM_F16, GEMM_CORE_F16);
gemm_spec!(GEMM_COOP8, GEMM_CORE_COOP8);
gemm_spec!(GEMM_COOP16, GEMM_CORE_COOP16);
gemm_spec!(GEMM_F16_ACT16, GEMM_CORE_F16_ACT16);
gemm_spec!(GEMM_COOP8_ACT16, GEMM_CORE_COOP8_ACT16);
gemm_spec!(GEMM_COOP16_ACT16, GEMM_CORE_COOP16_ACT16);

/// Tensors: partials, dw3, dw1 (all f32).
static SCATTER: KernelSpec = KernelSpec {
    shader: &shaders::GEMM_CORE,
    entry: "scatter_weight_grad",
    bindings: &[(7, ReadWrite), (8, ReadWrite), (9, ReadWrite)],
    workgroup_size: 256,
    params_size: size_of::<Params>(),
    activations: 0,
};

/// Tensors: bias, dst (an activation), partials.
static SUM_SPLITS: TypedKernel = TypedKernel::new(
    [&shaders::GEMM_CORE, &shaders::GEMM_CORE_F16_ACT16],
    "sum_splits",
    &[(5, Read), (6, ReadWrite), (7, ReadWrite)],
    256,
    size_of::<Params>(),
    0b10,
);

/// Bytes of one entry of the shader's `taps` table (a `Tap`: an offset and its mask bits).
const TAP_BYTES: u32 = 8;

/// Workgroups a split reduction aims for: enough to fill a large GPU several times over.
const SPLIT_TARGET_WORKGROUPS: usize = 1024;

/// Stages (of KC reduction steps) every split but the last has at least: a split reads several
/// times as many operands as it writes partial products.
const MIN_SPLIT_STAGES: usize = 4;

/// One tile shape of the core: a workgroup computes `tm` x `tn` outputs, each invocation
/// `rm` x `rn` of them, staging `kc` reduction steps at a time in workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileShape {
    /// Rows per tile.
    pub tm: u32,
    /// Columns per tile.
    pub tn: u32,
    /// Rows per invocation (at most 8).
    pub rm: u32,
    /// Columns per invocation (4 or 8: read a vec4 at a time).
    pub rn: u32,
    /// Reduction steps per stage.
    pub kc: u32,
}

/// The shapes the tuner chooses from, largest first (llama.cpp's and tfjs's families: 128x128
/// with 8x8 per invocation down to small tiles for few rows per group).
pub const TILE_SHAPES: [TileShape; 9] = [
    TileShape::new(128, 128, 8, 8, 16),
    TileShape::new(128, 128, 8, 8, 8),
    TileShape::new(128, 64, 8, 4, 8),
    TileShape::new(64, 128, 4, 8, 8),
    TileShape::new(64, 64, 4, 4, 16),
    TileShape::new(32, 64, 4, 4, 16),
    TileShape::new(32, 32, 4, 4, 16),
    TileShape::new(16, 64, 2, 4, 16),
    TileShape::new(8, 64, 2, 4, 16),
];

impl TileShape {
    /// A tile shape (see [`TileShape::check`] for what the shader needs of it).
    pub const fn new(tm: u32, tn: u32, rm: u32, rn: u32, kc: u32) -> Self {
        Self { tm, tn, rm, rn, kc }
    }

    /// Invocations per workgroup.
    pub fn threads(&self) -> u32 {
        (self.tm / self.rm.max(1)) * (self.tn / self.rn.max(1))
    }

    /// Workgroup memory one workgroup uses with f32 operands, in bytes.
    pub fn workgroup_bytes(&self) -> u32 {
        CoreKernel::F32(*self).workgroup_bytes(32)
    }

    /// Whether the shader's layout rules hold: a tile of 4..=1024 rows and columns, multiples
    /// of 4 (the stages are vec4s), 1..=64 reduction steps, register tiles of at most 8 x 8
    /// dividing the tile, 4 or 8 columns wide (B is read a vec4 at a time), and invocations that
    /// are a multiple of TN and KC and divide both stage sizes (so that each invocation loads a
    /// fixed column or a fixed reduction step).
    pub fn check(&self) -> std::result::Result<(), String> {
        let Self { tm, tn, rm, rn, kc } = *self;
        let ok = (4..=1024).contains(&tm)
            && (4..=1024).contains(&tn)
            && tm.is_multiple_of(4)
            && tn.is_multiple_of(4)
            && (1..=64).contains(&kc)
            && (1..=8).contains(&rm)
            && (rn == 4 || rn == 8)
            && tm.is_multiple_of(rm)
            && tn.is_multiple_of(rn);
        if !ok {
            return Err(format!(
                "{self}: the tile must be 4..1024 x 4..1024 in multiples of 4 with 1..64 reduction steps, the register tile 1..8 x 4 or 8 dividing it"
            ));
        }
        let wg = self.threads();
        let loads_fixed = wg.is_multiple_of(tn)
            && wg.is_multiple_of(kc)
            && (kc * tm).is_multiple_of(wg)
            && (kc * tn).is_multiple_of(wg);
        if !loads_fixed {
            return Err(format!(
                "{self}: {wg} invocations must be a multiple of TN and KC and divide KC x TM and KC x TN"
            ));
        }
        Ok(())
    }

    /// Whether a device with these limits can run the shape with f32 operands.
    pub fn fits(&self, limits: &wgpu::Limits) -> bool {
        self.check().is_ok() && CoreKernel::F32(*self).fits_limits(limits, 32).is_ok()
    }
}

/// `TMxTN/RMxRN/kKC`, e.g. `64x64/4x4/k16` (the tune cache's spelling).
impl fmt::Display for TileShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { tm, tn, rm, rn, kc } = self;
        write!(f, "{tm}x{tn}/{rm}x{rn}/k{kc}")
    }
}

impl FromStr for TileShape {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?} is not a tile shape like 64x64/4x4/k16");
        let mut parts = s.split('/');
        let pair = |part: Option<&str>| -> std::result::Result<(u32, u32), String> {
            let (a, b) = part.and_then(|p| p.split_once('x')).ok_or_else(bad)?;
            Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
        };
        let (tm, tn) = pair(parts.next())?;
        let (rm, rn) = pair(parts.next())?;
        let kc = parts
            .next()
            .and_then(|k| k.strip_prefix('k'))
            .and_then(|k| k.parse().ok())
            .ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        let shape = Self::new(tm, tn, rm, rn, kc);
        shape.check()?;
        Ok(shape)
    }
}

/// A tile of the cooperative-matrix inner loop: a workgroup of `threads` invocations computes
/// `tm` x `tn` outputs as `size` x `size` fragments (`size` x `size` x `size` products of f16
/// fragments into f32 ones), staging `kc` reduction steps at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoopTile {
    /// Rows per tile.
    pub tm: u32,
    /// Columns per tile.
    pub tn: u32,
    /// Fragment side: 8 (lavapipe, Apple) or 16 (NVIDIA, AMD).
    pub size: u32,
    /// Reduction steps per stage.
    pub kc: u32,
    /// Invocations per workgroup.
    pub threads: u32,
}

/// The cooperative tiles the tuner chooses from, per fragment side, largest first. Which run
/// on an adapter depends on its subgroup size (each subgroup owns a block of at most 8
/// fragments, as square as the tile allows).
pub const COOP_TILES: [CoopTile; 12] = [
    CoopTile::new(128, 128, 16, 32, 256),
    CoopTile::new(128, 64, 16, 32, 256),
    CoopTile::new(64, 64, 16, 32, 128),
    CoopTile::new(64, 64, 16, 16, 128),
    CoopTile::new(64, 64, 16, 32, 64),
    CoopTile::new(32, 64, 16, 32, 64),
    CoopTile::new(16, 64, 16, 16, 64),
    CoopTile::new(64, 64, 8, 16, 256),
    CoopTile::new(64, 64, 8, 16, 64),
    CoopTile::new(32, 32, 8, 16, 64),
    CoopTile::new(32, 32, 8, 16, 32),
    CoopTile::new(16, 64, 8, 16, 64),
];

impl CoopTile {
    /// A cooperative tile (see [`CoopTile::check`]).
    pub const fn new(tm: u32, tn: u32, size: u32, kc: u32, threads: u32) -> Self {
        Self {
            tm,
            tn,
            size,
            kc,
            threads,
        }
    }

    /// Whether the shader's layout rules hold: fragments of side 8 or 16, a tile and a stage
    /// of whole fragments up to 256 x 256 x 64, and invocations (1..=1024) that are a multiple
    /// of TN and KC and divide both stage sizes.
    pub fn check(&self) -> std::result::Result<(), String> {
        let Self {
            tm,
            tn,
            size,
            kc,
            threads,
        } = *self;
        let whole = |n: u32, most: u32| (size..=most).contains(&n) && n.is_multiple_of(size);
        let ok = (size == 8 || size == 16)
            && whole(tm, 256)
            && whole(tn, 256)
            && whole(kc, 64)
            && (1..=1024).contains(&threads);
        if !ok {
            return Err(format!(
                "{self}: fragments must be 8 or 16 wide and the tile and stage whole fragments up to 256 x 256 x 64, with 1..1024 invocations"
            ));
        }
        let loads_fixed = threads.is_multiple_of(tn)
            && threads.is_multiple_of(kc)
            && (kc * tm).is_multiple_of(threads)
            && (kc * tn).is_multiple_of(threads);
        if !loads_fixed {
            return Err(format!(
                "{self}: {threads} invocations must be a multiple of TN and KC and divide KC x TM and KC x TN"
            ));
        }
        Ok(())
    }

    /// The block of fragments each subgroup owns on an adapter whose subgroups are `lanes`
    /// wide, as (fragment rows, fragment columns), if the tile splits evenly into blocks of at
    /// most 8 fragments, one per subgroup. Of the blocks that tile it, the one with the fewest
    /// rows plus columns: per reduction step a subgroup loads one A fragment per block row and
    /// one B fragment per block column for rows x columns products (a 2 x 4 block: 6 loads for
    /// 8 products, a 1 x 8 row: 9); of two such, the one with fewer rows (2 x 4, not 4 x 2).
    fn fragment_block(&self, lanes: u32) -> Option<(u32, u32)> {
        if lanes == 0 || !self.threads.is_multiple_of(lanes) {
            return None;
        }
        let subgroups = self.threads / lanes;
        let (tile_rows, tile_cols) = (self.tm / self.size, self.tn / self.size);
        let fragments = tile_rows * tile_cols;
        if !fragments.is_multiple_of(subgroups) {
            return None;
        }
        let frags = fragments / subgroups;
        if frags > 8 {
            return None;
        }
        (1..=frags)
            .filter(|rows| frags.is_multiple_of(*rows))
            .map(|rows| (rows, frags / rows))
            .filter(|(rows, cols)| {
                tile_rows.is_multiple_of(*rows) && tile_cols.is_multiple_of(*cols)
            })
            .min_by_key(|(rows, cols)| (rows + cols, *rows))
    }
}

/// `TMxTN/SxSxS/kKC/wTHREADS`, e.g. `64x64/16x16x16/k32/w128`.
impl fmt::Display for CoopTile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            tm,
            tn,
            size,
            kc,
            threads,
        } = self;
        write!(f, "{tm}x{tn}/{size}x{size}x{size}/k{kc}/w{threads}")
    }
}

impl FromStr for CoopTile {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?} is not a cooperative tile like 64x64/16x16x16/k32/w128");
        let parts: Vec<&str> = s.split('/').collect();
        let [tile, fragment, kc, threads] = parts[..] else {
            return Err(bad());
        };
        let number = |t: &str| t.parse::<u32>().map_err(|_| bad());
        let (tm, tn) = tile.split_once('x').ok_or_else(bad)?;
        let sides: Vec<&str> = fragment.split('x').collect();
        if sides.len() != 3 || sides.iter().any(|side| *side != sides[0]) {
            return Err(bad());
        }
        let kc = kc.strip_prefix('k').ok_or_else(bad)?;
        let threads = threads.strip_prefix('w').ok_or_else(bad)?;
        let tile = Self::new(
            number(tm)?,
            number(tn)?,
            number(sides[0])?,
            number(kc)?,
            number(threads)?,
        );
        tile.check()?;
        Ok(tile)
    }
}

/// One kernel of the core: its inner loop, the precision of its operands and its tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CoreKernel {
    /// Register tiles of FMAs on f32 operands.
    F32(TileShape),
    /// Register tiles of FMAs on f16 operands, accumulated in f32 (mixed precision; needs
    /// `Features::SHADER_F16`).
    F16(TileShape),
    /// Cooperative matrices (tensor cores) on f16 operands, accumulated in f32 (mixed
    /// precision; needs the adapter to list the fragment size with f16 -> f32).
    Coop(CoopTile),
}

impl CoreKernel {
    /// The shader's layout rules (see [`TileShape::check`], [`CoopTile::check`]).
    pub fn check(&self) -> std::result::Result<(), String> {
        match self {
            CoreKernel::F32(t) | CoreKernel::F16(t) => t.check(),
            CoreKernel::Coop(t) => t.check(),
        }
    }

    /// Rows, columns and reduction steps of one tile.
    fn sides(&self) -> (u32, u32, u32) {
        match *self {
            CoreKernel::F32(t) | CoreKernel::F16(t) => (t.tm, t.tn, t.kc),
            CoreKernel::Coop(t) => (t.tm, t.tn, t.kc),
        }
    }

    /// Rows per tile.
    pub fn rows(&self) -> u32 {
        self.sides().0
    }

    /// Columns per tile.
    pub fn cols(&self) -> u32 {
        self.sides().1
    }

    /// How this kernel splits the reduction (length `red`) of `groups` products of `rows` x
    /// `cols`: (splits, reduction steps per split, a multiple of KC). Enough splits for 1,024
    /// workgroups, each but the last at least four stages long, their f32 partial products within
    /// `max_partial_bytes`; (1, `red`) where that allows no more than one.
    pub fn reduction_splits(
        &self,
        (groups, rows, cols): (usize, usize, usize),
        red: usize,
        max_partial_bytes: u64,
    ) -> (usize, usize) {
        let kc = self.sides().2 as usize;
        let outputs = groups * rows * cols;
        let tiles =
            groups * rows.div_ceil(self.rows() as usize) * cols.div_ceil(self.cols() as usize);
        let longest = red / (kc * MIN_SPLIT_STAGES);
        let fits =
            usize::try_from(max_partial_bytes / (outputs as u64 * 4).max(1)).unwrap_or(usize::MAX);
        let wanted = SPLIT_TARGET_WORKGROUPS
            .div_ceil(tiles.max(1))
            .min(longest)
            .min(fits);
        if wanted <= 1 {
            return (1, red);
        }
        let split_len = red.div_ceil(wanted).div_ceil(kc) * kc;
        (red.div_ceil(split_len), split_len)
    }

    /// Invocations per workgroup.
    pub fn threads(&self) -> u32 {
        match self {
            CoreKernel::F32(t) | CoreKernel::F16(t) => t.threads(),
            CoreKernel::Coop(t) => t.threads,
        }
    }

    /// Bytes per staged operand and the padding of each stage row, in operands (against bank
    /// conflicts, and keeping the rows aligned: 4 operands for the FMA loop's vec4 reads; 16
    /// bytes for cooperative loads, which need that alignment).
    fn operand_bytes_and_pad(&self) -> (u32, u32) {
        match self {
            CoreKernel::F32(_) => (4, 4),
            CoreKernel::F16(_) => (2, 4),
            CoreKernel::Coop(_) => (2, 8),
        }
    }

    /// Entries of the shader's `taps` table: two stages' reduction entries, or a tile's columns.
    fn tap_entries(&self) -> u32 {
        let (_, tn, kc) = self.sides();
        (2 * kc).max(tn)
    }

    /// Strides of the A and B stages, in operands.
    fn strides(&self) -> (u32, u32) {
        let (tm, tn, _) = self.sides();
        let (_, pad) = self.operand_bytes_and_pad();
        (tm + pad, tn + pad)
    }

    /// Workgroup memory one workgroup uses, in bytes, on subgroups of `lanes` invocations
    /// (the cooperative epilogue has a slot per subgroup; the others do not depend on it): the
    /// two stages, the `taps` table and the cooperative slots.
    pub fn workgroup_bytes(&self, lanes: u32) -> u32 {
        let (_, _, kc) = self.sides();
        let (bytes, _) = self.operand_bytes_and_pad();
        let (sa, sb) = self.strides();
        let stages = kc * (sa + sb) * bytes + self.tap_entries() * TAP_BYTES;
        match self {
            CoreKernel::Coop(t) => stages + t.size * t.size * (t.threads / lanes.max(1)) * 4,
            _ => stages,
        }
    }

    /// Why the device's limits refuse the kernel on subgroups of `lanes`, if they do.
    fn fits_limits(&self, limits: &wgpu::Limits, lanes: u32) -> std::result::Result<(), Error> {
        let most_threads = limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x);
        if self.threads() > most_threads {
            return Err(Error::Limit {
                op: "gemm core",
                limit: "max_compute_invocations_per_workgroup / max_compute_workgroup_size_x",
                asked: u64::from(self.threads()),
                allowed: u64::from(most_threads),
            });
        }
        let bytes = self.workgroup_bytes(lanes);
        if bytes > limits.max_compute_workgroup_storage_size {
            return Err(Error::Limit {
                op: "gemm core",
                limit: "max_compute_workgroup_storage_size",
                asked: u64::from(bytes),
                allowed: u64::from(limits.max_compute_workgroup_storage_size),
            });
        }
        Ok(())
    }

    /// Why `ctx` cannot run the kernel, if it cannot: the layout rules, the device's limits,
    /// its features (f16; for cooperative tiles the fragment size with f16 -> f32 among the
    /// adapter's configurations, and one subgroup size that splits the fragments evenly).
    pub fn runnable(&self, ctx: &Context) -> Result<()> {
        self.check().map_err(|message| Error::Gpu {
            op: "gemm core",
            message,
            source: None,
        })?;
        let unsupported = |feature: String| Error::Unsupported {
            op: "gemm core",
            feature,
            adapter: ctx.adapter_info().name.clone(),
        };
        let needs = self.spec(DType::F32).shader.needs;
        if !ctx.features().contains(needs) {
            return Err(unsupported(format!(
                "{} (needed by {self})",
                crate::gpu::feature_names(needs - ctx.features())
            )));
        }
        if let CoreKernel::Coop(t) = self {
            let listed = ctx.cooperative_matrices().iter().any(|c| {
                use wgpu::CooperativeScalarType::{F16, F32};
                (c.m_size, c.n_size, c.k_size) == (t.size, t.size, t.size)
                    && c.ab_type == F16
                    && c.cr_type == F32
            });
            if !listed {
                return Err(unsupported(format!(
                    "{0}x{0}x{0} f16 -> f32 cooperative matrices (needed by {self})",
                    t.size
                )));
            }
            let info = ctx.adapter_info();
            let lanes = info.subgroup_min_size;
            if info.subgroup_max_size != lanes || t.fragment_block(lanes).is_none() {
                return Err(unsupported(format!(
                    "one subgroup size that splits {self}'s fragments into blocks of at most 8, one per subgroup (subgroups of {}..{} lanes)",
                    info.subgroup_min_size, info.subgroup_max_size
                )));
            }
        }
        self.fits_limits(ctx.limits(), ctx.adapter_info().subgroup_min_size)
    }

    /// Whether `ctx` can run the kernel.
    pub fn runs_on(&self, ctx: &Context) -> bool {
        self.runnable(ctx).is_ok()
    }

    /// Whether the operands are f16 (the mixed-precision kernels).
    pub fn is_mixed(&self) -> bool {
        !matches!(self, CoreKernel::F32(_))
    }

    /// The module for activations stored as `activations`. f16 activations run only on the
    /// mixed-precision kernels (their operands are f16 anyway): an f32 kernel gets the f32
    /// module, whose dispatch then refuses the f16 tensors by name.
    fn spec(&self, activations: DType) -> &'static KernelSpec {
        match (self, activations) {
            (CoreKernel::F32(_), _) => &GEMM,
            (CoreKernel::F16(_), DType::F32) => &GEMM_F16,
            (CoreKernel::F16(_), DType::F16) => &GEMM_F16_ACT16,
            (CoreKernel::Coop(t), DType::F32) if t.size == 8 => &GEMM_COOP8,
            (CoreKernel::Coop(t), DType::F16) if t.size == 8 => &GEMM_COOP8_ACT16,
            (CoreKernel::Coop(_), DType::F32) => &GEMM_COOP16,
            (CoreKernel::Coop(_), DType::F16) => &GEMM_COOP16_ACT16,
        }
    }

    /// The tile part of a profile's kernel name (`64x64/4x4/k16`).
    fn shape(&self) -> String {
        match self {
            CoreKernel::F32(t) | CoreKernel::F16(t) => t.to_string(),
            CoreKernel::Coop(t) => t.to_string(),
        }
    }

    /// How a profile names this kernel in `role` (0 forward, 1 input gradient, 2 weight
    /// gradient, 3 matrix product) on activations stored as `activations`:
    /// `gemm_core_f16_act16::gemm[64x64/4x4/k16 role 0]`.
    pub fn profile_name(&self, role: u32, activations: DType) -> String {
        let spec = self.spec(activations);
        format!(
            "{}::{}[{} role {role}]",
            spec.shader.name,
            spec.entry,
            self.shape()
        )
    }

    fn constants(
        &self,
        ctx: &Context,
        role: Role,
        a_kfast: bool,
        b_kfast: bool,
    ) -> Vec<(&'static str, f64)> {
        let (tm, tn, kc) = self.sides();
        let (sa, sb) = self.strides();
        let mut out = vec![
            ("TM", f64::from(tm)),
            ("TN", f64::from(tn)),
            ("KC", f64::from(kc)),
            ("ROLE", f64::from(role as u32)),
            ("A_KFAST", f64::from(u8::from(a_kfast))),
            ("B_KFAST", f64::from(u8::from(b_kfast))),
            ("A_STRIDE", f64::from(sa)),
            ("B_STRIDE", f64::from(sb)),
            ("A_LEN", f64::from(kc * sa)),
            ("B_LEN", f64::from(kc * sb)),
            ("TAB_LEN", f64::from(self.tap_entries())),
        ];
        match self {
            CoreKernel::F32(t) | CoreKernel::F16(t) => {
                out.extend([
                    ("RM", f64::from(t.rm)),
                    ("RN", f64::from(t.rn)),
                    ("A_VLEN", f64::from(kc * sa / 4)),
                    ("B_VLEN", f64::from(kc * sb / 4)),
                ]);
            }
            CoreKernel::Coop(t) => {
                let lanes = ctx.adapter_info().subgroup_min_size;
                let (rows, cols) = t.fragment_block(lanes).unwrap_or((1, 1));
                let slots = t.size * t.size * (t.threads / lanes.max(1));
                out.extend([
                    ("FRAG_ROWS", f64::from(rows)),
                    ("FRAG_COLS", f64::from(cols)),
                    ("C_LEN", f64::from(slots)),
                ]);
            }
        }
        out
    }
}

/// The kernel's spelling in variants: `64x64/4x4/k16` (f32), `f16:64x64/4x4/k16`,
/// `coop:64x64/16x16x16/k32/w128`.
impl fmt::Display for CoreKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreKernel::F32(t) => write!(f, "{t}"),
            CoreKernel::F16(t) => write!(f, "f16:{t}"),
            CoreKernel::Coop(t) => write!(f, "coop:{t}"),
        }
    }
}

impl FromStr for CoreKernel {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(tile) = s.strip_prefix("f16:") {
            tile.parse().map(CoreKernel::F16)
        } else if let Some(tile) = s.strip_prefix("coop:") {
            tile.parse().map(CoreKernel::Coop)
        } else {
            s.parse().map(CoreKernel::F32)
        }
    }
}

/// The role of one dispatch (the shader's `ROLE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    ConvForward = 0,
    ConvInputGrad = 1,
    ConvWeightGrad = 2,
    Matmul = 3,
}

/// The shader's uniform block.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    cin: u32,
    cout: u32,
    height: u32,
    width: u32,
    groups: u32,
    spatial: u32,
    pointwise: u32,
    has_bias: u32,
    accumulate: u32,
    rows: u32,
    cols: u32,
    red: u32,
    split_len: u32,
    splits: u32,
    tiles_m: u32,
    tiles_n: u32,
    trans_a: u32,
    trans_b: u32,
    cpg: u32,
    opg: u32,
    out_height: u32,
    out_width: u32,
    stride: u32,
}

impl Params {
    fn conv(kind: &ConvKind, d: &ConvDims) -> Self {
        let (oh, ow) = kind.out_hw(d);
        Self {
            batch: d.batch as u32,
            cin: d.cin as u32,
            cout: d.cout as u32,
            height: d.height as u32,
            width: d.width as u32,
            groups: kind.groups as u32,
            spatial: u32::from(kind.spatial()),
            pointwise: match kind.pointwise {
                Pointwise::None => 0,
                Pointwise::Dense => 1,
                Pointwise::Masked => 2,
            },
            splits: 1,
            cpg: (d.cin / kind.groups) as u32,
            opg: (d.cout / kind.groups) as u32,
            out_height: oh as u32,
            out_width: ow as u32,
            stride: kind.stride as u32,
            ..Self::default()
        }
    }

    /// Sets the product's size and the tile grid for `tile` (checked first: the grid divides by
    /// its sides).
    fn product(
        mut self,
        kernel: &CoreKernel,
        rows: usize,
        cols: usize,
        red: usize,
    ) -> Result<Self> {
        kernel.check().map_err(|message| Error::Gpu {
            op: "gemm core",
            message,
            source: None,
        })?;
        self.rows = rows as u32;
        self.cols = cols as u32;
        self.red = red as u32;
        self.splits = 1;
        self.split_len = red as u32;
        self.tiles_m = rows.div_ceil(kernel.rows() as usize) as u32;
        self.tiles_n = cols.div_ceil(kernel.cols() as usize) as u32;
        Ok(self)
    }

    /// Splits the reduction as [`CoreKernel::reduction_splits`] says (partials within one
    /// binding of `ctx`); returns the partial products' shape `[splits, groups * rows, cols]`.
    fn split(&mut self, kernel: &CoreKernel, ctx: &Context) -> [usize; 3] {
        let all_rows = self.groups.max(1) as usize * self.rows as usize;
        let (splits, split_len) = kernel.reduction_splits(
            (
                self.groups.max(1) as usize,
                self.rows as usize,
                self.cols as usize,
            ),
            self.red as usize,
            ctx.max_binding_bytes(),
        );
        self.splits = splits as u32;
        self.split_len = split_len as u32;
        [splits, all_rows, self.cols as usize]
    }

    fn workgroups(&self) -> u64 {
        u64::from(self.tiles_m)
            * u64::from(self.tiles_n)
            * u64::from(self.groups.max(1))
            * u64::from(self.splits)
    }
}

/// The reduction space of one group's product in the forward direction (`channels` = cin) or
/// the input-gradient direction (`channels` = cout): own-block spatial taps, then 1x1 channels.
pub(crate) fn reduction_len(kind: &ConvKind, channels: usize) -> usize {
    let k3 = channels / kind.groups * kind.taps();
    let kp = match kind.pointwise {
        Pointwise::None => 0,
        Pointwise::Dense => channels,
        Pointwise::Masked => channels - channels / kind.groups,
    };
    k3 + kp
}

/// Records one dispatch of the core in `role`, with the conv geometry of `kind` (None for the
/// matrix product), on activations stored as the dtype of `buffers[0]`. The kernel is checked
/// against the device here (features, subgroups, limits): wgpu 30 does not check a workgroup
/// size or workgroup array given by override constants. With the shape checks of the callers
/// (no zero-sized dimension, groups dividing the channels, a kind that passed
/// [`ConvKind::check`]) this upholds the host's side of the bounds argument in
/// `shaders/gemm_core.wgsl`.
fn dispatch(
    ctx: &Context,
    kernel: &CoreKernel,
    (role, a_kfast, b_kfast): (Role, bool, bool),
    kind: Option<&ConvKind>,
    p: &Params,
    buffers: &[&Tensor],
) -> Result<()> {
    if p.rows == 0 || p.cols == 0 {
        // No output (and tiles_m or tiles_n would be a zero divisor in the shader).
        return Ok(());
    }
    kernel.runnable(ctx)?;
    let mut constants = kernel.constants(ctx, role, a_kfast, b_kfast);
    if let Some(kind) = kind {
        constants.push(super::conv::kernel_constant(kind));
    }
    let activations = buffers[0].dtype();
    ctx.dispatch_labelled(
        &|| kernel.profile_name(role as u32, activations),
        kernel.spec(activations),
        kernel.threads(),
        &constants,
        p,
        buffers,
        p.workgroups(),
    )
}

/// Records the conv forward pass (`src` = x, `out` = y) or the input gradient (`src` = dy,
/// `out` = dx) with `kernel`, its reduction split over workgroups where `split` asks and the
/// product allows (see [`CoreKernel::reduction_splits`]).
///
/// # Shapes
/// as [`super::conv::forward_into`] and [`super::conv::backward_input`]
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_forward_or_input_grad(
    input_grad: bool,
    (kernel, split): (&CoreKernel, bool),
    kind: &ConvKind,
    d: &ConvDims,
    src: &Tensor,
    w3: &Tensor,
    w1: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
    accumulate: bool,
    spare: &Tensor,
) -> Result<()> {
    let (oh, ow) = kind.out_hw(d);
    let (role, rows, channels, pixels) = if input_grad {
        (Role::ConvInputGrad, d.cin, d.cout, d.height * d.width)
    } else {
        (Role::ConvForward, d.cout, d.cin, oh * ow)
    };
    let mut p = Params::conv(kind, d).product(
        kernel,
        rows / kind.groups,
        d.batch * pixels,
        reduction_len(kind, channels),
    )?;
    p.has_bias = u32::from(bias.is_some());
    p.accumulate = u32::from(accumulate);
    let spare_act = match src.dtype() {
        DType::F32 => spare.clone(),
        dtype => super::placeholder_as(src.context(), dtype)?,
    };
    let bias = bias.unwrap_or(spare);
    let operands = [src, &spare_act, w3, w1, bias];
    split_or_whole(
        (kernel, split),
        (role, true, false),
        Some(kind),
        &mut p,
        &operands,
        out,
    )
}

/// Records the product of `p` (roles 0, 1, 3) into `out` with `kernel`: in one pass, or where
/// `split` asks and the product gives more than one split, as split partial products that
/// `sum_splits` then adds in a fixed order and writes through the epilogue. `operands` are
/// the tensors of bindings 1 to 5 (src, src2, w3, w1, bias).
fn split_or_whole(
    (kernel, split): (&CoreKernel, bool),
    layout: (Role, bool, bool),
    kind: Option<&ConvKind>,
    p: &mut Params,
    operands: &[&Tensor; 5],
    out: &Tensor,
) -> Result<()> {
    let ctx = out.context();
    let shape = if split && p.rows > 0 && p.cols > 0 {
        p.split(kernel, ctx)
    } else {
        [1, 0, 0]
    };
    let [src, src2, w3, w1, bias] = *operands;
    if shape[0] == 1 {
        // One split: `p` still holds the whole reduction (`reduction_splits` gave (1, red)).
        // Bound read-write: not a buffer that is also bound read-only.
        let no_partials = super::placeholder(ctx)?;
        return dispatch(
            ctx,
            kernel,
            layout,
            kind,
            p,
            &[src, src2, w3, w1, bias, out, &no_partials],
        );
    }
    let partials = Tensor::uninit(ctx, &shape)?;
    // Not written in the split pass: a placeholder of `out`'s dtype (bound read-write).
    let no_dst = super::placeholder_as(ctx, out.dtype())?;
    dispatch(
        ctx,
        kernel,
        layout,
        kind,
        p,
        &[src, src2, w3, w1, bias, &no_dst, &partials],
    )?;
    let mut constants = vec![("ROLE", f64::from(layout.0 as u32))];
    constants.extend(kind.map(super::conv::kernel_constant));
    let outputs = (shape[1] * shape[2]) as u64;
    ctx.dispatch_labelled(
        &|| sum_splits_profile_name(layout.0 as u32, out.dtype()),
        SUM_SPLITS.stored_as(out.dtype()),
        256,
        &constants,
        &*p,
        &[bias, out, &partials],
        outputs.div_ceil(256),
    )
}

/// How a profile names the pass that adds a split reduction's partial products in `role` (0
/// forward, 1 input gradient, 3 matrix product) on activations stored as `activations`:
/// `gemm_core::sum_splits[role 0]`.
pub fn sum_splits_profile_name(role: u32, activations: DType) -> String {
    let spec = SUM_SPLITS.stored_as(activations);
    format!("{}::{}[role {role}]", spec.shader.name, spec.entry)
}

/// Records the weight gradients into `dw3` / `dw1` (either may be a placeholder when the kind
/// has no such part): split-K partial products over slices of the output pixels, then a
/// fixed-order sum and scatter (deterministic, no atomics).
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `dy`: `[B, N, OH, OW]` → `dw3`: `[N, M/G, K, K]`, `dw1`: `[N, M]`
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_weight_grad(
    kernel: &CoreKernel,
    kind: &ConvKind,
    d: &ConvDims,
    x: &Tensor,
    dy: &Tensor,
    dw3: &Tensor,
    dw1: &Tensor,
    spare: &Tensor,
) -> Result<()> {
    let ctx = x.context();
    let space = reduction_len(kind, d.cin);
    let outputs = d.cout * d.cin / kind.groups * kind.taps()
        + if kind.pointwise == Pointwise::None {
            0
        } else {
            d.cout * d.cin
        };
    let (oh, ow) = kind.out_hw(d);
    let pixels = d.batch * oh * ow;
    let mut p = Params::conv(kind, d).product(kernel, d.cout / kind.groups, space, pixels)?;
    if space == 0 {
        // A masked 1x1 conv with one part: every weight is masked, every gradient exactly zero.
        return ctx.dispatch_workgroups(
            &SCATTER,
            256,
            &[super::conv::kernel_constant(kind)],
            &p,
            &[spare, dw3, dw1],
            outputs.div_ceil(256) as u64,
        );
    }
    // Enough workgroups to fill a GPU (role 2 always writes partial products, one split or
    // more).
    let shape = p.split(kernel, ctx);
    let bytes = (shape.iter().product::<usize>() * 4) as u64;
    if bytes > ctx.max_binding_bytes() {
        return Err(Error::Limit {
            op: "conv backward_weight",
            limit: "max_storage_buffer_binding_size",
            asked: bytes,
            allowed: ctx.max_binding_bytes(),
        });
    }
    let partials = Tensor::uninit(ctx, &shape)?;
    // Bound read-write: not a buffer that is also bound read-only.
    let no_dst = super::placeholder_as(ctx, x.dtype())?;
    dispatch(
        ctx,
        kernel,
        (Role::ConvWeightGrad, true, true),
        Some(kind),
        &p,
        &[x, dy, spare, spare, spare, &no_dst, &partials],
    )?;
    ctx.dispatch_workgroups(
        &SCATTER,
        256,
        &[super::conv::kernel_constant(kind)],
        &p,
        &[&partials, dw3, dw1],
        outputs.div_ceil(256) as u64,
    )
}

/// Records `out (+)= op(a) @ op(b) (+ bias)` with `kernel`, its reduction split over
/// workgroups where `split` asks and the product allows.
///
/// # Shapes
/// `op(a)`: `[m, k]`, `op(b)`: `[k, n]`, `bias`: `[n]`, `out`: `[m, n]`
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    (kernel, split): (&CoreKernel, bool),
    a: &Tensor,
    la: Layout,
    b: &Tensor,
    lb: Layout,
    bias: Option<&Tensor>,
    out: &Tensor,
    accumulate: bool,
    (m, k, n): (usize, usize, usize),
    spare: &Tensor,
) -> Result<()> {
    let (trans_a, trans_b) = (la == Layout::Transposed, lb == Layout::Transposed);
    let mut p = Params {
        groups: 1,
        has_bias: u32::from(bias.is_some()),
        accumulate: u32::from(accumulate),
        trans_a: u32::from(trans_a),
        trans_b: u32::from(trans_b),
        ..Params::default()
    }
    .product(kernel, m, n, k)?;
    p.batch = 1;
    split_or_whole(
        (kernel, split),
        (Role::Matmul, !trans_a, trans_b),
        None,
        &mut p,
        &[a, b, spare, spare, bias.unwrap_or(spare)],
        out,
    )
}

/// Every kernel entry point of this module (the shader reflection test checks each).
pub(crate) static SPECS: &[&KernelSpec] = &[
    &GEMM,
    &GEMM_F16,
    &GEMM_COOP8,
    &GEMM_COOP16,
    &GEMM_F16_ACT16,
    &GEMM_COOP8_ACT16,
    &GEMM_COOP16_ACT16,
    &SCATTER,
    &SUM_SPLITS.f32,
    &SUM_SPLITS.f16,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_shape_keeps_the_shaders_rules_and_round_trips_its_name() {
        for tile in TILE_SHAPES {
            tile.check().unwrap();
            assert_eq!(tile.to_string().parse::<TileShape>(), Ok(tile));
        }
        // Shapes the shader cannot run are refused by name.
        assert!(TileShape::new(64, 64, 16, 4, 16).check().is_err());
        assert!(TileShape::new(64, 48, 4, 4, 16).check().is_err());
        assert!("64x64/4x4".parse::<TileShape>().is_err());
        assert!("64x64/4x4/k16/x".parse::<TileShape>().is_err());
        assert!("0x0/1x1/k1".parse::<TileShape>().is_err());
        assert!(TileShape::new(64, 64, 4, 4, 0).check().is_err());
        assert!(TileShape::new(64, 62, 2, 2, 16).check().is_err()); // not whole vec4s
        assert!(TileShape::new(64, 32, 4, 2, 16).check().is_err()); // B not read as vec4s
    }

    #[test]
    fn cooperative_tiles_split_into_blocks_of_fragments_on_the_adapters_that_offer_them() {
        // Side 16: NVIDIA's (and Apple's) subgroups of 32; side 8: lavapipe's of 8 lanes.
        for tile in COOP_TILES {
            tile.check().unwrap();
            let lanes = if tile.size == 16 { 32 } else { 8 };
            let Some((rows, cols)) = tile.fragment_block(lanes) else {
                panic!("{tile} on {lanes} lanes");
            };
            // The blocks tile the tile, one per subgroup, at most 8 fragments each.
            let (tile_rows, tile_cols) = (tile.tm / tile.size, tile.tn / tile.size);
            assert!(rows * cols <= 8, "{tile}");
            assert!(tile_rows.is_multiple_of(rows) && tile_cols.is_multiple_of(cols));
            assert_eq!(
                (tile_rows / rows) * (tile_cols / cols),
                tile.threads / lanes,
                "{tile}"
            );
        }
        // 128x128 in fragments of 16 is 8 x 8 = 64 fragments: 8 subgroups of 32 lanes own 8
        // each, as 2 x 4 blocks (6 fragment loads per reduction step; a row of 8 would take
        // 9); 4 subgroups of 64 lanes would own 16 each (over 8).
        let tile = CoopTile::new(128, 128, 16, 32, 256);
        assert_eq!(tile.fragment_block(32), Some((2, 4)));
        assert_eq!(tile.fragment_block(64), None);
        // 128x64 is 8 x 4 fragments. In 64 invocations of 32 lanes each of 2 subgroups would
        // own 16; in 256, each of 8 owns 4, as 2 x 2; 48 lanes do not divide 256.
        let tile = CoopTile::new(128, 64, 16, 32, 256);
        assert_eq!(tile.fragment_block(32), Some((2, 2)));
        assert_eq!(CoopTile::new(128, 64, 16, 32, 64).fragment_block(32), None);
        assert_eq!(tile.fragment_block(48), None);
        // 16x64 is one row of 4 fragments: 2 subgroups own 1 x 2 each. 32x32/8 on 4
        // subgroups of 8 lanes: 2 x 2; on 8 lanes with 64 invocations: 1 x 2.
        assert_eq!(
            CoopTile::new(16, 64, 16, 16, 64).fragment_block(32),
            Some((1, 2))
        );
        assert_eq!(
            CoopTile::new(32, 32, 8, 16, 32).fragment_block(8),
            Some((2, 2))
        );
        assert_eq!(
            CoopTile::new(32, 32, 8, 16, 64).fragment_block(8),
            Some((1, 2))
        );
        // A block must tile the tile: 48x16 in fragments of 16 is a column of 3; one subgroup
        // of 32 lanes owns it as 3 x 1.
        assert_eq!(
            CoopTile::new(48, 16, 16, 16, 32).fragment_block(32),
            Some((3, 1))
        );
    }

    #[test]
    fn the_webgpu_default_limits_admit_all_but_the_largest_stage() {
        let limits = wgpu::Limits::default();
        let fitting: Vec<_> = TILE_SHAPES.iter().filter(|t| t.fits(&limits)).collect();
        assert_eq!(fitting.len(), TILE_SHAPES.len() - 1);
        assert!(!TileShape::new(128, 128, 8, 8, 16).fits(&limits));
        // README's number: two stages of 16 rows of 128 + 4 f32 operands, and a `taps` table
        // of max(2 x 16, 128) entries of 8 bytes.
        assert_eq!(
            TileShape::new(128, 128, 8, 8, 16).workgroup_bytes(),
            16 * 132 * 4 * 2 + 128 * 8
        );
    }
}
