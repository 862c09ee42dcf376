//! The datagram checks: what a UDP echo server must get right. The socket tutorials' UDP pitfalls
//! are a receive buffer smaller than the datagram (`recvfrom(1024)` truncates, silently), an
//! answer sent somewhere other than the address `recvfrom` returned, and a loop that dies when
//! the kernel reports an error for one datagram.
//!
//! Bounds: every socket has a read timeout, every loop a limit; all traffic goes to loopback.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use echo_cli::Endpoint;

use super::checks::{Probe, pattern};
use super::{CheckResult, Verdict};
use crate::config::max_datagram;

/// How long one datagram's echo may take before it is tried again.
const WAIT: Duration = Duration::from_secs(1);
/// Sends of one datagram before it counts as unanswered (loopback loses nothing unless a
/// buffer overflows, which these checks avoid outside the burst).
const TRIES: usize = 3;

fn fail(reason: impl Into<String>) -> Verdict {
    Verdict::Fail(reason.into())
}

/// The server's UDP address.
pub(super) fn server(p: &Probe<'_>) -> Result<SocketAddr, Verdict> {
    match p.target.endpoint {
        Endpoint::Udp(addr) => Ok(addr),
        ref other => Err(Verdict::Skip(format!(
            "a datagram check; {other} is a stream endpoint"
        ))),
    }
}

/// A client socket on the loopback address of `server`'s family, with a receive buffer that
/// holds the largest datagram several times over.
pub(super) fn client(server: SocketAddr) -> Result<UdpSocket, Verdict> {
    let local = if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let socket = UdpSocket::bind(local).map_err(|e| fail(format!("bind a client: {e}")))?;
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(1 << 20);
    let _ = socket.set_read_timeout(Some(WAIT));
    Ok(socket)
}

/// What came back for one datagram sent.
enum Answer {
    /// An echo, and where it came from.
    Echo(Vec<u8>, SocketAddr),
    /// Nothing within [`TRIES`] × [`WAIT`].
    Nothing,
}

/// Sends `message` to `server` and waits for one datagram back, trying again on a timeout.
fn exchange(socket: &UdpSocket, server: SocketAddr, message: &[u8]) -> Result<Answer, Verdict> {
    let mut buf = vec![0; 65_536];
    for _ in 0..TRIES {
        socket
            .send_to(message, server)
            .map_err(|e| fail(format!("sending a {}-byte datagram: {e}", message.len())))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => return Ok(Answer::Echo(buf[..n].to_vec(), from)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(fail(format!(
                    "{server} refused the datagram (ICMP port unreachable): nothing listens there"
                )));
            }
            Err(e) => return Err(fail(format!("receiving: {e}"))),
        }
    }
    Ok(Answer::Nothing)
}

/// One datagram of each size from 1 byte to the largest IPv4 payload (65,507 bytes; 65,527 over
/// IPv6) comes back whole, unchanged, from the address it was sent to.
pub fn datagrams_from_1_byte_to_the_largest_come_back_whole(p: &mut Probe<'_>) -> CheckResult {
    let server = server(p)?;
    let socket = client(server)?;
    let largest = max_datagram(server);
    for size in [1, 2, 64, 1_472, 1_473, 9_000, 32_768, largest] {
        let message = pattern(size, size as u64);
        match exchange(&socket, server, &message)? {
            Answer::Nothing => {
                return Err(fail(format!(
                    "no echo of a {size}-byte datagram in {TRIES} tries: is the server's \
                     receive buffer smaller than the datagram, or its socket buffer too small?"
                )));
            }
            Answer::Echo(echo, from) => {
                if from != server {
                    return Err(fail(format!(
                        "the echo came from {from}, not {server}: a client that connect()s its \
                         socket never sees it; answer from the socket that received"
                    )));
                }
                if echo.len() < size {
                    return Err(fail(format!(
                        "a {size}-byte datagram came back as {} bytes: the server's receive \
                         buffer truncates it (recvfrom(1024)?); receive into 65,535 bytes",
                        echo.len()
                    )));
                }
                if echo != message {
                    return Err(fail(format!(
                        "a {size}-byte datagram came back changed ({} bytes): the server \
                         alters what it echoes",
                        echo.len()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// 50 senders at once, 20 datagrams each (1,000 in all): every echo goes back to the sender that
/// sent it, never to another.
pub fn fifty_senders_a_thousand_datagrams_each_answered_to_its_sender(
    p: &mut Probe<'_>,
) -> CheckResult {
    const SENDERS: u16 = 50;
    const EACH: u16 = 20;
    let server = server(p)?;
    std::thread::scope(|scope| {
        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                scope.spawn(move || -> CheckResult {
                    let socket = client(server)?;
                    for seq in 0..EACH {
                        let mut message = Vec::with_capacity(64);
                        message.extend_from_slice(&sender.to_le_bytes());
                        message.extend_from_slice(&seq.to_le_bytes());
                        message.extend(pattern(60, u64::from(sender) << 16 | u64::from(seq)));
                        match exchange(&socket, server, &message)? {
                            Answer::Nothing => {
                                return Err(fail(format!(
                                    "sender {sender} got no echo of datagram {seq} in {TRIES} \
                                     tries, with {SENDERS} senders at once"
                                )));
                            }
                            Answer::Echo(echo, _) if echo == message => {}
                            Answer::Echo(echo, _) => {
                                let owner = echo.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]]));
                                return Err(fail(match owner {
                                    Some(owner) if owner != sender && owner < SENDERS => format!(
                                        "sender {sender} got sender {owner}'s datagram: the \
                                         echo went to the wrong address; send it to the address \
                                         recvfrom returned with it"
                                    ),
                                    _ => format!(
                                        "sender {sender}'s datagram {seq} came back changed"
                                    ),
                                }));
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for sender in senders {
            sender
                .join()
                .unwrap_or_else(|_| Err(fail("a sender thread panicked")))?;
        }
        Ok(())
    })
}

/// 20,000 datagrams of 1,400 bytes sent back to back, far more than a socket buffer holds: some
/// are lost, which is UDP's nature, but the server must keep running and answering, and what
/// comes back must be what was sent, once each.
pub fn a_burst_beyond_the_socket_buffer_is_loss_not_a_crash(p: &mut Probe<'_>) -> CheckResult {
    const BURST: u32 = 20_000;
    const SIZE: usize = 1_400;
    let server = server(p)?;
    let socket = client(server)?;
    let _ = socket.set_read_timeout(Some(Duration::from_millis(300)));
    let datagram = |seq: u32| {
        let mut d = pattern(SIZE, u64::from(seq));
        d[..4].copy_from_slice(&seq.to_le_bytes());
        d
    };
    let mut sent = 0u32;
    for seq in 0..BURST {
        // A full send buffer on the client's side is the client's loss, not the server's.
        if socket.send_to(&datagram(seq), server).is_ok() {
            sent += 1;
        }
    }
    let mut seen = vec![false; BURST as usize];
    let (mut back, mut buf) = (0u32, vec![0; 65_536]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Ok((n, _)) = socket.recv_from(&mut buf) else {
            break;
        };
        let seq = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes"));
        if n != SIZE || seq >= BURST || buf[..n] != datagram(seq)[..] {
            return Err(fail(
                "a datagram of the burst came back changed: the server mixes up datagrams \
                 under load (a buffer shared between receives?)",
            ));
        }
        if std::mem::replace(&mut seen[seq as usize], true) {
            return Err(fail(format!("datagram {seq} of the burst came back twice")));
        }
        back += 1;
    }
    if let Some(process) = p.server.as_deref_mut()
        && let Some(status) = process.exited()
    {
        return Err(fail(format!(
            "the server exited ({status}) during a burst of {sent} datagrams: a receive or \
             send error (ENOBUFS, a full buffer) must lose that datagram, not end the server"
        )));
    }
    let after = client(server)?;
    match exchange(&after, server, b"still there?")? {
        Answer::Echo(echo, _) if echo == b"still there?" => Ok(()),
        Answer::Echo(..) => Err(fail("after the burst, an echo came back changed")),
        Answer::Nothing => Err(fail(format!(
            "after a burst of {sent} datagrams ({back} came back) the server no longer answers: \
             does an error for one datagram end its loop?"
        ))),
    }
}

/// SIGTERM while datagrams keep arriving (four senders, from before the signal until the server
/// is gone): the server exits within 5 s, cleanly.
pub fn exits_on_sigterm_while_serving_datagrams(p: &mut Probe<'_>) -> CheckResult {
    let server = server(p)?;
    let socket = client(server)?;
    match exchange(&socket, server, b"before the signal")? {
        Answer::Echo(..) => {}
        Answer::Nothing => return Err(fail("no echo before the signal")),
    }
    let Some(process) = p.server.as_deref_mut() else {
        return Err(Verdict::Skip("needs to start the server itself".into()));
    };
    let sending = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let sending = std::sync::Arc::clone(&sending);
            let socket = client(server);
            std::thread::spawn(move || {
                let Ok(socket) = socket else { return };
                let deadline = Instant::now() + Duration::from_secs(8);
                while sending.load(std::sync::atomic::Ordering::Relaxed)
                    && Instant::now() < deadline
                {
                    let _ = socket.send_to(&[0x42; 64], server);
                    std::thread::sleep(Duration::from_micros(50));
                }
            })
        })
        .collect();
    // Traffic in flight when the signal arrives.
    std::thread::sleep(Duration::from_millis(200));
    let status = process.terminate(Duration::from_secs(5));
    sending.store(false, std::sync::atomic::Ordering::Relaxed);
    for sender in senders {
        let _ = sender.join();
    }
    match status {
        None => Err(fail(
            "did not exit within 5 s of SIGTERM while datagrams arrived: is a thread blocked in \
             recvfrom forever?",
        )),
        Some(status) => {
            use std::os::unix::process::ExitStatusExt;
            if status.success() || status.signal() == Some(libc::SIGTERM) {
                Ok(())
            } else {
                Err(fail(format!("exited with {status} on SIGTERM")))
            }
        }
    }
}
