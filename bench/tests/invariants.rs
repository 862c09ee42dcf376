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

/// The workspace's folder.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Every `.rs` file of the tools' crates (servers, bench, the load generator, echo-cli).
fn tool_sources(root: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for dir in [
        "servers/src",
        "bench/src",
        "bench/loadgen/src",
        "bench/cli/src",
    ] {
        sources(&root.join(dir), &mut files);
    }
    files
}

#[test]
fn exit_codes_are_defined_once_outside_the_servers_library() {
    let root = workspace_root();
    let files = tool_sources(root);
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

/// `text` without its comment lines (`//`, `//!`, `///`), which may quote code.
fn code_only(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text between the parenthesis that opens at `open` and the one that closes it.
fn argument(text: &str, open: usize) -> &str {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return text[open + 1..open + i].trim();
                }
            }
            _ => {}
        }
    }
    panic!("an unclosed call at byte {open}");
}

/// Whether `argument` names one of echo-cli's documented exit codes (`EXIT_FAILURE`,
/// `echo_cli::EXIT_USAGE.into()`), or the code of the signal that stopped the tool.
fn is_documented_code(argument: &str) -> bool {
    let bare = argument
        .trim_start_matches("echo_cli::")
        .trim_end_matches(".into()");
    let constant = bare.strip_prefix("EXIT_").is_some_and(|name| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    });
    constant || bare.starts_with("exit_code_for(")
}

/// The exits whose code is computed rather than named, each with the file that computes it from
/// the documented constants (checked below: no literal code there).
const COMPUTED_CODES: &[(&str, &str, &str)] = &[
    ("bench/src/cli/ab.rs", "code", "bench/src/ab/judge.rs"),
    (
        "bench/src/cli/compare.rs",
        "report.exit_code",
        "bench/src/ab/compare.rs",
    ),
];

/// ARCHITECTURE.md's rule that every tool exits 0, 1 or 2 (or 128 + a signal) through
/// echo-cli, checked where the tools exit: every `exit_code(..)`, `process::exit(..)` and
/// `ExitCode::from(..)` in the tools' sources passes one of echo-cli's `EXIT_*` constants (or
/// the signal's code, or a code computed from those constants in the places listed), and
/// nothing uses `ExitCode::FAILURE` or a bare number.
#[test]
fn every_exit_uses_a_documented_code() {
    let root = workspace_root();
    let files = tool_sources(root);
    let mut exits = 0;
    let mut wrong = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = code_only(&std::fs::read_to_string(file).unwrap());
        if text.contains("ExitCode::FAILURE") {
            wrong.push(format!("{name}: ExitCode::FAILURE (use EXIT_FAILURE)"));
        }
        for call in ["exit_code(", "process::exit(", "ExitCode::from("] {
            for (at, _) in text.match_indices(call) {
                let before = &text[..at];
                if before.ends_with("fn ") || before.ends_with('_') {
                    continue; // its definition, or another name ending the same way
                }
                let arg = argument(&text, at + call.len() - 1);
                exits += 1;
                let computed = COMPUTED_CODES
                    .iter()
                    .any(|&(f, expr, _)| f == name && expr == arg);
                // echo-cli's own `exit_code(code)` turns a checked code into an ExitCode.
                let definition = name == "bench/cli/src/lib.rs" && arg == "code";
                if !(is_documented_code(arg) || computed || definition) {
                    wrong.push(format!("{name}: {call}{arg})"));
                }
            }
        }
    }
    assert!(
        exits >= 40,
        "found only {exits} exits: is the scan still looking?"
    );
    for &(_, _, from) in COMPUTED_CODES {
        // The codes are paired with their conclusions in tuples: `(EXIT_FAILURE, format!(..))`.
        let text = code_only(&std::fs::read_to_string(root.join(from)).unwrap());
        for (at, _) in text.match_indices('(') {
            let rest = text[at + 1..].trim_start();
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits > 0 && rest[digits..].trim_start().starts_with(',') {
                let line = text[..at].lines().count();
                wrong.push(format!("{from}:{line}: a literal exit code"));
            }
        }
        assert!(
            text.contains("EXIT_FAILURE"),
            "{from} computes an exit code from the constants"
        );
    }
    assert!(
        wrong.is_empty(),
        "exits not through echo-cli's documented codes:\n{}",
        wrong.join("\n")
    );
}
