//! Bounded input: every count, size and duration option, outside its documented range, is a
//! usage error (exit 2, one line on stderr), found at once: never a panic, an abort on a huge
//! allocation, or a run.

mod support;

use std::process::Command;
use std::time::Duration;

use support::output_within;

const BIN: &str = env!("CARGO_BIN_EXE_echo-bench");

/// Runs `echo-bench ARGS` and checks that it exits 2 within 10 s with one line on stderr.
fn rejected(args: &[&str]) {
    let output = output_within(Command::new(BIN).args(args), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{args:?} did not finish within 10 s"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?}: {}; stderr: {stderr}",
        output.status
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {stderr}");
    assert!(
        lines[0].starts_with("echo-bench: error"),
        "{args:?}: {stderr}"
    );
}

/// Runs `echo-bench SUBCOMMAND --help` and checks that it states `range` for `option`.
fn documented(subcommand: &[&str], option: &str, range: &str) {
    let mut args = subcommand.to_vec();
    args.push("--help");
    let output = output_within(Command::new(BIN).args(&args), Duration::from_secs(10)).unwrap();
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    // The option's entry: from its line (`--opt`, `-o, --opt` or `<OPT>`) to the next entry's.
    let starts = |line: &str, name: &str| {
        let line = line.trim_start();
        let line = match line.split_once(", ") {
            Some((short, rest)) if short.len() == 2 && short.starts_with('-') => rest,
            _ => line,
        };
        line.starts_with(&format!("{name} "))
            || line == name
            || line.starts_with(&format!("<{name}>"))
    };
    let lines: Vec<&str> = help.lines().collect();
    let at = lines
        .iter()
        .position(|l| starts(l, option))
        .unwrap_or_else(|| panic!("{subcommand:?}: no {option} in the help:\n{help}"));
    let entry: Vec<&str> = lines[at..]
        .iter()
        .enumerate()
        .take_while(|(i, l)| {
            *i == 0 || !(l.trim_start().starts_with('-') || l.trim_start().starts_with('<'))
        })
        .map(|(_, l)| l.trim())
        .collect();
    let entry = entry.join(" ");
    assert!(
        entry.contains(range),
        "{subcommand:?} {option}: the help does not state {range}: {entry}"
    );
}

const MAX: &str = "18446744073709551615";

#[test]
fn run_counts_sizes_and_durations() {
    let target = ["run", "--target", "127.0.0.1:9"];
    for bad in [
        ["--connections", MAX],
        ["--connections", "0"],
        ["--connections", "1000001"],
        ["--payload", "65MiB"],
        ["--payload", MAX],
        ["--pipeline", "0"],
        ["--pipeline", "4097"],
        ["--threads", "0"],
        ["--threads", "1025"],
        ["--requests", "0"],
        ["--requests", "1000000000001"],
        ["--duration", "0"],
        ["--duration", "169h"],
        ["--warmup", "2h"],
        ["--timeout", "0"],
        ["--timeout", "2h"],
        ["--rate", "0"],
        ["--rate", "1e10"],
        ["--connect-rate", "inf"],
        ["--start-in", "25h"],
        ["--server-pid", "0"],
    ] {
        rejected(&[&target[..], &bad[..]].concat());
    }
    for (option, range) in [
        ("--connections", "1 to 1000000"),
        ("--payload", "1 to 64MiB"),
        ("--pipeline", "1 to 4096"),
        ("--threads", "1 to 1024"),
        ("--requests", "1 to 10^12"),
        ("--duration", "1ms to 7 days"),
        ("--warmup", "0 to 1h"),
        ("--timeout", "1ms to 1h"),
        ("--start-in", "0 to 24h"),
    ] {
        documented(&["run"], option, range);
    }
}

#[test]
fn suite_counts_sizes_durations_and_their_product() {
    for bad in [
        &["--rounds", "10000000000"][..],
        &["--rounds", "0"],
        &["--connections", MAX],
        &["--profile", "c10k", "--connections", "2000000"],
        &["--payloads", "64,65MiB"],
        &["--duration", "2h"],
        &["--warmup", "2h"],
        &["--interference-limit", "0"],
        &["--reruns", "11"],
        &["--work-us", "2000000"],
        &["--objective", "p99=0ms"],
        &["--objective", "p100=1ms"],
        // 240 points × 1000 rounds.
        &[
            "--profile",
            "tiny",
            "--rounds",
            "1000",
            "--connections",
            "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20",
        ],
    ] {
        rejected(&[&["suite", "--results", "/nonexistent/bounds"][..], bad].concat());
    }
    for (option, range) in [
        ("--connections", "1 to 1000000"),
        ("--payloads", "1 to 64MiB"),
        ("--rounds", "1 to 1000"),
        ("--duration", "1ms to 1h"),
        ("--reruns", "0 to 10"),
        ("--work-us", "0 to 1000000"),
    ] {
        documented(&["suite"], option, range);
    }
}

#[test]
fn ab_counts_durations_and_benchmarks() {
    let builds = ["ab", "--base", BIN, "--head", BIN];
    for bad in [
        &["--pairs", "1"][..],
        &["--pairs", "1001"],
        &["--trial", "10ms"],
        &["--trial", "2h"],
        &["--warmup", "2h"],
        &["--threshold", "100"],
        &["--benchmarks", "ping-pong/tokio/18446744073709551615"],
        &["--benchmarks", "ping-pong/tokio/1/65MiB"],
        &["--benchmarks", "rate/tokio/1@1e12"],
        &["--count-messages", "9"],
        &["--count-pairs", "1001"],
    ] {
        rejected(&[&builds[..], bad].concat());
    }
    for (option, range) in [
        ("--pairs", "2 to 1000"),
        ("--trial", "50ms to 1h"),
        ("--warmup", "0 to 1h"),
        ("--count-messages", "10 to 1000000"),
        ("--count-pairs", "2 to 1000"),
    ] {
        documented(&["ab"], option, range);
    }
}

#[test]
fn conformance_merge_and_history_numbers() {
    rejected(&[
        "conformance",
        "--target",
        "127.0.0.1:9",
        "--server-pid",
        "0",
    ]);
    documented(&["conformance"], "--server-pid", "1 to 4194304");
    rejected(&["merge", "only-one.json"]);
    documented(&["merge"], "RUN.json", "2 to 1000");
    for bad in [
        ["--threshold", "nan"],
        ["--threshold", "-1"],
        ["--min-change", "1e9"],
        ["--p", "2"],
    ] {
        rejected(
            &[
                &["history", "report", "--store", "/nonexistent"][..],
                &bad[..],
            ]
            .concat(),
        );
    }
    documented(&["history", "report"], "--threshold", "0 to 1000");
    for bad in [&["--threshold", "nan"][..], &["--threshold", "-5"]] {
        rejected(&[&["compare", "old", "new"][..], bad].concat());
    }
    documented(&["compare"], "--threshold", "0 to 1000");
    rejected(&["stability", "one-run"]);
    documented(&["stability"], "RUNS", "2 to 1000");
}

#[test]
fn server_options() {
    for bad in [
        ["--threads", "0"],
        ["--threads", "65536"],
        ["--backlog", "0"],
        ["--buffer", "0"],
        ["--buffer", "67108865"],
        ["--work-us", "1000001"],
        ["--handicap-ns", "1000000001"],
        ["--handicap-instructions", "1000000001"],
    ] {
        rejected(&[&["serve", "--model", "tokio"][..], &bad[..]].concat());
    }
    for (option, range) in [
        ("--threads", "1 to 65535"),
        ("--backlog", "1 to 1000000"),
        ("--buffer", "1 to 67108864"),
        ("--work-us", "0 to 1000000"),
        ("--handicap-instructions", "0 to 1000000000"),
    ] {
        documented(&["serve"], option, range);
    }
}
