//! One trial: a build's server and its load generator, started, waited for and read.

use super::*;

/// How long the client may take beyond its warm-up and measurement before it is killed.
pub(super) const CLIENT_GRACE: Duration = Duration::from_secs(30);

/// A trial under way: its server and its load generator, both of one build.
pub(super) struct Running {
    server: ServerProcess,
    client: Result<Child, String>,
    json: PathBuf,
    /// The report's private folder, removed when the trial is done.
    _folder: echo_loadgen::files::PrivateDir,
    deadline: Instant,
    at_s: f64,
}

pub(super) fn invalid_sample(why: String, at_s: f64) -> Sample {
    Sample {
        invalid: Some(why),
        at_s,
        ..Sample::default()
    }
}

/// Starts one trial: a fresh server of `build`, then `build`'s own load generator against it.
pub(super) fn start_trial(
    options: &AbOptions,
    build: &Build,
    spec: &BenchmarkSpec,
    started: Instant,
) -> Result<Running, Sample> {
    let at_s = started.elapsed().as_secs_f64();
    let model = spec.model.clone();
    let launcher = Launcher {
        program: build.binary.clone(),
        args: vec!["serve".into()],
        extra: vec![(model.clone(), build.server_args.clone())],
    };
    let server = launcher
        .start(model, options.pinning.server_cpus.as_deref())
        .map_err(|why| invalid_sample(format!("server: {why}"), at_s))?;
    // The load generator's report goes into a fresh private folder: a name in the shared
    // temporary directory could be guessed and pre-created, or be a symlink to write through.
    let folder = echo_loadgen::files::private_dir("echo-bench-ab")
        .map_err(|e| invalid_sample(format!("client: no folder for its report: {e}"), at_s))?;
    let json = folder.path().join("report.json");
    let mut client = Command::new(&build.binary);
    client
        .arg("run")
        .args(["--target", &server.endpoint().to_string()])
        .args(["--workload", spec.workload.name()])
        .args(["--connections", &spec.connections.to_string()])
        .args(["--payload", &spec.payload.to_string()])
        .args(["--duration", &format!("{}ms", options.trial.as_millis())])
        .args(["--warmup", &format!("{}ms", options.warmup.as_millis())])
        .args(["--server-pid", &server.pid().to_string()])
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(rate) = spec.rate {
        client.args(["--rate", &rate.to_string()]);
    }
    if let Some(cpus) = &options.pinning.client_cpus {
        let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
        client
            .args(["--client-cpus", &list.join(",")])
            .args(["--threads", &cpus.len().to_string()]);
    }
    let client = echo_loadgen::child::spawn(&mut client)
        .map_err(|e| format!("cannot run {}: {e}", build.binary.display()));
    Ok(Running {
        server,
        client,
        json,
        _folder: folder,
        deadline: Instant::now() + options.warmup + options.trial + CLIENT_GRACE,
        at_s,
    })
}

impl Running {
    /// Waits for the load generator, stops the server, and reads the trial's figures.
    pub(super) fn finish(self, build: &mut Build) -> Sample {
        let outcome = self
            .client
            .and_then(|child| wait_until(child, self.deadline));
        let stopped = self.server.stop();
        let report = std::fs::read_to_string(&self.json)
            .ok()
            .and_then(|text| serde_json::from_str::<Report>(&text).ok());
        let _ = std::fs::remove_file(&self.json);
        let Some(report) = report else {
            let why = outcome
                .err()
                .unwrap_or_else(|| "it wrote no JSON report".into());
            return invalid_sample(format!("client: {why}"), self.at_s);
        };
        if build.meta.is_none() {
            build.meta = Some(report.meta.clone());
        }
        let mut sample = Sample {
            metrics: Metric::ALL
                .iter()
                .filter_map(|&m| Some((m, m.of(&report)?)))
                .collect(),
            messages: report.messages,
            errors: report.errors.total(),
            client_utilisation: report.client.utilisation,
            server_cores: report.server.as_ref().map_or(0.0, |s| s.cpu_cores),
            invalid: None,
            at_s: self.at_s,
            counts: Vec::new(),
        };
        sample.invalid = if sample.errors > 0 {
            Some(format!(
                "{} echo error(s): {}",
                sample.errors,
                report.errors.describe()
            ))
        } else if let Err(why) = stopped {
            Some(format!("server: {why}"))
        } else if report.messages == 0 {
            Some("no messages were measured".into())
        } else {
            None
        };
        sample
    }
}

/// Waits for `child` until `deadline`, killing it then; `Err` says what went wrong (a run that
/// saw errors exits 1 but still wrote its report, which the caller reads).
pub(super) fn wait_until(mut child: Child, deadline: Instant) -> Result<(), String> {
    match echo_loadgen::child::wait_until(&mut child, deadline) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use std::io::Read;
                let _ = pipe.read_to_string(&mut stderr);
            }
            let line = stderr.lines().last().unwrap_or("").trim().to_owned();
            Err(format!("exited with {status}: {line}"))
        }
        Ok(None) => {
            echo_loadgen::child::kill(&mut child);
            Err("did not finish in time".into())
        }
        Err(e) => {
            echo_loadgen::child::kill(&mut child);
            Err(format!("cannot wait for it: {e}"))
        }
    }
}
