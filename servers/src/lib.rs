//! Interchangeable TCP echo servers, one per concurrency model, behind one trait.
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
pub use server::{EchoServer, Model, ServerConfig, ServerHandle, UnknownModel, available_cores};

pub mod cli;

mod blocking_io;
mod futures_io;
mod net;
mod work;
pub use work::Work;

pub mod async_std_rt;
pub mod blocking;
pub mod io_uring_rt;
pub mod may_rt;
pub mod mio_loop;
pub mod mio_per_core;
pub mod smol_rt;
pub mod thread_per_connection;
pub mod thread_pool;
pub mod tokio_current_thread;
pub mod tokio_rayon;
pub mod tokio_rt;
