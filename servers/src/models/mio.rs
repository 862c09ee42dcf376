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
//! Over `tls:` the same loop drives a `rustls::ServerConnection` per connection by readiness, as
//! rustls's own mio server does ([`TlsConnection`]): `read_tls` until `WouldBlock`,
//! `process_new_packets`, the plaintext out of `reader()`, its echo into `writer()`, and
//! `write_tls` while rustls wants to write; the interest follows from that. The handshake runs on
//! the loop's thread, so while it signs a ServerHello (some hundreds of microseconds of CPU)
//! every other connection of the loop waits: that stall is the model's, and is what it measures.
//! A handshake has [`TlsServer::handshake_timeout`] to finish: each TLS connection's deadline
//! goes on a queue in accept order (one timeout for all, so the queue is sorted as it is filled),
//! the poll sleeps no later than the first deadline, and a sweep after the poll closes the
//! connections still shaking hands past theirs; a stalled client costs only its own connection.
//! A ClientHello rustls refuses gets its alert (if the socket takes it) and a close. When the
//! client closes its side (`close_notify`, or a bare EOF after its data) the rest is echoed,
//! `close_notify` follows, and the connection closes once that is written.
//!
//! Cost per TLS connection: rustls's session, its keys and its buffers (the server's resident
//! memory grew by about 8 KiB per connection for 1,000 idle ones held over `tls:`, against
//! under 1 KiB over TCP), the handshake's CPU on the loop, and an entry on the deadline queue
//! until its deadline passes. The loop's plain connections are a separate type (the loop is
//! generic over [`Pumped`]), so TCP and Unix connections pay nothing for TLS. Memory stays bounded as on the plain path:
//! rustls's outgoing TLS is limited to `buffer_size` (`set_buffer_limit`), the echo it did not
//! take yet waits in a buffer of at most `buffer_size`, and once that is full the loop stops
//! reading the client (neither `read_tls` nor `reader()`, which leaves rustls holding at most
//! one record of plaintext and one of ciphertext) until the client takes its echo.
//!
//! Over UDP ([`DatagramLoop`]) the loop reads a batch of up to 32 datagrams per `recvmmsg` and
//! sends them back with one `sendmmsg`: two system calls per batch instead of two per datagram.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use rustls::ServerConnection;
use slab::Slab;

use echo_cli::{Endpoint, Transport};

use crate::blocking_io::join_all_within;
use crate::datagram::{Batch, DatagramError};
use crate::net::{self, AcceptAction, StreamListener};
use crate::server::{
    EchoServer, Health, Model, READS_PER_TURN, SHUTDOWN_GRACE, ServerConfig, ServerHandle,
    ServerId, StopServer, start_each,
};
use crate::tls::TlsServer;
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
        &Transport::ALL
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        if config.listen.transport() == Transport::Udp {
            return DatagramLoop::start(Model::Mio, config, 1);
        }
        let (plain, tls) = net::split_tls(config)?;
        let listener = net::bind(&plain)?;
        let endpoint = net::served(listener.endpoint()?, &tls);
        let id = ServerId::next();
        let mut stop = LoopStop {
            wakers: Vec::new(),
            threads: Vec::new(),
        };
        stop.start_loop(&id, listener, EchoPath::of(config), tls.as_ref())?;
        Ok(ServerHandle::new(Model::Mio, id, endpoint, Box::new(stop)))
    }
}

/// Stops event loops: wakes each, which then returns, dropping (closing) its connections.
pub(crate) struct LoopStop {
    pub(crate) wakers: Vec<Arc<Waker>>,
    pub(crate) threads: Vec<std::thread::JoinHandle<()>>,
}

impl LoopStop {
    /// Starts an event loop thread (`es<id>-mio`) over `listener` and records how to stop it:
    /// a loop of plain connections, or of TLS connections when `tls` is given (one type or the
    /// other for the whole loop, so the plain one runs no TLS code at all).
    pub(crate) fn start_loop(
        &mut self,
        id: &ServerId,
        listener: StreamListener,
        path: EchoPath,
        tls: Option<&TlsServer>,
    ) -> io::Result<()> {
        let health = id.health().clone();
        let (waker, thread) = match tls {
            None => {
                let (event_loop, waker) = EventLoop::<Connection>::new(listener, path, health, ())?;
                (waker, id.spawn_loop("mio", move || event_loop.run())?)
            }
            Some(tls) => {
                let setup = TlsSetup::new(tls, path);
                let (event_loop, waker) =
                    EventLoop::<TlsConnection>::new(listener, path, health, setup)?;
                (waker, id.spawn_loop("mio", move || event_loop.run())?)
            }
        };
        self.wakers.push(waker);
        self.threads.push(thread);
        Ok(())
    }
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

/// One readiness loop: its poll, its listener, its connections (all of one kind `C`: plain
/// [`Connection`]s or [`TlsConnection`]s).
pub(crate) struct EventLoop<C: Pumped> {
    poll: Poll,
    listener: Listener,
    connections: Slab<C>,
    /// What every new connection is made with (the TLS configuration; nothing for plain ones).
    setup: C::Setup,
    /// Connections still shaking hands, by deadline, in accept order (every connection gets the
    /// same timeout, so the earliest is at the front). An entry stays until its deadline passes
    /// even if its handshake ended first, so they number at most the handshakes begun within one
    /// timeout; an entry whose connection has gone, finished its handshake or whose key a newer
    /// connection took (its deadline is then a later one) is skipped. Always empty for plain.
    deadlines: VecDeque<(Instant, usize)>,
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

impl<C: Pumped> EventLoop<C> {
    /// A loop over `listener` (a bound listener of either stream transport; it is made
    /// non-blocking) whose connections are made with `setup`, and the waker that stops it.
    pub(crate) fn new(
        listener: StreamListener,
        path: EchoPath,
        health: Health,
        setup: C::Setup,
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
            setup,
            deadlines: VecDeque::new(),
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
                // Asleep no later than the next handshake deadline (mio rounds a timeout up to
                // the millisecond, so the sweep below then finds it passed).
                let deadline = self.deadlines.front().map(|&(deadline, _)| deadline);
                match (self.accept_paused_until, deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
                .map(|until| until.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            // The clock is read only while a handshake is pending: a plain loop never is.
            if let Some(&(first, _)) = self.deadlines.front() {
                let now = Instant::now();
                if first <= now {
                    self.sweep(now);
                }
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
                    *conn.queued() = false;
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
                Ok(stream) => {
                    // A session rustls will not make costs only this client (dropped: closed).
                    let Ok(mut conn) = C::accept(stream, &self.setup) else {
                        continue;
                    };
                    let entry = self.connections.vacant_entry();
                    let key = entry.key();
                    // Registering reports readiness that is already there (data sent before
                    // the accept), so nothing is missed.
                    if self
                        .poll
                        .registry()
                        .register(conn.stream(), Token(key), Interest::READABLE)
                        .is_ok()
                    {
                        if let Some(deadline) = conn.handshake_deadline() {
                            self.deadlines.push_back((deadline, key));
                        }
                        entry.insert(conn);
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
                let capacity = self.scratch.len();
                if conn
                    .update_interest(registry, Token(key), capacity)
                    .is_err()
                {
                    self.close(key);
                } else if matches!(state, State::TurnOver) && !*conn.queued() {
                    *conn.queued() = true;
                    self.ready.push(key);
                }
            }
            // Finished (half-closed and fully echoed) or failed: either way only this one ends.
            Ok(State::Finished) | Err(_) => self.close(key),
        }
    }

    fn close(&mut self, key: usize) {
        if let Some(mut conn) = self.connections.try_remove(key) {
            let _ = self.poll.registry().deregister(conn.stream());
        }
    }

    /// Closes the connections whose handshake deadline has passed by `now` and that are still
    /// shaking hands (a client that sent nothing, or trickles its ClientHello).
    fn sweep(&mut self, now: Instant) {
        while let Some(&(deadline, key)) = self.deadlines.front() {
            if deadline > now {
                return;
            }
            self.deadlines.pop_front();
            let stalled = self
                .connections
                .get(key)
                .is_some_and(|conn| conn.handshake_deadline() == Some(deadline));
            if stalled {
                self.close(key);
            }
        }
    }
}

/// A kind of connection the loop drives: plain ([`Connection`]) or TLS ([`TlsConnection`]). The
/// loop is generic over it rather than holding an enum, so the plain loop is the very code it
/// was before TLS (no branch per event, no larger slab entries).
pub(crate) trait Pumped: Sized {
    /// What every connection of a loop is made with.
    type Setup: Send + 'static;

    /// A connection over a freshly accepted socket.
    fn accept(stream: Socket, setup: &Self::Setup) -> io::Result<Self>;

    /// Moves its bytes as far as they go within one turn.
    fn pump(&mut self, scratch: &mut [u8], path: EchoPath) -> io::Result<State>;

    /// Registers the interest its state calls for; `capacity` is what it may hold unsent.
    fn update_interest(
        &mut self,
        registry: &Registry,
        token: Token,
        capacity: usize,
    ) -> io::Result<()>;

    /// Its socket, to register and deregister.
    fn stream(&mut self) -> &mut Socket;

    /// Whether it is on the loop's ready list already (so it is put there once, without a
    /// search).
    fn queued(&mut self) -> &mut bool;

    /// When its handshake must be over, while one is under way.
    fn handshake_deadline(&self) -> Option<Instant> {
        None
    }
}

/// Whether a connection still has work.
pub(crate) enum State {
    /// Waiting for readiness.
    Open,
    /// Its turn's reads are used up and more bytes may be waiting: pump it again soon.
    TurnOver,
    Finished,
}

/// A plain connection (TCP or Unix).
pub(crate) struct Connection {
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
}

impl Pumped for Connection {
    type Setup = ();

    fn accept(stream: Socket, _: &()) -> io::Result<Self> {
        Ok(Connection::new(stream))
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

    /// READABLE while reading, WRITABLE only while something waits to be written.
    fn update_interest(
        &mut self,
        registry: &Registry,
        token: Token,
        capacity: usize,
    ) -> io::Result<()> {
        let wants_write = self.backlog() > 0;
        let wants_read = !self.read_closed && self.backlog() < capacity;
        let (stream, interest) = (&mut self.stream, &mut self.interest);
        reregister(registry, token, stream, interest, wants_read, wants_write)
    }

    fn stream(&mut self) -> &mut Socket {
        &mut self.stream
    }

    fn queued(&mut self) -> &mut bool {
        &mut self.queued
    }
}

/// READABLE while reading, WRITABLE only while something waits to be written; the socket is
/// reregistered only when that changes.
fn reregister(
    registry: &Registry,
    token: Token,
    stream: &mut Socket,
    current: &mut Interest,
    wants_read: bool,
    wants_write: bool,
) -> io::Result<()> {
    let interest = match (wants_read, wants_write) {
        (true, true) => Interest::READABLE | Interest::WRITABLE,
        (false, true) => Interest::WRITABLE,
        // Nothing to write and not reading (cannot happen: such a connection is finished).
        (_, false) => Interest::READABLE,
    };
    if interest != *current {
        registry.reregister(stream, token, interest)?;
        *current = interest;
    }
    Ok(())
}

/// What a loop's TLS connections are made with.
pub(crate) struct TlsSetup {
    config: Arc<rustls::ServerConfig>,
    handshake_timeout: Duration,
    /// rustls's limit on the TLS it buffers to send: the plain path's bound, `buffer_size`.
    buffer_limit: usize,
}

impl TlsSetup {
    fn new(tls: &TlsServer, path: EchoPath) -> Self {
        Self {
            config: tls.config(),
            handshake_timeout: tls.handshake_timeout(),
            buffer_limit: path.buffer_size,
        }
    }
}

/// A TLS connection: rustls's session over the socket, driven by readiness as rustls's mio
/// example drives it.
pub(crate) struct TlsConnection {
    stream: Socket,
    tls: ServerConnection,
    /// While the handshake is under way: when it must be over (the loop's sweep closes the
    /// connection then).
    deadline: Option<Instant>,
    /// Echo plaintext rustls has not taken yet (its buffer was at its limit); `sent` of it is
    /// taken. It goes to rustls before anything more is read.
    unsent: Vec<u8>,
    sent: usize,
    /// The client closed its side (`close_notify`, or EOF after the handshake): echo the rest,
    /// then `close_notify`, then close.
    read_closed: bool,
    /// `close_notify` is queued.
    closing: bool,
    interest: Interest,
    queued: bool,
}

impl TlsConnection {
    fn backlog(&self) -> usize {
        self.unsent.len() - self.sent
    }

    /// Gives rustls what it did not take yet (as much as its limit allows) and writes its
    /// records, until both are done or the socket would block.
    fn flush(&mut self) -> io::Result<()> {
        loop {
            if self.backlog() > 0 {
                self.sent += self.tls.writer().write(&self.unsent[self.sent..])?;
                if self.backlog() == 0 {
                    self.unsent.clear();
                    self.sent = 0;
                }
            }
            // rustls takes no plaintext only while its records are at the limit, so this ends.
            if !self.tls.wants_write() {
                return Ok(());
            }
            match self.tls.write_tls(&mut self.stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Encrypts a chunk's echo (rustls takes it up to its limit; the rest is kept, after what
    /// is kept already) and writes it.
    fn echo(&mut self, data: &[u8]) -> io::Result<()> {
        let taken = if self.backlog() == 0 {
            self.tls.writer().write(data)?
        } else {
            0
        };
        if taken < data.len() {
            if self.sent > 0 {
                self.unsent.drain(..self.sent);
                self.sent = 0;
            }
            self.unsent.extend_from_slice(&data[taken..]);
        }
        self.flush()
    }

    /// Decrypts what `read_tls` brought (and goes on with the handshake, signing on this
    /// thread). A record rustls refuses, such as a garbage ClientHello, gets the alert rustls
    /// queued, if the socket takes it at once, and ends the connection.
    fn process(&mut self) -> io::Result<()> {
        if let Err(err) = self.tls.process_new_packets() {
            let _ = self.tls.write_tls(&mut self.stream);
            return Err(io::Error::new(io::ErrorKind::InvalidData, err));
        }
        if self.deadline.is_some() && !self.tls.is_handshaking() {
            self.deadline = None;
        }
        Ok(())
    }

    /// After the client's close, once its echo is all with rustls: `close_notify`, written,
    /// and then the connection is finished.
    fn finish(&mut self) -> io::Result<State> {
        if self.backlog() > 0 {
            return Ok(State::Open);
        }
        if !self.closing {
            self.closing = true;
            self.tls.send_close_notify();
            self.flush()?;
        }
        Ok(if self.tls.wants_write() {
            State::Open
        } else {
            State::Finished
        })
    }
}

impl Pumped for TlsConnection {
    type Setup = TlsSetup;

    fn accept(stream: Socket, setup: &TlsSetup) -> io::Result<Self> {
        let mut tls = ServerConnection::new(Arc::clone(&setup.config)).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(setup.buffer_limit));
        Ok(Self {
            stream,
            tls,
            deadline: Some(Instant::now() + setup.handshake_timeout),
            unsent: Vec::new(),
            sent: 0,
            read_closed: false,
            closing: false,
            interest: Interest::READABLE,
            queued: false,
        })
    }

    /// As the plain pump, through rustls: writes what is pending, then takes the plaintext
    /// rustls has already decrypted, and only when there is none reads TLS from the socket
    /// (rustls refuses to read more while its plaintext waits). Either counts as one of the
    /// turn's [`READS_PER_TURN`] reads. Reading stops while the echo kept back is full.
    fn pump(&mut self, scratch: &mut [u8], path: EchoPath) -> io::Result<State> {
        let capacity = scratch.len();
        for _ in 0..READS_PER_TURN {
            self.flush()?;
            if self.read_closed {
                return self.finish();
            }
            let room = capacity - self.backlog();
            if room == 0 {
                // Full: stop reading until the peer takes some of its echo.
                return Ok(State::Open);
            }
            match self.tls.reader().read(&mut scratch[..room]) {
                Ok(0) => {
                    // The client's close_notify, after everything it sent.
                    self.read_closed = true;
                    continue;
                }
                Ok(n) => {
                    path.on_message(&scratch[..n]);
                    self.echo(&scratch[..n])?;
                    continue;
                }
                // EOF without close_notify, after the handshake: served as a half-close.
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                    self.read_closed = true;
                    continue;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
            match self.tls.read_tls(&mut self.stream) {
                // EOF: the reader says next whether it came after a close_notify; mid-handshake
                // there is nothing to finish.
                Ok(0) if self.tls.is_handshaking() => {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(0) => {}
                Ok(_) => self.process()?,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(State::Open),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(State::TurnOver)
    }

    /// READABLE while rustls wants to read and the echo kept back has room, WRITABLE only
    /// while rustls has records to write.
    fn update_interest(
        &mut self,
        registry: &Registry,
        token: Token,
        capacity: usize,
    ) -> io::Result<()> {
        let wants_write = self.tls.wants_write();
        let wants_read = !self.read_closed && self.backlog() < capacity && self.tls.wants_read();
        let (stream, interest) = (&mut self.stream, &mut self.interest);
        reregister(registry, token, stream, interest, wants_read, wants_write)
    }

    fn stream(&mut self) -> &mut Socket {
        &mut self.stream
    }

    fn queued(&mut self) -> &mut bool {
        &mut self.queued
    }

    fn handshake_deadline(&self) -> Option<Instant> {
        self.deadline
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
pub(crate) enum Socket {
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

    /// rustls's `write_tls` hands its queued records over as one vector: one `writev` for
    /// all, where the default would write the first record alone.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Socket::Tcp(stream) => stream.write_vectored(bufs),
            Socket::Unix(stream) => stream.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! What the shared checks over `tls:` cannot see from outside: that the deadline sweep
    //! closes each stalled handshake at its own deadline and nothing else, and the bound on
    //! what a TLS connection holds for a client that does not read.
    //!
    //! Bounds: every blocking socket has read and write timeouts, the non-blocking ones are
    //! driven by loops with a deadline; all traffic goes to 127.0.0.1 or a socket pair.

    use std::net::{SocketAddr, TcpStream};

    use echo_cli::TlsVersions;
    use echo_loadgen::tls::{TlsClient, TlsStream, Trust};

    use super::*;

    const IO_TIMEOUT: Duration = Duration::from_secs(10);

    fn client_of(tls: &TlsServer) -> TlsClient {
        let ca = Trust::Ca(tls.ca_file().unwrap().to_owned());
        let name = TlsClient::name_for([127, 0, 0, 1].into());
        TlsClient::new(&ca, TlsVersions::TLS13, false, name).unwrap()
    }

    fn tcp(addr: SocketAddr) -> TcpStream {
        let socket = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        socket
    }

    fn round_trip(stream: &mut TlsStream, message: &[u8]) {
        stream.write_all(message).unwrap();
        let mut echoed = vec![0; message.len()];
        stream.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, message);
    }

    /// Whether the server has closed `socket`: EOF or an error, not a read that timed out.
    fn closed(socket: &TcpStream) -> bool {
        let mut byte = [0];
        match (&*socket).read(&mut byte) {
            Ok(0) => true,
            Ok(_) => panic!("a stalled handshake got an answer"),
            Err(err) => !matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }

    /// Two silent clients a while apart, one that trickles its ClientHello a byte at a time, one
    /// that shook hands before any deadline and is quiet past its own, and one served in the
    /// middle of it all: each stalled one is closed at its own deadline (the trickler too: the
    /// deadline is the handshake's, not each read's), and the others are served throughout.
    #[test]
    fn the_sweep_closes_each_stalled_handshake_at_its_own_deadline_and_nothing_else() {
        const TIMEOUT: Duration = Duration::from_millis(300);
        let tls = TlsServer::self_signed(TlsVersions::TLS13)
            .unwrap()
            .with_handshake_timeout(TIMEOUT);
        let client = client_of(&tls);
        let config = ServerConfig {
            tls: Some(tls),
            ..ServerConfig::at(Endpoint::Tls("127.0.0.1:0".parse().unwrap()))
        };
        let server = MioLoop.start(&config).unwrap();
        let addr = server.endpoint().socket_addr().unwrap();

        // Its deadline entry is still queued when it passes: the sweep must skip it.
        let mut early = TlsStream::handshake(tcp(addr), client.connection().unwrap()).unwrap();
        let silent = tcp(addr);
        let silent_at = Instant::now();
        let trickle = tcp(addr);
        // Timed from here, not from the thread's start, which a loaded machine may delay.
        let trickle_at = Instant::now();
        let trickler = std::thread::spawn(move || {
            trickle
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            // A handshake record's header, then its body a byte every 20 ms (240 bytes would
            // take 4.8 s): each byte is read, none completes the record.
            let header = [0x16, 0x03, 0x01, 0x00, 0xf0];
            for i in 0..240 {
                let byte = header.get(i).copied().unwrap_or(0);
                if (&trickle).write_all(&[byte]).is_err() || closed(&trickle) {
                    return trickle_at.elapsed();
                }
            }
            panic!("a trickled handshake was never closed");
        });

        std::thread::sleep(TIMEOUT / 2);
        let late_silent = tcp(addr);
        let late_at = Instant::now();
        // Served while three handshakes stall.
        let mut other = TlsStream::handshake(tcp(addr), client.connection().unwrap()).unwrap();
        round_trip(&mut other, b"served meanwhile");

        let waited = |socket: &TcpStream, since: Instant| {
            assert!(closed(socket), "a silent handshake was not closed");
            since.elapsed()
        };
        let silent_waited = waited(&silent, silent_at);
        let late_waited = waited(&late_silent, late_at);
        let trickle_waited = trickler.join().unwrap();
        let slack = Duration::from_millis(30);
        for (who, waited) in [
            ("silent", silent_waited),
            ("late silent", late_waited),
            ("trickling", trickle_waited),
        ] {
            assert!(
                waited + slack >= TIMEOUT && waited < Duration::from_secs(5),
                "the {who} client was closed after {waited:?}; the timeout is {TIMEOUT:?}"
            );
        }

        round_trip(&mut early, b"past its handshake deadline, still served");
        round_trip(&mut other, b"and this one too");
        server.shutdown().unwrap();
    }

    /// Writes what `client` has queued and, if `read`, reads what there is, without blocking.
    fn client_io(
        client: &mut rustls::ClientConnection,
        socket: &mut mio::net::UnixStream,
        read: bool,
    ) {
        while client.wants_write() {
            match client.write_tls(socket) {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => panic!("client write: {err}"),
            }
        }
        if !read {
            return;
        }
        match client.read_tls(socket) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(_) => {
                client.process_new_packets().unwrap();
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => panic!("client read: {err}"),
        }
    }

    /// A client that writes without reading, on a socket pair driven by hand: once it stalls,
    /// the server holds at most `buffer_size` of echo and rustls at most its limit of TLS (plus
    /// record overhead) and a record's worth of plaintext, and no longer wants to read; once the
    /// client reads, every byte comes back in order, and its close_notify is answered.
    #[test]
    fn a_tls_client_that_does_not_read_is_held_within_bounds_and_then_echoed_whole() {
        const CAPACITY: usize = 16 * 1024;
        let tls = TlsServer::self_signed(TlsVersions::TLS13).unwrap();
        let path = EchoPath::of(&ServerConfig {
            buffer_size: CAPACITY,
            ..ServerConfig::default()
        });
        let (server_end, mut socket) = mio::net::UnixStream::pair().unwrap();
        let mut server =
            TlsConnection::accept(Socket::Unix(server_end), &TlsSetup::new(&tls, path)).unwrap();
        let poll = Poll::new().unwrap();
        poll.registry()
            .register(server.stream(), Token(0), Interest::READABLE)
            .unwrap();
        let mut client = client_of(&tls).connection().unwrap();
        let mut scratch = vec![0; CAPACITY];
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut pump = |server: &mut TlsConnection| {
            assert!(
                Instant::now() < deadline,
                "the exchange did not end in time"
            );
            let state = server.pump(&mut scratch, path).unwrap();
            server
                .update_interest(poll.registry(), Token(0), CAPACITY)
                .unwrap();
            state
        };

        while client.is_handshaking() || server.handshake_deadline().is_some() {
            client_io(&mut client, &mut socket, true);
            pump(&mut server);
        }

        // Push until neither side moves: the client's rustls buffer and the socket pair are full.
        let pattern = |i: usize| (i % 251) as u8;
        let mut pushed = 0;
        let mut still = 0;
        while still < 3 {
            let chunk: Vec<u8> = (pushed..pushed + 4096).map(pattern).collect();
            let taken = client.writer().write(&chunk).unwrap();
            pushed += taken;
            client_io(&mut client, &mut socket, false);
            pump(&mut server);
            still = if taken == 0 { still + 1 } else { 0 };
            // Socket buffers take a few hundred KiB; a server without a bound takes it all.
            assert!(
                pushed < 16 << 20,
                "the server goes on reading a client that does not read"
            );
        }
        let held = server.tls.process_new_packets().unwrap();
        assert!(server.backlog() <= CAPACITY, "{} held", server.backlog());
        assert!(
            held.tls_bytes_to_write() <= CAPACITY + 4 * 1024,
            "rustls holds {} bytes of TLS",
            held.tls_bytes_to_write()
        );
        assert!(
            held.plaintext_bytes_to_read() <= 2 * 16 * 1024,
            "rustls holds {} bytes of plaintext",
            held.plaintext_bytes_to_read()
        );
        assert_eq!(server.interest, Interest::WRITABLE, "still reading");
        assert!(pushed > 4 * CAPACITY, "only {pushed} bytes pushed");

        // Now the client reads: all of it comes back, in order.
        let mut echoed = 0;
        let mut buf = vec![0; 64 * 1024];
        while echoed < pushed {
            client_io(&mut client, &mut socket, true);
            while let Ok(n) = client.reader().read(&mut buf) {
                assert!(n > 0, "close_notify before the echo was complete");
                let expected: Vec<u8> = (echoed..echoed + n).map(pattern).collect();
                assert!(buf[..n] == expected[..], "the echo at {echoed} differs");
                echoed += n;
            }
            pump(&mut server);
        }
        assert_eq!(echoed, pushed);

        client.send_close_notify();
        let mut state = State::Open;
        while !matches!(state, State::Finished) {
            client_io(&mut client, &mut socket, true);
            state = pump(&mut server);
        }
        client_io(&mut client, &mut socket, true);
        assert!(
            matches!(client.reader().read(&mut buf), Ok(0)),
            "no close_notify from the server"
        );
    }
}
