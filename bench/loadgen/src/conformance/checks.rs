//! The checks themselves, each a function of a [`Probe`]: a server at an address, with its pid
//! and the running process where the harness started it. A failure says what went wrong in the
//! terms of the socket tutorials' pitfalls, and what usually causes it.
//!
//! Bounds: every socket has read and write timeouts, every loop a limit or a deadline.
//!
//! It is long because it holds every stream check, each a short function, so they read in one place
//! beside `CHECKS`.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;

use std::time::{Duration, Instant};

use super::launch::Launched;
use super::{CheckResult, Verdict};
use crate::procfs::ProcSample;
use crate::socket::{Client, Peer};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What a check gets to work with.
#[derive(Debug)]
pub struct Probe<'a> {
    /// Where the server listens: TCP, a Unix socket or TLS for the stream checks, UDP for the
    /// datagram checks; with the TLS client configuration of a `tls:` server.
    pub target: Peer,
    /// Its pid, when known (memory and CPU checks need it).
    pub pid: Option<u32>,
    /// How many clients it serves at once by design (`Some(1)`: one at a time), or `None`
    /// for as many as connect.
    pub serial: Option<usize>,
    /// The server process, where the harness started it for this check.
    pub server: Option<&'a mut Launched>,
    /// How long the sustained-load checks run.
    pub sustain: Duration,
}

fn fail(reason: impl Into<String>) -> Verdict {
    Verdict::Fail(reason.into())
}

fn connect(target: &Peer) -> Result<Client, Verdict> {
    let stream = Client::connect(target, IO_TIMEOUT).map_err(|e| {
        let hint = if e.kind() == ErrorKind::InvalidData {
            "the TLS handshake failed: does --ca hold the server's certificate, or its issuer?"
        } else {
            "not listening, or its listen backlog is full?"
        };
        fail(format!("cannot connect to {target}: {e} ({hint})"))
    })?;
    let _ = stream.set_timeouts(Some(IO_TIMEOUT));
    Ok(stream)
}

/// Bytes of every value in a pseudo-random order, so a shifted or swapped byte shows.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Where `got` first differs from `sent`, as a reason.
fn differs(sent: &[u8], got: &[u8]) -> Verdict {
    let at = sent.iter().zip(got).position(|(a, b)| a != b);
    match at {
        Some(i) => fail(format!(
            "the echo differs from what was sent at byte {i} of {}: the server changes the \
             bytes it echoes",
            sent.len()
        )),
        None if got.len() < sent.len() => lost(sent.len(), got.len()),
        None => fail(format!(
            "echoed {} bytes for {} sent: the server adds bytes",
            got.len(),
            sent.len()
        )),
    }
}

/// `got` of `sent` bytes came back before the connection ended.
fn lost(sent: usize, got: usize) -> Verdict {
    let size = |n: usize| {
        if n >= 1 << 20 {
            format!("{} MiB", n >> 20)
        } else if n >= 1024 {
            format!("{} KiB", n >> 10)
        } else {
            format!("{n} bytes")
        }
    };
    if got > 0 && got <= 1024 && sent > 2048 {
        return fail(format!(
            "only {} of a {} echo came back, then the connection ended: one recv() per \
             connection? loop until recv() returns b''",
            size(got),
            size(sent)
        ));
    }
    fail(format!(
        "lost {} of a {} echo: partial writes not retried? use sendall (or loop over send)",
        size(sent - got),
        size(sent)
    ))
}

/// The connection ended after `got` of `sent` echoed bytes.
fn closed_early(sent: usize, got: usize) -> Verdict {
    if got == 0 {
        fail(
            "the server closed the connection instead of echoing: does it serve only one \
             message per connection? loop until recv() returns b''",
        )
    } else {
        lost(sent, got)
    }
}

/// Sends `message` and reads its echo.
fn round_trip(stream: &mut Client, message: &[u8]) -> CheckResult {
    if let Err(e) = stream.write_all(message) {
        return Err(
            if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) {
                fail(
                    "the server closed the connection before the next message: does it serve only \
                 one message per connection? loop until recv() returns b''",
                )
            } else {
                fail(format!("writing to the server failed: {e}"))
            },
        );
    }
    let mut echoed = vec![0; message.len()];
    let mut got = 0;
    while got < echoed.len() {
        // A server that closes with the client's next message unread resets the connection
        // instead of ending it: the same fault, seen one way or the other.
        let ended = |e: &std::io::Error| {
            matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            )
        };
        match stream.read(&mut echoed[got..]) {
            Ok(0) => {
                return Err(closed_early(message.len(), got));
            }
            Err(e) if ended(&e) => {
                return Err(closed_early(message.len(), got));
            }
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(fail(format!(
                    "no echo within {IO_TIMEOUT:?} ({got} of {} bytes came back)",
                    message.len()
                )));
            }
            Err(e) => return Err(fail(format!("reading the echo failed: {e}"))),
        }
    }
    if echoed != message {
        return Err(differs(message, &echoed));
    }
    Ok(())
}

/// Reads until EOF (bounded by the read timeout).
fn read_to_eof(mut stream: &Client, expected: usize) -> Result<Vec<u8>, Verdict> {
    let mut all = Vec::with_capacity(expected);
    match stream.read_to_end(&mut all) {
        Ok(_) => Ok(all),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            if all.len() >= expected {
                Err(fail(
                    "everything was echoed, but the server never closed after the client \
                     closed its side: is recv() == b'' treated as end of file?",
                ))
            } else {
                Err(lost(expected, all.len()))
            }
        }
        Err(_) => Ok(all),
    }
}

/// Echoes two messages, byte for byte.
pub fn basic_echo(p: &mut Probe<'_>) -> CheckResult {
    let mut client = connect(&p.target)?;
    round_trip(&mut client, b"hello, echo")?;
    round_trip(&mut client, b"and again")
}

/// Echoes 16 KiB holding every byte value, zeros and 0xff included.
pub fn binary_data_16_kib(p: &mut Probe<'_>) -> CheckResult {
    let mut client = connect(&p.target)?;
    let mut data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    data.extend(pattern(12 * 1024, 16));
    round_trip(&mut client, &data)
}

/// 5,000 writes of 3 bytes each come back in order, whatever the segmentation.
pub fn thousands_of_tiny_writes(p: &mut Probe<'_>) -> CheckResult {
    let client = connect(&p.target)?;
    let data = pattern(5000 * 3, 3);
    let mut writer = client
        .try_clone()
        .map_err(|e| fail(format!("clone: {e}")))?;
    let sent = data.clone();
    let write = std::thread::spawn(move || {
        for chunk in sent.chunks(3) {
            if writer.write_all(chunk).is_err() {
                return;
            }
        }
    });
    let mut echoed = vec![0; data.len()];
    let read = (&client).read_exact(&mut echoed);
    let _ = client.shutdown(Shutdown::Both);
    let _ = write.join();
    match read {
        Ok(()) if echoed == data => Ok(()),
        Ok(()) => Err(differs(&data, &echoed)),
        Err(e) => Err(fail(format!(
            "the echo of 5,000 tiny writes did not all come back: {e}"
        ))),
    }
}

/// Writes `data` with `write` on a second handle of one connection, then closes the write
/// side, while this thread reads the echo until end of file; the echo must be `data`.
fn echo_until_eof(
    target: &Peer,
    data: Vec<u8>,
    write: fn(&mut Client, &[u8]) -> std::io::Result<()>,
) -> CheckResult {
    let client = connect(target)?;
    let mut writer = client
        .try_clone()
        .map_err(|e| fail(format!("clone: {e}")))?;
    let sent = data.clone();
    let writing = std::thread::spawn(move || {
        if write(&mut writer, &sent).is_ok() {
            let _ = writer.shutdown(Shutdown::Write);
        }
    });
    let echoed = read_to_eof(&client, data.len());
    let _ = client.shutdown(Shutdown::Both);
    let _ = writing.join();
    let echoed = echoed?;
    if echoed != data {
        return Err(differs(&data, &echoed));
    }
    Ok(())
}

/// 16 MiB written in odd-sized chunks while its echo is read concurrently, then a half-close:
/// the whole echo, then EOF.
pub fn sixteen_mib_while_reading_concurrently(p: &mut Probe<'_>) -> CheckResult {
    echo_until_eof(&p.target, pattern(16 << 20, 7), |writer, data| {
        // Odd, varying chunk sizes so reads and writes never line up.
        let (mut offset, mut size) = (0, 1);
        while offset < data.len() {
            let end = (offset + size).min(data.len());
            writer.write_all(&data[offset..end])?;
            offset = end;
            size = size * 7 % 65_521 + 1;
        }
        Ok(())
    })
}

/// 256 KiB, then the client closes its side: everything is echoed, then the server closes.
pub fn half_close_echoes_everything_then_closes(p: &mut Probe<'_>) -> CheckResult {
    echo_until_eof(&p.target, pattern(256 * 1024, 11), |writer, data| {
        writer.write_all(data)
    })
}

/// 200 clients reset their connections mid-stream (and one sends garbage and leaves); other
/// clients, old and new, are still served.
pub fn resetting_clients_only_end_their_own_connection(p: &mut Probe<'_>) -> CheckResult {
    // A server that serves one client at a time would queue the resets behind a survivor
    // held open through them: there it connects afterwards instead.
    let mut survivor = match p.serial {
        None => {
            let mut survivor = connect(&p.target)?;
            round_trip(&mut survivor, b"before")?;
            Some(survivor)
        }
        Some(_) => None,
    };
    for i in 0..200u64 {
        let Ok(client) = Client::connect(&p.target, IO_TIMEOUT) else {
            return Err(fail(format!(
                "after {i} clients reset their connections, the server stopped accepting: does \
                 ConnectionResetError escape the accept loop? catch it per connection"
            )));
        };
        let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = (&client).write_all(&pattern(4096 + i as usize, i));
        if i % 2 == 0 {
            let mut some = [0; 100];
            let _ = (&client).read(&mut some);
        }
        // SO_LINGER 0: close sends RST instead of FIN, mid-stream (a Unix socket has no RST:
        // there it is an abrupt close with unread data).
        let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
        drop(client);
    }
    let garbage = connect(&p.target)?;
    let _ = (&garbage).write_all(&[0xff; 1000]);
    drop(garbage);
    let reset_hint = |v: Verdict| match v {
        Verdict::Fail(why) => fail(format!(
            "after clients reset their connections, another client was not served ({why}): \
             does ConnectionResetError end the server's loop? catch it per connection"
        )),
        other => other,
    };
    let mut survivor = match survivor.take() {
        Some(s) => s,
        None => connect(&p.target).map_err(reset_hint)?,
    };
    round_trip(&mut survivor, b"still served").map_err(reset_hint)?;
    drop(survivor);
    let mut fresh = connect(&p.target).map_err(reset_hint)?;
    round_trip(&mut fresh, b"new client served").map_err(reset_hint)
}

/// 64 clients at once, 200 round trips each, of varying sizes.
pub fn sixty_four_clients_two_hundred_round_trips_each(p: &mut Probe<'_>) -> CheckResult {
    let target = &p.target;
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..64u64)
            .map(|c| {
                scope.spawn(move || -> CheckResult {
                    let mut client = connect(target)?;
                    for r in 0..200u64 {
                        let message = pattern(1 + ((c * 31 + r) % 200) as usize, c * 1000 + r);
                        round_trip(&mut client, &message)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for client in clients {
            client
                .join()
                .unwrap_or_else(|_| Err(fail("a client thread panicked")))?;
        }
        Ok(())
    })
}

/// Idle clients (as many as the server serves at once by design, or three) do not keep a new
/// client from being served, unless the server serves a bounded number by design, in which
/// case the new client is served as soon as one leaves.
pub fn idle_connections_block_only_where_the_model_says_so(p: &mut Probe<'_>) -> CheckResult {
    queues_over_tls(p)?;
    let idle_count = p.serial.unwrap_or(3);
    let mut idle = Vec::new();
    for _ in 0..idle_count {
        let mut c = connect(&p.target)?;
        round_trip(&mut c, b"x")?;
        idle.push(c);
    }
    let mut next = connect(&p.target)?;
    next.write_all(b"next")
        .map_err(|e| fail(format!("write: {e}")))?;
    let _ = next.set_read_timeout(Some(Duration::from_secs(2)));
    let mut echoed = [0; 4];
    let served = next.read_exact(&mut echoed).is_ok();
    let _ = next.set_read_timeout(Some(IO_TIMEOUT));
    match (p.serial, served) {
        (None, true) => Ok(()),
        (None, false) => Err(fail(format!(
            "{idle_count} idle client(s) kept a new client from being served for 2 s: the \
             server serves one client at a time (use threads, selectors or asyncio), or pass \
             --expect-serial if that is its design"
        ))),
        (Some(n), true) => Err(fail(format!(
            "served a client beyond the {n} it should serve at once by design"
        ))),
        (Some(_), false) => {
            // Freeing one lets the waiting client in, with its echo intact.
            drop(idle.pop());
            next.read_exact(&mut echoed).map_err(|e| {
                fail(format!(
                    "the waiting client was not served after an idle one left: {e}"
                ))
            })?;
            if &echoed != b"next" {
                return Err(differs(b"next", &echoed));
            }
            Ok(())
        }
    }
}

/// 1,000 connections held open at once, each echoing its own number.
pub fn a_thousand_connections_held_open(p: &mut Probe<'_>) -> CheckResult {
    if let Some(n) = p.serial {
        return Err(Verdict::Skip(format!(
            "serves {n} client(s) at once by design"
        )));
    }
    let mut clients = Vec::with_capacity(1000);
    for i in 0..1000 {
        match Client::connect(&p.target, IO_TIMEOUT) {
            Ok(c) => {
                let _ = c.set_read_timeout(Some(IO_TIMEOUT));
                clients.push(c);
            }
            Err(e) => {
                return Err(fail(format!(
                    "could open only {i} of 1,000 connections ({e}): a small listen backlog, or \
                     a descriptor limit?"
                )));
            }
        }
    }
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .write_all(&(i as u32).to_le_bytes())
            .map_err(|e| fail(format!("write on held connection {i}: {e}")))?;
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let mut echoed = [0; 4];
        client.read_exact(&mut echoed).map_err(|e| {
            fail(format!(
                "held connection {i} of 1,000 got no echo ({e}): are connections beyond some \
                 number left unserved?"
            ))
        })?;
        if u32::from_le_bytes(echoed) != i as u32 {
            return Err(differs(&(i as u32).to_le_bytes(), &echoed));
        }
    }
    Ok(())
}

/// A client writes and never reads: the server must stop taking its bytes (its memory stays
/// bounded) and keep serving others.
pub fn non_reading_client_keeps_server_memory_bounded(p: &mut Probe<'_>) -> CheckResult {
    let hog = connect(&p.target)?;
    hog.set_nonblocking(true)
        .map_err(|e| fail(format!("nonblocking: {e}")))?;
    let rss = |pid: Option<u32>| pid.and_then(ProcSample::read).map(|s| s.rss_kib);
    let rss_before = rss(p.pid);
    let chunk = vec![0x5a; 64 * 1024];
    let mut pushed = 0usize;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last_progress = Instant::now();
    // Push without ever reading until the writes stall for a while (or time runs out).
    while Instant::now() < deadline && last_progress.elapsed() < Duration::from_millis(700) {
        match (&hog).write(&chunk) {
            Ok(n) => {
                pushed += n;
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => {
                return Err(fail(format!(
                    "the server dropped a client that does not read: {e}"
                )));
            }
        }
    }
    // Kernel socket buffers on both sides absorb a few MiB; an unbounded server absorbs all.
    if pushed >= 64 << 20 {
        return Err(fail(format!(
            "the server kept reading from a client that never reads ({} MiB taken in 3 s): it \
             buffers without bound; stop reading a client while its echo cannot be written \
             (asyncio: await writer.drain())",
            pushed >> 20
        )));
    }
    if let (Some(before), Some(after)) = (rss_before, rss(p.pid)) {
        let grown = after.saturating_sub(before);
        if grown >= 16 * 1024 {
            return Err(fail(format!(
                "server memory grew by {} MiB behind a client that never reads: unbounded \
                 buffering (asyncio: await writer.drain())",
                grown >> 10
            )));
        }
    }
    if p.serial.is_none() {
        let mut other = connect(&p.target)?;
        round_trip(&mut other, b"others are still served").map_err(|v| match v {
            Verdict::Fail(why) => fail(format!(
                "a client that does not read kept others from being served: {why}"
            )),
            other => other,
        })?;
    }
    Ok(())
}

/// SIGTERM with connections open: the server exits within 5 s.
pub fn exits_on_sigterm_with_connections_open(p: &mut Probe<'_>) -> CheckResult {
    queues_over_tls(p)?;
    let mut client = connect(&p.target)?;
    round_trip(&mut client, b"before the signal")?;
    let _idle = connect(&p.target)?;
    let Some(server) = p.server.as_deref_mut() else {
        return Err(Verdict::Skip("needs to start the server itself".into()));
    };
    match server.terminate(Duration::from_secs(5)) {
        None => Err(fail(
            "did not exit within 5 s of SIGTERM with connections open: is a blocking call \
             (accept, recv, a thread join) waiting forever?",
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

/// Skips a check that queues a client beyond a bounded server's limit, over TLS: a TCP client
/// connects into the listen backlog and waits there, but a TLS client's connect waits for a
/// handshake that a server at its limit does not answer. The bound is checked over tcp:.
fn queues_over_tls(p: &Probe<'_>) -> CheckResult {
    match p.serial {
        Some(limit) if p.target.endpoint.transport() == echo_cli::Transport::Tls => {
            Err(Verdict::Skip(format!(
                "over tls: a client beyond the {limit} served at once cannot finish its \
                 handshake, so it cannot wait in the backlog as over tcp:, where the bound is \
                 checked"
            )))
        }
        _ => Ok(()),
    }
}

/// The CPU time `pid` used so far.
fn cpu_of(pid: u32) -> Duration {
    crate::procfs::process_cpu_clock(pid)
        .or_else(|| ProcSample::read(pid).map(|s| s.cpu))
        .unwrap_or_default()
}

/// Descriptors `pid` has open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Waits until `pid` holds `limit` descriptors, or a count that has not changed for 200 ms (a
/// server that accepts one connection at a time never reaches the limit); at most 3 s.
fn descriptors_settle(pid: u32, limit: usize) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let (mut last, mut since) = (open_descriptors(pid), Instant::now());
    while last < limit && since.elapsed() < Duration::from_millis(200) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
        let now = open_descriptors(pid);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

/// Descriptors the server is started with for [`descriptor_exhaustion_is_survived_without_spinning`].
pub const EXHAUSTION_FD_LIMIT: u64 = 64;

/// Started with 64 descriptors, 100 clients connect: the server must not spin while out of
/// descriptors, must serve every client once descriptors free up, and must still stop on
/// SIGTERM.
pub fn descriptor_exhaustion_is_survived_without_spinning(p: &mut Probe<'_>) -> CheckResult {
    const CLIENTS: usize = 100;
    let Some(pid) = p.pid else {
        return Err(Verdict::Skip("needs the server's pid".into()));
    };
    if p.target.endpoint.transport() == echo_cli::Transport::Tls {
        // A TLS connect waits for the handshake, which a server that cannot accept never
        // answers; the accept loop under test is the one TCP's check runs.
        return Err(Verdict::Skip(
            "over tls: a connect includes the handshake, which a server out of descriptors \
             cannot answer; its accept loop is TCP's, checked over tcp:"
                .into(),
        ));
    }
    let mut pending = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let client = connect(&p.target)?;
        let _ = (&client).write_all(&(i as u32).to_le_bytes());
        let _ = client.set_nonblocking(true);
        pending.push(Some(client));
    }
    descriptors_settle(pid, EXHAUSTION_FD_LIMIT as usize);
    let cpu_before = cpu_of(pid);
    std::thread::sleep(Duration::from_millis(1500));
    let cpu_used = cpu_of(pid).saturating_sub(cpu_before).as_secs_f64();
    if cpu_used >= 0.3 {
        return Err(fail(format!(
            "used {cpu_used:.2} CPU-s in 1.5 s while out of descriptors: a busy loop on EMFILE? \
             back off (sleep) when accept fails for lack of descriptors"
        )));
    }
    // Close each client once its echo arrived; the queued ones must then be served.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut served = 0;
    while served < CLIENTS {
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "only {served} of {CLIENTS} clients were served after descriptors freed up: does \
                 the accept loop die on EMFILE (\"Too many open files\")?"
            )));
        }
        let mut progress = false;
        for (i, slot) in pending.iter_mut().enumerate() {
            let Some(client) = slot else { continue };
            let mut echoed = [0; 4];
            match client.peek(&mut echoed) {
                Ok(4) => {
                    let _ = client.read_exact(&mut echoed);
                    if u32::from_le_bytes(echoed) != i as u32 {
                        return Err(differs(&(i as u32).to_le_bytes(), &echoed));
                    }
                    *slot = None;
                    served += 1;
                    progress = true;
                }
                Ok(0) => {
                    return Err(fail(format!(
                        "client {i} was closed without an echo while descriptors ran out: \
                         accepted connections are dropped on EMFILE?"
                    )));
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(fail(format!("client {i}: {e}"))),
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    match p.server.as_deref_mut() {
        Some(server) => match server.terminate(Duration::from_secs(5)) {
            None => Err(fail(
                "did not exit within 5 s of SIGTERM after running out of descriptors",
            )),
            Some(_) => Ok(()),
        },
        None => Ok(()),
    }
}
