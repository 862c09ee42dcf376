//! Counted benchmarks (`counted:WORKLOAD/MODEL/CONNECTIONS`): each build's server runs under
//! valgrind (callgrind without cache or branch simulation: it counts the user-space
//! instructions the server executes, nothing else), a client in this process sends it a fixed
//! number of messages, and the figure is the server's instructions per message (per connection
//! for churn).
//!
//! Why: a timed comparison on a shared machine cannot see a change below its noise floor
//! (0.2–3% here), and a one-connection benchmark is bound by wake-up latency, not by the
//! server's CPU, so most of a runtime's per-message code hides there whatever it costs. A count
//! sees every instruction wherever it runs and is repeatable to a few hundredths of a percent.
//! What it cannot see: the kernel (syscalls, the network stack, scheduling), waiting, cache
//! misses and lock contention. It complements the timed comparison; it does not replace it.
//!
//! How the fixed costs go: the counts are read while the server runs, in windows. After the
//! connections and a warm-up, the client has vgdb zero callgrind's counters, then marks (a
//! dump of the counters, which zeroes them again) at once (an empty window: what a mark itself
//! costs), sends N units and marks again; the figure is (full − empty) / N. Valgrind's start-up, the
//! runtime's, the first messages' allocations and the shutdown are outside every window, so
//! their variations (a shutdown that polls its threads every 2 ms costs more the slower it
//! goes) cannot reach the figure, and one server per build and pair is enough. Base and head
//! run at once: a count does not depend on how busy the machine is, only on which paths the
//! code takes.
//!
//! Determinism: the client has exactly one message in flight (ping-pong goes round-robin over
//! its connections, one at a time, so a readiness loop never sees two at once), and sends the
//! next only once every thread of the server sleeps again (read from /proc: a message that
//! arrives while the server is still busy with the last one changes how many wake-ups and reads
//! it costs); churn waits for the server's close before the next connect. What remains
//! timing-dependent: stream (how the bytes are cut into reads depends on when the server runs),
//! work stealing (which worker wakes, and how often one finds its task already taken, depends
//! on how busy the machine is: the [`ONE_WORKER`] models are counted with one worker), and any
//! runtime that spins or parks depending on time (rayon's threads spin before they sleep). A
//! benchmark's A/A noise floor says how much.
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
/// Pairs per counted benchmark by default. Most counts repeat to the instruction; eight pairs
/// were chosen when tokio's ping-pong still ran its two workers and now and then came out 0.3%
/// short (at five pairs one such sample widened its interval to 0.21%; at eight, A/A floors
/// were 0.11-0.13%, Intel Xeon 2-core VM, three seeds). With one worker ([`ONE_WORKER`]) its
/// spread is a few thousandths of a percent; eight pairs are kept for the benchmarks a user
/// names whose counts still vary.
pub const DEFAULT_PAIRS: usize = 8;
/// Messages of a sample's counted window; churn opens a tenth as many connections. The
/// defaults count the same to the instruction at any size (the windows leave start-up and
/// shutdown out), so this is only large enough for a timing-dependent benchmark's variations
/// to average out somewhat.
pub const DEFAULT_MESSAGES: u64 = 1_000;
/// The counted benchmarks compared with `--metric instructions` when none are named: one model
/// per family (event loop, async runtime, blocking code) at one connection, the mio loop at 16
/// (one message in flight: the loop's cost with connections held), and churn on the mio loop
/// (accept, echo, close). Each of these counts the same to the instruction from run to run
/// (tokio's ping-pong, on one worker, to a few thousandths of a percent). Left out: more
/// models at 16 connections, churn on tokio and thread-per-connection, whose counts depend on
/// which thread runs when (tokio: 16 samples spread 0.9% with two workers and 1.5% with one, so
/// it is not work stealing alone; thread-per-connection: a rare run of the allocator's slow
/// path, +0.6% in one sample of six), and stream, whose count depends on how the bytes are cut
/// into reads (±18%).
pub const DEFAULT_BENCHMARKS: &str = "counted:ping-pong/mio/1,counted:ping-pong/tokio/1,\
     counted:ping-pong/thread-per-connection/1,counted:ping-pong/mio/16,counted:churn/mio/1";

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
    /// Messages of a sample's counted window ([`DEFAULT_MESSAGES`]).
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
    /// Messages of each sample's counted window (churn: a tenth as many connections).
    pub messages: u64,
    /// Pairs per counted benchmark.
    pub pairs: usize,
    /// The counted benchmarks' threshold, %.
    pub threshold_pct: f64,
}

/// The valgrind options every counted server runs with: callgrind, which counts instructions
/// only by default (no cache or branch simulation) and, unlike cachegrind, dumps its counters
/// when asked through vgdb (`--vgdb=yes`) while the server runs.
///
/// `--fair-sched=yes`: valgrind runs one thread at a time, and with its default lock the next
/// thread to run is whichever the kernel wakes first; the fair lock hands over in the order the
/// threads asked, which makes a multi-threaded runtime's path less timing-dependent (tokio's
/// churn: windows of 100 connections varied 0.9% without it, 0.17% with it).
const TOOL_ARGS: [&str; 4] = ["-q", "--tool=callgrind", "--vgdb=yes", "--fair-sched=yes"];
/// The name of callgrind's output in a counted server's folder (each dump a file beginning so).
const OUT_FILE: &str = "callgrind.out";

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

/// The units a sample's counted window sends: messages, or connections for churn.
fn units(spec: &BenchmarkSpec, messages: u64) -> u64 {
    match spec.workload {
        Workload::Churn => (messages / 10).max(2),
        _ => messages.max(2),
    }
}

/// One counted server under way: a build's server under callgrind, and where its counts go.
struct CountRun {
    server: ServerProcess,
    marks: Marks,
    /// The private folder of valgrind's output and vgdb's pipes, removed when the run is done.
    _folder: echo_loadgen::files::PrivateDir,
}

/// Starts `build`'s server for `spec` under valgrind.
fn start(valgrind: &Path, build: &Build, spec: &BenchmarkSpec) -> Result<CountRun, String> {
    let vgdb = find_vgdb(valgrind).ok_or("vgdb (valgrind's own) was not found")?;
    let folder = echo_loadgen::files::private_dir("echo-bench-counted")
        .map_err(|e| format!("no folder for valgrind's output: {e}"))?;
    let out = folder.path().join(OUT_FILE);
    let prefix = folder.path().join("vgdb");
    let mut args: Vec<String> = TOOL_ARGS.iter().map(|&a| a.to_owned()).collect();
    args.push(format!("--callgrind-out-file={}", out.display()));
    args.push(format!("--vgdb-prefix={}", prefix.display()));
    args.push(build.binary.display().to_string());
    args.push("serve".into());
    let launcher = Launcher {
        program: valgrind.to_owned(),
        args,
        extra: vec![(spec.model.clone(), server_args(spec, build))],
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
    let marks = Marks {
        vgdb,
        prefix,
        folder: folder.path().to_owned(),
        pid: server.pid(),
        dumps: 0,
    };
    Ok(CountRun {
        server,
        marks,
        _folder: folder,
    })
}

/// Models whose workers share their tasks and steal from one another. Under valgrind, which
/// worker the kernel runs first decides how often a woken worker finds its task already taken
/// (and so how many instructions a message costs), and that depends on how busy the machine
/// is: tokio's ping-pong counted 3,364.5k instructions per 1,000 messages on a quiet machine and
/// 3,366.9k–3,376.0k beside two busy loops, so a window that ran partly beside the other
/// build's server came out 0.3% short. With one worker there is nobody to steal from: 3,324.1k–
/// 3,325.0k either way (20 windows each). Over 16 samples of `ab --metric instructions`, one
/// worker took the spread of smol's count from 0.09% to 0.002% and may's from 5.2% to 0.29%
/// (AMD EPYC 2-core VM). Their counted servers run one worker; a change to work stealing
/// itself is left to the timed benchmarks. Not here: tokio-rayon, whose spread grew with one
/// pool thread (0.8% to 6.9%: rayon's spinning before it sleeps is timing-dependent either
/// way), and the thread pool, whose threads bound the connections it serves.
pub const ONE_WORKER: [&str; 3] = ["tokio", "smol", "may"];

/// The options `build`'s counted server of `spec` runs with: the build's own, and one worker
/// for the [`ONE_WORKER`] models (a `--threads` the build's own options give wins).
fn server_args(spec: &BenchmarkSpec, build: &Build) -> Vec<String> {
    let mut args = Vec::new();
    let own_threads = build
        .server_args
        .iter()
        .any(|a| a == "--threads" || a.starts_with("--threads="));
    if ONE_WORKER.contains(&spec.model.name()) && !own_threads {
        args.extend(["--threads".to_owned(), "1".to_owned()]);
    }
    args.extend(build.server_args.iter().cloned());
    args
}

/// `vgdb` beside `valgrind` (the one of the same installation), else on the PATH.
fn find_vgdb(valgrind: &Path) -> Option<PathBuf> {
    let beside = valgrind.with_file_name("vgdb");
    if beside.is_file() {
        return Some(beside);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("vgdb"))
        .find(|candidate| candidate.is_file())
}

/// How a counted server's counts are read while it runs: vgdb asks callgrind to zero its
/// counters, or to dump them (which zeroes them too), so each mark gives the instructions since
/// the last one. The server
/// is idle at every mark ([`Quiet`]): vgdb then interrupts a sleeping thread, which costs the
/// same few instructions every time, and an empty window measures them.
#[derive(Debug, Clone)]
struct Marks {
    vgdb: PathBuf,
    prefix: PathBuf,
    folder: PathBuf,
    pid: u32,
    /// Dumps asked for so far: the next one is part `dumps + 1` of callgrind's output.
    dumps: u32,
}

impl Marks {
    /// Zeroes the server's counters (what it ran until now is left out).
    fn zero(&mut self) -> Result<(), String> {
        self.ask("zero")
    }

    /// The server's instructions since the last mark or zeroing.
    fn mark(&mut self) -> Result<u64, String> {
        self.ask("dump")?;
        self.dumps += 1;
        self.read_part(self.dumps)
    }

    /// Gives callgrind one monitor command through vgdb and waits for it to be done.
    fn ask(&self, request: &str) -> Result<(), String> {
        let mut command = Command::new(&self.vgdb);
        command
            .arg(format!("--vgdb-prefix={}", self.prefix.display()))
            .arg(format!("--pid={}", self.pid))
            // The server sleeps in a system call at every mark: vgdb has to wake it (ptrace)
            // rather than wait for it to look by itself, which it would never do.
            .arg("--max-invoke-ms=1")
            .arg(request)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = echo_loadgen::child::spawn(&mut command)
            .map_err(|e| format!("cannot run vgdb: {e}"))?;
        let status = echo_loadgen::child::wait_until(&mut child, Instant::now() + IO_TIMEOUT)
            .map_err(|e| format!("vgdb: {e}"))?;
        let Some(status) = status else {
            echo_loadgen::child::kill(&mut child);
            return Err(format!("vgdb did not answer within {IO_TIMEOUT:?}"));
        };
        if !status.success() {
            let mut why = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut why);
            }
            let why = why.lines().last().unwrap_or("no message").to_owned();
            return Err(format!(
                "vgdb could not {request} the server's counts ({status}): {why}"
            ));
        }
        Ok(())
    }

    /// The total of callgrind's dump `part` (each dump is a file of its own in the folder; its
    /// header says which part it is).
    fn read_part(&self, part: u32) -> Result<u64, String> {
        let entries = std::fs::read_dir(&self.folder)
            .map_err(|e| format!("cannot read valgrind's folder: {e}"))?;
        let want = format!("part: {part}");
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(OUT_FILE) {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if text.lines().any(|l| l.trim() == want) {
                return total_instructions(&text);
            }
        }
        Err(format!("callgrind wrote no dump {part}"))
    }
}

/// The total instruction count of a callgrind (or cachegrind) output file: its `totals:` (or
/// `summary:`) line's first figure, the `Ir` event.
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
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
    };
    line("totals:")
        .or_else(|| line("summary:"))
        .ok_or_else(|| "valgrind's output has no `totals:` count".into())
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
    let client = Client::connect(&target.clone().into(), IO_TIMEOUT)
        .map_err(|e| format!("cannot connect: {e}"))?;
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
    /// Waits until every thread of the server sleeps (no thread runnable or running) and none
    /// has run between two looks, so the next step finds it waiting, as it did the last time.
    /// Without this the count depends on timing: a message that arrives while an
    /// edge-triggered loop is still reading the last one is read at once, and the loop later
    /// wakes for it a second time to find nothing, which costs a wake-up, a failed read and an
    /// error value more (seen: ±15% per message for mio under valgrind, where the server runs
    /// slowly and the client does not). The second look, with the threads' run counts
    /// unchanged, rules out a moment between two of them (valgrind runs one thread at a time
    /// and hands over to the next).
    fn wait(self) -> Result<(), String> {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut last = None;
        // Looking costs this process a read of /proc per thread: the pause between looks
        // doubles up to a millisecond, so a server that is slow to settle (valgrind runs
        // several at once on a busy machine) is not competed with for the CPU.
        let mut pause = Duration::from_micros(20);
        loop {
            let now = self.look()?;
            if now.is_some() && now == last {
                return Ok(());
            }
            last = now;
            if Instant::now() >= deadline {
                return Err(format!("the server did not go idle within {IO_TIMEOUT:?}"));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// The server's threads and how often each has been run on a CPU, if every one sleeps.
    fn look(self) -> Result<Option<Vec<(u64, u64)>>, String> {
        let tasks = PathBuf::from(format!("/proc/{}/task", self.pid));
        let entries = std::fs::read_dir(&tasks)
            .map_err(|e| format!("cannot read {}: {e}", tasks.display()))?;
        let mut seen = Vec::new();
        for entry in entries.flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // The state follows the command's closing parenthesis (the command may hold
            // spaces and parentheses of its own).
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim().chars().next());
            if !matches!(state, Some('S') | None) {
                return Ok(None);
            }
            // schedstat: time on a CPU, time waiting for one, times run (a thread gone
            // meanwhile reads as nothing).
            let runs = std::fs::read_to_string(entry.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
                .unwrap_or(0);
            let tid = entry.file_name().to_string_lossy().parse().unwrap_or(0);
            seen.push((tid, runs));
        }
        seen.sort_unstable();
        Ok(Some(seen))
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

/// Units (messages, or connections for churn) sent before the first mark, so the counted
/// windows find the server's buffers, tables and allocator caches as every later unit does.
fn warmup_units(spec: &BenchmarkSpec) -> u64 {
    match spec.workload {
        Workload::Churn => 16,
        _ => (4 * spec.connections as u64).max(64),
    }
}

/// The two windows of a counted server, read by `marks` with the server idle at each mark:
/// an empty one (what a mark itself costs: the wake-up of the thread vgdb interrupted) and one
/// of `run`. Everything before the first mark (valgrind's and the runtime's start-up, the
/// connections, the warm-up) and after the last (shutdown) is left out.
fn windows(
    marks: &mut Marks,
    quiet: Quiet,
    run: impl FnOnce() -> Result<(), String>,
) -> Result<[u64; 2], String> {
    quiet.wait()?;
    marks.zero()?;
    quiet.wait()?;
    let empty = marks.mark()?;
    quiet.wait()?;
    run()?;
    quiet.wait()?;
    let full = marks.mark()?;
    Ok([empty, full])
}

/// Drives the server at `target` through `spec`'s warm-up and its two windows ([`windows`]),
/// the second of `units` messages (connections for churn), one at a time, each once the server
/// is idle again ([`Quiet`]), checking every echo; every connection is closed by the server
/// before it returns.
fn drive(
    target: &Endpoint,
    marks: &mut Marks,
    spec: &BenchmarkSpec,
    units: u64,
) -> Result<[u64; 2], String> {
    let quiet = Quiet { pid: marks.pid };
    let payload = spec.payload;
    let warmup = warmup_units(spec);
    match spec.workload {
        Workload::PingPong => {
            let mut clients = Vec::new();
            for _ in 0..spec.connections {
                clients.push(connect(target)?);
                quiet.wait()?;
            }
            let mut sent = vec![0u8; payload];
            let mut got = vec![0u8; payload];
            let mut k = 0u64;
            let mut send = |count: u64| -> Result<(), String> {
                for _ in 0..count {
                    let conn = (k % clients.len() as u64) as usize;
                    fill(&mut sent, conn, k);
                    echo_one(&clients[conn], &sent, &mut got)?;
                    quiet.wait()?;
                    k += 1;
                }
                Ok(())
            };
            send(warmup)?;
            let counts = windows(marks, quiet, || send(units))?;
            for client in clients {
                close(client)?;
                quiet.wait()?;
            }
            Ok(counts)
        }
        Workload::Churn => {
            let mut sent = vec![0u8; payload];
            let mut got = vec![0u8; payload];
            let mut k = 0u64;
            let mut churn = |count: u64| -> Result<(), String> {
                for _ in 0..count {
                    let client = connect(target)?;
                    quiet.wait()?;
                    fill(&mut sent, 0, k);
                    echo_one(&client, &sent, &mut got)?;
                    quiet.wait()?;
                    close(client)?;
                    quiet.wait()?;
                    k += 1;
                }
                Ok(())
            };
            churn(warmup)?;
            windows(marks, quiet, || churn(units))
        }
        // Back to back: how the bytes are cut into reads depends on timing (said in the docs).
        Workload::Stream => {
            stream(target, payload, warmup)?;
            windows(marks, quiet, || stream(target, payload, units))
        }
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

/// Counts pairs of counted benchmarks, every server of every pair at once (a count does not
/// depend on how busy the machine is); each side's sample is its instructions per unit.
pub(super) fn pairs(
    options: &AbOptions,
    jobs: &[(&BenchmarkSpec, [(Side, &Build); 2])],
    started: Instant,
) -> Vec<[(Side, Sample); 2]> {
    let at_s = started.elapsed().as_secs_f64();
    let Some(valgrind) = options.count.valgrind.as_deref() else {
        return jobs
            .iter()
            .map(|(_, sides)| {
                sides.map(|(side, _)| (side, invalid_sample("valgrind was not found".into(), at_s)))
            })
            .collect();
    };
    let units_of = |spec: &BenchmarkSpec| units(spec, options.count.messages);
    let servers: Vec<(&BenchmarkSpec, &Build, u64)> = jobs
        .iter()
        .flat_map(|&(spec, sides)| sides.map(|(_, build)| (spec, build, units_of(spec))))
        .collect();
    let mut counts = counts(valgrind, &servers).into_iter();
    jobs.iter()
        .map(|&(spec, sides)| {
            sides.map(|(side, _)| {
                let counts = counts.next().expect("one per side");
                (side, sample(spec, units_of(spec), counts, at_s))
            })
        })
        .collect()
}

/// A build's instructions per unit of `spec` (message, or connection for churn), counted over
/// `messages` as a counted benchmark's sample is: what `cargo bench --bench counted` prints.
pub fn per_unit(
    valgrind: &Path,
    build: &Build,
    spec: &BenchmarkSpec,
    messages: u64,
) -> Result<f64, String> {
    let n = units(spec, messages);
    let counts = counts(valgrind, &[(spec, build, n)]).pop().expect("one");
    let sample = sample(spec, n, counts, 0.0);
    match sample.invalid {
        Some(why) => Err(why),
        None => Ok(sample.metrics[&spec.primary()]),
    }
}

/// The two windows' counts ([`windows`]) of a server for each `(spec, build, units)`, all at
/// once, each server started, driven and killed by a thread of its own (it dies with that
/// thread: `child::spawn`; what it does after the last mark is not counted, and waiting for its
/// shutdown under valgrind would only cost time).
fn counts(
    valgrind: &Path,
    servers: &[(&BenchmarkSpec, &Build, u64)],
) -> Vec<Result<[u64; 2], String>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = servers
            .iter()
            .map(|&(spec, build, units)| {
                scope.spawn(move || {
                    let mut run = start(valgrind, build, spec)?;
                    let target = run.server.endpoint().clone();
                    let counts = drive(&target, &mut run.marks, spec, units);
                    drop(run);
                    counts
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
    })
}

/// A side's sample from its two windows' counts: the empty one's (a mark's own cost) taken
/// from the full one's, per unit.
fn sample(spec: &BenchmarkSpec, units: u64, counts: Result<[u64; 2], String>, at_s: f64) -> Sample {
    let [empty, full] = match counts {
        Ok(counts) => counts,
        Err(why) => return invalid_sample(why, at_s),
    };
    if full <= empty {
        return invalid_sample(
            format!(
                "the server counted {full} instructions for {units} units and {empty} for none: \
                 not more"
            ),
            at_s,
        );
    }
    let per_unit = (full - empty) as f64 / units as f64;
    Sample {
        metrics: BTreeMap::from([(spec.primary(), per_unit)]),
        messages: units,
        counts: vec![empty, full],
        at_s,
        ..Sample::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_total_of_a_callgrind_dump() {
        let text = "# callgrind format\nversion: 1\ncmd: echo-bench serve\npart: 2\n\
                    events: Ir\nsummary: 439\nfn=(1) main\n0 5\ntotals: 439\n";
        assert_eq!(total_instructions(text), Ok(439));
        let cachegrind = "desc: no cache simulation\nevents: Ir\nfl=a.rs\nsummary: 1234567\n";
        assert_eq!(total_instructions(cachegrind), Ok(1_234_567));
        assert!(total_instructions("events: Ir\n").is_err());
        assert!(total_instructions("events: I1mr Ir\ntotals: 5 6\n").is_err());
        assert!(total_instructions("totals: 5\n").is_err());
    }

    #[test]
    fn a_sample_is_the_full_window_less_the_empty_one_per_unit() {
        let spec = BenchmarkSpec::parse("counted:ping-pong/mio/1", &Default::default()).unwrap();
        let s = sample(&spec, 1000, Ok([439, 4_000_439]), 0.0);
        assert_eq!(s.invalid, None);
        assert_eq!(s.metrics[&Metric::InstructionsPerMessage], 4000.0);
        assert_eq!(s.counts, [439, 4_000_439]);
        let flat = sample(&spec, 1000, Ok([439, 439]), 0.0);
        assert!(flat.invalid.is_some());
        let failed = sample(&spec, 1000, Err("boom".into()), 0.0);
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
    fn work_stealing_models_are_counted_with_one_worker_unless_the_build_says_otherwise() {
        for name in ONE_WORKER {
            assert!(
                name.parse::<echo_servers::Model>().is_ok(),
                "{name} is not a model"
            );
        }
        let spec = |name: &str| BenchmarkSpec::parse(name, &Default::default()).unwrap();
        let build = |args: &[&str]| Build {
            binary: "echo-bench".into(),
            server_args: args.iter().map(|&a| a.to_owned()).collect(),
            meta: None,
        };
        let handicap = build(&["--handicap-instructions=20"]);
        assert_eq!(
            server_args(&spec("counted:ping-pong/tokio/1"), &handicap),
            ["--threads", "1", "--handicap-instructions=20"]
        );
        assert_eq!(
            server_args(&spec("counted:ping-pong/mio/16"), &handicap),
            ["--handicap-instructions=20"]
        );
        // thread-pool's threads bound the connections it serves: it keeps its own.
        assert!(server_args(&spec("counted:ping-pong/thread-pool/1"), &build(&[])).is_empty());
        for own in [&["--threads", "2"][..], &["--threads=2"][..]] {
            assert_eq!(
                server_args(&spec("counted:ping-pong/smol/1"), &build(own)),
                own
            );
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
