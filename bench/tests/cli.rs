//! `echo-bench run`'s outputs and exit codes, and every subcommand's usage errors.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use echo_servers::Model;
use support::*;

#[test]
fn cli_writes_json_csv_and_hdr_and_exits_0_on_a_clean_run() {
    let server = start(Model::Mio);
    let dir = std::env::temp_dir().join(format!("echo-bench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, csv, hdr) = (dir.join("r.json"), dir.join("r.csv"), dir.join("r.hdr"));
    let target = server.local_addr().to_string();
    let pid = std::process::id().to_string();
    let output = echo_bench(&[
        "run",
        "--target",
        &target,
        "-c",
        "3",
        "-d",
        "300ms",
        "--warmup",
        "100ms",
        "--server-pid",
        &pid,
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--hdr",
        hdr.to_str().unwrap(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("throughput") && stdout.contains("p99"),
        "{stdout}"
    );

    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for key in [
        "throughput_rps",
        "throughput_mib_s",
        "fairness",
        "client",
        "server",
        "config",
        "meta",
    ] {
        assert!(!value[key].is_null(), "missing {key}");
    }
    for key in ["p50", "p90", "p99", "p999", "p9999", "max", "mean"] {
        assert!(
            value["latency_us"][key].is_number(),
            "missing latency_us.{key}"
        );
    }
    for key in ["connect", "refused", "reset", "eof", "timeout", "mismatch"] {
        assert_eq!(value["errors"][key], 0, "errors.{key}");
    }
    assert!(value["meta"]["cpu_model"].is_string() && value["meta"]["rustc"].is_string());
    assert_eq!(value["config"]["connections"], 3);

    let csv_text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = csv_text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].split(',').count(), lines[1].split(',').count());
    assert!(lines[1].starts_with("ping-pong,3,64,"));

    let mut bytes = std::fs::read(&hdr).unwrap();
    let histogram: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .expect("a valid HDR V2 histogram");
    assert_eq!(histogram.len(), value["messages"].as_u64().unwrap());
    bytes.clear();
    std::fs::remove_dir_all(&dir).ok();
    server.shutdown().unwrap();
}

#[test]
fn cli_exits_1_when_the_run_sees_errors() {
    let server = Faulty::start(corrupting);
    let target = server.addr.to_string();
    let output = echo_bench(&["run", "--target", &target, "-d", "300ms", "--warmup", "0s"]);
    assert_eq!(output.status.code(), Some(1));
    // The errors line counts the corrupted echoes: at least one.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mismatches: u64 = stdout
        .lines()
        .find(|l| l.starts_with("errors"))
        .and_then(|l| l.split("mismatch").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no errors line with a mismatch count: {stdout}"));
    assert!(mismatches >= 1, "{stdout}");
}

#[test]
fn a_refused_target_gets_one_clear_line_and_exit_1_not_a_report_of_zeros() {
    // A port nobody listens on: bound, then released.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let target = format!("127.0.0.1:{port}");
    let json = std::env::temp_dir().join(format!("echo-bench-refused-{}.json", std::process::id()));
    let began = Instant::now();
    let output = echo_bench(&[
        "run",
        "--target",
        &target,
        "-d",
        "2s",
        "--warmup",
        "200ms",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!("echo-bench: connection refused by {target}")
    );
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // The file asked for is still written, and claims no window that never happened.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["messages"], 0);
    assert!(
        report["duration_s"].as_f64().unwrap() < 1.0,
        "{}",
        report["duration_s"]
    );
    std::fs::remove_file(&json).ok();
}

#[test]
fn a_server_that_closes_every_connection_gets_one_clear_line() {
    let server = Faulty::start(drop);
    let target = server.addr.to_string();
    let output = echo_bench(&["run", "--target", &target, "-d", "1s", "--warmup", "100ms"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.trim().starts_with(&format!(
            "echo-bench: {target} closed every connection at once"
        )),
        "{stderr}"
    );
}

/// One table of bad command lines (long as the table is), each checked the same way.
#[test]
fn cli_usage_errors_exit_2_with_one_line() {
    let cases: &[&[&str]] = &[
        &["run", "--target", "nowhere"],
        &["run", "--target", "127.0.0.1:9", "--client-cpus", "4000"],
        &[
            "run",
            "--target",
            "127.0.0.1:9",
            "--server-pid",
            "4000000000",
        ],
        &[
            "run",
            "--target",
            "127.0.0.1:9",
            "--json",
            "/nonexistent-dir/run.json",
        ],
        &["run", "--target", "127.0.0.1:7878", "--connections", "0"],
        &["run", "--target", "127.0.0.1:7878", "--payload", "-5"],
        &["run", "--target", "127.0.0.1:7878", "--payload", "0"],
        &[
            "run",
            "--target",
            "127.0.0.1:7878",
            "--payload",
            "1000000000",
        ],
        &["run", "--target", "127.0.0.1:7878", "--duration", "soon"],
        &["run", "--target", "127.0.0.1:7878", "--workload", "rate"],
        &[
            "run",
            "--target",
            "127.0.0.1:7878",
            "--workload",
            "teleport",
        ],
        &[
            "run",
            "--target",
            "127.0.0.1:7878",
            "--connections",
            "100000000",
        ],
        &["run", "--target", "127.0.0.1:0"],
        &["run"],
        &["fly"],
        &["suite", "--rounds", "0"],
        &["suite", "--interference-limit", "0"],
        &["stability", "/nonexistent"],
        &["report", "/nonexistent"],
        &["suite", "--models", "nope"],
        &["suite", "--profile", "huge"],
        &["suite", "--connections", "0"],
        &["suite", "--server-cpus", "999"],
        &["suite", "--no-pin", "--client-cpus", "0"],
        &["serve", "--model", "nope"],
        &["serve", "--model", "mio", "--work-us", "-1"],
        &[
            "ab",
            "--base",
            "/nonexistent/echo-bench",
            "--head",
            "/nonexistent/echo-bench",
        ],
        &["ab", "--base", env!("CARGO_BIN_EXE_echo-bench")],
        &[
            "ab",
            "--base",
            env!("CARGO_BIN_EXE_echo-bench"),
            "--head",
            env!("CARGO_BIN_EXE_echo-bench"),
            "--benchmarks",
            "ping-pong/nope/1",
        ],
        &[
            "ab",
            "--base",
            env!("CARGO_BIN_EXE_echo-bench"),
            "--head",
            env!("CARGO_BIN_EXE_echo-bench"),
            "--pairs",
            "1",
        ],
        &[
            "ab",
            "--base",
            env!("CARGO_BIN_EXE_echo-bench"),
            "--head",
            env!("CARGO_BIN_EXE_echo-bench"),
            "--threshold",
            "200",
        ],
        &[
            "ab",
            "--base",
            env!("CARGO_BIN_EXE_echo-bench"),
            "--head",
            env!("CARGO_BIN_EXE_echo-bench"),
            "--calibration",
            "/nonexistent.json",
        ],
        &["compare", "/nonexistent/run.json", "/nonexistent/run.json"],
        &["compare", "only-one"],
    ];
    for args in cases {
        let output = echo_bench(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("echo-bench: "), "{stderr}");
    }
}

/// The most tasks the child of [`a_client_thread_that_cannot_be_spawned_fails_the_run_cleanly`]
/// may have as its user: a few for the tool's own threads, far fewer than its connections.
const THREAD_LIMIT: u64 = 24;

/// A run whose client threads cannot all be started (the threads engine, one thread per
/// connection, under a thread limit far below its connections) fails with one line and exit
/// 1: the workers already started are let go instead of waiting for the missing one forever.
/// `RLIMIT_NPROC` binds only a process without CAP_SYS_RESOURCE, so as root the child also
/// becomes `nobody` (before the limit, so it counts nobody's tasks, not root's).
#[test]
fn a_client_thread_that_cannot_be_spawned_fails_the_run_cleanly() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!(
            "skipped: RLIMIT_NPROC counts every process of this user; the test needs root to \
             run its child as a user of its own"
        );
        return;
    }
    // Connections wait in the listener's backlog, never accepted: the run must end before any
    // traffic matters.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    // `nobody` must reach the binary, and a clone in a private folder (`mktemp -d` makes it
    // 0700) is closed to it: the binary is linked (or copied) into a folder open to all.
    let open = tempfile::Builder::new()
        .prefix("echo-bench-nproc")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = open.path().join("echo-bench");
    let built = env!("CARGO_BIN_EXE_echo-bench");
    if std::fs::hard_link(built, &binary).is_err() {
        std::fs::copy(built, &binary).unwrap();
    }
    let mut command = std::process::Command::new(&binary);
    command.args([
        "run",
        "--target",
        &target,
        "--engine",
        "threads",
        "--connections",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "0",
        "--timeout",
        "2s",
        "--quiet",
    ]);
    // SAFETY: the closure calls only setgroups, setgid, setuid and setrlimit, which are
    // async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            let nobody = 65534;
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(nobody) != 0
                || libc::setuid(nobody) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let limit = libc::rlimit {
                rlim_cur: THREAD_LIMIT,
                rlim_max: THREAD_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_NPROC, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let began = Instant::now();
    let output = output_within(&mut command, Duration::from_secs(60))
        .expect("the run ends (before the fix it hung, its workers waiting for a missing one)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("run failed: cannot start client thread"),
        "{stderr}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
    drop(listener);
}
