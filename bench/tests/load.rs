//! The load generator's checks: every workload against every server model, faults caught from
//! deliberately broken servers, and the CLI's outputs and exit codes. Loopback only; every run
//! is bounded by its duration plus its timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use echo_bench::{Engine, Report, RunConfig, Stop, Workload, engine};
use echo_servers::{Model, ServerConfig};

fn short(target: SocketAddr, workload: Workload) -> RunConfig {
    RunConfig {
        target,
        workload,
        connections: 4,
        payload: 100,
        stop: Stop::Duration(Duration::from_millis(400)),
        warmup: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        threads: 2,
        ..RunConfig::default()
    }
}

fn run(config: &RunConfig) -> Report {
    config.validate().expect("valid config");
    let outcome = engine::run(config, &mut |_| {}).expect("run");
    Report::new(config, &outcome)
}

/// Runs `check` against every model in parallel, naming each model that failed.
fn for_every_model(check: fn(Model)) {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = Model::runnable(Model::ALL.iter().copied())
            .into_iter()
            .map(|m| (m, scope.spawn(move || check(m))))
            .collect();
        runs.into_iter()
            .filter_map(|(m, r)| {
                r.join().err().map(|p| {
                    let why = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    format!("{m}: {why}")
                })
            })
            .collect()
    });
    assert!(failures.is_empty(), "failed for:\n{}", failures.join("\n"));
}

fn start(model: Model) -> echo_servers::ServerHandle {
    model
        .server()
        .start(&ServerConfig::ephemeral())
        .expect("start server")
}

#[test]
fn ping_pong_against_every_model() {
    for_every_model(|model| {
        let server = start(model);
        let mut config = short(server.local_addr(), Workload::PingPong);
        config.pipeline = 3;
        let report = run(&config);
        assert!(report.is_clean(), "errors: {:?}", report.errors);
        assert!(report.messages > 0);
        assert_eq!(report.bytes, report.messages * 100);
        assert!(report.latency_us.p50 > 0 && report.latency_us.p50 <= report.latency_us.p99);
        assert!(report.latency_us.p99 <= report.latency_us.max);
        assert!(report.client.cpu_s > 0.0);
        if model.serves_concurrently() {
            assert_eq!(report.fairness.starved, 0, "{:?}", report.fairness);
            assert!(
                report.fairness.min > 0 && report.fairness.jain > 0.5,
                "{:?}",
                report.fairness
            );
        } else if model == Model::Blocking {
            // One connection at a time: the other three starve, and the report says so.
            assert_eq!(report.fairness.starved, 3, "{:?}", report.fairness);
            assert!(report.warnings.iter().any(|w| w.contains("starved")));
        }
        server.shutdown().unwrap();
    });
}

#[test]
fn stream_churn_and_rate_against_every_model() {
    for_every_model(|model| {
        let server = start(model);
        let addr = server.local_addr();
        let concurrency = if model.serves_concurrently() { 4 } else { 1 };

        let mut stream = short(addr, Workload::Stream);
        stream.connections = concurrency;
        stream.payload = 16 * 1024;
        let report = run(&stream);
        assert!(report.is_clean(), "stream errors: {:?}", report.errors);
        assert!(report.bytes >= 16 * 1024 && report.throughput_mib_s > 0.0);

        let mut churn = short(addr, Workload::Churn);
        churn.connections = 2;
        let report = run(&churn);
        assert!(report.is_clean(), "churn errors: {:?}", report.errors);
        let figures = report.churn.expect("churn figures");
        assert!(figures.connections_per_s > 0.0);
        assert!(figures.connect_latency_us.p50 > 0);
        // Each churned connection carries exactly one echo.
        assert_eq!(
            report.messages as f64,
            (figures.connections_per_s * report.duration_s).round()
        );

        let mut rate = short(addr, Workload::Rate);
        rate.connections = concurrency;
        rate.rate = Some(2000.0);
        rate.stop = Stop::Duration(Duration::from_millis(500));
        let report = run(&rate);
        assert!(report.is_clean(), "rate errors: {:?}", report.errors);
        let open = report.open_loop.expect("open-loop figures");
        assert_eq!(open.offered_rps, 2000.0);
        // An open loop sends on schedule whatever the server does: 1000 messages, give or take.
        assert!(
            (500..=1500).contains(&report.messages),
            "{} messages",
            report.messages
        );
        // Corrected latency counts queueing from the intended time, so it is never smaller.
        assert!(report.latency_us.p99 >= open.latency_uncorrected_us.p99 / 2);
        server.shutdown().unwrap();
    });
}

#[test]
fn requests_mode_and_the_threads_engine() {
    let server = start(Model::Tokio);
    let mut config = short(server.local_addr(), Workload::PingPong);
    config.stop = Stop::Requests(1000);
    config.warmup = Duration::ZERO;
    let report = run(&config);
    assert!(report.is_clean());
    assert!(
        (1000..=1004).contains(&report.messages),
        "{}",
        report.messages
    );

    config.engine = Engine::Threads;
    config.stop = Stop::Duration(Duration::from_millis(300));
    let report = run(&config);
    assert!(report.is_clean(), "{:?}", report.errors);
    assert!(report.messages > 0);
    assert_eq!(report.client.threads, 4);
    server.shutdown().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Faulty servers

/// A server whose per-connection behaviour is `serve`, one thread per connection.
struct Faulty {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Faulty {
    fn start(serve: fn(TcpStream)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
                        std::thread::spawn(move || serve(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Faulty { addr, stop }
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Echoes, but flips one bit of the 1000th byte.
fn corrupting(mut stream: TcpStream) {
    let mut buf = [0; 4096];
    let mut total = 0usize;
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            return;
        }
        if (total..total + n).contains(&1000) {
            buf[1000 - total] ^= 0x10;
        }
        total += n;
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Echoes 2000 bytes, then drops the connection.
fn dropping(mut stream: TcpStream) {
    let mut buf = [0; 4096];
    let mut total = 0usize;
    while let Ok(n) = stream.read(&mut buf) {
        let n = n.min(2000 - total);
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            return;
        }
        total += n;
        if total >= 2000 {
            return;
        }
    }
}

/// Echoes 2000 bytes, then keeps reading but never answers again.
fn stalling(mut stream: TcpStream) {
    let mut buf = [0; 4096];
    let mut total = 0usize;
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            return;
        }
        let echo = n.min(2000usize.saturating_sub(total));
        total += n;
        if echo > 0 && stream.write_all(&buf[..echo]).is_err() {
            return;
        }
    }
}

#[test]
fn a_corrupted_byte_is_a_mismatch() {
    let server = Faulty::start(corrupting);
    let report = run(&short(server.addr, Workload::PingPong));
    assert!(report.errors.mismatch >= 1, "{:?}", report.errors);
    assert!(!report.is_clean());
}

#[test]
fn a_dropped_connection_is_an_eof_or_reset() {
    let server = Faulty::start(dropping);
    let report = run(&short(server.addr, Workload::PingPong));
    assert!(
        report.errors.eof + report.errors.reset >= 1,
        "{:?}",
        report.errors
    );
    assert_eq!(report.errors.mismatch, 0);
}

#[test]
fn a_stalled_server_is_a_timeout_within_duration_plus_timeout() {
    let server = Faulty::start(stalling);
    let mut config = short(server.addr, Workload::PingPong);
    config.timeout = Duration::from_millis(300);
    config.stop = Stop::Duration(Duration::from_secs(1));
    let began = Instant::now();
    let report = run(&config);
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "took {:?}",
        began.elapsed()
    );
    assert!(report.errors.timeout >= 1, "{:?}", report.errors);
}

#[test]
fn a_refused_target_is_counted() {
    // Bind then drop: nothing listens on this port now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let report = run(&short(addr, Workload::PingPong));
    assert!(report.errors.refused >= 1, "{:?}", report.errors);
    let report = run(&short(addr, Workload::Churn));
    assert!(report.errors.refused >= 1, "{:?}", report.errors);
}

// ---------------------------------------------------------------------------------------------
// The CLI

fn echo_bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_echo-bench"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run echo-bench")
}

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
fn cli_usage_errors_exit_2_with_one_line() {
    let cases: &[&[&str]] = &[
        &["run", "--target", "nowhere"],
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

// ---------------------------------------------------------------------------------------------
// The suite

mod suite {
    use super::*;
    use echo_bench::suite::{
        self, InterferencePolicy, Launcher, Pinning, Profile, SuiteOptions, SuiteRun, plan,
    };

    fn options(
        models: Vec<Model>,
        extra: Vec<(Model, Vec<String>)>,
        dir: &std::path::Path,
    ) -> SuiteOptions {
        SuiteOptions {
            points: plan::points(
                Profile::Tiny,
                &plan::Selection {
                    models: Some(models),
                    ..plan::Selection::default()
                },
            ),
            rounds: 1,
            seed: 1,
            // Other tests run beside these: no re-runs unless a test asks for them.
            interference: InterferencePolicy {
                limit_cores: 0.25,
                reruns: 0,
            },
            profile: Profile::Tiny,
            duration: Duration::from_millis(600),
            warmup: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
            pinning: Pinning::halves(),
            p99_target: Duration::from_millis(1),
            knee: false,
            results_dir: dir.to_path_buf(),
            launcher: Launcher {
                program: env!("CARGO_BIN_EXE_echo-bench").into(),
                args: vec!["serve".into()],
                extra,
            },
            command_line: "test".into(),
            skipped: Vec::new(),
        }
    }

    /// Runs `echo-bench suite --profile tiny ARGS --results DIR` with `env`; returns its output
    /// and its stderr as text.
    fn tiny_suite(
        dir: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (std::process::Output, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_echo-bench"))
            .args(["suite", "--profile", "tiny"])
            .args(args)
            .arg("--results")
            .arg(dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output, stderr)
    }

    /// The one run folder a suite wrote into `dir`, and its `run.json`.
    fn the_run_in(dir: &std::path::Path) -> (std::path::PathBuf, SuiteRun) {
        let run_dir = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("run.json").is_file())
            .expect("a run folder");
        let run =
            serde_json::from_slice(&std::fs::read(run_dir.join("run.json")).unwrap()).unwrap();
        (run_dir, run)
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("echo-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn tiny_suite_runs_end_to_end_and_writes_every_file() {
        let dir = temp_dir("suite");
        let options = options(vec![Model::Mio, Model::Tokio], Vec::new(), &dir);
        let run = suite::run(&options, &mut |_, _, _| {});
        assert_eq!(run.points.len(), 2);
        for point in &run.points {
            assert!(point.ok(), "{point:?}");
            let report = point.report.as_ref().unwrap();
            assert!(report.is_clean() && report.messages > 0);
            let server = report.server.expect("the suite knows its server's pid");
            assert!(server.cpu_s > 0.0 && server.peak_rss_kib > 0);
        }
        let out = suite::output::write(&dir, &run).expect("write results");
        for file in [
            "run.json",
            "summary.md",
            "README.md",
            "throughput-64B.svg",
            "latency.svg",
            "server-cpu.svg",
            "server-rss.svg",
            "fairness.svg",
        ] {
            let path = out.join(file);
            assert!(
                path.metadata().map(|m| m.len() > 0).unwrap_or(false),
                "missing {file}"
            );
        }
        let latest = std::fs::read_to_string(dir.join("latest")).unwrap();
        assert_eq!(latest.trim(), out.file_name().unwrap().to_string_lossy());
        let stored: SuiteRun =
            serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(stored.points.len(), run.points.len());
        for (stored, ran) in stored.points.iter().zip(&run.points) {
            assert_eq!(stored.point, ran.point);
            assert_eq!(
                stored.report.as_ref().unwrap().messages,
                ran.report.as_ref().unwrap().messages
            );
        }
        let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(summary.contains("## Which model to pick") && summary.contains("| mio |"));
        assert!(
            std::fs::read_to_string(out.join("throughput-64B.svg"))
                .unwrap()
                .contains("<svg")
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_rounds_order_is_recorded_and_reproducible_from_the_seed() {
        let dir = temp_dir("rounds");
        let mut options = options(
            vec![Model::Mio, Model::Tokio, Model::Smol],
            Vec::new(),
            &dir,
        );
        options.rounds = 3;
        options.seed = 9;
        options.duration = Duration::from_millis(150);
        options.warmup = Duration::from_millis(50);
        let run = suite::run(&options, &mut |_, _, _| {});
        assert_eq!((run.rounds, run.seed), (3, 9));
        let ran: Vec<plan::Point> = run.points.iter().map(|p| p.point.clone()).collect();
        assert_eq!(ran, plan::schedule(&options.points, 3, 9));
        assert!(run.points.iter().enumerate().all(|(i, p)| p.order == i));
        // Read back from run.json, the record gives the same order again.
        let out = suite::output::write(&dir, &run).unwrap();
        let stored: SuiteRun =
            serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        let stored_order: Vec<plan::Point> =
            stored.points.iter().map(|p| p.point.clone()).collect();
        assert_eq!(
            stored_order,
            plan::schedule(&options.points, stored.rounds, stored.seed)
        );
        let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(summary.contains("3 interleaved round(s)") && summary.contains("seed 9"));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Processes that spin until dropped.
    struct Hogs(Vec<std::process::Child>);

    impl Drop for Hogs {
        fn drop(&mut self) {
            for hog in &mut self.0 {
                let _ = hog.kill();
                let _ = hog.wait();
            }
        }
    }

    #[test]
    fn a_trial_disturbed_by_a_cpu_hog_is_rerun_and_flagged() {
        let dir = temp_dir("hog");
        let mut options = options(vec![Model::Mio], Vec::new(), &dir);
        options.interference = InterferencePolicy {
            limit_cores: 0.25,
            reruns: 1,
        };
        options.duration = Duration::from_millis(400);
        // One spinning process per CPU: whatever the scheduler does, it takes far more than
        // the limit from the server's and the client's CPUs.
        let cpus = echo_bench::procfs::allowed_cpus().len().max(1);
        let hogs = Hogs(
            (0..cpus)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .expect("sh runs")
                })
                .collect(),
        );
        let run = suite::run(&options, &mut |_, _, _| {});
        drop(hogs);
        let trial = &run.points[0];
        assert!(trial.ok(), "{trial:?}");
        assert_eq!(trial.attempts, 2, "re-run once: {trial:?}");
        assert!(trial.interfered, "kept, flagged: {trial:?}");
        assert!(trial.discarded_interference[0] > 0.25, "{trial:?}");
        assert!(trial.interference_cores().unwrap() > 0.25, "{trial:?}");
        let out = suite::output::write(&dir, &run).unwrap();
        let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(
            summary.contains("1 trial(s) were re-run for interference")
                && summary.contains("1 stayed above it"),
            "{summary}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_model_that_crashes_mid_run_is_reported_and_the_suite_goes_on() {
        let dir = temp_dir("crash");
        let crash = vec![(
            Model::ThreadPerConnection,
            vec!["--abort-after".into(), "250".into()],
        )];
        let options = options(vec![Model::ThreadPerConnection, Model::Mio], crash, &dir);
        let began = Instant::now();
        let run = suite::run(&options, &mut |_, _, _| {});
        assert!(began.elapsed() < Duration::from_secs(20));
        let of = |model| run.points.iter().find(|p| p.point.model == model).unwrap();
        let crashed = of(Model::ThreadPerConnection);
        assert!(!crashed.ok());
        assert!(
            crashed.failure.as_deref().unwrap_or("").contains("crashed"),
            "{crashed:?}"
        );
        assert!(
            of(Model::Mio).ok(),
            "the other model still ran: {:?}",
            of(Model::Mio)
        );
        let out = suite::output::write(&dir, &run).unwrap();
        let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(summary.contains("Failed points"), "{summary}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_model_this_machine_cannot_run_is_skipped_and_said_so() {
        use echo_servers::IO_URING_DISABLE_ENV as DISABLE_ENV;
        let dir = temp_dir("skip");
        let (output, stderr) =
            tiny_suite(&dir, &["--models", "io-uring,mio"], &[(DISABLE_ENV, "1")]);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "skipping io-uring: io_uring disabled by {DISABLE_ENV}"
            )),
            "{stderr}"
        );
        let (run_dir, run) = the_run_in(&dir);
        assert_eq!(run.skipped.len(), 1, "{:?}", run.skipped);
        assert!(
            run.points
                .iter()
                .all(|p| p.point.model == Model::Mio && p.ok())
        );
        let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
        assert!(summary.contains("Not measured"), "{summary}");

        // Asked for directly, the server says why it cannot run, on one line, and exits 1.
        let serve = Command::new(env!("CARGO_BIN_EXE_echo-bench"))
            .args(["serve", "--model", "io-uring"])
            .env(DISABLE_ENV, "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&serve.stderr);
        assert_eq!(serve.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("io-uring is not available on this machine"),
            "{stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_work_sweep_reaches_the_servers_and_gets_its_table_charts_and_advice() {
        let dir = temp_dir("work");
        let args = ["--models", "tokio,tokio-rayon", "--work-us", "0,500"];
        let (output, stderr) = tiny_suite(&dir, &args, &[]);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let (run_dir, run) = the_run_in(&dir);
        assert_eq!(run.points.len(), 4);
        for point in &run.points {
            let report = point.report.as_ref().expect("measured");
            assert!(point.ok() && report.is_clean(), "{point:?}");
            if point.point.work_us == 500 {
                // Every echo waited for its 500 µs of work: a lower bound, not a speed.
                assert!(report.latency_us.p50 >= 500, "{:?}", report.latency_us);
            }
        }
        let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
        assert!(summary.contains("### Handler work"), "{summary}");
        assert!(summary.contains("4 conn, 500 µs work"), "{summary}");
        assert!(
            summary.contains("Handler work, 500 µs of CPU per message"),
            "{summary}"
        );
        assert!(
            summary.contains("Offloading 500 µs of work to a rayon pool"),
            "{summary}"
        );
        for chart in ["work-throughput.svg", "work-p99.svg", "work-fairness.svg"] {
            assert!(run_dir.join(chart).is_file(), "{chart} missing");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn advice_is_derived_from_the_data() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/run.json");
        let run: SuiteRun = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
        let advice = suite::advice::advice(&run).join("\n");
        // One round: however far apart, no two models can be separated.
        assert!(
            advice.contains("**mio, blocking, tokio** tied")
                && advice.contains("one round cannot separate"),
            "{advice}"
        );
        assert!(
            advice.contains("blocking (starved 99 of 100 connections)"),
            "{advice}"
        );
        // Memory per connection: mio grew 400 KiB over 99 connections, tokio 1000 KiB.
        assert!(
            advice.contains("**mio** needs the least, 4.0 KiB per connection"),
            "{advice}"
        );

        // The same figures in three rounds, each round 10% faster than the last for every
        // model (a drift of the machine): the pairs within rounds separate the models.
        let mut rounds = run.clone();
        rounds.rounds = 3;
        rounds.points = (0..3)
            .flat_map(|round| {
                run.points.iter().map(move |p| {
                    let mut p = p.clone();
                    p.point.round = round;
                    let report = p.report.as_mut().unwrap();
                    let drift = 1.0 + 0.1 * round as f64;
                    report.throughput_rps *= drift;
                    if let Some(churn) = report.churn.as_mut() {
                        churn.connections_per_s *= drift;
                    }
                    p
                })
            })
            .collect();
        let advice = suite::advice::advice(&rounds).join("\n");
        // 1 connection: mio 30000 vs blocking 20000 in every round.
        assert!(
            advice.contains("**mio** leads with 33.0k msg/s"),
            "{advice}"
        );
        assert!(
            advice.contains("+50% [+50%, +50%] against the runner-up blocking"),
            "{advice}"
        );
        // 100 connections: blocking starved, so tokio leads mio by 25%.
        assert!(
            advice.contains("**tokio** leads with 110k msg/s"),
            "{advice}"
        );
        assert!(
            advice.contains("+25% [+25%, +25%] against the runner-up mio"),
            "{advice}"
        );
        // Churn: tokio 6000/s vs mio 5000/s.
        assert!(
            advice.contains("**tokio** leads with 6600 conn/s"),
            "{advice}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// `ab` and `compare`

mod ab {
    use super::*;
    use echo_bench::ab::{AbReport, Verdict};

    const BIN: &str = env!("CARGO_BIN_EXE_echo-bench");

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("echo-bench-ab-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A short `ab` of one fast benchmark; returns the exit code and the JSON report.
    fn ab(dir: &std::path::Path, extra: &[&str]) -> (Option<i32>, AbReport) {
        let json = dir.join("ab.json");
        let began = Instant::now();
        let mut args = vec![
            "ab",
            "--base",
            BIN,
            "--head",
            BIN,
            "--benchmarks",
            "ping-pong/mio/1",
            "--pairs",
            "4",
            "--trial",
            "150ms",
            "--warmup",
            "50ms",
            "--seed",
            "7",
            "--quiet",
            "--json",
        ];
        let json_arg = json.to_str().unwrap().to_owned();
        args.push(&json_arg);
        args.extend_from_slice(extra);
        let output = echo_bench(&args);
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "ab took {:?}",
            began.elapsed()
        );
        let report = AbReport::read(&json)
            .unwrap_or_else(|e| panic!("{e}; stderr: {}", String::from_utf8_lossy(&output.stderr)));
        (output.status.code(), report)
    }

    #[test]
    fn strict_counts_inconclusive_as_a_failure_in_the_json_as_in_the_exit_code() {
        let dir = temp("strict");
        // A threshold of 0.1% cannot be resolved by 4 pairs: the verdict is inconclusive (or,
        // should the interval miss zero by chance, a regression that confirmation re-runs).
        let (code, report) = ab(&dir, &["--strict", "--threshold", "0.1"]);
        assert_eq!(
            code,
            Some(i32::from(report.exit_code)),
            "{}",
            report.conclusion
        );
        if report
            .benchmarks
            .iter()
            .any(|b| b.verdict == Verdict::Inconclusive)
        {
            assert_eq!(report.exit_code, 1, "{}", report.conclusion);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_a_comparison_finds_no_regression_and_records_every_pair() {
        let dir = temp("aa");
        let (code, report) = ab(&dir, &[]);
        assert_eq!(code, Some(0), "{}", report.conclusion);
        assert!(report.aa);
        assert_eq!(report.mode, "duet");
        let bench = &report.benchmarks[0];
        assert!(
            matches!(bench.verdict, Verdict::NoChange | Verdict::Inconclusive),
            "{:?}: {:?}",
            bench.verdict,
            bench.note
        );
        assert_eq!(bench.pairs.len(), 4);
        // ABBA blocks: each block of two pairs has one of each order.
        for block in bench.pairs.chunks(2) {
            assert_ne!(block[0].order, block[1].order, "{:?}", bench.pairs);
        }
        for pair in &bench.pairs {
            assert!(
                pair.base.invalid.is_none() && pair.head.invalid.is_none(),
                "{pair:?}"
            );
            assert!(pair.base.messages > 0 && pair.head.messages > 0);
        }
        assert!(
            bench.noise_floor_pct.is_some(),
            "an A/A run measures the noise floor"
        );
        let primary = bench.primary().expect("primary metric");
        let change = primary.change.as_ref().expect("interval");
        assert!(change.ci_low_pct <= change.change_pct && change.change_pct <= change.ci_high_pct);
        assert!(
            report.base.as_ref().unwrap().meta.is_some(),
            "the build's environment is kept"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_large_injected_slowdown_is_a_confirmed_regression_with_exit_1() {
        let dir = temp("slow");
        let (md, bmf, gha) = (
            dir.join("ab.md"),
            dir.join("bmf.json"),
            dir.join("gha.json"),
        );
        let (code, report) = ab(
            &dir,
            &[
                "--head-server-arg=--handicap-ns=20000",
                "--markdown",
                md.to_str().unwrap(),
                "--bmf",
                bmf.to_str().unwrap(),
                "--github-action",
                gha.to_str().unwrap(),
            ],
        );
        assert_eq!(code, Some(1), "{}", report.conclusion);
        assert!(!report.aa);
        let bench = &report.benchmarks[0];
        assert_eq!(bench.verdict, Verdict::Regressed, "{:?}", bench.note);
        let change = bench.primary().unwrap().change.clone().unwrap();
        assert!(change.change_pct < -20.0, "{change:?}");
        let again = bench
            .confirmation
            .as_ref()
            .expect("re-run before reporting");
        assert_eq!(again.verdict, Verdict::Regressed);
        assert!(report.conclusion.contains("confirmed regression"));

        let md = std::fs::read_to_string(md).unwrap();
        assert!(
            md.contains("| ping-pong/mio/1 |") && md.contains("regressed"),
            "{md}"
        );
        let bmf: serde_json::Value = serde_json::from_slice(&std::fs::read(bmf).unwrap()).unwrap();
        let throughput = &bmf["echo-bench/ping-pong/mio/1"]["throughput"];
        assert!(throughput["value"].as_f64().unwrap() > 0.0, "{bmf}");
        assert!(
            throughput["lower_value"].as_f64().unwrap()
                <= throughput["upper_value"].as_f64().unwrap()
        );
        let gha: serde_json::Value = serde_json::from_slice(&std::fs::read(gha).unwrap()).unwrap();
        assert!(gha[0]["value"].as_f64().unwrap() > 120.0, "{gha}");
        assert_eq!(gha[0]["unit"], "% of base cost");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_server_that_fails_mid_trial_makes_the_comparison_invalid_with_exit_2() {
        let dir = temp("invalid");
        let (code, report) = ab(
            &dir,
            &["--head-server-arg=--abort-after=120", "--sequential"],
        );
        assert_eq!(code, Some(2), "{}", report.conclusion);
        assert_eq!(report.mode, "sequential");
        let bench = &report.benchmarks[0];
        assert_eq!(bench.verdict, Verdict::Invalid);
        let note = bench.note.as_deref().unwrap_or("");
        assert!(note.starts_with("head:"), "{note}");
        assert!(
            bench.pairs.iter().all(|p| p.base.invalid.is_none()),
            "only head failed"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A stand-in head build whose servers flip the first byte of every chunk they echo (a
    /// Python echo server), while its load generator is the real one.
    fn corrupting_build(dir: &std::path::Path) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("corrupting-echo-bench");
        let text = format!(
            r#"#!/bin/sh
if [ "$1" = serve ]; then
  exec python3 -c '
import signal, socket, sys, threading
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(128)
print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
def serve(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(bytes([d[0] ^ 0xFF]) + d[1:])
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'
fi
exec {BIN} "$@"
"#
        );
        std::fs::write(&script, text).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn echo_mismatches_make_the_comparison_invalid_with_exit_2() {
        if Command::new("python3").arg("--version").output().is_err() {
            eprintln!("skipped: the corrupting stand-in server needs python3");
            return;
        }
        let dir = temp("mismatch");
        let head = corrupting_build(&dir);
        let json = dir.join("ab.json");
        let output = echo_bench(&[
            "ab",
            "--base",
            BIN,
            "--head",
            head.to_str().unwrap(),
            "--benchmarks",
            "ping-pong/mio/1",
            "--pairs",
            "2",
            "--trial",
            "100ms",
            "--warmup",
            "50ms",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ]);
        let report = AbReport::read(&json).unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", report.conclusion);
        let bench = &report.benchmarks[0];
        assert_eq!(bench.verdict, Verdict::Invalid);
        let note = bench.note.as_deref().unwrap_or("");
        assert!(
            note.starts_with("head: ") && note.contains("echo error"),
            "{note}"
        );
        assert!(
            bench.pairs.iter().all(|p| p.base.invalid.is_none()),
            "only head failed"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The fixture's points in three rounds; `scale(model, round)` multiplies each throughput.
    fn in_rounds(scale: &dyn Fn(&str, usize) -> f64) -> serde_json::Value {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/run.json");
        let mut run: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
        let points: Vec<serde_json::Value> = run["points"].as_array().unwrap().clone();
        let mut rounds = Vec::new();
        for round in 0..3 {
            for point in &points {
                let mut point = point.clone();
                point["point"]["round"] = round.into();
                let model = point["point"]["model"].as_str().unwrap().to_owned();
                let rps = point["report"]["throughput_rps"].as_f64().unwrap();
                point["report"]["throughput_rps"] = (rps * scale(&model, round)).into();
                rounds.push(point);
            }
        }
        run["points"] = rounds.into();
        run["rounds"] = 3.into();
        run
    }

    #[test]
    fn compare_judges_rounds_on_intervals_and_matches_handler_work() {
        let dir = temp("compare-rounds");
        // Round-to-round jitter of ±2% everywhere.
        let jitter = |round: usize| [1.0, 1.02, 0.98][round];
        let old = in_rounds(&|_, round| jitter(round));
        // mio 40% slower in every round; tokio unchanged but for the jitter.
        let mut new = in_rounds(&|model, round| {
            jitter((round + 1) % 3) * if model == "mio" { 0.6 } else { 1.0 }
        });
        // A handler-work point that exists only in the new run must not be matched with the
        // plain one.
        let mut worked = new["points"][0].clone();
        worked["point"]["work_us"] = 50.into();
        worked["report"]["throughput_rps"] = 1.0.into();
        new["points"].as_array_mut().unwrap().push(worked);
        let (old_path, new_path) = (dir.join("old.json"), dir.join("new.json"));
        std::fs::write(&old_path, serde_json::to_vec(&old).unwrap()).unwrap();
        std::fs::write(&new_path, serde_json::to_vec(&new).unwrap()).unwrap();
        let output = echo_bench(&[
            "compare",
            old_path.to_str().unwrap(),
            new_path.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{stdout}");
        let line = |name: &str| {
            stdout
                .lines()
                .find(|l| l.starts_with(&format!("{name}:")))
                .unwrap_or_else(|| panic!("no verdict for {name}: {stdout}"))
                .to_owned()
        };
        let mio = line("ping-pong/mio/1");
        assert!(mio.contains("regressed (-40.0% [-4"), "{mio}");
        let tokio = line("ping-pong/tokio/1");
        assert!(tokio.contains("within noise"), "{tokio}");
        assert!(!stdout.contains("no interval"), "{stdout}");
        assert!(!stdout.contains("+work50us:"), "{stdout}");
        assert!(
            stdout.contains("1 only in the new one were left out"),
            "{stdout}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn compare_puts_two_suite_runs_side_by_side_and_warns_when_unpaired() {
        let dir = temp("compare");
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/run.json");
        let same = echo_bench(&["compare", fixture, fixture]);
        let stdout = String::from_utf8_lossy(&same.stdout);
        assert_eq!(same.status.code(), Some(0), "{stdout}");
        assert!(
            stdout.contains("no_change") && stdout.contains("unpaired"),
            "{stdout}"
        );

        // The same run on another host with one point 40% slower.
        let mut run: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
        run["meta"]["host"] = "elsewhere".into();
        let point = run["points"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|p| p["point"]["model"] == "mio" && p["point"]["workload"] == "ping-pong")
            .expect("a mio ping-pong point");
        let rps = point["report"]["throughput_rps"].as_f64().unwrap();
        point["report"]["throughput_rps"] = (rps * 0.6).into();
        let slower = dir.join("run.json");
        std::fs::write(&slower, serde_json::to_vec(&run).unwrap()).unwrap();
        let md = dir.join("compare.md");
        let output = echo_bench(&[
            "compare",
            fixture,
            slower.to_str().unwrap(),
            "--markdown",
            md.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("-40.0%") && stdout.contains("regressed"),
            "{stdout}"
        );
        assert!(
            stdout.contains("no interval (one sample)") && !stdout.contains("[-40.0%, -40.0%]"),
            "{stdout}"
        );
        assert!(stdout.contains("different hosts"), "{stdout}");
        assert!(std::fs::read_to_string(md).unwrap().contains("regressed"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
