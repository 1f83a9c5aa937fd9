//! Choices that need no timing: the candidate list of a problem, and a rule-based pick among
//! them (llama.cpp's and tfjs's kind of rule: the largest tile that still fills the GPU).

use super::{Pass, Problem, Variant};
use crate::gpu::{Context, Precision};
use crate::kernels::gemm_core::{COOP_TILES, CoreKernel, TILE_SHAPES};

/// Workgroups a dispatch should have to fill a large GPU: two per compute unit of a 132-unit
/// part (wgpu does not report the count, so the rule assumes a big one).
const TARGET_WORKGROUPS: usize = 264;

/// Rows per group below which a conv is memory-bound and the direct kernels stay (after
/// Lavin's rule for grouped convs; the tuner may still find otherwise).
const MIN_GEMM_ROWS: usize = 8;

/// The GEMM core's kernels of `precision` that `ctx` can run, largest tiles first within each
/// kind: f32 register tiles; for mixed, the cooperative tiles, then f16 register tiles.
pub fn kernels(ctx: &Context, precision: Precision) -> Vec<CoreKernel> {
    let all: Vec<CoreKernel> = match precision {
        Precision::F32 => TILE_SHAPES.iter().map(|t| CoreKernel::F32(*t)).collect(),
        Precision::Mixed => COOP_TILES
            .iter()
            .map(|t| CoreKernel::Coop(*t))
            .chain(TILE_SHAPES.iter().map(|t| CoreKernel::F16(*t)))
            .collect(),
    };
    all.into_iter().filter(|k| k.runs_on(ctx)).collect()
}

/// The f32 kernels a device with `limits` can run.
pub fn f32_kernels(limits: &wgpu::Limits) -> Vec<CoreKernel> {
    TILE_SHAPES
        .iter()
        .filter(|t| t.fits(limits))
        .map(|t| CoreKernel::F32(*t))
        .collect()
}

/// The variants worth timing for `problem` among `kernels` (of one precision): for f32 the
/// direct kernels too; every kernel whose tile is not more than half empty along a side (for
/// mixed precision, every kernel if none is); and each of those kernels with a split
/// reduction where its tiles alone give fewer than 264 workgroups and the reduction is long
/// enough to split (not for weight gradients: they always split).
pub fn candidates(kernels: &[CoreKernel], problem: &Problem) -> Vec<Variant> {
    let fitting: Vec<CoreKernel> = kernels
        .iter()
        .copied()
        .filter(|k| not_half_empty(k, problem))
        .collect();
    let pool = if fitting.is_empty() && problem.precision == Precision::Mixed {
        kernels.to_vec()
    } else {
        fitting
    };
    let whole = pool.iter().map(|k| Variant::Core(*k));
    let split = pool
        .iter()
        .filter(|k| worth_splitting(k, problem))
        .map(|k| Variant::SplitK(*k));
    let direct = (problem.precision == Precision::F32).then_some(Variant::Direct);
    direct.into_iter().chain(whole).chain(split).collect()
}

/// Whether `kernel` leaves a GPU short of workgroups on `problem` (a forward, input-gradient
/// or matrix product) and can split its reduction.
fn worth_splitting(kernel: &CoreKernel, problem: &Problem) -> bool {
    let shape = (problem.groups, problem.rows, problem.cols);
    problem.pass != Pass::ConvWeightGrad
        && workgroups(kernel, problem) < TARGET_WORKGROUPS
        && kernel.reduction_splits(shape, problem.depth, u64::MAX).0 > 1
}

/// Workgroups of `kernel`'s tiles on `problem` (without a split reduction).
fn workgroups(kernel: &CoreKernel, problem: &Problem) -> usize {
    problem.groups
        * problem.rows.div_ceil(kernel.rows() as usize)
        * problem.cols.div_ceil(kernel.cols() as usize)
}

fn not_half_empty(kernel: &CoreKernel, problem: &Problem) -> bool {
    let rows = problem.rows.max(1).next_power_of_two().max(8);
    let cols = problem.cols.max(1).next_power_of_two().max(32);
    kernel.rows() as usize <= rows && kernel.cols() as usize <= cols
}

/// The rule-based choice among `kernels` (of the problem's precision). f32: the direct kernels
/// on software adapters (measured fastest there), for groups of few rows and small products;
/// otherwise [`best_kernel`]. Mixed: [`best_kernel`] among the cooperative tiles where there
/// are any, else among the f16 ones (mixed precision always runs the core).
pub fn heuristic(device: wgpu::DeviceType, kernels: &[CoreKernel], problem: &Problem) -> Variant {
    if problem.precision == Precision::Mixed {
        let coop: Vec<CoreKernel> = kernels
            .iter()
            .copied()
            .filter(|k| matches!(k, CoreKernel::Coop(_)))
            .collect();
        let pool = if coop.is_empty() { kernels } else { &coop };
        // Where every tile is over half empty: the smallest.
        return best_kernel(pool, problem)
            .or_else(|| kernels.iter().copied().min_by_key(|k| k.rows() * k.cols()))
            .map(Variant::Core)
            .unwrap_or(Variant::Direct);
    }
    if device == wgpu::DeviceType::Cpu || problem.rows < MIN_GEMM_ROWS {
        return Variant::Direct;
    }
    if problem.pass == Pass::Matmul && problem.rows * problem.cols < 64 * 64 {
        return Variant::Direct;
    }
    best_kernel(kernels, problem)
        .map(Variant::Core)
        .unwrap_or(Variant::Direct)
}

/// The largest kernel (the list is ordered largest first) that still gives 264 workgroups (two
/// per compute unit of a 132-unit GPU; weight gradients get theirs from split-K, so there the
/// largest), else the one with the most workgroups; tiles over half empty are passed over.
pub fn best_kernel(kernels: &[CoreKernel], problem: &Problem) -> Option<CoreKernel> {
    let fitting: Vec<CoreKernel> = kernels
        .iter()
        .copied()
        .filter(|k| not_half_empty(k, problem))
        .collect();
    let enough = |k: &&CoreKernel| {
        problem.pass == Pass::ConvWeightGrad || workgroups(k, problem) >= TARGET_WORKGROUPS
    };
    fitting
        .iter()
        .find(enough)
        .or_else(|| fitting.iter().max_by_key(|k| workgroups(k, problem)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kernels::gemm_core::TileShape;

    fn problem(pass: Pass, groups: usize, rows: usize, cols: usize) -> Problem {
        Problem {
            pass,
            precision: Precision::F32,
            groups,
            rows,
            cols,
            depth: 64,
        }
    }

    #[test]
    fn software_adapters_and_small_groups_stay_direct() {
        let kernels = f32_kernels(&wgpu::Limits::default());
        let big = problem(Pass::ConvForward, 1, 256, 128 * 32 * 32);
        assert_eq!(
            heuristic(wgpu::DeviceType::Cpu, &kernels, &big),
            Variant::Direct
        );
        let few_rows = problem(Pass::ConvForward, 16, 4, 128 * 32 * 32);
        assert_eq!(
            heuristic(wgpu::DeviceType::DiscreteGpu, &kernels, &few_rows),
            Variant::Direct
        );
    }

    #[test]
    fn big_layers_get_big_tiles_and_small_maps_smaller_ones() {
        let limits = wgpu::Limits::default();
        let kernels = f32_kernels(&limits);
        let gpu = wgpu::DeviceType::DiscreteGpu;
        // VGG's first layer at batch 128: 64 filters x 131,072 pixels.
        let Variant::Core(t) =
            heuristic(gpu, &kernels, &problem(Pass::ConvForward, 1, 64, 131_072))
        else {
            panic!("a big layer should use the GEMM core");
        };
        assert_eq!((t.rows(), t.cols()), (64, 128));
        // 512 filters on 2x2 maps at batch 16: 64 columns; the rule trades tile size for
        // workgroups.
        let small = problem(Pass::ConvForward, 1, 512, 64);
        let Variant::Core(s) = heuristic(gpu, &kernels, &small) else {
            panic!("512 filters should use the GEMM core");
        };
        assert!(s.rows() * s.cols() < t.rows() * t.cols(), "{s} vs {t}");
        // With the adapter's larger workgroup memory the 128x128x16 stage becomes possible.
        let mut big_limits = limits.clone();
        big_limits.max_compute_workgroup_storage_size = 48 * 1024;
        let w = best_kernel(
            &f32_kernels(&big_limits),
            &problem(Pass::ConvWeightGrad, 1, 512, 4608),
        )
        .unwrap();
        assert_eq!(w, CoreKernel::F32(TileShape::new(128, 128, 8, 8, 16)));
    }

    #[test]
    fn candidates_fit_the_device_and_the_problem() {
        let limits = wgpu::Limits::default();
        let list = candidates(
            &f32_kernels(&limits),
            &problem(Pass::ConvForward, 4, 16, 1000),
        );
        assert_eq!(list[0], Variant::Direct);
        for v in &list[1..] {
            let Variant::Core(CoreKernel::F32(t)) = v else {
                panic!("{v}")
            };
            assert!(t.fits(&limits) && t.tm <= 16, "{t}");
        }
        assert!(list.len() >= 3, "{list:?}");
    }

    #[test]
    fn split_reductions_are_candidates_only_where_tiles_are_few_and_the_reduction_long() {
        let kernels = f32_kernels(&wgpu::Limits::default());
        let split = |list: &[Variant]| -> Vec<CoreKernel> {
            list.iter()
                .filter(|v| v.splits_reduction())
                .filter_map(Variant::core)
                .collect()
        };
        // 512 filters of a P = 4 HetConv on 2x2 maps at batch 16: 64 columns, k = 1,536.
        let mut small = problem(Pass::ConvForward, 1, 512, 64);
        small.depth = 512 * 9 / 4 + 384;
        let listed = candidates(&kernels, &small);
        let whole: Vec<CoreKernel> = listed
            .iter()
            .filter(|v| !v.splits_reduction())
            .filter_map(Variant::core)
            .collect();
        assert!(!whole.is_empty());
        assert_eq!(split(&listed), whole, "each fitting kernel, split too");
        for k in &whole {
            let (splits, len) = k.reduction_splits((1, 512, 64), small.depth, u64::MAX);
            assert!(
                splits > 1 && splits * len >= small.depth,
                "{k}: {splits} x {len}"
            );
            assert!((splits - 1) * len < small.depth, "{k}: an empty split");
            assert_eq!(len % 8, 0, "{k}: {len} is not whole stages");
        }
        // The weight gradient always splits; a big layer has workgroups enough; a short
        // reduction has nothing to split.
        let weight = problem(Pass::ConvWeightGrad, 1, 512, 4608);
        assert!(split(&candidates(&kernels, &weight)).is_empty());
        let mut big = problem(Pass::ConvForward, 1, 64, 131_072);
        big.depth = 27;
        assert!(split(&candidates(&kernels, &big)).is_empty());
        let mut short = small;
        short.depth = 40;
        assert!(split(&candidates(&kernels, &short)).is_empty());
        // Partial products beyond the binding limit: not split.
        let k = whole[0];
        assert_eq!(
            k.reduction_splits((1, 512, 64), 1536, 512 * 64 * 4),
            (1, 1536)
        );
    }

    #[test]
    fn mixed_precision_prefers_cooperative_tiles_and_never_the_f32_kernels() {
        let f16 = |t: TileShape| CoreKernel::F16(t);
        let coop = CoreKernel::Coop(COOP_TILES[2]);
        let kernels = vec![coop, f16(TILE_SHAPES[4]), f16(TILE_SHAPES[8])];
        let mut p = problem(Pass::ConvForward, 1, 64, 131_072);
        p.precision = Precision::Mixed;
        for device in [wgpu::DeviceType::Cpu, wgpu::DeviceType::DiscreteGpu] {
            assert_eq!(heuristic(device, &kernels, &p), Variant::Core(coop));
            assert_eq!(
                heuristic(device, &kernels[1..], &p),
                Variant::Core(kernels[1])
            );
        }
        let listed = candidates(&kernels, &p);
        assert!(!listed.contains(&Variant::Direct), "{listed:?}");
        assert!(listed.iter().all(|v| v.precision() == Precision::Mixed));
        // Two rows: every tile is over half empty, so every mixed kernel stays a candidate.
        let mut tiny = problem(Pass::Matmul, 1, 2, 10);
        tiny.precision = Precision::Mixed;
        assert_eq!(candidates(&kernels[..1], &tiny), vec![Variant::Core(coop)]);
    }
}
