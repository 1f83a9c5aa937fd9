//! The GEMM core's tile shapes: register tiles of the FMA loops ([`TileShape`]) and tiles of
//! the cooperative-matrix loop ([`CoopTile`]), the lists the tuner chooses from, their layout
//! rules and their spelling.

use std::fmt;
use std::str::FromStr;

use super::CoreKernel;

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
    /// are a multiple of TM, TN and KC and divide both stage sizes (so that each invocation loads
    /// a fixed row, column or reduction step).
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
        loads_fixed(wg, (tm, tn, kc)).map_err(|e| format!("{self}: {e}"))
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
/// on an adapter depends on its subgroup sizes (the tile is cut into blocks of fragments, as
/// square as the tile allows, one per subgroup of the smallest size; a subgroup holds at most
/// 8 fragments at the widest: `CoopTile::subgroup_layout`).
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
    /// of TM, TN and KC and divide both stage sizes.
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
        loads_fixed(threads, (tm, tn, kc)).map_err(|e| format!("{self}: {e}"))
    }

    /// The block of fragments each subgroup owns on an adapter whose subgroups are `lanes`
    /// wide, as (fragment rows, fragment columns), if the tile splits evenly into blocks of at
    /// most 8 fragments, one per subgroup. Of the blocks that tile it, the one with the fewest
    /// rows plus columns: per reduction step a subgroup loads one A fragment per block row and
    /// one B fragment per block column for rows x columns products (a 2 x 4 block: 6 loads for
    /// 8 products, a 1 x 8 row: 9); of two such, the one with fewer rows (2 x 4, not 4 x 2).
    pub(super) fn fragment_block(&self, lanes: u32) -> Option<(u32, u32)> {
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

impl CoopTile {
    /// The fragment block of [`CoopTile::fragment_block`] on the smallest subgroups, `min`
    /// lanes, if the tile also runs on every wider subgroup size up to `max` (an adapter whose
    /// driver picks the size per pipeline, such as AMD's 32 or 64): both are powers of two (as
    /// Vulkan's subgroup sizes are; so every size between is a multiple of `min`, and the
    /// shader's blocks divide among its subgroups), the invocations are whole subgroups of
    /// `max`, and a subgroup of `max` lanes, which owns `max / min` blocks, holds at most 8
    /// fragments.
    pub(super) fn subgroup_layout(&self, min: u32, max: u32) -> Option<(u32, u32)> {
        let (rows, cols) = self.fragment_block(min)?;
        let powers = min.is_power_of_two() && max.is_power_of_two() && min <= max;
        (powers && self.threads.is_multiple_of(max) && rows * cols * (max / min) <= 8)
            .then_some((rows, cols))
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

/// Whether `threads` invocations stage a tile of `tm` x `tn` with `kc` reduction steps each
/// loading a fixed row, column or reduction step: a multiple of TM, TN and KC that divides
/// both stage sizes.
fn loads_fixed(threads: u32, (tm, tn, kc): (u32, u32, u32)) -> std::result::Result<(), String> {
    let fixed = threads.is_multiple_of(tn)
        && threads.is_multiple_of(tm)
        && threads.is_multiple_of(kc)
        && (kc * tm).is_multiple_of(threads)
        && (kc * tn).is_multiple_of(threads);
    if fixed {
        return Ok(());
    }
    Err(format!(
        "{threads} invocations must be a multiple of TM, TN and KC and divide KC x TM and KC x TN"
    ))
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
        assert!(TileShape::new(64, 4, 4, 4, 16).check().is_err()); // 16 invocations, 64 rows
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
    fn cooperative_tiles_on_adapters_whose_driver_picks_the_subgroup_size() {
        // AMD's 32..64 lanes: blocks laid out for 32, a subgroup of 64 owning two. 64x64 in
        // fragments of 16 on 128 invocations: 4 blocks of 2 x 2, 8 fragments at 64 lanes.
        let tile = CoopTile::new(64, 64, 16, 32, 128);
        assert_eq!(tile.subgroup_layout(32, 64), Some((2, 2)));
        assert_eq!(
            CoopTile::new(128, 64, 16, 32, 256).subgroup_layout(32, 64),
            Some((2, 2))
        );
        // 128x128: 8 fragments per subgroup of 32 would be 16 at 64 (over 8).
        let tile = CoopTile::new(128, 128, 16, 32, 256);
        assert_eq!(tile.subgroup_layout(32, 64), None);
        // One size: the layout is `fragment_block`'s.
        for tile in COOP_TILES {
            for lanes in [8, 32] {
                assert_eq!(
                    tile.subgroup_layout(lanes, lanes),
                    tile.fragment_block(lanes)
                );
            }
        }
        // Invocations that are not whole subgroups of the widest size, and sizes that are not
        // powers of two (48 lanes: 96 invocations would be whole subgroups of 32 and 48, each
        // of 32 owning one fragment of 48x16), are refused.
        assert_eq!(
            CoopTile::new(16, 64, 16, 16, 32).subgroup_layout(32, 64),
            None
        );
        let tile = CoopTile::new(48, 16, 16, 16, 96);
        assert_eq!(tile.fragment_block(32), Some((1, 1)));
        assert_eq!(tile.subgroup_layout(32, 48), None);
        assert_eq!(tile.subgroup_layout(48, 48), None);
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
