//! `tokio`: tokio's multi-thread, work-stealing runtime (one worker per core by default), one task
//! per connection. Shaped like mini-redis's server: a listener with a run loop, a handler task per
//! connection, accept retried with backoff, and a graceful shutdown that waits for every handler.
//!
//! Cost per connection: one task (a few hundred bytes) and its read buffer. What blocks: nothing;
//! a task parked on a socket costs no thread, and idle workers steal runnable tasks from busy
//! ones. Per message it pays a wake-up through the runtime's I/O driver and scheduler.
//!
//! Over UDP, one task per worker shares the socket ([`Runtimes::serve_datagrams`]), each
//! receiving a datagram and sending it back.

use std::io;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use echo_cli::{Endpoint, Transport};

use crate::blocking_io::join_all_within;
use crate::datagram::{DatagramError, MAX_DATAGRAM};
use crate::net::{self, AcceptAction, StreamListener};
use crate::server::{
    EchoServer, Health, JOIN_AFTER_DRAIN_AND_RUNTIME, Model, SHUTDOWN_GRACE, ServerConfig,
    ServerHandle, ServerId, StopServer, available_cores,
};
use crate::tls::TlsServer;
use crate::work::EchoPath;

/// tokio's multi-thread runtime, a task per connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioServer;

impl EchoServer for TokioServer {
    fn model(&self) -> Model {
        Model::Tokio
    }

    fn driver(&self) -> crate::driver::Driver {
        crate::driver::Driver::Epoll
    }

    fn transports(&self) -> &'static [Transport] {
        &Transport::ALL
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        let id = ServerId::next();
        let workers = config.threads_or(available_cores());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(id.thread_name("tokio"))
            .enable_io()
            .enable_time()
            .build()?;
        let mut stop = Runtimes::new();
        let on_message = Inline(EchoPath::of(config));
        let endpoint = if config.listen.transport() == Transport::Udp {
            // One task per worker, sharing the socket, so every worker can receive.
            let socket = net::bind_datagram(config)?;
            let endpoint = Endpoint::Udp(socket.local_addr()?);
            stop.serve_datagrams(&id, runtime, socket, workers, on_message)?;
            endpoint
        } else {
            let (plain, tls) = net::split_tls(config)?;
            let (std_listener, endpoint) = net::bind_nonblocking(&plain)?;
            stop.serve(&id, runtime, std_listener, on_message, tls.as_ref())?;
            net::served(endpoint, &tls)
        };
        Ok(ServerHandle::new(
            Model::Tokio,
            id,
            endpoint,
            Box::new(stop),
        ))
    }
}

/// Where a handler does its CPU work: the per-message work between reading a message and
/// echoing it, and the part of a TLS handshake that computes. Inline on the runtime's worker
/// ([`Inline`]) or elsewhere (`tokio-rayon` sends it to a rayon pool).
pub(crate) trait OnMessage: Clone + Send + Sync + 'static {
    /// The echo path (buffer size, work per message).
    fn path(&self) -> EchoPath;

    /// Runs `job` and returns its result; the job moves, so an implementation may run it on
    /// another thread while the worker serves other connections.
    fn offload<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> impl Future<Output = R> + Send;

    /// Does the work on `buf[..len]` and hands the buffer back for the echo.
    fn on_message(&self, buf: Vec<u8>, len: usize) -> impl Future<Output = Vec<u8>> + Send {
        let path = self.path();
        self.offload(move || {
            path.on_message(&buf[..len]);
            buf
        })
    }
}

/// The work done right on the task's worker thread: while it runs, that worker serves nothing
/// else (the head-of-line blocking the `--work-us` sweep shows).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inline(pub(crate) EchoPath);

impl OnMessage for Inline {
    fn path(&self) -> EchoPath {
        self.0
    }

    async fn offload<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> R {
        job()
    }
}

/// The accept loop's state; also the accept loop of each runtime of `tokio-current-thread` and
/// of `tokio-rayon`.
pub(crate) struct Listener<H> {
    listener: AnyListener,
    /// Cancelled by [`ServerHandle::shutdown`]; the accept loop and every handler watch it.
    shutdown: CancellationToken,
    /// Every handler task, so shutdown can wait until each has closed its connection.
    handlers: TaskTracker,
    /// What each handler does with a message before echoing it.
    on_message: H,
    /// Told if the listener fails while the server runs.
    health: Health,
    /// For a `tls:` listener: the configuration each connection's handshake is accepted with,
    /// and how long the handshake may take.
    tls: Option<TlsAccept>,
}

impl<H: OnMessage> Listener<H> {
    /// A listener over `listener` (already registered with the current runtime), stopped by
    /// `shutdown`, wrapping every connection in `tls` if given.
    pub(crate) fn new(
        listener: AnyListener,
        shutdown: CancellationToken,
        on_message: H,
        health: Health,
        tls: Option<&TlsServer>,
    ) -> Self {
        Self {
            tls: tls.map(|tls| TlsAccept {
                config: tls.config(),
                timeout: tls.handshake_timeout(),
            }),
            health,
            listener,
            shutdown,
            handlers: TaskTracker::new(),
            on_message,
        }
    }

    /// Accepts until shutdown, then waits (bounded) for every handler to finish.
    pub(crate) async fn run(self) {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = self.shutdown.cancelled() => break,
            };
            match accepted {
                Ok(socket) => {
                    let shutdown = self.shutdown.clone();
                    let on_message = self.on_message.clone();
                    let tls = self.tls.clone();
                    self.handlers.spawn(async move {
                        // The handler ends at EOF, on an error, or at shutdown; dropping the
                        // socket closes it.
                        tokio::select! {
                            _ = serve(socket, tls, on_message) => {}
                            () = shutdown.cancelled() => {}
                        }
                    });
                }
                Err(err) => {
                    if after_accept_error(&err, &self.shutdown, &self.health).await {
                        break;
                    }
                }
            }
        }
        drop(self.listener);
        self.handlers.close();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.handlers.wait()).await;
    }
}

/// What a tokio accept loop does after a failed accept ([`net::after_accept_error`]), waiting on
/// the runtime's timer; returns whether to leave the accept loop, which happens only once
/// shutdown began: a failed listener stops accepting, but its connections go on until then.
pub(crate) async fn after_accept_error(
    err: &io::Error,
    shutdown: &CancellationToken,
    health: &Health,
) -> bool {
    match net::after_accept_error(err, shutdown.is_cancelled(), health) {
        AcceptAction::WaitReady | AcceptAction::Next => false,
        AcceptAction::BackOff(pause) => tokio::select! {
            () = tokio::time::sleep(pause) => false,
            () = shutdown.cancelled() => true,
        },
        AcceptAction::Stop => {
            shutdown.cancelled().await;
            true
        }
    }
}

/// A `tls:` listener's handshake settings.
#[derive(Clone)]
struct TlsAccept {
    config: std::sync::Arc<rustls::ServerConfig>,
    timeout: std::time::Duration,
}

/// Serves one connection: [`echo`], over TLS when `tls` is given (then the handshake, within
/// its timeout, and `close_notify` after the client's).
///
/// The handshake is tokio-rustls's lazy acceptor: the ClientHello is read on this task, and
/// answering it, where a full handshake spends its CPU (the key exchange and the certificate's
/// signature), is a job for [`OnMessage::offload`], so `tokio-rayon` runs it on its pool. The
/// rest (sending the answer, checking the client's Finished) is I/O and stays on the task.
async fn serve<S>(socket: S, tls: Option<TlsAccept>, on_message: impl OnMessage) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(TlsAccept { config, timeout }) = tls else {
        return echo(socket, on_message, false).await;
    };
    let handshake = async {
        let acceptor = rustls::server::Acceptor::default();
        let hello = tokio_rustls::LazyConfigAcceptor::new(acceptor, socket).await?;
        let answered = on_message.offload(move || hello.into_stream(config)).await;
        answered.await
    };
    let mut stream = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    echo(&mut stream, on_message, true).await?;
    stream.shutdown().await
}

/// Echoes until the peer half-closes; `write_all` completes partial writes and, while the peer
/// does not read, keeps the task from reading more (backpressure). `flush` after every echo is
/// for a TLS stream, which may keep a record back when the socket is full; a plain socket's
/// writes are already sent, so its hot path skips the call.
async fn echo(
    mut socket: impl AsyncRead + AsyncWrite + Unpin,
    on_message: impl OnMessage,
    flush: bool,
) -> io::Result<()> {
    let mut buf = vec![0; on_message.path().buffer_size];
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        buf = on_message.on_message(buf, n).await;
        socket.write_all(&buf[..n]).await?;
        if flush {
            socket.flush().await?;
        }
    }
}

/// A tokio listener of either stream transport (the runtime's own types; [`Either`] makes the
/// two connection types one, so the handler is written once).
pub(crate) enum AnyListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl AnyListener {
    /// Adopts a bound, non-blocking listener into the current runtime.
    pub(crate) fn from_std(listener: StreamListener) -> io::Result<Self> {
        Ok(match listener {
            StreamListener::Tcp(l) => AnyListener::Tcp(TcpListener::from_std(l)?),
            StreamListener::Unix(l) => AnyListener::Unix(UnixListener::from_std(l)?),
        })
    }

    /// Accepts one connection, Nagle off for TCP.
    pub(crate) async fn accept(&self) -> io::Result<Either<TcpStream, UnixStream>> {
        match self {
            AnyListener::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok(Either::Left(stream))
            }
            AnyListener::Unix(listener) => Ok(Either::Right(listener.accept().await?.0)),
        }
    }
}

/// Runtimes serving listeners, each driven (and dropped, joining its workers) on a thread of
/// its own, so shutdown never blocks inside whatever context the caller is in. One for `tokio`,
/// one per core for `tokio-current-thread`.
pub(crate) struct Runtimes {
    /// Cancelled by shutdown; every accept loop and handler of every runtime watches it.
    shutdown: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Runtimes {
    pub(crate) fn new() -> Self {
        Self {
            shutdown: CancellationToken::new(),
            threads: Vec::new(),
        }
    }

    /// Serves `listener` (non-blocking) on `runtime`, on a thread named `es<id>-rt`.
    pub(crate) fn serve(
        &mut self,
        id: &ServerId,
        runtime: tokio::runtime::Runtime,
        listener: StreamListener,
        on_message: impl OnMessage,
        tls: Option<&TlsServer>,
    ) -> io::Result<()> {
        let listener = {
            let _context = runtime.enter();
            AnyListener::from_std(listener)?
        };
        let server = Listener::new(
            listener,
            self.shutdown.clone(),
            on_message,
            id.health().clone(),
            tls,
        );
        let thread = id.thread("rt").spawn(move || {
            runtime.block_on(server.run());
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
        })?;
        self.threads.push(thread);
        Ok(())
    }
}

impl Runtimes {
    /// Serves the UDP `socket` on `runtime` (on a thread named `es<id>-rt`) with `tasks` tasks
    /// sharing it, each receiving a datagram, doing its work and sending it back.
    pub(crate) fn serve_datagrams(
        &mut self,
        id: &ServerId,
        runtime: tokio::runtime::Runtime,
        socket: std::net::UdpSocket,
        tasks: usize,
        on_message: impl OnMessage,
    ) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        let socket = {
            let _context = runtime.enter();
            std::sync::Arc::new(tokio::net::UdpSocket::from_std(socket)?)
        };
        let shutdown = self.shutdown.clone();
        let health = id.health().clone();
        let thread = id.thread("rt").spawn(move || {
            runtime.block_on(async {
                let handlers = TaskTracker::new();
                for _ in 0..tasks.max(1) {
                    let (socket, on_message) = (socket.clone(), on_message.clone());
                    let (shutdown, health) = (shutdown.clone(), health.clone());
                    handlers.spawn(echo_datagrams(socket, on_message, shutdown, health));
                }
                handlers.close();
                // Each task returns once shutdown is cancelled.
                handlers.wait().await;
            });
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
        })?;
        self.threads.push(thread);
        Ok(())
    }
}

/// Receives datagrams and sends each back to its sender until shutdown.
async fn echo_datagrams(
    socket: std::sync::Arc<tokio::net::UdpSocket>,
    on_message: impl OnMessage,
    shutdown: CancellationToken,
    health: Health,
) {
    let mut buf = vec![0; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buf) => received,
            () = shutdown.cancelled() => return,
        };
        let (n, peer) = match received {
            Ok(received) => received,
            Err(err) => match DatagramError::of_receive(&err) {
                DatagramError::Again | DatagramError::Peer => continue,
                DatagramError::Socket => {
                    health.died(format_args!("udp receive failed: {err}"));
                    return;
                }
            },
        };
        buf = on_message.on_message(buf, n).await;
        tokio::select! {
            // A failed send loses that one datagram, as the network may.
            _ = socket.send_to(&buf[..n], peer) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

impl StopServer for Runtimes {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.shutdown.cancel();
        // Each thread waits up to the grace period for its handlers, then for its runtime.
        let deadline = Instant::now() + JOIN_AFTER_DRAIN_AND_RUNTIME;
        join_all_within(self.threads, deadline)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use echo_cli::TlsVersions;
    use rustls::pki_types::ServerName;

    use super::*;
    use crate::work::Work;

    const IO_TIMEOUT: Duration = Duration::from_secs(10);

    /// Inline work that counts the jobs it is given.
    #[derive(Clone)]
    struct Counting(Arc<AtomicUsize>);

    impl OnMessage for Counting {
        fn path(&self) -> EchoPath {
            EchoPath {
                buffer_size: 4096,
                work: Work::default(),
            }
        }

        async fn offload<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> R {
            self.0.fetch_add(1, Ordering::SeqCst);
            job()
        }
    }

    fn client_for(tls: &TlsServer) -> rustls::ClientConnection {
        let name = ServerName::try_from("localhost").unwrap();
        rustls::ClientConnection::new(crate::tls::client_trusting(tls), name).unwrap()
    }

    /// What `tokio-rayon` relies on to sign on its pool: the answer to the ClientHello is one
    /// job given to [`OnMessage::offload`], and each message one more.
    #[test]
    fn a_handshake_is_answered_in_one_offloaded_job_and_each_message_in_one_more() {
        let tls = TlsServer::self_signed(TlsVersions::TLS13).unwrap();
        let (client, server) = std::os::unix::net::UnixStream::pair().unwrap();
        client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        client.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        server.set_nonblocking(true).unwrap();
        let jobs = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let accept = TlsAccept {
            config: tls.config(),
            timeout: IO_TIMEOUT,
        };
        let served = {
            let _context = runtime.enter();
            let server = tokio::net::UnixStream::from_std(server).unwrap();
            runtime.spawn(serve(server, Some(accept), Counting(Arc::clone(&jobs))))
        };
        let runtime_thread = std::thread::spawn(move || runtime.block_on(served).unwrap());

        let mut stream = rustls::StreamOwned::new(client_for(&tls), client);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        assert_eq!(jobs.load(Ordering::SeqCst), 1, "jobs for the handshake");
        for i in 0..3u8 {
            let message = [i; 100];
            stream.write_all(&message).unwrap();
            stream.flush().unwrap();
            let mut echoed = [0; 100];
            stream.read_exact(&mut echoed).unwrap();
            assert_eq!(echoed, message);
        }
        stream.conn.send_close_notify();
        stream.flush().unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        runtime_thread.join().unwrap().unwrap();
        assert_eq!(
            jobs.load(Ordering::SeqCst),
            4,
            "jobs for the handshake and 3 messages"
        );
    }
}
