//! The tools' child processes: killing a tool with SIGINT, SIGTERM or SIGKILL leaves no process
//! of its own behind; an interrupted suite writes a partial run that `report` draws; every wait
//! on a child has a deadline; `ab` runs the build it checked; a failed trial leaves no socket
//! file. Every process these tests start carries a marker in its environment, found in /proc.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use echo_bench::suite::{self, Launcher, Point, Profile, SuiteOptions, SuiteRun, plan};
use echo_servers::Model;
use support::{MARK, children_of, kill_marked, marker, none_left, output_within};

const BIN: &str = env!("CARGO_BIN_EXE_echo-bench");

/// A fresh folder under the temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(marker(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An executable shell script at `path`.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Starts `echo-bench ARGS` marked with `mark`, output discarded (stderr to `log`).
fn start(args: &[&str], mark: &str, log: &Path) -> Child {
    Command::new(BIN)
        .args(args)
        .env(MARK, mark)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits up to `limit` until `pid` has a live child; whether it did.
fn has_child(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !children_of(pid).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Waits up to `limit` until at least `count` live processes carry `mark`; whether they did.
fn marked_at_least(mark: &str, count: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if support::live_marked(mark).len() >= count {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Waits up to `limit` until `pid` has started `count` different children; whether it did.
fn children_started(pid: u32, count: usize, limit: Duration) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        seen.extend(children_of(pid));
        if seen.len() >= count {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Waits up to `limit` for `child` to exit.
fn exit_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a child of this test.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

#[test]
fn killing_conformance_with_any_signal_leaves_no_server() {
    let dir = scratch("conformance-signals");
    let command = format!("{BIN} serve --model tokio --listen {{addr}}");
    for (sig, code) in [
        (libc::SIGINT, Some(130)),
        (libc::SIGTERM, Some(143)),
        (libc::SIGKILL, None),
    ] {
        let mark = marker(&format!("conformance-{sig}"));
        let log = dir.join(format!("{sig}.log"));
        let mut tool = start(&["conformance", "--command", &command], &mark, &log);
        // The tool and a server, as the scan sees them (between two checks there is no server).
        assert!(
            marked_at_least(&mark, 2, Duration::from_secs(20)),
            "signal {sig}: no server seen"
        );
        signal(&tool, sig);
        let status = exit_within(&mut tool, Duration::from_secs(15));
        let left = none_left(&mark, Duration::from_secs(5));
        kill_marked(&mark);
        let status = status.unwrap_or_else(|| panic!("signal {sig}: the tool did not exit"));
        let stderr = std::fs::read_to_string(&log).unwrap();
        match code {
            Some(code) => assert_eq!(status.code(), Some(code), "signal {sig}: {stderr}"),
            None => assert_eq!(status.signal(), Some(libc::SIGKILL)),
        }
        assert!(
            left.is_empty(),
            "signal {sig}: processes left behind: {left:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_interrupted_suite_writes_a_partial_run_and_leaves_no_server() {
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let dir = scratch(&format!("suite-{sig}"));
        let mark = marker(&format!("suite-{sig}"));
        let log = dir.join("stderr.log");
        let results = dir.join("results");
        let mut tool = start(
            &[
                "suite",
                "--profile",
                "tiny",
                "--models",
                "tokio",
                "--rounds",
                "100",
                "--reruns",
                "0",
                "--results",
                results.to_str().unwrap(),
            ],
            &mark,
            &log,
        );
        // A fresh server per trial, and no re-runs: the third server means two trials are done.
        assert!(
            children_started(tool.id(), 3, Duration::from_secs(60)),
            "the suite did not get to its third trial"
        );
        signal(&tool, sig);
        let status = exit_within(&mut tool, Duration::from_secs(20));
        let left = none_left(&mark, Duration::from_secs(5));
        kill_marked(&mark);
        let stderr = std::fs::read_to_string(&log).unwrap();
        let status = status.expect("the suite did not exit");
        assert_eq!(status.code(), Some(code), "{stderr}");
        assert!(left.is_empty(), "processes left behind: {left:?}");
        let run_dir = std::fs::read_dir(&results)
            .unwrap_or_else(|e| panic!("no results ({e}): {stderr}"))
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("run.json").is_file())
            .unwrap_or_else(|| panic!("no run.json: {stderr}"));
        let text = std::fs::read_to_string(run_dir.join("run.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["partial"], true, "run.json is not marked partial");
        let run: SuiteRun = serde_json::from_str(&text).unwrap();
        assert!(
            !run.points.is_empty() && run.points.len() < 100,
            "{} trials",
            run.points.len()
        );
        assert!(run.points.iter().all(|p| p.ok()), "{:?}", run.points);
        let report = output_within(
            Command::new(BIN).arg("report").arg(&run_dir),
            Duration::from_secs(60),
        )
        .expect("report finished");
        assert!(report.status.success(), "{report:?}");
        let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
        assert!(summary.contains("**Partial run**"), "{summary}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The one certificate a suite makes for its outside TLS servers, and the private folders of
/// its Unix sockets, are gone after an interrupt, with the servers. Either path may remove
/// them: the run's end (the trials left fail at once once interrupted, so the main thread
/// drops them while the partial run is written) or the signal handling
/// (`child::make_removed_on_interrupt`, for when the exit comes first); this test passes with either
/// alone.
#[test]
fn an_interrupted_suite_removes_the_certificate_and_socket_folders_it_made() {
    let dir = scratch("suite-cert");
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mark = marker("suite-cert");
    let server =
        format!("ext={BIN} serve --model mio --listen {{addr}} --cert {{cert}} --key {{key}}");
    let mut tool = Command::new(BIN)
        .args([
            "suite",
            "--profile",
            "tiny",
            "--models",
            "mio",
            "--transports",
            "tls,unix",
        ])
        .args([
            "--server",
            &server,
            "--rounds",
            "100",
            "--reruns",
            "0",
            "--results",
        ])
        .arg(dir.join("results"))
        .env(MARK, &mark)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let made_here = |prefix: &'static str| {
        let tmp = tmp.clone();
        move || -> Vec<PathBuf> {
            std::fs::read_dir(&tmp)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains(prefix))
                .collect()
        }
    };
    let certificates = made_here("echo-bench-tls-");
    let socket_folders = made_here("echo-suite-");
    // Four servers: at least one of them the outside one, given the certificate.
    let started = children_started(tool.id(), 4, Duration::from_secs(60));
    let made = certificates();
    // And a Unix trial under way, so that there is a socket folder to remove.
    let waited = Instant::now();
    while socket_folders().is_empty() && waited.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let sockets_made = socket_folders().len();
    signal(&tool, libc::SIGINT);
    let status = exit_within(&mut tool, Duration::from_secs(20));
    let left = none_left(&mark, Duration::from_secs(5));
    kill_marked(&mark);
    let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(
        started,
        "the suite did not get to its fourth trial: {stderr}"
    );
    assert_eq!(made.len(), 1, "one certificate for the run: {made:?}");
    assert!(sockets_made > 0, "no Unix trial started: {stderr}");
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{stderr}");
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert_eq!(certificates(), Vec::<PathBuf>::new(), "{stderr}");
    assert_eq!(socket_folders(), Vec::<PathBuf>::new(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A suite launcher of `program`, as `ab` makes for a build.
fn launcher(program: &Path) -> Launcher {
    Launcher {
        program: program.to_path_buf(),
        args: vec!["serve".into()],
        extra: Vec::new(),
    }
}

/// `launcher.start(tokio)` on a thread: its error, or `None` if it took longer than `limit`
/// (the thread is then left behind).
fn start_error(launcher: Launcher, limit: Duration) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(launcher.start(Model::Tokio, None).map(|s| s.pid()));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(pid)) => panic!("a fake server started (pid {pid})"),
        Ok(Err(why)) => Some(why),
        Err(_) => None,
    }
}

#[test]
fn a_server_that_prints_something_else_fails_at_once() {
    let dir = scratch("other-line");
    let fake = dir.join("fake");
    script(&fake, "echo 'usage: fake [options]'\nexec sleep 60");
    let began = Instant::now();
    let why = start_error(launcher(&fake), Duration::from_secs(15))
        .expect("the launcher still waits on a server that printed another line");
    assert!(began.elapsed() < Duration::from_secs(11), "{why}");
    assert!(why.contains("usage: fake"), "{why}");
    assert_eq!(why.lines().count(), 1, "{why}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_silent_server_fails_within_the_start_limit() {
    let dir = scratch("silent");
    let fake = dir.join("fake");
    script(&fake, "exec sleep 60");
    let why = start_error(launcher(&fake), Duration::from_secs(15))
        .expect("the launcher waited past its start limit");
    assert!(why.contains("no 'listening on' line within"), "{why}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ab_with_a_wrong_binary_ends_within_its_start_limit() {
    let dir = scratch("ab-wrong");
    let fake = dir.join("not-echo-bench");
    script(&fake, "echo hello\nsleep 60");
    let mark = marker("ab-wrong");
    let output = output_within(
        Command::new(BIN)
            .args(["ab", "--base"])
            .arg(&fake)
            .arg("--head")
            .arg(&fake)
            .args([
                "--benchmarks",
                "ping-pong/tokio/1",
                "--pairs",
                "2",
                "--no-confirm",
            ])
            .env(MARK, &mark),
        Duration::from_secs(30),
    );
    let left = none_left(&mark, Duration::from_secs(5));
    kill_marked(&mark);
    let output = output.expect("ab hung on a build whose server printed another line");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("instead of a 'listening on"), "{text}");
    assert!(left.is_empty(), "processes left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ab_runs_the_file_it_checked_not_one_on_path() {
    let dir = scratch("ab-path");
    let here = dir.join("here");
    let on_path = dir.join("bin");
    std::fs::create_dir_all(&here).unwrap();
    std::fs::create_dir_all(&on_path).unwrap();
    let ran_here = dir.join("ran-here");
    let ran_path = dir.join("ran-path");
    script(
        &here.join("build"),
        &format!("touch {}", ran_here.display()),
    );
    script(
        &on_path.join("build"),
        &format!("touch {}", ran_path.display()),
    );
    let path = format!(
        "{}:{}",
        on_path.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = output_within(
        Command::new(BIN)
            .current_dir(&here)
            .env("PATH", path)
            .args(["ab", "--base", "build", "--head", "build"])
            .args([
                "--benchmarks",
                "ping-pong/tokio/1",
                "--pairs",
                "2",
                "--no-confirm",
            ]),
        Duration::from_secs(30),
    )
    .expect("ab finished");
    assert!(!output.status.success());
    assert!(
        !ran_path.exists(),
        "ab ran the build found on PATH, not ./build"
    );
    assert!(ran_here.exists(), "ab did not run ./build");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The socket files of this process's suite servers in the temporary directory.
fn suite_sockets() -> Vec<PathBuf> {
    let prefix = format!("echo-suite-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect()
}

#[test]
fn a_failed_trial_over_a_unix_socket_leaves_no_socket_file() {
    let dir = scratch("unix-leak");
    let points = plan::points(
        Profile::Tiny,
        &plan::Selection {
            models: Some(vec![Model::Tokio]),
            ..plan::Selection::default()
        },
    );
    let point = Point {
        transport: echo_servers::Transport::Unix,
        ..points[0].clone()
    };
    let options = SuiteOptions {
        points: vec![point.clone()],
        rounds: 1,
        seed: 1,
        interference: suite::InterferencePolicy {
            limit_cores: 100.0,
            reruns: 0,
        },
        profile: Profile::Tiny,
        duration: Duration::from_millis(800),
        warmup: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        pinning: suite::Pinning::default(),
        capacity: None,
        capacity_models: Vec::new(),
        results_dir: dir.clone(),
        launcher: Launcher {
            program: BIN.into(),
            args: vec!["serve".into()],
            // The server aborts mid-trial: it cannot remove its socket file itself.
            extra: vec![(
                Model::Tokio.into(),
                vec!["--abort-after".into(), "300".into()],
            )],
        },
        command_line: "test".into(),
        skipped: Vec::new(),
        c10k: None,
    };
    let result = suite::measure(&options, &point);
    assert!(!result.ok(), "the trial was meant to fail: {result:?}");
    let left = suite_sockets();
    for path in &left {
        let _ = std::fs::remove_file(path);
    }
    assert!(left.is_empty(), "socket files left: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `echo-bench ARGS`, waits for a child of it (when `child` says so), sends `sig`, and
/// checks the exit (`code`, or death by SIGKILL) and that no marked process is left.
fn kill_and_check(args: &[&str], child: bool, sig: i32, code: Option<i32>) {
    let dir = scratch("signals");
    let mark = marker(&format!("{}-{sig}", args[0]));
    let log = dir.join("stderr.log");
    let mut tool = start(args, &mark, &log);
    if child {
        assert!(
            has_child(tool.id(), Duration::from_secs(20)),
            "{args:?}: no child started"
        );
    } else {
        std::thread::sleep(Duration::from_millis(500));
    }
    // The scan sees the tool and its children before the signal.
    assert!(
        marked_at_least(&mark, 1 + usize::from(child), Duration::from_secs(20)),
        "{args:?}: the marked processes are not found"
    );
    signal(&tool, sig);
    let status = exit_within(&mut tool, Duration::from_secs(15));
    let left = none_left(&mark, Duration::from_secs(5));
    kill_marked(&mark);
    let stderr = std::fs::read_to_string(&log).unwrap();
    let status = status.unwrap_or_else(|| panic!("{args:?}, signal {sig}: did not exit"));
    match code {
        Some(code) => assert_eq!(status.code(), Some(code), "{args:?} {sig}: {stderr}"),
        None => assert_eq!(status.signal(), Some(libc::SIGKILL)),
    }
    assert!(left.is_empty(), "{args:?} {sig}: left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn killing_ab_or_a_suite_with_any_signal_leaves_no_process() {
    let ab = [
        "ab",
        "--base",
        BIN,
        "--head",
        BIN,
        "--benchmarks",
        "ping-pong/tokio/1",
        "--pairs",
        "2",
        "--trial",
        "3s",
        "--warmup",
        "1s",
    ];
    let dir = scratch("suite-kill");
    let results = dir.join("results");
    let suite = [
        "suite",
        "--profile",
        "tiny",
        "--models",
        "tokio",
        "--rounds",
        "20",
        "--results",
        results.to_str().unwrap(),
    ];
    for (sig, code) in [
        (libc::SIGINT, Some(130)),
        (libc::SIGTERM, Some(143)),
        (libc::SIGKILL, None),
    ] {
        kill_and_check(&ab, true, sig, code);
    }
    kill_and_check(&suite, true, libc::SIGKILL, None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_exits_130_or_143_on_a_signal() {
    let wait = [
        "run",
        "--target",
        "127.0.0.1:9",
        "--start-in",
        "60s",
        "--quiet",
    ];
    kill_and_check(&wait, false, libc::SIGINT, Some(130));
    kill_and_check(&wait, false, libc::SIGTERM, Some(143));
}
