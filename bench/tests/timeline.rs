//! Latency over time: `run --interval` prints a line per interval, the report and the
//! interval log hold every interval, and `--metrics-listen` serves the live figures, scraped
//! here while the run goes.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use echo_servers::Model;

/// One scrape of `addr`'s `/metrics`: the whole response, or `None` if it did not answer.
fn scrape(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// The value of the sample `name` in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn intervals_print_are_stored_logged_and_scraped_while_the_run_goes() {
    let server = support::start(Model::Mio);
    let dir = tempfile::tempdir().unwrap();
    let (json, hlog) = (dir.path().join("run.json"), dir.path().join("run.hlog"));
    let timeline = dir.path().join("timeline.svg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo-bench"))
        .args(["run", "--target", &server.local_addr().to_string()])
        .args([
            "--workload",
            "rate",
            "--rate",
            "2000",
            "-c",
            "4",
            "--threads",
            "1",
        ])
        .args([
            "--duration",
            "1500ms",
            "--warmup",
            "100ms",
            "--interval",
            "200ms",
        ])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .arg("--json")
        .arg(&json)
        .arg("--hlog")
        .arg(&hlog)
        .arg("--timeline")
        .arg(&timeline)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("echo-bench: metrics at http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics line: {first:?}"))
        .to_owned();
    // Scrape until an interval has closed (the run lasts 1.6 s; give it 10).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut scraped = None;
    while Instant::now() < deadline {
        if let Some(response) = scrape(&addr)
            && sample(&response, "echo_bench_intervals_total").is_some_and(|n| n >= 1.0)
        {
            scraped = Some(response);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let response = scraped.expect("a scrape during the run saw a closed interval");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("Content-Type: application/openmetrics-text"),
        "{response}"
    );
    assert!(response.ends_with("# EOF\n"), "{response}");
    assert!(sample(&response, "echo_bench_messages_total").is_some_and(|n| n > 0.0));
    assert!(sample(&response, "echo_bench_interval_latency_p99_seconds").is_some_and(|s| s > 0.0));

    let status =
        echo_loadgen::child::wait_until(&mut child, Instant::now() + Duration::from_secs(20))
            .unwrap()
            .expect("the run ended");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(status.success(), "{stdout}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" msg/s  p50 "))
        .collect();
    assert!(
        (7..=8).contains(&lines.len()),
        "one line per 200 ms of 1.5 s: {stdout}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let intervals = report["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), lines.len());
    let summed: u64 = intervals
        .iter()
        .map(|i| i["messages"].as_u64().unwrap())
        .sum();
    assert_eq!(summed, report["messages"].as_u64().unwrap());
    assert!((intervals[1]["start_s"].as_f64().unwrap() - 0.2).abs() < 1e-9);

    let log = std::fs::read_to_string(&hlog).unwrap();
    let rows: Vec<&str> = log
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('"'))
        .collect();
    assert_eq!(rows.len(), intervals.len());
    let mut logged = 0;
    for row in rows {
        let histogram = row.split(',').nth(3).unwrap();
        logged += echo_loadgen::stats::decode_histogram(histogram)
            .unwrap()
            .len();
    }
    assert_eq!(logged, summed);

    let svg = std::fs::read_to_string(&timeline).unwrap();
    assert!(echo_bench::render::charts::drawn_by_us(&svg));
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(
        doc.descendants()
            .any(|n| n.text().is_some_and(|t| t.contains("p99")))
    );
}

#[test]
fn a_metrics_address_that_cannot_be_bound_is_a_usage_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = support::echo_bench(&[
        "run",
        "--target",
        "127.0.0.1:9",
        "--metrics-listen",
        &addr,
        "--duration",
        "100ms",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--metrics-listen"), "{stderr}");
}
