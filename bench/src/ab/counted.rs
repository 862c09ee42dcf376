//! Counted benchmarks (`counted:WORKLOAD/MODEL/CONNECTIONS`): each build's server runs under
//! valgrind (cachegrind without its cache simulation: it counts the user-space instructions the
//! server executes, nothing else), a client in this process sends it a fixed number of messages,
//! and the figure is the server's instructions per message (per connection for churn).
//!
//! Why: a timed comparison on a shared machine cannot see a change below its noise floor
//! (0.2–3% here), and a one-connection benchmark is bound by wake-up latency, not by the
//! server's CPU, so most of a runtime's per-message code hides there whatever it costs. A count
//! sees every instruction wherever it runs and is repeatable to a few hundredths of a percent.
//! What it cannot see: the kernel (syscalls, the network stack, scheduling), waiting, cache
//! misses and lock contention. It complements the timed comparison; it does not replace it.
//!
//! How the fixed costs go: valgrind's start-up, the runtime's, the first message's allocations
//! and the shutdown are counted too, so each sample is two server runs, one with N messages and
//! one with 2N, and the figure is the slope, (count(2N) − count(N)) / N. The four runs of a pair
//! (base N and 2N, head N and 2N) go at once: a count does not depend on how busy the machine
//! is, only on which paths the code takes.
//!
//! Determinism: the client has exactly one message in flight (ping-pong goes round-robin over
//! its connections, one at a time, so a readiness loop never sees two at once), and sends the
//! next only once every thread of the server sleeps again (read from /proc: a message that
//! arrives while the server is still busy with the last one changes how many wake-ups and reads
//! it costs); churn waits for the server's close before the next connect, and the server is
//! stopped only after it closed every connection. What remains timing-dependent: stream (how the bytes are cut into reads
//! depends on when the server runs), and any runtime that spins or parks depending on time
//! (tokio's work-stealing workers: which worker wakes, and how often a worker finds nothing,
//! depends on valgrind's thread scheduling). A benchmark's A/A noise floor says how much.
//!
//! The load generator is this process's, for both builds: the count is of the server alone,
//! and one client sends both builds the same bytes.
//!
//! It is long because the conditions that make a count repeatable (valgrind's command line,
//! the one-message-at-a-time client, the wait for every server thread to sleep, the slope) are
//! kept in one file, where they are read together.

use std::io::{Read, Write};
use std::net::Shutdown;

use echo_cli::Endpoint;

use super::*;
use echo_loadgen::socket::Client;

/// What names a counted benchmark: `counted:ping-pong/mio/1`.
pub const PREFIX: &str = "counted:";
/// The default threshold of a counted benchmark, % (its noise floor is far below the timed
/// metrics', so it flags what they cannot).
pub const DEFAULT_THRESHOLD_PCT: f64 = 0.3;
/// Pairs per counted benchmark by default: a count varies little from run to run.
pub const DEFAULT_PAIRS: usize = 5;
/// Messages of the shorter of a sample's two runs (the other has twice as many); churn opens
/// a tenth as many connections.
pub const DEFAULT_MESSAGES: u64 = 2_000;
/// The counted benchmarks compared with `--metric instructions` when none are named: one model
/// per family (event loop, async runtime, blocking code), as the loaded benchmarks take:
/// ping-pong at one connection, the mio loop at 16 (one message in flight: the loop's cost with
/// connections held), and churn on the work-stealing runtime. Left out to keep a counted run
/// of the defaults short: more models at 16 connections, and stream, whose count depends on
/// how the bytes are cut into reads, that is on timing (its A/A noise was ±18% here).
pub const DEFAULT_BENCHMARKS: &str = "counted:ping-pong/mio/1,counted:ping-pong/tokio/1,\
     counted:ping-pong/thread-per-connection/1,counted:ping-pong/mio/16,counted:churn/tokio/1";

/// How long a server under valgrind may take to listen: valgrind reads the binary's debug
/// information first (a debug build's 150 MB took over 10 s on a busy 2-core machine).
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long one socket operation against a server under valgrind may take.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How counted benchmarks are run.
#[derive(Debug, Clone, PartialEq)]
pub struct CountOptions {
    /// The valgrind program; `None` where none was found (counted benchmarks are then left out
    /// by the caller, or invalid).
    pub valgrind: Option<PathBuf>,
    /// Messages of a sample's shorter run ([`DEFAULT_MESSAGES`]).
    pub messages: u64,
    /// Pairs per counted benchmark.
    pub pairs: usize,
    /// The threshold of counted benchmarks, %.
    pub threshold_pct: f64,
}

impl Default for CountOptions {
    fn default() -> Self {
        Self {
            valgrind: find_valgrind(),
            messages: DEFAULT_MESSAGES,
            pairs: DEFAULT_PAIRS,
            threshold_pct: DEFAULT_THRESHOLD_PCT,
        }
    }
}

/// What a report records of how its counted benchmarks ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counting {
    /// The counting tool and its options.
    pub tool: String,
    /// Messages of each sample's shorter run (the longer has twice as many; churn a tenth).
    pub messages: u64,
    /// Pairs per counted benchmark.
    pub pairs: usize,
    /// The counted benchmarks' threshold, %.
    pub threshold_pct: f64,
}

/// The valgrind options every counted server runs with: cachegrind counting instructions only.
const TOOL_ARGS: [&str; 3] = ["-q", "--tool=cachegrind", "--cache-sim=no"];

impl Counting {
    /// The record of `options`.
    pub fn of(options: &CountOptions) -> Self {
        let version = options
            .valgrind
            .as_ref()
            .and_then(|v| Command::new(v).arg("--version").output().ok())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "valgrind".into());
        Self {
            tool: format!("{version} {}", TOOL_ARGS.join(" ")),
            messages: options.messages,
            pairs: options.pairs,
            threshold_pct: options.threshold_pct,
        }
    }
}

/// Whether a benchmark can be counted: ping-pong, churn or stream of one of the project's
/// models (an outside server's command cannot be put under valgrind), churn and stream on one
/// connection (the client drives them one connection at a time).
pub fn check(
    workload: Workload,
    model: &crate::suite::Server,
    connections: usize,
) -> Result<(), String> {
    if model.model().is_none() {
        return Err("a counted benchmark needs one of the project's models".into());
    }
    match workload {
        Workload::PingPong if connections <= 1_000 => Ok(()),
        Workload::PingPong => Err("a counted ping-pong has at most 1000 connections".into()),
        Workload::Churn | Workload::Stream if connections == 1 => Ok(()),
        Workload::Churn | Workload::Stream => {
            Err("a counted churn or stream runs on one connection (CONNECTIONS 1)".into())
        }
        Workload::Rate => {
            Err("an open loop cannot be counted: use ping-pong, churn or stream".into())
        }
    }
}

/// `valgrind` on the PATH, if there is one that can be run.
pub fn find_valgrind() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("valgrind"))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The units a sample's shorter run sends: messages, or connections for churn.
fn units(spec: &BenchmarkSpec, messages: u64) -> u64 {
    match spec.workload {
        Workload::Churn => (messages / 10).max(2),
        _ => messages.max(2),
    }
}

/// One counted server run under way: a build's server under valgrind, and where valgrind
/// will write its counts.
struct CountRun {
    server: ServerProcess,
    out: PathBuf,
    /// The private folder of valgrind's output file, removed when the run is done.
    _folder: tempfile::TempDir,
}

/// Starts `build`'s server for `spec` under valgrind.
fn start(valgrind: &Path, build: &Build, spec: &BenchmarkSpec) -> Result<CountRun, String> {
    let folder = echo_loadgen::files::private_dir("echo-bench-counted")
        .map_err(|e| format!("no folder for valgrind's output: {e}"))?;
    let out = folder.path().join("cachegrind.out");
    let mut args: Vec<String> = TOOL_ARGS.iter().map(|&a| a.to_owned()).collect();
    args.push(format!("--cachegrind-out-file={}", out.display()));
    args.push(build.binary.display().to_string());
    args.push("serve".into());
    let launcher = Launcher {
        program: valgrind.to_owned(),
        args,
        extra: vec![(spec.model.clone(), build.server_args.clone())],
    };
    let server = launcher
        .start_within(
            spec.model.clone(),
            echo_cli::Transport::Tcp,
            None,
            &[],
            START_LIMIT,
        )
        .map_err(|why| format!("server under valgrind: {why}"))?;
    Ok(CountRun {
        server,
        out,
        _folder: folder,
    })
}

impl CountRun {
    /// Stops the server (valgrind writes its counts as it exits) and reads its total count.
    fn finish(self) -> Result<u64, String> {
        self.server
            .stop()
            .map_err(|why| format!("server under valgrind: {why}"))?;
        let text = std::fs::read_to_string(&self.out)
            .map_err(|e| format!("valgrind wrote no counts ({e})"))?;
        total_instructions(&text)
    }
}

/// The total instruction count of a cachegrind output file: its `summary:` line's first
/// figure, the `Ir` event.
pub fn total_instructions(text: &str) -> Result<u64, String> {
    let events = text
        .lines()
        .find_map(|l| l.strip_prefix("events:"))
        .ok_or("valgrind's output has no `events:` line")?;
    if events.split_whitespace().next() != Some("Ir") {
        return Err(format!(
            "valgrind's output counts {} first, not Ir",
            events.trim()
        ));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .ok_or_else(|| "valgrind's output has no `summary:` count".into())
}

/// The byte at `index` of message `k` on connection `conn`: a pattern the echo is checked
/// against, different for every message so a stale or misplaced echo shows.
fn byte(conn: usize, k: u64, index: usize) -> u8 {
    let x = (conn as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k.wrapping_mul(0x2545_F491_4F6C_DD1D))
        .wrapping_add(index as u64);
    (x ^ (x >> 29))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
        .to_le_bytes()[7]
}

fn fill(buf: &mut [u8], conn: usize, k: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte(conn, k, i);
    }
}

fn connect(target: &Endpoint) -> Result<Client, String> {
    let client = Client::connect(target, IO_TIMEOUT).map_err(|e| format!("cannot connect: {e}"))?;
    client
        .set_timeouts(Some(IO_TIMEOUT))
        .map_err(|e| format!("cannot set a timeout: {e}"))?;
    Ok(client)
}

/// The server whose threads [`Quiet::wait`] watches.
#[derive(Debug, Clone, Copy)]
struct Quiet {
    pid: u32,
}

impl Quiet {
    /// Waits until every thread of the server sleeps (no thread runnable or running), so the
    /// next step finds it waiting, as it did the last time. Without this the count depends on
    /// timing: a message that arrives while an edge-triggered loop is still reading the last
    /// one is read at once, and the loop later wakes for it a second time to find nothing,
    /// which costs a wake-up, a failed read and an error value more (seen: ±15% per message
    /// for mio under valgrind, where the server runs slowly and the client does not).
    fn wait(self) -> Result<(), String> {
        let deadline = Instant::now() + IO_TIMEOUT;
        let tasks = PathBuf::from(format!("/proc/{}/task", self.pid));
        loop {
            let entries = std::fs::read_dir(&tasks)
                .map_err(|e| format!("cannot read {}: {e}", tasks.display()))?;
            let mut quiet = true;
            for entry in entries.flatten() {
                let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
                // The state follows the command's closing parenthesis (the command may hold
                // spaces and parentheses of its own).
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim().chars().next());
                if !matches!(state, Some('S') | None) {
                    quiet = false;
                    break;
                }
            }
            if quiet {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("the server did not go idle within {IO_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

/// Sends one message on `client` and checks its whole echo.
fn echo_one(client: &Client, sent: &[u8], got: &mut [u8]) -> Result<(), String> {
    let mut stream = client;
    stream
        .write_all(sent)
        .map_err(|e| format!("cannot send: {e}"))?;
    stream
        .read_exact(got)
        .map_err(|e| format!("no whole echo: {e}"))?;
    if got != sent {
        return Err("the echo differs from the message sent".into());
    }
    Ok(())
}

/// Ends `client`'s side and waits for the server to close its own (so the server has done
/// with the connection before the next step, whatever its timing).
fn close(client: Client) -> Result<(), String> {
    let _ = client.shutdown(Shutdown::Write);
    let mut rest = [0u8; 64];
    match (&client).read(&mut rest) {
        Ok(0) => Ok(()),
        Ok(_) => Err("the server sent bytes no message asked for".into()),
        Err(e) => Err(format!("the server did not close the connection: {e}")),
    }
}

/// Sends `units` messages (connections for churn) of `spec` to the server at `target`, one at a
/// time, each once the server is idle again ([`Quiet`]), checking every echo; every connection
/// is closed by the server before it returns.
fn drive(target: &Endpoint, quiet: Quiet, spec: &BenchmarkSpec, units: u64) -> Result<(), String> {
    let payload = spec.payload;
    let mut sent = vec![0u8; payload];
    let mut got = vec![0u8; payload];
    match spec.workload {
        Workload::PingPong => {
            let mut clients = Vec::new();
            for _ in 0..spec.connections {
                clients.push(connect(target)?);
                quiet.wait()?;
            }
            for k in 0..units {
                let conn = (k % clients.len() as u64) as usize;
                fill(&mut sent, conn, k);
                echo_one(&clients[conn], &sent, &mut got)?;
                quiet.wait()?;
            }
            for client in clients {
                close(client)?;
                quiet.wait()?;
            }
            Ok(())
        }
        Workload::Churn => {
            for k in 0..units {
                let client = connect(target)?;
                quiet.wait()?;
                fill(&mut sent, 0, k);
                echo_one(&client, &sent, &mut got)?;
                quiet.wait()?;
                close(client)?;
                quiet.wait()?;
            }
            Ok(())
        }
        // Back to back: how the bytes are cut into reads depends on timing (said in the docs).
        Workload::Stream => stream(target, payload, units),
        Workload::Rate => Err("an open loop cannot be counted".into()),
    }
}

/// Writes `units` messages of `payload` bytes back to back on one connection while reading the
/// echo, checking every byte.
fn stream(target: &Endpoint, payload: usize, units: u64) -> Result<(), String> {
    let client = connect(target)?;
    let writer = client
        .try_clone()
        .map_err(|e| format!("cannot clone the connection: {e}"))?;
    std::thread::scope(|scope| {
        let written = scope.spawn(move || -> Result<(), String> {
            let mut buf = vec![0u8; payload];
            let mut stream = &writer;
            for k in 0..units {
                fill(&mut buf, 0, k);
                stream
                    .write_all(&buf)
                    .map_err(|e| format!("cannot send: {e}"))?;
            }
            Ok(())
        });
        let mut got = vec![0u8; 64 * 1024];
        let total = units * payload as u64;
        let mut at = 0u64;
        let mut stream = &client;
        while at < total {
            let n = stream
                .read(&mut got)
                .map_err(|e| format!("no whole echo: {e}"))?;
            if n == 0 {
                return Err(format!("the server closed after {at} of {total} bytes"));
            }
            for &b in &got[..n] {
                let (k, i) = (at / payload as u64, (at % payload as u64) as usize);
                if b != byte(0, k, i) {
                    return Err(format!("the echo differs from the stream at byte {at}"));
                }
                at += 1;
            }
        }
        written
            .join()
            .map_err(|_| "the writer panicked".to_owned())??;
        Ok::<(), String>(())
    })?;
    close(client)
}

/// Counts one pair of a counted benchmark: `base` and `head`, each at N and 2N units, the four
/// servers at once (started from this thread, the main one, so they die with this process;
/// driven from threads of their own); each side's sample is its instructions per unit.
pub(super) fn pair(
    options: &AbOptions,
    spec: &BenchmarkSpec,
    sides: [(Side, &Build); 2],
    started: Instant,
) -> [(Side, Sample); 2] {
    let at_s = started.elapsed().as_secs_f64();
    let Some(valgrind) = options.count.valgrind.as_deref() else {
        return sides
            .map(|(side, _)| (side, invalid_sample("valgrind was not found".into(), at_s)));
    };
    let n = units(spec, options.count.messages);
    // base N, base 2N, head N, head 2N (in the pair's order).
    let runs: Vec<(&Build, u64)> = sides
        .iter()
        .flat_map(|&(_, build)| [(build, n), (build, 2 * n)])
        .collect();
    let mut counts = counts(valgrind, spec, &runs).into_iter();
    sides.map(|(side, _)| {
        let (short, long) = (counts.next().expect("four"), counts.next().expect("four"));
        (side, sample(spec, n, short, long, at_s))
    })
}

/// A build's instructions per unit of `spec` (message, or connection for churn), counted at
/// `messages` and twice as many at once, as a counted benchmark's sample is (from the main
/// thread: the servers are its children): what `cargo bench --bench counted` prints.
pub fn per_unit(
    valgrind: &Path,
    build: &Build,
    spec: &BenchmarkSpec,
    messages: u64,
) -> Result<f64, String> {
    let n = units(spec, messages);
    let mut counts = counts(valgrind, spec, &[(build, n), (build, 2 * n)]).into_iter();
    let (short, long) = (counts.next().expect("two"), counts.next().expect("two"));
    let sample = sample(spec, n, short, long, 0.0);
    match sample.invalid {
        Some(why) => Err(why),
        None => Ok(sample.metrics[&spec.primary()]),
    }
}

/// The total count of each `(build, units)` run of `spec`, all at once: every server started
/// from this thread, each driven from a thread of its own, then each stopped and read.
fn counts(
    valgrind: &Path,
    spec: &BenchmarkSpec,
    runs: &[(&Build, u64)],
) -> Vec<Result<u64, String>> {
    let servers: Vec<Result<CountRun, String>> = runs
        .iter()
        .map(|&(build, _)| start(valgrind, build, spec))
        .collect();
    let targets: Vec<Result<(Endpoint, Quiet), String>> = servers
        .iter()
        .map(|run| match run {
            Ok(run) => Ok((
                run.server.endpoint().clone(),
                Quiet {
                    pid: run.server.pid(),
                },
            )),
            Err(why) => Err(why.clone()),
        })
        .collect();
    let driven: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .into_iter()
            .zip(runs)
            .map(|(target, &(_, units))| {
                scope.spawn(move || {
                    let (endpoint, quiet) = target?;
                    drive(&endpoint, quiet, spec, units)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the client panicked".into()))
            })
            .collect()
    });
    servers
        .into_iter()
        .zip(driven)
        .map(|(run, driven)| {
            let run = run?;
            match driven {
                Ok(()) => run.finish(),
                // Stopped (dropped: killed) at once; the client's failure is the reason.
                Err(why) => Err(why),
            }
        })
        .collect()
}

/// A side's sample from its two counts.
fn sample(
    spec: &BenchmarkSpec,
    units: u64,
    short: Result<u64, String>,
    long: Result<u64, String>,
    at_s: f64,
) -> Sample {
    let (short, long) = match (short, long) {
        (Ok(short), Ok(long)) => (short, long),
        (Err(why), _) | (_, Err(why)) => return invalid_sample(why, at_s),
    };
    if long <= short {
        return invalid_sample(
            format!(
                "the server counted {long} instructions for {} units and {short} for {units}: \
                 not more",
                2 * units
            ),
            at_s,
        );
    }
    let per_unit = (long - short) as f64 / units as f64;
    Sample {
        metrics: BTreeMap::from([(spec.primary(), per_unit)]),
        messages: units,
        counts: vec![short, long],
        at_s,
        ..Sample::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_total_of_a_cachegrind_file() {
        let text = "desc: no cache simulation\ncmd: echo-bench serve\nevents: Ir\nfl=a.rs\n\
                    fn=main\n1 5\nsummary: 1234567\n";
        assert_eq!(total_instructions(text), Ok(1_234_567));
        assert!(total_instructions("events: Ir\n").is_err());
        assert!(total_instructions("events: I1mr Ir\nsummary: 5 6\n").is_err());
        assert!(total_instructions("summary: 5\n").is_err());
    }

    #[test]
    fn a_sample_is_the_slope_between_its_two_runs() {
        let spec = BenchmarkSpec::parse("counted:ping-pong/mio/1", &Default::default()).unwrap();
        let s = sample(&spec, 1000, Ok(5_000_000), Ok(9_000_000), 0.0);
        assert_eq!(s.invalid, None);
        assert_eq!(s.metrics[&Metric::InstructionsPerMessage], 4000.0);
        assert_eq!(s.counts, [5_000_000, 9_000_000]);
        let flat = sample(&spec, 1000, Ok(5_000_000), Ok(5_000_000), 0.0);
        assert!(flat.invalid.is_some());
        let failed = sample(&spec, 1000, Ok(5), Err("boom".into()), 0.0);
        assert_eq!(failed.invalid.as_deref(), Some("boom"));
    }

    #[test]
    fn counted_names_parse_and_say_what_cannot_be_counted() {
        let spec = BenchmarkSpec::parse("counted:churn/tokio/1", &Default::default()).unwrap();
        assert!(spec.counted);
        assert_eq!(spec.name(), "counted:churn/tokio/1");
        assert_eq!(spec.primary(), Metric::InstructionsPerConnection);
        assert_eq!(units(&spec, 2000), 200);
        let timed = BenchmarkSpec::parse("ping-pong/mio/16", &Default::default()).unwrap();
        assert_eq!(
            timed.as_counted().unwrap().name(),
            "counted:ping-pong/mio/16"
        );
        assert!(
            BenchmarkSpec::parse("rate/mio/64", &Default::default())
                .unwrap()
                .as_counted()
                .is_none()
        );
        for bad in [
            "counted:rate/mio/64",
            "counted:churn/tokio/4",
            "counted:stream/mio/2",
            "counted:ping-pong/mio/1001",
            "counted:",
        ] {
            assert!(
                BenchmarkSpec::parse(bad, &Default::default()).is_err(),
                "{bad} accepted"
            );
        }
        for name in DEFAULT_BENCHMARKS.split(',') {
            let spec = BenchmarkSpec::parse(name, &Default::default()).unwrap();
            assert!(spec.counted && spec.name() == name, "{name}");
        }
    }

    #[test]
    fn every_message_has_its_own_bytes() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        fill(&mut a, 0, 1);
        fill(&mut b, 0, 2);
        assert_ne!(a, b);
        fill(&mut b, 1, 1);
        assert_ne!(a, b);
    }
}
