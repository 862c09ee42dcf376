//! Interchangeable echo servers, one per concurrency model, behind one trait: every model serves
//! TCP and Unix stream sockets, and the models where it means something serve UDP datagrams.
//!
//! Start any model through the [`Model`] registry and the [`EchoServer`] trait:
//!
//! ```
//! use echo_servers::{Model, ServerConfig};
//! use std::io::{Read, Write};
//!
//! let server = Model::Mio.server().start(&ServerConfig::ephemeral())?;
//! let mut client = std::net::TcpStream::connect(server.local_addr())?;
//! client.write_all(b"hello")?;
//! let mut echoed = [0; 5];
//! client.read_exact(&mut echoed)?;
//! assert_eq!(&echoed, b"hello");
//! server.shutdown()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`EchoServer`]'s documentation lists what every model guarantees. Each model lives in its
//! own module, and [`Model`] is the only place that lists them.
#![deny(missing_docs)]

mod server;
pub use server::{
    EchoServer, Ended, Family, Health, Model, ServerConfig, ServerHandle, UnknownModel,
    available_cores,
};

pub mod serve;
pub use echo_cli::{Endpoint, TlsVersions, Transport};

mod blocking_io;
mod config;
mod driver;
mod health;
pub use driver::{
    DISABLE_IO_URING_ENV as IO_URING_DISABLE_ENV, Driver, UnknownDriver, io_uring_refused,
};
mod datagram;
mod futures_io;
mod net;
mod tls;
pub use tls::{CertFiles, CertKind, DEFAULT_HANDSHAKE_TIMEOUT, TlsServer};
mod uring_features;
pub use uring_features::{BadUringFeatures, UringFeature, UringFeatures};
mod work;
pub use work::Work;

/// One module per model, named exactly as the model; reached only through the registry.
mod models;
