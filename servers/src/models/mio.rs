//! `mio`: one thread running a mio (epoll, edge-triggered) readiness loop over every connection.
//!
//! The loop, in [`EventLoop::run`], is the whole server: the listener is accepted until
//! `WouldBlock`; a connection is pumped (written, then read, until both would block) on every
//! event for it. Edge-triggered readiness is only reported on change, so every read and write
//! loop runs until `WouldBlock`, and a connection that stopped reading for backpressure reads
//! again on its own once its buffer drains.
//!
//! Cost per connection: a slab entry and a small struct; bytes that could not be written at once
//! are kept in a per-connection buffer of at most `buffer_size`, allocated only when a write
//! falls short, and reads go through one buffer shared by the whole loop. A client that does not
//! read fills its buffer, after which the loop stops reading it (its interest becomes WRITABLE
//! only) until it drains. WRITABLE interest is held only while there is something to write.
//! What blocks: nothing, as long as no handler computes; everything shares one core.
//!
//! Fairness: a connection is read at most [`READS_PER_TURN`] times per turn. One that still has
//! bytes waiting then goes on the loop's ready list and is pumped again after the others' events
//! (the poll does not wait while the list is not empty), so a client that writes as fast as it
//! can takes its turn with the rest instead of holding the loop. Edge-triggered readiness would
//! not report those bytes again, which is why the loop keeps the list itself.
//!
//! Over UDP ([`DatagramLoop`]) the loop reads a batch of up to 32 datagrams per `recvmmsg` and
//! sends them back with one `sendmmsg`: two system calls per batch instead of two per datagram.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use mio::event::Source;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

use echo_cli::{Endpoint, Transport};

use crate::blocking_io::join_all_within;
use crate::datagram::{Batch, DatagramError};
use crate::net::{self, AcceptAction, StreamListener};
use crate::server::{
    EchoServer, Health, Model, READS_PER_TURN, SHUTDOWN_GRACE, ServerConfig, ServerHandle,
    ServerId, StopServer, start_each,
};
use crate::work::EchoPath;

/// The single-thread mio event loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct MioLoop;

impl EchoServer for MioLoop {
    fn model(&self) -> Model {
        Model::Mio
    }

    fn driver(&self) -> crate::driver::Driver {
        crate::driver::Driver::Epoll
    }

    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Unix, Transport::Udp]
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        if config.listen.transport() == Transport::Udp {
            return DatagramLoop::start(Model::Mio, config, 1);
        }
        let listener = net::bind(config)?;
        let endpoint = listener.endpoint()?;
        let id = ServerId::next();
        let (event_loop, waker) =
            EventLoop::new(listener, EchoPath::of(config), id.health().clone())?;
        let thread = id.spawn_loop("mio", move || event_loop.run())?;
        let stop = LoopStop {
            wakers: vec![waker],
            threads: vec![thread],
        };
        Ok(ServerHandle::new(Model::Mio, id, endpoint, Box::new(stop)))
    }
}

/// Stops event loops: wakes each, which then returns, dropping (closing) its connections.
pub(crate) struct LoopStop {
    pub(crate) wakers: Vec<Arc<Waker>>,
    pub(crate) threads: Vec<std::thread::JoinHandle<()>>,
}

impl StopServer for LoopStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        for waker in &self.wakers {
            waker.wake()?;
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        join_all_within(self.threads, deadline)
    }
}

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// One readiness loop: its poll, its listener, its connections.
pub(crate) struct EventLoop {
    poll: Poll,
    listener: Listener,
    connections: Slab<Connection>,
    /// Shared by every connection: reads land here and are written straight back.
    scratch: Box<[u8]>,
    /// The per-message work, done inline on this loop's thread (so it delays every other
    /// connection of the loop: what the `--work-us` sweep shows).
    path: EchoPath,
    /// Set after a resource error (`EMFILE`...): accepting resumes on this timer, not on the
    /// listener's readiness, which edge-triggering would not report again for queued clients.
    accept_paused_until: Option<Instant>,
    /// Connections that used their turn's reads with bytes possibly still waiting: pumped
    /// again before the loop sleeps (edge-triggering will not report them again).
    ready: Vec<usize>,
    /// Told if the listener fails (the loop then serves only the connections it has).
    health: Health,
}

impl EventLoop {
    /// A loop over `listener` (a bound listener of either stream transport; it is made
    /// non-blocking), and the waker that stops it.
    pub(crate) fn new(
        listener: StreamListener,
        path: EchoPath,
        health: Health,
    ) -> io::Result<(Self, Arc<Waker>)> {
        listener.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut listener = Listener::from(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let event_loop = EventLoop {
            poll,
            listener,
            connections: Slab::new(),
            scratch: vec![0; path.buffer_size].into_boxed_slice(),
            path,
            accept_paused_until: None,
            ready: Vec::new(),
            health,
        };
        Ok((event_loop, waker))
    }

    /// Runs until the waker fires; returning drops, and so closes, every connection.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.ready.is_empty() {
                self.accept_paused_until
                    .map(|until| until.saturating_duration_since(Instant::now()))
            } else {
                Some(std::time::Duration::ZERO)
            };
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if self
                .accept_paused_until
                .is_some_and(|until| Instant::now() >= until)
            {
                self.accept_paused_until = None;
                self.accept();
            }
            // Those whose turn ended with bytes waiting go first, then the new events; a
            // connection in both is pumped twice, each time within its budget.
            for key in std::mem::take(&mut self.ready) {
                if let Some(conn) = self.connections.get_mut(key) {
                    conn.queued = false;
                }
                self.pump(key);
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => return Ok(()),
                    LISTENER if self.accept_paused_until.is_none() => self.accept(),
                    LISTENER => {}
                    Token(key) => self.pump(key),
                }
            }
        }
    }

    /// Accepts until `WouldBlock` (edge-triggered: no further event comes for clients already
    /// queued), until a resource error pauses accepting for a backoff, or until the listener
    /// fails, when it is deregistered and the loop serves only the connections it has.
    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok(mut stream) => {
                    let entry = self.connections.vacant_entry();
                    let token = Token(entry.key());
                    // Registering reports readiness that is already there (data sent before
                    // the accept), so nothing is missed.
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE)
                        .is_ok()
                    {
                        entry.insert(Connection::new(stream));
                    }
                }
                // The loop stops through its waker, never by failing its listener.
                Err(err) => match net::after_accept_error(&err, false, &self.health) {
                    AcceptAction::WaitReady => return,
                    AcceptAction::Next => {}
                    AcceptAction::BackOff(pause) => {
                        self.accept_paused_until = Some(Instant::now() + pause);
                        return;
                    }
                    AcceptAction::Stop => {
                        let _ = self.poll.registry().deregister(&mut self.listener);
                        return;
                    }
                },
            }
        }
    }

    /// Moves a connection's bytes as far as they go, then closes it or updates its interest.
    fn pump(&mut self, key: usize) {
        // A connection closed earlier in this batch of events may have a stale event left.
        let Some(conn) = self.connections.get_mut(key) else {
            return;
        };
        let registry = self.poll.registry();
        match conn.pump(&mut self.scratch, self.path) {
            Ok(state @ (State::Open | State::TurnOver)) => {
                let full = conn.backlog() >= self.scratch.len();
                if conn.update_interest(registry, Token(key), full).is_err() {
                    self.close(key);
                } else if matches!(state, State::TurnOver) && !conn.queued {
                    conn.queued = true;
                    self.ready.push(key);
                }
            }
            // Finished (half-closed and fully echoed) or failed: either way only this one ends.
            Ok(State::Finished) | Err(_) => self.close(key),
        }
    }

    fn close(&mut self, key: usize) {
        if let Some(mut conn) = self.connections.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }
}

/// Whether a connection still has work.
enum State {
    /// Waiting for readiness.
    Open,
    /// Its turn's reads are used up and more bytes may be waiting: pump it again soon.
    TurnOver,
    Finished,
}

struct Connection {
    stream: Socket,
    /// Echo bytes the peer has not taken yet; `sent` of them are already written.
    unsent: Vec<u8>,
    sent: usize,
    /// The peer half-closed: write what is left, then close.
    read_closed: bool,
    interest: Interest,
    /// On the loop's ready list already (so it is put there once, without a search).
    queued: bool,
}

impl Connection {
    fn new(stream: Socket) -> Self {
        Self {
            stream,
            unsent: Vec::new(),
            sent: 0,
            read_closed: false,
            interest: Interest::READABLE,
            queued: false,
        }
    }

    fn backlog(&self) -> usize {
        self.unsent.len() - self.sent
    }

    /// Writes what is pending and reads what there is to read, until both would block, the
    /// buffer is full (backpressure), the peer has half-closed and everything is echoed, or
    /// [`READS_PER_TURN`] reads were made.
    fn pump(&mut self, scratch: &mut [u8], path: EchoPath) -> io::Result<State> {
        let capacity = scratch.len();
        for _ in 0..READS_PER_TURN {
            self.flush()?;
            if self.read_closed {
                return Ok(if self.backlog() == 0 {
                    State::Finished
                } else {
                    State::Open
                });
            }
            let room = capacity - self.backlog();
            if room == 0 {
                // Full: stop reading until the peer takes some of its echo.
                return Ok(State::Open);
            }
            match self.stream.read(&mut scratch[..room]) {
                Ok(0) => self.read_closed = true,
                Ok(n) => {
                    path.on_message(&scratch[..n]);
                    self.echo(&scratch[..n])?;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(State::Open),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(State::TurnOver)
    }

    /// Writes freshly read bytes straight back; what the socket does not take is kept.
    fn echo(&mut self, mut data: &[u8]) -> io::Result<()> {
        if self.backlog() == 0 {
            while !data.is_empty() {
                match self.stream.write(data) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => data = &data[n..],
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            }
        }
        if !data.is_empty() {
            if self.sent > 0 {
                self.unsent.drain(..self.sent);
                self.sent = 0;
            }
            self.unsent.extend_from_slice(data);
        }
        Ok(())
    }

    /// Writes the kept bytes until they are gone or the socket would block.
    fn flush(&mut self) -> io::Result<()> {
        while self.backlog() > 0 {
            match self.stream.write(&self.unsent[self.sent..]) {
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

    /// READABLE while reading, WRITABLE only while something waits to be written.
    fn update_interest(&mut self, registry: &Registry, token: Token, full: bool) -> io::Result<()> {
        let wants_write = self.backlog() > 0;
        let wants_read = !self.read_closed && !full;
        let interest = match (wants_read, wants_write) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
            // Nothing to write and not reading (cannot happen: such a connection is finished).
            (_, false) => Interest::READABLE,
        };
        if interest != self.interest {
            registry.reregister(&mut self.stream, token, interest)?;
            self.interest = interest;
        }
        Ok(())
    }
}

/// A readiness loop over one UDP socket: on each event it receives a batch of datagrams with one
/// `recvmmsg`, does each one's work, and sends the batch back with one `sendmmsg`
/// ([`Batch`]). If the socket will not take them all, the loop waits for WRITABLE and reads
/// nothing meanwhile, so it never holds more than one batch.
pub(crate) struct DatagramLoop {
    poll: Poll,
    socket: mio::net::UdpSocket,
    batch: Batch,
    path: EchoPath,
}

impl DatagramLoop {
    /// Starts `count` loops (`es<id>-mio`), each on its own socket sharing the port through
    /// `SO_REUSEPORT` (one for `mio`, one per core for `mio-per-core`).
    pub(crate) fn start(
        model: Model,
        config: &ServerConfig,
        count: usize,
    ) -> io::Result<ServerHandle> {
        let sockets = net::bind_datagram_per_core(config, count)?;
        let endpoint = Endpoint::Udp(sockets[0].local_addr()?);
        let id = ServerId::next();
        let path = EchoPath::of(config);
        let stop = LoopStop {
            wakers: Vec::new(),
            threads: Vec::new(),
        };
        let stop = start_each(stop, sockets, |stop, socket| {
            socket.set_nonblocking(true)?;
            let poll = Poll::new()?;
            stop.wakers
                .push(Arc::new(Waker::new(poll.registry(), WAKER)?));
            let mut socket = mio::net::UdpSocket::from_std(socket);
            poll.registry()
                .register(&mut socket, LISTENER, Interest::READABLE)?;
            let event_loop = DatagramLoop {
                poll,
                socket,
                batch: Batch::new(),
                path,
            };
            let thread = id.spawn_loop("mio", move || event_loop.run())?;
            stop.threads.push(thread);
            Ok(())
        })?;
        Ok(ServerHandle::new(model, id, endpoint, Box::new(stop)))
    }

    fn run(mut self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.socket.as_raw_fd();
        let mut events = Events::with_capacity(64);
        let mut interest = Interest::READABLE;
        // Set when the last turn ended on its budget with datagrams possibly still waiting:
        // the next poll only looks for the waker, and the loop goes on.
        let mut more = false;
        loop {
            let timeout = more.then_some(std::time::Duration::ZERO);
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if events.iter().any(|e| e.token() == WAKER) {
                return Ok(());
            }
            // Edge-triggered: receive and send until the socket would block either way, or for
            // at most a turn's batches, so that the waker is seen even under a flood (or an
            // error that repeats on every receive).
            let mut wanted = interest;
            more = true;
            for _ in 0..BATCHES_PER_TURN {
                match self.batch.send(fd) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        (wanted, more) = (Interest::WRITABLE, false);
                        break;
                    }
                    Err(err) => return Err(err),
                }
                match self.batch.recv(fd) {
                    Ok(_) => self.batch.datagrams().for_each(|d| self.path.on_message(d)),
                    Err(err) => match DatagramError::of_receive(&err) {
                        DatagramError::Again => {
                            (wanted, more) = (Interest::READABLE, false);
                            break;
                        }
                        DatagramError::Peer => {}
                        DatagramError::Socket => return Err(err),
                    },
                }
            }
            if wanted != interest {
                self.poll
                    .registry()
                    .reregister(&mut self.socket, LISTENER, wanted)?;
                interest = wanted;
            }
        }
    }
}

/// Batches a datagram loop receives and sends per turn before it looks at its waker again.
const BATCHES_PER_TURN: usize = 64;

/// The loop's listener, of either stream transport: mio's own types, so accepted connections
/// come back non-blocking from `accept4` (no extra system call per connection).
enum Listener {
    Tcp(mio::net::TcpListener),
    Unix(mio::net::UnixListener),
}

/// A connection of either stream transport.
enum Socket {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl From<StreamListener> for Listener {
    fn from(listener: StreamListener) -> Self {
        match listener {
            StreamListener::Tcp(l) => Listener::Tcp(mio::net::TcpListener::from_std(l)),
            StreamListener::Unix(l) => Listener::Unix(mio::net::UnixListener::from_std(l)),
        }
    }
}

impl Listener {
    /// Accepts one connection, Nagle off for TCP.
    fn accept(&self) -> io::Result<Socket> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, _) = listener.accept()?;
                let _ = stream.set_nodelay(true);
                Ok(Socket::Tcp(stream))
            }
            Listener::Unix(listener) => Ok(Socket::Unix(listener.accept()?.0)),
        }
    }

    fn source(&mut self) -> &mut dyn Source {
        match self {
            Listener::Tcp(listener) => listener,
            Listener::Unix(listener) => listener,
        }
    }
}

impl Socket {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Socket::Tcp(stream) => stream,
            Socket::Unix(stream) => stream,
        }
    }
}

/// Registration goes to whichever socket is inside.
macro_rules! delegate_source {
    ($ty:ty) => {
        impl Source for $ty {
            fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                self.source().register(r, t, i)
            }
            fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                self.source().reregister(r, t, i)
            }
            fn deregister(&mut self, r: &Registry) -> io::Result<()> {
                self.source().deregister(r)
            }
        }
    };
}
delegate_source!(Listener);
delegate_source!(Socket);

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(stream) => stream.read(buf),
            Socket::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(stream) => stream.write(buf),
            Socket::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
