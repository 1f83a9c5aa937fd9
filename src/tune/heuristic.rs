//! Choices that need no timing: the candidate list of a problem, and a rule-based pick among
//! them (llama.cpp's and tfjs's kind of rule: the largest tile that still fills the GPU).

use super::{Pass, Problem, Variant};
use crate::kernels::gemm_core::{TILE_SHAPES, TileShape};

/// Workgroups a dispatch should have to fill a large GPU: two per compute unit of a 132-unit
/// part (wgpu does not report the count, so the rule assumes a big one).
const TARGET_WORKGROUPS: usize = 264;

/// Rows per group below which a conv is memory-bound and the direct kernels stay (after
/// Lavin's rule for grouped convs; the tuner may still find otherwise).
const MIN_GEMM_ROWS: usize = 8;

/// The variants worth timing for `problem` on a device with `limits`: the direct kernels and
/// every tile shape that fits the device and is not more than half empty along a side.
pub fn candidates(limits: &wgpu::Limits, problem: &Problem) -> Vec<Variant> {
    let mut out = vec![Variant::Direct];
    out.extend(
        TILE_SHAPES
            .iter()
            .filter(|t| t.fits(limits) && not_half_empty(t, problem))
            .map(|t| Variant::Gemm(*t)),
    );
    out
}

fn not_half_empty(tile: &TileShape, problem: &Problem) -> bool {
    let rows = problem.rows.max(1).next_power_of_two().max(8);
    let cols = problem.cols.max(1).next_power_of_two().max(32);
    tile.tm as usize <= rows && tile.tn as usize <= cols
}

/// The rule-based choice: the direct kernels on software adapters (measured fastest there) and
/// for groups of few rows; otherwise [`best_gemm`].
pub fn heuristic(device: wgpu::DeviceType, limits: &wgpu::Limits, problem: &Problem) -> Variant {
    if device == wgpu::DeviceType::Cpu || problem.rows < MIN_GEMM_ROWS {
        return Variant::Direct;
    }
    if problem.pass == Pass::Matmul && problem.rows * problem.cols < 64 * 64 {
        return Variant::Direct;
    }
    best_gemm(limits, problem)
        .map(Variant::Gemm)
        .unwrap_or(Variant::Direct)
}

/// The largest fitting tile that still gives 264 workgroups (two per compute unit of a
/// 132-unit GPU; weight gradients get theirs from split-K, so there the largest fitting tile),
/// else the one with the most workgroups.
pub fn best_gemm(limits: &wgpu::Limits, problem: &Problem) -> Option<TileShape> {
    let fitting: Vec<TileShape> = TILE_SHAPES
        .iter()
        .copied()
        .filter(|t| t.fits(limits) && not_half_empty(t, problem))
        .collect();
    let workgroups = |t: &TileShape| {
        problem.groups * problem.rows.div_ceil(t.tm as usize) * problem.cols.div_ceil(t.tn as usize)
    };
    let enough =
        |t: &&TileShape| problem.pass == Pass::ConvWeightGrad || workgroups(t) >= TARGET_WORKGROUPS;
    // TILE_SHAPES is ordered largest first.
    fitting
        .iter()
        .find(enough)
        .or_else(|| fitting.iter().max_by_key(|t| workgroups(t)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(pass: Pass, groups: usize, rows: usize, cols: usize) -> Problem {
        Problem {
            pass,
            groups,
            rows,
            cols,
        }
    }

    #[test]
    fn software_adapters_and_small_groups_stay_direct() {
        let limits = wgpu::Limits::default();
        let big = problem(Pass::ConvForward, 1, 256, 128 * 32 * 32);
        assert_eq!(
            heuristic(wgpu::DeviceType::Cpu, &limits, &big),
            Variant::Direct
        );
        let few_rows = problem(Pass::ConvForward, 16, 4, 128 * 32 * 32);
        assert_eq!(
            heuristic(wgpu::DeviceType::DiscreteGpu, &limits, &few_rows),
            Variant::Direct
        );
    }

    #[test]
    fn big_layers_get_big_tiles_and_small_maps_smaller_ones() {
        let limits = wgpu::Limits::default();
        let gpu = wgpu::DeviceType::DiscreteGpu;
        // VGG's first layer at batch 128: 64 filters x 131,072 pixels.
        let Variant::Gemm(t) = heuristic(gpu, &limits, &problem(Pass::ConvForward, 1, 64, 131_072))
        else {
            panic!("a big layer should use the GEMM core");
        };
        assert_eq!((t.tm, t.tn), (64, 128));
        // 512 filters on 2x2 maps at batch 16: 64 columns; the rule trades tile size for
        // workgroups.
        let small = problem(Pass::ConvForward, 1, 512, 64);
        let Variant::Gemm(s) = heuristic(gpu, &limits, &small) else {
            panic!("512 filters should use the GEMM core");
        };
        assert!(s.tm * s.tn < t.tm * t.tn, "{s} vs {t}");
        // With the adapter's larger workgroup memory the 128x128x16 stage becomes possible.
        let mut big_limits = limits.clone();
        big_limits.max_compute_workgroup_storage_size = 48 * 1024;
        let w = best_gemm(&big_limits, &problem(Pass::ConvWeightGrad, 1, 512, 4608)).unwrap();
        assert_eq!(w, TileShape::new(128, 128, 8, 8, 16));
    }

    #[test]
    fn candidates_fit_the_device_and_the_problem() {
        let limits = wgpu::Limits::default();
        let list = candidates(&limits, &problem(Pass::ConvForward, 4, 16, 1000));
        assert_eq!(list[0], Variant::Direct);
        for v in &list[1..] {
            let Variant::Gemm(t) = v else { panic!() };
            assert!(t.fits(&limits) && t.tm <= 16, "{t}");
        }
        assert!(list.len() >= 3, "{list:?}");
    }
}
