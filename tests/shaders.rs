//! Every shader parses and validates with naga (no GPU needed): each module as the crate
//! composes it (a `shaders/*.wgsl` file after its `shaders/include/*.wgsl` pieces), with the
//! capabilities of the device features it declares it needs; every file and piece is used.

use std::collections::BTreeSet;
use std::path::Path;

/// naga's capabilities for the device features a module declares.
fn capabilities(needs: wgpu::Features) -> naga::valid::Capabilities {
    use naga::valid::Capabilities as C;
    let mut caps = C::default();
    for (feature, cap) in [
        (wgpu::Features::SHADER_F16, C::SHADER_FLOAT16),
        (wgpu::Features::SUBGROUP, C::SUBGROUP),
        (
            wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
            C::COOPERATIVE_MATRIX,
        ),
    ] {
        if needs.contains(feature) {
            caps |= cap;
        }
    }
    caps
}

fn validate(name: &str, source: &str, needs: wgpu::Features) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(source)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities(needs))
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{name}.wgsl does not validate:\n{}",
                e.emit_to_string(source)
            )
        });
}

/// WGSL allows directives (`enable ...;`) only before every declaration, and wgpu's parser
/// refuses a module that breaks this (naga's `parse_str` here lets it pass): a piece that
/// enables an extension must come first among a module's pieces.
fn directives_come_first(name: &str, source: &str) {
    let code = source
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"));
    let mut declared = false;
    for line in code {
        let directive = line.starts_with("enable ") || line.starts_with("requires ");
        assert!(
            !(directive && declared),
            "{name}: `{line}` follows a declaration (list the piece that enables it first)"
        );
        declared |= !directive;
    }
}

/// File stems of the `.wgsl` files in `dir`.
fn wgsl_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect()
}

#[test]
fn every_shader_validates_and_every_file_is_listed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let listed: BTreeSet<String> = hetconv::shaders::ALL
        .iter()
        .map(|s| s.file.to_string())
        .collect();
    assert_eq!(
        wgsl_files(&dir),
        listed,
        "shaders/ and hetconv::shaders::ALL differ"
    );
    for shader in hetconv::shaders::ALL {
        let file = std::fs::read_to_string(dir.join(format!("{}.wgsl", shader.file))).unwrap();
        assert!(
            shader.source.ends_with(&file),
            "{} is not embedded as it is on disk",
            shader.name
        );
        validate(shader.name, shader.source, shader.needs);
        directives_come_first(shader.name, shader.source);
    }
    let names: BTreeSet<&str> = hetconv::shaders::ALL.iter().map(|s| s.name).collect();
    assert_eq!(
        names.len(),
        hetconv::shaders::ALL.len(),
        "module names repeat"
    );
}

#[test]
fn every_included_piece_is_used() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders/include");
    for name in wgsl_files(&dir) {
        let piece = std::fs::read_to_string(dir.join(format!("{name}.wgsl"))).unwrap();
        assert!(
            hetconv::shaders::ALL
                .iter()
                .any(|s| s.source.contains(&piece)),
            "shaders/include/{name}.wgsl is included nowhere"
        );
    }
}

/// The byte width of a float array's (or a float's) elements; None for other types.
fn float_width(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Option<u8> {
    let element = match module.types[ty].inner {
        naga::TypeInner::Array { base, .. } => base,
        _ => ty,
    };
    match module.types[element].inner {
        naga::TypeInner::Scalar(naga::Scalar {
            kind: naga::ScalarKind::Float,
            width,
        }) => Some(width),
        _ => None,
    }
}

/// Every kernel entry point's Rust description (`KernelSpec`) matches its WGSL, reflected with
/// naga: binding 0 is the uniform block, of the size of the Rust struct the kernel is
/// dispatched with (a dispatch with a struct of another size is refused); every storage binding the entry point uses is listed
/// with the access the WGSL declares (read-only vs read-write); every listed binding exists in
/// the module with that access, and a float array's element type is the dtype the spec reads
/// that tensor as (f16 for the activations of an f16 module: a dispatch checks tensors against
/// it). A kernel bound with the wrong layout would otherwise fail only at pipeline creation on a
/// device, or read the wrong type silently.
#[test]
fn every_kernel_spec_matches_its_wgsl_bindings() {
    use hetconv::gpu::Access;
    use naga::{AddressSpace, StorageAccess};
    let specs = hetconv::kernels::all_specs();
    assert!(specs.len() >= 25, "{} kernel specs", specs.len());
    for spec in specs {
        let label = format!("{}::{}", spec.shader.name, spec.entry);
        let module = naga::front::wgsl::parse_str(spec.shader.source).unwrap();
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            capabilities(spec.shader.needs),
        )
        .validate(&module)
        .unwrap();
        let index = module
            .entry_points
            .iter()
            .position(|e| e.name == spec.entry)
            .unwrap_or_else(|| panic!("{label}: no such entry point"));
        let uses = info.get_entry_point(index);
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let declared = |binding: u32| {
            module.global_variables.iter().find(|(_, v)| {
                v.binding
                    .as_ref()
                    .is_some_and(|b| b.group == 0 && b.binding == binding)
            })
        };
        for (handle, var) in module.global_variables.iter() {
            let Some(binding) = &var.binding else {
                continue;
            };
            if uses[handle].is_empty() {
                continue;
            }
            assert_eq!(binding.group, 0, "{label}: group {}", binding.group);
            if binding.binding == 0 {
                assert_eq!(var.space, AddressSpace::Uniform, "{label}: binding 0");
                assert_eq!(
                    layouter[var.ty].size as usize, spec.params_size,
                    "{label}: the WGSL uniform block's bytes vs the Rust struct's"
                );
                continue;
            }
            assert!(
                spec.bindings.iter().any(|(b, _)| *b == binding.binding),
                "{label}: uses binding {} that its spec does not list",
                binding.binding
            );
            assert!(
                matches!(var.space, AddressSpace::Storage { .. }),
                "{label}: binding {} is not a storage buffer",
                binding.binding
            );
        }
        for (i, &(binding, access)) in spec.bindings.iter().enumerate() {
            let (_, var) = declared(binding)
                .unwrap_or_else(|| panic!("{label}: lists binding {binding}, the WGSL has none"));
            if let Some(width) = float_width(&module, var.ty) {
                assert_eq!(
                    u64::from(width),
                    spec.dtype_of(i).bytes(),
                    "{label}: binding {binding} holds {width}-byte floats, its spec reads {}",
                    spec.dtype_of(i)
                );
            }
            let AddressSpace::Storage { access: wgsl } = var.space else {
                panic!("{label}: binding {binding} is not a storage buffer");
            };
            let writable = wgsl.contains(StorageAccess::STORE);
            assert_eq!(
                writable,
                access == Access::ReadWrite,
                "{label}: binding {binding} is {access:?} in Rust, {wgsl:?} in WGSL"
            );
        }
    }
}
