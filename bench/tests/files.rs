//! No tool destroys what it did not write: a JSON object that is not a run is refused before
//! anything is touched, `report` replaces only its own files, a folder of someone else's files
//! survives every command pointed at it, the history store survives a torn write and
//! concurrent appends, an output is never emptied before its result exists, `merge` does not
//! double a report given twice, and nothing from a run.json becomes markup on its page.
//!
//! It is long because it holds one test per rule of how tools treat files, each with its own
//! fixture.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use echo_bench::history;
use echo_servers::Model;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/run.json");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("echo-bench-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Someone else's files, some of them named as echo-bench's outputs are.
const FOREIGN: &[(&str, &str)] = &[
    (
        "logo.svg",
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"8\" height=\"8\"><circle r=\"4\"/></svg>\n",
    ),
    ("README.md", "# My project\n\nNotes I wrote by hand.\n"),
    (
        "index.html",
        "<!DOCTYPE html>\n<html><body>my own page</body></html>\n",
    ),
    ("summary.md", "# My summary\n\nNot a suite's.\n"),
    ("notes.txt", "call the lab on Monday\n"),
    (
        "fairness.svg",
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><text>my drawing</text></svg>\n",
    ),
    ("latency.hlog", "my own log\n"),
    (
        "charts/logo.svg",
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><rect width=\"1\" height=\"1\"/></svg>\n",
    ),
];

fn plant(dir: &Path) {
    for (name, text) in FOREIGN {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn assert_intact(dir: &Path, after: &str) {
    for (name, text) in FOREIGN {
        let now = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("after {after}: {name} is gone ({e})"));
        assert_eq!(&now, text, "after {after}: {name} was changed");
    }
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = support::echo_bench(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// No stray temporary files (`.NAME.XXXXXX.tmp`, a redraw's private folder) under `dir`.
fn assert_no_leftovers(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "{} left behind", path.display());
        if path.is_dir() {
            assert_no_leftovers(&path);
        }
    }
}

#[test]
fn a_json_object_that_is_not_a_run_is_refused_before_anything_is_touched() {
    let dir = temp_dir("not-a-run");
    plant(&dir);
    std::fs::write(dir.join("run.json"), "{\"name\":\"x\"}\n").unwrap();
    let store = temp_dir("not-a-run-store");
    let d = dir.to_str().unwrap();
    let run_json = dir.join("run.json");
    let commands: Vec<Vec<&str>> = vec![
        vec!["report", d],
        vec!["compare", d, FIXTURE],
        vec!["compare", FIXTURE, run_json.to_str().unwrap()],
        vec!["stability", d, FIXTURE, "--no-store"],
        vec![
            "history",
            "append",
            run_json.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ],
    ];
    for args in commands {
        let (code, _, stderr) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("echo-bench: error: ") && stderr.contains("run.json"),
            "{args:?}: {stderr}"
        );
        assert_intact(&dir, &args.join(" "));
        assert_eq!(
            std::fs::read_to_string(&run_json).unwrap(),
            "{\"name\":\"x\"}\n"
        );
    }
    assert!(
        !store.join(history::STORE_FILE).exists(),
        "nothing stored from a non-run"
    );
    // An ab report is recognised by its fields likewise.
    let fake_ab = dir.join("ab.json");
    std::fs::write(&fake_ab, "{\"benchmarks\":[], \"name\":\"x\"}\n").unwrap();
    let (code, _, stderr) = run(&[
        "history",
        "append",
        fake_ab.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn every_stored_run_is_still_recognised() {
    let results = concat!(env!("CARGO_MANIFEST_DIR"), "/../results");
    let mut runs: Vec<String> = std::fs::read_dir(results)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path().join("run.json");
            path.is_file().then(|| path.to_string_lossy().into_owned())
        })
        .collect();
    runs.sort();
    assert!(runs.len() >= 2, "{runs:?}");
    for run in &runs {
        let text = std::fs::read_to_string(run).unwrap();
        if let Err(why) = echo_bench::suite::SuiteRun::from_json(&text) {
            panic!("{run}: {why}");
        }
    }
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    echo_bench::suite::SuiteRun::from_json(&text).expect("the fixture");
}

#[test]
fn report_replaces_only_its_own_files_and_says_which_it_left_alone() {
    let dir = temp_dir("report-own");
    plant(&dir);
    std::fs::copy(FIXTURE, dir.join("run.json")).unwrap();
    let d = dir.to_str().unwrap();
    let (code, _, stderr) = run(&["report", d]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_intact(&dir, "report");
    for name in ["README.md", "index.html", "summary.md"] {
        assert!(
            stderr.contains(&format!("{name} alone")),
            "{name} not said: {stderr}"
        );
    }
    let charts: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".svg") && n != "logo.svg" && n != "fairness.svg")
        .collect();
    assert!(
        !charts.is_empty(),
        "the charts are drawn beside the foreign files"
    );
    assert_no_leftovers(&dir);

    // Once the foreign files are moved away, the report is whole, marked as echo-bench's, and
    // a second report replaces its own files.
    for name in [
        "README.md",
        "index.html",
        "summary.md",
        "fairness.svg",
        "latency.hlog",
    ] {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    for round in 0..2 {
        let (code, _, stderr) = run(&["report", d]);
        assert_eq!(code, Some(0), "round {round}: {stderr}");
        for name in ["README.md", "index.html", "summary.md"] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(
                text.lines()
                    .take(2)
                    .any(|l| l == echo_bench::render::markdown::MARK),
                "{name}: {text}"
            );
        }
    }
    assert!(dir.join("logo.svg").is_file() && dir.join("notes.txt").is_file());
    assert_no_leftovers(&dir);
    std::fs::remove_dir_all(&dir).ok();
}

/// Two agents' reports of a model, written by `echo-bench run --json` into `dir`.
fn two_reports(dir: &Path) -> (PathBuf, PathBuf) {
    let server = support::start(Model::Mio);
    let target = server.local_addr().to_string();
    let paths = (dir.join("agent-a.json"), dir.join("agent-b.json"));
    for path in [&paths.0, &paths.1] {
        let (code, _, stderr) = run(&[
            "run",
            "--target",
            &target,
            "-c",
            "2",
            "-d",
            "200ms",
            "--warmup",
            "0s",
            "-q",
            "--json",
            path.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{stderr}");
    }
    server.shutdown().unwrap();
    paths
}

#[test]
fn a_folder_with_someone_elses_files_survives_every_command_pointed_at_it() {
    let dir = temp_dir("foreign");
    plant(&dir);
    // A run of echo-bench's among them, so `report` has work to do there.
    std::fs::copy(FIXTURE, dir.join("run.json")).unwrap();
    let d = dir.to_str().unwrap();
    let inputs = temp_dir("foreign-inputs");
    let (a, b) = two_reports(&inputs);
    let server = support::start(Model::Mio);
    let target = server.local_addr().to_string();
    let out = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let commands: Vec<Vec<String>> = vec![
        vec!["report".into(), d.into()],
        vec!["compare".into(), d.into(), FIXTURE.into()],
        vec![
            "stability".into(),
            d.into(),
            FIXTURE.into(),
            "--no-store".into(),
        ],
        vec![
            "compare".into(),
            FIXTURE.into(),
            FIXTURE.into(),
            "--json".into(),
            out("compare.json"),
            "--markdown".into(),
            out("compare.md"),
        ],
        vec![
            "stability".into(),
            FIXTURE.into(),
            FIXTURE.into(),
            "--results".into(),
            d.into(),
        ],
        vec![
            "history".into(),
            "append".into(),
            FIXTURE.into(),
            "--store".into(),
            d.into(),
            "--commit".into(),
            "abc1234".into(),
        ],
        vec![
            "history".into(),
            "report".into(),
            "--store".into(),
            d.into(),
            "--json".into(),
            out("changes.json"),
        ],
        vec![
            "conformance".into(),
            "--target".into(),
            target.clone(),
            "--checks".into(),
            "basic_echo".into(),
            "--json".into(),
            out("conformance.json"),
        ],
        vec![
            "merge".into(),
            a.to_string_lossy().into_owned(),
            b.to_string_lossy().into_owned(),
            "-q".into(),
            "--json".into(),
            out("merged.json"),
        ],
        vec![
            "merge".into(),
            a.to_string_lossy().into_owned(),
            a.to_string_lossy().into_owned(),
            "--json".into(),
            out("merged-twice.json"),
        ],
    ];
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = run(&args);
        assert!(code.is_some_and(|c| c <= 2), "{args:?}: {code:?} {stderr}");
        assert_intact(&dir, &args.join(" "));
    }
    server.shutdown().unwrap();
    for made in [
        "compare.json",
        "compare.md",
        "changes.json",
        "conformance.json",
        "merged.json",
    ] {
        assert!(dir.join(made).is_file(), "{made} not written");
    }
    assert!(!dir.join("merged-twice.json").exists());
    assert_no_leftovers(&dir);
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&inputs).ok();
}

#[test]
fn a_torn_last_line_in_the_history_is_skipped_with_a_warning_and_kept() {
    let store = temp_dir("torn");
    let s = store.to_str().unwrap();
    let append = |commit: &str| {
        run(&[
            "history", "append", FIXTURE, "--store", s, "--commit", commit,
        ])
    };
    let (code, _, stderr) = append("aaa1111");
    assert_eq!(code, Some(0), "{stderr}");
    // A write cut short: half a record, no newline.
    let file = store.join(history::STORE_FILE);
    let mut torn = std::fs::read(&file).unwrap();
    torn.extend_from_slice(b"{\"commit\":\"bbb2222\",\"date\":\"2026-");
    std::fs::write(&file, &torn).unwrap();
    let (code, _, stderr) = append("ccc3333");
    assert_eq!(code, Some(0), "append after a torn line: {stderr}");
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(&torn), "every existing byte kept");
    assert!(bytes.ends_with(b"\n"));
    let (code, stdout, stderr) = run(&["history", "report", "--store", s]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("2 commits"), "{stdout}");
    assert!(
        stderr.contains("warning") && stderr.contains("line 2"),
        "{stderr}"
    );
    let commits: Vec<String> = history::load(&store)
        .unwrap()
        .into_iter()
        .map(|r| r.commit)
        .collect();
    assert_eq!(commits, ["aaa1111", "ccc3333"]);
    assert!(std::fs::read(&file).unwrap().starts_with(&torn));
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn concurrent_appends_all_land_as_whole_lines() {
    let store = temp_dir("concurrent");
    let s = store.to_str().unwrap();
    let children: Vec<_> = (0..8)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_echo-bench"))
                .args(["history", "append", FIXTURE, "--store", s, "--commit"])
                .arg(format!("c{i}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut commits: Vec<String> = history::load(&store)
        .unwrap()
        .into_iter()
        .map(|r| r.commit)
        .collect();
    commits.sort();
    assert_eq!(commits, (0..8).map(|i| format!("c{i}")).collect::<Vec<_>>());
    let text = std::fs::read_to_string(store.join(history::STORE_FILE)).unwrap();
    assert_eq!(text.lines().count(), 8, "one whole line each");
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn conformance_does_not_empty_its_json_output_before_the_result_exists() {
    let dir = temp_dir("conformance-json");
    let json = dir.join("conformance.json");
    std::fs::write(&json, "{\"an\": \"earlier result\"}\n").unwrap();
    // A server that accepts and never answers: the check runs until its timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo-bench"))
        .args(["conformance", "--target", &target, "--checks", "basic_echo"])
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Past the reachability probe and into the check: its second connection.
    let deadline = Instant::now() + Duration::from_secs(20);
    while accepted.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        accepted.load(Ordering::SeqCst) >= 2,
        "the check never connected"
    );
    std::thread::sleep(Duration::from_millis(100));
    let during = std::fs::read_to_string(&json).unwrap();
    // The run is cut short, as a killed CI job is.
    child.kill().unwrap();
    let _ = child.wait();
    let stdout = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(during, "{\"an\": \"earlier result\"}\n", "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&json).unwrap(),
        "{\"an\": \"earlier result\"}\n"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn merge_refuses_a_report_given_twice_and_counts_that_overflow() {
    let dir = temp_dir("merge");
    let (a, b) = two_reports(&dir);
    let copy = dir.join("copy-of-a.json");
    std::fs::copy(&a, &copy).unwrap();
    let merged = dir.join("merged.json");
    for twice in [&a, &copy] {
        let (code, _, stderr) = run(&[
            "merge",
            a.to_str().unwrap(),
            twice.to_str().unwrap(),
            "--json",
            merged.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("same report"), "{stderr}");
        assert!(!merged.exists());
    }
    // Counts no real report holds: their sum would wrap.
    for path in [&a, &b] {
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        value["messages"] = serde_json::json!(u64::MAX - 1);
        std::fs::write(path, serde_json::to_vec(&value).unwrap()).unwrap();
    }
    let (code, stdout, stderr) = run(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--json",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("overflow"), "{stderr}");
    assert!(!merged.exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn nothing_from_a_hostile_run_json_becomes_markup_on_its_page_or_charts() {
    let dir = temp_dir("hostile");
    let mut run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(FIXTURE).unwrap()).unwrap();
    run["meta"]["cpu_model"] = "<script>alert(1)</script>".into();
    run["meta"]["host"] = "<img src=x onerror=alert(2)>".into();
    run["meta"]["kernel"] = "<iframe src=javascript:alert(3)></iframe>".into();
    run["command"] = "</code><script>alert(4)</script>".into();
    run["skipped"] =
        serde_json::json!(["[click](javascript:alert(5)) <b onmouseover=alert(6)>x</b>"]);
    run["outside"] = serde_json::json!([{
        "name": "<img src=y onerror=alert(7)>",
        "command": "<svg onload=alert(8)>"
    }]);
    let points = run["points"].as_array_mut().unwrap();
    points[0]["point"]["model"] = "<img src=z onerror=alert(9)>".into();
    points[1]["status"] = "failed".into();
    points[1]["failure"] = "<script>alert(10)</script>".into();
    // A server the run does not list as outside is refused, not taken for one.
    std::fs::write(dir.join("run.json"), serde_json::to_vec(&run).unwrap()).unwrap();
    let (code, _, stderr) = self::run(&["report", dir.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("neither a model"), "{stderr}");
    assert!(
        !dir.join("index.html").exists(),
        "nothing drawn from a refused run"
    );
    // Listed, it is drawn, its name as text.
    run["outside"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "<img src=z onerror=alert(9)>",
            "command": "<svg onload=alert(11)>"
        }));
    std::fs::write(dir.join("run.json"), serde_json::to_vec(&run).unwrap()).unwrap();
    let (code, _, stderr) = self::run(&["report", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    // The page's own two scripts, and no other.
    assert_eq!(html.matches("<script").count(), 2, "{html}");
    for markup in [
        "<img",
        "<iframe",
        "<b ",
        "<svg onload",
        "javascript:alert(5)\"",
    ] {
        assert!(!html.contains(markup), "{markup} reached the page");
    }
    assert!(!html.contains("href=\"javascript"), "a link from run.json");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "shown as text"
    );
    let mut charts = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "svg") {
            continue;
        }
        charts += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let doc =
            roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for node in doc.descendants().filter(|n| n.is_element()) {
            let name = node.tag_name().name();
            assert!(
                !["script", "img", "iframe", "foreignObject", "a"].contains(&name),
                "{}: <{name}>",
                path.display()
            );
            for attribute in node.attributes() {
                assert!(
                    !attribute.name().starts_with("on"),
                    "{}: {}",
                    path.display(),
                    attribute.name()
                );
            }
        }
    }
    assert!(charts > 0, "the hostile names reach the charts too");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_output_that_cannot_be_written_is_refused_before_any_work() {
    let dir = temp_dir("unwritable");
    let file = dir.join("notes.txt");
    std::fs::write(&file, "mine\n").unwrap();
    let below = file.join("results");
    let started = Instant::now();
    let mut suite = Command::new(env!("CARGO_BIN_EXE_echo-bench"))
        .args(["suite", "--models", "mio", "--results"])
        .arg(&below)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = loop {
        if let Some(status) = suite.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > Duration::from_secs(20) {
            suite.kill().unwrap();
            let _ = suite.wait();
            panic!("the suite ran before finding that --results cannot be written");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(2));
    let (code, _, stderr) = run(&[
        "history",
        "append",
        FIXTURE,
        "--store",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    for args in [
        vec![
            "stability",
            FIXTURE,
            FIXTURE,
            "--results",
            below.to_str().unwrap(),
        ],
        vec!["compare", FIXTURE, FIXTURE, "--json", dir.to_str().unwrap()],
        vec![
            "history",
            "report",
            "--store",
            dir.to_str().unwrap(),
            "--json",
            below.to_str().unwrap(),
        ],
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "{args:?}: work was done first: {stdout}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine\n");
    std::fs::remove_dir_all(&dir).ok();
}

/// The socket path `conformance` makes up for a Unix server lies in a fresh folder only this
/// user may enter, with a name no one can guess: nobody can pre-create it, point it elsewhere
/// with a symlink, or connect to the server under test. (It was `/tmp/echo-check-PID-N.sock`.)
#[test]
fn a_made_up_socket_path_lies_in_a_private_folder() {
    let dir = temp_dir("socket-path");
    let seen = dir.join("seen");
    let script = dir.join("server.sh");
    std::fs::write(
        &script,
        format!(
            "printf '%s\\n' \"$1\" > '{0}'\nstat -c '%a %u' \"$(dirname \"$1\")\" >> '{0}'\n\
             exec '{1}' serve --model mio --listen \"unix:$1\"\n",
            seen.display(),
            env!("CARGO_BIN_EXE_echo-bench"),
        ),
    )
    .unwrap();
    let command = format!("sh {} {{path}}", script.display());
    let mut conformance = Command::new(env!("CARGO_BIN_EXE_echo-bench"));
    conformance.args([
        "conformance",
        "--transport",
        "unix",
        "--checks",
        "basic_echo",
        "--command",
        &command,
    ]);
    let out = support::output_within(&mut conformance, Duration::from_secs(60))
        .expect("conformance finishes within 60 s");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let seen = std::fs::read_to_string(&seen).unwrap();
    let mut lines = seen.lines();
    let path = PathBuf::from(lines.next().expect("the path"));
    let folder = path.parent().expect("a socket path has a folder");
    assert_ne!(
        folder,
        std::env::temp_dir(),
        "the socket sat in the shared temporary folder"
    );
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        lines.next(),
        Some(format!("700 {uid}").as_str()),
        "{} was not this user's private folder",
        folder.display()
    );
    assert!(!folder.exists(), "{} outlived the check", folder.display());
    let _ = std::fs::remove_dir_all(&dir);
}
