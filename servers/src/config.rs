//! [`ServerConfig`], how a server is started: the plain data every model, the transport seam
//! ([`crate::net`]) and the front end share. It depends on nothing in the crate but the values
//! it holds, so the modules below the [`EchoServer`](crate::EchoServer) contract can take it
//! without depending on the contract.

use std::net::{Ipv4Addr, SocketAddr};

use echo_cli::Endpoint;

use crate::tls::TlsServer;
use crate::uring_features::UringFeatures;
use crate::work::Work;

/// How a server is started. Every field has a default that suits a benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where to listen: TCP, a Unix socket path or UDP ([`Endpoint`]); port 0 picks a free port.
    pub listen: Endpoint,
    /// The listen backlog passed to `listen(2)` (the kernel caps it at `net.core.somaxconn`).
    pub backlog: u32,
    /// Bytes of buffer per connection: the most a server holds for a client that does not read.
    pub buffer_size: usize,
    /// Worker threads, for the models that have them; `None` picks the model's own default.
    pub threads: Option<usize>,
    /// CPU spent on every message before it is echoed (default none; see [`Work`]).
    pub work: Work,
    /// The io_uring techniques the `io-uring` model uses (default all; see [`UringFeatures`]).
    /// Every other model ignores them.
    pub uring: UringFeatures,
    /// The certificate and settings of a `tls:` listener; `None` for every other transport (a
    /// `tls:` address without it is an error at start).
    pub tls: Option<TlsServer>,
}

impl ServerConfig {
    /// The default listen address of the `echo-server` binary (TCP).
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 7878);
    /// The default listen backlog.
    pub const DEFAULT_BACKLOG: u32 = 4096;
    /// The default per-connection buffer size.
    pub const DEFAULT_BUFFER: usize = 16 * 1024;

    /// A config listening on `127.0.0.1:0` (a free port), as tests and the suite want.
    pub fn ephemeral() -> Self {
        Self {
            listen: Endpoint::Tcp(SocketAddr::new(
                std::net::IpAddr::V4(Ipv4Addr::LOCALHOST),
                0,
            )),
            ..Self::default()
        }
    }

    /// The default config listening on `listen`.
    pub fn at(listen: Endpoint) -> Self {
        Self {
            listen,
            ..Self::default()
        }
    }

    /// Worker threads to use: the configured count, or `default` when none was given.
    pub fn threads_or(&self, default: usize) -> usize {
        self.threads.unwrap_or(default).max(1)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: Endpoint::Tcp(Self::DEFAULT_LISTEN),
            backlog: Self::DEFAULT_BACKLOG,
            buffer_size: Self::DEFAULT_BUFFER,
            threads: None,
            work: Work::default(),
            uring: UringFeatures::ALL,
            tls: None,
        }
    }
}
