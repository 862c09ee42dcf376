//! `echo-bench capacity`: the highest open-loop rate at which one server keeps a latency
//! objective (`--objective p99=1ms`), as a median with an interval over rounds; every step on
//! stdout as it is measured, the curve and the capacity at the end, and `--json`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use echo_bench::capacity::{self, CapacityRun, Load, Objective, Phase, Plan, Step};
use echo_cli::{EXIT_FAILURE, Endpoint, exit_code, usage_exit};
use echo_loadgen::config::{
    MAX_CONNECTIONS, MAX_PAYLOAD, MAX_RATE, MAX_THREADS, MAX_WAIT, bytes_within, count_within,
    duration_within, positive_at_most,
};

use super::run::{CpuList, MAX_PID, parse_cpus};

/// Options of `echo-bench capacity`.
#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// The echo server: HOST:PORT, [V6]:PORT, unix:PATH or udp:HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    target: Endpoint,
    /// The latency objective: a percentile and its limit (p99=1ms, p50=200us, p999=5ms).
    #[arg(long, value_name = "pNN=D", value_parser = parse_objective)]
    objective: Objective,
    /// Connections the rate is spread over, 1 to 1000000.
    #[arg(long, short = 'c', default_value_t = 100, value_parser = count_within(1, MAX_CONNECTIONS as u64))]
    connections: usize,
    /// Bytes per message (64, 4k), 1 to 64MiB.
    #[arg(long, value_name = "BYTES", default_value = "64", value_parser = bytes_within(1, MAX_PAYLOAD))]
    payload: usize,
    /// The ramp's first rate, msg/s.
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 5_000.0, value_parser = positive_at_most(MAX_RATE))]
    start_rate: f64,
    /// The lowest rate the ramp goes down to, msg/s.
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 100.0, value_parser = positive_at_most(MAX_RATE))]
    min_rate: f64,
    /// The highest rate the ramp goes up to, msg/s.
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 1_000_000.0, value_parser = positive_at_most(MAX_RATE))]
    max_rate: f64,
    /// Rounds over the grid near the knee, 1 to 100 (3 or more give an interval).
    #[arg(long, default_value_t = 5, value_parser = count_within(1, 100))]
    rounds: usize,
    /// Rates in the grid near the knee, 2 to 50.
    #[arg(long, default_value_t = 6, value_parser = count_within(2, 50))]
    steps: usize,
    /// The shortest a step measures (each lasts long enough for 100 samples beyond the
    /// objective's percentile: p99 needs 10,000 messages), 1ms to 1h.
    #[arg(long, value_name = "D", default_value = "300ms", value_parser = duration_within(Duration::from_millis(1), MAX_WAIT))]
    min_step: Duration,
    /// The longest a step measures, 1ms to 1h.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = duration_within(Duration::from_millis(1), MAX_WAIT))]
    max_step: Duration,
    /// Traffic before each step's window, not measured, 0 to 1h.
    #[arg(long, value_name = "D", default_value = "200ms", value_parser = duration_within(Duration::ZERO, MAX_WAIT))]
    warmup: Duration,
    /// How long one message may take before it counts as a timeout, 1ms to 1h.
    #[arg(long, value_name = "D", default_value = "5s", value_parser = duration_within(Duration::from_millis(1), MAX_WAIT))]
    timeout: Duration,
    /// Client worker threads, 1 to 1024 (default: one per core).
    #[arg(long, value_parser = count_within(1, MAX_THREADS as u64))]
    threads: Option<usize>,
    /// The server's pid, for its CPU in each step (1 to 4194304).
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..=MAX_PID))]
    server_pid: Option<u32>,
    /// Pin the client to these CPUs (0, 0-1, 0,2).
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    client_cpus: Option<CpuList>,
    /// Write the capacity, its interval and every step as JSON here (a file that exists is
    /// replaced only if it is a capacity report).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// No line per step on stdout; the result still prints.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Parses `--objective`.
fn parse_objective(text: &str) -> Result<Objective, String> {
    text.parse()
}

impl CapacityArgs {
    fn load(&self) -> Load {
        Load {
            target: self.target.clone(),
            connections: self.connections,
            payload: self.payload,
            warmup: self.warmup,
            shortest: self.min_step,
            longest: self.max_step,
            timeout: self.timeout,
            threads: self
                .threads
                .unwrap_or_else(echo_loadgen::config::default_threads),
            server_pid: self.server_pid,
            client_cpus: self.client_cpus.as_ref().map(|c| c.0.clone()),
        }
    }

    fn plan(&self) -> Plan {
        Plan {
            start_rps: self.start_rate,
            min_rps: self.min_rate,
            max_rps: self.max_rate,
            factor: 2.0,
            grid_steps: self.steps,
            rounds: self.rounds,
            ..Plan::default()
        }
    }
}

/// One step as a line: `ramp 10000 msg/s: achieved 9998, p99 412 µs: met`.
fn step_line(objective: &Objective, phase: Phase, step: &Step) -> String {
    let phase = match phase {
        Phase::Ramp => "ramp".to_owned(),
        Phase::Round(r) => format!("round {}", r + 1),
    };
    format!(
        "{phase:>8}  {:>9.0} msg/s  achieved {:>9.0}  {} {:>8.0} µs  p50 {:.0}  p99 {:.0}  p99.9 {:.0}  {}",
        step.offered_rps,
        step.achieved_rps,
        objective.percentile_name(),
        step.latency_us,
        step.p50_us,
        step.p99_us,
        step.p999_us,
        verdict_name(objective.verdict(step)),
    )
}

fn verdict_name(v: capacity::search::Verdict) -> &'static str {
    use capacity::search::Verdict;
    match v {
        Verdict::Met => "met",
        Verdict::TooSlow => "too slow",
        Verdict::Behind => "behind (achieved < 95% of offered)",
        Verdict::Errors => "errors",
        Verdict::ClientSaturated => "client saturated",
    }
}

/// The curve and the capacity, as printed at the end.
pub fn summary(run: &CapacityRun) -> String {
    let c = &run.capacity;
    let o = &c.objective;
    let name = o.percentile_name();
    let mut out = format!(
        "\n{:>10}  {:>18}  {:>22}  {:>18}  {:>6}  pass\n",
        "offered",
        "achieved",
        format!("{name} µs"),
        "p50 µs",
        "rounds"
    );
    let est = |e: Option<echo_analysis::bootstrap::Estimate>| {
        e.map_or_else(
            || "-".to_owned(),
            |e| format!("{:.0} [{:.0}, {:.0}]", e.median, e.low, e.high),
        )
    };
    for s in &c.steps {
        out.push_str(&format!(
            "{:>10.0}  {:>18}  {:>22}  {:>18}  {:>6}  {}\n",
            s.offered_rps,
            est(s.achieved_rps),
            est(s.latency_us),
            est(s.p50_us),
            s.rounds,
            if s.passes { "yes" } else { "no" }
        ));
    }
    out.push('\n');
    match (c.capacity_rps, c.capacity_interval) {
        (Some(rps), Some([low, high])) => out.push_str(&format!(
            "capacity at {o}: {rps:.0} msg/s, 95% interval [{low:.0}, {high:.0}] ({}) over {} round(s)\n",
            c.half_width_pct
                .map_or_else(|| "one round: no interval".to_owned(), |h| format!("±{h:.1}%")),
            c.crossings.iter().filter(|x| x.and_then(|x| x.rate()).is_some()).count(),
        )),
        _ => out.push_str(&format!("capacity at {o}: not found within the grid\n")),
    }
    if let Some(gap) = c.gap_pct {
        out.push_str(&format!(
            "(each round's figure is its highest rate that met the objective; its next rate \
             above missed, a median {gap:.1}% higher)\n"
        ));
    }
    if let Some(rate) = c.passing_rps {
        out.push_str(&format!(
            "highest step passing in every round's interval: {rate:.0} msg/s\n"
        ));
    }
    for w in &c.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

/// Runs the command; returns the process exit code.
pub fn main(args: CapacityArgs) -> ExitCode {
    let load = args.load();
    let plan = args.plan();
    if let Err(why) = plan.validate() {
        usage_exit("echo-bench", &format!("error: {why}"));
    }
    if load.shortest > load.longest {
        usage_exit("echo-bench", "error: --min-step is longer than --max-step");
    }
    if let Err(why) = load.config(&args.objective, plan.start_rps) {
        usage_exit("echo-bench", &format!("error: {why}"));
    }
    if let Some(pid) = load.server_pid
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    {
        usage_exit(
            "echo-bench",
            &format!("error: --server-pid: no process {pid}"),
        );
    }
    if let Some(path) = &args.json {
        let checked = echo_loadgen::files::check_writable(path)
            .and_then(|()| capacity::check_replaceable(path));
        if let Err(why) = checked {
            usage_exit("echo-bench", &format!("error: {why}"));
        }
    }
    let objective = args.objective;
    if !args.quiet {
        println!(
            "capacity of {} at {objective}: {} connections × {} B, steps of at least {} messages",
            load.target,
            load.connections,
            load.payload,
            objective.messages_needed()
        );
    }
    let mut on_step = |phase: Phase, step: &Step| {
        if !args.quiet {
            println!("{}", step_line(&objective, phase, step));
        }
    };
    let run = match capacity::run(&load, &objective, &plan, &mut on_step) {
        Ok(run) => run,
        Err(why) => {
            eprintln!("echo-bench: {why}");
            return exit_code(EXIT_FAILURE);
        }
    };
    print!("{}", summary(&run));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&run).expect("a capacity run serialises");
        if let Err(e) = echo_loadgen::files::write(path, json + "\n") {
            eprintln!("echo-bench: cannot write {}: {e}", path.display());
            return exit_code(EXIT_FAILURE);
        }
    }
    ExitCode::SUCCESS
}
