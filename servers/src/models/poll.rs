//! `poll`: one thread running a level-triggered `poll(2)` loop over every descriptor, the
//! readiness baseline the socket tutorials teach (their `select` loop, without `FD_SETSIZE`).
//!
//! The loop, in [`EventLoop::run`], is the whole server, written as the tutorials write it.
//! Each turn it fills one array of `pollfd`s, reused from turn to turn: the waker (an eventfd
//! that shutdown writes to), the listener, then every connection in the order of the
//! connection list, each asking for what it can use now. One `poll` waits on all of them;
//! then every connection with news is served, the ones that ended are dropped, and the
//! listener is accepted from. Level-triggered readiness is reported for as long as it holds,
//! so the loop keeps no ready list of its own: a connection that still has bytes after its
//! [`READS_PER_TURN`] reads is reported again on the next turn, after the others had theirs.
//!
//! Cost: every turn hands the whole set to the kernel, which checks every descriptor (and, to
//! sleep, queues a wait on each), and the loop walks the whole array back. A wake-up costs
//! O(n) in the connections held, idle or not, where `mio`'s epoll costs only what is ready:
//! what the C10K row shows. Per connection: a small struct and its `pollfd`; bytes that could
//! not be written at once are kept in a buffer of at most `buffer_size`, allocated on the first
//! short write, and reads go through one buffer shared by the loop.
//!
//! Bounded memory is in what each connection asks for: `POLLIN` only while its buffer has
//! room, `POLLOUT` only while bytes wait to be written. A client that does not read fills its
//! buffer and is not read again until it takes some of its echo. What blocks: nothing but
//! `poll` itself; every handler runs on this one core.
//!
//! Accepting: up to [`ACCEPTS_PER_TURN`] connections per turn, with
//! `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)` so a connection costs no `fcntl`. After a resource
//! error (`EMFILE`...) the listener is left out of the set until the backoff has passed, and
//! that deadline is poll's timeout: a listener that stays readable is never spun on.
//!
//! Over UDP ([`DatagramLoop`]) the set is the waker and the socket, which asks for `POLLIN`
//! while nothing waits to be sent back and for `POLLOUT` while a batch does: a batch of up to
//! 32 datagrams per `recvmmsg`, sent back with one `sendmmsg`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::UdpSocket;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use echo_cli::{Endpoint, Transport};
use libc::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT};

use crate::blocking_io::join_within;
use crate::datagram::{Batch, DatagramError};
use crate::driver::Driver;
use crate::net::{self, AcceptAction, Stream, StreamListener};
use crate::server::{
    EchoServer, Health, Model, READS_PER_TURN, SHUTDOWN_GRACE, ServerConfig, ServerHandle,
    ServerId, StopServer,
};
use crate::work::EchoPath;

/// The single-thread `poll(2)` loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollLoop;

impl EchoServer for PollLoop {
    fn model(&self) -> Model {
        Model::Poll
    }

    fn driver(&self) -> Driver {
        Driver::Poll
    }

    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Unix, Transport::Udp]
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        let path = EchoPath::of(config);
        let waker = Arc::new(Waker::new()?);
        let id = ServerId::next();
        let (endpoint, thread) = if config.listen.transport() == Transport::Udp {
            let socket = net::bind_datagram(config)?;
            socket.set_nonblocking(true)?;
            let endpoint = Endpoint::Udp(socket.local_addr()?);
            let datagram_loop = DatagramLoop {
                socket,
                waker: Arc::clone(&waker),
                batch: Batch::new(),
                path,
            };
            (
                endpoint,
                id.spawn_loop("poll", move || datagram_loop.run())?,
            )
        } else {
            let (listener, endpoint) = net::bind_nonblocking(config)?;
            let event_loop =
                EventLoop::new(listener, Arc::clone(&waker), path, id.health().clone());
            (endpoint, id.spawn_loop("poll", move || event_loop.run())?)
        };
        let stop = LoopStop { waker, thread };
        Ok(ServerHandle::new(Model::Poll, id, endpoint, Box::new(stop)))
    }
}

/// An eventfd in the loop's set: shutdown adds to its counter, which makes it readable and
/// wakes `poll` wherever the loop is.
struct Waker(File);

impl Waker {
    fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: eventfd returned a new descriptor that nothing else owns.
        Ok(Self(File::from(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    fn wake(&self) -> io::Result<()> {
        match (&self.0).write(&1u64.to_ne_bytes()) {
            // A full counter (`EAGAIN`) is readable already.
            Err(err) if err.kind() != io::ErrorKind::WouldBlock => Err(err),
            _ => Ok(()),
        }
    }

    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Stops the loop: wakes it, and it returns, dropping (closing) every connection.
struct LoopStop {
    waker: Arc<Waker>,
    thread: JoinHandle<()>,
}

impl StopServer for LoopStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.waker.wake()?;
        join_within(self.thread, Instant::now() + SHUTDOWN_GRACE)
    }
}

/// Connections accepted per turn at most. Large enough that the accept rate does not fall
/// with the turn's O(n) cost (a connect burst is taken in batches), bounded so that the
/// connections already held get their turn between two batches.
const ACCEPTS_PER_TURN: usize = 256;

/// Where the waker and the listener sit in the set; the connections follow, in list order.
const WAKER: usize = 0;
const LISTENER: usize = 1;
const CONNECTIONS: usize = 2;

/// The loop's state: its descriptors, and the set it hands to `poll`.
struct EventLoop {
    waker: Arc<Waker>,
    /// `None` once the listener failed: the loop then serves the connections it has.
    listener: Option<StreamListener>,
    /// Set after a resource error (`EMFILE`...): the listener stays out of the set until then.
    accept_paused_until: Option<Instant>,
    connections: Vec<Connection>,
    /// The set for `poll`: refilled in place every turn (no allocation once it has grown), and
    /// from [`CONNECTIONS`] on parallel to `connections`.
    fds: Vec<libc::pollfd>,
    /// Shared by every connection: reads land here and are written straight back.
    scratch: Box<[u8]>,
    /// The per-message work, done inline on the loop's thread (so it delays every other
    /// connection: what the `--work-us` sweep shows).
    path: EchoPath,
    /// Told if the listener fails.
    health: Health,
}

impl EventLoop {
    fn new(listener: StreamListener, waker: Arc<Waker>, path: EchoPath, health: Health) -> Self {
        Self {
            waker,
            listener: Some(listener),
            accept_paused_until: None,
            connections: Vec::new(),
            fds: Vec::new(),
            scratch: vec![0; path.buffer_size].into_boxed_slice(),
            path,
            health,
        }
    }

    /// Runs until the waker fires; returning drops, and so closes, every connection.
    fn run(mut self) -> io::Result<()> {
        let capacity = self.scratch.len();
        loop {
            // This turn's set: the waker; the listener, unless accepting is paused or over (a
            // negative descriptor is one poll skips); every connection, asking for what it can
            // use now.
            if self
                .accept_paused_until
                .is_some_and(|until| Instant::now() >= until)
            {
                self.accept_paused_until = None;
            }
            let listening = match (&self.listener, self.accept_paused_until) {
                (Some(listener), None) => listener.as_fd().as_raw_fd(),
                _ => -1,
            };
            self.fds.clear();
            self.fds.push(pollfd(self.waker.fd(), POLLIN));
            self.fds.push(pollfd(listening, POLLIN));
            self.fds.extend(
                self.connections
                    .iter()
                    .map(|conn| pollfd(conn.stream.as_raw_fd(), conn.interest(capacity))),
            );
            // Sleep until something is ready, or until a paused listener may accept again.
            let timeout = self.accept_paused_until.map_or(-1, |until| {
                let left = until.saturating_duration_since(Instant::now());
                i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
            });
            match poll(&mut self.fds, timeout) {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
            if self.fds[WAKER].revents != 0 {
                return Ok(());
            }
            let mut ended = false;
            for (conn, fd) in self.connections.iter_mut().zip(&self.fds[CONNECTIONS..]) {
                if fd.revents != 0 && !conn.serve(fd.revents, &mut self.scratch, self.path) {
                    conn.ended = true;
                    ended = true;
                }
            }
            if ended {
                self.connections.retain(|conn| !conn.ended);
            }
            if self.fds[LISTENER].revents != 0 {
                self.accept();
            }
        }
    }

    /// Accepts what is queued, up to [`ACCEPTS_PER_TURN`] (level-triggered: the rest is
    /// reported again next turn), until a resource error pauses accepting for a backoff, or
    /// until the listener fails, when it is closed and the loop serves the connections it has.
    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        for _ in 0..ACCEPTS_PER_TURN {
            match listener.accept_nonblocking() {
                Ok(stream) => self.connections.push(Connection::new(stream)),
                // The loop stops through its waker, never by failing its listener.
                Err(err) => match net::after_accept_error(&err, false, &self.health) {
                    AcceptAction::WaitReady => return,
                    AcceptAction::Next => {}
                    AcceptAction::BackOff(pause) => {
                        self.accept_paused_until = Some(Instant::now() + pause);
                        return;
                    }
                    AcceptAction::Stop => {
                        self.listener = None;
                        return;
                    }
                },
            }
        }
    }
}

/// A `pollfd` asking for `events` on `fd`.
fn pollfd(fd: RawFd, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Waits on `fds` for up to `timeout_ms` (-1: no limit); how many have news.
fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `fds`, borrowed mutably for the call.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    usize::try_from(ready).map_err(|_| io::Error::last_os_error())
}

struct Connection {
    stream: Stream,
    /// Echo bytes the peer has not taken yet; `sent` of them are already written.
    unsent: Vec<u8>,
    sent: usize,
    /// The peer half-closed: write what is left, then close.
    read_closed: bool,
    /// Finished or failed this turn: dropped (closed) once the turn's connections are served.
    ended: bool,
}

impl Connection {
    fn new(stream: Stream) -> Self {
        Self {
            stream,
            unsent: Vec::new(),
            sent: 0,
            read_closed: false,
            ended: false,
        }
    }

    fn backlog(&self) -> usize {
        self.unsent.len() - self.sent
    }

    /// What to ask `poll` for: `POLLIN` while reading and the buffer has room, `POLLOUT` while
    /// bytes wait. Never nothing: a connection that neither reads nor writes has finished.
    fn interest(&self, capacity: usize) -> i16 {
        let mut events = 0;
        if !self.read_closed && self.backlog() < capacity {
            events |= POLLIN;
        }
        if self.backlog() > 0 {
            events |= POLLOUT;
        }
        events
    }

    /// Serves what `revents` reports; whether the connection goes on (not finished, no error).
    fn serve(&mut self, revents: i16, scratch: &mut [u8], path: EchoPath) -> bool {
        revents & POLLNVAL == 0
            && self.pump(revents, scratch, path).is_ok()
            && !(self.read_closed && self.backlog() == 0)
    }

    /// Writes what is pending, then reads and echoes, at most [`READS_PER_TURN`] times, until
    /// the socket would block, the buffer is full or the peer has half-closed.
    fn pump(&mut self, revents: i16, scratch: &mut [u8], path: EchoPath) -> io::Result<()> {
        let capacity = scratch.len();
        // POLLHUP and POLLERR come whatever was asked for; the read or write says what they
        // mean (end of file, or the error that ends this connection).
        let readable = revents & (POLLIN | POLLHUP | POLLERR) != 0;
        self.flush()?;
        if !readable {
            return Ok(());
        }
        for _ in 0..READS_PER_TURN {
            let room = capacity - self.backlog();
            if self.read_closed || room == 0 {
                break;
            }
            match (&self.stream).read(&mut scratch[..room]) {
                Ok(0) => self.read_closed = true,
                Ok(n) => {
                    path.on_message(&scratch[..n]);
                    self.echo(&scratch[..n], capacity)?;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Writes freshly read bytes straight back; what the socket does not take is kept, in a
    /// buffer of `capacity` allocated on the first short write.
    fn echo(&mut self, mut data: &[u8], capacity: usize) -> io::Result<()> {
        self.flush()?;
        if self.backlog() == 0 {
            while !data.is_empty() {
                match (&self.stream).write(data) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => data = &data[n..],
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            }
        }
        if !data.is_empty() {
            if self.unsent.capacity() == 0 {
                // Exactly the buffer, never grown: a read takes at most the room left in it.
                self.unsent.reserve_exact(capacity);
            }
            self.unsent.drain(..self.sent);
            self.sent = 0;
            self.unsent.extend_from_slice(data);
        }
        Ok(())
    }

    /// Writes the kept bytes until they are gone or the socket would block.
    fn flush(&mut self) -> io::Result<()> {
        while self.backlog() > 0 {
            match (&self.stream).write(&self.unsent[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        self.unsent.clear();
        self.sent = 0;
        Ok(())
    }
}

/// A `poll(2)` loop over one UDP socket: on readiness it sends back what waits, receives a
/// batch of datagrams with one `recvmmsg`, does each one's work and sends the batch back with
/// one `sendmmsg` ([`Batch`]). If the socket will not take them all, the loop asks for
/// `POLLOUT` and reads nothing meanwhile, so it never holds more than one batch.
struct DatagramLoop {
    socket: UdpSocket,
    waker: Arc<Waker>,
    batch: Batch,
    path: EchoPath,
}

impl DatagramLoop {
    fn run(mut self) -> io::Result<()> {
        let fd = self.socket.as_raw_fd();
        let mut fds = [pollfd(self.waker.fd(), POLLIN), pollfd(fd, POLLIN)];
        loop {
            fds[1].events = if self.batch.pending() {
                POLLOUT
            } else {
                POLLIN
            };
            match poll(&mut fds, -1) {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
            if fds[0].revents != 0 {
                return Ok(());
            }
            if fds[1].revents == 0 {
                continue;
            }
            // Level-triggered: one batch per turn, and whatever is left is reported again.
            if !self.send_back(fd)? {
                continue;
            }
            match self.batch.recv(fd) {
                Ok(_) => self.batch.datagrams().for_each(|d| self.path.on_message(d)),
                Err(err) => match DatagramError::of_receive(&err) {
                    DatagramError::Again | DatagramError::Peer => continue,
                    DatagramError::Socket => return Err(err),
                },
            }
            self.send_back(fd)?;
        }
    }

    /// Sends back what waits; whether it all went (false: the socket would block).
    fn send_back(&mut self, fd: RawFd) -> io::Result<bool> {
        match self.batch.send(fd) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(err) => Err(err),
        }
    }
}
