//! `hetconv info`: what GPU we run on.

use hetconv::{Context, Result};

/// Prints adapter, backend, driver, features and the limits hetconv depends on.
pub fn run(ctx: &Context) -> Result<()> {
    let info = ctx.adapter_info();
    let limits = ctx.limits();
    println!("adapter:  {}", info.name);
    println!("type:     {:?}", info.device_type);
    println!("backend:  {:?}", info.backend);
    println!("driver:   {} {}", info.driver, info.driver_info);
    println!(
        "features: {} (of those hetconv uses)",
        hetconv::gpu::feature_names(ctx.features())
    );
    println!(
        "subgroups: {}..{} invocations",
        info.subgroup_min_size, info.subgroup_max_size
    );
    let coop = ctx.cooperative_matrices();
    if coop.is_empty() {
        println!("cooperative matrices: none");
    } else {
        println!("cooperative matrices (M x N x K, A/B -> C):");
        for c in coop {
            println!(
                "  {}x{}x{} {:?} -> {:?}{}",
                c.m_size,
                c.n_size,
                c.k_size,
                c.ab_type,
                c.cr_type,
                if c.saturating_accumulation {
                    ", saturating"
                } else {
                    ""
                }
            );
        }
    }
    let mixed = hetconv::tune::kernels(ctx, hetconv::Precision::Mixed);
    let coop_tiles = mixed
        .iter()
        .filter(|k| matches!(k, hetconv::kernels::gemm_core::CoreKernel::Coop(_)))
        .count();
    println!(
        "mixed precision: {}",
        if mixed.is_empty() {
            "unavailable (no shader-f16)".to_string()
        } else {
            format!(
                "{} kernels ({coop_tiles} on cooperative matrices, {} f16 FMA), activations stored as f16",
                mixed.len(),
                mixed.len() - coop_tiles
            )
        }
    );
    println!("limits (as requested from the device):");
    let rows: [(&str, u64); 7] = [
        (
            "max_storage_buffer_binding_size",
            limits.max_storage_buffer_binding_size,
        ),
        ("max_buffer_size", limits.max_buffer_size),
        (
            "max_storage_buffers_per_shader_stage",
            u64::from(limits.max_storage_buffers_per_shader_stage),
        ),
        (
            "max_compute_workgroup_storage_size",
            u64::from(limits.max_compute_workgroup_storage_size),
        ),
        (
            "max_compute_invocations_per_workgroup",
            u64::from(limits.max_compute_invocations_per_workgroup),
        ),
        (
            "max_compute_workgroups_per_dimension",
            u64::from(limits.max_compute_workgroups_per_dimension),
        ),
        ("max_bind_groups", u64::from(limits.max_bind_groups)),
    ];
    for (name, value) in rows {
        println!("  {name:<40} {value}");
    }
    Ok(())
}
