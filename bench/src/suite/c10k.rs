//! The C10K measurement (`--profile c10k`, and part of the full profile): what holding many
//! mostly idle connections costs each model. Per model, on a fresh server process:
//! 1. a small active load (ping-pong, [`ACTIVE_CONNECTIONS`] connections) with no idle
//!    connections: the baseline latency;
//! 2. idle connections opened at a bounded rate up to the target (10,000 by default), the
//!    server's RSS and threads sampled at each level of [`levels`], and the time until the
//!    server holds them all (its accept rate);
//! 3. the same active load while they stay open: what holding them costs a live client;
//! 4. every idle connection echoes once (they were held, not just queued);
//! 5. all closed, and the RSS the server keeps afterwards.
//!
//! The idle connections are blocking connections of this process (the load generator's
//! engine drives only the active load). Bounded models (`blocking`, `thread-pool`) serve a
//! fixed number of connections at once: they are reported as not applicable, with that number.
//!
//! A model may be slow and still correct: `poll` pays O(n) in the connections held on every
//! wake-up, so it accepts, and echoes beside 10,000 idle connections, far slower than epoll.
//! That slowness is the finding, so no deadline here is a fixed one per step that a slow model
//! misses. Connects never run more than [`ACCEPT_WINDOW`] ahead of what the server holds (a
//! slow acceptor's backlog then never overflows and drops the SYNs, which made connects time
//! out); waiting for a level fails only when the server's count has stopped growing for
//! [`STALL`]; and the final echo is sent on every connection first, then read back under one
//! deadline that grows with the number of connections ([`echo_deadline`]). A server that loses
//! connections still fails: they never echo, and the round ends at its deadline. The active
//! load is re-run when other tasks disturbed it, under the suite's interference policy, and
//! the idle connections are counted from a base taken once the server has closed its
//! connections.
//!
//! Over TLS (`--transports tls`, for the models that serve it) the server makes its self-signed
//! certificate at start, as for the suite's other TLS points; the client is insecure (checks
//! the handshake's signatures, not the chain) and keeps no session, so every idle connection is
//! a full handshake, finished before it counts as open, and the active load runs over TLS too.
//! A handshake is bounded by the connect timeout at each step: one that fails or stalls is a
//! failed connect, like a refused one. Handshakes are made one at a time, so over TLS the time
//! to hold all includes the client's share of each handshake; the pacing is the same as TCP's
//! (a finished handshake means the server accepted, so the window is never the bound).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use echo_servers::{Model, ServerConfig, Transport};

use super::{Status, SuiteOptions};
use crate::{Report, RunConfig, RunOptions, Stop, Workload};
pub use echo_analysis::c10k::{ACTIVE_CONNECTIONS, CONNECT_RATE, Holding, Level, levels};
use echo_loadgen::config::TlsOptions;
use echo_loadgen::procfs::ProcSample;
use echo_loadgen::report::Latency;
use echo_loadgen::socket::{Client, Peer};

/// Descriptors this process needs besides the idle connections (the active load, files).
const SPARE_DESCRIPTORS: u64 = 256;

/// Connections opened but not yet held by the server, at most: well below the 4096 backlog,
/// so a server that accepts slower than [`CONNECT_RATE`] slows the connects down instead of
/// overflowing its backlog (the kernel then drops SYNs and connects time out).
const ACCEPT_WINDOW: usize = 1_000;

/// How long one idle connect may take, and each step of its TLS handshake; and the idle
/// connections' read and write timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Failed connects (over TLS: failed handshakes) after which opening stops: the level's check
/// then reports how many opened.
const MAX_CONNECT_ERRORS: u64 = 100;

/// How long a server's count of descriptors may stay flat before waiting for it to hold a
/// level fails: a server that accepts, however slowly, is waited for.
const STALL: Duration = Duration::from_secs(20);

/// The time the final echo round gets to hear back from `connections` connections: 10 s, and
/// 2 ms more per connection (30 s for 10,000) for a server whose every wake-up walks all of
/// them. Every message is written before any is read, so a correct server answers them in a
/// few of its turns, however slow each turn is.
pub fn echo_deadline(connections: usize) -> Duration {
    Duration::from_secs(10)
        + Duration::from_millis(2) * u32::try_from(connections).unwrap_or(u32::MAX)
}

/// What the C10K measurement holds: which models, how many idle connections each, over which
/// transports.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The models, in order.
    pub models: Vec<Model>,
    /// Idle connections each holds.
    pub target: usize,
    /// TCP, TLS or both, in order; each model is held over those it serves.
    pub transports: Vec<Transport>,
}

impl Plan {
    /// The transports C10K holds connections over, from those asked for (`--transports`):
    /// TCP and TLS, in the order asked; TCP alone when none was asked for. Unix sockets and
    /// UDP are not held.
    pub fn transports_of(asked: Option<&[Transport]>) -> Vec<Transport> {
        let mut kept: Vec<Transport> = Vec::new();
        for &t in asked.unwrap_or(&[Transport::Tcp]) {
            if matches!(t, Transport::Tcp | Transport::Tls) && !kept.contains(&t) {
                kept.push(t);
            }
        }
        kept
    }

    /// Each (model, transport) to hold, model by model: each model over every transport of the
    /// plan it serves, so that a model's TCP and TLS holdings run one after the other.
    pub fn holdings(&self) -> Vec<(Model, Transport)> {
        self.models
            .iter()
            .flat_map(|&m| {
                self.transports
                    .iter()
                    .filter(move |&&t| m.serves(t))
                    .map(move |&t| (m, t))
            })
            .collect()
    }
}

/// Descriptors process `pid` holds.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Waits until `pid` holds at most `count` descriptors, up to `limit`; returns how many it
/// holds then.
fn settle_descriptors(pid: u32, count: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let held = descriptors(pid);
        if held <= count || Instant::now() >= deadline {
            return held;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `pid` holds at least `count` descriptors, for as long as their number keeps
/// growing: it gives up only after [`STALL`] without one more. Returns how many it held last.
fn wait_for_growth(pid: u32, count: usize) -> Result<(), usize> {
    let mut most = descriptors(pid);
    let mut grew = Instant::now();
    while most < count {
        std::thread::sleep(Duration::from_millis(20));
        let held = descriptors(pid);
        if held > most {
            (most, grew) = (held, Instant::now());
        } else if grew.elapsed() >= STALL {
            return Err(most);
        }
    }
    Ok(())
}

fn sample(pid: u32, connections: usize) -> Level {
    let s = ProcSample::read(pid).unwrap_or_default();
    Level {
        connections,
        rss_kib: s.rss_kib,
        threads: s.threads,
    }
}

/// The client side of a TLS point: insecure (the server's certificate is the self-signed one
/// it made at start), full handshakes; the default for the other transports.
fn tls_options(transport: Transport) -> TlsOptions {
    TlsOptions {
        insecure: transport == Transport::Tls,
        ..TlsOptions::default()
    }
}

/// The active load against `peer`: its latency and messages/s, or why it failed.
fn active_load(options: &SuiteOptions, peer: &Peer, pid: u32) -> Result<(Latency, f64), String> {
    let load = RunOptions {
        target: peer.endpoint.clone(),
        workload: Workload::PingPong,
        connections: ACTIVE_CONNECTIONS,
        payload: 64,
        stop: Stop::Duration(options.duration),
        warmup: options.warmup,
        timeout: options.timeout,
        threads: options.pinning.client_threads().max(1),
        server_pid: Some(pid),
        client_cpus: options.pinning.client_cpus.clone(),
        tls: tls_options(peer.endpoint.transport()),
        ..RunOptions::default()
    };
    // Checked like every run's options (the descriptor limit among them).
    let config = RunConfig::new(load).map_err(|e| format!("invalid load: {e}"))?;
    // Re-run while other tasks take more than the interference limit, as every trial is
    // ([`super::trial`]): a server kept off its core for the whole window by them stalls every
    // connection, which says nothing about the model. The last attempt is kept, errors and all.
    let policy = options.interference;
    let mut reruns = 0;
    loop {
        let outcome = echo_loadgen::engine::run(&config, &mut |_| {}).map_err(|e| e.to_string())?;
        let report = Report::new(&config, &outcome);
        let other = report.machine.map_or(0.0, |m| m.other_cores);
        if other > policy.limit_cores && reruns < policy.reruns {
            reruns += 1;
            continue;
        }
        if !report.is_clean() || report.messages == 0 {
            let what = if report.is_clean() {
                "the active load was served no message".to_owned()
            } else {
                format!("the active load saw errors ({})", report.errors.describe())
            };
            return Err(format!(
                "{what} (other tasks took {other:.2} cores; {reruns} re-run(s))"
            ));
        }
        return Ok((report.latency_us, report.throughput_rps));
    }
}

/// Where the idle connections go, and how far the server has got with them.
struct Target {
    peer: Peer,
    pid: u32,
    /// The server's descriptors with no idle connection open.
    base_descriptors: usize,
}

impl Target {
    /// Idle connections the server holds now (its descriptors above the base).
    fn holding(&self) -> usize {
        descriptors(self.pid).saturating_sub(self.base_descriptors)
    }
}

/// Opens idle connections to `target` until `held` has `count`, paced at [`CONNECT_RATE`] and
/// never more than [`ACCEPT_WINDOW`] ahead of what the server holds. Over TLS a connection is
/// open once its handshake is done; one that fails counts in `errors`, as a failed connect.
fn open_until(
    target: &Target,
    held: &mut Vec<Client>,
    count: usize,
    began: Instant,
    errors: &mut u64,
) {
    // What the server held when last asked: asked again only when the window is used up, as
    // reading /proc/PID/fd costs as much as the descriptors it lists.
    let mut holding = 0;
    while held.len() < count {
        let due = began + Duration::from_secs_f64(held.len() as f64 / CONNECT_RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let stalled_since = Instant::now();
        while held.len() >= holding + ACCEPT_WINDOW {
            holding = target.holding();
            if held.len() < holding + ACCEPT_WINDOW {
                break;
            }
            if stalled_since.elapsed() >= STALL {
                // The server stopped accepting: the level's wait says so.
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match Client::connect(&target.peer, CONNECT_TIMEOUT) {
            Ok(client) => {
                let _ = client.set_timeouts(Some(CONNECT_TIMEOUT));
                held.push(client);
            }
            Err(_) => {
                *errors += 1;
                if *errors > MAX_CONNECT_ERRORS {
                    return;
                }
            }
        }
    }
}

/// Every held connection echoes one small message; returns how many did not. Every message is
/// written before the first is read back, so a server answers them together, in as few of its
/// turns as it can, and all of them must be back by [`echo_deadline`].
fn echo_each(held: &mut [Client]) -> u64 {
    let message = *b"c10k-ok\n";
    let deadline = Instant::now() + echo_deadline(held.len());
    let sent: Vec<bool> = held
        .iter_mut()
        .map(|stream| stream.write_all(&message).is_ok())
        .collect();
    let mut failed = 0;
    for (stream, sent) in held.iter_mut().zip(sent) {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut back = [0u8; 8];
        let ok = sent
            && stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .is_ok()
            && stream.read_exact(&mut back).is_ok()
            && back == message;
        failed += u64::from(!ok);
    }
    failed
}

/// Measures `model` holding `target` idle connections over `transport` (TCP or TLS; see the
/// module doc).
pub fn measure(
    options: &SuiteOptions,
    model: Model,
    transport: Transport,
    target: usize,
) -> Holding {
    let mut result = Holding {
        model,
        transport,
        target,
        status: Status::Failed,
        ..Holding::default()
    };
    if let Some(limit) = model.concurrency_limit(&ServerConfig::default()) {
        result.status = Status::NotApplicable;
        result.note = Some(format!(
            "serves at most {limit} connection(s) at once; the rest would wait unserved"
        ));
        return result;
    }
    let have = echo_loadgen::config::raise_fd_limit();
    if have < (target as u64).saturating_add(SPARE_DESCRIPTORS) {
        result.note = Some(format!(
            "the descriptor limit is {have}, too low for {target} connections (raise the hard \
             limit, `ulimit -Hn`, above {})",
            (target as u64).saturating_add(SPARE_DESCRIPTORS)
        ));
        return result;
    }
    if !matches!(transport, Transport::Tcp | Transport::Tls) {
        result.note = Some(format!(
            "C10K holds TCP or TLS connections, not {transport}"
        ));
        return result;
    }
    if !model.serves(transport) {
        result.note = Some(format!("{model} does not serve {transport}"));
        return result;
    }
    let server = match options.launcher.start_with(
        model.into(),
        transport,
        options.pinning.server_cpus.as_deref(),
        &[],
    ) {
        Ok(server) => server,
        Err(why) => {
            result.note = Some(format!("server did not start: {why}"));
            return result;
        }
    };
    let endpoint = server.endpoint().clone();
    let tls = match endpoint.transport() {
        Transport::Tls => match tls_options(transport).client_for(endpoint.socket_addr()) {
            Ok(client) => Some(client),
            Err(why) => {
                result.note = Some(format!("no TLS client: {why}"));
                return result;
            }
        },
        _ => None,
    };
    let pid = server.pid();
    let outcome = hold(options, &mut result, &Peer { endpoint, tls }, pid);
    let stopped = server.stop();
    match (outcome, stopped) {
        (Ok(()), Ok(())) => result.status = Status::Ok,
        (Err(why), _) | (Ok(()), Err(why)) => result.note = Some(why),
    }
    result
}

/// Steps 1–5 of the module doc against a started server.
fn hold(options: &SuiteOptions, result: &mut Holding, peer: &Peer, pid: u32) -> Result<(), String> {
    let idle_descriptors = descriptors(pid);
    let (baseline, baseline_rps) = active_load(options, peer, pid)?;
    result.baseline = Some(baseline);
    result.baseline_rps = baseline_rps;
    // The base is counted once the server has closed the active load's connections: counted
    // while some were still open (a server kept off its core by other tasks notices the
    // closes late), it would wait for that many idle connections too many. A server that keeps
    // descriptors it opened under load costs the 10 s, and its base is what it holds then.
    let target = Target {
        peer: peer.clone(),
        pid,
        base_descriptors: settle_descriptors(pid, idle_descriptors, Duration::from_secs(10)),
    };
    // Grown as the connections open: reserving `target` up front trusts the user's number.
    let mut held: Vec<Client> = Vec::with_capacity(result.target.min(1 << 16));
    let began = Instant::now();
    for level in levels(result.target) {
        open_until(&target, &mut held, level, began, &mut result.errors);
        // The server holds them when its descriptors say so, not when connect returned.
        if let Err(most) = wait_for_growth(pid, target.base_descriptors + held.len()) {
            return Err(format!(
                "the server stopped accepting: it held {} of {} connections and no more for {} s",
                most.saturating_sub(target.base_descriptors),
                held.len(),
                STALL.as_secs()
            ));
        }
        if held.len() < level {
            return Err(format!(
                "opened {} of {level} connections ({} connects failed)",
                held.len(),
                result.errors
            ));
        }
        if level == result.target {
            result.accept_s = began.elapsed().as_secs_f64();
        }
        // Let lazily allocated per-connection state settle before reading the RSS.
        std::thread::sleep(Duration::from_millis(100));
        result.levels.push(sample(pid, level));
    }
    let (under_idle, under_idle_rps) = active_load(options, peer, pid)?;
    result.under_idle = Some(under_idle);
    result.under_idle_rps = under_idle_rps;
    let connects_failed = result.errors;
    let echoes_failed = echo_each(&mut held);
    result.errors += echoes_failed;
    drop(held);
    settle_descriptors(pid, target.base_descriptors + 5, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    result.rss_after_close_kib = sample(pid, 0).rss_kib;
    if result.errors > 0 {
        return Err(format!(
            "{connects_failed} idle connection(s) failed to open, {echoes_failed} of {} failed \
             to echo within {} s",
            result.target,
            echo_deadline(result.target).as_secs()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_cli::Endpoint;
    use std::net::TcpStream;

    #[test]
    fn the_plan_holds_tcp_and_tls_and_each_model_over_what_it_serves() {
        assert_eq!(Plan::transports_of(None), [Transport::Tcp]);
        assert_eq!(
            Plan::transports_of(Some(&[Transport::Unix, Transport::Tls, Transport::Tcp])),
            [Transport::Tls, Transport::Tcp]
        );
        assert!(Plan::transports_of(Some(&[Transport::Udp])).is_empty());
        let plan = Plan {
            models: vec![Model::Mio, Model::ThreadPool],
            target: 300,
            transports: vec![Transport::Tcp, Transport::Tls],
        };
        let held = plan.holdings();
        assert!(held.starts_with(&[(Model::Mio, Transport::Tcp), (Model::Mio, Transport::Tls)]));
        for (model, transport) in held {
            assert!(model.serves(transport), "{model} over {transport}");
        }
    }

    /// A server that accepts and closes before any handshake: each connect fails at once and
    /// counts as a failed connection; opening gives up after [`MAX_CONNECT_ERRORS`] of them
    /// instead of waiting.
    #[test]
    fn a_failed_handshake_is_a_failed_connection_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let closer = std::thread::spawn(move || {
            // One more accept than connects can be made, bounded; the test's own connects end it.
            for _ in 0..=MAX_CONNECT_ERRORS {
                match listener.accept() {
                    Ok((stream, _)) => drop(stream),
                    Err(_) => return,
                }
            }
        });
        let endpoint = Endpoint::Tls(addr);
        let tls = tls_options(Transport::Tls)
            .client_for(endpoint.socket_addr())
            .unwrap();
        let target = Target {
            peer: Peer {
                endpoint,
                tls: Some(tls),
            },
            pid: std::process::id(),
            base_descriptors: usize::MAX / 2,
        };
        let mut held = Vec::new();
        let mut errors = 0;
        let began = Instant::now();
        open_until(&target, &mut held, 10, began, &mut errors);
        assert!(held.is_empty());
        assert_eq!(errors, MAX_CONNECT_ERRORS + 1);
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "{:?}",
            began.elapsed()
        );
        closer.join().unwrap();
    }

    #[test]
    fn the_echo_round_gets_more_time_for_more_connections() {
        assert_eq!(echo_deadline(0), Duration::from_secs(10));
        assert_eq!(echo_deadline(10_000), Duration::from_secs(30));
    }

    /// A server that lost connections fails the echo round however long it is given: here two
    /// of four are closed by the server, two echo.
    #[test]
    fn the_echo_round_counts_the_connections_a_server_lost() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held: Vec<Client> = (0..4)
            .map(|_| Client::connect(&Peer::from(Endpoint::Tcp(addr)), CONNECT_TIMEOUT).unwrap())
            .collect();
        let server = std::thread::spawn(move || {
            let accepted: Vec<TcpStream> = (0..4).map(|_| listener.accept().unwrap().0).collect();
            // The odd ones are dropped (closed); the even ones echo, and are kept open until
            // the client has read them.
            let mut kept: Vec<TcpStream> = accepted.into_iter().step_by(2).collect();
            for stream in &mut kept {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut message = [0u8; 8];
                stream.read_exact(&mut message).unwrap();
                stream.write_all(&message).unwrap();
            }
            kept
        });
        assert_eq!(echo_each(&mut held), 2);
        drop(server.join().unwrap());
    }

    /// `poll` beside 10,000 idle connections: its p99 less than doubled, but it served a
    /// twentieth of the messages. That is the finding, and the advice names it.
    #[test]
    fn a_halved_throughput_beside_idle_connections_counts_as_hurt() {
        let p99 = |p99| {
            Some(Latency {
                p99,
                ..Latency::default()
            })
        };
        let holding = |baseline_rps, under_idle_rps| Holding {
            status: Status::Ok,
            target: 10_000,
            baseline: p99(16_000),
            under_idle: p99(30_000),
            baseline_rps,
            under_idle_rps,
            ..Holding::default()
        };
        let advice = |h: Holding| {
            let found = echo_analysis::advice::c10k(&[h]);
            crate::render::advice::c10k_lines(&found, crate::render::Style::Markdown).join("\n")
        };
        let slow = holding(21_000.0, 740.0);
        let said = advice(slow);
        assert!(
            said.contains("p99 more than doubled or messages/s halved for"),
            "{said}"
        );
        assert!(said.contains("21000 → 740 msg/s"), "{said}");
        let steady = holding(13_000.0, 16_000.0);
        let said = advice(steady);
        assert!(said.contains("no model's p99 more than doubled"), "{said}");
    }
}
