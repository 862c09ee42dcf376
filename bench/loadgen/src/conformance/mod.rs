//! The conformance checks: what every echo server must get right, in one definition that both
//! the models' tests (servers/tests/conformance.rs) and `echo-bench conformance` run, against a
//! server started from a command line for each check ([`ServerCommand`]) or one already
//! running at an address.
//!
//! They test the classic bugs of a hand-written socket server: a single `recv` per connection,
//! `send` where `sendall` is needed, `recv() == b''` not taken as end of file, a reset client
//! ending the server, one client at a time, unbounded buffering for a client that never reads,
//! a busy loop when descriptors run out, no way to stop it. The stream checks run on TCP and
//! Unix sockets alike; a UDP server gets the datagram checks (truncation, answers to the wrong
//! sender, a burst beyond its buffers, SIGTERM).

mod checks;
mod datagram;
mod hostile;
mod launch;
mod sustained;

use std::time::Duration;

use echo_cli::{Endpoint, TlsVersions, Transport};

use crate::socket::Peer;
use crate::tls::{TlsClient, Trust};

use serde::{Deserialize, Serialize};

pub use self::checks::{EXHAUSTION_FD_LIMIT, Probe, pattern};
pub use self::hostile::send_from_port_zero;
pub use self::launch::{Identity, Launched, ServerCommand, SocketDir};
pub use self::sustained::{DEFAULT_SUSTAIN, STALL};

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It failed, with the reason.
    Fail(String),
    /// It could not run here, with the reason.
    Skip(String),
}

/// What a check function returns.
pub type CheckResult = Result<(), Verdict>;

/// What a check needs from the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Any server at an address.
    Address,
    /// A server of its own, started for it (it signals or exhausts it), with at most this many
    /// descriptors if given.
    Start(Option<u64>),
}

/// One check: its name (also the name of its test for every model), what it shows, what it
/// needs, and its function.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// The name: snake case, as the models' tests are named.
    pub name: &'static str,
    /// One line on what it shows.
    pub about: &'static str,
    /// What it needs.
    pub needs: Needs,
    /// Whether it checks a datagram (UDP) server rather than a stream (TCP, Unix) one.
    pub datagram: bool,
    run: fn(&mut Probe<'_>) -> CheckResult,
}

impl Check {
    /// Whether the check applies to a server on `transport`.
    pub fn applies_to(&self, transport: Transport) -> bool {
        self.datagram != transport.is_stream()
    }
}

macro_rules! check {
    ($name:ident, $needs:expr, $about:literal) => {
        Check {
            name: stringify!($name),
            about: $about,
            needs: $needs,
            datagram: false,
            run: checks::$name,
        }
    };
    (datagram $name:ident, $needs:expr, $about:literal) => {
        check!(datagram datagram::$name, $needs, $about)
    };
    ($module:ident::$name:ident, $needs:expr, $about:literal) => {
        Check {
            name: stringify!($name),
            about: $about,
            needs: $needs,
            datagram: false,
            run: $module::$name,
        }
    };
    (datagram $module:ident::$name:ident, $needs:expr, $about:literal) => {
        Check {
            name: stringify!($name),
            about: $about,
            needs: $needs,
            datagram: true,
            run: $module::$name,
        }
    };
}

/// Every check, in the order they run: the stream checks (TCP and Unix sockets), then the
/// datagram checks (UDP). [`checks_for`] gives those that apply to one transport.
pub const CHECKS: &[Check] = &[
    check!(
        basic_echo,
        Needs::Address,
        "echoes two messages byte for byte"
    ),
    check!(
        binary_data_16_kib,
        Needs::Address,
        "echoes every byte value, zeros included"
    ),
    check!(
        thousands_of_tiny_writes,
        Needs::Address,
        "5,000 writes of 3 bytes come back in order"
    ),
    check!(
        sixteen_mib_while_reading_concurrently,
        Needs::Address,
        "16 MiB in odd chunks, read while written, then end of file"
    ),
    check!(
        half_close_echoes_everything_then_closes,
        Needs::Address,
        "after the client closes its side: the whole echo, then the server closes"
    ),
    check!(
        resetting_clients_only_end_their_own_connection,
        Needs::Address,
        "200 clients reset mid-stream; others are still served"
    ),
    check!(
        sixty_four_clients_two_hundred_round_trips_each,
        Needs::Address,
        "64 clients at once, 200 round trips each"
    ),
    check!(
        idle_connections_block_only_where_the_model_says_so,
        Needs::Address,
        "idle clients do not keep a new one waiting (unless serial by design)"
    ),
    check!(
        a_thousand_connections_held_open,
        Needs::Address,
        "1,000 connections held open at once, each served"
    ),
    check!(
        non_reading_client_keeps_server_memory_bounded,
        Needs::Address,
        "a client that never reads does not make the server buffer without bound"
    ),
    check!(
        exits_on_sigterm_with_connections_open,
        Needs::Start(None),
        "stops within 5 s of SIGTERM with connections open"
    ),
    check!(
        descriptor_exhaustion_is_survived_without_spinning,
        Needs::Start(Some(EXHAUSTION_FD_LIMIT)),
        "out of descriptors: no busy loop, every client served once they free up"
    ),
    check!(
        hostile::one_greedy_client_does_not_starve_sixty_four_others,
        Needs::Address,
        "one client writing as fast as it can does not keep 64 others from being served"
    ),
    check!(
        sustained::sustained_stream_traffic_is_served_throughout,
        Needs::Address,
        "8 connections at full speed for the sustain time (12 s): none goes 3 s unanswered"
    ),
    check!(
        datagram datagrams_from_1_byte_to_the_largest_come_back_whole,
        Needs::Address,
        "datagrams of 1 byte to 65,507 come back whole, from the address they were sent to"
    ),
    check!(
        datagram fifty_senders_a_thousand_datagrams_each_answered_to_its_sender,
        Needs::Address,
        "50 senders at once, 1,000 datagrams, each echo to its own sender"
    ),
    check!(
        datagram a_burst_beyond_the_socket_buffer_is_loss_not_a_crash,
        Needs::Address,
        "20,000 datagrams back to back: loss, but the server keeps running and answering"
    ),
    check!(
        datagram hostile::hostile_datagrams_cost_only_themselves,
        Needs::Address,
        "datagrams from port 0, truncated, empty, the largest, a flood: others still answered"
    ),
    check!(
        datagram sustained::sustained_datagrams_are_answered_throughout,
        Needs::Address,
        "8 senders at full speed for the sustain time (12 s): none goes 3 s unanswered"
    ),
    check!(
        datagram exits_on_sigterm_while_serving_datagrams,
        Needs::Start(None),
        "stops within 5 s of SIGTERM"
    ),
];

/// The checks that apply to a server on `transport`, in order.
pub fn checks_for(transport: Transport) -> impl Iterator<Item = &'static Check> {
    CHECKS.iter().filter(move |c| c.applies_to(transport))
}

/// The check called `name`.
pub fn find(name: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.name == name)
}

/// What to check: a command to start the server for each check, or a server already running
/// (then the checks that must start or signal it are skipped).
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Starts a fresh server for each check.
    pub command: Option<ServerCommand>,
    /// A server already running.
    pub target: Option<Endpoint>,
    /// The transport to start the server on ([`Subject::command`]); a target's own otherwise.
    pub transport: Transport,
    /// The running server's pid, if known.
    pub pid: Option<u32>,
    /// How many clients it serves at once by design, if bounded (`--expect-serial`: 1).
    pub serial: Option<usize>,
    /// How long the sustained-load checks run; [`DEFAULT_SUSTAIN`] when `None`.
    pub sustain: Option<Duration>,
    /// How a `tls:` server is spoken to; when `None`, any certificate is accepted and TLS 1.2
    /// and 1.3 are offered, since the checks judge the server's echo, not its certificate.
    pub tls: Option<TlsClient>,
    /// The certificate and key files a command that takes `{cert}` and `{key}` is given
    /// ([`ServerCommand::serves_tls`]).
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A check's result, as `echo-bench conformance --json` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The check.
    pub check: String,
    /// `pass`, `fail` or `skip`.
    pub status: String,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long it took, seconds.
    pub seconds: f64,
}

impl Outcome {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.status == "pass"
    }

    /// Whether it failed.
    pub fn failed(&self) -> bool {
        self.status == "fail"
    }
}

/// Runs `check` against `subject`.
pub fn run(check: &Check, subject: &Subject) -> Outcome {
    let began = std::time::Instant::now();
    let result = run_inner(check, subject);
    let (status, reason) = match result {
        Ok(()) => ("pass", None),
        Err(Verdict::Fail(why)) => ("fail", Some(why)),
        Err(Verdict::Skip(why)) => ("skip", Some(why)),
    };
    Outcome {
        check: check.name.to_owned(),
        status: status.to_owned(),
        reason,
        seconds: began.elapsed().as_secs_f64(),
    }
}

/// `endpoint` with the subject's TLS client, or the permissive default for a `tls:` endpoint.
fn peer(endpoint: &Endpoint, subject: &Subject) -> Result<Peer, Verdict> {
    let tls = match (endpoint, &subject.tls) {
        (Endpoint::Tls(_), Some(tls)) => Some(tls.clone()),
        (Endpoint::Tls(addr), None) => Some(
            TlsClient::new(
                &Trust::Insecure,
                TlsVersions::BOTH,
                false,
                TlsClient::name_for(addr.ip()),
            )
            .map_err(|e| Verdict::Fail(format!("cannot configure the TLS client: {e}")))?,
        ),
        _ => None,
    };
    Ok(Peer {
        endpoint: endpoint.clone(),
        tls,
    })
}

fn run_inner(check: &Check, subject: &Subject) -> CheckResult {
    let transport = subject
        .target
        .as_ref()
        .map_or(subject.transport, Endpoint::transport);
    if !check.applies_to(transport) {
        let kind = if check.datagram {
            "a datagram"
        } else {
            "a stream"
        };
        return Err(Verdict::Skip(format!(
            "{kind} check; the server is on {transport}:"
        )));
    }
    if let Some(command) = &subject.command {
        let fd_limit = match check.needs {
            Needs::Start(limit) => limit,
            Needs::Address => None,
        };
        let mut server = command
            .launch(
                subject.transport,
                fd_limit,
                subject
                    .identity
                    .as_ref()
                    .map(|(cert, key)| launch::Identity { cert, key }),
            )
            .map_err(|e| Verdict::Fail(format!("the server did not start: {e}")))?;
        let (target, pid) = (peer(server.endpoint(), subject)?, server.pid());
        let result = (check.run)(&mut Probe {
            target,
            pid: Some(pid),
            serial: subject.serial,
            server: Some(&mut server),
            sustain: subject.sustain.unwrap_or(DEFAULT_SUSTAIN),
        });
        // Stopped politely; `Launched`'s drop kills one that ignores SIGTERM (judging that is
        // the SIGTERM check's job, not every check's).
        server.terminate(Duration::from_secs(2));
        // A failure quotes what the server last said on stderr: often the reason itself.
        return result.map_err(|verdict| match verdict {
            Verdict::Fail(why) => {
                let said = server.stderr_tail();
                if said.is_empty() {
                    Verdict::Fail(why)
                } else {
                    Verdict::Fail(format!("{why} [the server's stderr: {}]", said.join(" | ")))
                }
            }
            skip => skip,
        });
    }
    let Some(target) = subject.target.clone() else {
        return Err(Verdict::Skip(
            "no server: give a command or a target".to_owned(),
        ));
    };
    if let Needs::Start(_) = check.needs {
        return Err(Verdict::Skip(
            "needs to start or signal the server itself (give --command)".to_owned(),
        ));
    }
    (check.run)(&mut Probe {
        target: peer(&target, subject)?,
        pid: subject.pid,
        serial: subject.serial,
        server: None,
        sustain: subject.sustain.unwrap_or(DEFAULT_SUSTAIN),
    })
}
