//! `tokio-current-thread`: thread-per-core with tokio. One current-thread runtime per core (or
//! `--threads`), each on its own thread with its own listener on the same port through
//! `SO_REUSEPORT`; the kernel spreads connections, and a task never leaves its runtime. The
//! accept loop, handlers and shutdown are the `tokio` model's (`models::tokio::Runtimes`).
//!
//! Cost per connection: one task and its read buffer. What blocks: nothing on one runtime while
//! its tasks yield; but there is no work stealing, so a busy runtime cannot hand work to an idle
//! one. In exchange there are no cross-thread wake-ups.
//!
//! Over UDP, each runtime has one task on its own `SO_REUSEPORT` socket.

use std::io;

use echo_cli::{Endpoint, Transport};

use crate::models::tokio::{Inline, Runtimes};
use crate::net;
use crate::server::{
    EchoServer, Model, ServerConfig, ServerHandle, ServerId, available_cores, start_each,
};
use crate::work::EchoPath;

/// A current-thread tokio runtime per core behind SO_REUSEPORT.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioCurrentThread;

impl EchoServer for TokioCurrentThread {
    fn model(&self) -> Model {
        Model::TokioCurrentThread
    }

    fn driver(&self) -> crate::driver::Driver {
        crate::driver::Driver::Epoll
    }

    fn transports(&self) -> &'static [Transport] {
        &Transport::ALL
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        if config.listen.transport() == Transport::Udp {
            return start_datagrams(config);
        }
        let (plain, tls) = net::split_tls(config)?;
        let listeners = net::bind_per_core(&plain, config.threads_or(available_cores()))?;
        let endpoint = net::served(listeners[0].endpoint()?, &tls);
        let id = ServerId::next();
        let runtimes = start_each(Runtimes::new(), listeners, |runtimes, listener| {
            listener.set_nonblocking(true)?;
            let on_message = Inline(EchoPath::of(config));
            runtimes.serve(&id, runtime()?, listener, on_message, tls.as_ref())
        })?;
        Ok(ServerHandle::new(
            Model::TokioCurrentThread,
            id,
            endpoint,
            Box::new(runtimes),
        ))
    }
}

/// Over UDP: a runtime per core, each with one task on its own `SO_REUSEPORT` socket.
fn start_datagrams(config: &ServerConfig) -> io::Result<ServerHandle> {
    let sockets = net::bind_datagram_per_core(config, config.threads_or(available_cores()))?;
    let endpoint = Endpoint::Udp(sockets[0].local_addr()?);
    let id = ServerId::next();
    let runtimes = start_each(Runtimes::new(), sockets, |runtimes, socket| {
        runtimes.serve_datagrams(&id, runtime()?, socket, 1, Inline(EchoPath::of(config)))
    })?;
    Ok(ServerHandle::new(
        Model::TokioCurrentThread,
        id,
        endpoint,
        Box::new(runtimes),
    ))
}

/// One core's runtime: current-thread, with I/O and timers.
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
}
