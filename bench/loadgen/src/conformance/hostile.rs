//! The checks a hostile or greedy peer makes: datagrams no honest client sends (from port 0,
//! with a lying length, empty, the largest, a flood from one source), and one stream client
//! that writes as fast as it can beside 64 polite ones. What a peer does must cost that peer
//! only: the server goes on answering everyone else.
//!
//! Bounds: every socket has a timeout, every loop a count or a deadline; all traffic goes to
//! loopback. Datagrams from port 0 need a raw socket (root or `CAP_NET_RAW`); without one that
//! part is left out and the check says so only if everything else passed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::checks::{Probe, pattern};
use super::datagram::client;
use super::{CheckResult, Verdict};
use crate::config::max_datagram;
use crate::socket::Client;

fn fail(reason: impl Into<String>) -> Verdict {
    Verdict::Fail(reason.into())
}

/// Sends `payload` to `to` in a UDP datagram whose source port is 0, which no ordinary socket
/// can send from and no socket can answer (`sendto` a port-0 address fails with `EINVAL`).
/// `length` overrides the UDP header's length field (the kernel trims a datagram whose field
/// is shorter than what arrived, and drops one whose field is longer). Needs a raw socket:
/// `PermissionDenied` without root or `CAP_NET_RAW`.
pub fn send_from_port_zero(
    to: SocketAddrV4,
    payload: &[u8],
    length: Option<u16>,
) -> io::Result<()> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP))?;
    let total = u16::try_from(8 + payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "payload too large"))?;
    let mut datagram = Vec::with_capacity(usize::from(total));
    datagram.extend_from_slice(&0u16.to_be_bytes()); // source port: none
    datagram.extend_from_slice(&to.port().to_be_bytes());
    datagram.extend_from_slice(&length.unwrap_or(total).to_be_bytes());
    datagram.extend_from_slice(&0u16.to_be_bytes()); // no checksum (allowed over IPv4)
    datagram.extend_from_slice(payload);
    // A raw socket's address carries no port: the kernel puts the IP header around the
    // datagram as it is.
    socket.send_to(&datagram, &SockAddr::from(SocketAddrV4::new(*to.ip(), 0)))?;
    Ok(())
}

/// Honest senders asked after the hostile traffic, each from a port of its own, so that a
/// server with one socket per core (`SO_REUSEPORT` spreads senders by their address) is asked
/// on every socket, the one the hostile datagrams reached included.
const HONEST_SENDERS: usize = 16;

/// One datagram from each of [`HONEST_SENDERS`] fresh sockets; `Err` names the first that got
/// no echo in three tries of a second each.
pub(super) fn honest_senders_answered(server: SocketAddr) -> Result<(), String> {
    for sender in 0..HONEST_SENDERS {
        // Its read timeout is a second.
        let socket = client(server).map_err(|v| format!("{v:?}"))?;
        let message = pattern(32, sender as u64);
        let mut buf = [0; 64];
        let answered = (0..3).any(|_| {
            socket.send_to(&message, server).is_ok()
                && matches!(socket.recv_from(&mut buf), Ok((n, _)) if buf[..n] == message[..])
        });
        if !answered {
            return Err(format!(
                "honest sender {} of {HONEST_SENDERS} (from {}) got no echo",
                sender + 1,
                socket
                    .local_addr()
                    .map_or_else(|_| "?".into(), |a| a.to_string())
            ));
        }
    }
    Ok(())
}

/// Hostile datagrams, then honest ones: datagrams from source port 0 (which cannot be answered)
/// and one whose UDP length field is shorter than its payload (a truncated datagram), an empty
/// datagram, twenty of the largest size, and a flood of 100,000 from one source that never
/// reads its echoes. Every one of 16 honest senders must still get its echo afterwards, and
/// the server must not have exited.
pub fn hostile_datagrams_cost_only_themselves(p: &mut Probe<'_>) -> CheckResult {
    let server = super::datagram::server(p)?;
    honest_senders_answered(server)
        .map_err(|why| fail(format!("before any hostile datagram: {why}")))?;
    let mut left_out = None;
    match server {
        SocketAddr::V4(v4) => {
            let to = if v4.ip().is_unspecified() {
                SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, v4.port())
            } else {
                v4
            };
            for i in 0..32u64 {
                let payload = pattern(16 + i as usize, i);
                if let Err(e) = send_from_port_zero(to, &payload, None) {
                    left_out = Some(format!("datagrams from port 0 not sent ({e}: needs root)"));
                    break;
                }
            }
            if left_out.is_none() {
                // A length field of 12 for 64 bytes of payload: the kernel keeps the first 4.
                let _ = send_from_port_zero(to, &pattern(64, 7), Some(12));
            }
        }
        SocketAddr::V6(_) => {
            left_out = Some("datagrams from port 0 are sent over IPv4 only".into())
        }
    }
    let flooder = client(server)?;
    // A full send buffer is the flooder's own loss.
    let _ = flooder.send_to(&[], server);
    let largest = pattern(max_datagram(server), 1);
    for _ in 0..20 {
        let _ = flooder.send_to(&largest, server);
    }
    let small = pattern(64, 2);
    for _ in 0..100_000 {
        let _ = flooder.send_to(&small, server);
    }
    drop(flooder);
    // Give the server a moment to work through what its buffer kept of the flood.
    std::thread::sleep(Duration::from_millis(200));
    if let Some(process) = p.server.as_deref_mut()
        && let Some(status) = process.exited()
    {
        return Err(fail(format!(
            "the server exited ({status}) after hostile datagrams: an error for one datagram \
             (EINVAL sending to port 0) must lose that datagram, not end the server"
        )));
    }
    honest_senders_answered(server).map_err(|why| {
        fail(format!(
            "after hostile datagrams (port 0, truncated, empty, the largest, a flood): {why}; \
             does a send error for one datagram (EINVAL for port 0) end a loop?"
        ))
    })?;
    match left_out {
        // Everything that could be sent was survived; say what was not tried.
        Some(why) => Err(Verdict::Skip(format!("passed, but {why}"))),
        None => Ok(()),
    }
}

/// Echoes a polite client gets to do beside the greedy one.
const POLITE_ROUND_TRIPS: usize = 20;
/// Polite clients.
const POLITE_CLIENTS: usize = 64;
/// How long the polite clients get, all together, for their round trips.
const FAIRNESS_DEADLINE: Duration = Duration::from_secs(10);

/// One client writes 64 KiB chunks as fast as it can (and reads its echo as fast as it can, so
/// the server never runs out of room to write it back), while 64 others do 20 round trips of
/// 64 bytes each. Each of the 64 must finish within 10 s: a server that reads one connection
/// until it would block, with no budget per turn, serves the greedy client for as long as it
/// keeps writing. Skipped for a server that serves fewer than 65 clients at once by design.
pub fn one_greedy_client_does_not_starve_sixty_four_others(p: &mut Probe<'_>) -> CheckResult {
    if let Some(limit) = p.serial
        && limit <= POLITE_CLIENTS
    {
        return Err(Verdict::Skip(format!(
            "serves {limit} clients at once by design; the check needs {}",
            POLITE_CLIENTS + 1
        )));
    }
    let target = p.target.clone();
    let greedy = Client::connect(&target, Duration::from_secs(10))
        .map_err(|e| fail(format!("cannot connect the greedy client: {e}")))?;
    let _ = greedy.set_timeouts(Some(Duration::from_secs(2)));
    let greedy_reader = greedy
        .try_clone()
        .map_err(|e| fail(format!("cannot clone the greedy client: {e}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU64::new(0));
    let hard_stop = Instant::now() + FAIRNESS_DEADLINE + Duration::from_secs(5);
    let writer = {
        let (stop, mut greedy) = (Arc::clone(&stop), greedy);
        std::thread::spawn(move || {
            let chunk = pattern(64 * 1024, 9);
            while !stop.load(Ordering::Relaxed) && Instant::now() < hard_stop {
                if greedy.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = greedy.shutdown(std::net::Shutdown::Write);
        })
    };
    let reader = {
        let (stop, echoed, mut greedy) = (Arc::clone(&stop), Arc::clone(&echoed), greedy_reader);
        std::thread::spawn(move || {
            let mut buf = vec![0; 256 * 1024];
            while Instant::now() < hard_stop {
                match greedy.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => echoed.fetch_add(n as u64, Ordering::Relaxed),
                    Err(_) if stop.load(Ordering::Relaxed) => break,
                    Err(_) => continue,
                };
            }
        })
    };
    // The greedy client gets going before the others arrive.
    std::thread::sleep(Duration::from_millis(300));
    let began = Instant::now();
    let deadline = began + FAIRNESS_DEADLINE;
    let results: Vec<Result<Duration, String>> = std::thread::scope(|scope| {
        let polite: Vec<_> = (0..POLITE_CLIENTS)
            .map(|c| {
                let target = &target;
                scope.spawn(move || polite_client(target, c, deadline).map(|()| began.elapsed()))
            })
            .collect();
        polite
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a client thread panicked".into()))
            })
            .collect()
    });
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let _ = reader.join();
    let starved: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if let Some(first) = starved.first() {
        return Err(fail(format!(
            "beside one client writing as fast as it can, {} of {POLITE_CLIENTS} others were \
             not served within {FAIRNESS_DEADLINE:?} ({first}): does the server read one \
             connection until it would block, with no budget per turn?",
            starved.len()
        )));
    }
    if echoed.load(Ordering::Relaxed) == 0 {
        return Err(fail(
            "the client writing as fast as it can got nothing back: the server starved it instead",
        ));
    }
    Ok(())
}

/// [`POLITE_ROUND_TRIPS`] round trips of 64 bytes, each finished before `deadline`.
fn polite_client(target: &crate::socket::Peer, c: usize, deadline: Instant) -> Result<(), String> {
    let left = |what: &str| {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("client {c} {what}"))
    };
    let mut client = Client::connect(target, left("could not connect in time")?)
        .map_err(|e| format!("client {c} could not connect: {e}"))?;
    let mut buf = [0; 64];
    for r in 0..POLITE_ROUND_TRIPS {
        let _ = client.set_timeouts(Some(left(&format!(
            "got {r} of {POLITE_ROUND_TRIPS} echoes"
        ))?));
        let message = pattern(64, (c * 1000 + r) as u64);
        client
            .write_all(&message)
            .and_then(|()| client.read_exact(&mut buf))
            .map_err(|_| format!("client {c} got {r} of {POLITE_ROUND_TRIPS} echoes"))?;
        if buf != message[..] {
            return Err(format!("client {c}'s echo {r} came back changed"));
        }
    }
    Ok(())
}
