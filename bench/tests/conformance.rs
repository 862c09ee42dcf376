//! `echo-bench conformance` against servers outside this project: the tutorial servers shipped
//! in servers/python/ pass; deliberately faulty ones (tests/fixtures/faulty/) fail with a reason
//! a tutorial reader understands; a running server is checked at its address.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use echo_servers::Model;

fn python() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIP: python3 is not on PATH");
    }
    found
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `echo-bench conformance --command 'python3 SCRIPT {addr}' ARGS...`.
fn conformance(script: &str, args: &[&str]) -> (Output, String) {
    let script = root().join(script);
    let command = format!("python3 {} {{addr}}", script.display());
    let mut all = vec!["conformance", "--command", command.as_str()];
    all.extend_from_slice(args);
    let output = support::echo_bench(&all);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

#[test]
fn the_shipped_python_servers_pass_every_check() {
    if !python() {
        return;
    }
    for (script, args) in [
        (
            "servers/python/blocking_server.py",
            &["--expect-serial"][..],
        ),
        ("servers/python/threading_server.py", &[][..]),
        ("servers/python/selectors_server.py", &[][..]),
        ("servers/python/asyncio_server.py", &[][..]),
    ] {
        let (output, stdout) = conformance(script, args);
        assert_eq!(output.status.code(), Some(0), "{script}:\n{stdout}");
        assert!(stdout.contains(" 0 failed"), "{script}:\n{stdout}");
        let lines = stdout.lines().filter(|l| l.starts_with("PASS")).count();
        assert!(lines >= 11, "{script}: every check reported:\n{stdout}");
    }
}

/// The tutorial's SSL server (`ssl_server.py`) passes every stream check over `tls:`, with a
/// certificate made for this run.
#[test]
fn the_shipped_python_ssl_server_passes_every_check_over_tls() {
    if !python() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let script = root().join("servers/python/ssl_server.py");
    let command = format!(
        "python3 {} {{addr}} {} {}",
        script.display(),
        cert.display(),
        key.display()
    );
    let output = support::echo_bench(&[
        "conformance",
        "--command",
        &command,
        "--transport",
        "tls",
        "--ca",
        cert.to_str().unwrap(),
        "--tls-versions",
        "1.2,1.3",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    let passed = stdout.lines().filter(|l| l.starts_with("PASS")).count();
    assert!(passed >= 12, "every check reported:\n{stdout}");
}

/// A command that takes `{cert}` and `{key}` is given a certificate and key made for the run,
/// which the checks' client verifies the server by (a server given other files fails every
/// check), and whose folder is gone afterwards.
#[test]
fn a_command_taking_cert_and_key_is_checked_over_tls_with_a_certificate_made_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_echo-bench");
    let checks = "basic_echo,binary_data_16_kib";
    let run = |command: &str| {
        let output = support::output_within(
            Command::new(bin)
                .args(["conformance", "--transport", "tls", "--checks", checks])
                .args(["--command", command])
                .env("TMPDIR", tmp.path()),
            Duration::from_secs(120),
        )
        .expect("conformance finishes within 2 minutes");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, stdout) = run(&format!(
        "{bin} serve --model mio --listen {{addr}} --cert {{cert}} --key {{key}}"
    ));
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("PASS")).count(),
        2,
        "{stdout}"
    );
    // The client trusts the run's certificate only: a server that makes one of its own (the
    // shell takes the files' paths as a comment) fails.
    let (code, stdout) = run(&format!(
        "{bin} serve --model mio --listen {{addr}} # {{cert}} {{key}}"
    ));
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("FAIL")).count(),
        2,
        "{stdout}"
    );
    // A usage error exits before any certificate is made (an exit drops nothing).
    let output = support::output_within(
        Command::new(bin)
            .args([
                "conformance",
                "--transport",
                "tls",
                "--json",
                "/no/such/dir/x.json",
            ])
            .args(["--command", "srv {addr} {cert} {key}"])
            .env("TMPDIR", tmp.path()),
        Duration::from_secs(60),
    )
    .expect("a usage error exits at once");
    assert_eq!(output.status.code(), Some(2));
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn faulty_servers_fail_with_the_pitfall_named() {
    if !python() {
        return;
    }
    for (script, check, reason) in [
        (
            "naive.py",
            "sixteen_mib_while_reading_concurrently",
            "one recv() per connection",
        ),
        ("naive.py", "basic_echo", "loop until recv() returns b''"),
        (
            "corrupting.py",
            "binary_data_16_kib",
            "differs from what was sent at byte 999",
        ),
        (
            "unbounded.py",
            "non_reading_client_keeps_server_memory_bounded",
            "without bound",
        ),
        (
            "spinning.py",
            "descriptor_exhaustion_is_survived_without_spinning",
            "busy loop on EMFILE",
        ),
    ] {
        let path = format!("bench/tests/fixtures/faulty/{script}");
        let (output, stdout) = conformance(&path, &["--checks", check]);
        assert_eq!(output.status.code(), Some(1), "{script} {check}:\n{stdout}");
        let line = stdout
            .lines()
            .find(|l| l.starts_with("FAIL") && l.contains(check))
            .unwrap_or_else(|| panic!("{script}: no FAIL line for {check}:\n{stdout}"));
        assert!(line.contains(reason), "{script}: {line}");
    }
}

#[test]
fn a_running_server_is_checked_at_its_address_and_what_needs_a_start_is_skipped() {
    let server = support::start(Model::Mio);
    let addr = server.local_addr().to_string();
    let dir = std::env::temp_dir().join(format!("echo-bench-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("c.json");
    let output = support::echo_bench(&[
        "conformance",
        "--target",
        &addr,
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let skipped: Vec<&str> = stdout.lines().filter(|l| l.starts_with("SKIP")).collect();
    assert_eq!(
        skipped.len(),
        2,
        "the two checks that start the server: {stdout}"
    );
    assert!(
        skipped.iter().all(|l| l.contains("give --command")),
        "{stdout}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(
        checks.len(),
        echo_loadgen::conformance::checks_for(echo_servers::Transport::Tcp).count()
    );
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{report}");
    server.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn conformance_usage_errors_exit_2_with_one_line() {
    for args in [
        vec!["conformance"],
        vec![
            "conformance",
            "--target",
            "127.0.0.1:1",
            "--command",
            "x {addr}",
        ],
        vec![
            "conformance",
            "--command",
            "x {addr}",
            "--checks",
            "no_such_check",
        ],
        vec!["conformance", "--target", "not an address"],
    ] {
        let output = support::echo_bench(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
    // Nothing listening: one line, exit 1.
    let output = support::echo_bench(&["conformance", "--target", "127.0.0.1:1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot connect to 127.0.0.1:1"));
}

#[test]
fn an_outside_server_is_measured_beside_the_models_and_marked() {
    if !python() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("echo-bench-outside-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = root().join("servers/python/asyncio_server.py");
    let server = format!("py=python3 {} {{addr}}", script.display());
    let output = Command::new(env!("CARGO_BIN_EXE_echo-bench"))
        .args([
            "suite",
            "--profile",
            "tiny",
            "--models",
            "tokio",
            "--server",
            &server,
        ])
        .arg("--results")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let run_dir = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("run.json").is_file())
        .expect("a run folder");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["outside"][0]["name"], "py", "{}", run["outside"]);
    let measured: Vec<&str> = run["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "ok")
        .map(|p| p["point"]["model"].as_str().unwrap())
        .collect();
    assert!(
        measured.contains(&"py") && measured.contains(&"tokio"),
        "{measured:?}"
    );
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(summary.contains("| py *(outside)* |"), "{summary}");
    let advice = &summary[summary.find("## Which model to pick").unwrap()..];
    assert!(advice.contains("py"), "{advice}");
    // A stored run with an outside server redraws without its command.
    let redrawn = support::echo_bench(&["report", run_dir.to_str().unwrap()]);
    assert_eq!(redrawn.status.code(), Some(0));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn outside_servers_from_a_file_and_bad_names_are_checked_before_the_run() {
    let dir = std::env::temp_dir().join(format!("echo-bench-servers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("servers.toml");
    std::fs::write(&file, "[servers]\ntokio = \"python3 x.py {addr}\"\n").unwrap();
    let bin = env!("CARGO_BIN_EXE_echo-bench");
    for args in [
        vec!["suite", "--server", "no-equals-sign"],
        vec!["suite", "--server", "mio=python3 x.py {addr}"],
        vec!["suite", "--servers", file.to_str().unwrap()],
        vec!["suite", "--servers", "/no/such/servers.toml"],
        // A command that takes {cert} and {key} serves tls: only.
        vec![
            "conformance",
            "--transport",
            "tcp",
            "--command",
            "python3 x.py {addr} {cert} {key}",
        ],
        vec![
            "ab",
            "--base",
            bin,
            "--head",
            bin,
            "--benchmarks",
            "ping-pong/nobody/1",
        ],
    ] {
        let output = support::echo_bench(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `echo-bench conformance --transport T --command '<echo-server> --model M --listen {addr}'`.
fn model_on(model: Model, transport: &str) -> (Output, String) {
    let command = format!(
        "{} serve --model {} --listen {{addr}}",
        env!("CARGO_BIN_EXE_echo-bench"),
        model.name()
    );
    let output = support::echo_bench(&[
        "conformance",
        "--transport",
        transport,
        "--command",
        &command,
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

#[test]
fn a_model_passes_the_stream_checks_over_a_unix_socket_and_the_datagram_checks_over_udp() {
    let (output, stdout) = model_on(Model::Tokio, "unix");
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let stream = echo_loadgen::conformance::checks_for(echo_servers::Transport::Unix).count();
    assert!(
        stdout.contains(&format!("{stream} passed, 0 failed")),
        "{stdout}"
    );
    let (output, stdout) = model_on(Model::Blocking, "udp");
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let datagram = echo_loadgen::conformance::checks_for(echo_servers::Transport::Udp).count();
    assert_eq!(datagram, 6);
    assert!(stdout.contains("6 passed, 0 failed"), "{stdout}");
}

#[test]
fn a_udp_server_that_truncates_fails_with_the_pitfall_named() {
    if !python() {
        return;
    }
    let (output, stdout) = conformance(
        "bench/tests/fixtures/faulty/udp_small_buffer.py",
        &["--transport", "udp"],
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("datagrams_from_1_byte"))
        .unwrap_or_else(|| panic!("no FAIL line for the sizes check:\n{stdout}"));
    assert!(line.contains("came back as 1024 bytes"), "{line}");
    assert!(line.contains("recvfrom(1024)"), "{line}");
}

#[test]
fn list_names_every_check_with_its_transports() {
    let output = support::echo_bench(&["conformance", "--list"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), echo_loadgen::conformance::CHECKS.len());
    let datagram: Vec<&&str> = lines.iter().filter(|l| l.contains(" udp ")).collect();
    assert_eq!(datagram.len(), 6, "{stdout}");
    assert!(
        lines
            .iter()
            .filter(|l| !l.contains(" udp "))
            .all(|l| l.contains(" tcp,unix,tls ")),
        "{stdout}"
    );
}

#[test]
fn running_servers_on_a_unix_socket_and_on_udp_are_checked_at_their_address() {
    use echo_servers::{Endpoint, ServerConfig};
    let path = std::env::temp_dir().join(format!("echo-bench-conf-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let unix = Model::Tokio
        .server()
        .start(&ServerConfig::at(Endpoint::Unix(path)))
        .unwrap();
    let udp = Model::Mio
        .server()
        .start(&ServerConfig::at(Endpoint::Udp(
            "127.0.0.1:0".parse().unwrap(),
        )))
        .unwrap();
    for (server, passed, skipped) in [(&unix, 12, 2), (&udp, 5, 1)] {
        let target = server.endpoint().to_string();
        let output = support::echo_bench(&["conformance", "--target", &target]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{target}: {stdout}");
        assert!(
            stdout.contains(&format!("{passed} passed, 0 failed, {skipped} skipped")),
            "{target}: {stdout}"
        );
    }
    unix.shutdown().unwrap();
    udp.shutdown().unwrap();
}
