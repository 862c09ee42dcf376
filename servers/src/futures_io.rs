//! What the futures-io models (`async-std`, `smol`) share: the accept loop, the per-connection
//! echo and the shutdown protocol. The two runtimes speak the same `futures-io` traits and differ
//! only in how a task is spawned, how a timer sleeps and what a listener is, which is what
//! [`Runtime`] abstracts. A listener is either stream transport ([`Listener`]), and a connection
//! the runtime's TCP or Unix stream as one type ([`Either`]), so the echo is written once.
//!
//! Over `tls:` each connection's handshake runs on its own task, through futures-rustls, within
//! the handshake timeout; the echo then flushes each record and ends with `close_notify`.
//!
//! Shutdown follows mini-redis: closing the `shutdown` channel tells the accept loop and every
//! handler to stop, and each handler holds a sender of a second channel that the accept loop
//! waits on (bounded by [`SHUTDOWN_GRACE`]) until every handler has dropped its connection.

use std::io;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_lite::{Future, future};
pub(crate) use futures_util::future::Either;

use crate::net::{self, AcceptAction, StreamListener};
use crate::server::{Health, READS_PER_TURN, SHUTDOWN_GRACE};
use crate::tls::TlsServer;
use crate::work::EchoPath;

/// What accepts a `tls:` connection's handshake, and how long the handshake may take.
type TlsAccept = (futures_rustls::TlsAcceptor, Duration);

/// A futures-io runtime: what the shared accept loop needs from it.
pub(crate) trait Runtime: Send + 'static {
    /// Its TCP listener.
    type TcpListener: Send + Sync + 'static;
    /// Its Unix stream listener.
    type UnixListener: Send + Sync + 'static;
    /// Its connection type: its TCP or its Unix stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Adopts a bound, non-blocking listener.
    fn listener(
        listener: StreamListener,
    ) -> io::Result<Listener<Self::TcpListener, Self::UnixListener>>;

    /// Accepts one connection, Nagle off for TCP (echo replies are small and latency matters).
    fn accept(
        listener: &Listener<Self::TcpListener, Self::UnixListener>,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Runs `task` in the background, detached.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);

    /// Sleeps on the runtime's timer.
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send;
}

/// A runtime's listener of either stream transport.
pub(crate) enum Listener<T, U> {
    Tcp(T),
    Unix(U),
}

/// Resolves once shutdown has been signalled (the channel is closed, so `recv` fails).
pub(crate) async fn shutdown_signalled(shutdown: &Receiver<()>) {
    let _ = shutdown.recv().await;
}

/// Accepts until `shutdown` is closed, a task per connection (over TLS when `tls` is given),
/// then waits (bounded) for every handler to close its connection.
pub(crate) async fn accept_loop<R: Runtime>(
    runtime: R,
    listener: Listener<R::TcpListener, R::UnixListener>,
    shutdown: Receiver<()>,
    path: EchoPath,
    health: Health,
    tls: Option<TlsServer>,
) {
    let tls: Option<TlsAccept> = tls.map(|tls| {
        (
            futures_rustls::TlsAcceptor::from(tls.config()),
            tls.handshake_timeout(),
        )
    });
    // Every handler holds a clone; when all are dropped, `recv` on `all_done` fails.
    let (handler_alive, all_done) = async_channel::bounded::<()>(1);
    loop {
        let accepted = future::or(async { Some(R::accept(&listener).await) }, async {
            shutdown_signalled(&shutdown).await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        match accepted {
            Ok(socket) => {
                let shutdown = shutdown.clone();
                let alive: Sender<()> = handler_alive.clone();
                let tls = tls.clone();
                runtime.spawn(async move {
                    future::or(
                        async {
                            // An error ends this connection only.
                            let _ = serve::<R>(socket, tls, path).await;
                        },
                        shutdown_signalled(&shutdown),
                    )
                    .await;
                    drop(alive);
                });
            }
            Err(err) => match net::after_accept_error(&err, shutdown.is_closed(), &health) {
                AcceptAction::WaitReady | AcceptAction::Next => {}
                AcceptAction::BackOff(pause) => {
                    let stopped = future::or(
                        async {
                            R::sleep(pause).await;
                            false
                        },
                        async {
                            shutdown_signalled(&shutdown).await;
                            true
                        },
                    )
                    .await;
                    if stopped {
                        break;
                    }
                }
                AcceptAction::Stop => {
                    // Accept no more; the connections go on until shutdown.
                    shutdown_signalled(&shutdown).await;
                    break;
                }
            },
        }
    }
    drop(listener);
    drop(handler_alive);
    future::or(
        async {
            let _ = all_done.recv().await;
        },
        R::sleep(SHUTDOWN_GRACE),
    )
    .await;
}

/// Serves one connection: [`echo`], over TLS when `tls` is given (the handshake on this task,
/// within its timeout, and `close_notify` after the client's).
async fn serve<R: Runtime>(
    socket: R::Stream,
    tls: Option<TlsAccept>,
    path: EchoPath,
) -> io::Result<()> {
    let Some((acceptor, timeout)) = tls else {
        return echo(socket, path, false).await;
    };
    let handshake = future::or(async { Some(acceptor.accept(socket).await) }, async {
        R::sleep(timeout).await;
        None
    });
    let mut stream = handshake
        .await
        .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    echo(&mut stream, path, true).await?;
    stream.close().await
}

/// Echoes until the peer half-closes; `write_all` completes partial writes and applies
/// backpressure to a peer that does not read. `flush` after every echo is for a TLS stream,
/// which may keep a record back when the socket is full; a plain socket's writes are sent.
/// Every [`READS_PER_TURN`] reads the task yields: a read that finds bytes waiting completes
/// without ever returning `Pending`, and these runtimes (unlike tokio) have no budget of their
/// own, so a client that writes as fast as it can would otherwise keep its executor thread.
async fn echo(
    mut socket: impl AsyncRead + AsyncWrite + Unpin,
    path: EchoPath,
    flush: bool,
) -> io::Result<()> {
    let mut buf = vec![0; path.buffer_size];
    for reads in 1usize.. {
        if reads % READS_PER_TURN == 0 {
            futures_lite::future::yield_now().await;
        }
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        path.on_message(&buf[..n]);
        socket.write_all(&buf[..n]).await?;
        if flush {
            socket.flush().await?;
        }
    }
    Ok(())
}
