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
/// mixed precision, every kernel if none is).
pub fn candidates(kernels: &[CoreKernel], problem: &Problem) -> Vec<Variant> {
    let fitting = kernels
        .iter()
        .filter(|k| not_half_empty(k, problem))
        .map(|k| Variant::Core(*k));
    match problem.precision {
        Precision::F32 => std::iter::once(Variant::Direct).chain(fitting).collect(),
        Precision::Mixed => {
            let list: Vec<Variant> = fitting.collect();
            if list.is_empty() {
                kernels.iter().map(|k| Variant::Core(*k)).collect()
            } else {
                list
            }
        }
    }
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
    let workgroups = |k: &CoreKernel| {
        problem.groups
            * problem.rows.div_ceil(k.rows() as usize)
            * problem.cols.div_ceil(k.cols() as usize)
    };
    let enough = |k: &&CoreKernel| {
        problem.pass == Pass::ConvWeightGrad || workgroups(k) >= TARGET_WORKGROUPS
    };
    fitting
        .iter()
        .find(enough)
        .or_else(|| fitting.iter().max_by_key(|k| workgroups(k)))
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
