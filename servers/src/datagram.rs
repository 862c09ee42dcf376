//! What the datagram (UDP) servers share: the blocking receive-and-send-back loop (one thread for
//! `blocking`, a pool sharing one socket for `thread-pool`) and the batched I/O of the event loops
//! ([`Batch`]: `recvmmsg`/`sendmmsg`, up to [`BATCH`] datagrams per system call).
//!
//! UDP has no connections: a server is a socket and whatever reads it. Each datagram is sent back
//! to the address it came from, unchanged. A datagram the socket cannot take back right away
//! waits (the loop stops reading meanwhile); what arrives while the receive buffer is full is
//! dropped by the kernel, which the client sees as loss.

use std::io;
use std::net::UdpSocket;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use echo_cli::Endpoint;

use crate::blocking_io::join_all_within;
use crate::net;
use crate::server::{
    Model, SHUTDOWN_GRACE, ServerConfig, ServerHandle, ServerId, StopServer, start_each,
};
use crate::work::EchoPath;

/// The receive buffer per datagram: the largest UDP payload over IPv4 is 65,507 bytes (IPv6
/// without jumbograms 65,527), so nothing that arrives is truncated.
pub(crate) const MAX_DATAGRAM: usize = 65_536;

/// Datagrams per `recvmmsg`/`sendmmsg` call.
pub(crate) const BATCH: usize = 32;

/// Starts `threads` threads (`es<id>-udp`) that share one UDP socket, each receiving a datagram
/// and sending it back: `blocking` with one thread, `thread-pool` with its pool.
pub(crate) fn start_threads(
    model: Model,
    config: &ServerConfig,
    threads: usize,
) -> io::Result<ServerHandle> {
    let socket = Arc::new(net::bind_datagram(config)?);
    let endpoint = Endpoint::Udp(socket.local_addr()?);
    let id = ServerId::next();
    let path = EchoPath::of(config);
    let stop = ThreadsStop {
        socket: Arc::clone(&socket),
        stopping: Arc::new(AtomicBool::new(false)),
        threads: Vec::new(),
    };
    let stop = start_each(stop, 0..threads.max(1), |stop, _| {
        let socket = Arc::clone(&socket);
        let stopping = Arc::clone(&stop.stopping);
        let thread = id.spawn_loop("udp", move || echo_blocking(&socket, &stopping, path))?;
        stop.threads.push(thread);
        Ok(())
    })?;
    Ok(ServerHandle::new(model, id, endpoint, Box::new(stop)))
}

/// Receives and sends back until `stopping`; shutdown wakes a blocked receive by shutting the
/// socket down. Returns an error only when the socket itself fails ([`DatagramError::Socket`]).
///
/// The receive is socket2's, not `std`'s `recv_from`: a receive woken by the shutdown returns
/// no sender address, which `std` asserts against (a panic), where socket2 hands back the
/// address as it came. The echo goes back to that address exactly as received.
fn echo_blocking(socket: &UdpSocket, stopping: &AtomicBool, path: EchoPath) -> io::Result<()> {
    let socket = socket2::SockRef::from(socket);
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); MAX_DATAGRAM];
    while !stopping.load(Ordering::Acquire) {
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                if stopping.load(Ordering::Acquire) {
                    break;
                }
                // SAFETY: the kernel initialised the first `n` bytes.
                let data = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
                path.on_message(data);
                // Whatever a send's error, it loses that one datagram (a peer's port 0, a
                // broadcast source, a firewall's refusal): never the server.
                let _ = socket.send_to(data, &peer);
            }
            Err(_) if stopping.load(Ordering::Acquire) => break,
            Err(err) => match DatagramError::of_receive(&err) {
                DatagramError::Again | DatagramError::Peer => {}
                DatagramError::Socket => return Err(err),
            },
        }
    }
    Ok(())
}

/// What a failed datagram receive or send means for the loop that made it: the one place every
/// UDP model asks.
///
/// A datagram socket has no per-peer state, so nearly every error concerns one datagram: an
/// ICMP error for an earlier send (`ECONNREFUSED`, `EHOSTUNREACH`...), a sender address the
/// kernel will not send to (`EINVAL` for port 0, `EACCES` for a broadcast source, `EPERM` from a
/// firewall, `EADDRNOTAVAIL`), a datagram too large for the route (`EMSGSIZE`), a moment without
/// buffers (`ENOBUFS`, `ENOMEM`), an interrupt. Those cost that datagram alone. Only errors no
/// peer can cause, that say the socket or the call is broken, end the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatagramError {
    /// Nothing to receive, or no room to send, right now: wait for readiness.
    Again,
    /// That one datagram is lost (or, for a receive, an earlier one's error was reported).
    Peer,
    /// The socket itself is unusable: the loop cannot go on.
    Socket,
}

impl DatagramError {
    /// Classifies an error from `recvfrom`/`recvmmsg`.
    pub(crate) fn of_receive(err: &io::Error) -> Self {
        Self::classify(
            err,
            &[libc::EBADF, libc::ENOTSOCK, libc::EFAULT, libc::EINVAL],
        )
    }

    /// Classifies an error from `sendto`/`sendmmsg`: here `EINVAL` is a sender's bad address.
    pub(crate) fn of_send(err: &io::Error) -> Self {
        Self::classify(err, &[libc::EBADF, libc::ENOTSOCK, libc::EFAULT])
    }

    fn classify(err: &io::Error, broken: &[i32]) -> Self {
        match err.raw_os_error() {
            _ if err.kind() == io::ErrorKind::WouldBlock => Self::Again,
            Some(code) if broken.contains(&code) => Self::Socket,
            // An error that is not the kernel's (none is expected) is taken as the socket's.
            None => Self::Socket,
            Some(_) => Self::Peer,
        }
    }
}

struct ThreadsStop {
    socket: Arc<UdpSocket>,
    stopping: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl StopServer for ThreadsStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.stopping.store(true, Ordering::Release);
        // Wakes every thread blocked in recv_from (it returns at once, and keeps doing so).
        net::shut_down(&*self.socket);
        join_all_within(self.threads, Instant::now() + SHUTDOWN_GRACE)
    }
}

/// Up to [`BATCH`] datagrams received with one `recvmmsg` and sent back with `sendmmsg`, each to
/// its own sender: what an event loop does per readiness event. Holds [`BATCH`] buffers of
/// [`MAX_DATAGRAM`] bytes (2 MiB), allocated once.
pub(crate) struct Batch {
    buffers: Box<[u8]>,
    iovecs: Box<[libc::iovec]>,
    /// The senders' addresses, written by `recvmmsg` and read by `sendmmsg` through the headers
    /// only (kept here so they live as long as the headers pointing at them).
    _addrs: Box<[libc::sockaddr_storage]>,
    headers: Box<[libc::mmsghdr]>,
    /// Datagrams received by the last `recv`; `sent` of them are already sent back.
    received: usize,
    sent: usize,
}

// SAFETY: the raw pointers in `iovecs` and `headers` point into the batch's own boxed slices,
// which move with it and are never shared.
unsafe impl Send for Batch {}

impl Batch {
    pub(crate) fn new() -> Self {
        let mut buffers = vec![0u8; BATCH * MAX_DATAGRAM].into_boxed_slice();
        let mut iovecs: Box<[libc::iovec]> = buffers
            .chunks_mut(MAX_DATAGRAM)
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            })
            .collect();
        // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
        let mut addrs: Box<[libc::sockaddr_storage]> =
            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        let headers = iovecs
            .iter_mut()
            .zip(addrs.iter_mut())
            .map(|(iov, addr)| {
                // SAFETY: mmsghdr is plain data; all zeroes is a valid value.
                let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
                header.msg_hdr.msg_iov = iov;
                header.msg_hdr.msg_iovlen = 1;
                header.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
                header
            })
            .collect();
        Self {
            buffers,
            iovecs,
            _addrs: addrs,
            headers,
            received: 0,
            sent: 0,
        }
    }

    /// Whether datagrams received are still waiting to be sent back.
    pub(crate) fn pending(&self) -> bool {
        self.sent < self.received
    }

    /// Receives up to [`BATCH`] datagrams without blocking; `WouldBlock` when none is there.
    /// Only called once everything received before has been sent back.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        debug_assert!(!self.pending());
        for (header, iov) in self.headers.iter_mut().zip(self.iovecs.iter_mut()) {
            iov.iov_len = MAX_DATAGRAM;
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_len = 0;
        }
        // SAFETY: every header points at this batch's own iovec, buffer and address storage,
        // sized as the header says, all alive for the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        self.sent = 0;
        for i in 0..self.received {
            // Sending back: each iovec covers exactly the bytes that came in.
            self.iovecs[i].iov_len = self.headers[i].msg_len as usize;
        }
        Ok(self.received)
    }

    /// The datagrams received, in order.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.received)
            .map(|i| &self.buffers[i * MAX_DATAGRAM..i * MAX_DATAGRAM + self.iovecs[i].iov_len])
    }

    /// Sends back what is pending, each datagram to its sender, until done or the socket would
    /// block (`WouldBlock`; call again when it is writable). A datagram the kernel refuses for
    /// itself or its sender ([`DatagramError::Peer`]: port 0, too large for the route...) is
    /// dropped, as the network would, and the rest of the batch goes on; an error is returned
    /// only when the socket is unusable.
    pub(crate) fn send(&mut self, fd: RawFd) -> io::Result<()> {
        while self.pending() {
            let remaining = self.received - self.sent;
            // SAFETY: as in `recv`; the headers from `sent` on were filled by the last receive.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.headers[self.sent..].as_mut_ptr(),
                    remaining as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                self.sent += n as usize;
                continue;
            }
            // sendmmsg reports an error only for the first datagram it tried: the one at `sent`.
            let err = io::Error::last_os_error();
            match DatagramError::of_send(&err) {
                DatagramError::Again | DatagramError::Socket => return Err(err),
                DatagramError::Peer => self.sent += 1,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn a_batch_sends_each_datagram_back_to_its_own_sender() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let clients: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, client) in clients.iter().enumerate() {
            client
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let message = vec![i as u8; 1 + i * 1000];
            client
                .send_to(&message, server.local_addr().unwrap())
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut batch = Batch::new();
        assert_eq!(batch.recv(server.as_raw_fd()).unwrap(), 3);
        let sizes: Vec<usize> = batch.datagrams().map(<[u8]>::len).collect();
        assert_eq!(sizes, [1, 1001, 2001]);
        batch.send(server.as_raw_fd()).unwrap();
        assert!(!batch.pending());
        for (i, client) in clients.iter().enumerate() {
            let mut buf = [0; 4096];
            let n = client.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &vec![i as u8; 1 + i * 1000][..]);
        }
        // Nothing more: a second receive would block.
        assert_eq!(
            batch.recv(server.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    /// The datagram `sendmmsg` refuses (a sender with port 0, which no socket can send to)
    /// costs only itself: the datagrams before and after it in the batch still go back.
    #[test]
    fn a_datagram_the_kernel_will_not_send_back_costs_only_itself() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let honest = UdpSocket::bind("127.0.0.1:0").unwrap();
        honest
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let to = server.local_addr().unwrap();
        honest.send_to(b"before", to).unwrap();
        let std::net::SocketAddr::V4(to_v4) = to else {
            unreachable!("bound to 127.0.0.1")
        };
        if let Err(err) = echo_loadgen::conformance::send_from_port_zero(to_v4, b"hostile", None) {
            eprintln!("skipped: a datagram from port 0 needs a raw socket (root): {err}");
            return;
        }
        honest.send_to(b"after", to).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut batch = Batch::new();
        assert_eq!(batch.recv(server.as_raw_fd()).unwrap(), 3);
        batch.send(server.as_raw_fd()).unwrap();
        assert!(!batch.pending());
        let mut buf = [0; 64];
        for expected in [&b"before"[..], b"after"] {
            let n = honest.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], expected);
        }
    }

    #[test]
    fn datagram_errors_are_the_peers_unless_the_socket_is_broken() {
        let e = io::Error::from_raw_os_error;
        for code in [
            libc::EINVAL,
            libc::EACCES,
            libc::EPERM,
            libc::EMSGSIZE,
            libc::ENOBUFS,
        ] {
            assert_eq!(
                DatagramError::of_send(&e(code)),
                DatagramError::Peer,
                "{code}"
            );
        }
        for code in [
            libc::ECONNREFUSED,
            libc::EHOSTUNREACH,
            libc::EINTR,
            libc::ENOMEM,
        ] {
            assert_eq!(
                DatagramError::of_receive(&e(code)),
                DatagramError::Peer,
                "{code}"
            );
        }
        assert_eq!(
            DatagramError::of_send(&e(libc::EBADF)),
            DatagramError::Socket
        );
        assert_eq!(
            DatagramError::of_receive(&e(libc::EINVAL)),
            DatagramError::Socket
        );
        assert_eq!(
            DatagramError::of_send(&io::ErrorKind::WouldBlock.into()),
            DatagramError::Again
        );
    }
}
