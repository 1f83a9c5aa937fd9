//! One kernel of the GEMM core ([`CoreKernel`]): its inner loop, operand precision and tile,
//! the WGSL module that runs it, the override constants it is built with, what it needs of an
//! adapter, and how it splits a reduction.

use std::fmt;
use std::str::FromStr;

use super::{CoopTile, Staging, TileShape};
use crate::error::{Error, Result};
use crate::gpu::{Access, Context, KernelSpec};
use crate::shaders;
use crate::tensor::DType;

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
        pub(super) static $ident: KernelSpec = KernelSpec {
            shader: &shaders::$shader,
            entry: "gemm",
            bindings: GEMM_BINDINGS,
            workgroup_size: 256,
            params_size: size_of::<super::Params>(),
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
gemm_spec!(GEMM_QUADS, GEMM_CORE_QUADS);
gemm_spec!(GEMM_F16_QUADS, GEMM_CORE_F16_QUADS);
gemm_spec!(GEMM_COOP8_QUADS, GEMM_CORE_COOP8_QUADS);
gemm_spec!(GEMM_COOP16_QUADS, GEMM_CORE_COOP16_QUADS);
gemm_spec!(GEMM_F16_ACT16_QUADS, GEMM_CORE_F16_ACT16_QUADS);
gemm_spec!(GEMM_COOP8_ACT16_QUADS, GEMM_CORE_COOP8_ACT16_QUADS);
gemm_spec!(GEMM_COOP16_ACT16_QUADS, GEMM_CORE_COOP16_ACT16_QUADS);

/// Bytes of one entry of the shader's `taps` table (a `Tap`: an offset and its mask bits).
const TAP_BYTES: u32 = 8;

/// Workgroups a split reduction aims for: enough to fill a large GPU several times over.
const SPLIT_TARGET_WORKGROUPS: usize = 1024;

/// Stages (of KC reduction steps) every split but the last has at least: a split reads several
/// times as many operands as it writes partial products.
const MIN_SPLIT_STAGES: usize = 4;

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

    /// Strides of the A and B stages, in operands: a padded row of the tile's TM (TN) rows
    /// (columns) per reduction step, or where the cooperative loop keeps reduction steps
    /// contiguous, a padded row of KC steps per row (column) of the tile.
    fn strides(&self) -> (u32, u32) {
        let (tm, tn, kc) = self.sides();
        let (_, pad) = self.operand_bytes_and_pad();
        match self {
            CoreKernel::Coop(_) => (kc + pad, kc + pad),
            _ => (tm + pad, tn + pad),
        }
    }

    /// Operands of the A and B stages: their rows times `strides`.
    fn stage_lens(&self) -> (u32, u32) {
        let (tm, tn, kc) = self.sides();
        let (sa, sb) = self.strides();
        match self {
            CoreKernel::Coop(_) => (tm * sa, tn * sb),
            _ => (kc * sa, kc * sb),
        }
    }

    /// Workgroup memory one workgroup uses, in bytes, on subgroups of `lanes` invocations
    /// (the cooperative epilogue has a slot per subgroup; the others do not depend on it): the
    /// two stages, the `taps` table and the cooperative slots.
    pub fn workgroup_bytes(&self, lanes: u32) -> u32 {
        let (bytes, _) = self.operand_bytes_and_pad();
        let (a_len, b_len) = self.stage_lens();
        let stages = (a_len + b_len) * bytes + self.tap_entries() * TAP_BYTES;
        match self {
            CoreKernel::Coop(t) => stages + t.size * t.size * (t.threads / lanes.max(1)) * 4,
            _ => stages,
        }
    }

    /// Why the device's limits refuse the kernel on subgroups of `lanes`, if they do.
    pub(super) fn fits_limits(
        &self,
        limits: &wgpu::Limits,
        lanes: u32,
    ) -> std::result::Result<(), Error> {
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
    /// adapter's configurations, and subgroup sizes its fragment blocks fit: `subgroup_layout`).
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
        let needs = self.spec(DType::F32, false).shader.needs;
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
            let (min, max) = ctx.subgroup_sizes();
            if t.subgroup_layout(min, max).is_none() {
                return Err(unsupported(format!(
                    "subgroups that split {self}'s fragments into blocks, one per subgroup of {min} lanes and at most 8 fragments per subgroup of {max} (subgroups of {min}..{max} lanes)"
                )));
            }
        }
        self.fits_limits(ctx.limits(), ctx.subgroup_sizes().0)
    }

    /// Whether `ctx` can run the kernel.
    pub fn runs_on(&self, ctx: &Context) -> bool {
        self.runnable(ctx).is_ok()
    }

    /// Whether the operands are f16 (the mixed-precision kernels).
    pub fn is_mixed(&self) -> bool {
        !matches!(self, CoreKernel::F32(_))
    }

    /// The module for activations stored as `activations`, staging A a vec4 at a time where
    /// `quads` (`include/a_quads.wgsl`), else a value at a time. f16 activations run only on
    /// the mixed-precision kernels (their operands are f16 anyway): an f32 kernel gets the f32
    /// module, whose dispatch then refuses the f16 tensors by name.
    pub(super) fn spec(&self, activations: DType, quads: bool) -> &'static KernelSpec {
        let [scalar, by_quads] = match (self, activations) {
            (CoreKernel::F32(_), _) => [&GEMM, &GEMM_QUADS],
            (CoreKernel::F16(_), DType::F32) => [&GEMM_F16, &GEMM_F16_QUADS],
            (CoreKernel::F16(_), DType::F16) => [&GEMM_F16_ACT16, &GEMM_F16_ACT16_QUADS],
            (CoreKernel::Coop(t), DType::F32) if t.size == 8 => [&GEMM_COOP8, &GEMM_COOP8_QUADS],
            (CoreKernel::Coop(t), DType::F16) if t.size == 8 => {
                [&GEMM_COOP8_ACT16, &GEMM_COOP8_ACT16_QUADS]
            }
            (CoreKernel::Coop(_), DType::F32) => [&GEMM_COOP16, &GEMM_COOP16_QUADS],
            (CoreKernel::Coop(_), DType::F16) => [&GEMM_COOP16_ACT16, &GEMM_COOP16_ACT16_QUADS],
        };
        if quads { by_quads } else { scalar }
    }

    /// The tile part of a profile's kernel name (`64x64/4x4/k16`).
    fn shape(&self) -> String {
        match self {
            CoreKernel::F32(t) | CoreKernel::F16(t) => t.to_string(),
            CoreKernel::Coop(t) => t.to_string(),
        }
    }

    /// How a profile names this kernel in `role` (0 forward, 1 input gradient, 2 weight
    /// gradient, 3 matrix product) on activations stored as `activations`, staging A a vec4
    /// at a time where `quads`: `gemm_core_f16_act16::gemm[64x64/4x4/k16 role 0]`,
    /// `gemm_core_quads::gemm[64x64/4x4/k16 role 0]`.
    pub fn profile_name(&self, role: u32, activations: DType, quads: bool) -> String {
        let spec = self.spec(activations, quads);
        format!(
            "{}::{}[{} role {role}]",
            spec.shader.name,
            spec.entry,
            self.shape()
        )
    }

    /// Whether the tile can read A 4 reduction steps at a time (the shader's A_QUADS): each
    /// invocation loads whole quads of a stage, KC a multiple of 4 and KC x TM of 4 x WG.
    pub fn reads_quads(&self) -> bool {
        let (tm, _, kc) = self.sides();
        kc.is_multiple_of(4) && (kc * tm).is_multiple_of(4 * self.threads())
    }

    /// The override constants of a dispatch staged as `staging` on an adapter whose smallest
    /// subgroups have `lanes` invocations (the cooperative tiles lay their fragment blocks out
    /// for those; wider subgroups own several blocks each); the dispatch adds the kernel side
    /// (KS) and the workgroup size (WG).
    pub(super) fn constants(&self, lanes: u32, staging: Staging) -> Vec<(&'static str, f64)> {
        let (tm, tn, kc) = self.sides();
        let (sa, sb) = self.strides();
        let (a_len, b_len) = self.stage_lens();
        let flag = |on: bool| f64::from(u8::from(on));
        let mut out = vec![
            ("TM", f64::from(tm)),
            ("TN", f64::from(tn)),
            ("KC", f64::from(kc)),
            ("ROLE", f64::from(staging.role as u32)),
            ("A_KFAST", flag(staging.a_kfast)),
            ("B_KFAST", flag(staging.b_kfast)),
            ("A_STRIDE", f64::from(sa)),
            ("B_STRIDE", f64::from(sb)),
            ("A_LEN", f64::from(a_len)),
            ("B_LEN", f64::from(b_len)),
            ("TAB_LEN", f64::from(self.tap_entries())),
            ("STRIDED", flag(staging.strided)),
        ];
        match self {
            CoreKernel::F32(t) | CoreKernel::F16(t) => {
                out.extend([
                    ("RM", f64::from(t.rm)),
                    ("RN", f64::from(t.rn)),
                    ("A_VLEN", f64::from(a_len / 4)),
                    ("B_VLEN", f64::from(b_len / 4)),
                ]);
            }
            CoreKernel::Coop(t) => {
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

#[cfg(test)]
mod tests {
    use super::super::{Role, Staging};
    use super::*;

    /// Checks the override constants `constants` gives a forward dispatch of `kernel` on 32
    /// lanes against `expected`.
    fn assert_constants(kernel: CoreKernel, expected: &[(&str, f64)]) {
        let all = kernel.constants(32, Staging::new(Role::ConvForward, true, false));
        for (name, value) in expected {
            let found = all.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
            assert_eq!(found, Some(*value), "{kernel}: {name}");
        }
    }

    #[test]
    fn cooperative_stages_keep_reduction_steps_contiguous_and_fma_stages_do_not() {
        // Cooperative 64x64 of 16x16 fragments, 32 steps a stage, 128 invocations: A and B are
        // 64 rows of 32 + 8 halves (80 bytes: 5 units of 16), the `taps` table 64 entries of 8
        // bytes, the epilogue a 16x16 f32 slot for each of 4 subgroups of 32. FMA 64x64/k16:
        // a row of 64 + 4 f32 operands per reduction step, and the same `taps` table.
        let cases = [
            (
                CoreKernel::Coop(CoopTile::new(64, 64, 16, 32, 128)),
                [
                    ("A_STRIDE", 40.0),
                    ("B_STRIDE", 40.0),
                    ("A_LEN", 2560.0),
                    ("B_LEN", 2560.0),
                ],
                2 * 64 * 40 * 2 + 64 * 8 + 4 * 16 * 16 * 4,
            ),
            (
                CoreKernel::F32(TileShape::new(64, 64, 4, 4, 16)),
                [
                    ("A_STRIDE", 68.0),
                    ("A_LEN", 1088.0),
                    ("A_VLEN", 272.0),
                    ("B_LEN", 1088.0),
                ],
                2 * 16 * 68 * 4 + 64 * 8,
            ),
        ];
        for (kernel, stages, bytes) in cases {
            assert_constants(kernel, &stages);
            assert_eq!(kernel.workgroup_bytes(32), bytes, "{kernel}");
        }
    }
}
