//! `echo-bench merge` and `run --start-at`: several agents load one server at the same time and
//! their reports combine into one. On loopback, and (as root, where network namespaces are
//! permitted) with the server and two agents each in a network namespace this test creates,
//! joined by veth pairs, and removes again.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use echo_bench::Report;
use echo_loadgen::merge::Merged;
use echo_servers::Model;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("echo-bench-merge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `echo-bench run` against `target` as a child process, optionally inside network namespace
/// `netns`, writing its report to `json`.
fn agent(netns: Option<&str>, target: &str, json: &Path, start: &[&str]) -> Child {
    let bin = env!("CARGO_BIN_EXE_echo-bench");
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]);
            c
        }
        None => Command::new(bin),
    };
    command
        .args([
            "run",
            "--target",
            target,
            "--connections",
            "4",
            "--duration",
            "1s",
        ])
        .args(["--warmup", "200ms", "--timeout", "2s", "-q", "--json"])
        .arg(json)
        .args(start)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start an agent")
}

/// Waits for `child` at most 30 s; its exit code.
fn finish(mut child: Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("an agent did not finish within 30 s");
}

fn read_report(path: &Path) -> Report {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Merges `reports` into `dir/merged.json`; the exit code, stdout and the merged report.
fn merge(dir: &Path, reports: &[&Path]) -> (Option<i32>, String, Merged) {
    let out = dir.join("merged.json");
    let mut args = vec!["merge".to_owned()];
    args.extend(reports.iter().map(|p| p.display().to_string()));
    args.extend(["--json".to_owned(), out.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = support::echo_bench(&args);
    let merged = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        merged,
    )
}

/// The merged report adds up the parts and takes its latency from their merged histograms.
fn assert_sums(merged: &Merged, parts: &[Report]) {
    assert_eq!(
        merged.messages,
        parts.iter().map(|r| r.messages).sum::<u64>()
    );
    assert_eq!(merged.connections, 8);
    let p99s: Vec<u64> = parts.iter().map(|r| r.latency_us.p99).collect();
    let (low, high) = (*p99s.iter().min().unwrap(), *p99s.iter().max().unwrap());
    // One histogram bucket of slack (3 significant digits).
    assert!(
        low * 999 / 1000 <= merged.latency_us.p99 && merged.latency_us.p99 <= high * 1001 / 1000,
        "merged p99 {} outside the parts' [{low}, {high}]",
        merged.latency_us.p99
    );
}

#[test]
fn two_agents_started_together_merge_into_one_report() {
    let dir = temp_dir("loopback");
    let server = support::start(Model::Mio);
    let target = server.local_addr().to_string();
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    let start = ["--start-in", "300ms"];
    let agents = [
        agent(None, &target, &a, &start),
        agent(None, &target, &b, &start),
    ];
    for child in agents {
        assert_eq!(finish(child), Some(0));
    }
    let (code, stdout, merged) = merge(&dir, &[&a, &b]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_sums(&merged, &[read_report(&a), read_report(&b)]);
    assert!(merged.overlap_s > 0.5, "windows overlap: {merged:?}");
    assert!(
        !merged.warnings.iter().any(|w| w.contains("overlap")),
        "{:?}",
        merged.warnings
    );
    assert!(stdout.contains("merged 2 agents"), "{stdout}");
    server.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn windows_that_do_not_overlap_and_errors_are_reported() {
    let dir = temp_dir("apart");
    let server = support::start(Model::Mio);
    let faulty = support::Faulty::start(support::corrupting);
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    assert_eq!(
        finish(agent(None, &server.local_addr().to_string(), &a, &[])),
        Some(0)
    );
    // One after the other, and the second against a server that corrupts bytes.
    assert_eq!(
        finish(agent(None, &faulty.addr.to_string(), &b, &[])),
        Some(1)
    );
    let (code, stdout, merged) = merge(&dir, &[&a, &b]);
    assert_eq!(
        code,
        Some(1),
        "a merge of a run that saw errors exits 1: {stdout}"
    );
    assert_eq!(merged.errors, {
        let mut e = read_report(&a).errors;
        e.add(&read_report(&b).errors);
        e
    });
    assert!(merged.errors.mismatch > 0);
    assert!(
        stdout.contains("warning: the measured windows overlap"),
        "{stdout}"
    );
    assert!(stdout.contains("different addresses"), "{stdout}");
    server.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_to_merge_and_start_at_is_a_usage_error() {
    let dir = temp_dir("usage");
    let not_json = dir.join("x.json");
    std::fs::write(&not_json, "not json").unwrap();
    let missing = dir.join("missing.json");
    for args in [
        vec!["merge", not_json.to_str().unwrap()],
        vec![
            "merge",
            not_json.to_str().unwrap(),
            not_json.to_str().unwrap(),
        ],
        vec![
            "merge",
            missing.to_str().unwrap(),
            not_json.to_str().unwrap(),
        ],
        vec!["run", "--target", "127.0.0.1:9", "--start-at", "1000"],
        vec!["run", "--target", "127.0.0.1:9", "--start-in", "2d"],
    ] {
        let output = support::echo_bench(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Network namespaces this test made, removed when it ends (deleting a namespace removes its
/// end of each veth pair, and so the pair).
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A server namespace and two agent namespaces, each agent joined to the server by a veth
/// pair on its own /24; `None` where namespaces are not permitted.
fn topology() -> Option<(Namespaces, [String; 2])> {
    let id = std::process::id() % 100_000;
    let server = format!("ebs{id}");
    let agents = [format!("eba{id}"), format!("ebb{id}")];
    if !ip(&["netns", "add", &server]) {
        return None;
    }
    let mut made = Namespaces(vec![server.clone()]);
    for (i, ns) in agents.iter().enumerate() {
        let (s_end, a_end) = (format!("ebs{i}x{id}"), format!("eba{i}x{id}"));
        let (s_addr, a_addr) = (format!("10.213.{i}.1/24"), format!("10.213.{i}.2/24"));
        let steps: [&[&str]; 8] = [
            &["netns", "add", ns],
            &[
                "link", "add", &s_end, "type", "veth", "peer", "name", &a_end,
            ],
            &["link", "set", &s_end, "netns", &server],
            &["link", "set", &a_end, "netns", ns],
            &["-n", &server, "addr", "add", &s_addr, "dev", &s_end],
            &["-n", ns, "addr", "add", &a_addr, "dev", &a_end],
            &["-n", &server, "link", "set", &s_end, "up"],
            &["-n", ns, "link", "set", &a_end, "up"],
        ];
        made.0.push(ns.clone());
        if !steps.iter().all(|step| ip(step)) {
            return None;
        }
    }
    ip(&["-n", &server, "link", "set", "lo", "up"]);
    Some((made, agents))
}

#[test]
fn agents_in_their_own_network_namespaces_merge_into_one_report() {
    let Some((namespaces, agents)) = topology() else {
        eprintln!("SKIP: network namespaces are not permitted here (needs root and `ip netns`)");
        return;
    };
    let dir = temp_dir("netns");
    let server_ns = namespaces.0[0].clone();
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &server_ns,
            env!("CARGO_BIN_EXE_echo-bench"),
        ])
        .args(["serve", "--model", "mio", "--listen", "0.0.0.0:7000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    let start_at = format!(
        "{:.3}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            + 0.5
    );
    let start = ["--start-at", start_at.as_str()];
    let children = [
        agent(Some(&agents[0]), "10.213.0.1:7000", &a, &start),
        agent(Some(&agents[1]), "10.213.1.1:7000", &b, &start),
    ];
    let codes: Vec<Option<i32>> = children.into_iter().map(finish).collect();
    // SIGTERM stops the server; it must exit cleanly.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(codes, [Some(0), Some(0)]);
    assert!(status.success());
    let (code, stdout, merged) = merge(&dir, &[&a, &b]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_sums(&merged, &[read_report(&a), read_report(&b)]);
    assert!(merged.overlap_s > 0.5, "{merged:?}");
    // Two addresses of one server, said so.
    assert!(stdout.contains("different addresses"), "{stdout}");
    drop(namespaces);
    std::fs::remove_dir_all(&dir).ok();
}
