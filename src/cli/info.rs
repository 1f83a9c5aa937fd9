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
    println!("features: {:?}", ctx.device().features());
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
