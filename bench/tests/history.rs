//! `echo-bench history`: a store of one record per commit, change points, trend charts, and
//! the exit code CI acts on.

mod support;

use std::collections::BTreeMap;

use echo_bench::history::{self, Figure, Record};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("echo-bench-history-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_suite_run_is_appended_per_commit_and_reported() {
    let store = temp_dir("append");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/run.json");
    for commit in ["aaa1111", "bbb2222", "aaa1111"] {
        let out = support::echo_bench(&[
            "history",
            "append",
            fixture,
            "--store",
            store.to_str().unwrap(),
            "--commit",
            commit,
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let records = history::load(&store).unwrap();
    assert_eq!(records.len(), 2, "one record per commit");
    assert!(!records[0].figures.is_empty());
    let out = support::echo_bench(&["history", "report", "--store", store.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("2 commits") && stdout.contains("none"),
        "{stdout}"
    );
    let charts = std::fs::read_dir(store.join("charts")).unwrap().count();
    assert_eq!(
        charts,
        history::series(&records).len(),
        "a trend chart per series"
    );
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn a_regression_at_the_newest_change_point_fails_the_report() {
    let store = temp_dir("step");
    for i in 0..60 {
        // 2% of deterministic wobble around 100, then 8% less from commit 40 on.
        let level = if i < 40 { 100.0 } else { 92.0 };
        let value = level * (1.0 + 0.01 * ((i * 37 % 11) as f64 / 5.0 - 1.0));
        let record = Record {
            commit: format!("c{i:02}"),
            date: String::new(),
            machine: "test".into(),
            build: "test".into(),
            source: "synthetic".into(),
            figures: BTreeMap::from([(
                "ping-pong/mio/1 throughput".to_owned(),
                Figure {
                    value,
                    higher_is_better: true,
                },
            )]),
        };
        history::append(&store, record).unwrap();
    }
    let json = store.join("changes.json");
    let out = support::echo_bench(&[
        "history",
        "report",
        "--store",
        store.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("(commit c40)") && stdout.contains("regression"),
        "{stdout}"
    );
    assert!(stderr.contains("ping-pong/mio/1 throughput"), "{stderr}");
    let changes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(changes[0]["index"], 40);
    // The chart marks it: a crossed marker is two strokes, drawn for the change point.
    let chart =
        std::fs::read_to_string(store.join("charts/ping-pong_mio_1_throughput.svg")).unwrap();
    assert!(roxmltree::Document::parse(&chart).is_ok());
    // A threshold above the step lets it pass.
    let out = support::echo_bench(&[
        "history",
        "report",
        "--store",
        store.to_str().unwrap(),
        "--threshold",
        "20",
    ]);
    assert_eq!(out.status.code(), Some(0));
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn bad_input_to_history_is_a_usage_error() {
    let store = temp_dir("bad");
    let not_json = store.join("x.json");
    std::fs::write(&not_json, "{}").unwrap();
    for args in [
        vec![
            "history",
            "append",
            not_json.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ],
        vec!["history", "report", "--store", store.to_str().unwrap()],
        vec![
            "history",
            "report",
            "--store",
            store.to_str().unwrap(),
            "--p",
            "2",
        ],
    ] {
        let out = support::echo_bench(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(&store).ok();
}
