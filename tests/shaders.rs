//! Every shader parses and validates with naga (no GPU needed): each `shaders/*.wgsl` as the
//! crate composes it (with its `shaders/include/*.wgsl` pieces), and each piece on its own; the
//! crate's shader list covers exactly the files in `shaders/`.

use std::collections::BTreeSet;
use std::path::Path;

fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
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
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(
        wgsl_files(&dir),
        listed,
        "shaders/ and hetconv::shaders::ALL differ"
    );
    for shader in hetconv::shaders::ALL {
        let file = std::fs::read_to_string(dir.join(format!("{}.wgsl", shader.name))).unwrap();
        assert!(
            shader.source.ends_with(&file),
            "{} is not embedded as it is on disk",
            shader.name
        );
        validate(shader.name, shader.source);
    }
}

#[test]
fn every_included_piece_validates_on_its_own_and_is_used() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders/include");
    for name in wgsl_files(&dir) {
        let piece = std::fs::read_to_string(dir.join(format!("{name}.wgsl"))).unwrap();
        validate(&name, &piece);
        assert!(
            hetconv::shaders::ALL
                .iter()
                .any(|s| s.source.starts_with(&piece)),
            "shaders/include/{name}.wgsl is included nowhere"
        );
    }
}
