//! `compio`: completion-based I/O through compio, thread-per-core. One thread per core
//! (`es<id>-compio`), each with its own compio `Runtime` and its own `SO_REUSEPORT` listener; a
//! task per connection (`compio::runtime::spawn`), never leaving its thread. Written as compio's
//! own examples are: its `TcpListener`/`UnixListener` accept loop, and `AsyncRead::read` /
//! `AsyncWriteExt::write_all` with an owned buffer that moves into each call and comes back
//! with its result (`BufResult`).
//!
//! Why compio: it is the completion-based runtime that falls back by itself. Its proactor drives
//! io_uring where the kernel allows it and `polling` (epoll) where it does not, behind one API,
//! so the same code measures both. Where [`io_uring_refused`] says no (the kernel, or
//! `ECHO_SERVERS_DISABLE_IO_URING`), the proactor is forced onto the polling driver
//! (`ProactorBuilder::driver_type`) rather than left to its own probe, and every runtime is asked
//! which driver it really built ([`CompioServer::driver`] says what that is).
//!
//! What differs from readiness I/O: under io_uring a read is submitted with the buffer it will
//! fill and the task wakes with the bytes already in it; the buffer belongs to the kernel while
//! the operation is in flight. So nothing is dropped in flight at shutdown: a cross-thread
//! channel tells each runtime, which completes its pending accept (shutting its TCP listener
//! down, or connecting once to the Unix socket the runtimes share) and shuts down every
//! connection it serves (their descriptors are kept in a slab), so that each pending read and
//! write completes at once and its task ends and closes its socket; a handler-held channel
//! tells the accept loop when every handler has ended (bounded by [`SHUTDOWN_GRACE`]). Over UDP
//! the stop sends the datagrams that complete the pending receives. compio's own
//! `CancelToken` would cancel the operations instead, but stopped nothing in a release build
//! (see `serve`).
//!
//! Cost per connection: one task and its buffer of [`ServerConfig::buffer_size`] bytes. What
//! blocks: nothing; per-message work runs on the thread that owns the connection. On the polling
//! driver a read that finds bytes waiting completes without returning to the runtime, so a
//! handler yields after [`READS_PER_TURN`] such reads in a row (compio has no budget of its own).
//!
//! Over `tls:` each runtime's listener is a plain TCP one (`net::split_tls`), and TLS is
//! compio's own adaptor, compio-tls (rustls on ring, through futures-rustls over compio-io's
//! compat `AsyncStream`), as its authors use it: `TlsAcceptor::accept` takes the connection by
//! value and the handshake runs in that connection's task, on the runtime of the core that
//! accepted it, within [`TlsServer::handshake_timeout`] on the runtime's own timer
//! (`compio::time::timeout`); a client that stalls mid-handshake has its handshake dropped,
//! which closes only its connection. The echo is the plain one, through compio-tls's
//! owned-buffer `AsyncRead`/`AsyncWrite`, with a flush after every echo; after the client's
//! `close_notify` (or a bare end-of-file) the handler sends `close_notify`, flushes and shuts
//! its write side down. Shutdown shuts a TLS connection's descriptor down as a plain one's,
//! which ends a handshake or an echo alike. A garbage ClientHello gets a close, not rustls's
//! alert: the alert is queued in the compat stream's write buffer, which is sent only on a
//! flush, and the acceptor drops the stream with the error.
//!
//! What TLS costs and copies: completion I/O hands owned buffers, and the plain path copies
//! nothing in user space (the kernel fills the handler's buffer and sends from that same
//! buffer). TLS puts a buffered compat stream between rustls's synchronous `Read`/`Write` and
//! the owned-buffer operations, so each connection adds rustls's `ServerConnection` and the
//! compat stream's read and write buffers (8 KiB each to start), and each message is copied:
//! in, the completion fills the compat read buffer, rustls copies that into its own record
//! buffer, decrypts it there, copies each record's plaintext into its received-plaintext queue,
//! and the read copies it into the handler's buffer (which compio-tls first zero-fills: it
//! reads through a slice); out, rustls copies the plaintext into a new record and encrypts it in
//! place, and the record is copied into the compat write buffer, which the flush hands to the
//! kernel. That is three copies in and two out, where the plain path has none, besides the
//! cipher itself. A read that rustls or the compat buffer answers without waiting counts
//! towards [`READS_PER_TURN`] as a plain read does.
//!
//! Over UDP each thread has its own `SO_REUSEPORT` socket and one loop receiving into an owned
//! buffer with `recv_from` and sending it back with `send_to`.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::pin;
use std::rc::Rc;
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use compio::driver::{DriverType, ProactorBuilder};
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream, UdpSocket, UnixListener};
use compio::runtime::Runtime;
use futures_util::future::{Either, select};
use slab::Slab;
use socket2::{Domain, SockAddr, Socket, Type};

use echo_cli::{Endpoint, Transport};

use crate::blocking_io::join_all_within;
use crate::datagram::{DatagramError, MAX_DATAGRAM};
use crate::driver::{Driver, io_uring_refused};
use crate::net::{self, AcceptAction, StreamListener};
use crate::server::{
    EchoServer, Health, JOIN_AFTER_DRAIN, Model, READS_PER_TURN, SHUTDOWN_GRACE, ServerConfig,
    ServerHandle, ServerId, StopServer, available_cores, start_each,
};
use crate::tls::TlsServer;
use crate::work::EchoPath;

/// compio, a runtime per core on io_uring or its epoll fallback.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompioServer;

impl EchoServer for CompioServer {
    fn model(&self) -> Model {
        Model::Compio
    }

    /// The driver compio builds here: asked of a proactor built as the runtimes build theirs
    /// (once; the kernel's answer does not change), or the polling driver when io_uring is
    /// refused, which the runtimes are then forced onto.
    fn driver(&self) -> Driver {
        if io_uring_refused().is_some() {
            return Driver::Epoll;
        }
        static BUILT: OnceLock<Driver> = OnceLock::new();
        *BUILT.get_or_init(|| {
            proactor()
                .build()
                .map_or(Driver::Epoll, |proactor| driver_of(proactor.driver_type()))
        })
    }

    fn first_choice(&self) -> Driver {
        Driver::IoUring
    }

    fn transports(&self) -> &'static [Transport] {
        &Transport::ALL
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        let cores = config.threads_or(available_cores());
        // A `tls:` address binds as plain TCP; `tls` then wraps every connection.
        let (plain, tls) = net::split_tls(config)?;
        let (units, endpoint) = if plain.listen.transport() == Transport::Udp {
            let sockets = net::bind_datagram_per_core(&plain, cores)?;
            let endpoint = Endpoint::Udp(sockets[0].local_addr()?);
            (
                sockets.into_iter().map(Unit::Datagram).collect::<Vec<_>>(),
                endpoint,
            )
        } else {
            let listeners = net::bind_per_core(&plain, cores)?;
            let endpoint = net::served(listeners[0].endpoint()?, &tls);
            (listeners.into_iter().map(Unit::Stream).collect(), endpoint)
        };
        let id = ServerId::next();
        let path = EchoPath::of(config);
        let expected = self.driver();
        let (notify_shutdown, shutdown) = async_channel::bounded::<()>(1);
        let stop = CompioStop {
            notify_shutdown,
            threads: Vec::new(),
            wake_datagrams: match endpoint {
                Endpoint::Udp(addr) => Some(addr),
                _ => None,
            },
        };
        let stop = start_each(stop, units, |stop, unit| {
            let shutdown = shutdown.clone();
            let health = id.health().clone();
            let tls = tls.clone();
            // A runtime cannot move between threads, so it is built on its own; the thread says
            // which driver it got (or why it got none) before `start` returns.
            let (started, outcome) = mpsc::channel();
            let thread = id.spawn_loop("compio", move || {
                let runtime = match Runtime::builder().with_proactor(proactor()).build() {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = started.send(Err(err));
                        return Ok(());
                    }
                };
                // Adopting a socket registers it with this runtime's driver (and, on the
                // polling driver, makes it non-blocking), so it is done here, and a failure
                // fails `start`.
                let adopted = match runtime.enter(|| Adopted::new(unit)) {
                    Ok(adopted) => adopted,
                    Err(err) => {
                        let _ = started.send(Err(err));
                        return Ok(());
                    }
                };
                let _ = started.send(Ok(driver_of(runtime.driver_type())));
                runtime.block_on(serve(adopted, shutdown, path, health, tls))
            })?;
            stop.threads.push(thread);
            let built = outcome
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("the compio thread died")))?;
            if built != expected {
                // The handle would report a driver the server does not run on.
                return Err(io::Error::other(format!(
                    "compio built a {built} driver where {expected} was expected"
                )));
            }
            Ok(())
        })?;
        Ok(ServerHandle::new(
            Model::Compio,
            id,
            endpoint,
            Box::new(stop),
        ))
    }
}

/// The proactor every runtime is built with: compio's default (io_uring, falling back to
/// polling if the ring cannot be set up), or the polling driver, forced, where io_uring is
/// refused, so that `ECHO_SERVERS_DISABLE_IO_URING` really runs the fallback.
fn proactor() -> ProactorBuilder {
    let mut builder = ProactorBuilder::new();
    if io_uring_refused().is_some() {
        builder.driver_type(DriverType::Poll);
    }
    builder
}

/// The project's name for a compio driver (its polling driver is epoll on Linux).
fn driver_of(driver: DriverType) -> Driver {
    if driver.is_iouring() {
        Driver::IoUring
    } else {
        Driver::Epoll
    }
}

/// What one thread serves: a stream listener, or a UDP socket.
enum Unit {
    Stream(StreamListener),
    Datagram(std::net::UdpSocket),
}

/// One thread's socket adopted into compio: it keeps the project's backlog and options.
enum Adopted {
    Tcp(TcpListener),
    Unix(UnixListener),
    Udp(UdpSocket),
}

impl Adopted {
    /// Adopts `unit` into the current runtime.
    fn new(unit: Unit) -> io::Result<Self> {
        Ok(match unit {
            Unit::Stream(StreamListener::Tcp(l)) => Adopted::Tcp(TcpListener::from_std(l)?),
            Unit::Stream(StreamListener::Unix(l)) => Adopted::Unix(UnixListener::from_std(l)?),
            Unit::Datagram(socket) => Adopted::Udp(UdpSocket::from_std(socket)?),
        })
    }
}

/// The connections one runtime serves, by descriptor, so that shutdown can shut each down.
/// A handler removes its entry before its socket is closed, so every descriptor here is open.
#[derive(Default)]
struct Connections(RefCell<Slab<RawFd>>);

impl Connections {
    /// Shuts every connection down: its pending read completes with end-of-file, its pending
    /// write with an error, and so does every later one, so each handler ends.
    fn shut_down_all(&self) {
        for (_, &fd) in self.0.borrow().iter() {
            // SAFETY: the handler that owns the socket keeps it open while its entry is here.
            net::shut_down(unsafe { BorrowedFd::borrow_raw(fd) });
        }
    }
}

/// Serves one thread's socket until shutdown reaches this runtime, then shuts down the
/// listener and every connection, which completes each operation in flight, and lets the
/// tasks end.
///
/// The shutdown comes from another thread, and is awaited here, in the future the runtime
/// blocks on (polled again whenever the driver wakes). It does not go through compio's
/// `CancelToken`: with compio 0.19.2 an accept under `with_cancel` is cancelled in a debug
/// build but not in a default release build, where it went on waiting after `cancel()` (so no
/// release server stopped); with one codegen unit and fat LTO it is cancelled again.
/// `with_cancel` finds its own waker by comparing vtable pointers, which separate codegen units
/// need not keep unique.
async fn serve(
    adopted: Adopted,
    shutdown: Receiver<()>,
    path: EchoPath,
    health: Health,
    tls: Option<TlsServer>,
) -> io::Result<()> {
    let tls = tls.as_ref().map(TlsAccept::new);
    let connections = Rc::new(Connections::default());
    let wake_accept = match &adopted {
        Adopted::Tcp(listener) => WakeAccept::ShutDown(listener.as_raw_fd()),
        Adopted::Unix(listener) => listener
            .local_addr()
            .map_or(WakeAccept::Nothing, WakeAccept::Connect),
        Adopted::Udp(_) => WakeAccept::Nothing,
    };
    let watch = pin!(async {
        // The stop closes the channel; `recv` then fails.
        let _ = shutdown.recv().await;
    });
    let mut serving = pin!(async {
        match adopted {
            Adopted::Tcp(listener) => {
                let listener = Listener::Tcp(listener);
                accept_loop(listener, &shutdown, &connections, path, &health, tls).await
            }
            Adopted::Unix(listener) => {
                // `tls:` binds TCP: a Unix listener is never wrapped.
                let listener = Listener::Unix(listener);
                accept_loop(listener, &shutdown, &connections, path, &health, None).await
            }
            Adopted::Udp(socket) => echo_datagrams(socket, &shutdown, path, &health).await,
        }
    });
    match select(watch, serving.as_mut()).await {
        Either::Left(((), _)) => {
            // The listener is still open: the accept loop has not been polled since. (A
            // datagram socket is woken by the stop's datagrams instead: compio's `recv_from`
            // cannot return without a sender.)
            wake_accept.wake();
            connections.shut_down_all();
            serving.await
        }
        // It ended before shutdown (its listener or socket failed, and said so).
        Either::Right((served, _)) => served,
    }
}

/// How shutdown completes a runtime's pending accept.
enum WakeAccept {
    /// A TCP listener (this runtime's own): shut down, it fails its pending accept.
    ShutDown(RawFd),
    /// The Unix socket every runtime shares: shutting it down does not wake an accept waiting
    /// on epoll (the fallback driver), so each runtime connects to it once, which completes one
    /// pending accept, its own or another runtime's, each loop ending after one. A
    /// non-blocking connect, so a full backlog cannot block the runtime.
    Connect(SockAddr),
    /// No accept (UDP).
    Nothing,
}

impl WakeAccept {
    fn wake(&self) {
        match self {
            WakeAccept::ShutDown(fd) => {
                // SAFETY: the accept loop owns the listener and has not dropped it.
                net::shut_down(unsafe { BorrowedFd::borrow_raw(*fd) });
            }
            WakeAccept::Connect(addr) => {
                if let Ok(socket) = Socket::new(Domain::UNIX, Type::STREAM, None) {
                    let _ = socket.set_nonblocking(true);
                    let _ = socket.connect(addr);
                }
            }
            WakeAccept::Nothing => {}
        }
    }
}

/// A stream listener of either transport.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Accepts until shutdown, a task per connection (over TLS when `tls` is given), then waits
/// (bounded) for every handler.
async fn accept_loop(
    listener: Listener,
    shutdown: &Receiver<()>,
    connections: &Rc<Connections>,
    path: EchoPath,
    health: &Health,
    tls: Option<TlsAccept>,
) -> io::Result<()> {
    // Every handler holds a clone; when all are dropped, `recv` on `all_done` fails.
    let (handler_alive, all_done) = async_channel::bounded::<()>(1);
    loop {
        let accepted = match &listener {
            Listener::Tcp(listener) => listener.accept().await.map(|(stream, _)| {
                let _ = stream.set_nodelay(true);
                let alive = &handler_alive;
                match tls.clone() {
                    Some(tls) => spawn_handler(stream, shutdown, connections, alive, |stream| {
                        serve_tls(stream, tls, path)
                    }),
                    None => spawn_handler(stream, shutdown, connections, alive, |stream| {
                        serve_plain(stream, path)
                    }),
                }
            }),
            Listener::Unix(listener) => listener.accept().await.map(|(stream, _)| {
                spawn_handler(stream, shutdown, connections, &handler_alive, |stream| {
                    serve_plain(stream, path)
                })
            }),
        };
        // The accept that shutdown's shut-down listener failed.
        if shutdown.is_closed() {
            break;
        }
        let Err(err) = accepted else { continue };
        match net::after_accept_error(&err, false, health) {
            AcceptAction::WaitReady | AcceptAction::Next => {}
            AcceptAction::BackOff(pause) => {
                let sleep = pin!(compio::time::sleep(pause));
                if let Either::Right(_) = select(sleep, pin!(shutdown.recv())).await {
                    break;
                }
            }
            AcceptAction::Stop => {
                // Accept no more; the connections go on until shutdown.
                let _ = shutdown.recv().await;
                break;
            }
        }
    }
    drop(listener);
    drop(handler_alive);
    let _ = compio::time::timeout(SHUTDOWN_GRACE, all_done.recv()).await;
    Ok(())
}

/// Runs `serve` on one connection as a task of this runtime, its descriptor in `connections`
/// while it runs. A connection accepted once shutdown began is closed at once.
///
/// `serve` owns the stream (a TLS stream must: compio-tls takes it by value), so the task keeps
/// a clone of it (compio's streams share their descriptor) and drops that only after removing
/// the entry: the descriptor stays open while shutdown may still shut it down.
fn spawn_handler<S, F>(
    stream: S,
    shutdown: &Receiver<()>,
    connections: &Rc<Connections>,
    alive: &Sender<()>,
    serve: impl FnOnce(S) -> F,
) where
    S: Clone + AsRawFd + 'static,
    F: Future<Output = io::Result<()>> + 'static,
{
    if shutdown.is_closed() {
        return;
    }
    let alive = alive.clone();
    let connections = Rc::clone(connections);
    let entry = connections.0.borrow_mut().insert(stream.as_raw_fd());
    let open = stream.clone();
    let served = serve(stream);
    compio::runtime::spawn(async move {
        // An error ends this connection only.
        let _ = served.await;
        connections.0.borrow_mut().remove(entry);
        drop(open);
        drop(alive);
    })
    .detach();
}

/// Serves a plain TCP or Unix connection: [`echo`], nothing flushed (a socket's writes are
/// sent when they complete).
async fn serve_plain(mut stream: impl AsyncRead + AsyncWrite, path: EchoPath) -> io::Result<()> {
    echo(&mut stream, path, false).await
}

/// What a `tls:` connection is accepted with: compio-tls's acceptor over the server's rustls
/// configuration, and how long the handshake may take.
#[derive(Clone)]
struct TlsAccept {
    acceptor: compio_tls::TlsAcceptor,
    timeout: Duration,
}

impl TlsAccept {
    fn new(tls: &TlsServer) -> Self {
        Self {
            acceptor: compio_tls::TlsAcceptor::from(tls.config()),
            timeout: tls.handshake_timeout(),
        }
    }
}

/// Serves one `tls:` connection on this task: the handshake within its timeout, on this
/// runtime's timer (a client that stalls is dropped, which closes only its connection), then
/// [`echo`] with a flush after every echo, then `close_notify`.
///
/// The end is clean once the client has closed: its `close_notify` (or a bare end-of-file,
/// which compio-tls reads as the end) comes after every message it sent, and each has been
/// echoed and flushed by then; `shutdown` then queues `close_notify`, flushes it and shuts the
/// socket's write side down.
async fn serve_tls(stream: TcpStream, tls: TlsAccept, path: EchoPath) -> io::Result<()> {
    let mut stream = compio::time::timeout(tls.timeout, tls.acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    echo(&mut stream, path, true).await?;
    stream.shutdown().await
}

/// Echoes until the peer half-closes or shutdown shuts the socket down. The buffer moves into
/// each operation and comes back with its result; `write_all` completes partial writes, and
/// while the peer does not read, the pending write keeps the task from reading more
/// (backpressure). `flush` after every echo is for a TLS stream, whose records wait in
/// compio-io's write buffer until flushed; a plain socket's writes are sent, so its hot path
/// skips the call.
async fn echo(
    stream: &mut (impl AsyncRead + AsyncWrite),
    path: EchoPath,
    flush: bool,
) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(path.buffer_size);
    let mut without_waiting = 0;
    loop {
        // compio reads into the vector's spare capacity, after its length.
        buf.clear();
        let (compio::BufResult(read, filled), waited) = waiting(stream.read(buf)).await;
        buf = filled;
        if read? == 0 {
            return Ok(());
        }
        without_waiting = if waited { 0 } else { without_waiting + 1 };
        path.on_message(&buf);
        let compio::BufResult(written, sent) = stream.write_all(buf).await;
        buf = sent;
        written?;
        if flush {
            stream.flush().await?;
        }
        if without_waiting >= READS_PER_TURN {
            without_waiting = 0;
            futures_lite::future::yield_now().await;
        }
    }
}

/// Awaits `future`, and says whether it had to wait (returned `Pending` at least once) or
/// completed on its first poll, as a read does on the polling driver when bytes are waiting.
async fn waiting<F: Future>(future: F) -> (F::Output, bool) {
    let mut future = pin!(future);
    let mut polls = 0u32;
    let output = poll_fn(|cx| {
        polls += 1;
        future.as_mut().poll(cx)
    })
    .await;
    (output, polls > 1)
}

/// Receives datagrams on this thread's socket and sends each back to its sender, until
/// shutdown. A peer's error costs only its datagram; a socket that fails ends the loop, and
/// the server's health says so.
async fn echo_datagrams(
    socket: UdpSocket,
    shutdown: &Receiver<()>,
    path: EchoPath,
    health: &Health,
) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_DATAGRAM);
    let mut without_waiting = 0;
    while !shutdown.is_closed() {
        buf.clear();
        let (compio::BufResult(received, filled), waited) = waiting(socket.recv_from(buf)).await;
        buf = filled;
        if shutdown.is_closed() {
            break;
        }
        let peer = match received {
            Ok((_, peer)) => peer,
            Err(err) => match DatagramError::of_receive(&err) {
                DatagramError::Again | DatagramError::Peer => continue,
                DatagramError::Socket => {
                    health.died(format_args!("compio: udp receive failed: {err}"));
                    return Err(err);
                }
            },
        };
        path.on_message(&buf);
        let compio::BufResult(sent, back) = socket.send_to(buf, peer).await;
        buf = back;
        if let Err(err) = sent
            && DatagramError::of_send(&err) == DatagramError::Socket
            && !shutdown.is_closed()
        {
            health.died(format_args!("compio: udp send failed: {err}"));
            return Err(err);
        }
        without_waiting = if waited { 0 } else { without_waiting + 1 };
        if without_waiting >= READS_PER_TURN {
            without_waiting = 0;
            futures_lite::future::yield_now().await;
        }
    }
    Ok(())
}

/// Tells every runtime that shutdown began, then joins the threads.
struct CompioStop {
    /// Closed at shutdown: each runtime then shuts its listener and connections down.
    notify_shutdown: Sender<()>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// For a UDP server, its address: where shutdown sends the datagrams that complete the
    /// receives pending in the runtimes.
    wake_datagrams: Option<std::net::SocketAddr>,
}

impl StopServer for CompioStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.notify_shutdown.close();
        // Each runtime waits up to the grace for its handlers; the threads then end.
        let deadline = Instant::now() + JOIN_AFTER_DRAIN;
        if let Some(addr) = self.wake_datagrams {
            // Shutting a datagram socket down would complete its receive without a sender,
            // which compio's `recv_from` unwraps; a datagram completes it instead.
            crate::models::tokio_uring::wake_receivers(addr, &self.threads, deadline);
        }
        join_all_within(self.threads, deadline)
    }
}
