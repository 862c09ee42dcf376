//! `echo-bench ab --metric instructions`: counted A/A gives no change, a handicap of
//! instructions is a confirmed regression, every report carries the counts, and without
//! valgrind the counted benchmarks are skipped with one line (never failed). The tests that
//! need valgrind skip with a note where it is missing.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

use echo_bench::ab::{AbReport, Metric, Verdict, counted};

const BIN: &str = env!("CARGO_BIN_EXE_echo-bench");

fn temp(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("echo-bench-counted-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn have_valgrind() -> bool {
    let found = counted::find_valgrind().is_some();
    if !found {
        eprintln!("skipped: valgrind not found (apt-get install valgrind)");
    }
    found
}

/// A counted `ab` of one cheap benchmark (debug build, few messages, a threshold a debug
/// build's counts clear); returns the exit code, the JSON report and stderr.
fn counted_ab(
    dir: &std::path::Path,
    pairs: &str,
    extra: &[&str],
) -> (Option<i32>, AbReport, String) {
    let json = dir.join("ab.json");
    let mut command = Command::new(BIN);
    command
        .args([
            "ab",
            "--base",
            BIN,
            "--head",
            BIN,
            "--metric",
            "instructions",
        ])
        .args(["--benchmarks", "ping-pong/mio/1"])
        .args(["--count-pairs", pairs, "--count-messages", "400"])
        .args(["--count-threshold", "2", "--seed", "5", "--quiet", "--json"])
        .arg(&json)
        .args(extra);
    let output = output_within(&mut command, Duration::from_secs(300))
        .expect("a counted ab finishes within 5 minutes");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = AbReport::read(&json).unwrap_or_else(|e| panic!("{e}; stderr: {stderr}"));
    (output.status.code(), report, stderr)
}

#[test]
fn a_counted_a_a_comparison_is_no_change_with_a_count_per_message() {
    if !have_valgrind() {
        return;
    }
    let dir = temp("aa");
    let (code, report, stderr) = counted_ab(&dir, "3", &[]);
    assert_eq!(code, Some(0), "{}; {stderr}", report.conclusion);
    let bench = &report.benchmarks[0];
    assert_eq!(bench.name, "counted:ping-pong/mio/1");
    assert_eq!(bench.verdict, Verdict::NoChange, "{:?}", bench.note);
    assert_eq!(bench.pairs.len(), 3);
    let primary = bench.primary().expect("a primary metric");
    assert_eq!(primary.metric, Some(Metric::InstructionsPerMessage));
    // An echo costs at least a read and a write: hundreds of instructions, not a handful.
    assert!(primary.base_median > 200.0, "{primary:?}");
    for pair in &bench.pairs {
        for side in [&pair.base, &pair.head] {
            assert!(side.invalid.is_none(), "{side:?}");
            assert_eq!(side.counts.len(), 2, "{side:?}");
            assert!(side.counts[1] > side.counts[0], "{side:?}");
        }
    }
    assert!(bench.noise_floor_pct.is_some_and(|f| f < 2.0), "{bench:?}");
    let counting = report.counting.as_ref().expect("how it counted");
    assert!(counting.tool.contains("callgrind"), "{counting:?}");
    assert_eq!((counting.messages, counting.pairs), (400, 3));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_instruction_handicap_is_a_confirmed_regression_in_every_report() {
    if !have_valgrind() {
        return;
    }
    let dir = temp("handicap");
    let (md, bmf, gha) = (
        dir.join("ab.md"),
        dir.join("bmf.json"),
        dir.join("gha.json"),
    );
    // 200,000 instructions per message: far beyond a debug build's echo.
    let (code, report, stderr) = counted_ab(
        &dir,
        "2",
        &[
            "--head-server-arg=--handicap-instructions=200000",
            "--markdown",
            md.to_str().unwrap(),
            "--bmf",
            bmf.to_str().unwrap(),
            "--github-action",
            gha.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{}; {stderr}", report.conclusion);
    let bench = &report.benchmarks[0];
    assert_eq!(bench.verdict, Verdict::Regressed, "{:?}", bench.note);
    let primary = bench.primary().unwrap();
    // The handicap is a loop that runs, zero times or K, in both builds: head minus base is
    // 200,000 per message, give or take only the counts' own noise.
    let added = primary.head_median - primary.base_median;
    assert!((199_990.0..200_010.0).contains(&added), "{primary:?}");
    assert_eq!(
        bench.confirmation.as_ref().map(|c| c.verdict),
        Some(Verdict::Regressed)
    );
    let md = std::fs::read_to_string(md).unwrap();
    assert!(
        md.contains("| counted:ping-pong/mio/1 |") && md.contains("instructions_per_msg"),
        "{md}"
    );
    let bmf: serde_json::Value = serde_json::from_slice(&std::fs::read(bmf).unwrap()).unwrap();
    let count = &bmf["echo-bench/counted:ping-pong/mio/1"]["instructions_per_msg"];
    assert!(count["value"].as_f64().unwrap() > 200_000.0, "{bmf}");
    let gha: serde_json::Value = serde_json::from_slice(&std::fs::read(gha).unwrap()).unwrap();
    assert!(gha[0]["value"].as_f64().unwrap() > 150.0, "{gha}");
    // The history takes the counts as a series of their own.
    let store = dir.join("store");
    let appended = echo_bench(&[
        "history",
        "append",
        dir.join("ab.json").to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(appended.status.success(), "{appended:?}");
    let records = echo_bench::history::load(&store).unwrap();
    assert!(
        records[0]
            .figures
            .contains_key("counted:ping-pong/mio/1 instructions_per_msg"),
        "{:?}",
        records[0].figures.keys()
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// An empty folder as the PATH: no valgrind to be found.
fn without_valgrind(command: &mut Command, dir: &std::path::Path) {
    let empty = dir.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    command.env("PATH", &empty);
}

#[test]
fn without_valgrind_both_skips_the_counted_group_in_one_line_and_instructions_is_refused() {
    let dir = temp("none");
    let json = dir.join("ab.json");
    let mut both = Command::new(BIN);
    both.args(["ab", "--base", BIN, "--head", BIN, "--metric", "both"])
        .args(["--benchmarks", "ping-pong/mio/1", "--pairs", "2"])
        .args([
            "--trial", "100ms", "--warmup", "0ms", "--seed", "3", "--quiet",
        ])
        .arg("--json")
        .arg(&json);
    without_valgrind(&mut both, &dir);
    let output = output_within(&mut both, Duration::from_secs(120)).expect("finishes");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let skipped: Vec<&str> = stderr.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(skipped.len(), 1, "{stderr}");
    assert!(skipped[0].contains("valgrind not found"), "{stderr}");
    assert_ne!(output.status.code(), Some(2), "{stderr}");
    let report = AbReport::read(&json).unwrap();
    assert_eq!(report.benchmarks.len(), 1);
    assert_eq!(report.benchmarks[0].name, "ping-pong/mio/1");
    assert!(report.counting.is_none());

    let mut instructions = Command::new(BIN);
    instructions.args([
        "ab",
        "--base",
        BIN,
        "--head",
        BIN,
        "--metric",
        "instructions",
    ]);
    without_valgrind(&mut instructions, &dir);
    let output = output_within(&mut instructions, Duration::from_secs(20)).expect("finishes");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("valgrind not found"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn what_cannot_be_counted_is_a_usage_error() {
    for bad in [
        &["--benchmarks", "counted:rate/mio/64"][..],
        &["--benchmarks", "counted:churn/tokio/8"],
        &["--metric", "instructions", "--benchmarks", "rate/mio/64"],
        &["--count-messages", "5"],
        &["--count-pairs", "1"],
        &["--count-threshold", "100"],
        &["--valgrind", "/nonexistent/valgrind"],
    ] {
        let mut command = Command::new(BIN);
        command.args(["ab", "--base", BIN, "--head", BIN]).args(bad);
        let output = output_within(&mut command, Duration::from_secs(20)).expect("finishes");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{bad:?}: {stderr}");
    }
}
