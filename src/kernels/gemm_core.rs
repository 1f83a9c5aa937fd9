//! The register-tiled GEMM core (`shaders/gemm_core.wgsl`): one WGSL source serves the conv
//! family's forward pass, input gradient and weight gradient (split-K) and the linear layer's
//! matrix product; the role and the tile shape are override constants. Grouped convs and HetConv
//! are a batched product with the group as the batch axis; every shape is accepted (edge tiles
//! are bounds-checked, interior ones are not).

use std::fmt;
use std::str::FromStr;

use super::conv::{ConvDims, ConvKind, Pointwise};
use super::gemm::Layout;
use crate::error::{Error, Result};
use crate::gpu::{Access, Context, KernelSpec};
use crate::shaders;
use crate::tensor::Tensor;

use Access::{Read, ReadWrite};

static GEMM: KernelSpec = KernelSpec {
    shader: &shaders::GEMM_CORE,
    entry: "gemm",
    bindings: &[
        (1, Read),
        (2, Read),
        (3, Read),
        (4, Read),
        (5, Read),
        (6, ReadWrite),
    ],
    workgroup_size: 256,
};

static SCATTER: KernelSpec = KernelSpec {
    shader: &shaders::GEMM_CORE,
    entry: "scatter_weight_grad",
    bindings: &[(1, Read), (6, ReadWrite), (7, ReadWrite)],
    workgroup_size: 256,
};

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
    /// Columns per invocation (at most 8).
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

    /// Words of the A and B stages (each row padded by one word against bank conflicts).
    fn stage_words(&self) -> (u32, u32) {
        (self.kc * (self.tm + 1), self.kc * (self.tn + 1))
    }

    /// Workgroup memory one workgroup uses, in bytes.
    pub fn workgroup_bytes(&self) -> u32 {
        let (a, b) = self.stage_words();
        (a + b) * 4
    }

    /// Whether the shader's layout rules hold: a tile of 1..=1024 rows and columns, 1..=64
    /// reduction steps, register tiles of at most 8 x 8 dividing the tile, and invocations that
    /// are a multiple of TN and KC and divide both stage sizes (so that each invocation loads a
    /// fixed column or a fixed reduction step).
    pub fn check(&self) -> std::result::Result<(), String> {
        let Self { tm, tn, rm, rn, kc } = *self;
        let ok = (1..=1024).contains(&tm)
            && (1..=1024).contains(&tn)
            && (1..=64).contains(&kc)
            && (1..=8).contains(&rm)
            && (1..=8).contains(&rn)
            && tm.is_multiple_of(rm)
            && tn.is_multiple_of(rn);
        if !ok {
            return Err(format!(
                "{self}: the tile must be 1..1024 x 1..1024 with 1..64 reduction steps, the register tile 1..8 x 1..8 dividing it"
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

    /// Whether a device with these limits can run the shape.
    pub fn fits(&self, limits: &wgpu::Limits) -> bool {
        self.check().is_ok()
            && self.threads() <= limits.max_compute_invocations_per_workgroup
            && self.threads() <= limits.max_compute_workgroup_size_x
            && self.workgroup_bytes() <= limits.max_compute_workgroup_storage_size
    }

    fn constants(&self, role: Role, a_kfast: bool, b_kfast: bool) -> [(&'static str, f64); 10] {
        let (a_len, b_len) = self.stage_words();
        [
            ("TM", f64::from(self.tm)),
            ("TN", f64::from(self.tn)),
            ("RM", f64::from(self.rm)),
            ("RN", f64::from(self.rn)),
            ("KC", f64::from(self.kc)),
            ("ROLE", f64::from(role as u32)),
            ("A_KFAST", f64::from(u8::from(a_kfast))),
            ("B_KFAST", f64::from(u8::from(b_kfast))),
            ("A_LEN", f64::from(a_len)),
            ("B_LEN", f64::from(b_len)),
        ]
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
    kernel3: u32,
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
}

impl Params {
    fn conv(kind: &ConvKind, d: &ConvDims) -> Self {
        Self {
            batch: d.batch as u32,
            cin: d.cin as u32,
            cout: d.cout as u32,
            height: d.height as u32,
            width: d.width as u32,
            groups: kind.groups as u32,
            kernel3: u32::from(kind.kernel3),
            pointwise: match kind.pointwise {
                Pointwise::None => 0,
                Pointwise::Dense => 1,
                Pointwise::Masked => 2,
            },
            splits: 1,
            cpg: (d.cin / kind.groups) as u32,
            opg: (d.cout / kind.groups) as u32,
            ..Self::default()
        }
    }

    /// Sets the product's size and the tile grid for `tile` (checked first: the grid divides by
    /// its sides).
    fn product(mut self, tile: &TileShape, rows: usize, cols: usize, red: usize) -> Result<Self> {
        tile.check().map_err(|message| Error::Gpu {
            op: "gemm core",
            message,
        })?;
        self.rows = rows as u32;
        self.cols = cols as u32;
        self.red = red as u32;
        self.tiles_m = rows.div_ceil(tile.tm as usize) as u32;
        self.tiles_n = cols.div_ceil(tile.tn as usize) as u32;
        Ok(self)
    }

    fn workgroups(&self) -> u64 {
        u64::from(self.tiles_m)
            * u64::from(self.tiles_n)
            * u64::from(self.groups.max(1))
            * u64::from(self.splits)
    }

    fn words(&self) -> &[u32] {
        bytemuck::cast_slice(std::slice::from_ref(self))
    }
}

/// The reduction space of one group's product in the forward direction (`channels` = cin) or
/// the input-gradient direction (`channels` = cout): own-block 3x3 taps, then 1x1 channels.
pub(crate) fn reduction_len(kind: &ConvKind, channels: usize) -> usize {
    let k3 = if kind.kernel3 {
        channels / kind.groups * 9
    } else {
        0
    };
    let kp = match kind.pointwise {
        Pointwise::None => 0,
        Pointwise::Dense => channels,
        Pointwise::Masked => channels - channels / kind.groups,
    };
    k3 + kp
}

/// Records one dispatch of the core. The tile is checked against the device's limits here:
/// wgpu 30 does not check a workgroup size or workgroup array given by override constants.
/// With the shape checks of the callers (no zero-sized dimension, groups dividing the channels)
/// this upholds the host's side of the bounds argument in `shaders/gemm_core.wgsl`.
fn dispatch(
    ctx: &Context,
    tile: &TileShape,
    constants: &[(&'static str, f64)],
    p: &Params,
    buffers: &[&Tensor],
) -> Result<()> {
    if p.rows == 0 || p.cols == 0 {
        // No output (and tiles_m or tiles_n would be a zero divisor in the shader).
        return Ok(());
    }
    let limits = ctx.limits();
    if !tile.fits(limits) {
        let most_threads = limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x);
        let (limit, asked, allowed) = if tile.threads() > most_threads {
            (
                "max_compute_invocations_per_workgroup / max_compute_workgroup_size_x",
                tile.threads(),
                most_threads,
            )
        } else {
            (
                "max_compute_workgroup_storage_size",
                tile.workgroup_bytes(),
                limits.max_compute_workgroup_storage_size,
            )
        };
        return Err(Error::Limit {
            op: "gemm core",
            limit,
            asked: u64::from(asked),
            allowed: u64::from(allowed),
        });
    }
    ctx.dispatch_workgroups(
        &GEMM,
        tile.threads(),
        constants,
        p.words(),
        buffers,
        p.workgroups(),
    )
}

/// Records the conv forward pass (`src` = x, `out` = y) or the input gradient (`src` = dy,
/// `out` = dx) with `tile`.
///
/// # Shapes
/// as [`super::conv::forward_into`] and [`super::conv::backward_input`]
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_forward_or_input_grad(
    input_grad: bool,
    tile: &TileShape,
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
    let (role, rows, channels) = if input_grad {
        (Role::ConvInputGrad, d.cin, d.cout)
    } else {
        (Role::ConvForward, d.cout, d.cin)
    };
    let mut p = Params::conv(kind, d).product(
        tile,
        rows / kind.groups,
        d.batch * d.height * d.width,
        reduction_len(kind, channels),
    )?;
    p.has_bias = u32::from(bias.is_some());
    p.accumulate = u32::from(accumulate);
    dispatch(
        src.context(),
        tile,
        &tile.constants(role, true, false),
        &p,
        &[src, spare, w3, w1, bias.unwrap_or(spare), out],
    )
}

/// Records the weight gradients into `dw3` / `dw1` (either may be a placeholder when the kind
/// has no such part): split-K partial products over slices of the pixels, then a fixed-order
/// sum and scatter (deterministic, no atomics).
///
/// # Shapes
/// `x`: `[B, M, H, W]`, `dy`: `[B, N, H, W]` → `dw3`: `[N, M/G, 3, 3]`, `dw1`: `[N, M]`
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_weight_grad(
    tile: &TileShape,
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
    let outputs = if kind.kernel3 {
        d.cout * d.cin / kind.groups * 9
    } else {
        0
    } + if kind.pointwise == Pointwise::None {
        0
    } else {
        d.cout * d.cin
    };
    let pixels = d.batch * d.height * d.width;
    let mut p = Params::conv(kind, d).product(tile, d.cout / kind.groups, space, pixels)?;
    if space == 0 {
        // A masked 1x1 conv with one part: every weight is masked, every gradient exactly zero.
        return ctx.dispatch_workgroups(
            &SCATTER,
            256,
            &[],
            p.words(),
            &[spare, dw3, dw1],
            outputs.div_ceil(256) as u64,
        );
    }
    // Enough workgroups to fill a GPU, each split at least four stages long, partials within
    // one binding.
    let kc = tile.kc as usize;
    let tiles = p.workgroups() as usize;
    let max_splits = pixels.div_ceil(kc * 4).max(1);
    let fits = (ctx.max_binding_bytes() as usize / (d.cout * space * 4).max(1)).max(1);
    let wanted = 1024usize.div_ceil(tiles).clamp(1, max_splits).min(fits);
    let split_len = pixels.div_ceil(wanted).div_ceil(kc) * kc;
    p.splits = pixels.div_ceil(split_len) as u32;
    p.split_len = split_len as u32;
    let bytes = (d.cout * space) as u64 * u64::from(p.splits) * 4;
    if bytes > ctx.max_binding_bytes() {
        return Err(Error::Limit {
            op: "conv backward_weight",
            limit: "max_storage_buffer_binding_size",
            asked: bytes,
            allowed: ctx.max_binding_bytes(),
        });
    }
    let partials = Tensor::uninit(ctx, &[p.splits as usize, d.cout, space])?;
    dispatch(
        ctx,
        tile,
        &tile.constants(Role::ConvWeightGrad, true, true),
        &p,
        &[x, dy, spare, spare, spare, &partials],
    )?;
    ctx.dispatch_workgroups(
        &SCATTER,
        256,
        &[],
        p.words(),
        &[&partials, dw3, dw1],
        outputs.div_ceil(256) as u64,
    )
}

/// Records `out (+)= op(a) @ op(b) (+ bias)` with `tile`.
///
/// # Shapes
/// `op(a)`: `[m, k]`, `op(b)`: `[k, n]`, `bias`: `[n]`, `out`: `[m, n]`
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    tile: &TileShape,
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
        splits: 1,
        has_bias: u32::from(bias.is_some()),
        accumulate: u32::from(accumulate),
        trans_a: u32::from(trans_a),
        trans_b: u32::from(trans_b),
        ..Params::default()
    }
    .product(tile, m, n, k)?;
    p.batch = 1;
    dispatch(
        a.context(),
        tile,
        &tile.constants(Role::Matmul, !trans_a, trans_b),
        &p,
        &[a, b, spare, spare, bias.unwrap_or(spare), out],
    )
}

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
    }

    #[test]
    fn the_webgpu_default_limits_admit_all_but_the_largest_stage() {
        let limits = wgpu::Limits::default();
        let fitting: Vec<_> = TILE_SHAPES.iter().filter(|t| t.fits(&limits)).collect();
        assert_eq!(fitting.len(), TILE_SHAPES.len() - 1);
        assert!(!TileShape::new(128, 128, 8, 8, 16).fits(&limits));
    }
}
