//! `tokio-uring`: completion-based I/O through tokio-uring, thread-per-core. One thread per core
//! (`es<id>-uring`), each with its own tokio-uring runtime (a current-thread tokio runtime whose
//! I/O goes through an io_uring ring instead of epoll) and its own `SO_REUSEPORT` listener; a
//! task per connection, never leaving its thread.
//!
//! Why tokio-uring: it is io_uring as the tokio ecosystem offers it, a current-thread tokio
//! runtime whose I/O goes through a ring, so the shutdown is the `tokio` model's: a
//! `CancellationToken` watched by the accept loop and every handler, and a `TaskTracker` that
//! shutdown waits on. The other ways to use io_uring are models of their own: `io-uring` (the
//! ring itself, multishot and buffer rings), `monoio`, `compio` and `glommio`.
//!
//! What differs from readiness I/O: a read is submitted to the kernel with the buffer it will
//! fill, and the task is woken when the bytes are already in it (one completion instead of a
//! readiness event plus a `read` system call). The buffer therefore belongs to the kernel while
//! the operation is in flight: it moves into each call and comes back with the result. An
//! operation dropped in flight keeps its buffer and its socket alive until the kernel completes
//! it, so shutdown first shuts every socket down, which completes the pending operation at once,
//! and awaits it.
//!
//! Cost per connection: one task and its buffer, as `tokio-current-thread`. What blocks: nothing;
//! per-message work runs on the thread that owns the connection. Where the kernel refuses
//! io_uring (old kernels, seccomp profiles such as Docker's default), the model reports itself
//! unavailable ([`EchoServer::available`]) and the tools skip it.
//!
//! Over UDP each thread has its own `SO_REUSEPORT` socket and keeps four receives submitted to
//! its ring, each task sending its datagram back before receiving again.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Instant;

use tokio_uring::net::{TcpListener, TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use echo_cli::{Endpoint, Transport};

use crate::blocking_io::join_all_within;
use crate::datagram::{DatagramError, MAX_DATAGRAM};
use crate::driver::{Driver, io_uring_refused};
use crate::models::tokio::after_accept_error;
use crate::net::{self, StreamListener};
use crate::server::{
    EchoServer, Health, JOIN_AFTER_DRAIN, Model, SHUTDOWN_GRACE, ServerConfig, ServerHandle,
    ServerId, StopServer, available_cores, start_each,
};
use crate::work::EchoPath;

/// io_uring via tokio-uring, a runtime per core.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioUringServer;

impl EchoServer for TokioUringServer {
    fn model(&self) -> Model {
        Model::TokioUring
    }

    fn driver(&self) -> Driver {
        Driver::IoUring
    }

    fn available(&self) -> Result<(), String> {
        // tokio-uring has no fallback: without io_uring there is no model.
        match io_uring_refused() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Unix, Transport::Udp]
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        if let Err(why) = self.available() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, why));
        }
        let cores = config.threads_or(available_cores());
        let (units, endpoint) = if config.listen.transport() == Transport::Udp {
            let sockets = net::bind_datagram_per_core(config, cores)?;
            let endpoint = Endpoint::Udp(sockets[0].local_addr()?);
            (
                sockets.into_iter().map(Unit::Datagram).collect::<Vec<_>>(),
                endpoint,
            )
        } else {
            let listeners = net::bind_per_core(config, cores)?;
            let endpoint = listeners[0].endpoint()?;
            (listeners.into_iter().map(Unit::Stream).collect(), endpoint)
        };
        let id = ServerId::next();
        let path = EchoPath::of(config);
        let stop = UringStop {
            shutdown: CancellationToken::new(),
            threads: Vec::new(),
            wake_datagrams: match endpoint {
                Endpoint::Udp(addr) => Some(addr),
                _ => None,
            },
        };
        let stop = start_each(stop, units, |stop, unit| {
            let shutdown = stop.shutdown.clone();
            let health = id.health().clone();
            // The runtime is built on its own thread (it cannot move between threads); the
            // thread reports whether that worked before `start` returns.
            let (started, outcome) = mpsc::channel();
            let thread = id.spawn_loop("uring", move || {
                let runtime = match tokio_uring::Runtime::new(&tokio_uring::builder()) {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = started.send(Err(err));
                        return Ok(());
                    }
                };
                let _ = started.send(Ok(()));
                match unit {
                    Unit::Stream(listener) => {
                        runtime.block_on(serve(listener, shutdown, path, health))
                    }
                    Unit::Datagram(socket) => {
                        runtime.block_on(serve_datagrams(socket, shutdown, path, health))
                    }
                }
            })?;
            stop.threads.push(thread);
            outcome
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("the io_uring thread died")))
        })?;
        Ok(ServerHandle::new(
            Model::TokioUring,
            id,
            endpoint,
            Box::new(stop),
        ))
    }
}

/// What one thread serves: a stream listener, or a UDP socket.
enum Unit {
    Stream(StreamListener),
    Datagram(std::net::UdpSocket),
}

/// Receives on `socket` with [`DATAGRAMS_IN_FLIGHT`] tasks, so that many receives are always
/// submitted to the ring, each sending its datagram back before it receives again, until
/// shutdown. Returns an error if every task ended before shutdown (the socket failed).
async fn serve_datagrams(
    socket: std::net::UdpSocket,
    shutdown: CancellationToken,
    path: EchoPath,
    health: Health,
) -> io::Result<()> {
    let socket = Rc::new(tokio_uring::net::UdpSocket::from_std(socket));
    let tasks = TaskTracker::new();
    for _ in 0..DATAGRAMS_IN_FLIGHT {
        let socket = Rc::clone(&socket);
        let shutdown = shutdown.clone();
        let health = health.clone();
        tasks.spawn_local(async move {
            let mut buf = Vec::with_capacity(MAX_DATAGRAM);
            loop {
                buf.clear();
                let (received, filled) = socket.recv_from(buf).await;
                buf = filled;
                if shutdown.is_cancelled() {
                    return;
                }
                let peer = match received {
                    Ok((_, peer)) => peer,
                    Err(err) => match DatagramError::of_receive(&err) {
                        DatagramError::Again | DatagramError::Peer => continue,
                        DatagramError::Socket => {
                            health.died(format_args!("tokio-uring: udp receive failed: {err}"));
                            return;
                        }
                    },
                };
                path.on_message(&buf);
                // Whatever a send's error, it loses that one datagram, as the network may.
                let (_, sent) = socket.send_to(buf, peer).await;
                buf = sent;
            }
        });
    }
    tasks.close();
    // The tasks run until shutdown; only then is their end awaited, for a bounded time. Each
    // returns after its receive completes once shutdown began; shutdown sends the datagrams
    // that complete them (`wake_receivers`), since nothing here may drop an operation the ring
    // still holds. (This wait once began at start, so every ring thread quit 8 s after start,
    // under load or not.)
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tasks.wait() => {
            return Err(io::Error::other("every datagram receiver of this ring ended"));
        }
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE * 2, tasks.wait()).await;
    Ok(())
}

/// Receives each tokio-uring datagram thread keeps submitted.
const DATAGRAMS_IN_FLIGHT: usize = 4;

fn fd_of(socket: &impl AsRawFd) -> std::os::fd::BorrowedFd<'_> {
    // SAFETY: the socket owns the descriptor and outlives the borrow.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) }
}

/// Accepts until shutdown, a task per connection, then waits (bounded) for every handler.
///
/// An operation dropped while the kernel still holds it keeps its socket open until it
/// completes, so nothing here is dropped in flight: at shutdown each socket is shut down first,
/// which makes the kernel complete its pending accept, read or write at once, and the operation
/// is then awaited to its end.
async fn serve(
    listener: StreamListener,
    shutdown: CancellationToken,
    path: EchoPath,
    health: Health,
) -> io::Result<()> {
    let listener = Listener::adopt(listener)
        .map_err(|err| io::Error::other(format!("cannot adopt the listener: {err}")))?;
    let handlers = TaskTracker::new();
    loop {
        let accept = listener.accept();
        tokio::pin!(accept);
        let accepted = tokio::select! {
            accepted = &mut accept => accepted,
            () = shutdown.cancelled() => {
                // A listening socket shut down fails its pending accept (EINVAL).
                listener.shut_down();
                // A connection accepted in the meantime is dropped, that is closed.
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, accept).await;
                break;
            }
        };
        match accepted {
            Ok(Accepted::Tcp(stream)) => {
                let _ = stream.set_nodelay(true);
                handlers.spawn_local(handle(stream, shutdown.clone(), path));
            }
            Ok(Accepted::Unix(stream)) => {
                handlers.spawn_local(handle(stream, shutdown.clone(), path));
            }
            Err(err) => {
                if after_accept_error(&err, &shutdown, &health).await {
                    break;
                }
            }
        }
    }
    drop(listener);
    handlers.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, handlers.wait()).await;
    Ok(())
}

/// Echoes one connection until it ends or shutdown, when its socket is shut down first so the
/// operation in flight completes, and is awaited.
async fn handle(stream: impl UringStream, shutdown: CancellationToken, path: EchoPath) {
    let stream = Rc::new(stream);
    let echo = echo(Rc::clone(&stream), path);
    tokio::pin!(echo);
    tokio::select! {
        _ = &mut echo => {}
        () = shutdown.cancelled() => {
            let _ = stream.shutdown(Shutdown::Both);
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, echo).await;
        }
    }
}

/// The listener of one thread. TCP accepts through the ring. tokio-uring has no way to adopt a
/// bound Unix listener (only to bind a path, which the per-core threads cannot all do), so a Unix
/// socket accepts through the runtime's epoll driver, and each connection then does its reads and
/// writes through the ring like a TCP one.
enum Listener {
    Tcp(TcpListener),
    Unix(tokio::net::UnixListener),
}

/// A connection just accepted.
enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    fn adopt(listener: StreamListener) -> io::Result<Self> {
        Ok(match listener {
            StreamListener::Tcp(l) => Listener::Tcp(TcpListener::from_std(l)),
            StreamListener::Unix(l) => {
                l.set_nonblocking(true)?;
                Listener::Unix(tokio::net::UnixListener::from_std(l)?)
            }
        })
    }

    async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(listener) => listener.accept().await.map(|(s, _)| Accepted::Tcp(s)),
            Listener::Unix(listener) => {
                let stream = listener.accept().await?.0.into_std()?;
                // Ring operations on a non-blocking socket would complete with EAGAIN instead of
                // waiting.
                stream.set_nonblocking(false)?;
                Ok(Accepted::Unix(UnixStream::from_std(stream)))
            }
        }
    }

    /// Completes a pending ring accept at shutdown (an epoll accept is simply dropped).
    fn shut_down(&self) {
        if let Listener::Tcp(listener) = self {
            net::shut_down(fd_of(listener));
        }
    }
}

/// What the echo needs from a tokio-uring stream; its TCP and Unix streams have the same
/// methods but no common trait.
trait UringStream: 'static {
    fn read(&self, buf: Vec<u8>) -> impl Future<Output = tokio_uring::BufResult<usize, Vec<u8>>>;
    fn write_all(&self, buf: Vec<u8>) -> impl Future<Output = tokio_uring::BufResult<(), Vec<u8>>>;
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
}

macro_rules! uring_stream {
    ($ty:ty) => {
        impl UringStream for $ty {
            fn read(
                &self,
                buf: Vec<u8>,
            ) -> impl Future<Output = tokio_uring::BufResult<usize, Vec<u8>>> {
                <$ty>::read(self, buf)
            }
            fn write_all(
                &self,
                buf: Vec<u8>,
            ) -> impl Future<Output = tokio_uring::BufResult<(), Vec<u8>>> {
                <$ty>::write_all(self, buf)
            }
            fn shutdown(&self, how: Shutdown) -> io::Result<()> {
                <$ty>::shutdown(self, how)
            }
        }
    };
}
uring_stream!(TcpStream);
uring_stream!(UnixStream);

/// Echoes until the peer half-closes. The buffer moves into each operation and comes back with
/// its result; `write_all` completes partial writes, and while the peer does not read, the
/// pending write keeps the task from reading more (backpressure).
async fn echo(stream: Rc<impl UringStream>, path: EchoPath) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(path.buffer_size);
    loop {
        // tokio-uring reads into the vector's spare capacity, after its length.
        buf.clear();
        let (read, filled) = stream.read(buf).await;
        buf = filled;
        if read? == 0 {
            return Ok(());
        }
        path.on_message(&buf);
        let (written, sent) = stream.write_all(buf).await;
        buf = sent;
        written?;
    }
}

/// Cancels every thread's accept loop and handlers, then joins the threads.
struct UringStop {
    shutdown: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// For a UDP server, its address: where shutdown sends the datagrams that complete the
    /// receives pending in the rings.
    wake_datagrams: Option<std::net::SocketAddr>,
}

impl StopServer for UringStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.shutdown.cancel();
        let deadline = Instant::now() + JOIN_AFTER_DRAIN;
        if let Some(addr) = self.wake_datagrams {
            wake_receivers(addr, &self.threads, deadline);
        }
        join_all_within(self.threads, deadline)
    }
}

/// Completes the receives pending in the rings of a UDP server being stopped, by sending it
/// empty datagrams until every thread has ended.
///
/// Shutting the socket down would complete them too, but with no sender address, which
/// tokio-uring 0.5's `recv_from` unwraps (a panic). Each datagram comes from a fresh socket so
/// that `SO_REUSEPORT`'s hash of the sender spreads them over every thread's socket; a task that
/// receives one after shutdown began returns without sending anything back.
pub(crate) fn wake_receivers(
    addr: std::net::SocketAddr,
    threads: &[std::thread::JoinHandle<()>],
    deadline: Instant,
) {
    let target = if addr.ip().is_unspecified() {
        let loopback = match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        std::net::SocketAddr::new(loopback, addr.port())
    } else {
        addr
    };
    let local = match target {
        std::net::SocketAddr::V4(_) => "127.0.0.1:0",
        std::net::SocketAddr::V6(_) => "[::1]:0",
    };
    while threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
        for _ in 0..DATAGRAMS_IN_FLIGHT * threads.len() {
            if let Ok(socket) = std::net::UdpSocket::bind(local) {
                let _ = socket.send_to(&[], target);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
