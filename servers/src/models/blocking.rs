//! `blocking`: the textbook iterative server. One thread accepts a connection and echoes it until
//! the client closes, then accepts the next; every other client waits in the listen backlog.
//!
//! Cost per connection: nothing beyond the kernel's socket buffers and one read buffer, because
//! there is only ever one. What blocks: everything. An idle client holds the whole server, so
//! this model serves exactly one connection at a time; it is the baseline the others beat.
//!
//! Over UDP (`udp:`) it is the textbook `recvfrom`/`sendto` loop on one thread
//! (`datagram::start_threads`): one datagram at a time, but no client can hold it.

use std::io;

use echo_cli::Transport;

use crate::blocking_io;
use crate::datagram;
use crate::server::{EchoServer, Model, ServerConfig, ServerHandle};

/// The iterative single-thread server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Blocking;

impl EchoServer for Blocking {
    fn model(&self) -> Model {
        Model::Blocking
    }

    fn driver(&self) -> crate::driver::Driver {
        crate::driver::Driver::Blocking
    }

    fn concurrency_limit(&self, _config: &ServerConfig) -> Option<usize> {
        Some(1)
    }

    fn transports(&self) -> &'static [Transport] {
        &Transport::ALL
    }

    fn start(&self, config: &ServerConfig) -> io::Result<ServerHandle> {
        if config.listen.transport() == Transport::Udp {
            return datagram::start_threads(Model::Blocking, config, 1);
        }
        blocking_io::start(Model::Blocking, config, |acceptor| {
            acceptor.run(|conn| conn.serve());
        })
    }
}
