//! `mio-per-core`: thread-per-core. One mio event loop per core (or `--threads`), each with its
//! own listener on the same port through `SO_REUSEPORT`, so the kernel spreads connections over
//! the loops and nothing is shared between them: the design behind most fast C servers, monoio
//! and glommio. The loop is the very `mio` model's ([`crate::models::mio::EventLoop`]).
//!
//! Cost per connection: as in `mio`. What blocks: nothing, as long as no handler computes; a
//! connection stays on the loop the kernel gave it, so an unlucky spread leaves a core idle
//! while another is busy (no work stealing).
//!
//! Over UDP, one `mio` datagram loop per core, each with its own `SO_REUSEPORT` socket: the
//! kernel hashes each sender to one of them.

use std::io;

use echo_cli::Transport;

use crate::models::mio::{DatagramLoop, EventLoop, LoopStop};
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
        &[Transport::Tcp, Transport::Unix, Transport::Udp]
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        if config.listen.transport() == Transport::Udp {
            let loops = config.threads_or(available_cores());
            return DatagramLoop::start(Model::MioPerCore, config, loops);
        }
        let listeners = net::bind_per_core(config, config.threads_or(available_cores()))?;
        let endpoint = listeners[0].endpoint()?;
        let id = ServerId::next();
        let stop = LoopStop {
            wakers: Vec::new(),
            threads: Vec::new(),
        };
        let stop = start_each(stop, listeners, |stop, listener| {
            let (event_loop, waker) =
                EventLoop::new(listener, EchoPath::of(config), id.health().clone())?;
            stop.wakers.push(waker);
            let thread = id.spawn_loop("mio", move || event_loop.run())?;
            stop.threads.push(thread);
            Ok(())
        })?;
        Ok(ServerHandle::new(
            Model::MioPerCore,
            id,
            endpoint,
            Box::new(stop),
        ))
    }
}
