//! Every WGSL file parses and validates with naga (no GPU needed), and the crate's shader list
//! covers exactly the files in `shaders/`.

use std::collections::BTreeSet;

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

#[test]
fn every_shader_file_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            validate(&name, &std::fs::read_to_string(&path).unwrap());
            on_disk.insert(name);
        }
    }
    let listed: BTreeSet<String> = hetconv::shaders::ALL
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(on_disk, listed, "shaders/ and hetconv::shaders::ALL differ");
}

#[test]
fn embedded_sources_validate() {
    for shader in hetconv::shaders::ALL {
        validate(shader.name, shader.source);
    }
}
