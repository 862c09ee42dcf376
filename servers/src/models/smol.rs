//! `smol`: one task per connection on a smol `Executor` of the server's own, run by one thread
//! per core (`es<id>-smol`), as smol's documentation sets up a multi-threaded executor. The
//! accept loop is a task on that executor too; it and the echo are shared with `async-std`
//! (`futures_io.rs`), so the two models differ only in their runtime: smol's small executor and
//! its `async-io` reactor, against async-std's global ones built from the same parts.
//!
//! Cost per connection: one task and its read buffer. What blocks: nothing; a parked task costs
//! no thread, but per-message work runs on the executor thread that polls the task, delaying the
//! tasks queued behind it. I/O readiness comes from `async-io`'s reactor, driven by whichever
//! executor thread is otherwise idle.
//!
//! Shutdown closes the shutdown channel; the accept loop stops, waits for the handlers, and then
//! drops the sender that keeps the executor threads running, so they return and are joined.
//!
//! Over `tls:` the handshake runs on the connection's task, through futures-rustls (the shared
//! `futures_io::serve`).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::Sender;
use futures_lite::{Future, future};
use smol::net::unix::{UnixListener, UnixStream};
use smol::net::{TcpListener, TcpStream};
use smol::{Executor, Timer};

use crate::blocking_io::join_all_within;
use crate::futures_io::{Either, Listener, Runtime, accept_loop, shutdown_signalled};
use crate::net::{self, StreamListener};
use crate::server::{
    EchoServer, JOIN_AFTER_DRAIN, Model, ServerConfig, ServerHandle, ServerId, StopServer,
    available_cores, start_each,
};
use crate::work::EchoPath;
use echo_cli::Transport;

/// smol, a task per connection on a thread-per-core executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolServer;

impl EchoServer for SmolServer {
    fn model(&self) -> Model {
        Model::Smol
    }

    fn driver(&self) -> crate::driver::Driver {
        crate::driver::Driver::Epoll
    }

    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Unix, Transport::Tls]
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        let (plain, tls) = net::split_tls(config)?;
        let (std_listener, endpoint) = net::bind_nonblocking(&plain)?;
        let endpoint = net::served(endpoint, &tls);
        let listener = Smol::listener(std_listener)?;
        let id = ServerId::next();
        let executor = Arc::new(Executor::new());
        let (notify_shutdown, shutdown) = async_channel::bounded::<()>(1);
        // The executor threads run until every sender of `exit` is gone: the accept task holds
        // the only one and drops it when it has finished.
        let (exit_sender, exit) = async_channel::bounded::<()>(1);
        let path = EchoPath::of(config);
        let smol = Smol(Arc::clone(&executor));
        let health = id.health().clone();
        executor
            .spawn(async move {
                accept_loop(smol, listener, shutdown, path, health, tls).await;
                drop(exit_sender);
            })
            .detach();
        let stop = SmolStop {
            notify_shutdown,
            threads: Vec::new(),
        };
        let stop = start_each(stop, 0..config.threads_or(available_cores()), |stop, _| {
            let executor = Arc::clone(&executor);
            let exit = exit.clone();
            let thread = id.thread("smol").spawn(move || {
                future::block_on(executor.run(shutdown_signalled(&exit)));
            })?;
            stop.threads.push(thread);
            Ok(())
        })?;
        Ok(ServerHandle::new(Model::Smol, id, endpoint, Box::new(stop)))
    }
}

/// The server's own executor; its reactor is `async-io`'s.
struct Smol(Arc<Executor<'static>>);

impl Runtime for Smol {
    type TcpListener = TcpListener;
    type UnixListener = UnixListener;
    type Stream = Either<TcpStream, UnixStream>;

    fn listener(listener: StreamListener) -> io::Result<Listener<TcpListener, UnixListener>> {
        Ok(match listener {
            StreamListener::Tcp(l) => Listener::Tcp(TcpListener::try_from(l)?),
            StreamListener::Unix(l) => Listener::Unix(UnixListener::try_from(l)?),
        })
    }

    async fn accept(listener: &Listener<TcpListener, UnixListener>) -> io::Result<Self::Stream> {
        match listener {
            Listener::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok(Either::Left(stream))
            }
            Listener::Unix(listener) => Ok(Either::Right(listener.accept().await?.0)),
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.spawn(task).detach();
    }

    async fn sleep(duration: Duration) {
        Timer::after(duration).await;
    }
}

struct SmolStop {
    notify_shutdown: Sender<()>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl StopServer for SmolStop {
    fn stop(self: Box<Self>) -> io::Result<()> {
        self.notify_shutdown.close();
        // The accept task waits up to the grace period for its handlers; the threads then end.
        let deadline = Instant::now() + JOIN_AFTER_DRAIN;
        join_all_within(self.threads, deadline)
    }
}
