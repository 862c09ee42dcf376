//! Hostile input, generated from a fixed seed (so a failure repeats): thousands of strings at
//! the address parser, mutations of a stored run.json, an `ab` report, a history.jsonl and a
//! merge input at their readers, a handful of those through the commands, and random datagrams
//! at every UDP model. Nothing may panic, hang or touch a file that is not the tools' own.
//!
//! The fuzz targets in `bench/fuzz` (see its README) run the same readers for longer.
//!
//! It is long because each hostile input is its own test with its own peer.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use echo_bench::Report;
use echo_bench::ab::AbReport;
use echo_bench::ab::compare::compare;
use echo_bench::history::{self, edivisive::Settings};
use echo_bench::suite::{SuiteRun, advice};
use echo_cli::Endpoint;
use echo_loadgen::merge::merge;
use echo_servers::{Model, Transport};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::output_within;

const BIN: &str = env!("CARGO_BIN_EXE_echo-bench");

/// A stored suite run (schema 1, 48 points); the tests keep its first few points.
const STORED_RUN: &str = include_str!("../../results/2026-11-22-vm-29f7ee/run.json");
/// A stored `ab --json` report.
const STORED_AB: &str = include_str!("../../results/ab-accuracy-2026-11-22-vm/aa-1.json");

/// A scratch folder of its own for `test`, emptied first.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `f` on `input`; a panic fails the test naming the input (cut short) and what it was.
fn survives<T>(what: &str, input: &[u8], f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(_) => {
            let shown = String::from_utf8_lossy(&input[..input.len().min(600)]).into_owned();
            panic!(
                "{what} panicked on this input ({} bytes): {shown:?}",
                input.len()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Addresses

const VALID_ADDRESSES: [&str; 10] = [
    "127.0.0.1:7878",
    "[::1]:9000",
    "unix:/tmp/echo.sock",
    "unix:relative.sock",
    "udp:127.0.0.1:7878",
    "udp:[::1]:0",
    "0.0.0.0:0",
    "[fe80::1%2]:80",
    "udp:[::ffff:1.2.3.4]:65535",
    "255.255.255.255:65535",
];

const PIECES: [&str; 40] = [
    "",
    "udp:",
    "unix:",
    "tls:",
    "tcp://",
    "udp://",
    "[",
    "]",
    "[::1",
    "::",
    ":",
    "%",
    "%eth0",
    "65535",
    "65536",
    "99999999999999999999999",
    "-1",
    "+1",
    "0",
    "\0",
    "\n",
    "\r\n",
    "\t",
    "é",
    "🦀",
    " ",
    "udp:udp:",
    "unix:unix:",
    "/",
    "..",
    "1.2.3.4",
    "255.255.255.256",
    "0x7f.1",
    "[::1]:",
    "\u{202e}",
    "\u{feff}",
    "\u{7f}",
    "127.0.0.1",
    "[::ffff:127.0.0.1]",
    "1e3",
];

/// One hostile address string.
fn hostile_address(rng: &mut SmallRng) -> String {
    let base = VALID_ADDRESSES[rng.random_range(0..VALID_ADDRESSES.len())];
    match rng.random_range(0..6) {
        // Random bytes, made a string as a command line would make them.
        0 => {
            let bytes: Vec<u8> = (0..rng.random_range(0..40)).map(|_| rng.random()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        // Pieces glued together.
        1 => (0..rng.random_range(1..7))
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect(),
        // A valid address with a few characters changed, inserted or deleted.
        2 => {
            let mut chars: Vec<char> = base.chars().collect();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..=chars.len());
                let alphabet: Vec<char> = ":[]%.0123456789abcdef/udpnix\0é".chars().collect();
                let c = alphabet[rng.random_range(0..alphabet.len())];
                match rng.random_range(0..3) {
                    0 if at < chars.len() => chars[at] = c,
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ => chars.insert(at, c),
                }
            }
            chars.into_iter().collect()
        }
        // A valid address with a piece inserted somewhere (at a character boundary).
        3 => {
            let piece = PIECES[rng.random_range(0..PIECES.len())];
            let bounds: Vec<usize> = base
                .char_indices()
                .map(|(i, _)| i)
                .chain([base.len()])
                .collect();
            let at = bounds[rng.random_range(0..bounds.len())];
            format!("{}{piece}{}", &base[..at], &base[at..])
        }
        // Long things: a Unix path around the limit or far past it, a port of many digits.
        4 => match rng.random_range(0..3) {
            0 => format!("unix:/{}", "p".repeat(rng.random_range(100..112))),
            1 => format!("unix:{}", "é".repeat(rng.random_range(50..60))),
            _ => format!(
                "{}127.0.0.1:{}",
                if rng.random() { "udp:" } else { "" },
                "9".repeat(rng.random_range(1..200))
            ),
        },
        // A valid one as it is.
        _ => base.to_owned(),
    }
}

#[test]
fn addresses_never_panic_and_every_one_accepted_prints_back() {
    let mut rng = SmallRng::seed_from_u64(0xadd7);
    let mut inputs: Vec<String> = (0..20_000).map(|_| hostile_address(&mut rng)).collect();
    inputs.extend(["".into(), "udp:".into(), "[::1".into(), "tls:".into()]);
    inputs.push(format!("unix:/{}", "x".repeat(100_000)));
    inputs.push("9".repeat(100_000));
    let mut accepted = 0;
    let mut looked_up = 0;
    for text in &inputs {
        // The lookup-free parser on every string; the real one (which may ask DNS about a host
        // name) on the first few hundred it refuses, and wherever it must agree.
        let literal = survives("Endpoint::parse_literal", text.as_bytes(), || {
            Endpoint::parse_literal(text)
        });
        let parsed = match literal {
            Ok(endpoint) => {
                assert_eq!(text.parse::<Endpoint>().as_ref(), Ok(&endpoint), "{text:?}");
                Some(endpoint)
            }
            Err(err) => {
                let message = err.to_string();
                assert_eq!(message.lines().count(), 1, "{text:?}: {message:?}");
                assert!(message.len() < 500, "{text:?}: {} bytes", message.len());
                if looked_up < 300 {
                    looked_up += 1;
                    survives("Endpoint::from_str", text.as_bytes(), || {
                        text.parse::<Endpoint>()
                    })
                    .ok()
                } else {
                    None
                }
            }
        };
        if let Some(endpoint) = parsed {
            accepted += 1;
            let shown = endpoint.to_string();
            assert_eq!(
                Endpoint::parse_literal(&shown).as_ref(),
                Ok(&endpoint),
                "{text:?} printed as {shown:?}"
            );
        }
    }
    assert!(
        accepted > 1000,
        "only {accepted} accepted: the generator drifted"
    );
}

/// A bad address through the binaries: exit 2 and one line on stderr, for the server and for
/// the client.
#[test]
fn bad_addresses_on_the_command_line_exit_2_with_one_line() {
    let long = format!("unix:/{}", "x".repeat(300));
    let bad = [
        "",
        "udp:",
        "[::1",
        "tls://127.0.0.1:1",
        "tls:",
        "127.0.0.1:99999",
        "a\nb",
        "é:🦀",
        long.as_str(),
    ];
    // echo-server itself when `cargo test --workspace` built it beside echo-bench (a bench
    // test cannot ask cargo for another package's binary); `echo-bench serve` always.
    let server = Path::new(BIN).with_file_name("echo-server");
    let server = server.is_file().then_some(server);
    for text in bad {
        let listen = format!("--listen={text}");
        let target = format!("--target={text}");
        let mut runs = vec![
            (PathBuf::from(BIN), vec!["serve", "--model", "mio", &listen]),
            (PathBuf::from(BIN), vec!["run", &target, "--duration", "1s"]),
        ];
        if let Some(server) = &server {
            runs.push((server.clone(), vec!["--model", "mio", &listen]));
        }
        for (program, args) in runs {
            let out = output_within(Command::new(&program).args(&args), Duration::from_secs(30))
                .unwrap_or_else(|| panic!("{args:?} did not end within 30 s"));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stored files

/// The stored run with only its first `points` points (a smaller file, the same fields).
fn stored_run(points: usize) -> Value {
    let mut run: Value = serde_json::from_str(STORED_RUN).unwrap();
    run["points"].as_array_mut().unwrap().truncate(points);
    if let Some(knees) = run.get_mut("knees").and_then(Value::as_array_mut) {
        knees.clear();
    }
    run
}

/// A hostile JSON value to put in place of another.
fn hostile_value(rng: &mut SmallRng) -> Value {
    match rng.random_range(0..16) {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!(u64::MAX),
        3 => json!(i64::MIN),
        4 => json!(1e308),
        5 => json!(-1e308),
        6 => json!(5e-324),
        7 => json!("NaN"),
        8 => json!("inf"),
        9 => json!(""),
        10 => json!("x".repeat(rng.random_range(0..5000))),
        11 => json!([]),
        12 => json!({}),
        13 => json!(true),
        14 => json!(0),
        _ => {
            let mut v = json!(1);
            for _ in 0..rng.random_range(1..100) {
                v = json!([v]);
            }
            v
        }
    }
}

/// `value` with one node (chosen at random, anywhere) replaced, deleted or duplicated.
fn mutate_value(rng: &mut SmallRng, node: &mut Value) {
    // Walk down a random path, stopping at a random depth.
    let stop = rng.random_range(0..4) == 0;
    let here = rng.random_range(0..5) == 0;
    match node {
        Value::Object(map) if !map.is_empty() && !stop => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = keys[rng.random_range(0..keys.len())].clone();
            if !here {
                return mutate_value(rng, map.get_mut(&key).unwrap());
            }
            match rng.random_range(0..3) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    let v = hostile_value(rng);
                    map.insert(key, v);
                }
                _ => {
                    map.insert(format!("{key}\u{0}extra"), Value::Null);
                }
            }
        }
        Value::Array(items) if !items.is_empty() && !stop => {
            let at = rng.random_range(0..items.len());
            if !here {
                return mutate_value(rng, &mut items[at]);
            }
            match rng.random_range(0..3) {
                0 => {
                    items.remove(at);
                }
                1 => items[at] = hostile_value(rng),
                _ => {
                    let copy = items[at].clone();
                    items.push(copy);
                }
            }
        }
        _ => *node = hostile_value(rng),
    }
}

/// Hostile files from `base` (a valid one): truncations at many offsets, byte changes,
/// non-UTF-8 bytes, deep nesting, huge and NaN-ish numbers in the text, and structural
/// mutations (fields deleted, replaced with other types, duplicated).
fn hostile_files(rng: &mut SmallRng, base: &Value, count: usize) -> Vec<Vec<u8>> {
    let text = serde_json::to_vec_pretty(base).unwrap();
    let mut files = Vec::with_capacity(count + 64);
    // Truncations at evenly spread offsets, and a few near each end.
    let step = (text.len() / 48).max(1);
    for cut in (0..text.len()).step_by(step).chain([1, 2, text.len() - 1]) {
        files.push(text[..cut].to_vec());
    }
    files.push(b"[".repeat(100_000));
    files.push(b"{\"schema\":".repeat(10_000));
    files.push(Vec::new());
    files.push(b"null".to_vec());
    files.push(vec![0xff, 0xfe, 0x00]);
    while files.len() < count {
        let file = match rng.random_range(0..4) {
            0 => {
                let mut bytes = text.clone();
                for _ in 0..rng.random_range(1..8) {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] = match rng.random_range(0..4) {
                        0 => 0xff,
                        1 => b"{}[]\",:0-e.\\"[rng.random_range(0..12)],
                        _ => rng.random(),
                    };
                }
                bytes
            }
            1 => {
                // A number in the text replaced with one serde_json may or may not take.
                let s = String::from_utf8(text.clone()).unwrap();
                let spots: Vec<usize> = s.match_indices(": ").map(|(i, _)| i + 2).collect();
                let at = spots[rng.random_range(0..spots.len())];
                let number = [
                    "1e999",
                    "-1e999",
                    "NaN",
                    "Infinity",
                    "-0",
                    "1e-999",
                    "0.",
                    ".5",
                    "01",
                    "18446744073709551616",
                    "-9223372036854775809",
                    "1e308",
                ][rng.random_range(0..12)];
                let end = s[at..]
                    .find([',', '\n', '}', ']'])
                    .map_or(s.len(), |n| at + n);
                format!("{}{number}{}", &s[..at], &s[end..]).into_bytes()
            }
            _ => {
                let mut value = base.clone();
                for _ in 0..rng.random_range(1..4) {
                    mutate_value(rng, &mut value);
                }
                serde_json::to_vec(&value).unwrap()
            }
        };
        files.push(file);
    }
    files
}

#[test]
fn run_json_readers_never_panic() {
    let mut rng = SmallRng::seed_from_u64(0x5017e);
    let base = stored_run(6);
    let good = SuiteRun::from_value(base.clone()).expect("the stored run reads");
    let mut read = 0;
    for file in hostile_files(&mut rng, &base, 1500) {
        let run = survives("SuiteRun::from_json", &file, || {
            std::str::from_utf8(&file)
                .map_err(|e| e.to_string())
                .and_then(SuiteRun::from_json)
        });
        let record = survives("history::record_of_bytes", &file, || {
            history::record_of_bytes(&file, "run.json")
        });
        if let Err(why) = &run {
            assert_eq!(why.lines().count(), 1, "{why}");
            assert!(record.is_err());
            continue;
        }
        read += 1;
        let run = run.unwrap();
        // What `report`, `compare` and `stability` then do with it.
        survives("report, compare and advice", &file, || {
            let aggregates = advice::aggregate(&run);
            let _ = echo_bench::render::markdown::tables(&aggregates);
            let _ = advice::advice_of(&run, &aggregates);
            let _ = advice::verdicts(&run);
            let _ = compare(&good, &run, 10.0, "hostile");
            let _ = compare(&run, &run, 10.0, "hostile");
        });
    }
    assert!(
        read > 100,
        "only {read} mutations read: the generator drifted"
    );
}

#[test]
fn ab_report_reader_never_panics() {
    let mut rng = SmallRng::seed_from_u64(0xab);
    let base: Value = serde_json::from_str(STORED_AB).unwrap();
    AbReport::from_value(base.clone()).expect("the stored report reads");
    let mut read = 0;
    for file in hostile_files(&mut rng, &base, 500) {
        let report = survives("AbReport::from_value", &file, || {
            serde_json::from_slice::<Value>(&file)
                .map_err(|e| e.to_string())
                .and_then(AbReport::from_value)
        });
        let record = survives("history::record_of_bytes", &file, || {
            history::record_of_bytes(&file, "ab.json")
        });
        if let Ok(report) = report {
            read += 1;
            survives("AbReport::noise_floors", &file, || report.noise_floors());
            assert!(record.is_ok(), "{:?}", record.err());
        }
    }
    assert!(
        read > 40,
        "only {read} mutations read: the generator drifted"
    );
}

/// A history store's lines: a record per commit from the stored run, commits `c0`…
fn stored_history(records: usize) -> Vec<Value> {
    let run = serde_json::to_vec(&stored_run(6)).unwrap();
    let record = history::record_of_bytes(&run, "run.json").unwrap();
    (0..records)
        .map(|i| {
            let mut r = serde_json::to_value(&record).unwrap();
            r["commit"] = json!(format!("c{i}"));
            r
        })
        .collect()
}

#[test]
fn history_reader_never_panics() {
    let mut rng = SmallRng::seed_from_u64(0x4157);
    let lines = stored_history(12);
    let text: String = lines
        .iter()
        .map(|l| serde_json::to_string(l).unwrap() + "\n")
        .collect();
    assert_eq!(history::parse(text.as_bytes(), "h").records.len(), 12);
    let settings = Settings {
        permutations: 19,
        ..Settings::default()
    };
    let mut files: Vec<Vec<u8>> = Vec::new();
    // Torn at many offsets.
    for cut in (0..text.len()).step_by(text.len() / 40) {
        files.push(text.as_bytes()[..cut].to_vec());
    }
    // One line mutated, or one line of another file's mutations.
    let line_base = lines[0].clone();
    for file in hostile_files(&mut rng, &line_base, 300) {
        let at = rng.random_range(0..lines.len());
        let mut bytes = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if i == at {
                bytes.extend(file.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
            } else {
                bytes.extend(serde_json::to_vec(line).unwrap());
            }
            bytes.push(b'\n');
        }
        files.push(bytes);
    }
    files.push(b"\n\n\n \t\r\n".to_vec());
    files.push(vec![0xff; 4096]);
    let mut change_points_tried = 0;
    for file in &files {
        let loaded = survives("history::parse", file, || history::parse(file, "h"));
        for line in &loaded.skipped {
            assert_eq!(line.lines().count(), 1, "{line}");
        }
        if change_points_tried < 120 {
            change_points_tried += 1;
            survives("history::change_points", file, || {
                history::change_points(&loaded.records, &settings, 1.0)
            });
        }
    }
}

#[test]
fn merge_reader_never_panics() {
    let mut rng = SmallRng::seed_from_u64(0x3e76e);
    let run = stored_run(2);
    let base = run["points"][0]["report"].clone();
    let good: Report = serde_json::from_value(base.clone()).expect("a stored report reads");
    let mut read = 0;
    for file in hostile_files(&mut rng, &base, 800) {
        let report = survives("Report from JSON", &file, || {
            serde_json::from_slice::<Report>(&file)
        });
        if let Ok(report) = report {
            read += 1;
            survives("merge", &file, || {
                let _ = merge(&[("a".into(), good.clone()), ("b".into(), report.clone())])
                    .map(|m| m.summary());
                let _ = merge(&[("a".into(), report.clone()), ("b".into(), report)])
                    .map(|m| m.summary());
            });
        }
    }
    assert!(
        read > 40,
        "only {read} mutations read: the generator drifted"
    );
}

/// Every file in `dir` (names and contents), to see that a command left the foreign ones be.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

/// Runs `echo-bench ARGS` in `dir` within a minute: its exit code, which must be 0, 1 or 2.
fn tool(dir: &Path, args: &[&str]) -> i32 {
    let out = output_within(
        Command::new(BIN).args(args).current_dir(dir),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|| panic!("echo-bench {args:?} did not end within 60 s"));
    let code = out.status.code();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(code, Some(0..=2)),
        "echo-bench {args:?} exited {:?}: {stderr}",
        out.status
    );
    assert!(
        !stderr.contains("panicked"),
        "echo-bench {args:?}: {stderr}"
    );
    code.unwrap()
}

#[test]
fn commands_on_hostile_files_exit_0_1_or_2_and_leave_foreign_files_alone() {
    let dir = scratch("commands");
    let mut rng = SmallRng::seed_from_u64(0xc0de);
    let base = stored_run(4);
    let good = dir.join("good");
    std::fs::create_dir_all(&good).unwrap();
    std::fs::write(good.join("run.json"), serde_json::to_vec(&base).unwrap()).unwrap();
    let text = serde_json::to_vec_pretty(&base).unwrap();
    // A few of each kind: cut short, not UTF-8, a field of the wrong type, a point's report
    // replaced, a huge number, deep nesting; and one whole.
    let mut variants: Vec<Vec<u8>> = vec![
        text[..text.len() / 2].to_vec(),
        [&text[..100], &[0xff, 0xfe][..], &text[100..]].concat(),
        b"[".repeat(50_000),
        text.clone(),
    ];
    for _ in 0..4 {
        let mut value = base.clone();
        mutate_value(&mut rng, &mut value);
        variants.push(serde_json::to_vec(&value).unwrap());
    }
    let mut huge = base.clone();
    huge["points"][0]["report"]["throughput_rps"] = json!(1e308);
    huge["duration_s"] = json!(u64::MAX);
    variants.push(serde_json::to_vec(&huge).unwrap());
    let foreign = b"not echo-bench's: keep me\n".to_vec();
    for (i, variant) in variants.iter().enumerate() {
        let run = dir.join(format!("run-{i}"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("run.json"), variant).unwrap();
        for name in ["notes.txt", "index.html", "summary.md"] {
            std::fs::write(run.join(name), &foreign).unwrap();
        }
        let before = snapshot(&run);
        let name = run.to_str().unwrap();
        let json = run.join("run.json");
        let json = json.to_str().unwrap();
        let store = dir.join(format!("store-{i}"));
        let store = store.to_str().unwrap();
        tool(&dir, &["report", name]);
        tool(&dir, &["compare", good.to_str().unwrap(), name]);
        tool(&dir, &["stability", name, name, "--no-store"]);
        tool(
            &dir,
            &[
                "history", "append", json, "--store", store, "--commit", "c1",
            ],
        );
        tool(&dir, &["history", "report", "--store", store]);
        tool(&dir, &["merge", json, json]);
        let after = snapshot(&run);
        for (name, bytes) in &before {
            if name == "run.json" || bytes == &foreign {
                let now = after.iter().find(|(n, _)| n == name);
                assert_eq!(
                    now.map(|(_, b)| b),
                    Some(bytes),
                    "run-{i}/{name} was touched"
                );
            }
        }
    }
    // A hostile history store, and hostile merge inputs.
    let store = dir.join("store-hostile");
    std::fs::create_dir_all(&store).unwrap();
    let lines = stored_history(7);
    let mut text: Vec<u8> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match i {
            2 => text.extend(b"{\"commit\":\"c2\",\"figures\":{\"x\":{\"value\":1e999}}}"),
            4 => text.extend([0xff, 0x00, b'{']),
            _ => text.extend(serde_json::to_vec(line).unwrap()),
        }
        text.push(b'\n');
    }
    text.extend(&serde_json::to_vec(&lines[0]).unwrap()[..40]);
    std::fs::write(store.join("history.jsonl"), &text).unwrap();
    std::fs::write(store.join("notes.txt"), &foreign).unwrap();
    tool(
        &dir,
        &["history", "report", "--store", store.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(store.join("history.jsonl")).unwrap(), text);
    assert_eq!(std::fs::read(store.join("notes.txt")).unwrap(), foreign);
    let report = base["points"][0]["report"].clone();
    let merge_dir = dir.join("merge");
    std::fs::create_dir_all(&merge_dir).unwrap();
    for i in 0..4 {
        let mut bad = report.clone();
        mutate_value(&mut rng, &mut bad);
        let a = merge_dir.join(format!("a{i}.json"));
        let b = merge_dir.join(format!("b{i}.json"));
        std::fs::write(&a, serde_json::to_vec(&report).unwrap()).unwrap();
        std::fs::write(&b, serde_json::to_vec(&bad).unwrap()).unwrap();
        tool(&dir, &["merge", a.to_str().unwrap(), b.to_str().unwrap()]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Datagrams

/// `echo-bench serve --model MODEL --listen udp:127.0.0.1:0`, and the address it printed.
fn serve_udp(model: Model) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--model",
            model.name(),
            "--listen",
            "udp:127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn echo-bench serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{model}: no `listening on` line within 30 s");
    };
    let endpoint: Endpoint = addr.parse().unwrap();
    (child, endpoint.socket_addr().unwrap())
}

/// Whether a fresh socket gets `message` back from `server`, retrying a lost datagram.
fn echoes(server: SocketAddr, message: &[u8]) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = vec![0; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        socket.send_to(message, server).unwrap();
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if from == server && &buf[..n] == message {
                return true;
            }
        }
    }
    false
}

#[test]
fn every_udp_model_survives_random_datagrams() {
    let mut rng = SmallRng::seed_from_u64(0xd6a);
    let mut noise = vec![0u8; 65507];
    rng.fill(&mut noise[..]);
    let mut tried = Vec::new();
    for &model in Model::ALL {
        if !model.serves(Transport::Udp) {
            continue;
        }
        if let Err(why) = model.available() {
            eprintln!("{model}: skipped, not available here: {why}");
            continue;
        }
        tried.push(model);
        let began = Instant::now();
        let (mut child, server) = serve_udp(model);
        let senders: Vec<UdpSocket> = (0..4)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for i in 0..3000 {
            // Mostly small, some up to a jumbo frame, a few up to the largest UDP payload.
            let len = match rng.random_range(0..20) {
                0 => rng.random_range(9000..=65507),
                1..=5 => rng.random_range(512..9000),
                _ => rng.random_range(0..512),
            };
            let start = rng.random_range(0..=noise.len() - len);
            let datagram = &noise[start..start + len];
            if i % 25 == 0 {
                // A socket gone before its echo comes back: the kernel answers the echo with
                // ICMP port unreachable, which a server sees as ECONNREFUSED on its next call
                // (Linux reports it on a connected socket, or on any with IP_RECVERR).
                let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
                let _ = gone.send_to(datagram, server);
                drop(gone);
            } else {
                let _ = senders[i % senders.len()].send_to(datagram, server);
            }
            if i % 50 == 0 {
                // Let the server drain its buffer now and then, so most of the noise reaches it.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(senders);
        for k in 0..16 {
            let message = format!("honest client {k} after the noise").into_bytes();
            assert!(
                echoes(server, &message),
                "{model}: no echo for a fresh socket after the random datagrams"
            );
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "{model}: the server died"
        );
        // SAFETY: kill(2) on the child this test started, which it has not reaped yet.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let Some(status) = echo_loadgen::child::wait_until(&mut child, deadline).unwrap() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{model}: still running 10 s after SIGTERM");
        };
        assert_eq!(status.code(), Some(0), "{model}: {status} after SIGTERM");
        eprintln!("{model}: survived, {:.1} s", began.elapsed().as_secs_f64());
    }
    assert!(tried.len() >= 4, "only {tried:?} tried");
}
