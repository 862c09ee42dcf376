//! The suite: end to end, rounds and their order, interference, crashes, skipped models, the
//! work sweep, and advice from fixtures.
//!
//! It is long because it holds every end-to-end test of the suite, one subject each, over the
//! shared `support/`.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use echo_servers::{Model, Transport};

use echo_bench::suite::{
    self, InterferencePolicy, Launcher, Pinning, Profile, Status, SuiteOptions, SuiteRun, plan,
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
        capacity: None,
        capacity_models: Vec::new(),
        results_dir: dir.to_path_buf(),
        launcher: Launcher {
            program: env!("CARGO_BIN_EXE_echo-bench").into(),
            args: vec!["serve".into()],
            extra: extra.into_iter().map(|(m, a)| (m.into(), a)).collect(),
        },
        command_line: "test".into(),
        skipped: Vec::new(),
        c10k: None,
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
    let run = serde_json::from_slice(&std::fs::read(run_dir.join("run.json")).unwrap()).unwrap();
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
        assert_eq!(
            point.driver,
            Some(echo_servers::Driver::Epoll),
            "each trial records the driver its server said it waited on"
        );
    }
    let out = suite::output::write(&dir, &run).expect("write results");
    for file in [
        "run.json",
        "summary.md",
        "README.md",
        "index.html",
        "latency.hlog",
        "throughput-64B.svg",
        "throughput-64B-by-family.svg",
        "latency-ping-pong-4c-64B.svg",
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
        assert_eq!(stored.driver, ran.driver);
        assert_eq!(
            stored.report.as_ref().unwrap().messages,
            ran.report.as_ref().unwrap().messages
        );
    }
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("## Which model to pick") && summary.contains("| mio |"));
    assert!(
        summary.contains("I/O drivers, as each server reported them: epoll: mio, tokio."),
        "{summary}"
    );
    assert!(!summary.contains("**Fallback**"), "{summary}");
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
    let stored_order: Vec<plan::Point> = stored.points.iter().map(|p| p.point.clone()).collect();
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
    let cpus = echo_loadgen::procfs::allowed_cpus().len().max(1);
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
fn report_redraws_a_runs_summary_and_charts_from_its_run_json() {
    let dir = temp_dir("report");
    let (output, stderr) = tiny_suite(&dir, &["--models", "mio,tokio"], &[]);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // Piped, the terminal's report is plain text: tables drawn, no Markdown, no escape codes.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("Which model to pick:") && stdout.contains("│ mio"),
        "{stdout}"
    );
    for markup in ["**", "|---", "\x1b["] {
        assert!(!stdout.contains(markup), "{markup:?} in {stdout}");
    }
    let (run_dir, _) = the_run_in(&dir);
    let page = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    let (verdicts, advice) = (
        page.find("<section id=\"verdicts\">")
            .expect("a verdict matrix"),
        page.find("<section id=\"advice\">").unwrap(),
    );
    assert!(verdicts < advice, "the matrix comes first");
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    let run_json = std::fs::read(run_dir.join("run.json")).unwrap();
    let html = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    let log = std::fs::read(run_dir.join("latency.hlog")).unwrap();
    for file in [
        "summary.md",
        "README.md",
        "index.html",
        "latency.hlog",
        "throughput-64B.svg",
        "latency-ping-pong-4c-64B.svg",
    ] {
        std::fs::remove_file(run_dir.join(file)).unwrap();
    }
    // A chart an older version drew (plotters' SVG, before the mark) and this one does not is
    // not left behind.
    std::fs::write(
        run_dir.join("latency.svg"),
        "<svg width=\"10\" height=\"10\" viewBox=\"0 0 10 10\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <rect x=\"0\" y=\"0\" width=\"10\" height=\"10\" fill=\"#FFFFFF\"/>\n</svg>\n",
    )
    .unwrap();
    let redrawn = support::echo_bench(&["report", run_dir.to_str().unwrap()]);
    assert_eq!(
        redrawn.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&redrawn.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("summary.md")).unwrap(),
        summary,
        "the same version redraws the same summary"
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("index.html")).unwrap(),
        html,
        "the same version redraws the same page"
    );
    assert_eq!(std::fs::read(run_dir.join("latency.hlog")).unwrap(), log);
    for file in [
        "README.md",
        "throughput-64B.svg",
        "latency-ping-pong-4c-64B.svg",
    ] {
        assert!(run_dir.join(file).is_file(), "{file} not redrawn");
    }
    assert!(
        !run_dir.join("latency.svg").exists(),
        "the old chart removed"
    );
    assert_eq!(
        std::fs::read(run_dir.join("run.json")).unwrap(),
        run_json,
        "run.json untouched"
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
    let of = |model: Model| {
        run.points
            .iter()
            .find(|p| p.point.model == model.into())
            .unwrap()
    };
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
    let (output, stderr) = tiny_suite(
        &dir,
        &["--models", "tokio-uring,mio"],
        &[(DISABLE_ENV, "1")],
    );
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "skipping tokio-uring: io_uring disabled by {DISABLE_ENV}"
        )),
        "{stderr}"
    );
    let (run_dir, run) = the_run_in(&dir);
    assert_eq!(run.skipped.len(), 1, "{:?}", run.skipped);
    assert!(
        run.points
            .iter()
            .all(|p| p.point.model == Model::Mio.into() && p.ok())
    );
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(summary.contains("Not measured"), "{summary}");

    // Asked for directly, the server says why it cannot run, on one line, and exits 1.
    let serve = Command::new(env!("CARGO_BIN_EXE_echo-bench"))
        .args(["serve", "--model", "tokio-uring"])
        .env(DISABLE_ENV, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert_eq!(serve.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tokio-uring is not available on this machine"),
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
        advice.contains("**tokio** leads with 6.60k conn/s"),
        "{advice}"
    );
}

#[test]
fn the_c10k_profile_holds_idle_connections_and_reports_their_cost() {
    let dir = temp_dir("c10k");
    let output = Command::new(env!("CARGO_BIN_EXE_echo-bench"))
        .args(["suite", "--profile", "c10k", "--models", "mio,thread-pool"])
        .args([
            "--connections",
            "300",
            "--duration",
            "300ms",
            "--warmup",
            "100ms",
        ])
        .arg("--results")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let (run_dir, run) = the_run_in(&dir);
    assert!(
        run.points.is_empty(),
        "the c10k profile measures no ordinary point"
    );
    let mio = run
        .c10k
        .iter()
        .find(|h| h.model == Model::Mio)
        .expect("mio held");
    assert_eq!(mio.status, Status::Ok, "{mio:?}");
    let held: Vec<usize> = mio.levels.iter().map(|l| l.connections).collect();
    assert_eq!(held, [0, 100, 300]);
    assert!(mio.levels.iter().all(|l| l.rss_kib > 0 && l.threads > 0));
    assert_eq!(mio.errors, 0);
    assert!(mio.baseline.is_some() && mio.under_idle.is_some() && mio.accept_s > 0.0);
    assert!(mio.kib_per_connection().is_some());
    let pool = run
        .c10k
        .iter()
        .find(|h| h.model == Model::ThreadPool)
        .unwrap();
    assert_eq!(
        pool.status,
        Status::NotApplicable,
        "a bounded model is not a failure"
    );
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("### Holding 300 idle connections"),
        "{summary}"
    );
    assert!(
        summary.contains("**Memory per idle connection**"),
        "{summary}"
    );
    // Quietness is recorded per suite trial, and this profile runs none: it says so, rather
    // than blaming a /proc/stat this machine has.
    assert!(
        summary.contains("Machine quietness: not measured (this run has no suite trials")
            && !summary.contains("no /proc/stat"),
        "{summary}"
    );
    assert!(run_dir.join("c10k-memory.svg").is_file());
    std::fs::remove_dir_all(&dir).ok();
}

/// C10K over TCP and TLS for mio: 300 idle connections each way, every TLS one a finished
/// handshake, and the summary's table of what an idle TLS session adds. thread-pool serves TLS
/// but is bounded (not applicable both ways); poll serves no TLS, so it is held over TCP only.
#[test]
fn the_c10k_profile_over_tls_holds_handshaken_connections_and_prices_a_session() {
    let dir = temp_dir("c10k-tls");
    let output = support::output_within(
        Command::new(env!("CARGO_BIN_EXE_echo-bench"))
            .args([
                "suite",
                "--profile",
                "c10k",
                "--models",
                "mio,thread-pool,poll",
            ])
            .args(["--transports", "tcp,tls", "--connections", "300"])
            .args(["--duration", "300ms", "--warmup", "100ms"])
            .arg("--results")
            .arg(&dir),
        Duration::from_secs(180),
    )
    .expect("the run ended within 180 s");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let (run_dir, run) = the_run_in(&dir);
    let held: Vec<(Model, Transport)> = run.c10k.iter().map(|h| (h.model, h.transport)).collect();
    assert_eq!(
        held,
        [
            (Model::Mio, Transport::Tcp),
            (Model::Mio, Transport::Tls),
            (Model::ThreadPool, Transport::Tcp),
            (Model::ThreadPool, Transport::Tls),
            (Model::Poll, Transport::Tcp),
        ]
    );
    let tls = &run.c10k[1];
    assert_eq!(tls.status, Status::Ok, "{tls:?}");
    let levels: Vec<usize> = tls.levels.iter().map(|l| l.connections).collect();
    assert_eq!(levels, [0, 100, 300]);
    assert_eq!(
        tls.errors, 0,
        "every handshake finished and every session echoed"
    );
    assert!(tls.baseline.is_some() && tls.under_idle.is_some() && tls.baseline_rps > 0.0);
    assert!(tls.kib_per_connection().is_some());
    assert_eq!(run.c10k[3].status, Status::NotApplicable);
    let sessions = echo_analysis::c10k::tls_sessions(&run.c10k);
    assert_eq!(sessions.len(), 1, "mio alone was held both ways");
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(summary.contains("| mio over tls |"), "{summary}");
    assert!(
        summary.contains("### What an idle TLS session costs over TCP"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("| mio | {:.2} |", sessions[0].tcp_kib)),
        "{summary}"
    );
    assert!(
        summary.contains("**What an idle TLS session costs**"),
        "{summary}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_c10k_target_beyond_the_descriptor_limit_fails_with_the_reason() {
    let dir = temp_dir("c10k-limit");
    // More connections than any descriptor limit this machine allows one process (20,000).
    let output = Command::new(env!("CARGO_BIN_EXE_echo-bench"))
        .args([
            "suite",
            "--profile",
            "c10k",
            "--models",
            "mio",
            "--connections",
            "1000000",
        ])
        .arg("--results")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("descriptor limit"), "{stderr}");
    let (_, run) = the_run_in(&dir);
    assert_eq!(run.c10k[0].status, Status::Failed);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn transports_get_their_own_tables_and_advice_and_tcp_meets_unix_in_a_chart() {
    let dir = temp_dir("suite-transports");
    let (output, stderr) = tiny_suite(
        &dir,
        &[
            "--models",
            "mio,thread-per-connection",
            "--transports",
            "tcp,unix,udp",
            "--rounds",
            "2",
        ],
        &[],
    );
    assert!(output.status.success(), "{stderr}");
    let (run_dir, run) = the_run_in(&dir);
    let transports =
        |t: echo_servers::Transport| run.points.iter().filter(|p| p.point.transport == t).count();
    // Per round: both models over TCP and Unix; over UDP only mio (thread-per-connection has
    // no datagram server).
    assert_eq!(transports(echo_servers::Transport::Tcp), 4);
    assert_eq!(transports(echo_servers::Transport::Unix), 4);
    assert_eq!(transports(echo_servers::Transport::Udp), 2);
    for point in &run.points {
        assert!(point.ok(), "{:?}", point.failure);
        let report = point.report.as_ref().unwrap();
        assert_eq!(report.config.target.transport(), point.point.transport);
        assert_eq!(
            report.datagrams.is_some(),
            point.point.transport == echo_servers::Transport::Udp
        );
    }
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    for heading in [
        "## TCP\n",
        "## Unix domain sockets\n",
        "## UDP datagrams\n",
        "### TCP vs Unix sockets: server CPU per message",
        "### Over TCP\n",
        "### Over Unix domain sockets\n",
        "### Over UDP datagrams\n",
        "**Unix sockets instead of TCP**",
    ] {
        assert!(summary.contains(heading), "no {heading:?} in:\n{summary}");
    }
    // The comparison has a row per model with the paired change over the two rounds.
    let row = summary
        .lines()
        .find(|l| l.starts_with("| mio |") && l.contains(" → "))
        .unwrap_or_else(|| panic!("no TCP → Unix row for mio:\n{summary}"));
    assert!(row.contains("µs (") && row.contains('['), "{row}");
    assert!(
        summary.contains("4 sockets × 64 B"),
        "UDP columns name sockets"
    );
    let chart = std::fs::read_to_string(run_dir.join("cost-tcp-vs-unix.svg")).unwrap();
    roxmltree::Document::parse(&chart).expect("the chart parses");
    assert!(chart.contains("thread-per-connection") && chart.contains("Unix"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_gets_its_tables_a_handshake_point_and_what_it_costs_over_tcp() {
    let dir = temp_dir("suite-tls");
    let (output, stderr) = tiny_suite(
        &dir,
        &[
            "--models",
            "tokio,thread-per-connection",
            "--transports",
            "tcp,tls",
            "--workloads",
            "ping-pong,churn",
            "--rounds",
            "2",
        ],
        &[],
    );
    assert!(output.status.success(), "{stderr}");
    let (run_dir, run) = the_run_in(&dir);
    let over =
        |t: echo_servers::Transport| run.points.iter().filter(move |p| p.point.transport == t);
    // Per round: both models at ping-pong and at churn, and over TLS churn again with resumed
    // sessions.
    assert_eq!(over(echo_servers::Transport::Tcp).count(), 8);
    assert_eq!(over(echo_servers::Transport::Tls).count(), 12);
    assert_eq!(
        over(echo_servers::Transport::Tls)
            .filter(|p| p.point.tls_resume)
            .count(),
        4
    );
    for point in over(echo_servers::Transport::Tls) {
        assert!(point.ok(), "{:?}", point.failure);
        let report = point.report.as_ref().unwrap();
        assert_eq!(
            report.config.target.transport(),
            echo_servers::Transport::Tls
        );
        assert!(report.is_clean(), "{:?}", report.errors);
        let tls = report
            .tls
            .as_ref()
            .expect("a tls: point reports its handshakes");
        if point.point.workload == echo_bench::Workload::Churn && point.point.tls_resume {
            // Each loop's first handshake is full; the ones after it resume its session.
            assert!(
                tls.resumed > 0 && tls.resumed + 4 >= tls.handshakes,
                "{tls:?}"
            );
        } else if point.point.workload == echo_bench::Workload::Churn {
            // Every connection a full handshake: none resumed.
            assert!(tls.handshakes > 0 && tls.resumed == 0, "{tls:?}");
        }
    }
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    for heading in [
        "## TLS over TCP\n",
        "### Over TLS over TCP\n",
        "### What TLS costs: server CPU per message (ping-pong) and per connection",
        "**What TLS costs over TCP**",
        "churn 4 conn",
        "churn 4 conn, resumed",
        "server CPU per connection (a resumed handshake)",
        "Connection churn, resumed TLS sessions",
        "| 4 loops, resumed |",
    ] {
        assert!(summary.contains(heading), "no {heading:?} in:\n{summary}");
    }
    let table = summary
        .split("### What TLS costs: server CPU")
        .nth(1)
        .unwrap();
    let row = table
        .lines()
        .find(|l| l.starts_with("| tokio |") && l.contains(" → "))
        .unwrap_or_else(|| panic!("no TCP → TLS row for tokio:\n{summary}"));
    assert!(row.contains("µs (") && row.contains('['), "{row}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_capacity_search_runs_per_model_in_rounds_and_reports_its_table_and_curve() {
    let dir = tempfile::tempdir().unwrap();
    let models = vec![Model::Mio, Model::ThreadPerConnection];
    let mut settings = suite::capacity::Settings::profile("p50=50ms".parse().unwrap(), 2);
    settings.plan.start_rps = 2_000.0;
    settings.plan.min_rps = 1_000.0;
    settings.plan.max_rps = 8_000.0;
    settings.plan.grid_steps = 2;
    settings.connections = 8;
    settings.shortest = Duration::from_millis(150);
    settings.longest = Duration::from_millis(300);
    settings.warmup = Duration::from_millis(50);
    // 500 µs of work per message caps thread-per-connection near 2,000 msg/s, inside the
    // ramp's bounds, so its search has a bracket, a grid and rounds; mio's meets the objective
    // at the highest rate allowed.
    let work = vec![(
        Model::ThreadPerConnection,
        vec!["--work-us".to_owned(), "500".to_owned()],
    )];
    let options = SuiteOptions {
        points: Vec::new(),
        capacity: Some(settings),
        capacity_models: models.clone(),
        rounds: 2,
        ..options(models, work, dir.path())
    };
    let began = Instant::now();
    let run = suite::run(&options, &mut |_, _, _| {});
    assert!(began.elapsed() < Duration::from_secs(90));
    assert_eq!(run.capacity.len(), 2);
    for search in &run.capacity {
        assert!(search.failure.is_none(), "{search:?}");
        assert!(!search.ramp.is_empty(), "{search:?}");
        let capacity = search.capacity.as_ref().unwrap();
        // Every rate stays within the plan's bounds, and each round measured the grid.
        assert!(
            search
                .ramp
                .iter()
                .all(|s| (1_000.0..=8_000.0).contains(&s.offered_rps))
        );
        if !search.grid.is_empty() {
            assert_eq!(search.rounds.len(), 2, "{search:?}");
            assert_eq!(capacity.steps.len(), 2);
            // Each round keeps the timelines of the steps on each side of its crossing, and
            // only those.
            for (r, steps) in search.rounds.iter().enumerate() {
                let mut kept: Vec<f64> = search
                    .timelines
                    .iter()
                    .filter(|t| t.round == r)
                    .map(|t| t.offered_rps)
                    .collect();
                kept.sort_by(f64::total_cmp);
                let mut sides = suite::capacity::knee_sides(&capacity.objective, steps);
                sides.retain(|rate| {
                    steps
                        .iter()
                        .any(|s| s.offered_rps == *rate && s.messages > 0)
                });
                assert_eq!(kept, sides, "round {r}: {search:?}");
            }
            assert!(
                search.timelines.iter().all(|t| !t.intervals.is_empty()),
                "{search:?}"
            );
        }
    }
    // Whatever each search found (the machine decides where a bracket falls), every model
    // that got one was measured in every round over its grid.
    assert!(
        run.capacity
            .iter()
            .all(|m| m.grid.is_empty() || m.rounds.len() == 2),
        "{:?}",
        run.capacity
    );
    let table = echo_bench::render::capacity::table_of(&run);
    assert!(table.contains("### Capacity at p50 ≤ 50ms"), "{table}");
    assert!(table.contains("| mio |") && table.contains("| thread-per-connection |"));
    let written = suite::output::write(dir.path(), &run).unwrap();
    let summary = std::fs::read_to_string(written.join("summary.md")).unwrap();
    assert!(summary.contains("### Capacity at p50 ≤ 50ms"), "{summary}");
    for search in run.capacity.iter().filter(|m| !m.timelines.is_empty()) {
        let chart = written.join(format!("capacity-timeline-{}.svg", search.model));
        let svg =
            std::fs::read_to_string(&chart).unwrap_or_else(|e| panic!("{}: {e}", chart.display()));
        assert!(svg.contains("on each side of the knee"), "{svg}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(written.join("run.json")).unwrap()).unwrap();
    assert_eq!(json["capacity"].as_array().unwrap().len(), 2);
    let back = SuiteRun::from_value(json).unwrap();
    // Read back as it was written (to JSON's precision: serde_json's reader may differ in the
    // last bit of a float).
    assert_eq!(back.capacity.len(), run.capacity.len());
    for (b, r) in back.capacity.iter().zip(&run.capacity) {
        assert_eq!(
            (&b.model, b.ramp.len(), &b.grid.len()),
            (&r.model, r.ramp.len(), &r.grid.len())
        );
        let figure =
            |m: &suite::capacity::ModelCapacity| m.capacity.as_ref().and_then(|c| c.capacity_rps);
        match (figure(b), figure(r)) {
            (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-9 * y),
            (x, y) => assert_eq!(x, y),
        }
    }
}

/// `echo-bench suite --profile tiny ARGS --results DIR` with the system's temporary folder at
/// `tmp` (where the run makes its certificate), within a minute and a half.
fn tiny_suite_within(
    dir: &std::path::Path,
    tmp: &std::path::Path,
    args: &[&str],
) -> (std::process::Output, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_echo-bench"));
    command
        .args(["suite", "--profile", "tiny", "--duration", "300ms"])
        .args(["--warmup", "50ms"])
        .args(args)
        .arg("--results")
        .arg(dir)
        .env("TMPDIR", tmp);
    let output = support::output_within(&mut command, Duration::from_secs(90))
        .expect("the tiny suite ends within 90 s");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

/// The certificate folders (`echo-bench-tls-*`) left in `tmp`.
fn certificates_left(tmp: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("echo-bench-tls-"))
        })
        .collect()
}

/// The points of `run` measured on `server`, as (transport, ok).
fn points_of(run: &SuiteRun, server: &str) -> Vec<(echo_servers::Transport, bool)> {
    run.points
        .iter()
        .filter(|p| p.point.model.name() == server)
        .map(|p| (p.point.transport, p.ok()))
        .collect()
}

#[test]
fn an_outside_server_that_takes_a_certificate_is_measured_over_tls_with_one_made_for_the_run() {
    // One that takes none (from --servers FILE) stays TCP's alone, as before.
    let dir = temp_dir("suite-outside-tls");
    let tmp = temp_dir("suite-outside-tls-tmp");
    let bin = env!("CARGO_BIN_EXE_echo-bench");
    let secure =
        format!("ext-tls={bin} serve --model mio --listen {{addr}} --cert {{cert}} --key {{key}}");
    // The plain one from a servers file, where the same placeholder rule holds.
    let file = tmp.join("servers.toml");
    std::fs::write(
        &file,
        format!("[servers]\next-tcp = '{bin} serve --model mio --listen {{addr}}'\n"),
    )
    .unwrap();
    let (output, stderr) = tiny_suite_within(
        &dir,
        &tmp,
        &[
            "--models",
            "mio",
            "--transports",
            "tcp,tls",
            "--server",
            &secure,
            "--servers",
            file.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("has no point"), "{stderr}");
    let (run_dir, run) = the_run_in(&dir);
    use echo_servers::Transport::{Tcp, Tls};
    // The tiny profile: one ping-pong point per server and transport it serves.
    assert_eq!(
        points_of(&run, "ext-tls"),
        [(Tls, true)],
        "{:?}",
        run.points
    );
    assert_eq!(points_of(&run, "ext-tcp"), [(Tcp, true)]);
    let mut mio = points_of(&run, "mio");
    mio.sort_by_key(|(t, _)| t.to_string());
    assert_eq!(mio, [(Tcp, true), (Tls, true)]);
    let point = run
        .points
        .iter()
        .find(|p| p.point.model.name() == "ext-tls")
        .unwrap();
    let report = point.report.as_ref().unwrap();
    assert_eq!(report.config.target.transport(), Tls);
    assert!(
        report.is_clean() && report.messages > 0,
        "{:?}",
        report.errors
    );
    assert!(report.tls.is_some(), "a tls: point reports its handshakes");
    let listed = run.outside.iter().find(|o| o.name == "ext-tls").unwrap();
    assert_eq!(format!("ext-tls={}", listed.command), secure);
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(summary.contains("| ext-tls *(outside)* |"), "{summary}");
    assert_eq!(
        certificates_left(&tmp),
        Vec::<std::path::PathBuf>::new(),
        "the run's certificate goes with it"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn the_python_ssl_server_is_measured_at_the_tls_points() {
    let python = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !python {
        eprintln!("SKIP: python3 is not on PATH, so --python adds no py-ssl");
        return;
    }
    let dir = temp_dir("suite-py-ssl");
    let tmp = temp_dir("suite-py-ssl-tmp");
    let (output, stderr) = tiny_suite_within(
        &dir,
        &tmp,
        &["--python", "--models", "mio", "--transports", "tls"],
    );
    assert!(output.status.success(), "{stderr}");
    // The TCP-only Python servers are named as left out, py-ssl is not.
    assert!(
        stderr.contains("py-asyncio has no point in this selection"),
        "{stderr}"
    );
    assert!(!stderr.contains("py-ssl has no point"), "{stderr}");
    let (_, run) = the_run_in(&dir);
    assert_eq!(
        points_of(&run, "py-ssl"),
        [(echo_servers::Transport::Tls, true)],
        "{:?}",
        run.points.iter().map(|p| &p.failure).collect::<Vec<_>>()
    );
    assert!(
        run.points
            .iter()
            .all(|p| p.point.transport == echo_servers::Transport::Tls),
        "only TLS points"
    );
    let listed = run.outside.iter().find(|o| o.name == "py-ssl").unwrap();
    assert!(
        listed
            .command
            .ends_with("ssl_server.py {addr} {cert} {key}")
    );
    assert!(certificates_left(&tmp).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&tmp);
}
