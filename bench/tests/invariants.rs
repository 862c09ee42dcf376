//! The architecture's invariants that a test can enforce (ARCHITECTURE.md lists them all).

use std::path::Path;

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path, into: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("readable source folder")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn the_load_generator_does_not_depend_on_the_servers() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("loadgen");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table");
    for forbidden in ["echo-servers", "echo-bench"] {
        assert!(
            !dependencies.contains(forbidden),
            "echo-loadgen depends on {forbidden}: the load generator must know only an address"
        );
    }
    let mut files = Vec::new();
    sources(&crate_dir.join("src"), &mut files);
    assert!(
        files.len() >= 7,
        "found the load generator's sources: {files:?}"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for forbidden in ["echo_servers", "echo_bench", "Model::"] {
            assert!(
                !text.contains(forbidden),
                "{} names {forbidden}: the load generator must know only an address",
                file.display()
            );
        }
    }
}
