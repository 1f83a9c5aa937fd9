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
