//! `monoio`: thread-per-core on ByteDance's monoio, as its examples are written. One thread per
//! core (`es<id>-monoio`), each with its own monoio runtime and its own `SO_REUSEPORT` listener
//! (built by [`net::bind_per_core`], so the backlog and `SO_REUSEADDR` are the project's, and
//! adopted with monoio's `from_std`; a Unix path is bound once, so there the threads share one
//! socket and whichever accepts first gets the connection); a task per connection
//! (`monoio::spawn`), never leaving its thread. I/O goes through monoio's owned-buffer traits (`AsyncReadRent`, `AsyncWriteRentExt`):
//! the buffer moves into each read or write and comes back with its result, because on io_uring
//! the kernel fills or drains it while the task waits.
//!
//! The driver is chosen explicitly, so [`EchoServer::driver`] says what really runs: monoio's
//! io_uring driver where [`io_uring_refused`] allows it, else its legacy driver (epoll, through
//! mio) with the same code on top. monoio's `FusionDriver` would choose by itself, but by its own
//! probe, which knows nothing of `ECHO_SERVERS_DISABLE_IO_URING`.
//!
//! Cost per connection: one task and one buffer of `buffer_size` bytes, as
//! `tokio-current-thread`. What blocks: nothing; per-message work runs on the thread that owns
//! the connection, delaying the others it serves, and there is no work stealing. On io_uring
//! every read is a submission that the task waits for, so the connections of one thread take
//! turns by themselves; on epoll a read that finds bytes waiting completes at once, so a task
//! yields after [`READS_PER_TURN`] of those in a row.
//!
//! Over `tls:` the listeners are TCP ones ([`net::split_tls`]) and each connection is wrapped in
//! monoio-rustls, the runtime's authors' rustls streams, on the connection's own task: the
//! handshake, its key exchange and signature included, runs there on its thread's runtime, within
//! [`TlsServer::handshake_timeout`] as the runtime's timer measures it. A client that stalls
//! mid-handshake is shut down (`shutdown(2)`, as at server shutdown) at its deadline, which
//! completes the operation its handshake waits in; that costs its own task only. A bad
//! ClientHello gets rustls's alert, then a close. After the client's `close_notify` (or its bare
//! FIN once the handshake is done), everything it sent has been echoed; the server sends its own
//! `close_notify`, written out, shuts the socket for writing and closes it. The per-message work
//! runs once per plaintext chunk read, before its echo, as over TCP.
//!
//! What TLS copies: the plain path moves its one buffer into the kernel's read and write and
//! copies nothing itself. monoio-rustls bridges rustls's `read_tls`/`write_tls` (written for
//! `Read + Write`) to owned-buffer I/O through two buffers of its own, 16 KiB each, allocated with
//! the connection. The kernel fills the read buffer; rustls copies the ciphertext into its record
//! buffer, decrypts it in place and copies the plaintext into its queue, from which the task's
//! read copies it into the connection's buffer. The echo's plaintext is copied into a record as
//! it is encrypted, and the record into the write buffer, which goes to the kernel whole
//! (`write_all`) before the write returns, so no separate flush is needed. That is five copies in
//! user space per echoed chunk beside the cipher's work, where TCP has none. The crate's
//! `unsafe_io` feature would spare the two through its own buffers (the kernel reading into and
//! writing from rustls's), but only for operations never dropped in flight; it is off. Per
//! connection TLS adds those two buffers, rustls's state and queues (received plaintext up to
//! 16 KiB, records to send up to 64 KiB: rustls's defaults, which monoio-rustls does not let the
//! server change), and the connection's buffer is zeroed once, since monoio-rustls hands rustls its
//! whole capacity as a slice. Not measured here.
//!
//! Shutdown: monoio has no cancellation token, and a runtime cannot be woken from another thread
//! without its `sync` feature, which this model enables. Stopping closes a channel each accept
//! loop watches beside its accept (`monoio::select!`). The accept, and every UDP receive and
//! send, take a handle of the thread's `Canceller`: cancelling completes the operation in flight
//! (`ECANCELED`, or the connection it had just accepted, which is then closed), and it is
//! awaited, since an operation dropped in flight keeps its buffer and its socket until the
//! kernel completes it. Connections are not cancelled but shut down (`shutdown(2)`), which
//! completes their pending read or write at once and costs nothing per message (a cancellable
//! operation costs a hash-set insertion and removal in the `Canceller`); the accept loop
//! keeps each live connection's descriptor and task for that, and then awaits every task, within
//! [`SHUTDOWN_GRACE`].
//!
//! Over UDP each thread has its own `SO_REUSEPORT` socket and one loop that receives a datagram
//! (`recv_from`, owned buffer) and sends it back before receiving again. Its receive is
//! cancelled at shutdown rather than woken by shutting the socket down, which would complete it
//! with no sender address, a case monoio 0.2.4's `recv_from` does not expect.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, Canceller};
use monoio::net::udp::UdpSocket;
use monoio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use monoio_rustls::TlsAcceptor;
use slab::Slab;

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

/// monoio, a runtime per core: io_uring, or epoll where io_uring is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct MonoioServer;

impl EchoServer for MonoioServer {
    fn model(&self) -> Model {
        Model::Monoio
    }

    fn driver(&self) -> Driver {
        match io_uring_refused() {
            None => Driver::IoUring,
            Some(_) => Driver::Epoll,
        }
    }

    fn first_choice(&self) -> Driver {
        Driver::IoUring
    }

    fn transports(&self) -> &'static [Transport] {
        &Transport::ALL
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        let cores = config.threads_or(available_cores());
        let (plain, tls) = net::split_tls(config)?;
        let (units, endpoint) = if config.listen.transport() == Transport::Udp {
            let sockets = net::bind_datagram_per_core(config, cores)?;
            let endpoint = Endpoint::Udp(sockets[0].local_addr()?);
            let units = sockets.into_iter().map(Unit::Datagram).collect::<Vec<_>>();
            (units, endpoint)
        } else {
            let listeners = net::bind_per_core(&plain, cores)?;
            let endpoint = net::served(listeners[0].endpoint()?, &tls);
            (listeners.into_iter().map(Unit::Stream).collect(), endpoint)
        };
        let tls = tls.as_ref().map(TlsAccept::of);
        let id = ServerId::next();
        let path = EchoPath::of(config);
        let driver = self.driver();
        let (shutdown, stopped) = async_channel::bounded::<()>(1);
        let stop = MonoioStop {
            shutdown,
            threads: Vec::new(),
        };
        let stop = start_each(stop, units, |stop, unit| {
            let stopped = stopped.clone();
            let health = id.health().clone();
            let tls = tls.clone();
            // A runtime is built on its own thread and never leaves it; the thread says whether
            // it runs (runtime built, socket adopted) before `start` goes on.
            let (started, outcome) = mpsc::channel();
            let thread = id.spawn_loop("monoio", move || {
                let core = Core {
                    unit,
                    // epoll needs non-blocking sockets, while an io_uring operation on one would
                    // complete with EAGAIN instead of waiting.
                    nonblocking: driver == Driver::Epoll,
                    stopped,
                    path,
                    tls,
                    health,
                    started,
                };
                match driver {
                    Driver::IoUring => core.run(
                        RuntimeBuilder::<IoUringDriver>::new()
                            .enable_timer()
                            .build(),
                    ),
                    _ => core.run(RuntimeBuilder::<LegacyDriver>::new().enable_timer().build()),
                }
            })?;
            stop.threads.push(thread);
            outcome
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("the monoio thread died")))
        })?;
        Ok(ServerHandle::new(
            Model::Monoio,
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

/// One thread's share of the server, before its runtime runs.
struct Core {
    unit: Unit,
    /// Whether the driver wants non-blocking sockets (epoll does).
    nonblocking: bool,
    stopped: Receiver<()>,
    path: EchoPath,
    /// For a `tls:` listener, what each connection's handshake is accepted with.
    tls: Option<TlsAccept>,
    health: Health,
    /// Told once the runtime runs and the socket is adopted, or why not.
    started: mpsc::Sender<io::Result<()>>,
}

impl Core {
    /// Serves on `runtime` until shutdown. A runtime or socket that cannot be set up fails
    /// `start` (through `started`), not the loop.
    fn run<D: monoio::Driver>(self, runtime: io::Result<monoio::Runtime<D>>) -> io::Result<()> {
        let Core {
            unit,
            nonblocking,
            stopped,
            path,
            tls,
            health,
            started,
        } = self;
        let mut runtime = match runtime {
            Ok(runtime) => runtime,
            Err(err) => {
                let _ = started.send(Err(err));
                return Ok(());
            }
        };
        runtime.block_on(async move {
            // Adopting registers the socket with this thread's driver, so it happens in here.
            match unit {
                Unit::Stream(listener) => match Listener::adopt(listener, nonblocking) {
                    Ok(listener) => {
                        let _ = started.send(Ok(()));
                        serve(listener, stopped, path, tls, health).await;
                        Ok(())
                    }
                    Err(err) => {
                        let _ = started.send(Err(err));
                        Ok(())
                    }
                },
                Unit::Datagram(socket) => {
                    let socket = socket
                        .set_nonblocking(nonblocking)
                        .and_then(|()| UdpSocket::from_std(socket));
                    match socket {
                        Ok(socket) => {
                            let _ = started.send(Ok(()));
                            serve_datagrams(socket, stopped, path).await
                        }
                        Err(err) => {
                            let _ = started.send(Err(err));
                            Ok(())
                        }
                    }
                }
            }
        })
    }
}

/// A thread's listener, in monoio's types.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A connection just accepted.
enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    fn adopt(listener: StreamListener, nonblocking: bool) -> io::Result<Self> {
        listener.set_nonblocking(nonblocking)?;
        Ok(match listener {
            StreamListener::Tcp(l) => Listener::Tcp(TcpListener::from_std(l)?),
            StreamListener::Unix(l) => Listener::Unix(UnixListener::from_std(l)?),
        })
    }

    /// Accepts one connection, Nagle off for TCP; `cancel` completes it early at shutdown.
    async fn accept(&self, cancel: CancelHandle) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, _) = listener.cancelable_accept(cancel).await?;
                let _ = stream.set_nodelay(true);
                Ok(Accepted::Tcp(stream))
            }
            Listener::Unix(listener) => {
                Ok(Accepted::Unix(listener.cancelable_accept(cancel).await?.0))
            }
        }
    }
}

/// A live connection, as its accept loop keeps it: the descriptor it shuts down at shutdown
/// and the task it then awaits.
struct Live {
    fd: RawFd,
    task: monoio::task::JoinHandle<()>,
}

/// The live connections of one thread; each task removes its own entry when it ends.
type Connections = Rc<RefCell<Slab<Live>>>;

/// Accepts until shutdown, a task per connection (over TLS when `tls` is given); then shuts every
/// connection down and awaits its task, within [`SHUTDOWN_GRACE`].
async fn serve(
    listener: Listener,
    stopped: Receiver<()>,
    path: EchoPath,
    tls: Option<TlsAccept>,
    health: Health,
) {
    let canceller = Canceller::new();
    let connections: Connections = Rc::default();
    loop {
        let mut accept = pin!(listener.accept(canceller.handle()));
        let accepted = monoio::select! {
            accepted = &mut accept => accepted,
            _ = stopped.recv() => {
                // Completes the accept in flight (ECANCELED), or lets it finish with the
                // connection it had just taken, which is dropped, that is closed.
                let _ = canceller.cancel();
                let _ = accept.await;
                break;
            }
        };
        match accepted {
            Ok(Accepted::Tcp(stream)) => {
                let fd = stream.as_raw_fd();
                match &tls {
                    Some(tls) => {
                        spawn_handler(&connections, fd, serve_tls(stream, tls.clone(), path))
                    }
                    None => spawn_handler(&connections, fd, echo(stream, path, plain_buffer(path))),
                }
            }
            Ok(Accepted::Unix(stream)) => {
                let fd = stream.as_raw_fd();
                spawn_handler(&connections, fd, echo(stream, path, plain_buffer(path)));
            }
            Err(err) => match net::after_accept_error(&err, stopped.is_closed(), &health) {
                AcceptAction::WaitReady | AcceptAction::Next => {}
                AcceptAction::BackOff(pause) => {
                    let stopping = monoio::select! {
                        _ = monoio::time::sleep(pause) => false,
                        _ = stopped.recv() => true,
                    };
                    if stopping {
                        break;
                    }
                }
                AcceptAction::Stop => {
                    // Accept no more; the connections go on until shutdown.
                    let _ = stopped.recv().await;
                    break;
                }
            },
        }
    }
    drop(listener);
    let live: Vec<Live> = connections.borrow_mut().drain().collect();
    for connection in &live {
        // Each socket is still open: its task, which owns it, has not ended (it would have
        // removed its entry), and none has run since the entries were taken.
        // SAFETY: the descriptor is open for the duration of this call (see above).
        net::shut_down(unsafe { BorrowedFd::borrow_raw(connection.fd) });
    }
    let _ = monoio::time::timeout(SHUTDOWN_GRACE, async {
        for connection in live {
            connection.task.await;
        }
    })
    .await;
}

/// Starts the task that serves the connection on `fd` (`connection` owns its socket), recorded in
/// `connections` until it ends.
fn spawn_handler(
    connections: &Connections,
    fd: RawFd,
    connection: impl Future<Output = io::Result<()>> + 'static,
) {
    let mut live = connections.borrow_mut();
    let entry = live.vacant_entry();
    let key = entry.key();
    let connections = Rc::clone(connections);
    // The task runs only once this one waits, after its entry is in place.
    let task = monoio::spawn(async move {
        // An error ends this connection only.
        let _ = connection.await;
        connections.borrow_mut().try_remove(key);
    });
    entry.insert(Live { fd, task });
}

/// The buffer a plain connection echoes through: `buffer_size` bytes of capacity, never
/// initialised by hand, since the kernel writes a read's bytes before anything reads them.
fn plain_buffer(path: EchoPath) -> Vec<u8> {
    Vec::with_capacity(path.buffer_size)
}

/// Echoes through `buf` until the peer half-closes. The buffer moves into each operation and
/// comes back with its result; `write_all` completes partial writes, and while the peer does not
/// read, the pending write keeps the task from reading more (backpressure).
async fn echo(
    mut stream: impl AsyncReadRent + AsyncWriteRent,
    path: EchoPath,
    mut buf: Vec<u8>,
) -> io::Result<()> {
    let mut res;
    let mut waited;
    let mut unwaited_reads = 0;
    loop {
        // monoio reads into the whole capacity and sets the length to what was read.
        ((res, buf), waited) = noting_wait(stream.read(buf)).await;
        if res? == 0 {
            return Ok(());
        }
        path.on_message(&buf);
        (res, buf) = stream.write_all(buf).await;
        res?;
        unwaited_reads = if waited { 0 } else { unwaited_reads + 1 };
        if unwaited_reads == READS_PER_TURN {
            unwaited_reads = 0;
            futures_lite::future::yield_now().await;
        }
    }
}

/// A `tls:` listener's handshake settings, one copy per thread: the acceptor (rustls's
/// configuration, shared) and how long a handshake may take.
#[derive(Clone)]
struct TlsAccept {
    acceptor: TlsAcceptor,
    timeout: Duration,
}

impl TlsAccept {
    fn of(tls: &TlsServer) -> Self {
        Self {
            acceptor: TlsAcceptor::from(tls.config()),
            timeout: tls.handshake_timeout(),
        }
    }
}

/// Serves one TLS connection on its task: monoio-rustls's handshake within the timeout, [`echo`]
/// over its stream, then `close_notify` after the client's (a bare EOF after the handshake is
/// served as the same half-close, as `mio` does), written out before the socket is shut for
/// writing and then closed.
///
/// A client that stalls mid-handshake is not dropped in flight but shut down (`shutdown(2)`), as
/// at server shutdown: that completes the read or write the handshake waits in at once, the
/// handshake fails, and the task ends, closing the socket. A bad ClientHello gets rustls's alert
/// (monoio-rustls writes it before returning the error), then the close.
async fn serve_tls(stream: TcpStream, tls: TlsAccept, path: EchoPath) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let mut accept = pin!(tls.acceptor.accept(stream));
    let accepted = monoio::select! {
        accepted = &mut accept => accepted.map_err(io::Error::from),
        _ = monoio::time::sleep(tls.timeout) => {
            // SAFETY: the stream that owns `fd` lives in `accept`, which has not completed (it
            // drops the stream only as it completes), so the descriptor is open.
            net::shut_down(unsafe { BorrowedFd::borrow_raw(fd) });
            let _ = accept.await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))
        }
    };
    let mut stream = accepted?;
    // Initialised: monoio-rustls hands rustls the buffer's whole capacity as a `&mut [u8]`.
    let buf = vec![0; path.buffer_size];
    match echo(&mut stream, path, buf).await {
        Ok(()) => {}
        // The client's TCP FIN without its close_notify (rustls's reader says so only once every
        // byte before it has been read and echoed).
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {}
        Err(err) => return Err(err),
    }
    // close_notify, written out (`write_all`), then `shutdown(SHUT_WR)`; the task's end closes.
    stream.shutdown().await
}

/// Awaits `future`, and says whether it had to wait (returned `Pending` at least once): a read
/// that completed at once gave the thread's other tasks no turn.
async fn noting_wait<F: Future>(future: F) -> (F::Output, bool) {
    let mut future = pin!(future);
    let mut waited = false;
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready((output, waited)),
        Poll::Pending => {
            waited = true;
            Poll::Pending
        }
    })
    .await
}

/// Receives and sends back on `socket` until shutdown, when the operation in flight is
/// cancelled and awaited. Returns an error only when the socket itself fails.
async fn serve_datagrams(
    socket: UdpSocket,
    stopped: Receiver<()>,
    path: EchoPath,
) -> io::Result<()> {
    let canceller = Canceller::new();
    let mut echo = pin!(echo_datagrams(&socket, canceller.handle(), path));
    monoio::select! {
        failed = &mut echo => failed,
        _ = stopped.recv() => {
            let _ = canceller.cancel();
            let _ = echo.await;
            Ok(())
        }
    }
}

/// The datagram loop: each datagram goes back to its sender before the next is received. An
/// error caused by one datagram or peer costs that datagram only ([`DatagramError`]); the loop
/// ends when cancelled (`Ok`) or when the socket is unusable (`Err`).
async fn echo_datagrams(
    socket: &UdpSocket,
    cancel: CancelHandle,
    path: EchoPath,
) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_DATAGRAM);
    let (mut received, mut sent);
    let mut waited;
    let mut unwaited = 0;
    loop {
        ((received, buf), waited) =
            noting_wait(socket.cancelable_recv_from(buf, cancel.clone())).await;
        // Counted before anything else, so that a run of failed receives yields too: this task
        // shares its thread with the one that watches for shutdown.
        unwaited = if waited { 0 } else { unwaited + 1 };
        if unwaited == READS_PER_TURN {
            unwaited = 0;
            futures_lite::future::yield_now().await;
        }
        let peer: SocketAddr = match received {
            Ok((_, peer)) => peer,
            Err(err) if cancelled(&err) => return Ok(()),
            Err(err) => match DatagramError::of_receive(&err) {
                DatagramError::Again | DatagramError::Peer => continue,
                DatagramError::Socket => return Err(err),
            },
        };
        path.on_message(&buf);
        (sent, buf) = socket.cancelable_send_to(buf, peer, cancel.clone()).await;
        match sent {
            Ok(_) => {}
            Err(err) if cancelled(&err) => return Ok(()),
            // A port-0 sender, a refused route...: that datagram is lost, as the network may.
            Err(err) => match DatagramError::of_send(&err) {
                DatagramError::Again | DatagramError::Peer => {}
                DatagramError::Socket => return Err(err),
            },
        }
    }
}

/// Whether `err` is an operation's cancellation (shutdown), which no socket error can be.
fn cancelled(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ECANCELED)
}

/// Closes the channel every thread's loop watches, then joins the threads.
struct MonoioStop {
    shutdown: Sender<()>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl StopServer for MonoioStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.shutdown.close();
        // Each thread waits up to the grace period for its connections' tasks, then ends.
        join_all_within(self.threads, Instant::now() + JOIN_AFTER_DRAIN)
    }
}

#[cfg(test)]
mod tests {
    //! What the shared checks over `tls:` do not see: a bare FIN after the handshake is served as
    //! a half-close (every echo, then `close_notify`), and the handshake's deadline is for the
    //! whole handshake, so a client that trickles its ClientHello is closed as one that stalls.
    //!
    //! Bounds: every socket has read and write timeouts, the trickle a deadline; all traffic goes
    //! to 127.0.0.1.

    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::sync::Arc;

    use echo_cli::TlsVersions;
    use rustls::pki_types::ServerName;

    use super::*;

    const IO_TIMEOUT: Duration = Duration::from_secs(10);
    const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(300);

    /// A one-thread server on `tls:127.0.0.1:0`, and a client configuration trusting only it.
    fn start() -> (ServerHandle, Arc<rustls::ClientConfig>) {
        let tls = TlsServer::self_signed(TlsVersions::TLS13)
            .unwrap()
            .with_handshake_timeout(HANDSHAKE_TIMEOUT);
        let client = crate::tls::client_trusting(&tls);
        let config = ServerConfig {
            threads: Some(1),
            tls: Some(tls),
            ..ServerConfig::at(Endpoint::Tls("127.0.0.1:0".parse().unwrap()))
        };
        (MonoioServer.start(&config).unwrap(), client)
    }

    fn tcp(server: &ServerHandle) -> TcpStream {
        let addr = server.endpoint().socket_addr().unwrap();
        let socket = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        socket
    }

    fn connect(
        server: &ServerHandle,
        config: &Arc<rustls::ClientConfig>,
    ) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
        rustls::StreamOwned::new(conn, tcp(server))
    }

    /// The client sends 40,000 bytes (three records) and shuts its socket for writing with no `close_notify`:
    /// it reads every byte back, then the server's `close_notify` (rustls reads `Ok(0)` only
    /// after one, an error after a bare close).
    #[test]
    fn a_bare_fin_after_the_handshake_gets_every_echo_then_close_notify() {
        let (server, config) = start();
        let mut client = connect(&server, &config);
        let message: Vec<u8> = (0..40_000u32).map(|i| (i * 7) as u8).collect();
        client.write_all(&message).unwrap();
        client.flush().unwrap();
        client.sock.shutdown(Shutdown::Write).unwrap();
        let mut echoed = Vec::new();
        client
            .read_to_end(&mut echoed)
            .expect("the server's close_notify after the echo");
        assert!(echoed == message, "{} bytes came back", echoed.len());
        server.shutdown().unwrap();
    }

    /// A ClientHello trickled a byte every 20 ms is closed once the handshake's timeout has
    /// passed since the connection began, not at some later pause; a client that connects
    /// meanwhile is served.
    #[test]
    fn a_trickled_client_hello_is_closed_at_the_handshake_deadline() {
        let (server, config) = start();
        let mut trickler = tcp(&server);
        let began = Instant::now();
        trickler.write_all(&[0x16, 0x03, 0x01, 0x01, 0x00]).unwrap();
        let mut other = connect(&server, &config);
        other.write_all(b"served meanwhile").unwrap();
        let mut echoed = [0; 16];
        other.read_exact(&mut echoed).unwrap();
        assert_eq!(&echoed, b"served meanwhile");
        // Each byte is part of a 256-byte record that never completes; a write fails once the
        // server has closed (a reset, or a pipe error after it).
        while began.elapsed() < Duration::from_secs(3) && trickler.write_all(&[0]).is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let closed_after = began.elapsed();
        assert!(
            closed_after >= HANDSHAKE_TIMEOUT - Duration::from_millis(50)
                && closed_after < Duration::from_secs(2),
            "closed after {closed_after:?}, the timeout is {HANDSHAKE_TIMEOUT:?}"
        );
        server.shutdown().unwrap();
    }
}
