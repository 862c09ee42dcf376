//! The sustained-load checks: traffic at full speed for [`Probe::sustain`] (12 s by default,
//! minutes with `echo-bench conformance --sustain`), through which the server must keep
//! answering every client. They catch what a short check cannot: a loop that dies after a
//! million datagrams, a timer that ends a ring after some seconds, a leak that stalls a
//! connection after a while.
//!
//! A client that gets no echo for [`STALL`] has stalled: the check fails, saying after how long
//! and how many messages. Bounds: every socket has a timeout, every loop the sustain deadline.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::checks::{Probe, pattern};
use super::{CheckResult, Verdict};
use crate::socket::Client;

/// How long a client may go without an echo before the server counts as no longer answering.
pub const STALL: Duration = Duration::from_secs(3);

/// How long the sustained checks run unless told otherwise.
pub const DEFAULT_SUSTAIN: Duration = Duration::from_secs(12);

/// Every client must have had an echo within this long of the run's end: a server that died
/// less than [`STALL`] before the end is caught here.
pub const LAST_ECHO_BEFORE_END: Duration = Duration::from_millis(1_500);

/// Clients at once (fewer for a server bounded by design).
const CLIENTS: usize = 8;

fn fail(reason: impl Into<String>) -> Verdict {
    Verdict::Fail(reason.into())
}

/// What the clients of a sustained check share: messages echoed, and when each client last got
/// an echo (milliseconds since the start), which the watcher reads.
struct Progress {
    start: Instant,
    echoed: AtomicU64,
    last_echo_ms: Vec<AtomicU64>,
}

impl Progress {
    fn new(clients: usize) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            echoed: AtomicU64::new(0),
            last_echo_ms: (0..clients).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn echoed(&self, client: usize) {
        self.echoed.fetch_add(1, Ordering::Relaxed);
        self.last_echo_ms[client].store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Watches until `sustain` has passed: `Err` once a client has had no echo for [`STALL`],
    /// or a client's own error, whichever comes first.
    fn watch(
        &self,
        sustain: Duration,
        failed: &std::sync::Mutex<Option<String>>,
    ) -> Result<(), String> {
        while self.start.elapsed() < sustain {
            std::thread::sleep(Duration::from_millis(100));
            if let Some(why) = failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Err(why);
            }
            let now = self.start.elapsed().as_millis() as u64;
            for (client, last) in self.last_echo_ms.iter().enumerate() {
                let last = last.load(Ordering::Relaxed);
                if now.saturating_sub(last) > STALL.as_millis() as u64 {
                    return Err(format!(
                        "client {client} got no echo for {STALL:?}, {:.1} s into the run, after \
                         {} messages in all",
                        last as f64 / 1000.0,
                        self.echoed.load(Ordering::Relaxed)
                    ));
                }
            }
        }
        let now = self.start.elapsed().as_millis() as u64;
        for (client, last) in self.last_echo_ms.iter().enumerate() {
            let last = last.load(Ordering::Relaxed);
            if now.saturating_sub(last) > LAST_ECHO_BEFORE_END.as_millis() as u64 {
                return Err(format!(
                    "client {client}'s last echo came {:.1} s into the run, {:.1} s before its \
                     end, after {} messages in all",
                    last as f64 / 1000.0,
                    (now - last) as f64 / 1000.0,
                    self.echoed.load(Ordering::Relaxed)
                ));
            }
        }
        Ok(())
    }
}

/// Runs `client` on `clients` threads for `sustain`, watching their progress; then the server
/// must still be running, and `still_answers` (a fresh client's exchange) must succeed: a
/// server that died in the last [`STALL`] of the run is caught there.
fn sustain_with(
    p: &mut Probe<'_>,
    clients: usize,
    what: &str,
    client: impl Fn(usize, &Progress, Instant) -> Result<(), String> + Sync,
    still_answers: impl FnOnce() -> Result<(), String>,
) -> CheckResult {
    let sustain = p.sustain;
    let progress = Progress::new(clients);
    let failed = std::sync::Mutex::new(None);
    let deadline = progress.start + sustain;
    let watched = std::thread::scope(|scope| {
        for c in 0..clients {
            let (progress, failed, client) = (&*progress, &failed, &client);
            scope.spawn(move || {
                if let Err(why) = client(c, progress, deadline) {
                    failed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(why);
                }
            });
        }
        let watched = progress.watch(sustain, &failed);
        // The clients stop at the deadline on their own; a failed watch ends them through the
        // server's silence (their timeouts), within the stall limit.
        watched
    });
    let echoed = progress.echoed.load(Ordering::Relaxed);
    if let Err(why) = watched {
        return Err(fail(format!(
            "{what} for {sustain:?}: {why}: the server stopped answering under sustained load"
        )));
    }
    if let Some(process) = p.server.as_deref_mut()
        && let Some(status) = process.exited()
    {
        return Err(fail(format!(
            "the server exited ({status}) during {sustain:?} of {what} ({echoed} echoes)"
        )));
    }
    if echoed == 0 {
        return Err(fail(format!("{what}: not one echo in {sustain:?}")));
    }
    still_answers().map_err(|why| {
        fail(format!(
            "after {sustain:?} of {what} ({echoed} echoes), a new client is not answered: {why}"
        ))
    })
}

/// 8 connections (or as many as the server serves at once) doing round trips of 1 byte to
/// 16 KiB, every echo verified, for the sustain time: none may go [`STALL`] without an echo.
pub fn sustained_stream_traffic_is_served_throughout(p: &mut Probe<'_>) -> CheckResult {
    let clients = p.serial.map_or(CLIENTS, |limit| limit.clamp(1, CLIENTS));
    let target = p.target.clone();
    let fresh = target.clone();
    let still_answers = move || {
        let mut client = Client::connect(&fresh, STALL).map_err(|e| e.to_string())?;
        let _ = client.set_timeouts(Some(STALL));
        let mut buf = [0; 12];
        client
            .write_all(b"still there?")
            .and_then(|()| client.read_exact(&mut buf))
            .map_err(|e| e.to_string())?;
        if &buf == b"still there?" {
            Ok(())
        } else {
            Err("its echo came back changed".into())
        }
    };
    sustain_with(
        p,
        clients,
        "stream round trips",
        |c, progress, deadline| {
            let mut client = Client::connect(&target, STALL)
                .map_err(|e| format!("client {c} could not connect: {e}"))?;
            let _ = client.set_timeouts(Some(STALL));
            let sizes = [1, 64, 1_000, 4_096, 16_384];
            let messages: Vec<Vec<u8>> = sizes
                .iter()
                .map(|&n| pattern(n, (c * 7 + n) as u64))
                .collect();
            let mut buf = vec![0; 16_384];
            progress.echoed(c);
            for round in 0usize.. {
                if Instant::now() >= deadline {
                    return Ok(());
                }
                let message = &messages[round % messages.len()];
                let echo = &mut buf[..message.len()];
                client
                    .write_all(message)
                    .and_then(|()| client.read_exact(echo))
                    .map_err(|e| format!("client {c}, round trip {round}: {e}"))?;
                if echo != &message[..] {
                    return Err(format!("client {c}'s echo {round} came back changed"));
                }
                progress.echoed(c);
            }
            Ok(())
        },
        still_answers,
    )
}

/// 8 senders doing datagram round trips (64 to 1,400 bytes, each numbered) for the sustain time;
/// a datagram unanswered in 200 ms is lost (UDP's nature) and the next is sent, but no sender may
/// go [`STALL`] without an echo, and no echo may come back changed.
pub fn sustained_datagrams_are_answered_throughout(p: &mut Probe<'_>) -> CheckResult {
    let server = super::datagram::server(p)?;
    sustain_with(
        p,
        CLIENTS,
        "datagram round trips",
        move |c, progress, deadline| datagram_client(server, c, progress, deadline),
        || super::hostile::honest_senders_answered(server),
    )
}

fn datagram_client(
    server: SocketAddr,
    c: usize,
    progress: &Progress,
    deadline: Instant,
) -> Result<(), String> {
    let socket = super::datagram::client(server).map_err(|v| format!("{v:?}"))?;
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let datagram = |seq: u64| {
        let mut d = pattern(64 + (seq % 1_337) as usize, seq ^ ((c as u64) << 40));
        d[..8].copy_from_slice(&seq.to_le_bytes());
        d
    };
    let mut buf = vec![0; 2_048];
    progress.echoed(c);
    let mut seq = 0u64;
    while Instant::now() < deadline {
        seq += 1;
        let sent = datagram(seq);
        // A full send buffer is this client's loss, not the server's.
        let _ = socket.send_to(&sent, server);
        // Echoes of earlier, timed-out datagrams may still arrive: read past them.
        loop {
            match socket.recv_from(&mut buf) {
                Ok((n, _)) if n >= 8 => {
                    let got = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
                    if got > seq || buf[..n] != datagram(got)[..] {
                        return Err(format!("sender {c}'s datagram {got} came back changed"));
                    }
                    if got == seq {
                        progress.echoed(c);
                        break;
                    }
                }
                Ok(_) => return Err(format!("sender {c} got a datagram shorter than it sent")),
                // Lost: send the next.
                Err(_) => break,
            }
        }
    }
    Ok(())
}
