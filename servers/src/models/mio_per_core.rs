//! `mio-per-core`: thread-per-core. One mio event loop per core (or `--threads`), each with its
//! own listener on the same port through `SO_REUSEPORT`, so the kernel spreads connections over
//! the loops and nothing is shared between them: the design behind most fast C servers, monoio
//! and glommio. The loop is the very `mio` model's ([`crate::models::mio::EventLoop`]).
//!
//! Cost per connection: as in `mio`. What blocks: nothing, as long as no handler computes; a
//! connection stays on the loop the kernel gave it, so an unlucky spread leaves a core idle
//! while another is busy (no work stealing).
//!
//! Over `tls:` every loop serves TLS as `mio` does: a rustls session per connection, driven by
//! the loop's readiness, each loop with its own handshake deadline queue; the listeners are
//! plain TCP (`SO_REUSEPORT`) and the loops share one rustls configuration, and so one ticket
//! key, so a client resumes on whichever loop the kernel gives its next connection. A
//! handshake runs on the loop that accepted it and stalls only that loop's connections while
//! it signs; the cost per TLS connection is `mio`'s.
//!
//! Over UDP, one `mio` datagram loop per core, each with its own `SO_REUSEPORT` socket: the
//! kernel hashes each sender to one of them.

use std::io;

use echo_cli::Transport;

use crate::models::mio::{DatagramLoop, LoopStop};
use crate::net;
use crate::server::{
    EchoServer, Model, ServerConfig, ServerHandle, ServerId, available_cores, start_each,
};
use crate::work::EchoPath;

/// One mio loop per core behind SO_REUSEPORT.
#[derive(Debug, Clone, Copy, Default)]
pub struct MioPerCore;

impl EchoServer for MioPerCore {
    fn model(&self) -> Model {
        Model::MioPerCore
    }

    fn driver(&self) -> crate::driver::Driver {
        crate::driver::Driver::Epoll
    }

    fn transports(&self) -> &'static [Transport] {
        &Transport::ALL
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        if config.listen.transport() == Transport::Udp {
            let loops = config.threads_or(available_cores());
            return DatagramLoop::start(Model::MioPerCore, config, loops);
        }
        let (plain, tls) = net::split_tls(config)?;
        let listeners = net::bind_per_core(&plain, config.threads_or(available_cores()))?;
        let endpoint = net::served(listeners[0].endpoint()?, &tls);
        let id = ServerId::next();
        let stop = LoopStop {
            wakers: Vec::new(),
            threads: Vec::new(),
        };
        let path = EchoPath::of(config);
        let stop = start_each(stop, listeners, |stop, listener| {
            stop.start_loop(&id, listener, path, tls.as_ref())
        })?;
        Ok(ServerHandle::new(
            Model::MioPerCore,
            id,
            endpoint,
            Box::new(stop),
        ))
    }
}
