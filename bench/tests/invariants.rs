//! The architecture's invariants that a test can enforce (ARCHITECTURE.md lists them all).
//!
//! It is long because each invariant reads the sources itself (manifests, `use` lines, string
//! literals, exits), with the small parsers that takes, and every one is kept in this one file.

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
    assert_eq!(
        dependency_lines(&manifest),
        ["clap.workspace = true"],
        "echo-cli is shared by the servers and the load generator, so it must pull in neither"
    );
}

/// The workspace's folder.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Every `.rs` file of the tools' crates (servers, bench, the analysis, the load generator,
/// echo-cli).
fn tool_sources(root: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for dir in [
        "servers/src",
        "bench/src",
        "bench/analysis/src",
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
    ("bench/src/commands/ab.rs", "code", "bench/src/ab/judge.rs"),
    (
        "bench/src/commands/compare.rs",
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

/// The `[dependencies]` table of a manifest, one line an entry, comments left out.
fn dependency_lines(manifest: &str) -> Vec<String> {
    manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .split("\n[")
        .next()
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_analysis_crate_renders_nothing() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("analysis");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let dependencies = dependency_lines(&manifest);
    assert!(
        dependencies.iter().any(|d| d.starts_with("echo-loadgen")),
        "read the analysis crate's dependencies: {dependencies:?}"
    );
    let renderers = [
        "plotters",
        "pulldown-cmark",
        "indicatif",
        "comfy-table",
        "tabled",
        "echo-bench",
    ];
    for dependency in &dependencies {
        for renderer in renderers {
            assert!(
                !dependency.starts_with(renderer),
                "echo-analysis depends on {renderer}: it returns data, echo-bench renders it"
            );
        }
    }
    let mut files = Vec::new();
    sources(&crate_dir.join("src"), &mut files);
    assert!(files.len() >= 8, "found the analysis sources: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for forbidden in ["plotters", "pulldown_cmark", "indicatif", "comfy_table"] {
                assert!(
                    !code.contains(forbidden),
                    "{}:{}: names {forbidden}",
                    file.display(),
                    n + 1
                );
            }
            // Markdown in a string literal (the odd pieces between quotes): bold, a table
            // rule, a heading, a link.
            for literal in code.split('"').skip(1).step_by(2) {
                for markdown in ["**", "|---", "# ", "]("] {
                    assert!(
                        !literal.contains(markdown),
                        "{}:{}: Markdown ({markdown}) in the analysis crate; findings are \
                         data, echo-bench's render/ writes them",
                        file.display(),
                        n + 1
                    );
                }
            }
        }
    }
}

/// The runners measure and store; they draw nothing. No chart, Markdown or terminal crate is
/// named in `suite/` or `capacity/` outside their tests, and no string literal there holds
/// Markdown's bold or a table rule: what is shown is written by `render/`. (A heading may be
/// matched, as `output.rs` recognises the files older versions wrote.)
#[test]
fn the_runners_render_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root.join("suite"), &mut files);
    sources(&root.join("capacity"), &mut files);
    assert!(files.len() >= 6, "found the runners' sources: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for forbidden in ["plotters", "pulldown_cmark", "comfy_table"] {
                assert!(
                    !line.contains(forbidden),
                    "{}:{}: names {forbidden}: the runners leave drawing to render/",
                    file.display(),
                    n + 1
                );
            }
            for literal in line.split('"').skip(1).step_by(2) {
                for markdown in ["**", "|---", "---:|"] {
                    assert!(
                        !literal.contains(markdown),
                        "{}:{}: Markdown ({markdown}) in a runner; render/ writes it",
                        file.display(),
                        n + 1
                    );
                }
            }
        }
    }
}

/// echo-bench names each module of the load generator and of the analysis by its own crate:
/// none is re-exported as a module of echo-bench, so a name such as `stats` has one home
/// (`echo_loadgen::stats`, the histograms; `echo_analysis::bootstrap`, the statistics).
#[test]
fn no_module_of_another_crate_is_re_exported() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let loadgen: Vec<String> = std::fs::read_dir(root.join("../loadgen/src"))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            Some(name.strip_suffix(".rs").unwrap_or(&name).to_owned())
        })
        .collect();
    assert!(
        loadgen.iter().any(|m| m == "stats"),
        "read loadgen's modules: {loadgen:?}"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Whole `pub use` items, which may span lines.
        for item in text.split(';') {
            let item = item.trim_start();
            let Some(body) = item
                .lines()
                .find(|l| l.trim_start().starts_with("pub use "))
                .map(|first| item[item.find(first).unwrap_or(0)..].to_owned())
            else {
                continue;
            };
            let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
            for krate in ["echo_loadgen", "echo_analysis"] {
                let Some(rest) = body.split(&format!("pub use {krate}::")).nth(1) else {
                    continue;
                };
                // Only names right below the crate can be its modules: `krate::stats` or
                // `krate::{stats, ..}`, not `krate::stats::{Histogram, ..}`.
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group.trim_end_matches('}').split(',').collect(),
                    None if !rest.contains("::") => vec![rest],
                    None => Vec::new(),
                };
                for name in names.into_iter().map(str::trim) {
                    let module = match krate {
                        "echo_loadgen" => loadgen.iter().any(|m| m == name),
                        _ => root
                            .join("../analysis/src")
                            .join(format!("{name}.rs"))
                            .exists(),
                    };
                    assert!(
                        !module,
                        "{}: re-exports {krate}::{name}, a module: name it by its own crate",
                        file.display()
                    );
                }
            }
        }
    }
}

/// The modules a source file refers to that are siblings of its own module under `folder`
/// (`crate::PATH::NAME`, `super::NAME` from a direct child, `use crate::PATH::{A, B}`).
fn sibling_references(text: &str, crate_path: &str, direct_child: bool) -> Vec<String> {
    let mut found = Vec::new();
    let mut prefixes = vec![format!("{crate_path}::")];
    if direct_child {
        prefixes.push("super::".to_owned());
    }
    // Comment lines out, the rest as one text: a `use` group may span lines.
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    {
        for prefix in &prefixes {
            let mut rest = code.as_str();
            while let Some(at) = rest.find(prefix.as_str()) {
                // `super::super::` is not a sibling; `xsuper::` is not `super::`.
                let before = rest[..at].chars().last();
                rest = &rest[at + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                if let Some(group) = rest.strip_prefix('{') {
                    // Each item's first name, items split at the group's own depth.
                    let mut depth = 0;
                    let mut items = vec![String::new()];
                    for c in group.chars() {
                        match c {
                            '}' if depth == 0 => break,
                            ',' if depth == 0 => items.push(String::new()),
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        if let Some(item) = items.last_mut() {
                            item.push(c);
                        }
                    }
                    for item in items {
                        let name: String = item
                            .trim_start_matches(|c: char| c == ',' || c.is_whitespace())
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.push(name);
                    }
                } else {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    found.push(name);
                }
            }
        }
    }
    found
}

/// The edges between the sibling modules of `folder` (a crate's src or a module's folder):
/// `(from, to)` for every reference of a file under `from` to the sibling `to`.
fn module_edges(folder: &Path, crate_path: &str, skip: &[&str]) -> Vec<(String, String)> {
    let mut modules: Vec<(String, std::path::PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if ["lib", "main", "mod"].contains(&name.as_str()) || skip.contains(&name.as_str()) {
            continue;
        }
        if path.is_dir() || path.extension().is_some_and(|e| e == "rs") {
            modules.push((name, path));
        }
    }
    let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    let mut edges = Vec::new();
    for (name, path) in &modules {
        let mut files = Vec::new();
        if path.is_dir() {
            sources(path, &mut files);
        } else {
            files.push(path.clone());
        }
        for file in files {
            let direct = file == *path || file == path.join("mod.rs");
            let text = std::fs::read_to_string(&file).unwrap();
            for to in sibling_references(&text, crate_path, direct) {
                let edge = (name.clone(), to.clone());
                if to != *name && names.contains(&to.as_str()) && !edges.contains(&edge) {
                    edges.push(edge);
                }
            }
        }
    }
    edges
}

/// A cycle among `edges`, as the modules along it, if there is one.
fn cycle(edges: &[(String, String)]) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &[(String, String)],
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.iter().any(|d| d == node) {
            return None;
        }
        path.push(node.to_owned());
        for (_, to) in edges.iter().filter(|(from, _)| from == node) {
            if let Some(found) = visit(to, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.push(node.to_owned());
        None
    }
    let mut done = Vec::new();
    edges
        .iter()
        .find_map(|(from, _)| visit(from, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // (folder, its path from the crate root, siblings left out). In the servers crate,
    // `server` and `models` name each other by type (`EchoServer::model() -> Model`,
    // `Model::server() -> Box<dyn EchoServer>`), so `models` is left out there; every other
    // module of it is checked.
    let folders: [(&str, &str, &[&str]); 13] = [
        ("servers/src", "crate", &["models"]),
        // The binary's `commands` modules are another crate than the library beside them.
        ("bench/src", "crate", &["commands"]),
        ("bench/src/suite", "crate::suite", &[]),
        ("bench/src/ab", "crate::ab", &[]),
        ("bench/src/render", "crate::render", &[]),
        ("bench/src/render/charts", "crate::render::charts", &[]),
        // `fixtures` is test support (made-up runs of every type, built only for tests): it
        // names the modules whose tests use it.
        ("bench/analysis/src", "crate", &["fixtures"]),
        ("bench/loadgen/src", "crate", &[]),
        ("bench/loadgen/src/engine", "crate::engine", &[]),
        ("bench/loadgen/src/conformance", "crate::conformance", &[]),
        ("bench/src/history", "crate::history", &[]),
        // The binary's subcommands: a crate of their own, rooted at main.rs.
        ("bench/src/commands", "crate::commands", &[]),
        ("bench/cli/src", "crate", &[]),
    ];
    let mut checked = 0;
    for (folder, crate_path, skip) in folders {
        let edges = module_edges(&root.join(folder), crate_path, skip);
        checked += edges.len();
        if let Some(found) = cycle(&edges) {
            panic!(
                "{folder}: the modules {} import each other in a cycle",
                found.join(" → ")
            );
        }
    }
    assert!(checked > 20, "read the modules' imports: {checked} edges");
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let a = "use crate::suite::b::Thing;\nfn f() { super::b::g(); }";
    assert_eq!(sibling_references(a, "crate::suite", true), ["b", "b"]);
    let grouped = "use crate::{ab::x, suite::{y, z}};";
    assert_eq!(sibling_references(grouped, "crate", false), ["ab", "suite"]);
    let edges = [("a", "b"), ("b", "c"), ("c", "a")].map(|(x, y)| (x.into(), y.into()));
    assert_eq!(cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(cycle(&edges[..2]), None);
}

#[test]
fn a_long_file_in_bench_says_why_it_is_long() {
    const LIMIT: usize = 600;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(root, &mut files);
    let files: Vec<_> = files
        .into_iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "target"))
        .collect();
    assert!(files.len() > 50, "found bench's sources: {}", files.len());
    let mut unexplained = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if text.lines().count() <= LIMIT {
            continue;
        }
        let doc: String = text
            .lines()
            .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if !doc.contains("long because") && !doc.contains("lines because") {
            unexplained.push(file.strip_prefix(root).unwrap().display().to_string());
        }
    }
    assert!(
        unexplained.is_empty(),
        "over {LIMIT} lines with no sentence in the module doc saying why (\"… is long because …\"): {unexplained:?}"
    );
}
