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

#[test]
fn the_shared_command_line_crate_depends_on_clap_alone() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cli");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let dependencies: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .split("\n[")
        .next()
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(
        dependencies,
        ["clap.workspace = true"],
        "echo-cli is shared by the servers and the load generator, so it must pull in neither"
    );
}

#[test]
fn exit_codes_are_defined_once_outside_the_servers_library() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for dir in [
        "servers/src",
        "bench/src",
        "bench/loadgen/src",
        "bench/cli/src",
    ] {
        sources(&root.join(dir), &mut files);
    }
    let defining: Vec<_> = files
        .iter()
        .filter(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .contains("pub const EXIT_USAGE")
        })
        .collect();
    assert_eq!(
        defining,
        [&root.join("bench/cli/src/lib.rs")],
        "the exit codes have one home, echo-cli"
    );
}
